/**
 * IPv6 / IPv4 address text <-> bytes. Pure: no node:* imports, so the data path and the
 * codecs share one implementation. Output text is RFC 5952 canonical (lower case, longest
 * run of two or more zero groups compressed, first run on a tie); IPv4-mapped addresses
 * (::ffff:0:0/96, RFC 4291 §2.5.5.2) print as `::ffff:a.b.c.d`.
 */
import { WireError } from '../util/errors.js';

export const IPV6_ADDR_LEN = 16; // RFC 4291 §2
export const IPV4_ADDR_LEN = 4; // RFC 791 §3.1

function bad(text: string, why: string): WireError {
  return new WireError('ERR_BAD_VALUE', `invalid address "${text}": ${why}`);
}

/**
 * Reads a dotted quad (four decimal parts 0-255, no leading zeros, nothing else) into `out`
 * at 0..3 when given; false when `text` is not one. A scan, no regular expression: the home
 * agent checks addresses like this for every Binding Update.
 */
function scanIpv4(text: string, out?: Uint8Array): boolean {
  const n = text.length;
  if (n < 7 || n > 15) return false;
  let part = 0;
  let i = 0;
  for (;;) {
    const start = i;
    let v = 0;
    for (; i < n && i - start < 3; i++) {
      const c = text.charCodeAt(i);
      if (c < 0x30 || c > 0x39) break;
      v = v * 10 + (c - 0x30);
    }
    const digits = i - start;
    if (digits === 0 || v > 255 || (digits > 1 && text.charCodeAt(start) === 0x30)) return false;
    if (out !== undefined) out[part] = v;
    if (++part === 4) return i === n;
    if (i >= n || text.charCodeAt(i) !== 0x2e) return false;
    i++;
  }
}

/** True when `text` is a dotted-quad IPv4 address. */
export function isIpv4(text: string): boolean {
  return typeof text === 'string' && scanIpv4(text);
}

/** Dotted quad -> 4 bytes. Throws WireError ERR_BAD_VALUE. */
export function parseIpv4(text: string): Uint8Array {
  const out = new Uint8Array(IPV4_ADDR_LEN);
  if (!isIpv4(text) || !scanIpv4(text, out)) {
    throw bad(text, 'not a dotted-quad IPv4 address');
  }
  return out;
}

/** 4 bytes at `offset` -> dotted quad. */
export function formatIpv4(bytes: Uint8Array, offset = 0): string {
  if (offset < 0 || offset + IPV4_ADDR_LEN > bytes.length) {
    throw new WireError('ERR_TRUNCATED', 'IPv4 address truncated', offset);
  }
  return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;
}

function parseGroups(text: string, part: string, allowV4Tail: boolean): number[] {
  if (part === '') return [];
  const pieces = part.split(':');
  const groups: number[] = [];
  for (let i = 0; i < pieces.length; i++) {
    const p = pieces[i] ?? '';
    if (allowV4Tail && i === pieces.length - 1 && p.includes('.')) {
      const v4 = parseIpv4(p);
      groups.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0));
      continue;
    }
    if (!/^[0-9a-fA-F]{1,4}$/.test(p)) throw bad(text, `bad group "${p}"`);
    groups.push(parseInt(p, 16));
  }
  return groups;
}

/** Scratch groups of parseHexIpv6 (one parse at a time: JavaScript is single-threaded). */
const scratch = new Uint16Array(8);

/**
 * The common spellings (hex groups and at most one "::", no IPv4 tail) straight into `out`
 * with no regular expression, split or array per group; false for anything else, which
 * parseIpv6's general path then accepts or refuses with its reason. Whatever this accepts,
 * the general path accepts with the same bytes (test/unit/address.test.ts compares them).
 */
