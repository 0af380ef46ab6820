/**
 * mip6 on top of the netns lab: provisions an overlay authority, keys and certificates with the
 * real `mip6` CLI commands, writes ha.toml / mn.toml, and runs the real daemons (from src/ via
 * tsx, so tests never run a stale build) inside the lab's namespaces. Used by the lab tests and
 * by `npm run demo`.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildProgram } from '../../src/cli/program.js';
import { controlRequest } from '../../src/io/control-socket.js';
import type { HaStatus, MemberStatus } from '../../src/io/control-protocol.js';
import { LAB_ADDR, type Lab, type LabNode } from './lab.js';

export const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BUILT_MAIN = join(ROOT, 'dist', 'cli', 'main.js');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/**
 * How to run the mip6 CLI: the compiled build when it is at least as new as every source file
 * (CI builds before testing; starting it is fast), otherwise the sources through tsx, so a test
 * never runs stale code.
 */
export function mip6Command(): string[] {
  if (existsSync(BUILT_MAIN) && statSync(BUILT_MAIN).mtimeMs >= newestMtime(join(ROOT, 'src'))) {
    return [BUILT_MAIN];
  }
  return ['--import', import.meta.resolve('tsx'), MAIN];
}
export const HOME_PREFIX = LAB_ADDR.ha.homePrefix;

async function cli(args: string[]): Promise<void> {
  const program = buildProgram();
  program.exitOverride();
  program.configureOutput({ writeOut: () => undefined, writeErr: (s) => process.stderr.write(s) });
  // The key commands report what they wrote on stdout; the lab keeps its output quiet.
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = (() => true) as typeof process.stdout.write;
  try {
    await program.parseAsync(['node', 'mip6', ...args]);
  } finally {
    process.stdout.write = write;
  }
}

export interface MemberFiles {
  key: string;
  pub: string;
  cert: string;
}

/** A temp directory with the authority and one key pair + certificate per member. */
export class Provisioned {
  readonly dir: string;
  readonly authorityPub: string;
  constructor(dir: string) {
    this.dir = dir;
    this.authorityPub = join(dir, 'ca', 'authority.pub');
  }

  static async create(): Promise<Provisioned> {
    const dir = mkdtempSync(join(tmpdir(), 'mip6-lab-'));
    await cli(['ca', 'init', '--out', join(dir, 'ca')]);
    return new Provisioned(dir);
  }

  /** `mip6 keygen` + `mip6 cert issue` for one member. */
  async member(name: string, role: 'ha' | 'mn' | 'cn', addresses: string[]): Promise<MemberFiles> {
    const base = join(this.dir, name);
    await cli(['keygen', '--out', base]);
    const cert = `${base}.cert`;
    const addr = addresses.flatMap((a) => ['--address', a]);
    await cli([
      'cert',
      'issue',
      '--ca',
      join(this.dir, 'ca'),
      '--pub',
      `${base}.pub`,
      '--name',
      name,
      ...addr,
      '--role',
      role,
      '--out',
      cert,
    ]);
    return { key: `${base}.key`, pub: `${base}.pub`, cert };
  }

