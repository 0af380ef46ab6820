/**
 * The mobile node's routes into the tunnel ([tun] routes), with the underlay escape that keeps
 * the tunnel's own datagrams out of it, as wg-quick does for `AllowedIPs = 0.0.0.0/0, ::/0`:
 *
 *   - the daemon's UDP sockets carry a firewall mark (SO_MARK = `mark`, src/io/udp.ts);
 *   - every configured route goes into a routing table of its own (number = `mark`), through
 *     the TUN;
 *   - per family with routes, two policy rules:
 *       pref RULE_PRIORITY_SUPPRESS  lookup main suppress_prefixlength 0
 *           main's routes win except its default route (the visited LAN, a longer prefix);
 *       pref RULE_PRIORITY_TUNNEL    not fwmark M lookup M
 *           everything else that is not the tunnel's own traffic goes to the TUN's table;
 *     a marked datagram skips the second rule and falls through to main's default route, i.e.
 *     out of the visited network, after every move (the route is looked up per datagram).
 *   - care-of discovery asks the kernel for the route of a *marked* packet to the home agent
 *     (src/io/care-of.ts, RTA_MARK), so with a default route through the TUN it still sees
 *     the visited network's interface and address.
 *
 * install() first removes what a crashed earlier run left (the same rules, the table's
 * routes), then adds the routes and the rules; remove() takes them away again (exit). suspend()
 * / resume() take the rules away while the MN is on its home link (no tunnel there) and put
 * them back when it leaves. openPortal() / closePortal(): the portal login window ([movement]
 * portal_login, opt-in and time-limited, decided by the mobile node): DNS, HTTP and HTTPS go
 * by the visited network's routes (priority 4189), so a browser can log in.
 *
 * Only the home prefix is routed into the TUN without this (the TUN's own address route, as
 * before). Everything runs through `ip -batch` (never a shell); rules are deleted only by their
 * full selector (priority, mark, table), so another program's rules are never touched.
 */
import { execFile } from 'node:child_process';
import { IoError } from '../util/errors.js';

/** Default firewall mark and routing table: the dsmipv6 UDP port, 4191 (0x105f). */
export const DEFAULT_TUNNEL_MARK = 4191;
/** Priority of the rule that lets main's non-default routes win (evaluated first). */
export const RULE_PRIORITY_SUPPRESS = 4190;
/** Priority of the rule that sends unmarked traffic to the tunnel's table. */
export const RULE_PRIORITY_TUNNEL = 4191;
/** Priority of the captive-portal rules (DNS, HTTP, HTTPS by the visited network's routes). */
export const RULE_PRIORITY_PORTAL = 4189;

/** What a captive portal login needs: DNS, HTTP and HTTPS (protocol, destination port). */
export const PORTAL_SERVICES: readonly (readonly ['udp' | 'tcp', number])[] = [
  ['udp', 53],
  ['tcp', 53],
  ['tcp', 80],
  ['tcp', 443],
];

/** The lines that add (or delete) the captive-portal rules of one family. */
export function portalRuleLines(verb: 'add' | 'del'): string[] {
  return PORTAL_SERVICES.map(
    ([proto, port]) =>
      `rule ${verb} pref ${RULE_PRIORITY_PORTAL} ipproto ${proto} dport ${port} lookup main`,
  );
}

export interface TunnelRoutesOptions {
  tunName: string;
  /** Prefixes routed into the TUN, network/length text, either family. */
  routes: readonly string[];
  /** Firewall mark of the daemon's sockets, also the routing table's number (1..2^32-1, not 253-255). */
  mark: number;
}

/** Runs `ip -<family> [-force] -batch -` with these lines; rejects with IoError ERR_IPROUTE. */
export type IpBatchRunner = (family: 4 | 6, lines: string[], force: boolean) => Promise<void>;

export const ipBatch: IpBatchRunner = (family, lines, force) =>
  new Promise((resolve, reject) => {
    const args = [`-${family}`, ...(force ? ['-force'] : []), '-batch', '-'];
    const child = execFile('ip', args, { timeout: 10_000 }, (err, _out, stderr) => {
      if (err === null || force) {
        // -force runs every line; lines with nothing to undo fail by design.
        if (err !== null && (err as NodeJS.ErrnoException).code === 'ENOENT') {
          reject(
            new IoError('ERR_IPROUTE', 'iproute2 is not installed (apt-get install iproute2)'),
          );
          return;
        }
        resolve();
        return;
      }
      let why = stderr.trim().split('\n')[0] ?? err.message;
      if (/Operation not permitted/i.test(why)) why += ' (needs root or CAP_NET_ADMIN)';
      reject(new IoError('ERR_IPROUTE', `\`ip ${args.join(' ')}\` failed: ${why}`));
    });
    child.stdin?.end(lines.join('\n') + '\n');
  });

