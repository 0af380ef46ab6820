/**
 * Where the mobile node's home address lives (RFC 6275 §11.5.4): on the TUN while away (every
 * packet from it is reverse-tunneled), on the physical home link while at home (plain IPv6, no
 * tunnel). Each transition is one `ip -force -batch -` run, so a half-applied state is not left
 * behind by one failing line (e.g. the home link's address already flushed when it went down).
 *
 * Away, the home prefix is also pinned into the TUN with a metric below any Router
 * Advertisement's (HOME_PREFIX_METRIC < 256): a rogue RA for the home prefix on a visited link
 * gives that link an on-link route of the same prefix, and at equal metrics the older route
 * wins, so a Wi-Fi that came up before the TUN would otherwise carry home-prefix traffic in
 * clear to whoever answers Neighbor Discovery there (issue #13).
 *
 * enter(link), after the HA acknowledged our deregistration on that link: HoA and the pinned
 *   route off the TUN; HoA/prefix on the link (nodad: the HA's proxy-ND entry may linger for a
 *   moment); a default route via the HA's home address when the link gave us none (a real home
 *   link's Router Advertisement normally does).
 * announce(link): after the deregistration BA, unsolicited NAs for the HoA (RFC 6275 §11.5.4).
 * leave(link): that default route and the HoA off the link; HoA and the pin back on the TUN.
 */
import { execFile } from 'node:child_process';
import { IoError } from '../util/errors.js';
import { replaceRoute } from './iproute.js';
import { advertiseNeighbor } from './ndisc.js';

export interface HomeAddressOptions {
  tunName: string;
  homeAddress: string;
  prefixLength: number;
  /** The home prefix as network/length (`2001:db8:100::/64`), for the pinned route. */
  homePrefix: string;
  /** The HA's address on the home link: next hop of the default route at home. */
  homeAgentAddress: string;
}

/** Metric of the home prefix's route into the TUN: below an RA's prefix route (256). */
export const HOME_PREFIX_METRIC = 128;
/** Metric of the prefix route the kernel adds with an address (IP6_RT_PRIO_ADDRCONF). */
const KERNEL_PREFIX_METRIC = 256;

/** Pins the home prefix into the TUN (see the file comment); run once the TUN is up. */
export function pinHomePrefix(tunName: string, homePrefix: string): Promise<void> {
  return replaceRoute(homePrefix, tunName, { metric: HOME_PREFIX_METRIC });
}

/** Metric of the default route we add at home (above a Router Advertisement's 1024). */
const HOME_DEFAULT_METRIC = 2048;

function batch(lines: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile('ip', ['-force', '-batch', '-'], { timeout: 10_000 }, (err, _o, e) => {
      // -force runs every line; errors of lines that have nothing to undo are expected.
      if (err !== null && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new IoError('ERR_IPROUTE', 'iproute2 is not installed (apt-get install iproute2)'));
        return;
      }
      void e;
      resolve();
    });
    child.stdin?.end(lines.join('\n') + '\n');
  });
}

export class KernelHomeAddress {
  readonly #o: HomeAddressOptions;
  #cancelAnnounce: (() => void) | undefined;

  constructor(opts: HomeAddressOptions) {
    this.#o = opts;
  }

  async enter(link: string): Promise<void> {
    const o = this.#o;
    const cidr = `${o.homeAddress}/${o.prefixLength}`;
    await batch([
      `addr del ${cidr} dev ${o.tunName}`,
      // Both TUN routes of the prefix: removing the address takes away only one of them (the
      // kernel picks the first, our pin), and the other would keep home traffic in the TUN.
      `route del ${o.homePrefix} dev ${o.tunName} metric ${HOME_PREFIX_METRIC}`,
      `route del ${o.homePrefix} dev ${o.tunName} metric ${KERNEL_PREFIX_METRIC}`,
      `addr replace ${cidr} dev ${link} nodad`,
      `route add ::/0 via ${o.homeAgentAddress} dev ${link} metric ${HOME_DEFAULT_METRIC}`,
    ]);
  }

  /** After the deregistration BA: unsolicited NAs so the link's hosts switch back to us. */
  announce(link: string): void {
    this.#cancelAnnounce?.();
    this.#cancelAnnounce = advertiseNeighbor(link, this.#o.homeAddress);
  }

  async leave(link: string): Promise<void> {
    this.#cancelAnnounce?.();
    this.#cancelAnnounce = undefined;
    const o = this.#o;
    const cidr = `${o.homeAddress}/${o.prefixLength}`;
    await batch([
      `route del ::/0 via ${o.homeAgentAddress} dev ${link} metric ${HOME_DEFAULT_METRIC}`,
      `addr del ${cidr} dev ${link}`,
      `addr replace ${cidr} dev ${o.tunName} nodad`,
      `route replace ${o.homePrefix} dev ${o.tunName} metric ${HOME_PREFIX_METRIC}`,
    ]);
  }
}
