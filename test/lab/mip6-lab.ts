/**
 * mip6 on top of the netns lab: provisions an overlay authority, keys and certificates with the
 * real `mip6` CLI commands, writes ha.toml / mn.toml, and runs the real daemons (from src/ via
 * tsx, so tests never run a stale build) inside the lab's namespaces. Used by the lab tests and
 * by `npm run demo`. LabSession is the lab tests' one setup: the lab and the provisioned files
 * with their cleanup, the home agent and the mobile node started and waited for.
 */
import type { ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildProgram } from '../../src/cli/program.js';
import { controlRequest } from '../../src/io/control-socket.js';
import type { HaStatus, MemberStatus } from '../../src/io/control-protocol.js';
import { createLab, LAB_ADDR, type Lab, type LabNode, type LabOptions } from './lab.js';

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

/** What a lab test registers its cleanup with (tap's `t`). */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A daemon LabSession started, with its member files and configuration file. */
export interface StartedDaemon {
  files: MemberFiles;
  config: string;
  daemon: Daemon;
}

export interface HomeAgentOptions {
  /** Appended to ha.toml (haToml's `extra`). */
  extra?: string;
  /** Rewrites the text of ha.toml before the start (another control socket, a group). */
  edit?: (toml: string) => string;
  /** The control socket, when `edit` moves it (default <dir>/ha.sock). */
  socket?: string;
  /** More `mip6 ha` arguments. */
  args?: string[];
}

export interface MobileNodeOptions {
  /** The member's name: its certificate, <name>.toml and <name>.sock (default 'laptop'). */
  name?: string;
  homeAddress?: string;
  lifetime?: number;
  /** Appended to <name>.toml (a [movement] section, for instance). */
  extra?: string;
  /** The namespace it runs in (default 'mn'). */
  node?: LabNode;
  /** More `mip6 mn` arguments. */
  args?: string[];
}

/**
 * One lab test's world: a provisioned overlay (Provisioned) and a lab (createLab, the MN on
 * "lte" unless told otherwise), removed in t.teardown, which is registered before anything else
 * can fail; daemons still running then are stopped first, the last started first.
 * homeAgent() and mobileNode() provision a member, write its configuration, start its daemon
 * and wait until it has started / registered; start() runs any other daemon. Every daemon's
 * log is kept in $MIP6_LAB_LOGS/<test>-<socket name>.log when that is set.
 */
export class LabSession {
  readonly lab: Lab;
  readonly prov: Provisioned;
  /** Every daemon started, in order. */
  readonly daemons: Daemon[] = [];
  readonly #name: string;
  readonly #timeoutMs: number;
  #ha: StartedDaemon | undefined;

  private constructor(lab: Lab, prov: Provisioned, name: string, timeoutMs: number) {
    this.lab = lab;
    this.prov = prov;
    this.#name = name;
    this.#timeoutMs = timeoutMs;
  }

  /**
   * `name` names the kept log files; `timeoutMs` bounds each wait for a daemon's start-up or
   * registration (default 30 s).
   */
  static async open(
    t: Teardown,
    name: string,
    o: LabOptions & { timeoutMs?: number } = {},
  ): Promise<LabSession> {
    const { timeoutMs = 30_000, ...labOptions } = o;
    const prov = await Provisioned.create();
    const lab = await createLab({ network: 'lte', ...labOptions }).catch((err: unknown) => {
      prov.remove(); // createLab removes what it built itself
      throw err;
    });
    const s = new LabSession(lab, prov, name, timeoutMs);
    t.teardown(() => s.#close());
    return s;
  }

  /** The home agent started by homeAgent(); throws before that. */
  get ha(): StartedDaemon {
    if (this.#ha === undefined) throw new Error('LabSession: homeAgent() has not run');
    return this.#ha;
  }

  /** startDaemon in this lab; the daemon's log is kept with the others. */
  start(
    node: LabNode,
    role: 'ha' | 'mn' | 'cn',
    config: string,
    socket: string,
    args: string[] = [],
  ): Daemon {
    const d = startDaemon(this.lab, node, role, config, socket, args);
    this.daemons.push(d);
    return d;
  }

  /** The lab's home agent (member "ha", the home prefix) in the "ha" namespace, started. */
  async homeAgent(o: HomeAgentOptions = {}): Promise<StartedDaemon> {
    const files = await this.prov.member('ha', 'ha', [LAB_ADDR.ha.homePrefix]);
    let config = haToml(this.prov, files, o.extra);
    if (o.edit !== undefined)
      config = this.prov.write('ha.toml', o.edit(readFileSync(config, 'utf8')));
    const socket = o.socket ?? join(this.prov.dir, 'ha.sock');
    const daemon = this.start('ha', 'ha', config, socket, o.args);
    await daemon.waitLog((l) => l.event === 'started', this.#timeoutMs);
    this.#ha = { files, config, daemon };
    return this.#ha;
  }

  /** A mobile node of the home agent (mnToml), registered. */
  async mobileNode(o: MobileNodeOptions = {}): Promise<StartedDaemon> {
    const name = o.name ?? 'laptop';
    const homeAddress = o.homeAddress ?? LAB_ADDR.mn.homeAddress;
    const files = await this.prov.member(name, 'mn', [homeAddress]);
    const toml = { homeAddress, ...(o.lifetime !== undefined ? { lifetime: o.lifetime } : {}) };
    const config = mnToml(this.prov, name, files, this.ha.files, toml);
    if (o.extra !== undefined) writeFileSync(config, `${readFileSync(config, 'utf8')}\n${o.extra}`);
    const socket = join(this.prov.dir, `${name}.sock`);
    const daemon = this.start(o.node ?? 'mn', 'mn', config, socket, o.args);
    await daemon.waitLog((l) => l.event === 'registered', this.#timeoutMs);
    return { files, config, daemon };
  }

  async #close(): Promise<void> {
    // The last started stops first (a mobile node before its home agent). A clean exit also
    // lets a daemon write its coverage, which the lab's SIGKILL would lose.
    for (const d of [...this.daemons].reverse()) {
      if (d.exited === undefined) await d.stop(5000).catch(() => undefined);
    }
    const dir = process.env['MIP6_LAB_LOGS'];
    if (dir !== undefined) {
      const seen = new Map<string, number>();
      for (const d of this.daemons) {
        const label = basename(d.socket, '.sock');
        const n = (seen.get(label) ?? 0) + 1;
        seen.set(label, n);
        const file = `${this.#name}-${label}${n > 1 ? `-${n}` : ''}.log`;
        writeFileSync(join(dir, file), d.stderrText.join('\n'));
      }
    }
    await this.lab.destroy();
    this.prov.remove();
  }
}
