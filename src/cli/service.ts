/**
 * `mip6 service install ha|mn|cn` and `mip6 service status` (issue 19): the systemd units of
 * contrib/ (least privilege: an unprivileged service user with CAP_NET_ADMIN + CAP_NET_RAW,
 * see SECURITY.md), written for this installation and enabled.
 *
 * install: check the role's config (DIR/ROLE.toml, as the daemon would) -> the unit from
 *   contrib/mip6-ROLE.service with this node binary, this mip6 and this config directory in
 *   ExecStart / ReadOnlyPaths, and the service user -> the service user is created when missing
 *   (useradd --system) and given the files the daemon reads (the config, its keys and
 *   certificates, the revocation list, and the directory); nothing else changes owner ->
 *   `systemctl daemon-reload` + `systemctl enable --now` (only `enable` when systemd is not
 *   running: next boot).
 * status: per role, whether its unit is installed, enabled and active, and what the daemon
 *   says on its control socket.
 * `--unit-dir`, `--no-enable` and $MIP6_SYSTEMCTL (the systemctl to run) let tests write a
 * unit without touching the system's systemd.
 */
import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, readFileSync, realpathSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Argument, type Command } from 'commander';
import {
  loadCnConfig,
  loadHaConfig,
  loadMnConfig,
  type AnyConfig,
  type Role,
} from '../config/index.js';
import { controlRequest } from '../io/control-socket.js';
import type { DaemonStatus } from '../io/control-protocol.js';
import { IoError } from '../util/errors.js';
import { configDir, reason, writePlan } from './enrol-files.js';
import { resolveUser, type TargetUser } from './privileges.js';

export const DEFAULT_UNIT_DIR = '/etc/systemd/system';
const SERVICE_USER = 'mip6';
const ROLES: readonly Role[] = ['ha', 'mn', 'cn'];
/** The package root: src/cli or dist/cli, two levels up. */
const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export function unitName(role: Role): string {
  return `mip6-${role}.service`;
}

function systemctl(): string {
  const env = process.env.MIP6_SYSTEMCTL;
  return env !== undefined && env !== '' ? env : 'systemctl';
}

/** True when systemd is the running init (what `systemctl --now` needs); with $MIP6_SYSTEMCTL
 *  (a test's stand-in) as if it were. */
function systemdRunning(): boolean {
  return existsSync('/run/systemd/system') || process.env.MIP6_SYSTEMCTL !== undefined;
}

async function loadConfig(role: Role, file: string): Promise<AnyConfig> {
  if (role === 'ha') return loadHaConfig(file);
  return role === 'cn' ? loadCnConfig(file) : loadMnConfig(file);
}

/** The files the daemon of `cfg` reads. */
function daemonFiles(cfg: AnyConfig): string[] {
  const id = cfg.identity;
  const files = [cfg.file, id.privateKey, id.certificate, id.authority];
  if (cfg.role === 'ha') {
    if (id.revocationList !== undefined) files.push(id.revocationList);
    for (const a of cfg.home.agents) if (a.publicKey !== undefined) files.push(a.publicKey);
  } else {
    if (cfg.home.agentPublicKey !== undefined) files.push(cfg.home.agentPublicKey);
    for (const c of cfg.correspondents) files.push(c.publicKey);
  }
  return files;
}

/** The unit text: contrib's unit, pointed at this node, this mip6 and this directory. */
export function unitText(role: Role, dir: string, config: string, user: string): string {
  const template = join(PACKAGE_ROOT, 'contrib', unitName(role === 'cn' ? 'mn' : role));
  let text: string;
  try {
    text = readFileSync(template, 'utf8');
  } catch (err) {
    throw new IoError('ERR_SERVICE', `${template}: cannot read the unit template: ${reason(err)}`);
  }
  const bin = realpathSync(join(PACKAGE_ROOT, 'bin', 'mip6'));
  text = text
    .replace(
      /^ExecStart=.*$/m,
      `ExecStart=${process.execPath} ${bin} ${role} -c ${config} --log-format json`,
    )
    .replace(/^ReadOnlyPaths=\/etc\/mip6$/m, `ReadOnlyPaths=${dir}`)
    .replace(/^User=.*$/m, `User=${user}`)
    .replace(/^Group=.*$/m, `Group=${user}`);
  if (role === 'cn') {
    text = text
      .replace(/^Description=.*$/m, 'Description=mip6 correspondent node (Mobile IPv6 overlay VPN)')
      .replace(
        /^# mip6 mobile node as a systemd service/m,
        '# mip6 correspondent node as a systemd service',
      );
  }
  return `# Written by \`mip6 service install ${role}\` from contrib/${unitName(role === 'cn' ? 'mn' : role)}.\n${text}`;
}

