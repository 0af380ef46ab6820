/**
 * The mobile node's resolvers while the tunnel is up ([tun] dns, issue #15), and the old ones
 * back afterwards, by whichever mechanism the machine has, in this order:
 *
 *   systemd-resolved  `resolvectl dns <tun> ...` and `resolvectl domain <tun> ~.` (every name
 *                     goes to the TUN's servers); the link's settings go with the TUN.
 *   resolvconf        `resolvconf -a <tun>.mip6` with the nameserver lines; `-d` at exit.
 *   the file          /etc/resolv.conf rewritten in place (so a bind mount or a symbolic link
 *                     target keeps working), its old text saved to `backupFile` (mode 0600)
 *                     first. At start a backup left by a run that died is put back before
 *                     anything else, so a crash never makes the tunnel's servers permanent.
 *
 * Writing /etc/resolv.conf needs root (a daemon started with `--user` cannot restore it).
 */
import { execFile } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { IoError } from '../util/errors.js';

export interface TunnelDnsOptions {
  tunName: string;
  /** Resolver addresses (IPv4 / IPv6 literals). */
  servers: readonly string[];
  /** Where the file method keeps the old /etc/resolv.conf. */
  backupFile: string;
  /** The resolver file (default /etc/resolv.conf; tests point it elsewhere). */
  resolvConf?: string;
  /** The mechanisms to try, in order (default all three). */
  methods?: readonly DnsMethod[];
}

export type DnsMethod = 'resolved' | 'resolvconf' | 'file';

function run(cmd: string, args: readonly string[], input?: string): Promise<number | 'absent'> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 10_000 }, (err) => {
      if (err === null) resolve(0);
      else if ((err as NodeJS.ErrnoException).code === 'ENOENT') resolve('absent');
      else resolve(typeof err.code === 'number' ? err.code : 1);
    });
    child.stdin?.end(input ?? '');
  });
}

export class TunnelDns {
  readonly #o: TunnelDnsOptions;
  #method: DnsMethod | undefined;

  constructor(o: TunnelDnsOptions) {
    this.#o = o;
  }

  get method(): DnsMethod | undefined {
    return this.#method;
  }

  get #file(): string {
    return this.#o.resolvConf ?? '/etc/resolv.conf';
  }

  /** Puts back what a run that died left (file method); nothing when there is no backup. */
  async recover(): Promise<boolean> {
    let old: string;
    try {
      old = await readFile(this.#o.backupFile, 'utf8');
    } catch {
      return false;
    }
    await writeFile(this.#file, old);
    await rm(this.#o.backupFile, { force: true });
    return true;
  }

  async apply(): Promise<DnsMethod> {
    const { tunName, servers } = this.#o;
    const methods = this.#o.methods ?? ['resolved', 'resolvconf', 'file'];
    if (methods.includes('resolved') && (await run('resolvectl', ['status', tunName])) === 0) {
      const a = await run('resolvectl', ['dns', tunName, ...servers]);
      const b = await run('resolvectl', ['domain', tunName, '~.']);
      if (a !== 0 || b !== 0) {
        throw new IoError('ERR_DNS', `resolvectl could not set the resolvers of ${tunName}`);
      }
      this.#method = 'resolved';
      return this.#method;
    }
    const lines = servers.map((s) => `nameserver ${s}`).join('\n') + '\n';
    const rc = methods.includes('resolvconf')
      ? await run('resolvconf', ['-a', `${tunName}.mip6`], lines)
      : 'absent';
    if (rc === 0) {
      this.#method = 'resolvconf';
      return this.#method;
    }
    if (!methods.includes('file')) {
      throw new IoError('ERR_DNS', `no way to set the resolvers (tried ${methods.join(', ')})`);
    }
    await this.recover();
    const old = await readFile(this.#file, 'utf8').catch(() => '');
    await writeFile(this.#o.backupFile, old, { mode: 0o600 });
    await writeFile(
      this.#file,
      `# written by mip6 while the tunnel ${tunName} is up; the old file comes back at exit\n` +
        lines,
    );
    this.#method = 'file';
    return this.#method;
  }

  /** The old resolvers back (best effort). */
  async restore(): Promise<void> {
    const m = this.#method;
    this.#method = undefined;
    if (m === 'resolved') await run('resolvectl', ['revert', this.#o.tunName]);
    else if (m === 'resolvconf') await run('resolvconf', ['-d', `${this.#o.tunName}.mip6`]);
    else if (m === 'file') await this.recover();
  }
}
