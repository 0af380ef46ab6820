/**
 * A care-of locator: the underlay (address, UDP port) at which a peer observes a node
 * (DESIGN.md §3). The address is as the underlay sees it: a dotted quad for IPv4, RFC 5952 text
 * for IPv6, with its zone when link-local (`fe80::1%3`, RFC 4007 §11). In Mobility Header fields the same address appears as IPv6 (IPv4-mapped for IPv4).
 */
import { ipv4Mapped, isIpv4 } from '../wire/address.js';

/**
 * Underlay address (dotted quad or IPv6 text) and UDP port. `local`, when known, is this
 * host's own address the peer sent to (the datagram's destination): what we send to the peer
 * leaves from it, since a NAT or a connected socket on the peer's side takes answers only
 * from the address it contacted. It is not part of the locator's identity (locatorEqual).
 */
export interface Locator {
  address: string;
  port: number;
  local?: string | undefined;
}

/** True when both locators name the same address and port. */
export function locatorEqual(a: Locator, b: Locator): boolean {
  return a.address === b.address && a.port === b.port;
}

/**
 * `192.0.2.1:4191` or `[2001:db8::1]:4191`: for logs, and what path validation and path MTU
 * state remember a locator by. Built by join, which makes one flat string: concatenation
 * (`+`, a template) makes a rope of pieces that V8 keeps beside its flattened copy once the
 * text is compared or hashed, twice the bytes of each one a home agent keeps per member.
 */
export function formatLocator(l: Locator): string {
  return isIpv4(l.address)
    ? [l.address, l.port].join(':')
    : ['[', l.address, ']:', l.port].join('');
}

/**
 * The locator's address as a Mobility Header CoA: IPv4 becomes IPv4-mapped IPv6; the zone of
 * a link-local locator (`fe80::1%3`, the interface it was seen on) is not part of an address.
 */
export function locatorCareOfAddress(l: Locator): string {
  if (isIpv4(l.address)) return ipv4Mapped(l.address);
  const pct = l.address.indexOf('%');
  return pct < 0 ? l.address : l.address.slice(0, pct);
}
