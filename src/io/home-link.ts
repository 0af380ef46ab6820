/**
 * The home agent's side effects on its host for each binding (RFC 6275 §10.4.1):
 *  - with a real home link: a host route HoA/128 into the TUN and a proxy Neighbor Discovery
 *    entry on the home link, so hosts on the link resolve the away MN's address to the HA
 *    (the kernel answers NS for proxy entries when proxy_ndp is on), announced by unsolicited
 *    Neighbor Advertisements (Override) so hosts that cached the MN's own address switch at once;
 *  - without one (a virtual home network): the whole home prefix is routed into the TUN at
 *    start, so bindings need no per-address state.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { addressBytes } from './address-bytes.js';
import { loadAddon } from './addon.js';
import { ip, IP_BIN, replaceRoute } from './iproute.js';
import { advertiseNeighbor } from './ndisc.js';

/**
 * How long Duplicate Address Detection listens for a defender: RetransTimer (1 s) x
 * DupAddrDetectTransmits (1), RFC 4861 §10 / RFC 4862 §5.1; the MN's first BU waits 1.5 s
 * (InitialBindackTimeoutFirstReg) so the BA can follow it.
 */
const DAD_TIMEOUT_MS = 1000;

/**
 * Runs the per-binding `ip` commands in batches: everything queued while one `ip -batch -` runs
 * goes into the next, so a burst of registrations costs one process per batch instead of two
 * per binding (bench/ha-scale.ts --home-link: forking `ip` twice per new binding cost the HA
 * ~20 ms of CPU per registration). A batch that fails in any way (some `ip neigh` errors end the
 * whole batch) is run again one command at a time, which reports each command's own error; every
 * command is idempotent (replace, or a delete whose "not found" the caller ignores).
 */
class IpBatcher {
  #queue: { args: string[]; done: (err: unknown) => void }[] = [];
  #running = false;

  run(args: string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ args, done: (err) => (err === null ? resolve() : reject(err)) });
      if (!this.#running) this.#next();
    });
  }

  #next(): void {
    const batch = this.#queue;
    this.#queue = [];
    if (batch.length === 0) {
      this.#running = false;
      return;
    }
    this.#running = true;
    const finish = (): void => this.#next();
    const child = execFile(IP_BIN, ['-batch', '-'], { timeout: 10_000 }, (err) => {
      if (err === null) {
        for (const c of batch) c.done(null);
        finish();
        return;
      }
      // One by one, in order, each with its own result.
      void batch
        .reduce(
          (prev, c) =>
            prev.then(() =>
              ip(c.args).then(
                () => c.done(null),
                (e: unknown) => c.done(e),
              ),
            ),
          Promise.resolve(),
        )
        .then(finish);
    });
    child.stdin?.end(batch.map((c) => c.args.join(' ')).join('\n') + '\n');
  }
}

export interface HomeLinkOptions {
  tunName: string;
  homePrefix: string;
  /** The physical home link, if any. */
  link?: string | undefined;
}

async function sysctl(path: string, value: string): Promise<void> {
  await writeFile(`/proc/sys/${path}`, value);
}

export class KernelHomeLink {
  readonly #opts: HomeLinkOptions;
  /** Operations per home address run one after another (an add still running when a quick
   * deregistration's remove starts would otherwise re-install the route after the remove). */
  readonly #queue = new Map<string, Promise<void>>();
  /** Cancels the pending repeats of our unsolicited NAs, per home address. */
  readonly #announcing = new Map<string, () => void>();
  readonly #ip = new IpBatcher();
  /** The proxy-only addresses (alsoDefend) of each home address. */
  readonly #defended = new Map<string, readonly string[]>();

  constructor(opts: HomeLinkOptions) {
    this.#opts = opts;
  }

