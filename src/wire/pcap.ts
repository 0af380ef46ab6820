/**
 * Classic libpcap files: header + records. Pure functions (the caller does file I/O).
 * Write: little-endian, microsecond magic, LINKTYPE_RAW. Read: both byte orders, µs and ns
 * magic; records keep their link type for the caller (101 raw IP, 229 raw IPv6).
 */
import { fail, need, u32, u32le } from './bytes.js';

export const PCAP_MAGIC_US = 0xa1b2c3d4; // pcap file format (draft-ietf-opsawg-pcap §4)
export const PCAP_MAGIC_NS = 0xa1b23c4d; // draft-ietf-opsawg-pcap §4
export const PCAP_HEADER_LEN = 24; // draft-ietf-opsawg-pcap §4
export const PCAP_RECORD_HEADER_LEN = 16; // draft-ietf-opsawg-pcap §5
export const PCAP_SNAPLEN = 65535; // mip6 choice: whole IPv6 packets without jumbograms
export const PCAP_MAX_RECORD_LEN = 262144; // libpcap MAXIMUM_SNAPLEN
export const LINKTYPE_RAW = 101; // tcpdump.org link-layer header types: raw IPv4/IPv6
export const LINKTYPE_IPV6 = 229; // tcpdump.org link-layer header types: raw IPv6

function le32(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
  b[off + 2] = (v >>> 16) & 0xff;
  b[off + 3] = (v >>> 24) & 0xff;
}

/** 24-byte global header (version 2.4, µs timestamps, little-endian). */
export function encodePcapHeader(linktype = LINKTYPE_RAW): Uint8Array {
  const b = new Uint8Array(PCAP_HEADER_LEN);
  le32(b, 0, PCAP_MAGIC_US);
  b[4] = 2; // version major
  b[6] = 4; // version minor
  le32(b, 16, PCAP_SNAPLEN);
  le32(b, 20, linktype);
  return b;
}

/** One record: 16-byte header + the packet; `timeMicros` since the Unix epoch. */
export function encodePcapRecord(packet: Uint8Array, timeMicros: number): Uint8Array {
  const b = new Uint8Array(PCAP_RECORD_HEADER_LEN + packet.length);
  const t = Math.max(0, Math.floor(timeMicros));
  le32(b, 0, Math.floor(t / 1e6));
  le32(b, 4, t % 1e6);
  le32(b, 8, packet.length);
  le32(b, 12, packet.length);
  b.set(packet, PCAP_RECORD_HEADER_LEN);
  return b;
}

export interface PcapFile {
  linktype: number;
  records: { timeMicros: number; data: Uint8Array; originalLength: number }[];
}

/** Parses a whole pcap file; malformed -> WireError with the byte offset. */
export function decodePcap(bytes: Uint8Array): PcapFile {
  need(bytes, 0, PCAP_HEADER_LEN, 'pcap header');
  const be = u32(bytes, 0);
  const le = u32le(bytes, 0);
  let rd: (b: Uint8Array, o: number) => number;
  let nanos: boolean;
  if (be === PCAP_MAGIC_US || be === PCAP_MAGIC_NS) {
    rd = u32;
    nanos = be === PCAP_MAGIC_NS;
  } else if (le === PCAP_MAGIC_US || le === PCAP_MAGIC_NS) {
    rd = u32le;
    nanos = le === PCAP_MAGIC_NS;
  } else {
    return fail('ERR_BAD_VALUE', 'not a pcap file (bad magic number)', 0);
  }
  const linktype = rd(bytes, 20) & 0x0fffffff;
  const records: PcapFile['records'] = [];
  let off = PCAP_HEADER_LEN;
  while (off < bytes.length) {
    need(bytes, off, PCAP_RECORD_HEADER_LEN, 'pcap record header');
    const sec = rd(bytes, off);
    const frac = rd(bytes, off + 4);
    const incl = rd(bytes, off + 8);
    const orig = rd(bytes, off + 12);
    if (incl > PCAP_MAX_RECORD_LEN)
      fail('ERR_BAD_LENGTH', `pcap record length ${incl} too large`, off + 8);
    need(bytes, off + PCAP_RECORD_HEADER_LEN, incl, 'pcap record data');
    const data = bytes.slice(off + PCAP_RECORD_HEADER_LEN, off + PCAP_RECORD_HEADER_LEN + incl);
    records.push({
      timeMicros: sec * 1e6 + (nanos ? Math.floor(frac / 1000) : frac),
      data,
      originalLength: orig,
    });
    off += PCAP_RECORD_HEADER_LEN + incl;
  }
  return { linktype, records };
}
