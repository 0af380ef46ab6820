/**
 * The mobile node's view of its care-of addresses on Linux (RFC 6275 §11.5.1; the move itself is
 * decided by the MN role):
 *
 *   events   `ip -o monitor link address route` (one long-lived child; every rtnetlink event,
 *            debounced by a couple of milliseconds) says when to look again.
 *   routes   for each of the home agent's underlay addresses, the route the kernel would use
 *            (RTM_GETROUTE over a netlink socket in the addon, ~30 µs; `ip -j route get` only
 *            when the addon is missing): its preferred source address is the care-of address,
 *            once the kernel says the route's link is operational (sysfs operstate; a link that
 *            has just come up drops what is sent until then, and its up event brings us back).
 *            Spawning `ip` per lookup cost 100-500 ms on a loaded box, which was most of the
 *            handover time.
 *   home     the home link (RFC 6275 §11.5.4) is recognised in two ways:
 *              - an interface (not the TUN) holds a global address inside the home prefix (the
 *                home address itself once we are home, or a SLAAC address from the home link's
 *                Router Advertisement);
 *              - an interface that is up with only a link-local address answers the home probe:
 *                Neighbor Solicitations for the HA's home address out of the interface (the
 *                addon, native/ndisc_linux.c: every 100 ms until a Neighbor Advertisement for it
 *                arrives with hop limit 255, at most homeProbeTimeoutMs; RFC 4861 §7.2.2): an
 *                answer means something on this link claims the HA's home address. ~1 ms when
 *                the HA answers at once; spawning `ip`
 *                and `ping` for it cost 50-200 ms, so that is only the fallback when the addon
 *                lacks ndpSolicit (an on-link host route, ICMPv6 echoes from the link-local
 *                address, then the neighbour cache). Each interface is probed once per set of
 *                addresses (a new link-local after a link flap probes again).
 *            A home candidate carries `homeLink` (the interface) and `homeLinkIndex`; its
 *            care-of address is the home address itself (CoA == HoA: deregistration, RFC 6275
 *            §11.5.5). Either sign is easy to fake (a rogue Router Advertisement for the home
 *            prefix, an evil twin's Neighbor Advertisement), so a candidate is never proof: the
 *            MN asks the home agent over that link first (src/roles/mn/mobile-node.ts).
 *            An address of the home prefix is never a route care-of (the HA would refuse it,
 *            BA 174): away, it can only come from such a rogue advertisement.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { networkInterfaces } from 'node:os';
import { prefixMatches } from '../wire/address.js';
import { loadAddon, type NativeAddon } from './addon.js';
import { addressBytes } from './address-bytes.js';
import { interfaceIndex, ip, linkOperational } from './iproute.js';

export interface CareOf {
  family: 4 | 6;
  localAddress: string;
  /** Set when this candidate is the home link (the interface); localAddress is then the HoA. */
  homeLink?: string;
  /** That interface's index (the returning-home BU leaves through it). */
  homeLinkIndex?: number;
}

export interface HomeLinkProbe {
  /** The MN's home address and home prefix length. */
  homeAddress: string;
  prefixLength: number;
  /** The HA's address on the home prefix (the neighbour looked for on a candidate link). */
  homeAgentAddress: string;
}

export interface RouteCareOfOptions {
  /** The home agent's underlay addresses (either may be absent). */
  agent4?: string | undefined;
  agent6?: string | undefined;
  /** Only these interfaces carry care-of addresses (empty: any but the TUN). */
  interfaces?: readonly string[];
  /** Our own TUN: a route through it is never a care-of path. */
  tunName: string;
  /** Quiet time after the last event before reporting (ms). */
  debounceMs?: number;
  /** Listen to rtnetlink events (default true); false leaves only the periodic re-check. */
  events?: boolean;
  /** Recognise the home link (omit to never go home). */
  home?: HomeLinkProbe | undefined;
  /** Longest wait for the home probe's echo reply (ms, default 2000). */
  homeProbeTimeoutMs?: number;
  /**
   * The firewall mark of our UDP sockets under a full tunnel (src/io/tunnel-routes.ts): route
   * lookups are made for a packet with this mark, so a default route through the TUN does not
   * hide the visited network's.
   */
  mark?: number | undefined;
}

interface RouteGet {
  dev?: string;
  prefsrc?: string;
  type?: string;
}

interface HomeVerdict {
  key: string;
  state: 'pending' | 'home' | 'away';
}

const RTN_UNICAST = 1; // <linux/rtnetlink.h>

function inPrefix(address: string, prefix: Uint8Array, length: number): boolean {
  let bytes: Uint8Array;
  try {
    bytes = addressBytes(6, address);
  } catch {
    return false;
  }
  return prefixMatches(prefix, length, bytes, 0);
}

