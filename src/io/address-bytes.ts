/**
 * Address text <-> the addon's 16-byte address slots (IPv4 in the first 4 bytes of a slot).
 * io/ may not import wire/ (STYLE.md §4), so the data path keeps this small copy; output is
 * RFC 5952 text for IPv6 and a dotted quad for IPv4.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { AddressFamily } from './types.js';

/** Bytes per address slot in every batch array. */
export const ADDR_SLOT_LEN = 16;

/** Writes `text` into out[offset, offset + 16). Throws TypeError on text of the wrong family. */
export function writeAddress(
  family: AddressFamily,
  text: string,
  out: Uint8Array,
  offset: number,
): void {
  out.fill(0, offset, offset + ADDR_SLOT_LEN);
  if (family === 4) {
    if (!isIPv4(text)) throw new TypeError(`not an IPv4 address: "${text}"`);
    const parts = text.split('.');
    for (let i = 0; i < 4; i++) out[offset + i] = Number(parts[i]);
    return;
  }
  if (!isIPv6(text)) throw new TypeError(`not an IPv6 address: "${text}"`);
  let body = text;
  const pct = body.indexOf('%');
  if (pct >= 0) body = body.slice(0, pct);
  const groups: number[] = [];
  // A trailing dotted quad (e.g. ::ffff:192.0.2.1) becomes two groups.
  const lastColon = body.lastIndexOf(':');
  const tail = body.slice(lastColon + 1);
  if (tail.includes('.')) {
    const q = tail.split('.').map(Number);
    body = `${body.slice(0, lastColon + 1)}${(((q[0] ?? 0) << 8) | (q[1] ?? 0)).toString(16)}:${(((q[2] ?? 0) << 8) | (q[3] ?? 0)).toString(16)}`;
  }
  const dbl = body.indexOf('::');
  const parse = (s: string): number[] =>
    s === '' ? [] : s.split(':').map((g) => Number.parseInt(g, 16));
  if (dbl >= 0) {
    const head = parse(body.slice(0, dbl));
    const rest = parse(body.slice(dbl + 2));
    groups.push(...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest);
  } else {
    groups.push(...parse(body));
  }
  for (let i = 0; i < 8; i++) {
    const g = groups[i] ?? 0;
    out[offset + 2 * i] = g >> 8;
    out[offset + 2 * i + 1] = g & 0xff;
  }
}

/** Parses `text` into a fresh 16-byte slot. */
export function addressBytes(family: AddressFamily, text: string): Uint8Array {
  const out = new Uint8Array(ADDR_SLOT_LEN);
  writeAddress(family, text, out, 0);
  return out;
}

/** Formats the slot at `offset` as text. */
export function readAddress(family: AddressFamily, bytes: Uint8Array, offset: number): string {
  if (family === 4) {
    return `${bytes[offset] ?? 0}.${bytes[offset + 1] ?? 0}.${bytes[offset + 2] ?? 0}.${bytes[offset + 3] ?? 0}`;
  }
  const g: number[] = [];
  for (let i = 0; i < 8; i++)
    g.push(((bytes[offset + 2 * i] ?? 0) << 8) | (bytes[offset + 2 * i + 1] ?? 0));
  // IPv4-mapped (::ffff:0:0/96) prints with a dotted quad tail (RFC 5952 §5).
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${readAddress(4, bytes, offset + 12)}`;
  }
  // Longest run of >= 2 zero groups, first on a tie (RFC 5952 §4.2).
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
  const hex = (a: number[]): string => a.map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

/** True when the slot at `offset` is all zero (the "unspecified / kernel's choice" marker). */
export function isZeroSlot(bytes: Uint8Array, offset: number): boolean {
  for (let i = 0; i < ADDR_SLOT_LEN; i++) if (bytes[offset + i] !== 0) return false;
  return true;
}

/**
 * The numeric zone of an IPv6 address text (`fe80::1%3` -> 3; RFC 4007 §11), 0 when there is
 * none. Only interface indexes are zones here; a name (`%eth0`) is a TypeError.
 */
export function addressZone(text: string): number {
  const pct = text.indexOf('%');
  if (pct < 0) return 0;
  const zone = text.slice(pct + 1);
  if (!/^[0-9]{1,10}$/.test(zone) || Number(zone) > 0xffffffff) {
    throw new TypeError(`zone of "${text}" must be an interface index`);
  }
  return Number(zone);
}

/** True for an IPv6 link-local unicast slot (fe80::/10): meaningful only with its zone. */
export function isLinkLocalSlot(bytes: Uint8Array, offset: number): boolean {
  return bytes[offset] === 0xfe && ((bytes[offset + 1] ?? 0) & 0xc0) === 0x80;
}
