/**
 * One firewall rule owned by a daemon, through iptables / ip6tables (execFile, never a shell):
 * the HA's NAT44 of its IPv4 home addresses (src/io/ipv4-home-network.ts) and the redirects of
 * its extra listening ports (src/io/listen-ports.ts). Every rule carries a comment naming its
 * purpose, and is found again by its full specification, so nobody else's rule is touched.
 *
 * install(): deletes copies a crashed earlier run left (bounded), then appends the rule.
 * remove(): deletes it (best effort; a daemon that gave up its privileges cannot, and the next
 * start does).
 */
import { execFile } from 'node:child_process';
import { IoError } from '../util/errors.js';

/** Most stale copies of a rule removed at start (a crash loop leaves at most one each). */
const STALE_RULES_MAX = 8;

/** Runs iptables (4) or ip6tables (6) with these arguments. */
export type IptablesRunner = (family: 4 | 6, args: readonly string[]) => Promise<void>;

export function iptables(family: 4 | 6, args: readonly string[]): Promise<void> {
  const bin = family === 4 ? 'iptables' : 'ip6tables';
  return new Promise((resolve, reject) => {
    execFile(bin, ['-w', '5', ...args], { timeout: 10_000 }, (err, _o, stderr) => {
      if (err === null) {
        resolve();
        return;
      }
      const e = err as NodeJS.ErrnoException;
      const why = e.code === 'ENOENT' ? `${bin} is not installed` : stderr.trim() || e.message;
      reject(new IoError('ERR_IPTABLES', `\`${bin} ${args.join(' ')}\` failed: ${why}`));
    });
  });
}

export class FirewallRule {
  readonly #family: 4 | 6;
  readonly #table: string;
  readonly #chain: string;
  readonly #spec: readonly string[];
  readonly #iptables: IptablesRunner;
  #installed = false;

  /** `spec`: the match and target, e.g. ['-s', '10.99.0.0/24', '-j', 'MASQUERADE']. */
  constructor(
    family: 4 | 6,
    table: string,
    chain: string,
    spec: readonly string[],
    comment: string,
    run: IptablesRunner = iptables,
  ) {
    this.#iptables = run;
    this.#family = family;
    this.#table = table;
    this.#chain = chain;
    const j = spec.indexOf('-j');
    const match = j < 0 ? spec : spec.slice(0, j);
    const target = j < 0 ? [] : spec.slice(j);
    this.#spec = [...match, '-m', 'comment', '--comment', comment, ...target];
  }

  /** The family and the full iptables arguments of `op` (-A or -D). */
  args(op: '-A' | '-D'): { family: 4 | 6; args: string[] } {
    return { family: this.#family, args: ['-t', this.#table, op, this.#chain, ...this.#spec] };
  }

  /** Deletes copies of this rule a crashed earlier run left (bounded), adds nothing. */
  async removeStale(): Promise<void> {
    for (let i = 0; i < STALE_RULES_MAX; i++) {
      try {
        await this.#run('-D');
      } catch {
        break; // none (left)
      }
    }
  }

  async install(): Promise<void> {
    await this.removeStale();
    await this.#run('-A');
    this.#installed = true;
  }

  async remove(): Promise<void> {
    if (!this.#installed) return;
    this.#installed = false;
    await this.#run('-D').catch(() => undefined);
  }

  #run(op: '-A' | '-D'): Promise<void> {
    const { family, args } = this.args(op);
    return this.#iptables(family, args);
  }
}
