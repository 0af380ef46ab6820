/**
 * Home agent: IPv4 home addresses for members (RFC 5555 §3.1.1 IPv4 Home Address option in the
 * BU, §3.2.1 IPv4 Address Acknowledgement option in the BA; status values §3.2.1). Sans-IO.
 *
 * The HA's IPv4 home network is `[home] ipv4_pool` (e.g. 10.99.0.0/24), routed into its TUN.
 * Its first address is the HA's own (the gateway); the network and broadcast addresses are
 * never given out. A member gets an address in two ways, and no other:
 *   - dynamic (the option carries 0.0.0.0): the address this home address held before (its
 *     lease, remembered after deregistration, so a refresh, a move and a return from the home
 *     link keep it), else the first pool address nobody holds or held, else the oldest lease
 *     nobody is using; none left: 132;
 *   - a given address: granted when it is this home address's own (active or its lease) or the
 *     member's certificate allows it (the IPv4-mapped ::ffff:a.b.c.d inside one of its
 *     prefixes) and it lies in the pool and nobody else holds it; otherwise 130 (incorrect IPv4
 *     home address: another member's, or one it was never given), 131 for an address that can
 *     never be a unicast home address.
 *   P (a prefix for a mobile router) is not offered: 133. No pool configured: 129.
 *
 * Authority: the caller runs this only for a BU that arrived as SIGNALING on the member's own
 * channel and passed processHomeBindingUpdate (certificate, binding owner, sequence): the
 * binding key it passes is a home address that member owns. The address is bound to that
 * binding; `release` (binding deleted or expired) makes it inactive, the lease stays.
 *
 * Data path: `bindingKeyAt(buf, off)` maps the 4 address bytes at `off` (a packet's source or
 * destination) to the binding key with one integer build and one Map lookup, no text.
 */
import { formatIpv4, parseIpv4, parsePrefix, prefixContains } from '../wire/address.js';
import { IPV4_ADDRESS_ACK_STATUS_NAMES, statusText } from '../wire/status-names.js';

/** IPv4 Address Acknowledgement status values (RFC 5555 §3.2.1). */
export const IPV4_ACK_STATUS = {
  SUCCESS: 0,
  FAILURE: 128,
  ADMINISTRATIVELY_PROHIBITED: 129,
  INCORRECT_HOME_ADDRESS: 130,
  INVALID_ADDRESS: 131,
  DYNAMIC_NOT_AVAILABLE: 132,
  PREFIX_UNAUTHORIZED: 133,
} as const;

/** The RFC 5555 name of an IPv4 Address Acknowledgement status (the table `mip6 decode` uses). */
export function ipv4AckStatusName(status: number): string {
  return statusText(IPV4_ADDRESS_ACK_STATUS_NAMES, status);
}

/** What a BU's IPv4 Home Address option asks for (wire/types.ts ipv4HomeAddress). */
export interface Ipv4HomeAddressRequest {
  address: string;
  prefixLength: number;
  requestPrefix: boolean;
}

/** What goes into the BA's IPv4 Address Acknowledgement option. */
export interface Ipv4HomeAddressAnswer {
  status: number;
  /** Granted address (success), else the requested one. */
  address: string;
  /** 32 on success (one address), 0 on failure. */
  prefixLength: number;
}

/** A single IPv4 address as the 32-bit number the data path keys on. */
function u32(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}

function text(n: number): string {
  return formatIpv4(new Uint8Array([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]));
}

export class Ipv4HomeAddresses {
  /** Network number and size of the pool; undefined when no pool is configured. */
  readonly #network: number | undefined;
  readonly #size: number;
  /** Active assignments: address -> binding key. */
  readonly #active = new Map<number, string>();
  /** binding key -> its active address. */
  readonly #byKey = new Map<string, number>();
  /** Leases: binding key -> address it was given (kept after release), in grant order. */
  readonly #leases = new Map<string, number>();
  /** Who leased an address: address -> binding key. */
  readonly #leasedBy = new Map<number, string>();

  /** `pool`: "10.99.0.0/24" (length 8..30), or undefined for no IPv4 home addresses. */
  constructor(pool: string | undefined) {
    if (pool === undefined) {
      this.#network = undefined;
      this.#size = 0;
      return;
    }
    const p = parsePrefix(pool);
    if (p.address.length !== 4 || p.length < 8 || p.length > 30) {
      throw new RangeError(`IPv4 pool must be an IPv4 prefix /8../30, got ${pool}`);
    }
    this.#network = u32(p.address, 0);
    this.#size = 2 ** (32 - p.length);
  }

  /** The HA's own address in the pool (its first), undefined without a pool. */
  get gateway(): string | undefined {
    return this.#network === undefined ? undefined : text(this.#network + 1);
  }

  /** Addresses in use now. */
  get activeCount(): number {
    return this.#active.size;
  }