function parseHexIpv6(text: string, out: Uint8Array): boolean {
  const n = text.length;
  if (n < 2 || n > 39) return false;
  let i = 0;
  let g = 0;
  let gap = -1;
  if (text.charCodeAt(0) === 0x3a) {
    if (text.charCodeAt(1) !== 0x3a) return false;
    gap = 0;
    i = 2;
  }
  while (i < n) {
    let v = 0;
    let digits = 0;
    for (; i < n && digits <= 4; i++) {
      const c = text.charCodeAt(i);
      let d: number;
      if (c >= 0x30 && c <= 0x39) d = c - 0x30;
      else if (c >= 0x61 && c <= 0x66) d = c - 0x57;
      else if (c >= 0x41 && c <= 0x46) d = c - 0x37;
      else break;
      v = (v << 4) | d;
      digits++;
    }
    if (digits === 0 || digits > 4 || g === 8) return false;
    scratch[g++] = v;
    if (i === n) break;
    if (text.charCodeAt(i) !== 0x3a) return false; // '.', a zone, anything else
    i++;
    if (i < n && text.charCodeAt(i) === 0x3a) {
      if (gap >= 0) return false;
      gap = g;
      i++;
    } else if (i === n) {
      return false; // one trailing colon
    }
  }
  if (gap < 0 ? g !== 8 : g > 7) return false;
  const fill = gap < 0 ? 0 : 8 - g;
  for (let k = 0, j = 0; k < 8; k++) {
    const v = gap >= 0 && k >= gap && k < gap + fill ? 0 : scratch[j++]!;
    out[2 * k] = v >> 8;
    out[2 * k + 1] = v & 0xff;
  }
  return true;
}

/** IPv6 text (any RFC 4291 §2.2 form, including an embedded IPv4 tail) -> 16 bytes. */
export function parseIpv6(text: string): Uint8Array {
  const fast = new Uint8Array(IPV6_ADDR_LEN);
  if (typeof text === 'string' && parseHexIpv6(text, fast)) return fast;
  return parseIpv6General(text);
}

/** parseIpv6 for every spelling, with the reason when the text is not an address. */
export function parseIpv6General(text: string): Uint8Array {
  if (typeof text !== 'string' || text.length === 0 || text.length > 45) {
    throw bad(String(text), 'wrong length');
  }
  const dbl = text.indexOf('::');
  let groups: number[];
  if (dbl >= 0) {
    if (text.indexOf('::', dbl + 1) >= 0) throw bad(text, 'more than one "::"');
    const head = parseGroups(text, text.slice(0, dbl), false);
    const tail = parseGroups(text, text.slice(dbl + 2), true);
    const fill = 8 - head.length - tail.length;
    if (fill < 1) throw bad(text, 'too many groups');
    groups = [...head, ...new Array<number>(fill).fill(0), ...tail];
  } else {
    groups = parseGroups(text, text, true);
    if (groups.length !== 8) throw bad(text, 'need 8 groups');
  }
  const out = new Uint8Array(IPV6_ADDR_LEN);
  for (let i = 0; i < 8; i++) {
    const g = groups[i] ?? 0;
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  }
  return out;
}

/** The groups of formatIpv6 (one format at a time: JavaScript is single-threaded). */
const groups = new Uint16Array(8);

