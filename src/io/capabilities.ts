/**
 * Linux capabilities for the daemons (issue 9, least privilege): the TypeScript side of
 * native/privileges_linux.c, and a reader of a process's credentials from /proc.
 *
 * dropToUser(uid, gid, keep): one call into the addon switches uid/gid/groups and leaves the
 *   JS thread and libuv's pool threads with exactly `keep` in their effective, permitted,
 *   inheritable, ambient and bounding sets, with no_new_privs set (V8's own threads with
 *   nothing); the `ip` and `ping` children the daemon spawns afterwards inherit `keep` through
 *   the ambient set. Then the result is read back from /proc/self/task/* and compared, so a
 *   kernel that silently ignored a step cannot leave more behind.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { IoError } from '../util/errors.js';
import { loadAddon, type NativeError } from './addon.js';

/** Capability numbers (<linux/capability.h>) the daemons may keep. */
export const CAPABILITY = {
  /** Interfaces, addresses, routes, proxy ND, net sysctls. */
  NET_ADMIN: 12,
  /** Raw ICMPv6 sockets: unsolicited Neighbor Advertisements, `ping` for the home probe. */
  NET_RAW: 13,
} as const;
export type CapabilityName = keyof typeof CAPABILITY;

/** The bit mask of a set of capabilities, as /proc/PID/status prints it (hex, 64 bits). */
export function capabilityMask(names: readonly CapabilityName[]): bigint {
  let m = 0n;
  for (const n of names) m |= 1n << BigInt(CAPABILITY[n]);
  return m;
}

/** A process's credentials as /proc/PID/status reports them (its main thread). */
export interface ProcessCredentials {
  /** Real, effective, saved, filesystem uid. */
  uid: number[];
  gid: number[];
  groups: number[];
  effective: bigint;
  permitted: bigint;
  inheritable: bigint;
  ambient: bigint;
  bounding: bigint;
  noNewPrivs: boolean;
}

/** Parses the text of /proc/PID/status. Throws IoError ERR_PROC on a missing field. */
export function parseProcStatus(text: string): ProcessCredentials {
  const field = (name: string): string => {
    const m = new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(text);
    if (m === null) throw new IoError('ERR_PROC', `/proc status has no ${name} line`);
    return (m[1] ?? '').trim();
  };
  const ids = (name: string): number[] =>
    field(name)
      .split(/\s+/)
      .filter((x) => x !== '')
      .map(Number);
  const caps = (name: string): bigint => BigInt(`0x${field(name)}`);
  return {
    uid: ids('Uid'),
    gid: ids('Gid'),
    groups: ids('Groups'),
    effective: caps('CapEff'),
    permitted: caps('CapPrm'),
    inheritable: caps('CapInh'),
    ambient: caps('CapAmb'),
    bounding: caps('CapBnd'),
    noNewPrivs: field('NoNewPrivs') === '1',
  };
}

/** Credentials of process `pid` (default: this one): its main thread's. */
export function readCredentials(pid: number | 'self' = 'self'): ProcessCredentials {
  return parseProcStatus(readFileSync(`/proc/${pid}/status`, 'utf8'));
}

/** Credentials of every thread of process `pid` (capabilities are per thread). */
export function readThreadCredentials(pid: number | 'self' = 'self'): ProcessCredentials[] {
  const out: ProcessCredentials[] = [];
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.push(parseProcStatus(readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8')));
    } catch {
      // the thread ended while we looked
    }
  }
  return out;
}

/**
 * Switches to uid/gid (groups = [gid]) keeping exactly `keep`, sets no_new_privs, and checks
 * the result in /proc/self/status. Throws IoError ERR_PRIVILEGES with one line on any failure
 * (the caller must then exit: the process may be half switched).
 */
export function dropToUser(
  uid: number,
  gid: number,
  keep: readonly CapabilityName[],
  label = `uid ${uid}`,
): ProcessCredentials {
  let addon;
  try {
    addon = loadAddon();
  } catch (err) {
    throw new IoError('ERR_PRIVILEGES', `${label}: ${(err as Error).message}`);
  }
  if (addon.privDrop === undefined) {
    throw new IoError(
      'ERR_PRIVILEGES',
      `${label}: the native addon has no privDrop (Linux only; rebuild with \`npx node-gyp rebuild\`)`,
    );
  }
  try {
    addon.privDrop(
      uid,
      gid,
      keep.map((n) => CAPABILITY[n]),
    );
  } catch (err) {
    const e = err as NativeError;
    throw new IoError(
      'ERR_PRIVILEGES',
      `${label}: cannot switch to uid ${uid} gid ${gid} keeping ${keep.join('+') || 'no capability'}: ${e.message}`,
      e.errno,
    );
  }
  const mask = capabilityMask(keep);
  const now = readCredentials();
  const sameIds = (xs: number[], want: number): boolean =>
    xs.length > 0 && xs.every((x) => x === want);
  // The other threads: same ids; capabilities `keep` (libuv's pool) or none (V8's workers).
  const threads = readThreadCredentials();
  const strayThread = threads.find(
    (c) => !sameIds(c.uid, uid) || (c.permitted & ~mask) !== 0n || (c.effective & ~mask) !== 0n,
  );
  if (strayThread !== undefined) {
    throw new IoError(
      'ERR_PRIVILEGES',
      `${label}: a thread still has uid ${strayThread.uid.join(' ')} / CapEff ` +
        `${strayThread.effective.toString(16)} after the switch`,
    );
  }
  if (
    !sameIds(now.uid, uid) ||
    !sameIds(now.gid, gid) ||
    now.effective !== mask ||
    now.permitted !== mask ||
    now.ambient !== mask ||
    (now.bounding & ~mask) !== 0n ||
    !now.noNewPrivs
  ) {
    throw new IoError(
      'ERR_PRIVILEGES',
      `${label}: /proc/self/status does not show the requested credentials ` +
        `(uid ${now.uid.join(' ')}, CapEff ${now.effective.toString(16)}, want ${mask.toString(16)})`,
    );
  }
  return now;
}
