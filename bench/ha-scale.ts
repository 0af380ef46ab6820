/**
 * Home-agent scale (issue 8, metric 7) with the real `mip6 ha` daemon: N simulated MNs register
 * and refresh over loopback, N up to 100 000. Not a test; needs root (a network namespace).
 *
 *   node --import tsx bench/ha-scale.ts [--n 1000,10000,100000] [--rounds 2] [--window 256]
 *     [--refresh-window N (BUs in flight in the refresh rounds; default --window)]
 *     [--sources 254] [--over-cap 100] [--timeout-s 900] [--cpu-prof DIR] [--idle-s S] [--write]
 *
 * For each N, from scratch:
 *   1. A namespace of its own (name with pid + random suffix, deleted at the end even on
 *      failure): lo up, the HA's underlay address 203.0.113.1/32 on lo, the MNs' sources
 *      192.0.2.1-254 made local (a `local` route) so every datagram stays on loopback.
 *   2. Keys: one authority, the HA's key and certificate, and the members' keys and
 *      certificates, all kept in $TMPDIR/mip6-ha-scale (0700, never in the repository) and
 *      reused by later runs (bench/ha-load.ts issues the missing members in one batch).
 *   3. A fresh `mip6 ha` (sources through tsx; the compiled build may be stale while others edit
 *      src/) with a virtual home network (no [home] link: the home prefix is routed into the TUN
 *      once, so bindings need no per-address kernel state) and its binding cap (100 000).
 *   4. bench/ha-load.ts in the same namespace: registration, --over-cap MNs beyond the cap
 *      (when N is the cap) that must get BA status 130, refresh rounds; one JSON line.
 *   5. Memory: besides the RSS delta the client reads from /proc, the daemon's own view after
 *      two full garbage collections, before and after (its inspector, bench/inspector-memory.mjs):
 *      what one binding really keeps, without the garbage a lazy GC has not returned yet.
 *   6. With --restart (issue 20; implies --state, the HA's [home] state in the run's directory):
 *      when the client's refresh rounds are done, the daemon is killed (SIGKILL, its PID) and
 *      started again on the same state file; it reloads the N bindings and initiates a channel
 *      to each, the client's MNs answer its handshakes and Binding Refresh Requests. Reported:
 *      the restart's start-up (spawn to "started"), the reload ("bindings-restored"), the time
 *      from "started" to the last MN's BA, and the restarted HA's CPU time.
 *   7. With --cluster (issue 18): an etcd in the namespace (127.0.0.1:2379, its data in the
 *      run's directory) and the HA in a [cluster] of its own: every registration and refresh
 *      goes through the etcd store (compare-and-swap, lease).
 *   8. With --has K (issue 18; implies --cluster): K HAs of one [cluster] on one home prefix in
 *      the namespace (203.0.113.1..K, home addresses 2001:db8:100::1..K, keys ha.key, ha2.key,
 *      ...), each with a client of its own: K bench/ha-load.ts at once, N/K members each
 *      (distinct members: --offset). Reported per HA and in aggregate: all members registered
 *      (refreshed) over the slowest client's phase. Compare with --has 1 (--cluster) for the
 *      cluster's throughput against one HA's, on the same machine.
 *   9. The daemons (and etcd) stopped, the namespace deleted.
 * Prints one JSON line per N; --write also writes bench/results/ha-scale-<date>.json with the
 * mip6 commit and the load average before and after each N (the .md next to it is written from
 * that by hand, with the circumstances of the run).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { certificateToText, signCertificate } from '../src/crypto/certificate.js';
import {
  encodeKey,
  generateAuthority,
  generateMember,
  KeyTag,
  memberFromPrivate,
} from '../src/crypto/keys.js';
import { readAuthorityPrivate } from '../src/cli/key-files.js';
import { initCrypto } from '../src/crypto/sodium.js';
import { controlRequest } from '../src/io/control-socket.js';
import { parseIpv6 } from '../src/wire/address.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const { values: a } = parseArgs({
  options: {
    n: { type: 'string', default: '1000,10000,100000' },
    rounds: { type: 'string', default: '2' },
    window: { type: 'string', default: '256' },
    /** BUs in flight in the refresh rounds (default: --window). */
    'refresh-window': { type: 'string' },
    sources: { type: 'string', default: '254' },
    'over-cap': { type: 'string', default: '100' },
    'timeout-s': { type: 'string', default: '900' },
    'cpu-prof': { type: 'string' },
    /**
     * Heap snapshots of the (first) daemon after GC, before the members and after them, written
     * to PREFIX-before.heapsnapshot and PREFIX-after.heapsnapshot (bench/heap-summary.mjs).
     */
    'heap-snapshot': { type: 'string' },
    /**
     * Seconds to wait after the client is done before memory is read: the members idle (no
     * payload, no BU), as most of a real HA's are; their path MTU probing rests after a
     * CONFIRM_INTERVAL_MS (issue 17). Default 0: read at once.
     */
    'idle-s': { type: 'string', default: '0' },
    'client-cpu-prof': { type: 'string' },
    /** Run the daemon from another tree's sources (a before/after comparison). */
    src: { type: 'string' },
    /**
     * Run the daemon and the client compiled (`tsc --outDir DIR` of this tree, with DIR/build and
     * DIR/../node_modules linked), not through tsx, whose module hooks cost CPU at run time.
     */
    compiled: { type: 'string' },
    /** Give the HA a real home link (one end of a veth pair): a host route and a proxy-ND entry per binding. */
    'home-link': { type: 'boolean', default: false },
    /** The HA keeps its bindings in [home] state (SQLite): the store's cost on registration and refresh. */
    state: { type: 'boolean', default: false },
    /**
     * Issue 20: after the refresh rounds, kill -9 the HA and start it again on the same state:
     * its reload of N stored bindings and the re-initiation of N channels, timed. Implies --state.
     */
    restart: { type: 'boolean', default: false },
    /**
     * Issue 18: the HA is a member of a [cluster], its bindings in an etcd (Debian's
     * etcd-server) started in the run's namespace on its loopback: the cluster store's cost on
     * registration and refresh, against the same run without it. Not with --state.
     */
    cluster: { type: 'boolean', default: false },
    /** Issue 18: K home agents in one cluster, each loaded by a client of its own (implies --cluster). */
    has: { type: 'string', default: '1' },
    write: { type: 'boolean', default: false },
  },
});
/** --has: home agents per run, e.g. "1,3" (one run each, per N). */
const HAS_LIST = (a.has ?? '1').split(',').map(Number);
if (HAS_LIST.some((k) => !Number.isInteger(k) || k < 1 || k > 9)) {
  process.stderr.write('ha-scale: --has takes 1 to 9 home agents (a list: 1,3)\n');
  process.exit(2);
}
const HAS = Math.max(...HAS_LIST);
if (HAS > 1) a.cluster = true;
if (a.cluster && (a.state || a.restart)) {
  process.stderr.write(
    'ha-scale: --cluster keeps the bindings in etcd: not with --state / --restart\n',
  );
  process.exit(2);
}
const NS_LIST = (a.n ?? '1000')
  .split(',')
  .map(Number)
  .filter((n) => Number.isInteger(n) && n > 0 && n <= 100_000);