  write(name: string, text: string): string {
    const file = join(this.dir, name);
    writeFileSync(file, text);
    return file;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function haToml(p: Provisioned, ha: MemberFiles, extra = ''): string {
  return p.write(
    'ha.toml',
    `# home agent of the lab
control_socket = "${join(p.dir, 'ha.sock')}"

[identity]
private_key = "${ha.key}"
certificate = "${ha.cert}"
authority = "${p.authorityPub}"

[tun]
name = "mip6ha"

[home]
prefix = "${HOME_PREFIX}"
address = "${LAB_ADDR.ha.home}"
link = "homebr"
${extra}`,
  );
}

export function mnToml(
  p: Provisioned,
  name: string,
  mn: MemberFiles,
  ha: MemberFiles,
  opts: { homeAddress?: string; lifetime?: number; extraHome?: string } = {},
): string {
  return p.write(
    `${name}.toml`,
    `# mobile node of the lab
control_socket = "${join(p.dir, `${name}.sock`)}"

[identity]
private_key = "${mn.key}"
certificate = "${mn.cert}"
authority = "${p.authorityPub}"

[tun]
name = "mip6mn"

[home]
address = "${opts.homeAddress ?? LAB_ADDR.mn.homeAddress}"
prefix_length = 64
agent = ["${LAB_ADDR.ha.v4}", "${LAB_ADDR.ha.v6}"]
agent_address = "${LAB_ADDR.ha.home}"
agent_public_key = "${ha.pub}"
lifetime = ${opts.lifetime ?? 600}
${opts.extraHome ?? ''}

[underlay]
prefer = "ipv4"
`,
  );
}

/** Home address of the lab's correspondent member (`mip6 cn`). */
export const CN_HOME_ADDRESS = '2001:db8:100::20';

/**
 * cn.toml of a member that answers return routability (`mip6 cn`): its own home address at the
 * lab's HA, underlay port 4191, route optimization on; `extra` is appended (correspondents).
 */
export function cnToml(
  p: Provisioned,
  cn: MemberFiles,
  ha: MemberFiles,
  o: { name?: string; homeAddress?: string; tun?: string; extra?: string } = {},
): string {
  const name = o.name ?? 'cn';
  return p.write(
    `${name}.toml`,
    `# correspondent node of the lab
control_socket = "${join(p.dir, `${name}.sock`)}"

[identity]
private_key = "${cn.key}"
certificate = "${cn.cert}"
authority = "${p.authorityPub}"

[tun]
name = "${o.tun ?? 'mip6cn'}"

[home]
address = "${o.homeAddress ?? CN_HOME_ADDRESS}"
prefix_length = 64
agent = ["${LAB_ADDR.ha.v4}", "${LAB_ADDR.ha.v6}"]
agent_address = "${LAB_ADDR.ha.home}"
agent_public_key = "${ha.pub}"

[underlay]
port = 4191
prefer = "ipv4"

[route_optimization]
enabled = true
${o.extra ?? ''}`,
  );
}

/** A [[correspondent]] section: by default the lab's CN at its dual-stack uplink. */
export function correspondentSection(
  publicKey: string,
  routeOptimization: boolean,
  o: { address?: string; underlay?: string[] } = {},
): string {
  const underlay = o.underlay ?? [LAB_ADDR.cn.v4, LAB_ADDR.cn.v6];
  return `
[[correspondent]]
address = "${o.address ?? CN_HOME_ADDRESS}"
underlay = [${underlay.map((u) => `"${u}"`).join(', ')}]
port = 4191
public_key = "${publicKey}"
route_optimization = ${routeOptimization}
`;
}

/** One JSON log line of a daemon. */
export type LogLine = Record<string, unknown> & { event?: string; level?: string };

/** A daemon running in a lab namespace, with its JSON log lines collected. */
export class Daemon {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  readonly stderrText: string[] = [];
  readonly socket: string;
  readonly #waiters = new Set<() => void>();
  exited: { code: number | null; signal: string | null } | undefined;

  constructor(child: ChildProcess, socket: string) {
    this.child = child;
    this.socket = socket;
    let buf = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      const parts = buf.split('\n');
      buf = parts.pop() ?? '';
      for (const l of parts) {
        this.stderrText.push(l);
        try {
          this.lines.push(JSON.parse(l) as LogLine);
        } catch {
          // not a log line (e.g. a crash trace): kept in stderrText
        }
      }
      for (const w of this.#waiters) w();
    });
    child.once('exit', (code, signal) => {
      this.exited = { code, signal };
      for (const w of this.#waiters) w();
    });
  }

  /** Resolves with the first log line (from index `from`) that matches, or rejects after timeoutMs. */
  waitLog(match: (l: LogLine) => boolean, timeoutMs = 30_000, from = 0): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const found = this.lines.slice(from).find(match);
        if (found) {
          cleanup();
          resolve(found);
        } else if (this.exited) {
          cleanup();
          reject(
            new Error(
              `daemon exited (${this.exited.code ?? this.exited.signal}): ${this.stderrText.slice(-5).join(' | ')}`,
            ),
          );
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for a log line; last: ${this.stderrText.slice(-5).join(' | ')}`,
          ),
        );
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  async status<T extends HaStatus | MemberStatus>(): Promise<T> {
    const r = await controlRequest(this.socket, { cmd: 'status' });
    return r as T;
  }

  /** SIGTERM and wait for the exit (bounded). */
  stop(timeoutMs = 8000): Promise<{ code: number | null; signal: string | null }> {
    return new Promise((resolve, reject) => {
      if (this.exited) {
        resolve(this.exited);
        return;
      }
      const timer = setTimeout(
        () => reject(new Error(`daemon did not exit within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.child.once('exit', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal });
      });
      this.child.kill('SIGTERM');
    });
  }
}

/** Starts `mip6 <role> -c config --log-format json` in a lab namespace. */
export function startDaemon(
  lab: Lab,
  node: LabNode,
  role: 'ha' | 'mn' | 'cn',
  config: string,
  socket: string,
  extraArgs: string[] = [],
): Daemon {
  const child = lab.spawn(node, process.execPath, [
    ...mip6Command(),
    role,
    '-c',
    config,
    '--log-format',
    'json',
    ...extraArgs,
  ]);
  return new Daemon(child, socket);
}
