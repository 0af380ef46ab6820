/**
 * The home agent's IPv4 home network (RFC 5555 IPv4 home addresses, [home] ipv4_pool): the
 * pool routed into the TUN with the HA's own address (the pool's first) on it, IPv4
 * forwarding on, and optionally NAT44 out of an uplink ([home] ipv4_masquerade): one iptables
 * MASQUERADE rule with the comment "mip6 <tun> ipv4 home" (src/io/iptables.ts: a stale copy of
 * a crashed run is deleted at start; removed at exit). IPv4 forwarding goes back to what it was
 * at exit when start() changed it (not after a crash, and not when the daemon gave up root:
 * /proc/sys needs it; then it stays on).
 */
import { readFile, writeFile } from 'node:fs/promises';
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

export const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';

/**
 * Turns IPv4 forwarding on: the previous value when this changed it (to restore at exit),
 * undefined when it was on already.
 */
export async function enableIpForward(path = IP_FORWARD): Promise<string | undefined> {
  const before = (await readFile(path, 'utf8').catch(() => '')).trim();
  if (before === '1') return undefined;
  await writeFile(path, '1');
  return before === '' ? '0' : before;
}

/** Puts back what enableIpForward() found (best effort: never throws). */
export async function restoreIpForward(
  previous: string | undefined,
  path = IP_FORWARD,
): Promise<void> {
  if (previous === undefined) return;
  await writeFile(path, previous).catch(() => undefined);
}

export class KernelIpv4HomeNetwork {
  readonly #o: Ipv4HomeNetworkOptions;
  readonly #nat: FirewallRule | undefined;
  /** ip_forward before start() turned it on, undefined when it was on already. */
  #forwardBefore: string | undefined;

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
    this.#forwardBefore = await enableIpForward();
    await this.#nat?.install();
  }

  /** Removes the NAT rule, forwarding as it was (best effort; the address goes with the TUN). */
  async stop(): Promise<void> {
    await this.#nat?.remove();
    await restoreIpForward(this.#forwardBefore);
    this.#forwardBefore = undefined;
  }
}