/** 16 bytes at `offset` -> RFC 5952 canonical text (built in one pass, no arrays per call). */
export function formatIpv6(bytes: Uint8Array, offset = 0): string {
  if (offset < 0 || offset + IPV6_ADDR_LEN > bytes.length) {
    throw new WireError('ERR_TRUNCATED', 'IPv6 address truncated', offset);
  }
  const g = groups;
  for (let i = 0; i < 8; i++) g[i] = (bytes[offset + 2 * i]! << 8) | bytes[offset + 2 * i + 1]!;
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${formatIpv4(bytes, offset + 12)}`;
  }
  // The first longest run of two or more zero groups becomes "::" (RFC 5952 §4.2).
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  let text = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      text += '::';
      i += bestLen - 1;
      continue;
    }
    if (i !== 0 && i !== bestStart + bestLen) text += ':';
    text += g[i]!.toString(16);
  }
  return text;
}

/** Canonical form of any IPv6 text (parse + format). */
export function canonicalIpv6(text: string): string {
  return formatIpv6(parseIpv6(text));
}

/**
 * The solicited-node multicast address of an IPv6 address, ff02::1:ffXX:XXXX with its low 24
 * bits (RFC 4291 §2.7.1): the link-scope group only holders of that address listen to.
 */
export function solicitedNodeMulticast(text: string): string {
  const a = parseIpv6(text);
  const group = parseIpv6('ff02::1:ff00:0');
  group.set(a.subarray(13, 16), 13);
  return formatIpv6(group);
}

/** `192.0.2.1` -> `::ffff:192.0.2.1` (RFC 4291 §2.5.5.2). */
/**
 * The link-local address with the interface identifier of `text` (fe80::/64 + its last 64
 * bits): what a BU's L flag asks the home agent to defend too (RFC 6275 §6.1.7, §10.3.1).
 */
export function linkLocalOf(text: string): string {
  const b = parseIpv6(text);
  b.fill(0, 0, 8);
  b[0] = 0xfe;
  b[1] = 0x80;
  return formatIpv6(b);
}

export function ipv4Mapped(v4text: string): string {
  parseIpv4(v4text);
  return `::ffff:${v4text}`;
}

/** `::ffff:192.0.2.1` (any spelling) -> `192.0.2.1`; undefined when not IPv4-mapped. */
export function unmapIpv4(v6text: string): string | undefined {
  let b: Uint8Array;
  try {
    b = parseIpv6(v6text);
  } catch {
    return undefined;
  }
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return undefined;
  if (b[10] !== 0xff || b[11] !== 0xff) return undefined;
  return formatIpv4(b, 12);
}

export interface Prefix {
  address: Uint8Array;
  length: number;
}

/** `addr/len` -> bytes (4 or 16) and prefix length; bits past the length are kept as given. */
export function parsePrefix(text: string): Prefix {
  const slash = text.indexOf('/');
  if (slash < 0) throw bad(text, 'missing "/length"');
  const addrText = text.slice(0, slash);
  const lenText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenText)) throw bad(text, 'bad prefix length');
  const length = Number(lenText);
  const address = isIpv4(addrText) ? parseIpv4(addrText) : parseIpv6(addrText);
  if (length > address.length * 8) throw bad(text, 'prefix length too long');
  return { address, length };
}

/**
 * True when the first `length` bits of `bytes` at `offset` are those of the prefix at
 * `prefix[prefixOffset..]`: the prefix match every layer uses (no allocation, for the data
 * path). False when `bytes` ends before the prefix's last bit.
 */
export function prefixMatches(
  prefix: Uint8Array,
  length: number,
  bytes: Uint8Array,
  offset = 0,
  prefixOffset = 0,
): boolean {
  const whole = length >> 3;
  const rem = length & 7;
  if (offset < 0 || offset + whole + (rem === 0 ? 0 : 1) > bytes.length) return false;
  for (let i = 0; i < whole; i++) if (prefix[prefixOffset + i] !== bytes[offset + i]) return false;
  if (rem === 0) return true;
  const mask = (0xff << (8 - rem)) & 0xff;
  return (((prefix[prefixOffset + whole] ?? 0) ^ (bytes[offset + whole] ?? 0)) & mask) === 0;
}

/** True when `addressBytes` (same family as the prefix) lies inside `prefix`. */
export function prefixContains(prefix: Prefix, addressBytes: Uint8Array, offset = 0): boolean {
  if (offset + prefix.address.length > addressBytes.length) return false;
  return prefixMatches(prefix.address, prefix.length, addressBytes, offset);
}

/** A copy of `address` with every bit after the first `length` cleared (the network part). */
export function maskPrefix(address: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(address.length);
  let bits = length;
  for (let i = 0; i < address.length && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    out[i] = (address[i] ?? 0) & mask;
  }
  return out;
}

/** Compares two 16-byte addresses in place (no allocation; data path). */
export function ipv6Equal(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < IPV6_ADDR_LEN; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}
