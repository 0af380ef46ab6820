/**
 * Inner packets for the simulations: what an application on a node would write into its TUN.
 */
import { encodeIcmpv6Packet } from '../../src/wire/packet.js';

/** ICMPv6 identifier of every echo(); tests tell their packets apart by `sequence`. */
export const ECHO_IDENTIFIER = 7;

/**
 * An ICMPv6 Echo Request from `source` to `destination` (checksum included), `size` bytes of
 * data, each the low byte of `sequence`.
 */
export function echo(source: string, destination: string, sequence: number, size = 40): Uint8Array {
  return encodeIcmpv6Packet({
    source,
    destination,
    message: {
      kind: 'echoRequest',
      identifier: ECHO_IDENTIFIER,
      sequence,
      data: new Uint8Array(size).fill(sequence & 0xff),
    },
  });
}
