/**
 * Least privilege for the daemons (DESIGN.md §7, issue 9): `--user NAME` makes a daemon give up
 * root once its TUN, sockets, control socket, pcap file and start-up routes exist.
 *
 * Why only there: Node's setuid() leaves no capability behind (the kernel clears the permitted
 * set on a switch away from uid 0 unless SECBIT_KEEP_CAPS is set, which Node cannot do). A home
 * agent with a virtual home network routes the whole home prefix into its TUN at start and needs
 * nothing privileged afterwards. A home agent on a real home link adds a host route and a
 * proxy-ND entry per binding, and a mobile node moves its home address when it returns home:
 * both need CAP_NET_ADMIN for their whole life, so `--user` is refused for them with one line,
 * and the way to run them unprivileged is the systemd unit in contrib/ (an unprivileged user
 * with AmbientCapabilities=CAP_NET_ADMIN, which the `ip` children inherit; no root at all).
 */
import { readFileSync } from 'node:fs';
import { IoError } from '../util/errors.js';

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
 * Switches to `user` for good: supplementary groups, gid, uid; then checks that root cannot be
 * regained. Throws IoError ERR_PRIVILEGES with one line when any step fails.
 */
export function dropPrivileges(user: TargetUser): void {
  if (process.getuid === undefined || process.setuid === undefined) {
    throw new IoError('ERR_PRIVILEGES', `--user ${user.name}: not supported on this platform`);
  }
  try {
    process.setgroups?.([user.gid]);
    process.setgid?.(user.gid);
    process.setuid(user.uid);
  } catch (err) {
    throw new IoError(
      'ERR_PRIVILEGES',
      `--user ${user.name}: cannot switch to uid ${user.uid} gid ${user.gid}: ${(err as Error).message}`,
    );
  }
  if (process.getuid() !== user.uid || process.geteuid?.() !== user.uid) {
    throw new IoError('ERR_PRIVILEGES', `--user ${user.name}: uid did not change`);
  }
  if (user.uid !== 0) {
    let regained = false;
    try {
      process.setuid(0);
      regained = true;
    } catch {
      // expected: root is gone for good
    }
    if (regained)
      throw new IoError('ERR_PRIVILEGES', `--user ${user.name}: root could be regained`);
  }
}
