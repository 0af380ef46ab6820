/**
 * TCP MSS clamping in place (issue #21): a SYN's Maximum Segment Size option (RFC 9293 §3.7.1,
 * option kind 2, length 4) lowered to what the tunnel's path carries, as OpenVPN's mssfix and
 * routers' "TCP MSS clamping" do, for stacks that ignore ICMP Packet Too Big. The TCP checksum
 * is updated incrementally (RFC 1624 eqn. 3), so nothing else of the packet is read or copied.
 *
 * Only a TCP header right after the IP header is looked at (IPv6 next header 6, or IPv4
 * protocol 6 without fragmentation offset); anything else, malformed or not a SYN, is left
 * alone: this is a best effort on the data path, never a reason to drop.
 */

/** IPv6 header (RFC 8200 §3) and minimal TCP header (RFC 9293 §3.1) sizes. */
const IPV6_HEADER_LEN = 40;
const TCP_MIN_HEADER_LEN = 20;
const TCP_PROTOCOL = 6;
const TCP_FLAGS_OFF = 13;
const TCP_CHECKSUM_OFF = 16;
const TCP_SYN = 0x02;
const OPT_END = 0;
const OPT_NOP = 1;
const OPT_MSS = 2;
const OPT_MSS_LEN = 4;

/** TCP + IP header bytes an MSS leaves out of a packet of the inner MTU (IPv6 / IPv4). */
export const MSS_OVERHEAD_IPV6 = IPV6_HEADER_LEN + TCP_MIN_HEADER_LEN;
export const MSS_OVERHEAD_IPV4 = 20 + TCP_MIN_HEADER_LEN;

/**
 * If buf[off, off + len) is a TCP SYN (IPv6 or IPv4) whose MSS option exceeds what a packet of
 * `maxPacket` bytes allows, lowers it and fixes the checksum. Returns true when it changed
 * the packet.
 */
export function clampTcpMss(buf: Uint8Array, off: number, len: number, maxPacket: number): boolean {
  const version = buf[off]! >> 4;
  let tcp: number;
  let maxMss: number;
  if (version === 6) {
    if (buf[off + 6] !== TCP_PROTOCOL) return false;
    tcp = off + IPV6_HEADER_LEN;
    maxMss = maxPacket - MSS_OVERHEAD_IPV6;
  } else if (version === 4) {
    const ihl = (buf[off]! & 0x0f) * 4;
    // Protocol TCP, not a later fragment.
    if (buf[off + 9] !== TCP_PROTOCOL || ((buf[off + 6]! & 0x1f) | buf[off + 7]!) !== 0) {
      return false;
    }
    tcp = off + ihl;
    maxMss = maxPacket - MSS_OVERHEAD_IPV4;
  } else {
    return false;
  }
  const end = off + len;
  if (tcp + TCP_MIN_HEADER_LEN > end || (buf[tcp + TCP_FLAGS_OFF]! & TCP_SYN) === 0) return false;
  const doff = (buf[tcp + 12]! >> 4) * 4;
  const optEnd = tcp + doff;
  if (doff <= TCP_MIN_HEADER_LEN || optEnd > end) return false;
  for (let i = tcp + TCP_MIN_HEADER_LEN; i < optEnd;) {
    const kind = buf[i]!;
    if (kind === OPT_END) return false;
    if (kind === OPT_NOP) {
      i++;
      continue;
    }
    const optLen = i + 1 < optEnd ? buf[i + 1]! : 0;
    if (optLen < 2 || i + optLen > optEnd) return false;
    if (kind === OPT_MSS && optLen === OPT_MSS_LEN) {
      const mss = (buf[i + 2]! << 8) | buf[i + 3]!;
      if (mss <= maxMss) return false;
      buf[i + 2] = maxMss >>> 8;
      buf[i + 3] = maxMss & 0xff;
      // RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), on the 16-bit words of the TCP header. An MSS
      // at an odd offset (after a NOP) straddles two words: its high byte is the low half of one
      // and its low byte the high half of the next, so it adds to the sum byte-swapped.
      const odd = ((i - tcp) & 1) === 1;
      const m = odd ? swap16(mss) : mss;
      const m2 = odd ? swap16(maxMss) : maxMss;
      const c = tcp + TCP_CHECKSUM_OFF;
      let sum = (~((buf[c]! << 8) | buf[c + 1]!) & 0xffff) + (~m & 0xffff) + m2;
      sum = (sum & 0xffff) + (sum >>> 16);
      sum = (sum & 0xffff) + (sum >>> 16);
      const hc = ~sum & 0xffff;
      buf[c] = hc >>> 8;
      buf[c + 1] = hc & 0xff;
      return true;
    }
    i += optLen;
  }
  return false;
}

function swap16(v: number): number {
  return ((v & 0xff) << 8) | (v >>> 8);
}
