/**
 * The mobile node's kill switch ([tun] block_outside = true, issue #15): while the daemon runs,
 * nothing leaves by any interface but the TUN except the tunnel's own datagrams. One nftables
 * table, `inet mip6_<fwmark>`, with one output chain:
 *
 *   oif lo, oif <tun>                    accept (the loopback, everything through the tunnel)
 *   meta mark <fwmark>                   accept (the daemon's sockets: to the HA, to correspondents)
 *   DHCPv4 (udp 68 -> 67), DHCPv6 (udp 546 -> 547)      accept (keeping the visited lease)
 *   ICMPv6 RS, NS, NA, MLD reports       accept (IPv6 neighbour discovery; ARP is no IP packet)
 *   the captive-portal probe's address   accept (TCP to its port only, when configured)
 *   DNS, HTTP, HTTPS                     accept only while the portal login window is open
 *                                        (openPortal: [movement] portal_login, time-limited)
 *   anything else                        counted and dropped
 *
 * install() deletes a table of the same name a crashed run left, then loads the ruleset in one
 * `nft -f -` transaction; remove() deletes it at exit. At home (no tunnel) suspend() takes it
 * away and resume() loads it again. A run that dies without remove() keeps blocking (fail
 * closed) until the next start replaces the table.
 */
import { execFile } from 'node:child_process';
import { IoError } from '../util/errors.js';

export interface KillSwitchOptions {
  tunName: string;
  /** The firewall mark of the daemon's sockets ([tun] fwmark). */
  mark: number;
  /**
   * TCP destinations let out as well: the captive-portal probe's address and port
   * ([movement] portal_probe), so a portal can be detected with the switch on.
   */
  allowTcp?: readonly { address: string; port: number }[];
}

/** Runs `nft -f -` with this script; rejects with IoError ERR_NFT (ignoreErrors: never). */
export type NftRunner = (script: string, ignoreErrors: boolean) => Promise<void>;

export const nft: NftRunner = (script, ignoreErrors) =>
  new Promise((resolve, reject) => {
    const child = execFile('nft', ['-f', '-'], { timeout: 10_000 }, (err, _o, stderr) => {
      if (err === null || ignoreErrors) {
        resolve();
        return;
      }
      const e = err as NodeJS.ErrnoException;
      const why =
        e.code === 'ENOENT'
          ? 'nft is not installed (apt-get install nftables)'
          : (stderr.trim().split('\n')[0] ?? e.message);
      reject(new IoError('ERR_NFT', `the kill switch (nft -f -) failed: ${why}`));
    });
    child.stdin?.end(script);
  });

/**
 * Deletes the table `inet mip6_<mark>` a crashed run left (fail closed), also when the kill
 * switch is off now ([tun] block_outside = false): never an error when there is none.
 */
export async function removeStaleKillSwitch(mark: number, run: NftRunner = nft): Promise<void> {
  if (!Number.isInteger(mark) || mark < 1 || mark > 0xffffffff) return;
  await run(`table inet mip6_${mark}\ndelete table inet mip6_${mark}\n`, true);
}

export class KillSwitch {
  readonly #o: KillSwitchOptions;
  readonly #run: NftRunner;
  #installed = false;
  #suspended = false;
  #portalOpen = false;

  constructor(o: KillSwitchOptions, run: NftRunner = nft) {
    if (!/^[A-Za-z0-9_.%-]{1,15}$/.test(o.tunName)) {
      throw new RangeError(`not an interface name: ${o.tunName}`);
    }
    for (const a of o.allowTcp ?? []) {
      if (!/^[0-9a-fA-F:.]+$/.test(a.address) || !Number.isInteger(a.port)) {
        throw new RangeError(`not an address and port: ${a.address} ${a.port}`);
      }
    }
    this.#o = o;
    this.#run = run;
  }

  /** The table's name: one per fwmark, so the next start finds what a crashed run left. */
  get table(): string {
    return `mip6_${this.#o.mark}`;
  }

  /** The nft script that creates the table (the previous one of that name replaced). */
  ruleset(): string {
    const { tunName, mark } = this.#o;
    return [
      `table inet ${this.table}`,
      `delete table inet ${this.table}`,
      `table inet ${this.table} {`,
      '  chain output {',
      '    type filter hook output priority 0; policy accept;',
      '    oifname "lo" accept',
      `    oifname "${tunName}" accept`,
      `    meta mark ${mark} accept`,
      '    meta nfproto ipv4 udp sport 68 udp dport 67 accept',
      '    meta nfproto ipv6 udp sport 546 udp dport 547 accept',
      '    icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-report, mld2-listener-report } accept',
      ...(this.#o.allowTcp ?? []).map(
        (a) =>
          `    ${a.address.includes(':') ? 'ip6' : 'ip'} daddr ${a.address} tcp dport ${a.port} accept`,
      ),
      ...(this.#portalOpen
        ? ['    udp dport 53 accept', '    tcp dport { 53, 80, 443 } accept']
        : []),
      '    counter drop',
      '  }',
      '}',
      '',
    ].join('\n');
  }

  async install(): Promise<void> {
    await this.#run(this.ruleset(), false);
    this.#installed = true;
    this.#suspended = false;
  }

  async #delete(): Promise<void> {
    // `table` first: deleting a table that does not exist would fail the transaction.
    await removeStaleKillSwitch(this.#o.mark, this.#run);
  }

  /**
   * The portal login window (opt-in, time-limited; the mobile node decides): DNS, HTTP and
   * HTTPS may leave by the underlay until `closePortal()`, so the guest can log in. The ruleset
   * is replaced.
   */
  async openPortal(): Promise<void> {
    if (!this.#installed || this.#suspended || this.#portalOpen) return;
    this.#portalOpen = true;
    await this.install();
  }

  async closePortal(): Promise<void> {
    if (!this.#installed || !this.#portalOpen) return;
    this.#portalOpen = false;
    if (!this.#suspended) await this.install();
  }

  /** At home: the table away (traffic leaves by the home link, no tunnel there). */
  async suspend(): Promise<void> {
    if (!this.#installed || this.#suspended) return;
    this.#suspended = true;
    await this.#delete();
  }

  async resume(): Promise<void> {
    if (!this.#installed || !this.#suspended) return;
    await this.install();
  }

  /** Exit: the table away. */
  async remove(): Promise<void> {
    this.#installed = false;
    this.#suspended = false;
    this.#portalOpen = false;
    await this.#delete();
  }
}
