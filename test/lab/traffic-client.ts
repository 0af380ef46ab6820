/**
 * Drives test/lab/traffic.ts from a test or the demo. The caller supplies `spawnFn(cmd, args)`,
 * which starts the command with piped stdio wherever it should run (locally: `spawnLocal`; in a
 * namespace: `netnsSpawn(ns)`, i.e. `ip netns exec NS cmd ...args`).
 *
 *   const server = spawnTrafficServer(netnsSpawn(cnNs), { listen: '::' });
 *   const { port } = await server.ready();
 *   const client = spawnTrafficClient(netnsSpawn(mnNs), { connect: cnAddr, port });
 *   await client.ready();
 *   await Promise.all([client.mark('move-1'), server.mark('move-1')]);  // then move the MN
 *   ... (await the new binding) ...
 *   const [c, s] = await Promise.all([client.stop(), server.stop()]);
 *   // c.gapsAfterMarks[0].gapMs: server->client interruption; s.gapsAfterMarks[0].gapMs: client->server
 *
 * Every wait has a timeout and also fails at once, with the child's stderr, when the child exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { TrafficReport } from './traffic.js';

export type { MarkGap, TrafficReport } from './traffic.js';

/** Starts `cmd args` with stdio ['pipe', 'pipe', 'pipe'] and returns the child. */
export type SpawnFn = (cmd: string, args: readonly string[]) => ChildProcess;

export const TRAFFIC_SCRIPT = fileURLToPath(new URL('./traffic.ts', import.meta.url));

/** Runs the command here. */
export const spawnLocal: SpawnFn = (cmd, args) => spawn(cmd, [...args], { stdio: 'pipe' });

/** Runs the command inside network namespace `ns` (needs root). */
export function netnsSpawn(ns: string): SpawnFn {
  return (cmd, args) => spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: 'pipe' });
}

/** The command line that runs traffic.ts with `args` (absolute paths: works from any cwd). */
export function trafficCommand(args: readonly string[]): { cmd: string; args: string[] } {
  return {
    cmd: process.execPath,
    args: ['--import', import.meta.resolve('tsx'), TRAFFIC_SCRIPT, ...args],
  };
}

export interface TrafficCommonOptions {
  /** Bytes per second each way (default 1 MB/s). */
  rate?: number;
  /** Seconds after connecting at which this side ends its stream (client 30, server 600). */
  durationS?: number;
  /** Default timeout of ready/mark/report in ms (default 15 s; stop: 90 s). */
  timeoutMs?: number;
  /** Extra command-line flags (e.g. ['--corrupt-at', '1000'] in tests). */
  extraArgs?: readonly string[];
}

export interface TrafficServerOptions extends TrafficCommonOptions {
  listen: string;
  /** 0 (default) picks a free port, reported by ready(). */
  port?: number;
}

export interface TrafficClientOptions extends TrafficCommonOptions {
  connect: string;
  port: number;
  bind?: string;
}

export interface TrafficEndpointInfo {
  address: string;
  port: number;
}

export interface TrafficFinal extends TrafficReport {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
}

type TrafficEvent = Record<string, unknown> & { event?: unknown };

interface Waiter {
  what: string;
  match: (ev: TrafficEvent) => boolean;
  resolve: (ev: TrafficEvent) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

const DEFAULT_TIMEOUT_MS = 15_000;
const DEFAULT_STOP_TIMEOUT_MS = 90_000; // > the tool's drain timeout (60 s)
const STDERR_KEEP = 8192;

/** One running traffic.ts process. */
export class TrafficProcess {
  readonly child: ChildProcess;
  private readonly events: TrafficEvent[] = [];
  private readonly waiters = new Set<Waiter>();
  private stderrText = '';
  private nextId = 1;
  private exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly closed: Promise<void>;
  readonly role: 'server' | 'client';
  private readonly timeoutMs: number;

  constructor(
    role: 'server' | 'client',
    spawnFn: SpawnFn,
    args: readonly string[],
    timeoutMs = DEFAULT_TIMEOUT_MS,
  ) {
    this.role = role;
    this.timeoutMs = timeoutMs;
    const command = trafficCommand(args);
    this.child = spawnFn(command.cmd, command.args);
    const { stdout, stderr, stdin } = this.child;
    if (!stdout || !stderr || !stdin)
      throw new TypeError('spawnFn must pipe stdin, stdout, stderr');
    stdin.on('error', () => undefined); // EPIPE once the child is gone: the exit explains it
    stderr.setEncoding('utf8');
    stderr.on('data', (s: string) => {
      this.stderrText = (this.stderrText + s).slice(-STDERR_KEEP);
    });
    createInterface({ input: stdout, crlfDelay: Infinity }).on('line', (line) => this.onLine(line));
    this.closed = new Promise((resolve) => {
      this.child.once('error', (err) => {
        this.stderrText += `\nspawn failed: ${err.message}`;
        this.onExit(null, null);
        resolve();
      });
      this.child.once('close', (code, signal) => {
        this.onExit(code, signal);
        resolve();
      });
    });
  }

