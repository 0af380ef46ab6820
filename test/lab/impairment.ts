/**
 * Opt-in underlay impairment for the netns lab (the kernel here has no sch_netem): starts
 * test/lab/impair.ts in the router namespace and routes the router's forwarded traffic through
 * its TUN. Nothing changes in a lab that never calls startImpairment().
 *
 *   const imp = await startImpairment(lab, { seed: 7, rules: [{ name: 'all', src: '0.0.0.0/0',
 *     delayMs: 10 }, { name: 'all6', src: '::/0', delayMs: 10 }] });
 *   t.teardown(() => imp.stop());
 *   ...
 *   const s = await imp.stats();   // s.rules.all.lost, .duplicated, .reordered, ...
 *
 * Routing in the router namespace while the element runs:
 *   - `ip rule iif VETH lookup 77` (IPv4 and IPv6) for every router veth, and table 77 holds
 *     `default dev TUN`: each forwarded packet goes to the element first. Local delivery (the
 *     local table, priority 0) is untouched. Packets the element writes back come in with
 *     iif = TUN, match no rule and use the main table.
 *   - rp_filter off and accept_local on the TUN: a NATed packet comes back with the router's
 *     own public address as its source.
 *   - NAT44 of the hotel network: each packet crosses conntrack twice. The second pass (iif TUN)
 *     is NOTRACK (raw table); the source NAT happens on the way INTO the TUN (SNAT -o TUN, ahead
 *     of the lab's MASQUERADE, which cannot pick an address on the address-less TUN), and the
 *     reply's de-NAT happens at PREROUTING of its first pass, before it is routed into the TUN.
 *     The lab's "nothing unsolicited into the hotel" rule is applied on the way into the TUN
 *     (-o TUN -d hotel net, not ESTABLISHED/RELATED: drop), and the untracked second pass out
 *     to the hotel is accepted.
 * stop() removes the rules first (traffic flows directly again), then ends the process and
 * returns its final counters. lab.destroy() removes everything anyway (it all lives in the
 * router namespace, and the process is a tracked lab child).
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { LAB_ADDR, type Lab } from './lab.js';
import type { ImpairmentConfig, ImpairmentStats } from './impair.js';

export type { ImpairmentConfig, ImpairmentRule, ImpairmentStats, RuleCounters } from './impair.js';

export const IMPAIR_SCRIPT = fileURLToPath(new URL('./impair.ts', import.meta.url));
/** Every veth of the lab's router. */
export const ROUTER_LINKS = ['ha', 'lte', 'hotel', 'v6only', 'cn'] as const;
export const IMPAIR_TUN = 'mip6imp';
/** Routing table and rule priority used for the detour (any free number). */
const TABLE = '77';
const PRIORITY = '77';
const HOTEL_NET = '192.0.2.0/24';

export interface ImpairmentOptions {
  /** Router links whose incoming traffic is impaired (default: all of ROUTER_LINKS). */
  links?: readonly string[];
  /** Longest wait for the element to start, ms (default 30 000: tsx start-up on a busy box). */
  startTimeoutMs?: number;
}

type Line = Record<string, unknown> & { event?: string; id?: number };

/** A running impairment element in a lab's router. */
export class Impairment {
  private readonly lines: Line[] = [];
  private readonly waiters = new Set<() => void>();
  private nextId = 1;
  private stderrText = '';
  private exited = false;
  private undo: (() => Promise<unknown>)[] = [];
  private stopping: Promise<ImpairmentStats> | undefined;

  private readonly lab: Lab;
  readonly child: ChildProcess;

  private constructor(lab: Lab, child: ChildProcess) {
    this.lab = lab;
    this.child = child;
    const out = child.stdout;
    if (out) {
      createInterface({ input: out, crlfDelay: Infinity }).on('line', (l) => {
        try {
          this.lines.push(JSON.parse(l) as Line);
        } catch {
          this.stderrText += `${l}\n`;
        }
        for (const w of this.waiters) w();
      });
    }
    child.stderr?.on('data', (d: Buffer) => {
      this.stderrText = (this.stderrText + d.toString()).slice(-4096);
    });
    child.stdin?.on('error', () => undefined);
    child.once('exit', () => {
      this.exited = true;
      for (const w of this.waiters) w();
    });
  }

