/**
 * The home agent's extra listening ports ([listen] ports = [4191, 443]): for networks that let
 * only some ports out (a hotel that passes UDP 443 and not 4191). The daemon binds the first
 * port; each other one gets a kernel redirect to it (iptables / ip6tables nat PREROUTING
 * REDIRECT, one rule per family and port, comment "mip6 listen PORT", src/io/iptables.ts).
 * Connection tracking rewrites the answers back, so a member talking to port 443 sees every
 * answer come from 443; the data path is the same socket. A service of the HA host on one of
 * those UDP ports would no longer receive datagrams from outside.
 */
import { FirewallRule } from './iptables.js';

export interface ListenPortsOptions {
  /** The bound port. */
  port: number;
  /** Every port members may use (the bound one included). */
  ports: readonly number[];
  /** Families with a socket. */
  families: readonly (4 | 6)[];
}

export class KernelListenPorts {
  readonly #rules: FirewallRule[] = [];

  constructor(o: ListenPortsOptions) {
    for (const extra of o.ports) {
      if (extra === o.port) continue;
      for (const family of o.families) {
        this.#rules.push(
          new FirewallRule(
            family,
            'nat',
            'PREROUTING',
            ['-p', 'udp', '--dport', String(extra), '-j', 'REDIRECT', '--to-ports', String(o.port)],
            `mip6 listen ${extra}`,
          ),
        );
      }
    }
  }

  /** True when there is anything to redirect. */
  get needed(): boolean {
    return this.#rules.length > 0;
  }

  async start(): Promise<void> {
    for (const r of this.#rules) await r.install();
  }

  async stop(): Promise<void> {
    for (const r of this.#rules) await r.remove();
  }
}