  /** Every JSON event the child printed so far, in order (including warnings). */
  get log(): readonly Readonly<Record<string, unknown>>[] {
    return this.events;
  }

  /** What the child wrote on stderr (last 8 KiB). */
  get stderr(): string {
    return this.stderrText;
  }

  /** server: resolves when listening (with the actual port); client: when connected. */
  async ready(timeoutMs = this.timeoutMs): Promise<TrafficEndpointInfo> {
    const kind = this.role === 'server' ? 'listening' : 'connected';
    const ev = await this.waitFor(kind, (e) => e.event === kind, timeoutMs);
    const address = this.role === 'server' ? ev.address : ev.remoteAddress;
    const port = this.role === 'server' ? ev.port : ev.remotePort;
    return { address: String(address), port: Number(port) };
  }

  /** Resolves when the TCP connection is up (the server: when it accepted the client). */
  async connected(timeoutMs = this.timeoutMs): Promise<void> {
    await this.waitFor('connected', (e) => e.event === 'connected', timeoutMs);
  }

  /** Opens a new gap window named `label`; resolves once the tool recorded it. */
  async mark(label: string, timeoutMs = this.timeoutMs): Promise<void> {
    const id = this.send({ cmd: 'mark', label });
    await this.waitFor(`mark ${label}`, (e) => e.event === 'marked' && e.id === id, timeoutMs);
  }

  /** Sends at `bytesPerSecond` from now on (0: idle, the connection stays up). */
  async setRate(bytesPerSecond: number, timeoutMs = this.timeoutMs): Promise<void> {
    const id = this.send({ cmd: 'rate', bytesPerSecond });
    await this.waitFor('rate', (e) => e.event === 'rated' && e.id === id, timeoutMs);
  }

  /** A report of the direction this side receives (client: server->client). */
  async report(timeoutMs = this.timeoutMs): Promise<TrafficReport> {
    const id = this.send({ cmd: 'report' });
    const ev = await this.waitFor('report', (e) => e.event === 'report' && e.id === id, timeoutMs);
    return ev as unknown as TrafficReport;
  }

  /**
   * Ends the run cleanly (our END + FIN, the peer's remaining data verified) and resolves with
   * the final report and exit status; does not reject on a failed run (check `ok`/`exitCode`).
   */
  async stop(timeoutMs = DEFAULT_STOP_TIMEOUT_MS): Promise<TrafficFinal> {
    if (!this.exit && !this.finalEvent()) this.send({ cmd: 'stop' });
    return this.final(timeoutMs);
  }

  /** Waits, without asking, for the final report and exit (e.g. after --duration). */
  async final(timeoutMs = DEFAULT_STOP_TIMEOUT_MS): Promise<TrafficFinal> {
    const ev = await this.waitFor(
      'final report',
      (e) => e.event === 'report' && e.final === true,
      timeoutMs,
    );
    await withTimeout(this.closed, timeoutMs, () => this.timeoutError('exit', timeoutMs));
    const exit = this.exit ?? { code: null, signal: null };
    return { ...(ev as unknown as TrafficReport), exitCode: exit.code, signal: exit.signal };
  }

  /** Kills the child (teardown); safe to call at any time. */
  kill(): void {
    if (!this.exit) this.child.kill('SIGKILL');
  }

  private send(cmd: Record<string, unknown>): number {
    const id = this.nextId++;
    if (!this.exit && this.child.stdin?.writable)
      this.child.stdin.write(`${JSON.stringify({ ...cmd, id })}\n`);
    return id;
  }

  private finalEvent(): TrafficEvent | undefined {
    return this.events.find((e) => e.event === 'report' && e.final === true);
  }

  private onLine(line: string): void {
    let ev: unknown;
    try {
      ev = JSON.parse(line);
    } catch {
      this.stderrText = `${this.stderrText}[stdout] ${line}\n`.slice(-STDERR_KEEP);
      return;
    }
    if (typeof ev !== 'object' || ev === null) return;
    const event = ev as TrafficEvent;
    this.events.push(event);
    for (const w of this.waiters) if (w.match(event)) this.settle(w, () => w.resolve(event));
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exit) return;
    this.exit = { code, signal };
    for (const w of this.waiters) {
      const why = signal ?? `code ${code}`;
      const err = new Error(
        `traffic ${this.role} exited (${why}) before ${w.what}${this.stderrTail()}`,
      );
      this.settle(w, () => w.reject(err));
    }
  }

