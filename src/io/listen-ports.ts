/**
 * The home agent's extra listening ports ([listen] ports = [4191, 443]): for networks that let
 * only some ports out (a hotel that passes UDP 443 and not 4191). The daemon binds the first
 * port; each other one gets a kernel redirect to it (iptables / ip6tables nat PREROUTING
 * REDIRECT, one rule per family and port, comment "mip6 listen PORT", src/io/iptables.ts).
 * Connection tracking rewrites the answers back, so a member talking to port 443 sees every
 * answer come from 443; the data path is the same socket. A service of the HA host on one of
 * those UDP ports would no longer receive datagrams from outside.
 *
 * Only datagrams addressed to the HA host itself and not coming out of its TUN are redirected
 * (`-m addrtype --dst-type LOCAL ! -i <tun>`): members' decapsulated UDP/443 (QUIC) leaves the
 * TUN and home-link traffic forwarded through the HA is for other hosts; both pass untouched.
 * The rule is deleted by the same specification; a copy of the older, unmatched rule (before
 * this selector) is deleted at start too.
 */
import { FirewallRule } from './iptables.js';

export interface ListenPortsOptions {
  /** The HA's TUN: what comes out of it (members' inner packets) is never redirected. */
  tunName: string;
  /** The bound port. */
  port: number;
  /** Every port members may use (the bound one included). */
  ports: readonly number[];
  /** Families with a socket. */
  families: readonly (4 | 6)[];
}

/** The match and target of one redirect (iptables arguments, without the comment). */
export function listenPortSpec(tunName: string, extra: number, port: number): string[] {
  return [
    ...['-p', 'udp', '--dport', String(extra)],
    ...['-m', 'addrtype', '--dst-type', 'LOCAL', '!', '-i', tunName],
    ...['-j', 'REDIRECT', '--to-ports', String(port)],
  ];
}

export class KernelListenPorts {
  readonly #rules: FirewallRule[] = [];
  /** The unmatched rules of earlier versions: deleted at start when a crash left them. */
  readonly #legacy: FirewallRule[] = [];

  constructor(o: ListenPortsOptions) {
    if (!/^[A-Za-z0-9_.%-]{1,15}$/.test(o.tunName)) {
      throw new RangeError(`not an interface name: ${o.tunName}`);
    }
    for (const extra of o.ports) {
      if (extra === o.port) continue;
      for (const family of o.families) {
        const comment = `mip6 listen ${extra}`;
        const spec = listenPortSpec(o.tunName, extra, o.port);
        this.#rules.push(new FirewallRule(family, 'nat', 'PREROUTING', spec, comment));
        const old = ['-p', 'udp', '--dport', String(extra), '-j', 'REDIRECT'];
        old.push('--to-ports', String(o.port));
        this.#legacy.push(new FirewallRule(family, 'nat', 'PREROUTING', old, comment));
      }
    }
  }

  /** The rules (family, iptables arguments), for tests. */
  get rules(): readonly FirewallRule[] {
    return this.#rules;
  }

  /** True when there is anything to redirect. */
  get needed(): boolean {
    return this.#rules.length > 0;
  }

  async start(): Promise<void> {
    for (const r of this.#legacy) await r.removeStale();
    for (const r of this.#rules) await r.install();
  }

  async stop(): Promise<void> {
    for (const r of this.#rules) await r.remove();
  }
}
