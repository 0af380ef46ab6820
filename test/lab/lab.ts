/**
 * The netns lab (DESIGN §8): real namespaces, veths, a router with NAT44, for lab tests and
 * `npm run demo`. Needs root, iproute2, iptables and conntrack.
 *
 *            home link (bridge "homebr" in ha, 2001:db8:100::/64)
 *   server ───────────────┐            ┌─────────── mn "home" (down until move('home'))
 *   2001:db8:100::5       │ ha         │
 *                         └ 2001:db8:100::1 (homebr)
 *                           uplink 198.51.100.1/24, 2001:db8:ff::1/64
 *                                     │
 *                              router "ha" 198.51.100.254, 2001:db8:ff::fe
 *             ┌───────────────┬───────┴────────┬──────────────────┐
 *       "lte" 203.0.113.1/25  "hotel" 192.0.2.1/24  "v6only" 2001:db8:3::1/64  "cn" 203.0.113.129/25,
 *         mn 203.0.113.10     mn 192.0.2.10        mn 2001:db8:3::10            2001:db8:4::1/64
 *         plain IPv4          NAT44 -> 198.51.100.254 (MASQUERADE)               cn .130, 2001:db8:4::10
 *                                                   "cnv6only" 2001:db8:5::1/64 ── cn 2001:db8:5::10
 *
 * The CN can roam too (moveCn): its "uplink" (dual-stack, up at start) or its IPv6-only access
 * network "v6only" (down until moveCn('v6only')), for the both-mobile case of issue 7.
 * Only documentation ranges (RFC 5737, RFC 3849). The home prefix is routed by the router to
 * the HA; the HA daemon routes it into its TUN (the lab sets up underlay and home link only).
 * Every name carries a unique tag (pid + random), every process is tracked and killed by PID,
 * and exit/signal hooks delete the namespaces even when a test crashes.
 */
import {
  execFile,
  execFileSync,
  spawn,
  type ChildProcess,
  type SpawnOptions,
} from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { waitFor } from '../helpers/wait.js';

export type LabNode = 'ha' | 'server' | 'router' | 'mn' | 'cn';
export type AccessNetwork = 'lte' | 'hotel' | 'v6only' | 'home';
export type MoveTarget = AccessNetwork | 'none';

export const LAB_NODES: readonly LabNode[] = ['ha', 'server', 'router', 'mn', 'cn'];
export const ACCESS_NETWORKS: readonly AccessNetwork[] = ['lte', 'hotel', 'v6only', 'home'];
/** Access networks of the CN namespace (interface names there). */
export type CnNetwork = 'uplink' | 'v6only';
export const CN_NETWORKS: readonly CnNetwork[] = ['uplink', 'v6only'];

/** Every address in the lab. */
export const LAB_ADDR = {
  ha: {
    v4: '198.51.100.1',
    v6: '2001:db8:ff::1',
    /** The HA's address on the home link / home prefix. */
    home: '2001:db8:100::1',
    homePrefix: '2001:db8:100::/64',
  },
  router: { v4: '198.51.100.254', v6: '2001:db8:ff::fe' },
  server: { v6: '2001:db8:100::5' },
  /** The hotel NAT's public address (the router's uplink address). */
  natPublic: '198.51.100.254',
  mn: {
    lte: '203.0.113.10',
    hotel: '192.0.2.10',
    v6only: '2001:db8:3::10',
    /** Suggested home address for the MN daemon config. */
    homeAddress: '2001:db8:100::10',
  },
  cn: { v4: '203.0.113.130', v6: '2001:db8:4::10', v6only: '2001:db8:5::10' },
} as const;

/** What moveCn() configures on each CN access network: addresses, default routes, probe. */
const CN_ACCESS: Record<
  CnNetwork,
  { addresses: string[]; gateways: string[]; probe: string; family: 4 | 6 }
