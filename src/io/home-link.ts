/**
 * The home agent's side effects on its host for each binding (RFC 6275 §10.4.1):
 *  - with a real home link: a host route HoA/128 into the TUN and a proxy Neighbor Discovery
 *    entry on the home link, so hosts on the link resolve the away MN's address to the HA
 *    (the kernel answers NS for proxy entries when proxy_ndp is on), announced by unsolicited
 *    Neighbor Advertisements (Override) so hosts that cached the MN's own address switch at once;
 *  - without one (a virtual home network): the whole home prefix is routed into the TUN at
 *    start, so bindings need no per-address state.
 */
import { writeFile } from 'node:fs/promises';
import type { Logger } from '../util/log.js';
import { addressBytes } from './address-bytes.js';
import { loadAddon } from './addon.js';
import { HomeLinkProgrammer, ipBatchRunner, rtnetlinkRunner } from './home-link-programmer.js';
import type { HomeLinkStatus } from './control-protocol.js';
import { replaceRoute } from './iproute.js';
import { advertiseNeighbor } from './ndisc.js';

/**
 * How long Duplicate Address Detection listens for a defender: RetransTimer (1 s) x
 * DupAddrDetectTransmits (1), RFC 4861 §10 / RFC 4862 §5.1; the MN's first BU waits 1.5 s
 * (InitialBindackTimeoutFirstReg) so the BA can follow it.
 */
const DAD_TIMEOUT_MS = 1000;

export interface HomeLinkOptions {
  tunName: string;
  homePrefix: string;
  /** The physical home link, if any. */
  link?: string | undefined;
  /** Where start() says how the home link is programmed (rtnetlink, or why `ip -batch`). */
  log?: Logger | undefined;
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
  /** Routes and proxy entries, batched (src/io/home-link-programmer.ts); set by start(). */
  #program: HomeLinkProgrammer | undefined;
  /** The proxy-only addresses (alsoDefend) of each home address. */
  readonly #defended = new Map<string, readonly string[]>();

  constructor(opts: HomeLinkOptions) {
    this.#opts = opts;
  }

  /**
   * Forwarding on, proxy ND on the home link and its programming through rtnetlink (`ip -batch`
   * when the addon cannot), or the home prefix into the TUN.
   */
  async start(): Promise<void> {
    await sysctl('net/ipv6/conf/all/forwarding', '1');
    const { link, tunName, log } = this.#opts;
    if (link === undefined) {
      await replaceRoute(this.#opts.homePrefix, tunName);
      return;
    }
    await sysctl(`net/ipv6/conf/${link}/proxy_ndp`, '1');
    const runner = await rtnetlinkRunner(loadAddon(), tunName, link);
    if (typeof runner === 'string') {
      log?.warn('home-link-programming', { via: 'ip-batch', link, why: runner });
      this.#program = new HomeLinkProgrammer('ip-batch', ipBatchRunner(tunName, link));
    } else {
      log?.info('home-link-programming', { via: 'rtnetlink', link });
      this.#program = new HomeLinkProgrammer('rtnetlink', runner);
    }
  }

  /** How far route and proxy-entry programming is behind; undefined without a home link. */
  programmingStatus(): HomeLinkStatus | undefined {
    return this.#program?.status();
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
    const program = this.#program;
    if (link === undefined || program === undefined) return;
    // All go in one batch. The alsoDefend addresses (the link-local of a BU with L set) only
    // get proxy ND: nothing is forwarded to a link-local address.
    await Promise.all([
      program.run({ kind: 'route-replace', address: homeAddress }),
      program.run({ kind: 'proxy-add', address: homeAddress }),
      ...alsoDefend.map((a) => program.run({ kind: 'proxy-add', address: a })),
    ]);
    const before = this.#defended.get(homeAddress) ?? [];
    this.#defended.set(homeAddress, alsoDefend);
    const stale = before.filter((x) => !alsoDefend.includes(x));
    await Promise.all(
      stale.map((a) => program.run({ kind: 'proxy-delete', address: a }).catch(() => {})),
    );
    // Hosts that cached the MN's own link-layer address (it was home) switch to us now.
    this.#announcing.get(homeAddress)?.();
    this.#announcing.set(homeAddress, advertiseNeighbor(link, homeAddress));
  }

  async #remove(homeAddress: string): Promise<void> {
    const program = this.#program;
    if (this.#opts.link === undefined || program === undefined) return;
    this.#announcing.get(homeAddress)?.();
    this.#announcing.delete(homeAddress);
    const extra = this.#defended.get(homeAddress) ?? [];
    this.#defended.delete(homeAddress);
    // A missing entry counts as removed; other failures are counted in programmingStatus().
    await Promise.all(
      [
        ...extra.map((a) => ({ kind: 'proxy-delete' as const, address: a })),
        { kind: 'proxy-delete' as const, address: homeAddress },
        { kind: 'route-delete' as const, address: homeAddress },
      ].map((op) => program.run(op).catch(() => {})),
    );
  }
}
