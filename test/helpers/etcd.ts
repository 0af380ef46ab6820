/**
 * Real etcd servers for the home agent cluster's tests (issue 18): Debian's `etcd-server`
 * (3.4), started by the test itself with a private data directory under a temporary directory,
 * on loopback ports nobody listens on (or on given addresses inside a namespace the test made),
 * stopped by their PID and their directories removed in teardown, even when the test fails.
 * A distribution-started etcd (127.0.0.1:2379) is never used.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './wait.js';

/** Why etcd tests cannot run here, or undefined when they can. */
export function etcdSkipReason(): string | undefined {
  const r = spawnSync('etcd', ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (r.error !== undefined || r.status !== 0) {
    return 'needs etcd (Debian: apt-get install etcd-server; scripts/setup.sh installs it)';
  }
  const m = /etcd Version: (\d+)\.(\d+)/.exec(r.stdout);
  if (m === null || Number(m[1]) !== 3 || Number(m[2]) < 4) {
    return `needs etcd 3.4 or later (found: ${r.stdout.split('\n')[0] ?? '?'})`;
  }
  return undefined;
}

/** A free TCP port on `host` (bound and released: the caller binds it right after). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a !== null ? resolve(a.port) : reject(new Error())));
    });
  });
}

export interface EtcdMember {
  readonly name: string;
  /** Client URL (http://host:port). */
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  /** The running process, or undefined while stopped. */
  process: ChildProcess | undefined;
}

export interface EtcdCluster {
  readonly members: EtcdMember[];
  /** The client URLs of all members. */
  readonly endpoints: string[];
  /** Stops one member by its PID (SIGKILL or SIGTERM) and waits for its exit. */
  stop(name: string, signal?: NodeJS.Signals): Promise<void>;
  /** Starts a stopped member again with its data directory (it rejoins the cluster). */
  start(name: string): Promise<void>;
  /** The last lines a member wrote to its log (for a failing test's message). */
  log(name: string): string;
  /** Stops every member and removes the data directories. */
  close(): Promise<void>;
}

