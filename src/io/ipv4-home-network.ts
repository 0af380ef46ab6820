/**
 * The home agent's IPv4 home network (RFC 5555 IPv4 home addresses, [home] ipv4_pool): the
 * pool routed into the TUN with the HA's own address (the pool's first) on it, IPv4
 * forwarding on, and optionally NAT44 out of an uplink ([home] ipv4_masquerade): one iptables
 * MASQUERADE rule with the comment "mip6 <tun> ipv4 home" (src/io/iptables.ts: a stale copy of
 * a crashed run is deleted at start; removed at exit).
 */
import { writeFile } from 'node:fs/promises';
import { addAddress } from './iproute.js';
import { FirewallRule } from './iptables.js';

export interface Ipv4HomeNetworkOptions {
  tunName: string;
  /** The pool, network/length ("10.99.0.0/24"). */
  pool: string;
  /** The HA's own address in it (the first). */
  gateway: string;
  /** Uplink to masquerade out of; undefined = route only. */
  masquerade?: string | undefined;
}

export class KernelIpv4HomeNetwork {
  readonly #o: Ipv4HomeNetworkOptions;
  readonly #nat: FirewallRule | undefined;

  constructor(opts: Ipv4HomeNetworkOptions) {
    this.#o = opts;
    this.#nat =
      opts.masquerade === undefined
        ? undefined
        : new FirewallRule(
            4,
            'nat',
            'POSTROUTING',
            ['-s', opts.pool, '-o', opts.masquerade, '-j', 'MASQUERADE'],
            `mip6 ${opts.tunName} ipv4 home`,
          );
  }

  async start(): Promise<void> {
    const o = this.#o;
    const len = o.pool.slice(o.pool.indexOf('/') + 1);
    await addAddress(o.tunName, `${o.gateway}/${len}`);
    await writeFile('/proc/sys/net/ipv4/ip_forward', '1');
    await this.#nat?.install();
  }

  /** Removes the NAT rule (best effort; the address goes with the TUN). */
  async stop(): Promise<void> {
    await this.#nat?.remove();
  }
}