/** The service user, created (system user, no login) when it does not exist yet. */
function serviceUser(name: string): { user: TargetUser; created: boolean } {
  try {
    return { user: resolveUser(name), created: false };
  } catch {
    // not there yet
  }
  const r = spawnSync(
    'useradd',
    ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', name],
    { encoding: 'utf8' },
  );
  if (r.error !== undefined || r.status !== 0) {
    const why = r.error !== undefined ? reason(r.error) : r.stderr.trim() || `exit ${r.status}`;
    throw new IoError(
      'ERR_SERVICE',
      `cannot create the service user ${name} (useradd: ${why}); create it, or give --user NAME`,
    );
  }
  return { user: resolveUser(name), created: true };
}

function run(args: string[]): void {
  const r = spawnSync(systemctl(), args, { encoding: 'utf8' });
  if (r.error !== undefined) {
    throw new IoError(
      'ERR_SERVICE',
      `${systemctl()} ${args.join(' ')}: ${(r.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'systemctl not found (no systemd here?)' : reason(r.error)}`,
    );
  }
  if (r.status !== 0) {
    const why = r.stderr.trim().split('\n')[0] ?? `exit ${r.status}`;
    throw new IoError('ERR_SERVICE', `${systemctl()} ${args.join(' ')}: ${why}`);
  }
}

export interface ServiceInstallOptions {
  dir?: string;
  unitDir?: string;
  user?: string;
  enable?: boolean;
  force?: boolean;
}

export interface ServiceInstallResult {
  unit: string;
  config: string;
  user: string;
  userCreated: boolean;
  chowned: string[];
  /** Files the daemon reads outside the configuration directory (not given to the user). */
  outside: string[];
  /** 'outside': not enabled because the unit is not in systemd's directory. */
  enabled: 'started' | 'next-boot' | 'no' | 'outside';
}

export async function serviceInstall(
  role: Role,
  o: ServiceInstallOptions,
): Promise<ServiceInstallResult> {
  const dir = configDir(o.dir);
  const config = join(dir, `${role}.toml`);
  if (!existsSync(config)) {
    throw new IoError(
      'ERR_SERVICE',
      `${config}: no such file: run ${role === 'ha' ? '`mip6 init ha`' : '`mip6 join FILE`'} first (or give --dir)`,
    );
  }
  const cfg = await loadConfig(role, config); // one ConfigError line when the daemon would refuse it
  const name = o.user ?? SERVICE_USER;
  const unitDir = o.unitDir ?? DEFAULT_UNIT_DIR;
  const unit = join(unitDir, unitName(role));
  const text = unitText(role, dir, config, name);
  writePlan([{ path: unit, text, mode: 0o644 }], o.force === true);

  const { user, created } = serviceUser(name);
  const inside = (f: string): boolean => !relative(dir, f).startsWith('..');
  const files = [...new Set(daemonFiles(cfg))];
  const chowned: string[] = [];
  for (const f of [dir, ...files.filter(inside)]) {
    try {
      chownSync(f, user.uid, user.gid);
    } catch (err) {
      throw new IoError('ERR_SERVICE', `${f}: cannot give it to ${name}: ${reason(err)}`);
    }
    chowned.push(f);
  }
  let enabled: ServiceInstallResult['enabled'] = 'no';
  // A unit elsewhere is never linked into systemd behind the user's back (a test's unit dir);
  // only a stand-in systemctl ($MIP6_SYSTEMCTL) is run for it.
  const mayEnable = unitDir === DEFAULT_UNIT_DIR || process.env.MIP6_SYSTEMCTL !== undefined;
  if (o.enable !== false && !mayEnable) enabled = 'outside';
  else if (o.enable !== false) {
    const target = unitDir === DEFAULT_UNIT_DIR ? unitName(role) : unit;
    if (systemdRunning()) {
      run(['daemon-reload']);
      run(['enable', '--now', target]);
      enabled = 'started';
    } else {
      run(['enable', target]);
      enabled = 'next-boot';
    }
  }
  return {
    unit,
    config,
    user: name,
    userCreated: created,
    chowned,
    outside: files.filter((f) => !inside(f)),
    enabled,
  };
}

export interface ServiceStatusLine {
  role: Role;
  unit: string;
  installed: boolean;
  enabled: string;
  active: string;
  daemon: string;
}

function query(args: string[]): string {
  const r = spawnSync(systemctl(), args, { encoding: 'utf8' });
  if (r.error !== undefined) return 'unknown (no systemctl)';
  return r.stdout.trim() || r.stderr.trim().split('\n')[0] || 'unknown';
}