export interface EtcdClusterOptions {
  /** Members (1 or 3 in practice); default 1. */
  size?: number;
  /** Each member's host address (default 127.0.0.1 for all). */
  hosts?: string[];
  /** Runs member i inside this network namespace (`ip netns exec`). */
  netns?: (i: number) => string | undefined;
  /** Client and peer ports per member; default: free loopback ports. */
  ports?: { client: number; peer: number }[];
  /**
   * TLS for clients (PEM files): https:// client URLs, the server's certificate and key, and
   * client certificates of `ca` required (--client-cert-auth). `client` is what the helper's
   * health check presents.
   */
  tls?: { ca: string; cert: string; key: string; client: { cert: string; key: string } };
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

/**
 * Starts an etcd cluster and waits until every member answers /health. Registered with
 * `t.teardown` before the first process starts, so nothing outlives the test.
 */
export async function startEtcd(t: Teardown, o: EtcdClusterOptions = {}): Promise<EtcdCluster> {
  const size = o.size ?? 1;
  const root = mkdtempSync(join(tmpdir(), 'mip6-etcd-'));
  const token = `mip6-${process.pid}-${Date.now().toString(36)}`;
  const members: EtcdMember[] = [];
  for (let i = 0; i < size; i++) {
    const host = o.hosts?.[i] ?? '127.0.0.1';
    const bracket = host.includes(':') ? `[${host}]` : host;
    const ports = o.ports?.[i] ?? { client: await freePort(), peer: await freePort() };
    members.push({
      name: `e${i}`,
      clientUrl: `${o.tls === undefined ? 'http' : 'https'}://${bracket}:${ports.client}`,
      peerUrl: `http://${bracket}:${ports.peer}`,
      dataDir: join(root, `e${i}`),
      process: undefined,
    });
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  const started = new Set<string>();

  const spawnMember = (m: EtcdMember): void => {
    const i = members.indexOf(m);
    const logFd = openSync(`${m.dataDir}.log`, 'a');
    const args = [
      '--name',
      m.name,
      '--data-dir',
      m.dataDir,
      '--listen-client-urls',
      m.clientUrl,
      '--advertise-client-urls',
      m.clientUrl,
      '--listen-peer-urls',
      m.peerUrl,
      '--initial-advertise-peer-urls',
      m.peerUrl,
      '--initial-cluster',
      initialCluster,
      '--initial-cluster-token',
      token,
      '--initial-cluster-state',
      started.has(m.name) ? 'existing' : 'new',
      // Faster elections than the defaults (100 ms / 1 s): a killed leader is replaced sooner.
      '--heartbeat-interval',
      '50',
      '--election-timeout',
      '500',
      ...(o.tls === undefined
        ? []
        : [
            '--client-cert-auth',
            '--trusted-ca-file',
            o.tls.ca,
            '--cert-file',
            o.tls.cert,
            '--key-file',
            o.tls.key,
          ]),
    ];
    const ns = o.netns?.(i);
    // setpriv --pdeathsig: etcd dies with the test process even when that one is killed or
    // crashes before its teardown (`ip netns exec` and setpriv exec, keeping the same PID).
    const etcd = ['setpriv', '--pdeathsig', 'KILL', '--', 'etcd', ...args];
    const child =
      ns === undefined
        ? spawn(etcd[0]!, etcd.slice(1), { stdio: ['ignore', logFd, logFd] })
        : spawn('ip', ['netns', 'exec', ns, ...etcd], { stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    child.on('exit', () => {
      if (m.process === child) m.process = undefined;
      process.off('exit', killOnExit);
    });
    const killOnExit = (): void => {
      child.kill('SIGKILL');
    };
    process.on('exit', killOnExit);
    m.process = child;
    started.add(m.name);
  };

  const stopMember = async (m: EtcdMember, signal: NodeJS.Signals): Promise<void> => {
    const child = m.process;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal); // by its PID: the process this helper started
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };

  const cluster: EtcdCluster = {
    members,
    endpoints: members.map((m) => m.clientUrl),
    async stop(name, signal = 'SIGKILL') {
      await stopMember(member(name), signal);
    },
    async start(name) {
      const m = member(name);
      if (m.process !== undefined) return;
      spawnMember(m);
      await waitHealthy(m);
    },
    log(name) {
      try {
        return readFileSync(`${member(name).dataDir}.log`, 'utf8')
          .split('\n')
          .slice(-20)
          .join('\n');
      } catch {
        return '';
      }
    },
    async close() {
      await Promise.all(members.map((m) => stopMember(m, 'SIGTERM')));
      rmSync(root, { recursive: true, force: true });
    },
  };
  function member(name: string): EtcdMember {
    const m = members.find((x) => x.name === name);
    if (m === undefined) throw new Error(`no etcd member ${name}`);
    return m;
  }
  const waitHealthy = async (m: EtcdMember): Promise<void> => {
    const ns = o.netns?.(members.indexOf(m));
    await waitFor(
      `etcd ${m.name} at ${m.clientUrl} healthy`,
      async () => {
        if (m.process === undefined) throw new Error(`exited: ${cluster.log(m.name)}`);
        if (o.tls !== undefined) return healthyTls(m.clientUrl, o.tls.ca, o.tls.client);
        return ns === undefined ? healthy(m.clientUrl) : healthyIn(ns, m.clientUrl);
      },
      20_000,
      50,
    );
  };
  t.teardown(() => cluster.close());
  for (const m of members) spawnMember(m);
  await Promise.all(members.map(waitHealthy));
  return cluster;
}

/** GET /health of a client URL: {"health":"true"} once the member has a leader. */
async function healthy(clientUrl: string): Promise<boolean> {
  const r = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1_000) });
  const body = (await r.json()) as { health?: string };
  return body.health === 'true';
}

/** The same over TLS with a client certificate. */
function healthyTls(
  clientUrl: string,
  ca: string,
  client: { cert: string; key: string },
): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const req = httpsGet(
      `${clientUrl}/health`,
      {
        ca: readFileSync(ca),
        cert: readFileSync(client.cert),
        key: readFileSync(client.key),
        timeout: 1_000,
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve((JSON.parse(body) as { health?: string }).health === 'true'));
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });
}

/** The same from inside a namespace (the test process itself is outside it). */
function healthyIn(ns: string, clientUrl: string): boolean {
  const r = spawnSync(
    'ip',
    [
      'netns',
      'exec',
      ns,
      'node',
      '-e',
      `fetch(${JSON.stringify(`${clientUrl}/health`)},{signal:AbortSignal.timeout(1000)})` +
        `.then(r=>r.json()).then(b=>process.exit(b.health==='true'?0:1),()=>process.exit(1))`,
    ],
    { timeout: 5_000 },
  );
  return r.status === 0;
}
