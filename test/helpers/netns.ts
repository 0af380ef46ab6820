/**
 * Helpers for tests that need root: skip reasons, throw-away network namespaces with unique
 * names (deleted in teardown even on failure), and running a TypeScript fixture inside one
 * (`ip netns exec NS node --import tsx script.ts`): the TUN and sockets belong to the netns
 * of the process that opens them.
 */
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Why native tests cannot run here, or undefined when they can. */
export function nativeSkipReason(): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux (TUN, network namespaces)';
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, TUN)';
  if (!existsSync('/dev/net/tun')) return 'needs /dev/net/tun (modprobe tun)';
  if (!existsSync(`${REPO_ROOT}build/Release/mip6.node`))
    return 'needs the addon built (npm install / npx node-gyp rebuild)';
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    return 'needs iproute2 (ip)';
  }
  return undefined;
}

/** A unique short name: prefix + pid + random, within IFNAMSIZ when prefix <= 4 chars. */
export function uniqueName(prefix: string): string {
  return `${prefix}${(process.pid % 10000).toString(36)}${randomBytes(2).toString('hex')}`;
}

/** Runs a command, resolving with stdout; rejects with stderr in the message. */
export function run(cmd: string, args: readonly string[], timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** Creates a netns with loopback up; deleted in t.teardown. */
export async function createNetns(t: Teardown, prefix = 'mt'): Promise<string> {
  const ns = uniqueName(`mip6${prefix}`);
  await run('ip', ['netns', 'add', ns]);
  t.teardown(() => run('ip', ['netns', 'del', ns]).catch(() => undefined));
  await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  return ns;
}

/** Sets sysctls (`name=value` each) inside `ns`. */
export async function nsSysctl(ns: string, settings: readonly string[]): Promise<void> {
  await run('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', ...settings]);
}

/** Duplicate address detection off in `ns` (all and default): new addresses work at once. */
export async function noDad(ns: string): Promise<void> {
  await nsSysctl(ns, ['net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
}

/**
 * Two fresh namespaces (prefixes as createNetns) with DAD off, joined by a veth pair: `ifA` in
 * the first, `ifB` in the second, both still down. Both are deleted in t.teardown.
 */
export async function linkedNetns(
  t: Teardown,
  prefixes: [string, string],
  names: [string, string],
): Promise<[string, string]> {
  const a = await createNetns(t, prefixes[0]);
  const b = await createNetns(t, prefixes[1]);
  await noDad(a);
  await noDad(b);
  await run('ip', [
    '-n',
    a,
    'link',
    'add',
    names[0],
    'type',
    'veth',
    'peer',
    'name',
    names[1],
    'netns',
    b,
  ]);
  return [a, b];
}

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The last stdout line parsed as JSON, when it is JSON. */
  result: unknown;
}

/** A fixture started by startFixture: its first stdout line, and its end. */
export interface StartedFixture {
  /** The first line it prints (e.g. the port it bound); rejects if it exits first. */
  firstLine: Promise<string>;
  done: Promise<ChildResult>;
}

/**
 * Starts `node --import tsx <fixture> ...args` inside `ns` (or the current netns when ns is
 * undefined), killing it after timeoutMs. `prefix` runs before node (e.g. setpriv). Killed in
 * t.teardown when `t` is given.
 */
export function startFixture(
  ns: string | undefined,
  fixture: string,
  args: readonly string[] = [],
  options: {
    timeoutMs?: number;
    prefix?: readonly string[];
    t?: { teardown(fn: () => void): void };
  } = {},
): StartedFixture {
  const script = fileURLToPath(new URL(`../native/fixtures/${fixture}`, import.meta.url));
  const nodeArgv = [
    ...(options.prefix ?? []),
    process.execPath,
    '--import',
    'tsx',
    script,
    ...args,
  ];
  const argv = ns === undefined ? nodeArgv : ['ip', 'netns', 'exec', ns, ...nodeArgv];
  const [cmd, ...rest] = argv;
  const child = spawn(cmd ?? 'false', rest, {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  options.t?.teardown(() => child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const firstLine = new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const nl = stdout.indexOf('\n');
      if (nl >= 0) resolve(stdout.slice(0, nl));
    });
    child.on('close', () => reject(new Error(`${fixture} exited: ${stderr.slice(0, 500)}`)));
  });
  firstLine.catch(() => undefined);
  const done = new Promise<ChildResult>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const last = stdout.trim().split('\n').pop() ?? '';
      let result: unknown;
      try {
        result = JSON.parse(last);
      } catch {
        result = undefined;
      }
      resolve({ code, signal, stdout, stderr, result });
    });
  });
  return { firstLine, done };
}

/**
 * Runs `node --import tsx <fixture> ...args` inside `ns` (or the current netns when ns is
 * undefined), killing it after timeoutMs. `prefix` runs before node (e.g. setpriv).
 */
export function runFixture(
  ns: string | undefined,
  fixture: string,
  args: readonly string[] = [],
  options: { timeoutMs?: number; prefix?: readonly string[] } = {},
): Promise<ChildResult> {
  return startFixture(ns, fixture, args, options).done;
}

/** The Python that tests run scapy fixtures with (Debian's python3-scapy). */
export const SCAPY_PYTHON = '/usr/bin/python3';

/** Why a scapy test skips: `skip` (the native reason) first, else a Python without scapy. */
export function scapySkipReason(skip: string | false): string | false {
  if (skip !== false) return skip;
  const found = spawnSync(SCAPY_PYTHON, ['-c', 'import scapy'], { stdio: 'ignore' }).status === 0;
  return found ? false : `${SCAPY_PYTHON} lacks scapy (install python3-scapy)`;
}

/**
 * The IPv6 link-local address of `dev` in `ns` once the kernel lists it (waits up to 10 s;
 * in namespaces without DAD it is usable as soon as it is listed). Throws when it never comes.
 */
export async function linkLocalAddress(ns: string, dev: string): Promise<string> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const a = JSON.parse(await run('ip', ['-n', ns, '-j', '-6', 'addr', 'show', 'dev', dev])) as {
      addr_info?: { scope: string; local: string }[];
    }[];
    const ll = (a[0]?.addr_info ?? []).find((x) => x.scope === 'link');
    if (ll !== undefined) return ll.local;
    if (Date.now() > deadline) throw new Error(`no link-local address on ${dev} in ${ns}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
