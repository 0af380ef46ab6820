/**
 * Address text <-> the addon's 16-byte address slots (IPv4 in the first 4 bytes of a slot),
 * through wire/address.ts's codec: output is RFC 5952 text for IPv6 and a dotted quad for IPv4.
 * Text is checked with node:net first, so a wrong family or a bad address is a TypeError (what
 * socket calls throw), and an IPv6 zone (`%3`) is accepted and left out of the slot.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../wire/address.js';
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
    out.set(parseIpv4(text), offset);
    return;
  }
  if (!isIPv6(text)) throw new TypeError(`not an IPv6 address: "${text}"`);
  const pct = text.indexOf('%');
  out.set(parseIpv6(pct >= 0 ? text.slice(0, pct) : text), offset);
}

/** Parses `text` into a fresh 16-byte slot. */
export function addressBytes(family: AddressFamily, text: string): Uint8Array {
  const out = new Uint8Array(ADDR_SLOT_LEN);
  writeAddress(family, text, out, 0);
  return out;
}

/** Formats the slot at `offset` as text. */
export function readAddress(family: AddressFamily, bytes: Uint8Array, offset: number): string {
  return family === 4 ? formatIpv4(bytes, offset) : formatIpv6(bytes, offset);
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