/** The daemon's binding cap (src/cli/daemons.ts maxBindings). */
const HA_BINDING_CAP = 100_000;
const HA_ADDR = '203.0.113.1';
const SOURCE_BASE = '192.0.2.1';
const HOME_PREFIX = '2001:db8:100::/64';
const HA_HOME = '2001:db8:100::1';
/** HA i's underlay and home addresses (i = 0: the one of a single-HA run). */
const haAddr = (i: number): string => (i === 0 ? HA_ADDR : `203.0.113.${i + 1}`);
const haHome = (i: number): string => (i === 0 ? HA_HOME : `2001:db8:100::${i + 1}`);
const CACHE = join(tmpdir(), 'mip6-ha-scale');
const INSPECT_PORT = 9229;

interface MemoryUsage {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

/**
 * The daemon's memory after two full GCs (bench/inspector-memory.mjs in its namespace); with
 * `snapshot`, a heap snapshot of it is written there too.
 */
function memoryAfterGc(ns: string, snapshot?: string): MemoryUsage {
  const out = execFileSync(
    'ip',
    [
      'netns',
      'exec',
      ns,
      process.execPath,
      '--experimental-websocket',
      join(ROOT, 'bench/inspector-memory.mjs'),
      String(INSPECT_PORT),
      ...(snapshot === undefined ? [] : [snapshot]),
    ],
    { timeout: 600_000, stdio: ['ignore', 'pipe', 'ignore'] },
  );
  return JSON.parse(out.toString().trim()) as MemoryUsage;
}

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
}

