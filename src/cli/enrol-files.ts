/**
 * Files the enrolment commands (`mip6 init ha`, `mip6 member ...`, `mip6 join`,
 * `mip6 service install`) write: where (`--dir`, else $MIP6_CONFIG_DIR, else /etc/mip6; the
 * authority: `--ca`, else $MIP6_CA_DIR, else ~/.mip6-ca), with
 * which modes, and never over an existing file without --force. Every file of one command is
 * planned first and checked as a whole, so a refusal leaves nothing half written; each is then
 * written to a temporary name in its directory and renamed into place. Every failure is one
 * IoError line naming the path and the fix.
 */
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { IoError } from '../util/errors.js';

export const DEFAULT_CONFIG_DIR = '/etc/mip6';

/** The configuration directory: `flag`, else $MIP6_CONFIG_DIR, else /etc/mip6 (absolute). */
export function configDir(flag: string | undefined): string {
  const env = process.env.MIP6_CONFIG_DIR;
  return resolve(flag ?? (env !== undefined && env !== '' ? env : DEFAULT_CONFIG_DIR));
}

/**
 * The overlay authority's directory: `flag`, else $MIP6_CA_DIR, else ~/.mip6-ca (root's home
 * on a home agent): never inside the configuration directory, which the service user owns.
 */
export function authorityDir(flag: string | undefined): string {
  const env = process.env.MIP6_CA_DIR;
  return resolve(flag ?? (env !== undefined && env !== '' ? env : join(homedir(), '.mip6-ca')));
}

/** The OS reason of a failed file operation, for one-line messages. */
export function reason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const known: Record<string, string> = {
    EACCES: 'permission denied (run as root?)',
    EPERM: 'permission denied (run as root?)',
    ENOENT: 'no such file or directory',
    ENOTDIR: 'a part of the path is not a directory',
    EROFS: 'read-only file system',
    ENOSPC: 'no space left on the device',
  };
  return known[code] ?? (code !== '' ? code : (err as Error).message);
}

/**
 * Creates `dir` (and its parents) with `mode` when missing; a directory that exists is kept.
 * One level at a time: Node's recursive mkdirSync never returns for a path under /proc.
 */
export function ensureDir(dir: string, mode = 0o700): void {
  const missing: string[] = [];
  for (let d = resolve(dir); !existsSync(d); d = dirname(d)) {
    missing.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const d of missing) {
    try {
      mkdirSync(d, { mode });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw new IoError('ERR_DIR', `${dir}: cannot create the directory: ${reason(err)}`);
    }
  }
  if (!statSync(dir).isDirectory()) {
    throw new IoError('ERR_DIR', `${dir}: exists and is not a directory`);
  }
}

/** Reads a text file; one line naming it when it cannot. */
export function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new IoError('ERR_READ', `${file}: cannot read the ${what}: ${reason(err)}`);
  }
}

/** A file a command is about to write. */
export interface PlannedFile {
  path: string;
  text: string;
  /** 0o600 for anything secret, 0o644 otherwise. */
  mode: number;
}

/** Whether `p` would change an existing file: it exists and holds other bytes. */
function conflicts(p: PlannedFile): boolean {
  if (!existsSync(p.path)) return false;
  try {
    return readFileSync(p.path, 'utf8') !== p.text;
  } catch {
    return true;
  }
}

/**
 * Refuses the whole plan when one of its files exists with other content and `force` is off
 * (one that already holds exactly these bytes is fine: running a command twice is harmless).
 */
export function checkPlan(files: readonly PlannedFile[], force: boolean, anyContent = false): void {
  if (force) return;
  const taken = anyContent ? files : files.filter(conflicts);
  if (taken.length === 0) return;
  const first = taken[0]!.path;
  const more = taken.length > 1 ? ` (and ${taken.length - 1} more)` : '';
  throw new IoError(
    'ERR_EXISTS',
    `${first}${more}: already exists; refusing to overwrite (add --force to replace)`,
  );
}

/** Refuses when one of `paths` exists and `force` is off (before their contents are known). */
export function refuseExisting(paths: readonly string[], force: boolean): void {
  checkPlan(
    paths.filter((path) => existsSync(path)).map((path) => ({ path, text: '', mode: 0 })),
    force,
    true,
  );
}

/** Writes one file atomically with its mode: a temporary name in the same directory, renamed. */
export function writeAtomic(p: PlannedFile): void {
  ensureDir(dirname(p.path));
  const tmp = join(dirname(p.path), `.${basename(p.path)}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, p.text, { mode: p.mode, flag: 'wx' });
    chmodSync(tmp, p.mode); // the umask may only have narrowed it; be explicit
    renameSync(tmp, p.path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new IoError('ERR_WRITE', `${p.path}: cannot write: ${reason(err)}`);
  }
}

/** Checks the plan, then writes every file of it. */
export function writePlan(files: readonly PlannedFile[], force: boolean): void {
  checkPlan(files, force);
  for (const f of files) writeAtomic(f);
}

/** A TOML basic string (what the commands write into ha.toml / mn.toml). */
export function tomlString(s: string): string {
  return JSON.stringify(s);
}