/** The interface's index (its link-local address's scope, else sysfs); 0 when unknown. */
function linkIndex(dev: string, linkLocalScope: number | undefined): number {
  return linkLocalScope !== undefined && linkLocalScope > 0 ? linkLocalScope : interfaceIndex(dev);
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err) => {
      resolve(err === null ? 0 : typeof err.code === 'number' ? err.code : 1);
    });
  });
}

export class RouteCareOfSource {
  #opts: RouteCareOfOptions;
  readonly #addon: NativeAddon | undefined;
  /** The addon's Neighbor Solicitation probe, when it has one. */
  readonly #solicit: NativeAddon['ndpSolicit'];
  readonly #homePrefix: Uint8Array | undefined;
  /** Home-probe verdicts by interface, keyed by the interface's address list. */
  readonly #homeVerdicts = new Map<string, HomeVerdict>();
  #onChange: (() => void) | undefined;
  #monitor: ChildProcess | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(opts: RouteCareOfOptions) {
    this.#opts = opts;
    let addon: NativeAddon | undefined;
    try {
      addon = loadAddon();
    } catch {
      addon = undefined; // fall back to `ip -j route get`
    }
    this.#addon = addon?.routeGet ? addon : undefined;
    this.#solicit = addon?.ndpSolicit?.bind(addon);
    this.#homePrefix = opts.home ? addressBytes(6, opts.home.homeAddress) : undefined;
  }

  #allowed(dev: string): boolean {
    if (dev === this.#opts.tunName || dev === 'lo') return false;
    const allowed = this.#opts.interfaces ?? [];
    return allowed.length === 0 || allowed.includes(dev);
  }

  async #route(family: 4 | 6, agent: string): Promise<RouteGet | null> {
    const addon = this.#addon;
    if (addon?.routeGet) {
      let r: [number, string, string] | null;
      try {
        // A 16-byte slot; IPv4 sits in its first 4 bytes.
        const slot = addressBytes(family, agent);
        r = addon.routeGet(family, family === 4 ? slot.subarray(0, 4) : slot, this.#opts.mark);
      } catch {
        return null;
      }
      if (r === null) return null;
      return {
        type: r[0] === RTN_UNICAST ? 'unicast' : String(r[0]),
        ...(r[1] !== '' ? { dev: r[1] } : {}),
        ...(r[2] !== '' ? { prefsrc: r[2] } : {}),
      };
    }
    let out: string;
    try {
      const mark = this.#opts.mark;
      const marked = mark !== undefined && mark !== 0 ? ['mark', String(mark)] : [];
      out = await ip([family === 4 ? '-4' : '-6', '-j', 'route', 'get', agent, ...marked]);
    } catch {
      return null; // "Network is unreachable": no care-of of this family
    }
    try {
      return (JSON.parse(out) as RouteGet[])[0] ?? null;
    } catch {
      return null;
    }
  }

  async #lookup(family: 4 | 6, agent: string | undefined): Promise<CareOf | null> {
    if (agent === undefined) return null;
    const r = await this.#route(family, agent);
    if (r === null || r.prefsrc === undefined || r.dev === undefined) return null;
    if (r.type !== undefined && r.type !== 'unicast') return null;
    if (!this.#allowed(r.dev)) return null;
    // A link that has just come up is not usable until the kernel says so (its link event
    // brings us back here): what we sent before would be dropped, and the move with it.
    if (!linkOperational(r.dev)) return null;
    const home = this.#opts.home;
    const prefix = this.#homePrefix;
    if (family === 6 && home && prefix && inPrefix(r.prefsrc, prefix, home.prefixLength)) {
      return null; // the home prefix is not a care-of (see the file comment)
    }
    return { family, localAddress: r.prefsrc };
  }

  /** The HA's underlay addresses changed (re-resolved by name). */
  setAgents(agents: { agent4?: string | undefined; agent6?: string | undefined }): void {
    this.#opts = { ...this.#opts, agent4: agents.agent4, agent6: agents.agent6 };
  }

  /** Candidates: one per family with a route to the HA, plus the home link when we are on it. */
  async probe(): Promise<CareOf[]> {
    const home = this.#findHome();
    const found = await Promise.all([
      this.#lookup(4, this.#opts.agent4),
      this.#lookup(6, this.#opts.agent6),
    ]);
    const out = found.filter((c): c is CareOf => c !== null);
    if (home !== null) {
      // At home the HoA is the care-of: drop a route-derived duplicate of it.
      return [home, ...out.filter((c) => c.localAddress !== home.localAddress)];
    }
    return out;
  }

  /**
   * The home candidate from what is known now. Probes of new link-only interfaces run in the
   * background (they take up to homeProbeTimeoutMs); a probe that finds home reports a change.
   */
  #findHome(): CareOf | null {
    const home = this.#opts.home;
    const prefix = this.#homePrefix;
    if (home === undefined || prefix === undefined) return null;
    const linkOnly: { dev: string; linkLocal: string; index: number; key: string }[] = [];
    for (const [dev, infos] of Object.entries(networkInterfaces())) {
      if (infos === undefined || !this.#allowed(dev)) continue;
      const v6 = infos.filter((i) => i.family === 'IPv6');
      const global = v6.filter((i) => !i.address.toLowerCase().startsWith('fe80:'));
      const ll = v6.find((i) => i.address.toLowerCase().startsWith('fe80:'));
      if (global.some((i) => inPrefix(i.address, prefix, home.prefixLength))) {
        const homeLinkIndex = linkIndex(dev, ll?.scopeid);
        return { family: 6, localAddress: home.homeAddress, homeLink: dev, homeLinkIndex };
      }
      // Only links with nothing but a link-local address are probed (a visited network gives
      // us a global address, IPv4 or IPv6; a home link gives none until we take the HoA).
      if (ll !== undefined && v6.length === infos.length && global.length === 0) {
        linkOnly.push({
          dev,
          linkLocal: ll.address,
          index: linkIndex(dev, ll.scopeid),
          key: v6.map((i) => i.address).join(','),
        });
      }
    }
    for (const gone of [...this.#homeVerdicts.keys()]) {
      if (!linkOnly.some((l) => l.dev === gone)) this.#homeVerdicts.delete(gone);
    }
    for (const l of linkOnly) {
      const v = this.#homeVerdicts.get(l.dev);
      if (v === undefined || v.key !== l.key) {
        const verdict: HomeVerdict = { key: l.key, state: 'pending' };
        this.#homeVerdicts.set(l.dev, verdict);
        void this.#probeHome(l.dev, l.linkLocal, home).then((isHome) => {
          verdict.state = isHome ? 'home' : 'away';
          if (isHome && !this.#closed && this.#homeVerdicts.get(l.dev) === verdict) {
            this.#onChange?.();
          }
        });
      } else if (v.state === 'home') {
        return {
          family: 6,
          localAddress: home.homeAddress,
          homeLink: l.dev,
          homeLinkIndex: l.index,
        };
      }
    }
    return null;
  }

  /** Is the HA's home address on this link? (see the file comment) */
  async #probeHome(dev: string, linkLocal: string, home: HomeLinkProbe): Promise<boolean> {
    const ha = home.homeAgentAddress;
    const timeout = this.#opts.homeProbeTimeoutMs ?? 2000;
    const solicit = this.#solicit;
    if (solicit !== undefined) {
      try {
        return await solicit(dev, addressBytes(6, ha), timeout);
      } catch {
        return false; // the interface went away meanwhile (or no raw socket): not home
      }
    }
    const route = ['-6', 'route', 'replace', `${ha}/128`, 'dev', dev, 'metric', '1'];
    try {
      await ip(route);
    } catch {
      return false;
    }
    try {
      const secs = String(Math.max(1, Math.ceil(timeout / 1000)));
      // An echo every 100 ms until the first reply or the deadline: on a link that has just
      // come up the first exchange is often lost (the far end is not forwarding yet).
      const code = await run(
        'ping',
        ['-6', '-n', '-q', '-c', '1', '-i', '0.1', '-w', secs, '-I', `${linkLocal}%${dev}`, ha],
        timeout + 500,
      );
      if (code === 0) return true;
      const neigh = await ip(['-6', 'neigh', 'show', ha, 'dev', dev]).catch(() => '');
      return /lladdr/.test(neigh) && !/FAILED|INCOMPLETE/.test(neigh);
    } finally {
      // Off the critical path: the verdict does not wait for the clean-up.
      void ip(['-6', 'route', 'del', `${ha}/128`, 'dev', dev, 'metric', '1']).catch(() => '');
    }
  }

  watch(onChange: () => void): void {
    this.#onChange = onChange;
    if (this.#closed || this.#monitor || this.#opts.events === false) return;
    const child = spawn('ip', ['-o', 'monitor', 'link', 'address', 'route'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    this.#monitor = child;
    child.on('error', () => {
      // no iproute2 monitor: the MN's periodic re-check still notices moves
      this.#monitor = undefined;
    });
    child.stdout?.on('data', () => {
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        if (!this.#closed) onChange();
      }, this.#opts.debounceMs ?? 2);
    });
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#monitor?.kill();
    this.#monitor = undefined;
  }
}