function loadavg(): number[] {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
}

/** Authority and HA key material, made once and kept in the cache directory. */
interface HaKeys {
  haKey: string;
  haPub: string;
  haCert: string;
}

async function provision(): Promise<
  {
    caKey: string;
    caPub: string;
    /** HA i+1's files (the first is haKey / haPub / haCert). */
    has: HaKeys[];
  } & HaKeys
> {
  await initCrypto();
  mkdirSync(CACHE, { recursive: true, mode: 0o700 });
  const f = {
    caKey: join(CACHE, 'authority.key'),
    caPub: join(CACHE, 'authority.pub'),
  };
  const has = Array.from({ length: HAS }, (_, i) => {
    const name = i === 0 ? 'ha' : `ha${i + 1}`;
    return {
      haKey: join(CACHE, `${name}.key`),
      haPub: join(CACHE, `${name}.pub`),
      haCert: join(CACHE, `${name}.cert`),
    };
  });
  if (!existsSync(f.caKey)) {
    const ca = generateAuthority();
    writeFileSync(f.caKey, encodeKey(KeyTag.AUTHORITY_PRIVATE, ca.seed), { mode: 0o600 });
    writeFileSync(f.caPub, encodeKey(KeyTag.AUTHORITY_PUBLIC, ca.publicKey));
    for (const h of has) rmSync(h.haKey, { force: true });
  }
  for (const h of has) await provisionHa(f.caKey, h);
  return { ...f, ...has[0]!, has };
}

/** One HA's key (made once) and a fresh certificate for the home prefix. */
async function provisionHa(caKey: string, f: HaKeys): Promise<void> {
  const nowS = Math.floor(Date.now() / 1000);
  if (!existsSync(f.haKey)) {
    const ha = generateMember();
    writeFileSync(f.haKey, encodeKey(KeyTag.MEMBER_PRIVATE, ha.privateKey), { mode: 0o600 });
  }
  // The HA certificate is cheap: issue a fresh one every run (validity never runs out).
  const ha = memberFromPrivate(
    new Uint8Array(
      Buffer.from(readFileSync(f.haKey, 'utf8').trim().split(/\s+/).pop() ?? '', 'base64'),
    ),
  );
  writeFileSync(f.haPub, encodeKey(KeyTag.MEMBER_PUBLIC, ha.publicKey));
  const ca = readAuthorityPrivate(caKey);
  const cert = signCertificate(
    {
      name: 'ha',
      role: 'ha',
      publicKey: ha.publicKey,
      addresses: [{ address: parseIpv6('2001:db8:100::'), prefixLength: 64 }],
      notBefore: nowS - 300,
      notAfter: nowS + 86_400,
    },
    ca.secretKey,
  );
  writeFileSync(f.haCert, certificateToText(cert));
}

interface RunResult {
  n: number;
  src: string;
  homeLink: boolean;
  loadBefore: number[];
  loadAfter: number[];
  wallS: number;
  daemonLogLines: number;
  hostRoutes?: number;
  memory?: {
    before: MemoryUsage;
    after: MemoryUsage;
    heapPerBindingBytes: number;
    rssAfterGcPerBindingBytes: number;
  };
  proxyEntries?: number;
  /**
   * The HA's home-link programming at the end (`mip6 status`, issue #17): slowestMs is the
   * programming lag, the longest any route / proxy op waited from queued to acknowledged.
   */
  homeLinkStatus?: unknown;
  state?: boolean;
  cluster?: boolean;
  /** --has K > 1: home agents in the cluster, each with its client. */
  has?: number;
  restart?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: string;
}

/** What the running runOne started (its PIDs, namespace, directory), for a signal's cleanup. */
const started: { children: ChildProcess[]; ns?: string; dir?: string } = { children: [] };

/** SIGINT / SIGTERM (a timeout around the bench): kill what this run started, by PID, delete
 *  its namespace and directory, then exit. */
