/**
 * Inner packets for the simulations: what an application on a node would write into its TUN.
 */
import { upperLayerChecksum } from '../../src/wire/checksum.js';
import { IPV6_HEADER_LEN } from '../../src/wire/ipv6.js';
import { encodeIcmpv6Packet } from '../../src/wire/packet.js';
import { IPPROTO } from '../../src/wire/types.js';

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

/**
 * A copy of the Mobility Header packet `p` (no extension headers: the MH at byte 40) with MH
 * byte `at` set to `value`, optionally cut to an MH of `mhLen` bytes (Payload Length follows),
 * and the MH checksum recomputed over the pseudo-header of `source` -> `destination`: a packet
 * whose only fault is the one asked for.
 */
export function patchMobilityHeader(
  p: Uint8Array,
  at: number,
  value: number,
  addresses: { source: string; destination: string },
  mhLen?: number,
): Uint8Array {
  const q = p.slice(0, mhLen === undefined ? p.length : IPV6_HEADER_LEN + mhLen);
  if (mhLen !== undefined) q[5] = mhLen;
  q[IPV6_HEADER_LEN + at] = value;
  q[IPV6_HEADER_LEN + 4] = 0;
  q[IPV6_HEADER_LEN + 5] = 0;
  const c = upperLayerChecksum(
    addresses.source,
    addresses.destination,
    IPPROTO.MH,
    q.subarray(IPV6_HEADER_LEN),
  );
  q[IPV6_HEADER_LEN + 4] = c >> 8;
  q[IPV6_HEADER_LEN + 5] = c & 0xff;
  return q;
}

/** A minimal IPv4/UDP packet (RFC 791 header with its checksum; UDP checksum 0). */
export function ipv4Udp(src: string, dst: string, payload: number): Uint8Array {
  const p = new Uint8Array(20 + 8 + 4);
  p[0] = 0x45;
  p[2] = 0;
  p[3] = p.length;
  p[8] = 64;
  p[9] = 17;
  p.set(src.split('.').map(Number), 12);
  p.set(dst.split('.').map(Number), 16);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += (p[i]! << 8) | p[i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  const c = ~sum & 0xffff;
  p[10] = c >> 8;
  p[11] = c & 0xff;
  p[21] = 9; // ports 9 -> 9
  p[23] = 9;
  p[25] = 12;
  p.set([0, 0, payload >> 8, payload & 0xff], 28);
  return p;
}