  /** Starts the element and installs the routing around it; on any failure undoes it all. */
  static async start(
    lab: Lab,
    config: ImpairmentConfig,
    opts: ImpairmentOptions = {},
  ): Promise<Impairment> {
    const child = lab.spawn(
      'router',
      process.execPath,
      [
        '--import',
        import.meta.resolve('tsx'),
        IMPAIR_SCRIPT,
        '--tun',
        IMPAIR_TUN,
        '--config',
        JSON.stringify(config),
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    const imp = new Impairment(lab, child);
    try {
      await imp.waitLine((l) => l.event === 'ready', opts.startTimeoutMs ?? 30_000);
      await imp.install(opts.links ?? ROUTER_LINKS);
    } catch (err) {
      await imp.stop().catch(() => undefined);
      throw err;
    }
    return imp;
  }

  private async install(links: readonly string[]): Promise<void> {
    const tun = IMPAIR_TUN;
    const r = (cmd: string, args: string[]): Promise<unknown> => this.lab.exec('router', cmd, args);
    const quiet = (cmd: string, args: string[]): (() => Promise<unknown>) => {
      return () => this.lab.exec('router', cmd, args, { check: false });
    };
    await r('sysctl', [
      '-q',
      '-w',
      'net.ipv4.conf.all.rp_filter=0',
      'net.ipv4.conf.default.rp_filter=0',
      `net.ipv4.conf.${tun}.rp_filter=0`,
      `net.ipv4.conf.${tun}.accept_local=1`,
    ]);
    // Conntrack and NAT first, so no packet takes the detour without them.
    for (const ipt of ['iptables', 'ip6tables']) {
      const rule = ['PREROUTING', '-i', tun, '-j', 'CT', '--notrack'];
      await r(ipt, ['-w', '-t', 'raw', '-I', ...rule]);
      this.undo.push(quiet(ipt, ['-w', '-t', 'raw', '-D', ...rule]));
    }
    const rules: { table: string; chain: string; spec: string[] }[] = [
      {
        table: 'nat',
        chain: 'POSTROUTING',
        spec: ['-s', HOTEL_NET, '-o', tun, '-j', 'SNAT', '--to-source', LAB_ADDR.natPublic],
      },
      {
        table: 'filter',
        chain: 'FORWARD',
        spec: [
          '-o',
          tun,
          '-d',
          HOTEL_NET,
          '-m',
          'conntrack',
          '!',
          '--ctstate',
          'ESTABLISHED,RELATED',
          '-j',
          'DROP',
        ],
      },
      { table: 'filter', chain: 'FORWARD', spec: ['-i', tun, '-o', 'hotel', '-j', 'ACCEPT'] },
    ];
    for (const { table, chain, spec } of rules) {
      await r('iptables', ['-w', '-t', table, '-I', chain, '1', ...spec]);
      this.undo.push(quiet('iptables', ['-w', '-t', table, '-D', chain, ...spec]));
    }
    for (const fam of ['-4', '-6']) {
      await r('ip', [fam, 'route', 'add', 'default', 'dev', tun, 'table', TABLE]);
      this.undo.push(quiet('ip', [fam, 'route', 'del', 'default', 'dev', tun, 'table', TABLE]));
      for (const link of links) {
        const rule = ['iif', link, 'priority', PRIORITY, 'table', TABLE];
        await r('ip', [fam, 'rule', 'add', ...rule]);
        this.undo.push(quiet('ip', [fam, 'rule', 'del', ...rule]));
      }
    }
  }

  private waitLine(match: (l: Line) => boolean, timeoutMs: number): Promise<Line> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const found = this.lines.find(match);
        if (found !== undefined) {
          done();
          resolve(found);
        } else if (this.exited) {
          done();
          reject(new Error(`impairment element exited: ${this.stderrText.trim().slice(-500)}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`impairment element: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  private async request(cmd: Record<string, unknown>, timeoutMs = 10_000): Promise<Line> {
    const id = this.nextId++;
    this.child.stdin?.write(`${JSON.stringify({ ...cmd, id })}\n`);
    const l = await this.waitLine((x) => x.id === id, timeoutMs);
    if (l.event === 'error') throw new Error(`impairment element: ${String(l['message'])}`);
    return l;
  }

  /** The element's counters now. */
  async stats(): Promise<ImpairmentStats> {
    return (await this.request({ cmd: 'stats' })) as unknown as ImpairmentStats;
  }

  /** Replaces the rules (counters are kept per rule name). */
  async configure(config: ImpairmentConfig): Promise<void> {
    await this.request({ cmd: 'configure', config });
  }

  /** Removes the detour, stops the element and returns its final counters. Idempotent. */
  stop(): Promise<ImpairmentStats> {
    this.stopping ??= (async () => {
      for (const u of this.undo.reverse()) {
        try {
          await u();
        } catch {
          // the lab may already be destroyed: everything went with its namespace
        }
      }
      this.undo = [];
      if (!this.exited) this.child.stdin?.end();
      const final = await this.waitLine((l) => l['final'] === true, 10_000).catch(() => {
        this.child.kill('SIGKILL');
        return undefined;
      });
      return (final ?? { event: 'stats', final: true, rules: {} }) as unknown as ImpairmentStats;
    })();
    return this.stopping;
  }
}

/** Starts an impairment element in `lab`'s router (see Impairment.start). */
export function startImpairment(
  lab: Lab,
  config: ImpairmentConfig,
  opts: ImpairmentOptions = {},
): Promise<Impairment> {
  return Impairment.start(lab, config, opts);
}
