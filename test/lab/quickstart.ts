/**
 * The README's "Quick start" run for real (issue 19), shared by test/lab/quickstart.test.ts (the
 * repository's CLI) and test/package/package-install.test.ts (the packed, installed package):
 * two network namespaces joined by a veth stand in for the server and the laptop; the `mip6 ...`
 * lines of the Quick start block run as written, with only what a test must redirect:
 * $MIP6_CONFIG_DIR / $MIP6_CA_DIR per host (temp dirs), the server's name replaced by its
 * address, a control socket in the temp dir, and `service install` writing into a temp unit dir
 * without systemd (the test then starts the daemon with the unit's own ExecStart command line
 * inside the host's namespace). `scp` is a copy into the laptop's working directory.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNetns, REPO_ROOT, run, uniqueName } from '../helpers/netns.js';
import { Daemon } from './mip6-lab.js';

/** The server's name in the README and the address the test gives it. */
export const README_SERVER = 'ha.example.net';
export const HA_UNDERLAY = '198.51.100.1';
export const LAPTOP_UNDERLAY = '198.51.100.10';
export const HOME_PREFIX = '2001:db8:100::/64';
export const HA_HOME = '2001:db8:100::1';
export const LAPTOP_HOA = '2001:db8:100::10';

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** The shell lines of the README's Quick start code block (comments and blank lines dropped). */
export function readmeQuickstart(): string[] {
  const text = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = text.split('\n## Quick start\n')[1]?.split('\n## ')[0] ?? '';
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  return block
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

export interface Hosts {
  ha: string;
  laptop: string;
  /** Temp root: ha-etc, ha-ca, laptop-etc, laptop-home, units, sockets. */
  dir: string;
}

/** Two namespaces on one veth (198.51.100.0/24), removed with the temp dir in teardown. */
export async function twoHosts(t: Teardown): Promise<Hosts> {
  const dir = mkdtempSync(join(tmpdir(), 'mip6-quickstart-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ha = await createNetns(t, 'qh');
  const laptop = await createNetns(t, 'ql');
  const a = uniqueName('qa');
  const b = uniqueName('qb');
  await run('ip', [
    'link',
    'add',
    a,
    'netns',
    ha,
    'type',
    'veth',
    'peer',
    'name',
    b,
    'netns',
    laptop,
  ]);
  await run('ip', ['-n', ha, 'addr', 'add', `${HA_UNDERLAY}/24`, 'dev', a]);
  await run('ip', ['-n', laptop, 'addr', 'add', `${LAPTOP_UNDERLAY}/24`, 'dev', b]);
  await run('ip', ['-n', ha, 'link', 'set', a, 'up']);
  await run('ip', ['-n', laptop, 'link', 'set', b, 'up']);
  for (const d of ['ha-etc', 'ha-ca', 'laptop-etc', 'laptop-home', 'units']) {
    mkdirSync(join(dir, d), { mode: 0o700 });
  }
  return { ha, laptop, dir };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `argv` (mip6 and its arguments) with `env` added, in `cwd`. */
export function cli(argv: string[], env: Record<string, string>, cwd: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const [cmd, ...args] = argv;
    const child = spawn(cmd!, args, {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Pings the home agent's home address from the laptop through the tunnel: replies received. */
export function pingHomeAgent(hosts: Hosts, count: number): Promise<number> {
  return new Promise((resolve) => {
    const args = ['netns', 'exec', hosts.laptop, 'ping', '-6', '-c', String(count), '-i', '0.2'];
    execFile('ip', [...args, '-W', '2', HA_HOME], (_err, stdout) => {
      resolve(Number(/(\d+) received/.exec(stdout)?.[1] ?? 0));
    });
  });
}

/** The command line of a unit's ExecStart=. */
export function execStart(unitFile: string): string[] {
  const line = /^ExecStart=(.*)$/m.exec(readFileSync(unitFile, 'utf8'))?.[1];
  if (line === undefined) throw new Error(`${unitFile}: no ExecStart=`);
  return line.split(' ');
}

export interface QuickstartOptions {
  /** How to run `mip6`: e.g. ['/prefix/bin/mip6'] or [node, '--import', tsx, main.ts]. */
  mip6: string[];
  /**
   * The daemon command line from the unit's ExecStart (node, bin/mip6, role, -c, config, ...)
   * turned into what to run; default: as written (the installed package).
   */
  daemonArgv?: (execStartArgv: string[]) => string[];
}

export interface Quickstart {
  ha: Daemon;
  mn: Daemon;
  haSocket: string;
  mnSocket: string;
  /** Every `mip6` command run, with its output. */
  commands: { line: string; result: CliResult }[];
  env: { ha: Record<string, string>; laptop: Record<string, string> };
  /** Starts a daemon again from its unit (e.g. the MN after a revocation). */
  restart(role: 'ha' | 'mn'): Daemon;
}

function startFromUnit(
  hosts: Hosts,
  role: 'ha' | 'mn',
  opts: QuickstartOptions,
  socket: string,
): Daemon {
  const argv = execStart(join(hosts.dir, 'units', `mip6-${role}.service`));
  const [cmd, ...args] = (opts.daemonArgv ?? ((a: string[]) => a))(argv);
  const ns = role === 'ha' ? hosts.ha : hosts.laptop;
  const child: ChildProcess = spawn('ip', ['netns', 'exec', ns, cmd!, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: REPO_ROOT,
  });
  return new Daemon(child, socket);
}

/**
 * Runs the README's Quick start on `hosts`; resolves once both daemons run. The daemons are
 * stopped in teardown.
 */
export async function quickstart(
  t: Teardown,
  hosts: Hosts,
  opts: QuickstartOptions,
): Promise<Quickstart> {
  const haSocket = join(hosts.dir, 'ha.sock');
  const mnSocket = join(hosts.dir, 'mn.sock');
  const env = {
    ha: { MIP6_CONFIG_DIR: join(hosts.dir, 'ha-etc'), MIP6_CA_DIR: join(hosts.dir, 'ha-ca') },
    laptop: { MIP6_CONFIG_DIR: join(hosts.dir, 'laptop-etc'), MIP6_CA_DIR: '/nonexistent' },
  };
  const daemons: Daemon[] = [];
  t.teardown(async () => {
    for (const d of daemons) await d.stop().catch(() => d.child.kill('SIGKILL'));
  });
  const commands: Quickstart['commands'] = [];
  let host: 'ha' | 'laptop' = 'ha';
  let ha: Daemon | undefined;
  let mn: Daemon | undefined;
  for (const line of readmeQuickstart()) {
    if (line.startsWith('npm install')) continue; // the caller installed mip6 its own way
    if (line.startsWith('scp ')) {
      // scp ~/.mip6-ca/members/laptop.join root@laptop:  ->  into the laptop's home
      const file = line.split(' ')[1]!.replace('~/.mip6-ca', env.ha.MIP6_CA_DIR);
      copyFileSync(file, join(hosts.dir, 'laptop-home', 'laptop.join'));
      host = 'laptop';
      continue;
    }
    const words = line.split(' ');
    if (words[0] !== 'mip6') throw new Error(`Quick start: unexpected line "${line}"`);
    const args = words.slice(1).map((w) => (w === README_SERVER ? HA_UNDERLAY : w));
    if (args[0] === 'init' || args[0] === 'join')
      args.push('--control-socket', host === 'ha' ? haSocket : mnSocket);
    if (args[0] === 'service' && args[1] === 'install') {
      args.push('--unit-dir', join(hosts.dir, 'units'), '--no-enable', '--user', 'root');
    }
    const cwd = host === 'ha' ? hosts.dir : join(hosts.dir, 'laptop-home');
    const result = await cli([...opts.mip6, ...args], env[host], cwd);
    commands.push({ line, result });
    if (result.code !== 0) {
      throw new Error(`"${line}" exited ${result.code}: ${result.stderr.trim()}`);
    }
    if (args[0] === 'service' && args[1] === 'install') {
      const role = args[2] as 'ha' | 'mn';
      const d = startFromUnit(hosts, role, opts, role === 'ha' ? haSocket : mnSocket);
      daemons.push(d);
      if (role === 'ha') ha = await d.waitLog((l) => l.event === 'started').then(() => d);
      else mn = d;
    }
  }
  if (ha === undefined || mn === undefined) throw new Error('Quick start: no service install');
  return {
    ha,
    mn,
    haSocket,
    mnSocket,
    commands,
    env,
    restart: (role) => {
      const d = startFromUnit(hosts, role, opts, role === 'ha' ? haSocket : mnSocket);
      daemons.push(d);
      return d;
    },
  };
}