function familyOf(prefix: string): 4 | 6 {
  return prefix.includes(':') ? 6 : 4;
}

/** The lines that add (or delete) the two policy rules of one family. */
export function ruleLines(verb: 'add' | 'del', mark: number): string[] {
  return [
    `rule ${verb} pref ${RULE_PRIORITY_SUPPRESS} lookup main suppress_prefixlength 0`,
    `rule ${verb} pref ${RULE_PRIORITY_TUNNEL} not fwmark ${mark} lookup ${mark}`,
  ];
}

export class TunnelRoutes {
  readonly #o: TunnelRoutesOptions;
  readonly #run: IpBatchRunner;
  #installed = false;
  #suspended = false;
  #portalOpen = false;

  constructor(opts: TunnelRoutesOptions, run: IpBatchRunner = ipBatch) {
    const m = opts.mark;
    // The mark is also the table's number: never the kernel's own (253-255: `route flush
    // table 254` would empty the main table).
    if (!Number.isInteger(m) || m < 1 || m > 0xffffffff || (m >= 253 && m <= 255)) {
      throw new RangeError(`mark must be 1..4294967295 and not 253-255, got ${m}`);
    }
    this.#o = opts;
    this.#run = run;
  }

  /** The families that have routes into the tunnel. */
  get families(): (4 | 6)[] {
    const f = new Set(this.#o.routes.map(familyOf));
    return ([4, 6] as const).filter((x) => f.has(x));
  }

  get mark(): number {
    return this.#o.mark;
  }

  /** Removes what an earlier run of the same mark left (a crash): both families, always. */
  async cleanStale(): Promise<void> {
    const m = this.#o.mark;
    for (const family of [4, 6] as const) {
      await this.#run(
        family,
        [...ruleLines('del', m), ...portalRuleLines('del'), `route flush table ${m}`],
        true,
      );
    }
  }

  /** Stale state away, then the routes into the table and the rules. */
  async install(): Promise<void> {
    await this.cleanStale();
    const m = this.#o.mark;
    for (const family of this.families) {
      const routes = this.#o.routes.filter((r) => familyOf(r) === family);
      await this.#run(
        family,
        routes.map((r) => `route replace ${r} dev ${this.#o.tunName} table ${m}`),
        false,
      );
    }
    this.#installed = true;
    await this.#addRules();
  }

  async #addRules(): Promise<void> {
    for (const family of this.families) {
      try {
        await this.#run(family, ruleLines('add', this.#o.mark), false);
      } catch (err) {
        await this.cleanStale();
        this.#installed = false;
        throw err;
      }
    }
  }

  /**
   * The portal login window (opt-in, time-limited; the mobile node decides): DNS, HTTP and
   * HTTPS use the visited network's routes until `closePortal()`, so a browser can log in.
   */
  async openPortal(): Promise<void> {
    if (!this.#installed || this.#suspended || this.#portalOpen) return;
    this.#portalOpen = true;
    for (const family of this.families) await this.#run(family, portalRuleLines('add'), true);
  }

  async closePortal(): Promise<void> {
    if (!this.#portalOpen) return;
    this.#portalOpen = false;
    for (const family of this.families) await this.#run(family, portalRuleLines('del'), true);
  }

  /** At home: the rules away (the table stays), so traffic leaves through the home link. */
  async suspend(): Promise<void> {
    if (!this.#installed || this.#suspended) return;
    this.#suspended = true;
    for (const family of this.families) {
      await this.#run(family, ruleLines('del', this.#o.mark), true);
    }
  }

  /** Away again: the rules back. */
  async resume(): Promise<void> {
    if (!this.#installed || !this.#suspended) return;
    this.#suspended = false;
    await this.#addRules();
  }

  /** Exit: rules and table routes away (best effort, never throws for what is already gone). */
  async remove(): Promise<void> {
    this.#installed = false;
    this.#suspended = false;
    this.#portalOpen = false;
    await this.cleanStale();
  }
}