function describeDaemon(s: DaemonStatus): string {
  const up = `pid ${s.pid ?? '?'}, up ${s.uptime ?? '?'} s`;
  if (s.role === 'ha')
    return `home agent for ${s.homePrefix}, ${s.bindings.length} binding(s), ${up}`;
  return `${s.role} ${s.homeAddress}: ${s.state}, ${up}`;
}

export async function serviceStatus(o: {
  dir?: string;
  unitDir?: string;
}): Promise<ServiceStatusLine[]> {
  const dir = configDir(o.dir);
  const unitDir = o.unitDir ?? DEFAULT_UNIT_DIR;
  const out: ServiceStatusLine[] = [];
  for (const role of ROLES) {
    const unit = join(unitDir, unitName(role));
    const config = join(dir, `${role}.toml`);
    const installed = existsSync(unit);
    if (!installed && !existsSync(config)) continue;
    const running = systemdRunning();
    let daemon = 'no configuration';
    if (existsSync(config)) {
      try {
        const cfg = await loadConfig(role, config);
        const st = (await controlRequest(
          cfg.controlSocket,
          { cmd: 'status' },
          { timeoutMs: 2000 },
        )) as DaemonStatus;
        daemon = describeDaemon(st);
      } catch (err) {
        daemon = `not answering (${(err as Error).message})`;
      }
    }
    out.push({
      role,
      unit,
      installed,
      enabled: installed ? query(['is-enabled', unitName(role)]) : '-',
      active:
        installed && running
          ? query(['is-active', unitName(role)])
          : installed
            ? 'systemd not running'
            : '-',
      daemon,
    });
  }
  return out;
}

function out(line: string): void {
  process.stdout.write(line + '\n');
}

export function registerService(program: Command): void {
  const service = program.command('service').description('run mip6 as a systemd service');
  service
    .command('install')
    .description(
      'write the systemd unit for a role (contrib/), hand its files to the service user, enable it',
    )
    .addArgument(new Argument('<role>', 'ha, mn or cn').choices(['ha', 'mn', 'cn']))
    .option('--dir <dir>', 'configuration directory (default $MIP6_CONFIG_DIR or /etc/mip6)')
    .option('--unit-dir <dir>', 'where to write the unit', DEFAULT_UNIT_DIR)
    .option(
      '--user <name>',
      'the unprivileged user the daemon runs as (created when missing)',
      SERVICE_USER,
    )
    .option('--no-enable', 'only write the unit')
    .option('--force', 'overwrite an existing unit file')
    .action(async (role: Role, o: ServiceInstallOptions) => {
      const r = await serviceInstall(role, o);
      out(
        `wrote ${r.unit} (runs mip6 ${role} -c ${r.config} as ${r.user}${r.userCreated ? ', user created' : ''})`,
      );
      out(`gave ${r.chowned.length} file(s) to ${r.user}: ${r.chowned.join(' ')}`);
      for (const f of r.outside)
        out(`note: ${f} is outside the configuration directory: make sure ${r.user} can read it`);
      if (r.enabled === 'started')
        out(`enabled and started ${unitName(role)}: see mip6 service status`);
      else if (r.enabled === 'next-boot') {
        out(
          `enabled ${unitName(role)} for the next boot (systemd is not running here); start it now with: mip6 ${role} -c ${r.config}`,
        );
      } else if (r.enabled === 'outside') {
        out(
          `not enabled: ${r.unit} is outside ${DEFAULT_UNIT_DIR}; to use it: systemctl enable --now ${r.unit}`,
        );
      } else out(`not enabled (--no-enable): systemctl enable --now ${unitName(role)}`);
    });
  service
    .command('status')
    .description('installed units, whether enabled and active, and what each daemon says')
    .option('--dir <dir>', 'configuration directory (default $MIP6_CONFIG_DIR or /etc/mip6)')
    .option('--unit-dir <dir>', 'where the units are', DEFAULT_UNIT_DIR)
    .action(async (o: { dir?: string; unitDir?: string }) => {
      const lines = await serviceStatus(o);
      if (lines.length === 0) {
        out(
          `no mip6 unit in ${o.unitDir ?? DEFAULT_UNIT_DIR} and no configuration in ${configDir(o.dir)}`,
        );
        return;
      }
      for (const l of lines) {
        out(
          `${unitName(l.role)}: ${l.installed ? `installed (${l.unit}), ${l.enabled}, ${l.active}` : 'not installed'}`,
        );
        out(`  daemon: ${l.daemon}`);
      }
    });
}
