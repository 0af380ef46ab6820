/**
 * A member that speaks to the World's home agent packet by packet (no MobileNode): a channel
 * of its own key and certificate, inner IPv6 packets sealed as its own signaling, and every
 * packet the HA seals back, decoded. For tests that must send what a MobileNode never would.
 */
import { DataKind } from '../../src/crypto/aead.js';
import type { PeerSession } from '../../src/crypto/endpoint.js';
import { decodePacket, type DecodedPacket } from '../../src/wire/packet.js';
import { endpoint, memberKey, T0 } from './crypto.js';
import { HA4, HA_PORT, type World } from './world.js';

export interface RawMember {
  /** What the HA sent back, decoded, in order. */
  got: DecodedPacket[];
  /** Seals `packet` as the member's own signaling (DataKind.SIGNALING) to the HA. */
  send(packet: Uint8Array): void;
  /** Seals `packet` as payload (DataKind.PAYLOAD): data for the HA to forward. */
  sendPayload(packet: Uint8Array): void;
  /** The channel came up. */
  ready: boolean;
}

export async function rawMember(
  w: World,
  opts: {
    homeAddress: string;
    address4: string;
    keySeed?: number;
    /** Its handshake clock (default T0): later than a former endpoint's of the same key. */
    wallClock?: () => number;
  },
): Promise<RawMember> {
  const ep = endpoint(
    w.ca,
    {
      name: 'probe',
      role: 'mn',
      key: memberKey(opts.keySeed ?? 0x92),
      addresses: [opts.homeAddress],
    },
    ['ha'],
    opts.wallClock !== undefined ? { wallClock: opts.wallClock } : {},
  );
  const udp = w.net.endpoint({ address: opts.address4 });
  const got: DecodedPacket[] = [];
  let session: PeerSession | undefined;
  udp.onDatagrams((batch) => {
    for (let i = 0; i < batch.count; i++) {
      const copy = batch.packet(i).slice();
      const r = ep.receive(copy, T0 + w.clock.now());
      if (r.kind === 'established') session = r.session;
      // Path messages (validation, MTU probes) are sealed too and are not IPv6: not kept.
      if (r.kind === 'data' && (copy[r.offset] ?? 0) >> 4 === 6) {
        got.push(decodePacket(copy.subarray(r.offset, r.offset + r.length)));
      }
    }
  });
  udp.send(ep.connect(w.haKey.publicKey, T0 + w.clock.now()), HA4, HA_PORT);
  await w.until(() => session !== undefined, 1000);
  const seal = (packet: Uint8Array, kind: DataKind): void => {
    if (session === undefined) throw new Error('rawMember: no channel');
    udp.send(ep.seal(session, packet, T0 + w.clock.now(), kind)!, HA4, HA_PORT);
  };
  return {
    got,
    send: (packet) => seal(packet, DataKind.SIGNALING),
    sendPayload: (packet) => seal(packet, DataKind.PAYLOAD),
    ready: session !== undefined,
  };
}