> = {
  uplink: {
    addresses: [`${LAB_ADDR.cn.v4}/25`, `${LAB_ADDR.cn.v6}/64`],
    gateways: ['203.0.113.129', '2001:db8:4::1'],
    probe: LAB_ADDR.ha.v4,
    family: 4,
  },
  v6only: {
    addresses: [`${LAB_ADDR.cn.v6only}/64`],
    gateways: ['2001:db8:5::1'],
    probe: LAB_ADDR.ha.v6,
    family: 6,
  },
};

interface AccessSpec {
  family: 4 | 6;
  address: string | undefined;
  prefixLength: number;
  gateway: string | undefined;
  /** Address to check reachability with `ip route get`. */
  probe: string;
}

const ACCESS: Record<AccessNetwork, AccessSpec> = {
  lte: {
    family: 4,
    address: LAB_ADDR.mn.lte,
    prefixLength: 25,
    gateway: '203.0.113.1',
    probe: LAB_ADDR.ha.v4,
  },
  hotel: {
    family: 4,
    address: LAB_ADDR.mn.hotel,
    prefixLength: 24,
    gateway: '192.0.2.1',
    probe: LAB_ADDR.ha.v4,
  },
  v6only: {
    family: 6,
    address: LAB_ADDR.mn.v6only,
    prefixLength: 64,
    gateway: '2001:db8:3::1',
    probe: LAB_ADDR.ha.v6,
  },
  home: {
    family: 6,
    address: undefined,
    prefixLength: 64,
    gateway: undefined,
    probe: LAB_ADDR.ha.home,
  },
};

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface ExecOptions {
  /** Throw when the exit code is not 0 (default true). */
  check?: boolean;
  /** Kill the command after this many ms (default 15000). */
  timeoutMs?: number;
  /** Data written to stdin. */
  input?: string;
}

export interface LabOptions {
  /** Initial access network of the MN (default 'none': every access link down). */
  network?: MoveTarget;
  /** Longest wait for a link to become usable in move(), ms (default 5000). */
  moveTimeoutMs?: number;
}

// ---- crash safety: every live lab is destroyed synchronously on exit / signals ----