function onSignal(signal: NodeJS.Signals): void {
  for (const c of started.children)
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (started.ns !== undefined) {
    try {
      execFileSync('ip', ['netns', 'del', started.ns], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
  if (started.dir !== undefined) rmSync(started.dir, { recursive: true, force: true });
  process.stderr.write(`ha-scale: ${signal}: stopped, namespace and run directory removed\n`);
  process.exit(signal === 'SIGINT' ? 130 : 143);
}
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);

/** Remembers a spawned child for onSignal. */
function track<T extends ChildProcess>(child: T): T {
  started.children.push(child);
  return child;
}

async function runOne(
  n: number,
  k: number,
  keys: Awaited<ReturnType<typeof provision>>,
): Promise<RunResult> {
  const id = `${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
  const ns = `m6scale-${id}`;
  const dir = join(CACHE, `run-${id}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  started.children = [];
  started.ns = ns;
  started.dir = dir;
  const loadBefore = loadavg();
  const began = performance.now();
  const withState = a.state === true || a.restart === true;
  let daemon: ChildProcess | undefined;
  /** With --has K: HAs 2..K. */
  const others: ChildProcess[] = [];
  let etcd: ChildProcess | undefined;
  const out: RunResult = {
    n,
    src: a.compiled ?? a.src ?? 'src',
    homeLink: a['home-link'] ?? false,
    state: withState,
    ...(a.cluster ? { cluster: true } : {}),
    ...(k > 1 ? { has: k } : {}),
    loadBefore,
    loadAfter: [],
    wallS: 0,
    daemonLogLines: 0,
  };
  try {
    ip(['netns', 'add', ns]);
    ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    ip(['-n', ns, 'addr', 'add', `${HA_ADDR}/32`, 'dev', 'lo']);
    ip(['-n', ns, 'route', 'add', 'local', '192.0.2.0/24', 'dev', 'lo']);
    execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv4.ip_nonlocal_bind=1']);
    if (a['home-link']) {
      ip(['-n', ns, 'link', 'add', 'homelink', 'type', 'veth', 'peer', 'name', 'homepeer']);
      ip(['-n', ns, 'link', 'set', 'homepeer', 'up']);
      ip(['-n', ns, 'link', 'set', 'homelink', 'up']);
    }
    if (a.cluster) {
      // One etcd member on the namespace's loopback, killed with this process at the latest.
      const etcdLog = openSync(join(dir, 'etcd.log'), 'w');
      etcd = track(
        spawn(
          'ip',
          ['netns', 'exec', ns, 'setpriv', '--pdeathsig', 'KILL', '--', 'etcd', '--name', 'e0']
            .concat(['--data-dir', join(dir, 'etcd')])
            .concat(['--listen-client-urls', 'http://127.0.0.1:2379'])
            .concat(['--advertise-client-urls', 'http://127.0.0.1:2379'])
            .concat(['--listen-peer-urls', 'http://127.0.0.1:2380'])
            .concat(['--initial-advertise-peer-urls', 'http://127.0.0.1:2380'])
            .concat(['--initial-cluster', 'e0=http://127.0.0.1:2380']),
          { stdio: ['ignore', etcdLog, etcdLog] },
        ),
      );
      closeSync(etcdLog);
    }
    for (let i = 1; i < k; i++) ip(['-n', ns, 'addr', 'add', `${haAddr(i)}/32`, 'dev', 'lo']);
    /** HA i's ha.toml (HA 0 is the one of a single-HA run). */
    const writeConfig = (i: number): string => {
      const file = join(dir, `ha${i + 1}.toml`);
      const k = keys.has[i]!;
      writeFileSync(
        file,
        `control_socket = "${join(dir, `ha${i + 1}.sock`)}"

[identity]
private_key = "${k.haKey}"
certificate = "${k.haCert}"
authority = "${keys.caPub}"

[tun]
name = "m6s${id.slice(-5)}${i}"

[listen]
address4 = "${haAddr(i)}"
address6 = "off"

[home]
prefix = "${HOME_PREFIX}"
address = "${haHome(i)}"
${a['home-link'] ? 'link = "homelink"\n' : ''}${withState ? `state = "${join(dir, 'ha.db')}"\n` : ''}${
          a.cluster
            ? `\n[cluster]\netcd = "http://127.0.0.1:2379"\nname = "bench"\nmember = "ha${i + 1}"\n`
            : ''
        }`,
      );
      return file;
    };
    const cfg = writeConfig(0);
    const prof = a['cpu-prof'] === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', a['cpu-prof']];
    /** Starts `mip6 ha` logging into `logFile`; resolves once it logged "started". */
    const startDaemon = async (logFile: string, inspect: boolean, config = cfg) => {
      const logFd = openSync(logFile, 'w');
      const child = track(
        spawn(
          'ip',
          [
            'netns',
            'exec',
            ns,
            process.execPath,
            ...prof,
            // For memoryAfterGc(): the inspector listens on the namespace's loopback only.
            ...(inspect ? [`--inspect=127.0.0.1:${INSPECT_PORT}`] : []),
            ...(a.compiled !== undefined
              ? [join(a.compiled, 'src/cli/main.js')]
              : ['--import', 'tsx', join(a.src ?? join(ROOT, 'src'), 'cli/main.ts')]),
            'ha',
            '-c',
            config,
            '--log-format',
            'json',
          ],
          { cwd: ROOT, stdio: ['ignore', logFd, logFd] },
        ),
      );
      closeSync(logFd);
      if (config === cfg) daemon = child;
      else others.push(child);
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      // Bounded wait for the daemon's "started" line (every 20 ms: a restart is timed by it).
      for (let i = 0; ; i++) {
        if (readFileSync(logFile, 'utf8').includes('"started"')) break;
        if (child.exitCode !== null || i > 1500) {
          throw new Error(`daemon did not start: ${readFileSync(logFile, 'utf8').slice(-600)}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      return { child, exited };
    };
    const logFile = join(dir, 'ha.log');
    const first = await startDaemon(logFile, true);
    let exited = first.exited;
    for (let i = 1; i < k; i++) {
      await startDaemon(join(dir, `ha${i + 1}.log`), false, writeConfig(i));
    }
    const snapshot = (when: string): string | undefined =>
      a['heap-snapshot'] === undefined ? undefined : `${a['heap-snapshot']}-${when}.heapsnapshot`;
    const memBefore = memoryAfterGc(ns, snapshot('before'));
    const overCap = n === HA_BINDING_CAP ? Number(a['over-cap']) : 0;
    /** Each HA's client loads N/K members of its own (consecutive, from --offset). */
    const share = Math.floor(n / k);
    const clientArgs = (i: number, pid: number): string[] => [
      ...(a.compiled !== undefined
        ? [join(a.compiled, 'bench/ha-load.js')]
        : ['--import', 'tsx', join(ROOT, 'bench/ha-load.ts')]),
      '--authority-key',
      keys.caKey,
      '--authority-pub',
      keys.caPub,
      '--ha-pub',
      keys.has[i]!.haPub,
      '--ha-pid',
      String(pid),
      '--n',
      String(share),
      '--offset',
      String(i * share),
      '--rounds',
      String(a.rounds),
      '--window',
      String(a.window),
      ...(a['refresh-window'] !== undefined ? ['--refresh-window', a['refresh-window']] : []),
      '--agent',
      haAddr(i),
      '--bind',
      SOURCE_BASE,
      '--bind-count',
      String(a.sources),
      '--home-agent',
      haHome(i),
      '--timeout-s',
      String(a['timeout-s']),
      '--cache',
      CACHE,
      '--over-cap',
      String(overCap),
    ];
    const args = clientArgs(0, first.child.pid!);
    const clientProf =
      a['client-cpu-prof'] === undefined
        ? []
        : ['--cpu-prof', '--cpu-prof-dir', a['client-cpu-prof']];
    if (a.restart) args.push('--restart');
    const client = track(
      spawn('ip', ['netns', 'exec', ns, process.execPath, ...clientProf, ...args], {
        cwd: ROOT,
        stdio: ['pipe', 'pipe', 'pipe'],
      }),
    );
    let stdout = '';
    let stderr = '';
    let memAfter: MemoryUsage | undefined;
    let restarting: Promise<void> | undefined;
    client.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
      if (restarting === undefined && stdout.includes('"ready-for-restart"')) {
        restarting = (async () => {
          memAfter = memoryAfterGc(ns, snapshot('after')); // of the first daemon, before it dies
          // The database and its write-ahead log (checkpointed into it at exit).
          const wal = join(dir, 'ha.db-wal');
          const storeBytes =
            statSync(join(dir, 'ha.db')).size + (existsSync(wal) ? statSync(wal).size : 0);
          daemon!.kill('SIGKILL');
          await exited;
          const spawnedAt = Date.now();
          const logFile2 = join(dir, 'ha-restarted.log');
          const second = await startDaemon(logFile2, false);
          exited = second.exited;
          const lines = readFileSync(logFile2, 'utf8')
            .split('\n')
            .filter((l) => l.startsWith('{'))
            .map((l) => JSON.parse(l) as Record<string, unknown>);
          const started = lines.find((l) => l['event'] === 'started');
          const restoredLine = lines.find((l) => l['event'] === 'bindings-restored');
          const startedAt = Date.parse(String(started?.['time']));
          out.restart = {
            storeBytes,
            startupMs: startedAt - spawnedAt,
            restored: restoredLine?.['restored'],
            members: restoredLine?.['members'],
            dropped: restoredLine?.['dropped'],
            // The reload itself: from the log line before it (config, keys) to its own.
            reloadLoggedAt: restoredLine?.['time'],
          };
          client.stdin.write(`restarted ${second.child.pid} ${startedAt}\n`);
        })().catch((err: unknown) => {
          out.error = `restart: ${err instanceof Error ? err.message : String(err)}`;
          client.kill('SIGKILL');
        });
      }
    });
    client.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    // --has K: the other HAs' clients, at the same time.
    const more = others.map((d, j) => {
      const c = track(
        spawn('ip', ['netns', 'exec', ns, process.execPath, ...clientArgs(j + 1, d.pid!)], {
          cwd: ROOT,
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
      );
      let o = '';
      let e = '';
      c.stdout.on('data', (b: Buffer) => (o += b.toString()));
      c.stderr.on('data', (b: Buffer) => (e += b.toString()));
      return new Promise<Record<string, unknown>>((resolve, reject) =>
        c.once('exit', (code) => {
          const l = o.trim().split('\n').pop() ?? '';
          if (code !== 0 || !l.startsWith('{')) reject(new Error(e.trim() || `exit ${code}`));
          else resolve(JSON.parse(l) as Record<string, unknown>);
        }),
      );
    });
    const code = await new Promise<number | null>((resolve) => client.once('exit', resolve));
    await restarting;
    const line = stdout.trim().split('\n').pop() ?? '';
    if (code !== 0 || !line.startsWith('{')) throw new Error(stderr.trim() || `exit ${code}`);
    const own = JSON.parse(line) as Record<string, unknown>;
    out.result = k > 1 ? clusterAggregate([own, ...(await Promise.all(more))]) : own;
    const idleS = Number(a['idle-s']);
    if (memAfter === undefined && idleS > 0) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(idleS, 600) * 1000));
    }
    memAfter ??= memoryAfterGc(ns, snapshot('after'));
    // The memory figures are the first HA's: its own members.
    const registered = Number(own.registered ?? n);
    out.memory = {
      before: memBefore,
      after: memAfter,
      // Retained by the daemon per binding once garbage is collected: V8 heap + memory outside
      // it (buffers, OpenSSL objects) that JS objects hold.
      heapPerBindingBytes:
        (memAfter.heapUsed + memAfter.external - memBefore.heapUsed - memBefore.external) /
        registered,
      rssAfterGcPerBindingBytes: (memAfter.rss - memBefore.rss) / registered,
    };
    if (a['home-link']) {
      // What the daemon installed on the host: one /128 route into the TUN per binding, and
      // either one proxy-ND entry per binding or (the addon's ND proxy) none: then its set's
      // size is homeLinkStatus.ndproxy.addresses.
      const count = (args: string[]): number =>
        execFileSync('ip', ['-n', ns, ...args], { maxBuffer: 256 << 20 })
          .toString()
          .split('\n')
          // Members' home addresses: 2001:db8:100::a:0 upwards, into ::b:, ::c: past 65 536.
          .filter((l) => /^2001:db8:100::[0-9a-f]+:[0-9a-f]+[\s/]/.test(l)).length;
      out.hostRoutes = count(['-6', 'route', 'show']);
      out.proxyEntries = count(['-6', 'neigh', 'show', 'proxy']);
      const firstHa = join(dir, 'ha1.sock');
      const st = (await controlRequest(firstHa, { cmd: 'status' }, { timeoutMs: 30_000 }).catch(
        (err: unknown) => ({ error: String(err) }),
      )) as { homeLink?: unknown };
      out.homeLinkStatus = st.homeLink;
    }
    for (const d of others) d.kill('SIGTERM');
    daemon!.kill('SIGTERM');
    const stopped = await Promise.race([
      exited,
      new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000)),
    ]);
    if (stopped === 'timeout') daemon!.kill('SIGKILL');
    out.daemonLogLines = readFileSync(logFile, 'utf8').split('\n').length - 1;
  } catch (err) {
    out.error = err instanceof Error ? err.message : String(err);
  } finally {
    for (const d of [daemon, ...others]) {
      if (d !== undefined && d.exitCode === null && d.signalCode === null) d.kill('SIGKILL');
    }
    if (etcd !== undefined && etcd.exitCode === null && etcd.signalCode === null) {
      const gone = new Promise((r) => etcd!.once('exit', r));
      etcd.kill('SIGKILL'); // the etcd this run started, by its PID
      await gone;
    }
    try {
      ip(['netns', 'del', ns]);
    } catch {
      // already gone
    }
    rmSync(dir, { recursive: true, force: true });
    out.loadAfter = loadavg();
    out.wallS = (performance.now() - began) / 1000;
  }
  return out;
}

/**
 * --has K: the K clients' results, and the cluster's throughput: every member registered
 * (refreshed) over the slowest client's phase (the phases run at the same time).
 */
function clusterAggregate(perHa: Record<string, unknown>[]): Record<string, unknown> {
  const sum = (k: string): number => perHa.reduce((acc, r) => acc + Number(r[k] ?? 0), 0);
  const max = (k: string): number => Math.max(...perHa.map((r) => Number(r[k] ?? 0)));
  const refreshMs = Math.max(
    ...perHa.map((r) => (Number(r['refreshed']) / Number(r['refreshBuPerS'])) * 1000),
  );
  return {
    has: perHa.length,
    registered: sum('registered'),
    refreshed: sum('refreshed'),
    registrationsPerS: (sum('registered') / max('registerMs')) * 1000,
    refreshBuPerS: (sum('refreshed') / refreshMs) * 1000,
    timedOut: perHa.some((r) => r['timedOut'] === true),
    perHa,
  };
}

async function main(): Promise<void> {
  const keys = await provision();
  const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT }).toString().trim();
  const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'bench'], { cwd: ROOT })
    .toString()
    .split('\n')
    .filter((l) => l.trim() !== '');
  const runs: RunResult[] = [];
  for (const n of NS_LIST) {
    for (const k of HAS_LIST) {
      const r = await runOne(n, k, keys);
      runs.push(r);
      process.stdout.write(`${JSON.stringify(r)}\n`);
    }
  }
  if (a.write) {
    const date = new Date().toISOString().slice(0, 10);
    const base = join(ROOT, 'bench', 'results', `ha-scale-${date}`);
    // Runs of other invocations the same day stay (the 100 000 run is done on its own).
    let kept: (RunResult & { commit?: string })[] = [];
    if (existsSync(`${base}.json`)) {
      const old = JSON.parse(readFileSync(`${base}.json`, 'utf8')) as {
        runs: (RunResult & { commit?: string })[];
      };
      kept = old.runs.filter(
        (r) =>
          !runs.some(
            (x) =>
              x.n === r.n &&
              x.homeLink === r.homeLink &&
              !!x.state === !!r.state &&
              !!x.cluster === !!r.cluster &&
              (x.has ?? 1) === (r.has ?? 1),
          ),
      );
    }
    const json = {
      date: new Date().toISOString(),
      machine: `${cpus().length} x ${cpus()[0]?.model ?? '?'}, Node ${process.version}`,
      runs: [
        ...kept,
        ...runs.map((r) => ({ ...r, commit, dirty, at: new Date().toISOString() })),
      ].sort((x, y) => Number(x.homeLink) - Number(y.homeLink) || x.n - y.n),
    };
    writeFileSync(`${base}.json`, `${JSON.stringify(json, null, 2)}\n`);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`ha-scale: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
