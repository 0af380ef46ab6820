/**
 * IPv4 header offsets (RFC 791 §3.1) for the data path, which reads inner IPv4 packets in
 * place: an RFC 5555 IPv4 home address's packets travel in the same channel as IPv6 ones and
 * are told apart by the version nibble.
 */
export const IPV4_VERSION = 4; // RFC 791 §3.1
export const IPV4_HEADER_LEN = 20; // RFC 791 §3.1: the fixed part (IHL 5)
export const IPV4_SRC_OFF = 12; // RFC 791 §3.1
export const IPV4_DST_OFF = 16; // RFC 791 §3.1

/** What `mip6 decode` shows of an inner IPv4 packet (an IPv4 home address's traffic). */
export interface Ipv4Summary {
  version: 4;
  headerLength: number;
  totalLength: number;
  ttl: number;
  protocol: number;
  source: string;
  destination: string;
}

/** The fixed IPv4 header's fields, or undefined when `p` is no IPv4 packet (RFC 791 §3.1). */
export function ipv4Summary(p: Uint8Array): Ipv4Summary | undefined {
  if (p.length < IPV4_HEADER_LEN || p[0]! >> 4 !== IPV4_VERSION) return undefined;
  const addr = (o: number): string => `${p[o]}.${p[o + 1]}.${p[o + 2]}.${p[o + 3]}`;
  return {
    version: 4,
    headerLength: (p[0]! & 0x0f) * 4,
    totalLength: (p[2]! << 8) | p[3]!,
    ttl: p[8]!,
    protocol: p[9]!,
    source: addr(IPV4_SRC_OFF),
    destination: addr(IPV4_DST_OFF),
  };
}