const liveLabs = new Set<Lab>();
let hooksInstalled = false;

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  const cleanAll = (): void => {
    for (const lab of [...liveLabs]) lab.destroySync();
  };
  process.on('exit', cleanAll);
  // Fires before the default handler; does not swallow the exception.
  process.on('uncaughtExceptionMonitor', cleanAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      cleanAll();
      // Restore the default action for us and re-raise: other listeners (tap's signal-exit,
      // for instance) defer to any other listener, so leaving it to them could hang forever.
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

function run(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { timeout: opts.timeoutMs ?? 15000, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code =
          err === null
            ? 0
            : typeof (err as { code?: unknown }).code === 'number'
              ? (err as { code: number }).code
              : 1;
        const res: ExecResult = { stdout, stderr, code };
        if (code !== 0 && opts.check !== false) {
          reject(
            new Error(
              `${cmd} ${args.join(' ')} failed (${code}): ${stderr.trim() || stdout.trim()}`,
            ),
          );
        } else {
          resolve(res);
        }
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

function ipSync(args: string[]): string {
  try {
    return execFileSync('ip', args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 5000,
    });
  } catch {
    return '';
  }
}

/** Resolves with the first stdout line matching `re`; rejects on exit or after `timeoutMs`. */
export function waitForLine(child: ChildProcess, re: RegExp, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (chunk: Buffer | string): void => {
      buf += chunk.toString();
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const l of lines) {
        if (re.test(l)) {
          done();
          resolve(l);
          return;
        }
      }
    };
    const onExit = (code: number | null, signal: string | null): void => {
      done();
      reject(new Error(`process exited (${code ?? signal}) before printing ${re}`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re}`));
    }, timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
    };
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
  });
}

export class Lab {
  /** Unique tag in every namespace name: "m6" + pid (base 36) + 4 random hex digits. */
  readonly tag: string;
  /** Namespace names by node. */
  readonly namespaces: Record<LabNode, string>;
  private readonly children = new Set<ChildProcess>();
  private readonly moveTimeoutMs: number;
  private destroyed = false;
  private destroying: Promise<void> | undefined;
  private current: MoveTarget = 'none';
  private currentCn: CnNetwork = 'uplink';

  constructor(opts: LabOptions = {}) {
    this.tag = `m6${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
    this.namespaces = {
      ha: `${this.tag}-ha`,
      server: `${this.tag}-server`,
      router: `${this.tag}-router`,
      mn: `${this.tag}-mn`,
      cn: `${this.tag}-cn`,
    };
    this.moveTimeoutMs = opts.moveTimeoutMs ?? 5000;
  }

  /** The namespace name of a node (for `ip netns exec` in scripts). */
  ns(node: LabNode): string {
    return this.namespaces[node];
  }

  /** The MN's current access network. */
  get network(): MoveTarget {
    return this.current;
  }

  /** The CN's current access network. */
  get cnNetwork(): CnNetwork {
    return this.currentCn;
  }

  private ip(node: LabNode, args: string[], opts?: ExecOptions): Promise<ExecResult> {
    return run('ip', ['-n', this.ns(node), ...args], opts);
  }

  /** Runs several `ip` commands in one process (`ip -n NS -batch -`); stops at the first error. */
  private ipBatch(node: LabNode, lines: string[]): Promise<ExecResult> {
    return run('ip', ['-n', this.ns(node), '-batch', '-'], { input: lines.join('\n') + '\n' });
  }

  private sysctl(node: LabNode, settings: string[]): Promise<ExecResult> {
    return run('ip', ['netns', 'exec', this.ns(node), 'sysctl', '-q', '-w', ...settings]);
  }

  /** Builds the namespaces and links. Called by createLab(). */
  async build(): Promise<void> {
    installHooks();
    liveLabs.add(this);
    const A = LAB_ADDR;
    for (const node of LAB_NODES) {
      await run('ip', ['netns', 'add', this.ns(node)]);
      // DAD and RAs off so addresses are usable at once; new devices inherit "default".
      const forwarding =
        node === 'router' || node === 'ha'
          ? ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']
          : [];
      await this.sysctl(node, [
        'net.ipv6.conf.all.accept_dad=0',
        'net.ipv6.conf.default.accept_dad=0',
        'net.ipv6.conf.all.accept_ra=0',
        'net.ipv6.conf.default.accept_ra=0',
        ...forwarding,
      ]);
    }
    const veth = (a: string, b: LabNode, bName: string): string =>
      `link add ${a} type veth peer name ${bName} netns ${this.ns(b)}`;

    // HA: uplink to the router; the home link is a bridge with the server and the MN's
    // "home" port on it.
    await this.ipBatch('ha', [
      'link set lo up',
      veth('uplink', 'router', 'ha'),
      `addr add ${A.ha.v4}/24 dev uplink`,
      `addr add ${A.ha.v6}/64 dev uplink nodad`,
      'link set uplink up',
      'link add homebr type bridge',
      `addr add ${A.ha.home}/64 dev homebr nodad`,
      'link set homebr up',
      veth('tosrv', 'server', 'home'),
      veth('tomn', 'mn', 'home'),
      'link set tosrv master homebr',
      'link set tomn master homebr',
      'link set tosrv up',
      'link set tomn up',
      `route add default via ${A.router.v4}`,
      `route add ::/0 via ${A.router.v6}`,
    ]);
    // Router: the HA uplink, three access networks (MN side stays down until move()), the
    // CN's network, and the route for the home prefix towards the HA.
    await this.ipBatch('router', [
      'link set lo up',
      `addr add ${A.router.v4}/24 dev ha`,
      `addr add ${A.router.v6}/64 dev ha nodad`,
      'link set ha up',
      veth('lte', 'mn', 'lte'),
      'addr add 203.0.113.1/25 dev lte',
      veth('hotel', 'mn', 'hotel'),
      'addr add 192.0.2.1/24 dev hotel',
      veth('v6only', 'mn', 'v6only'),
      'addr add 2001:db8:3::1/64 dev v6only nodad',
      veth('cn', 'cn', 'uplink'),
      'addr add 203.0.113.129/25 dev cn',
      'addr add 2001:db8:4::1/64 dev cn nodad',
      veth('cnv6only', 'cn', 'v6only'),
      'addr add 2001:db8:5::1/64 dev cnv6only nodad',
      'link set cnv6only up',
      'link set lte up',
      'link set hotel up',
      'link set v6only up',
      'link set cn up',
      `route add ${A.ha.homePrefix} via ${A.ha.v6}`,
    ]);
    await this.ipBatch('server', [
      'link set lo up',
      `addr add ${A.server.v6}/64 dev home nodad`,
      'link set home up',
      `route add ::/0 via ${A.ha.home}`,
    ]);
    await this.ipBatch('mn', ['link set lo up']);
    await this.ipBatch('cn', [
      'link set lo up',
      `addr add ${A.cn.v4}/25 dev uplink`,
      `addr add ${A.cn.v6}/64 dev uplink nodad`,
      'link set uplink up',
      'route add default via 203.0.113.129',
      'route add ::/0 via 2001:db8:4::1',
    ]);

    // NAT44 for the hotel: masquerade to the router's public address, and like a real NAT let
    // nothing in that the inside did not start.
    const ipt = (args: string[]): Promise<ExecResult> =>
      run('ip', ['netns', 'exec', this.ns('router'), 'iptables', '-w', ...args]);
    await ipt([
      '-t',
      'nat',
      '-A',
      'POSTROUTING',
      '-s',
      '192.0.2.0/24',
      '!',
      '-o',
      'hotel',
      '-j',
      'MASQUERADE',
    ]);
    await ipt([
      '-A',
      'FORWARD',
      '-o',
      'hotel',
      '-m',
      'conntrack',
      '!',
      '--ctstate',
      'ESTABLISHED,RELATED',
      '-j',
      'DROP',
    ]);
  }

  /**
   * Moves the MN: every other access link loses its address and goes down, then `network`
   * comes up with its address and default route. Resolves once the link is usable: carrier up,
   * address present and not tentative, and `ip route get` to the HA leaves through it.
   * 'home' only brings the home-link port up (link-local); the MN daemon owns its HoA there.
   */
  async move(network: MoveTarget): Promise<void> {
    this.assertAlive();
    const lines: string[] = [];
    for (const other of ACCESS_NETWORKS) {
      if (other === network) continue;
      lines.push(`addr flush dev ${other} scope global`, `link set ${other} down`);
    }
    this.current = network;
    if (network === 'none') {
      await this.ipBatch('mn', lines);
      await waitFor(
        'no route to the HA',
        async () => !(await this.routeVia(LAB_ADDR.ha.v4, undefined)),
        this.moveTimeoutMs,
        5,
      );
      return;
    }
    const spec = ACCESS[network];
    lines.push(`link set ${network} up`);
    await this.ipBatch('mn', lines);
    // Both ends operational before any address or route: until the kernel's link watcher has
    // run for a link that just came up, its queue drops what is sent (the router's ARP reply,
    // say), and the next try is a second later. A real access network has no address for us
    // before its link is up either (DHCP, SLAAC), so nothing the MN could do earlier is lost.
    const [peerNode, peerDev]: [LabNode, string] =
      network === 'home' ? ['ha', 'tomn'] : ['router', network];
    await waitFor(
      `${network} link up at both ends`,
      async () =>
        (await this.operstate('mn', network)) === 'up' &&
        (await this.operstate(peerNode, peerDev)) === 'up',
      this.moveTimeoutMs,
      2,
    );
    lines.length = 0;
    if (spec.address !== undefined) {
      const nodad = spec.family === 6 ? ' nodad' : '';
      lines.push(`addr replace ${spec.address}/${spec.prefixLength} dev ${network}${nodad}`);
    }
    if (spec.gateway !== undefined) {
      const dflt = spec.family === 6 ? '::/0' : 'default';
      lines.push(`route replace ${dflt} via ${spec.gateway} dev ${network}`);
    }
    if (lines.length > 0) await this.ipBatch('mn', lines);
    await waitFor(`${network} usable`, () => this.usable(network, spec), this.moveTimeoutMs, 5);
  }

  /** A link's operational state as the kernel has it (sysfs of the node's namespace). */
  private async operstate(node: LabNode, dev: string): Promise<string> {
    const r = await run(
      'ip',
      ['netns', 'exec', this.ns(node), 'cat', `/sys/class/net/${dev}/operstate`],
      {
        check: false,
      },
    );
    return r.stdout.trim();
  }

  /**
   * Moves the CN like move() moves the MN: the other CN access link loses its addresses and
   * goes down, `network` comes up with its addresses and default routes. Resolves once they are
   * not tentative and `ip route get` to the HA leaves through it.
   */
  async moveCn(network: CnNetwork): Promise<void> {
    this.assertAlive();
    const spec = CN_ACCESS[network];
    const lines: string[] = [];
    for (const other of CN_NETWORKS) {
      if (other !== network)
        lines.push(`addr flush dev ${other} scope global`, `link set ${other} down`);
    }
    lines.push(`link set ${network} up`);
    for (const a of spec.addresses) {
      lines.push(`addr replace ${a} dev ${network}${a.includes(':') ? ' nodad' : ''}`);
    }
    for (const g of spec.gateways) {
      lines.push(`route replace ${g.includes(':') ? '::/0' : 'default'} via ${g} dev ${network}`);
    }
    this.currentCn = network;
    await this.ipBatch('cn', lines);
    await waitFor(
      `cn ${network} usable`,
      async () => {
        const r = await this.ip('cn', ['-j', 'addr', 'show', 'dev', network], { check: false });
        type AddrInfo = { local?: string; tentative?: boolean };
        const link = (JSON.parse(r.stdout || '[]') as { addr_info?: AddrInfo[] }[])[0];
        const info = link?.addr_info ?? [];
        if (info.some((a) => a.tentative === true)) return false;
        if (!spec.addresses.every((a) => info.some((i) => i.local === a.split('/')[0]))) {
          return false;
        }
        const route = await this.ip('cn', ['-j', 'route', 'get', spec.probe], { check: false });
        if (route.code !== 0) return false;
        return (JSON.parse(route.stdout || '[]') as { dev?: string }[])[0]?.dev === network;
      },
      this.moveTimeoutMs,
      5,
    );
  }

  private async usable(dev: AccessNetwork, spec: AccessSpec): Promise<boolean> {
    const r = await this.ip('mn', ['-j', 'addr', 'show', 'dev', dev], { check: false });
    type AddrInfo = { local?: string; tentative?: boolean; scope?: string };
    const link = (
      JSON.parse(r.stdout || '[]') as { operstate?: string; addr_info?: AddrInfo[] }[]
    )[0];
    if (link?.operstate !== 'UP') return false;
    const info = link.addr_info ?? [];
    if (info.some((a) => a.tentative === true)) return false;
    if (spec.address === undefined) return info.some((a) => a.scope === 'link');
    if (!info.some((a) => a.local === spec.address)) return false;
    return this.routeVia(spec.probe, dev);
  }

  /**
   * The firewall mark of the MN daemon's sockets under a full tunnel ([tun] routes, issue
   * #15): move() then asks for the route a marked packet takes (the unmarked one is the TUN).
   */
  routeMark: number | undefined;

  /** True when `ip route get dest` in the MN succeeds (and leaves through `dev` if given). */
  private async routeVia(dest: string, dev: string | undefined): Promise<boolean> {
    const mark = this.routeMark === undefined ? [] : ['mark', String(this.routeMark)];
    const r = await this.ip('mn', ['-j', 'route', 'get', dest, ...mark], { check: false });
    if (r.code !== 0) return false;
    const route = (JSON.parse(r.stdout || '[]') as { dev?: string }[])[0];
    return dev === undefined ? route !== undefined : route?.dev === dev;
  }

  /** Runs a command in a node's namespace and waits for it. */
  exec(
    node: LabNode,
    cmd: string,
    args: string[] = [],
    opts: ExecOptions = {},
  ): Promise<ExecResult> {
    this.assertAlive();
    return run('ip', ['netns', 'exec', this.ns(node), cmd, ...args], opts);
  }

  /**
   * Starts a long-running process in a node's namespace. `ip netns exec` execs the command, so
   * the child's PID is the command's; it is killed by that PID at destroy().
   */
  spawn(node: LabNode, cmd: string, args: string[] = [], opts: SpawnOptions = {}): ChildProcess {
    this.assertAlive();
    const child = spawn('ip', ['netns', 'exec', this.ns(node), cmd, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...opts,
    });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Forgets every NAT mapping in the router (to force a NAT rebinding). */
  async flushConntrack(): Promise<void> {
    this.assertAlive();
    await run('ip', ['netns', 'exec', this.ns('router'), 'conntrack', '-F'], { check: false });
  }

  /** Current conntrack entries of the router, as `conntrack -L` prints them. */
  async conntrackList(): Promise<string> {
    const r = await run('ip', ['netns', 'exec', this.ns('router'), 'conntrack', '-L'], {
      check: false,
    });
    return r.stdout;
  }

  private assertAlive(): void {
    if (this.destroyed) throw new Error('lab: already destroyed');
  }

  /** PIDs of every process still inside one of the lab's namespaces. */
  private nsPids(): number[] {
    const pids: number[] = [];
    for (const node of LAB_NODES) {
      for (const p of ipSync(['netns', 'pids', this.ns(node)]).split(/\s+/)) {
        const n = Number(p);
        if (p !== '' && Number.isInteger(n) && n > 1 && n !== process.pid) pids.push(n);
      }
    }
    return pids;
  }

  /** Stops the lab's processes (SIGTERM, then SIGKILL after 2 s) and deletes the namespaces. */
  destroy(): Promise<void> {
    if (this.destroying !== undefined) return this.destroying;
    this.destroyed = true;
    this.destroying = (async () => {
      const waits = [...this.children].map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const timer = setTimeout(() => {
              if (c.pid !== undefined) safeKill(c.pid, 'SIGKILL');
            }, 2000);
            c.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            if (c.pid !== undefined) safeKill(c.pid, 'SIGTERM');
          }),
      );
      await Promise.all(waits);
      this.destroySync();
    })();
    return this.destroying;
  }

  /** Synchronous teardown for exit hooks: SIGKILL everything left, delete every namespace. */
  destroySync(): void {
    this.destroyed = true;
    for (const c of this.children) if (c.pid !== undefined) safeKill(c.pid, 'SIGKILL');
    this.children.clear();
    for (const pid of this.nsPids()) safeKill(pid, 'SIGKILL');
    for (const node of LAB_NODES) {
      try {
        execFileSync('ip', ['netns', 'del', this.ns(node)], { stdio: 'ignore', timeout: 5000 });
      } catch {
        // already gone
      }
    }
    liveLabs.delete(this);
  }
}

function safeKill(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already exited
  }
}

/** Why the lab cannot run here, or undefined when it can (root, ip, iptables, conntrack). */
export function labUnavailableReason(): string | undefined {
  if (process.platform !== 'linux') return 'the netns lab needs Linux';
  if (process.getuid?.() !== 0) return 'the netns lab needs root (network namespaces, iptables)';
  for (const tool of ['ip', 'iptables', 'conntrack', 'sysctl']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `the netns lab needs ${tool} (apt-get install iproute2 iptables conntrack procps)`;
    }
  }
  return undefined;
}

/** Builds a lab; on a build failure everything created so far is removed before rethrowing. */
export async function createLab(opts: LabOptions = {}): Promise<Lab> {
  const lab = new Lab(opts);
  try {
    await lab.build();
    if (opts.network !== undefined && opts.network !== 'none') await lab.move(opts.network);
  } catch (err) {
    lab.destroySync();
    throw err;
  }
  return lab;
}
