/**
 * The home agent's side effects on its host for each binding (RFC 6275 §10.4.1):
 *  - with a real home link: a host route HoA/128 into the TUN and the defence of the address on
 *    the home link, so hosts on the link resolve the away MN's address to the HA: the addon's ND
 *    proxy (src/io/ndproxy.ts) answers their Neighbor Solicitations from a set the address joins
 *    synchronously (microseconds, where a kernel proxy entry costs O(entries): ~2.3 ms at
 *    100 000), or, when it cannot open, a kernel proxy entry (proxy_ndp on). Either way it is
 *    announced by unsolicited Neighbor Advertisements (Override) so hosts that cached the MN's
 *    own address switch at once;
 *  - without one (a virtual home network): the whole home prefix is routed into the TUN at
 *    start, so bindings need no per-address state.
 */
import { writeFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import type { Logger } from '../util/log.js';
import { loadAddon } from './addon.js';
import { DuplicateAddressDetector, ProxyDadBackend, SolicitDadBackend } from './dad.js';
import { HomeLinkProgrammer, ipBatchRunner, rtnetlinkRunner } from './home-link-programmer.js';
import type { HomeLinkStatus } from './control-protocol.js';
import { replaceRoute } from './iproute.js';
import { advertiseNeighbor } from './ndisc.js';
import { NdProxy } from './ndproxy.js';
import { addressBytes } from './address-bytes.js';

/** How long the host's own address list is reused by detectDuplicates (ms). */
const HOST_ADDRESSES_TTL_MS = 1000;

/**
 * The first of `addresses` this host holds itself (on any interface: `interfaces` is
 * os.networkInterfaces()), or null. DAD on the link cannot find those: our probe never reaches
 * our own kernel, which would then swallow what the link sends to the member (an operator's
 * certificate naming the HA's address, or a member link-local equal to the HA's).
 */
export function heldByHost(
  addresses: readonly string[],
  interfaces: NodeJS.Dict<readonly { address: string; family: string | number }[]>,
): string | null {
  const held = new Set<string>();
  for (const list of Object.values(interfaces))
    for (const i of list ?? [])
      if (i.family === 'IPv6' || i.family === 6) held.add(canonical(i.address));
  return addresses.find((a) => held.has(canonical(a))) ?? null;
}

function canonical(address: string): string {
  const pct = address.indexOf('%');
  return Buffer.from(addressBytes(6, pct < 0 ? address : address.slice(0, pct))).toString('hex');
}

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
  /** Cancels the pending repeats of our unsolicited NAs, per home address (only while some are
   * pending: about a second after a binding, so this holds few entries however many bindings). */
  readonly #announcing = new Map<string, () => void>();
  /** Routes and proxy entries, batched (src/io/home-link-programmer.ts); set by start(). */
  #program: HomeLinkProgrammer | undefined;
  /** The addon's ND proxy on the link; undefined: kernel proxy entries (or no home link). */
  #ndproxy: NdProxy | undefined;
  /** The proxy-only addresses (alsoDefend) of each home address that has some. */
  readonly #defended = new Map<string, readonly string[]>();
  /** Duplicate Address Detection on the link (src/io/dad.ts); set by start(). */
  #dad: DuplicateAddressDetector | undefined;

  constructor(opts: HomeLinkOptions) {
    this.#opts = opts;
  }

  /**
   * Forwarding on; on a home link the addon's ND proxy (else proxy_ndp and kernel proxy entries)
   * and route programming through rtnetlink (`ip -batch` when the addon cannot); without one the
   * home prefix into the TUN.
   */
  async start(): Promise<void> {
    await sysctl('net/ipv6/conf/all/forwarding', '1');
    const { link, tunName, log } = this.#opts;
    if (link === undefined) {
      await replaceRoute(this.#opts.homePrefix, tunName);
      return;
    }
    const proxy = NdProxy.open(loadAddon(), link);
    if (typeof proxy === 'string') {
      log?.warn('home-link-defence', { via: 'kernel-proxy', link, why: proxy });
      await sysctl(`net/ipv6/conf/${link}/proxy_ndp`, '1');
    } else {
      // The kernel must not answer as well (entries a previous run left would still count).
      await sysctl(`net/ipv6/conf/${link}/proxy_ndp`, '0');
      log?.info('home-link-defence', { via: 'ndproxy', link });
      this.#ndproxy = proxy;
    }
    const addon = loadAddon();
    if (typeof proxy !== 'string' && proxy.canProbe) {
      this.#dad = new DuplicateAddressDetector(new ProxyDadBackend(proxy, DAD_TIMEOUT_MS));
    } else if (addon.ndpSolicit !== undefined) {
      const solicit = addon.ndpSolicit.bind(addon);
      this.#dad = new DuplicateAddressDetector(
        new SolicitDadBackend(solicit, link, DAD_TIMEOUT_MS),
      );
    }
    log?.info('duplicate-address-detection', { via: this.#dad?.status().via ?? 'none', link });
    const runner = await rtnetlinkRunner(loadAddon(), tunName, link);
    if (typeof runner === 'string') {
      log?.warn('home-link-programming', { via: 'ip-batch', link, why: runner });
      this.#program = new HomeLinkProgrammer('ip-batch', ipBatchRunner(tunName, link));
    } else {
      log?.info('home-link-programming', { via: 'rtnetlink', link });
      this.#program = new HomeLinkProgrammer('rtnetlink', runner);
    }
  }

  /** How far route and proxy-entry programming is behind, and who answers Neighbor
   * Solicitations (the responder's counters); undefined without a home link. */
  programmingStatus(): HomeLinkStatus | undefined {
    const status = this.#program?.status();
    if (status === undefined) return undefined;
    const dad = this.#dad === undefined ? {} : { dad: { ...this.#dad.status() } };
    if (this.#ndproxy === undefined) return { ...status, defence: 'kernel-proxy', ...dad };
    return { ...status, defence: 'ndproxy', ndproxy: { ...this.#ndproxy.counters() }, ...dad };
  }

  /** Stops answering Neighbor Solicitations (the daemon is stopping). */
  stop(): void {
    this.#dad?.close();
    this.#ndproxy?.close();
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
   * Duplicate Address Detection for a new binding (RFC 6275 §10.3.1): one probe per address on
   * the home link (RFC 4862 §5.4.2: an NS from the unspecified address), DAD_TIMEOUT_MS of
   * listening; the first address another node holds (its NA, or its own DAD probe) is returned.
   * Thousands run at once on the ND proxy's socket (src/io/dad.ts); a probe that fails counts as
   * no answer (counted in programmingStatus().dad). An address this host holds itself is a
   * duplicate without a probe (heldByHost). Without a home link, or an addon without either
   * probe, nothing is checked (null).
   */
  async detectDuplicates(addresses: readonly string[]): Promise<string | null> {
    // async: whatever throws here reaches the caller as a rejection (logged, no answer).
    if (this.#dad === undefined) return null;
    const now = performance.now();
    if (this.#hostAddresses === undefined || now - this.#hostAddresses.at > HOST_ADDRESSES_TTL_MS)
      this.#hostAddresses = { at: now, interfaces: networkInterfaces() };
    const mine = heldByHost(addresses, this.#hostAddresses.interfaces);
    if (mine !== null) return mine;
    return this.#dad.detect(addresses);
  }

  /** os.networkInterfaces() and when it was read (detectDuplicates). */
  #hostAddresses: { at: number; interfaces: ReturnType<typeof networkInterfaces> } | undefined;

  bindingRemoved(homeAddress: string): Promise<void> {
    return this.#serial(homeAddress, () => this.#remove(homeAddress));
  }

  async #add(homeAddress: string, alsoDefend: readonly string[]): Promise<void> {
    const link = this.#opts.link;
    const program = this.#program;
    if (link === undefined || program === undefined) return;
    // The alsoDefend addresses (the link-local of a BU with L set) are only defended: nothing
    // is forwarded to a link-local address. The responder's set takes them at once; kernel proxy
    // entries go in the route's batch.
    const ndproxy = this.#ndproxy;
    ndproxy?.add([homeAddress, ...alsoDefend]);
    // Recorded before anything can fail: #remove must find every address defended for this
    // binding, or a failed route here would leave its link-local answered until a restart.
    const before = this.#defended.get(homeAddress) ?? [];
    this.#setDefended(homeAddress, [...new Set([...before, ...alsoDefend])]);
    await Promise.all([
      program.run({ kind: 'route-replace', address: homeAddress }),
      ...(ndproxy !== undefined
        ? []
        : [homeAddress, ...alsoDefend].map((a) => program.run({ kind: 'proxy-add', address: a }))),
    ]);
    this.#setDefended(homeAddress, alsoDefend);
    await this.#undefend(before.filter((x) => !alsoDefend.includes(x)));
    // Hosts that cached the MN's own link-layer address (it was home) switch to us now.
    this.#announcing.get(homeAddress)?.();
    const cancel = advertiseNeighbor(link, homeAddress, undefined, () => {
      if (this.#announcing.get(homeAddress) === cancel) this.#announcing.delete(homeAddress);
    });
    this.#announcing.set(homeAddress, cancel);
  }

  /** Records `addresses` as the proxy-only addresses of `homeAddress` (none: no entry). */
  #setDefended(homeAddress: string, addresses: readonly string[]): void {
    if (addresses.length > 0) this.#defended.set(homeAddress, addresses);
    else this.#defended.delete(homeAddress);
  }

  async #remove(homeAddress: string): Promise<void> {
    const program = this.#program;
    if (this.#opts.link === undefined || program === undefined) return;
    this.#announcing.get(homeAddress)?.();
    this.#announcing.delete(homeAddress);
    const extra = this.#defended.get(homeAddress) ?? [];
    this.#defended.delete(homeAddress);
    // A missing entry counts as removed; other failures are counted in programmingStatus().
    await Promise.all([
      this.#undefend([...extra, homeAddress]),
      program.run({ kind: 'route-delete', address: homeAddress }).catch(() => {}),
    ]);
  }

  /** Stops answering for `addresses`: out of the responder's set, or their kernel entries. */
  async #undefend(addresses: readonly string[]): Promise<void> {
    const program = this.#program;
    if (addresses.length === 0 || program === undefined) return;
    if (this.#ndproxy !== undefined) {
      this.#ndproxy.delete(addresses);
      return;
    }
    await Promise.all(
      addresses.map((a) => program.run({ kind: 'proxy-delete', address: a }).catch(() => {})),
    );
  }
}