  private waitFor(
    what: string,
    match: (ev: TrafficEvent) => boolean,
    timeoutMs: number,
  ): Promise<TrafficEvent> {
    const seen = this.events.find(match);
    if (seen) return Promise.resolve(seen);
    if (this.exit) {
      const why = this.exit.signal ?? `code ${this.exit.code}`;
      return Promise.reject(
        new Error(`traffic ${this.role} exited (${why}) before ${what}${this.stderrTail()}`),
      );
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        what,
        match,
        resolve,
        reject,
        timer: setTimeout(
          () => this.settle(waiter, () => reject(this.timeoutError(what, timeoutMs))),
          timeoutMs,
        ),
      };
      this.waiters.add(waiter);
    });
  }

  private settle(w: Waiter, fn: () => void): void {
    if (!this.waiters.delete(w)) return;
    clearTimeout(w.timer);
    fn();
  }

  private timeoutError(what: string, timeoutMs: number): Error {
    return new Error(`traffic ${this.role}: no ${what} within ${timeoutMs} ms${this.stderrTail()}`);
  }

  private stderrTail(): string {
    const tail = this.stderrText.trim().slice(-1000);
    return tail === '' ? '' : `; stderr: ${tail}`;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, err: () => Error): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(err()), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

function commonArgs(o: TrafficCommonOptions): string[] {
  const args: string[] = [];
  if (o.rate !== undefined) args.push('--rate', String(o.rate));
  if (o.durationS !== undefined) args.push('--duration', String(o.durationS));
  return [...args, ...(o.extraArgs ?? [])];
}

/** Starts `traffic.ts server`; `await ready()` gives the port. */
export function spawnTrafficServer(spawnFn: SpawnFn, opts: TrafficServerOptions): TrafficProcess {
  const args = [
    'server',
    '--listen',
    opts.listen,
    '--port',
    String(opts.port ?? 0),
    ...commonArgs(opts),
  ];
  return new TrafficProcess('server', spawnFn, args, opts.timeoutMs);
}

/** Starts `traffic.ts client`; `await ready()` resolves once connected. */
export function spawnTrafficClient(spawnFn: SpawnFn, opts: TrafficClientOptions): TrafficProcess {
  const bind = opts.bind !== undefined ? ['--bind', opts.bind] : [];
  const args = [
    'client',
    '--connect',
    opts.connect,
    '--port',
    String(opts.port),
    ...bind,
    ...commonArgs(opts),
  ];
  return new TrafficProcess('client', spawnFn, args, opts.timeoutMs);
}

export interface TrafficPairOptions extends TrafficCommonOptions {
  serverSpawn: SpawnFn;
  clientSpawn: SpawnFn;
  listen: string;
  /** The address the client dials (default: `listen`). */
  connect?: string;
  port?: number;
  bind?: string;
}

export interface TrafficPair {
  server: TrafficProcess;
  client: TrafficProcess;
  /** Marks both sides (the same label). */
  mark(label: string): Promise<void>;
  /** client: server->client direction; server: client->server direction. */
  report(): Promise<{ client: TrafficReport; server: TrafficReport }>;
  stop(): Promise<{ client: TrafficFinal; server: TrafficFinal }>;
  kill(): void;
}

/** Starts a server, then a client connected to it; resolves when both sides are connected. */
export async function startTrafficPair(opts: TrafficPairOptions): Promise<TrafficPair> {
  const { serverSpawn, clientSpawn, listen, connect, port, bind, ...common } = opts;
  const server = spawnTrafficServer(serverSpawn, {
    ...common,
    listen,
    ...(port !== undefined ? { port } : {}),
  });
  let client: TrafficProcess | undefined;
  try {
    const info = await server.ready();
    client = spawnTrafficClient(clientSpawn, {
      ...common,
      connect: connect ?? listen,
      port: info.port,
      ...(bind !== undefined ? { bind } : {}),
    });
    await Promise.all([client.ready(), server.connected()]);
  } catch (err) {
    server.kill();
    client?.kill();
    throw err;
  }
  const c = client;
  return {
    server,
    client: c,
    mark: async (label) => {
      await Promise.all([c.mark(label), server.mark(label)]);
    },
    report: async () => {
      const [cr, sr] = await Promise.all([c.report(), server.report()]);
      return { client: cr, server: sr };
    },
    stop: async () => {
      const [cf, sf] = await Promise.all([c.stop(), server.stop()]);
      return { client: cf, server: sf };
    },
    kill: () => {
      c.kill();
      server.kill();
    },
  };
}
