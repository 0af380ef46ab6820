/**
 * Unsolicited Neighbor Advertisements through the addon (native/ndisc_linux.c): RFC 6275
 * §10.4.1 (the HA takes over an away MN's home address on the home link) and §11.5.4 (the MN
 * takes it back when home). Each call sends one NA with Override set to ff02::1 on the link;
 * `advertiseNeighbor` repeats it (RFC 4861 §7.2.6 allows MAX_NEIGHBOR_ADVERTISEMENT = 3) so a
 * lost one does not leave hosts on the link pointing at the wrong link-layer address.
 */
import { loadAddon } from './addon.js';
import { addressBytes } from './address-bytes.js';
import { IoError } from '../util/errors.js';

/** MAX_NEIGHBOR_ADVERTISEMENT (RFC 4861 §10). */
const MAX_NEIGHBOR_ADVERTISEMENT = 3;
/** Spacing of the repeats (ms); RFC 4861 asks for at least RetransTimer between them. */
const REPEAT_MS = 500;

/** Sends one unsolicited NA for `address` out of `link`. Throws IoError when it cannot. */
export function sendNeighborAdvertisement(link: string, address: string): void {
  const addon = loadAddon();
  if (addon.ndpAdvertise === undefined) {
    throw new IoError('ERR_ADDON', 'the native addon has no ndpAdvertise: rebuild it');
  }
  try {
    addon.ndpAdvertise(link, addressBytes(6, address));
  } catch (err) {
    throw new IoError('ERR_NDISC', `unsolicited NA for ${address} on ${link}: ${String(err)}`);
  }
}

/**
 * Sends MAX_NEIGHBOR_ADVERTISEMENT NAs (now, then every REPEAT_MS); errors go to `onError`, and
 * `onDone` runs once the last one is sent (not when cancelled). Returns a function that cancels
 * the repeats still pending (call it when the address changes hands again, or a late NA would
 * claim it for the wrong node); once `onDone` ran it has nothing left to cancel.
 */
export function advertiseNeighbor(
  link: string,
  address: string,
  onError: (err: unknown) => void = () => undefined,
  onDone: () => void = () => undefined,
): () => void {
  const timers: NodeJS.Timeout[] = [];
  for (let i = 0; i < MAX_NEIGHBOR_ADVERTISEMENT; i++) {
    const last = i === MAX_NEIGHBOR_ADVERTISEMENT - 1;
    const send = (): void => {
      try {
        sendNeighborAdvertisement(link, address);
      } catch (err) {
        onError(err);
      }
      if (last) onDone();
    };
    if (i === 0) send();
    else timers.push(setTimeout(send, i * REPEAT_MS).unref());
  }
  return () => {
    for (const t of timers) clearTimeout(t);
  };
}