  /** Forwarding on, proxy ND on the home link, or the home prefix into the TUN. */
  async start(): Promise<void> {
    await sysctl('net/ipv6/conf/all/forwarding', '1');
    if (this.#opts.link !== undefined) {
      await sysctl(`net/ipv6/conf/${this.#opts.link}/proxy_ndp`, '1');
    } else {
      await replaceRoute(this.#opts.homePrefix, this.#opts.tunName);
    }
  }

  #serial(homeAddress: string, op: () => Promise<void>): Promise<void> {
    const prev = this.#queue.get(homeAddress) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(op);
    this.#queue.set(homeAddress, next);
    void next
      .catch(() => undefined)
      .then(() => {
        if (this.#queue.get(homeAddress) === next) this.#queue.delete(homeAddress);
      });
    return next;
  }

  bindingAdded(homeAddress: string, alsoDefend: readonly string[] = []): Promise<void> {
    return this.#serial(homeAddress, () => this.#add(homeAddress, alsoDefend));
  }

  /**
   * Duplicate Address Detection for a new binding (RFC 6275 §10.3.1): Neighbor Solicitations
   * for each address on the home link for DAD_TIMEOUT_MS; the first one a node answers for
   * (an NA with hop limit 255) is returned. Deviation from RFC 4862 §5.4.2: the solicitation
   * carries our link-local source and link-layer address instead of the unspecified source
   * (the addon's probe, native/ndisc_linux.c); a node holding the address answers either way.
   * Without a home link, or an addon without the probe, nothing is checked (null).
   */
  async detectDuplicates(addresses: readonly string[]): Promise<string | null> {
    const link = this.#opts.link;
    const solicit = link === undefined ? undefined : loadAddon().ndpSolicit;
    if (link === undefined || solicit === undefined) return null;
    const answered = await Promise.all(
      addresses.map((a) => solicit.call(loadAddon(), link, addressBytes(6, a), DAD_TIMEOUT_MS)),
    );
    return addresses[answered.indexOf(true)] ?? null;
  }

  bindingRemoved(homeAddress: string): Promise<void> {
    return this.#serial(homeAddress, () => this.#remove(homeAddress));
  }

  async #add(homeAddress: string, alsoDefend: readonly string[]): Promise<void> {
    const link = this.#opts.link;
    if (link === undefined) return;
    // No family option in batch lines: the IPv6 addresses select it. All go in one batch, in
    // this order. The alsoDefend addresses (the link-local of a BU with L set) only get proxy
    // ND: nothing is forwarded to a link-local address.
    await Promise.all([
      this.#ip.run(['route', 'replace', `${homeAddress}/128`, 'dev', this.#opts.tunName]),
      this.#ip.run(['neigh', 'replace', 'proxy', homeAddress, 'dev', link]),
      ...alsoDefend.map((a) => this.#ip.run(['neigh', 'replace', 'proxy', a, 'dev', link])),
    ]);
    const before = this.#defended.get(homeAddress) ?? [];
    this.#defended.set(homeAddress, alsoDefend);
    for (const a of before.filter((x) => !alsoDefend.includes(x))) {
      await this.#ip.run(['neigh', 'del', 'proxy', a, 'dev', link]).catch(() => {});
    }
    // Hosts that cached the MN's own link-layer address (it was home) switch to us now.
    this.#announcing.get(homeAddress)?.();
    this.#announcing.set(homeAddress, advertiseNeighbor(link, homeAddress));
  }

  async #remove(homeAddress: string): Promise<void> {
    const link = this.#opts.link;
    if (link === undefined) return;
    this.#announcing.get(homeAddress)?.();
    this.#announcing.delete(homeAddress);
    const extra = this.#defended.get(homeAddress) ?? [];
    this.#defended.delete(homeAddress);
    await Promise.all([
      ...extra.map((a) => this.#ip.run(['neigh', 'del', 'proxy', a, 'dev', link]).catch(() => {})),
      this.#ip.run(['neigh', 'del', 'proxy', homeAddress, 'dev', link]).catch(() => {}),
      this.#ip
        .run(['route', 'del', `${homeAddress}/128`, 'dev', this.#opts.tunName])
        .catch(() => {}),
    ]);
  }
}
