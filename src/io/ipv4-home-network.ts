/**
 * The home agent's IPv4 home network (RFC 5555 IPv4 home addresses, [home] ipv4_pool): the
 * pool routed into the TUN with the HA's own address (the pool's first) on it, IPv4
 * forwarding on, and optionally NAT44 out of an uplink ([home] ipv4_masquerade) with one
 * iptables MASQUERADE rule that carries a comment naming the TUN.
 *
 * start() first deletes a rule a crashed earlier run left (same pool, interface and comment;
 * bounded), then adds it; stop() deletes it. A daemon that dropped its privileges (`--user`)
 * cannot delete it at exit: the next start does. Only the rule with our comment is touched.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { IoError } from '../util/errors.js';
import { addAddress } from './iproute.js';

export interface Ipv4HomeNetworkOptions {
  tunName: string;
  /** The pool, network/length ("10.99.0.0/24"). */
  pool: string;
  /** The HA's own address in it (the first). */
  gateway: string;
  /** Uplink to masquerade out of; undefined = route only. */
  masquerade?: string | undefined;
}

/** Most stale copies of the rule removed at start (a crash loop leaves at most one each). */
const STALE_RULES_MAX = 8;

function iptables(args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('iptables', ['-w', '5', ...args], { timeout: 10_000 }, (err, _o, stderr) => {
      if (err === null) resolve();
      else {
        const e = err as NodeJS.ErrnoException;
        const why = e.code === 'ENOENT' ? 'iptables is not installed' : stderr.trim() || e.message;
        reject(new IoError('ERR_IPTABLES', `\`iptables ${args.join(' ')}\` failed: ${why}`));
      }
    });
  });
}

export class KernelIpv4HomeNetwork {
  readonly #o: Ipv4HomeNetworkOptions;
  #masquerading = false;

  constructor(opts: Ipv4HomeNetworkOptions) {
    this.#o = opts;
  }

  #rule(): string[] {
    const o = this.#o;
    return [
      '-t',
      'nat',
      'POSTROUTING',
      '-s',
      o.pool,
      '-o',
      o.masquerade ?? '',
      '-m',
      'comment',
      '--comment',
      `mip6 ${o.tunName} ipv4 home`,
      '-j',
      'MASQUERADE',
    ];
  }

  async start(): Promise<void> {
    const o = this.#o;
    const len = o.pool.slice(o.pool.indexOf('/') + 1);
    await addAddress(o.tunName, `${o.gateway}/${len}`);
    await writeFile('/proc/sys/net/ipv4/ip_forward', '1');
    if (o.masquerade === undefined) return;
    const [t, nat, chain, ...rest] = this.#rule();
    for (let i = 0; i < STALE_RULES_MAX; i++) {
      try {
        await iptables([t!, nat!, '-D', chain!, ...rest]);
      } catch {
        break; // none (left)
      }
    }
    await iptables([t!, nat!, '-A', chain!, ...rest]);
    this.#masquerading = true;
  }

  /** Removes the NAT rule (best effort; the address goes with the TUN). */
  async stop(): Promise<void> {
    if (!this.#masquerading) return;
    this.#masquerading = false;
    const [t, nat, chain, ...rest] = this.#rule();
    await iptables([t!, nat!, '-D', chain!, ...rest]).catch(() => undefined);
  }
}