  #inPool(n: number): boolean {
    const net = this.#network;
    return net !== undefined && n >= net && n < net + this.#size;
  }

  /** A pool address a member may hold: not the network, the HA's own or the broadcast. */
  #assignable(n: number): boolean {
    const net = this.#network;
    return net !== undefined && n > net + 1 && n < net + this.#size - 1;
  }

  /**
   * The IPv4 home address for the binding `key` (a home address its member owns), asked for by
   * `req`; `certificateAllows(ipv4)` says whether the member's certificate holds that IPv4
   * address. Grants (and binds) or refuses; never changes another binding's address.
   */
  request(
    key: string,
    req: Ipv4HomeAddressRequest,
    certificateAllows: (ipv4: string) => boolean,
  ): Ipv4HomeAddressAnswer {
    const fail = (status: number): Ipv4HomeAddressAnswer => ({
      status,
      address: req.address,
      prefixLength: 0,
    });
    if (req.requestPrefix) return fail(IPV4_ACK_STATUS.PREFIX_UNAUTHORIZED);
    if (this.#network === undefined) return fail(IPV4_ACK_STATUS.ADMINISTRATIVELY_PROHIBITED);
    let wanted: number;
    try {
      wanted = u32(parseIpv4(req.address), 0);
    } catch {
      return fail(IPV4_ACK_STATUS.INVALID_ADDRESS);
    }
    if (wanted === 0) {
      const n = this.#byKey.get(key) ?? this.#dynamic(key);
      if (n === undefined) return fail(IPV4_ACK_STATUS.DYNAMIC_NOT_AVAILABLE);
      return this.#grant(key, n);
    }
    const first = wanted >>> 24;
    if (first === 0 || first === 127 || first >= 224) return fail(IPV4_ACK_STATUS.INVALID_ADDRESS);
    if (!this.#inPool(wanted)) return fail(IPV4_ACK_STATUS.INCORRECT_HOME_ADDRESS);
    if (!this.#assignable(wanted)) return fail(IPV4_ACK_STATUS.INVALID_ADDRESS);
    const holder = this.#active.get(wanted);
    if (holder !== undefined && holder !== key) return fail(IPV4_ACK_STATUS.INCORRECT_HOME_ADDRESS);
    const ours = holder === key || this.#leases.get(key) === wanted;
    if (!ours) {
      if (!certificateAllows(req.address)) return fail(IPV4_ACK_STATUS.INCORRECT_HOME_ADDRESS);
      const leased = this.#leasedBy.get(wanted);
      if (leased !== undefined && leased !== key) this.#forgetLease(leased);
    }
    return this.#grant(key, wanted);
  }

  #dynamic(key: string): number | undefined {
    const lease = this.#leases.get(key);
    if (lease !== undefined && !this.#active.has(lease)) return lease;
    const net = this.#network!;
    for (let n = net + 2; n < net + this.#size - 1; n++) {
      if (!this.#active.has(n) && !this.#leasedBy.has(n)) return n;
    }
    // Every address is or was somebody's: the oldest lease nobody is using now.
    for (const [owner, n] of this.#leases) {
      if (!this.#active.has(n)) {
        this.#forgetLease(owner);
        return n;
      }
    }
    return undefined;
  }

  #forgetLease(key: string): void {
    const n = this.#leases.get(key);
    if (n === undefined) return;
    this.#leases.delete(key);
    if (this.#leasedBy.get(n) === key) this.#leasedBy.delete(n);
  }

  #grant(key: string, n: number): Ipv4HomeAddressAnswer {
    const old = this.#byKey.get(key);
    if (old !== undefined && old !== n) this.#active.delete(old);
    const oldLease = this.#leases.get(key);
    if (oldLease !== undefined && oldLease !== n) this.#forgetLease(key);
    this.#active.set(n, key);
    this.#byKey.set(key, n);
    this.#leases.delete(key); // re-insert: the newest lease goes last
    this.#leases.set(key, n);
    this.#leasedBy.set(n, key);
    return { status: IPV4_ACK_STATUS.SUCCESS, address: text(n), prefixLength: 32 };
  }

  /** The binding `key` is gone (or stopped asking): its address is free, its lease stays. */
  release(key: string): void {
    const n = this.#byKey.get(key);
    if (n === undefined) return;
    this.#byKey.delete(key);
    if (this.#active.get(n) === key) this.#active.delete(n);
  }

  /** The active IPv4 home address of binding `key`, as text. */
  addressOf(key: string): string | undefined {
    const n = this.#byKey.get(key);
    return n === undefined ? undefined : text(n);
  }

  /** Data path: the binding key holding the IPv4 address at buf[off..off+4), if any. */
  bindingKeyAt(buf: Uint8Array, off: number): string | undefined {
    return this.#active.get(u32(buf, off));
  }

  /** True when the pool contains `ipv4` (text); false without a pool. */
  contains(ipv4: string): boolean {
    if (this.#network === undefined) return false;
    try {
      return this.#inPool(u32(parseIpv4(ipv4), 0));
    } catch {
      return false;
    }
  }
}

/** True when an IPv6 certificate prefix holds the IPv4-mapped form of `ipv4` (::ffff:a.b.c.d). */
export function certificateAllowsIpv4(
  prefixes: readonly { address: Uint8Array; prefixLength: number }[],
  ipv4: string,
): boolean {
  let v4: Uint8Array;
  try {
    v4 = parseIpv4(ipv4);
  } catch {
    return false;
  }
  const mapped = new Uint8Array(16);
  mapped[10] = 0xff;
  mapped[11] = 0xff;
  mapped.set(v4, 12);
  // Only prefixes inside ::ffff:0:0/96 count: a certificate for a whole IPv6 range (::/0 for a
  // test member, say) must not hand out IPv4 addresses by accident.
  return prefixes.some(
    (p) =>
      p.prefixLength >= 96 &&
      prefixContains({ address: p.address, length: 96 }, mapped, 0) &&
      prefixContains({ address: p.address, length: p.prefixLength }, mapped, 0),
  );
}
