/**
 * Least privilege for the daemons (DESIGN.md §7, issue 9): `--user NAME` makes a daemon give up
 * root once its TUN, sockets, control socket, pcap file and start-up routes exist, keeping only
 * the capabilities it still needs for the rest of its life (src/io/capabilities.ts, through the
 * addon: keep-caps across the uid switch, capset, ambient set for the `ip` children, bounding
 * set, no_new_privs):
 *   - a home agent with a virtual home network (no [home] link): none (the whole home prefix is
 *     routed into the TUN once, at start);
 *   - a home agent on a real home link: CAP_NET_ADMIN (a host route and a proxy-ND entry per
 *     binding, through `ip`) and CAP_NET_RAW (the unsolicited Neighbor Advertisements are sent
 *     on a raw ICMPv6 socket opened per announcement);
 *   - a mobile node / correspondent node: CAP_NET_ADMIN (its home address moves between the TUN
 *     and the home link, a default route at home) and CAP_NET_RAW (the home-link probe runs
 *     `ping`, and the NAs announcing that it is back home).
 * The systemd units in contrib/ reach the same state without ever running as root.
 *
 * The control socket's group (`control_group`) is resolved here too, before anything is opened.
 */
import { readFileSync } from 'node:fs';
import { dropToUser, type CapabilityName } from '../io/capabilities.js';
import { ConfigError, IoError } from '../util/errors.js';

export interface TargetUser {
  name: string;
  uid: number;
  gid: number;
}

/**
 * Resolves `name` (a user in /etc/passwd, or numeric "uid" / "uid:gid") before anything is
 * opened, so a typo fails at once. Throws IoError ERR_USER with one line.
 */
export function resolveUser(name: string, passwdFile = '/etc/passwd'): TargetUser {
  const numeric = /^(\d+)(?::(\d+))?$/.exec(name);
  if (numeric) {
    const uid = Number(numeric[1]);
    return { name, uid, gid: numeric[2] !== undefined ? Number(numeric[2]) : uid };
  }
  let text: string;
  try {
    text = readFileSync(passwdFile, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    throw new IoError('ERR_USER', `--user ${name}: cannot read ${passwdFile} (${code})`);
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 4) {
      return { name, uid: Number(f[2]), gid: Number(f[3]) };
    }
  }
  throw new IoError('ERR_USER', `--user ${name}: no such user in ${passwdFile}`);
}

/**
 * Switches to `user` for good (groups = [gid], gid, uid), keeping exactly `keep`; checks that
 * root cannot be regained and that /proc shows the requested sets. Throws IoError
 * ERR_PRIVILEGES with one line when any step fails.
 */
export function dropPrivileges(user: TargetUser, keep: readonly CapabilityName[] = []): void {
  if (process.platform !== 'linux') {
    throw new IoError('ERR_PRIVILEGES', `--user ${user.name}: not supported on this platform`);
  }
  dropToUser(user.uid, user.gid, keep, `--user ${user.name}`);
}

/**
 * Resolves `control_group` (a group in /etc/group, or a numeric gid) for `file`. Throws
 * ConfigError naming the file and key when the group does not exist.
 */
export function resolveGroup(
  name: string,
  file: string,
  key = 'control_group',
  groupFile = '/etc/group',
): number {
  if (/^\d+$/.test(name)) return Number(name);
  let text: string;
  try {
    text = readFileSync(groupFile, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    throw new ConfigError(file, key, `cannot read ${groupFile} to look up "${name}" (${code})`);
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 3 && /^\d+$/.test(f[2] ?? '')) return Number(f[2]);
  }
  throw new ConfigError(file, key, `no such group "${name}" in ${groupFile}`);
}
