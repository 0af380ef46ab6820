/**
 * The mobile node's side of home agent and mobile prefix discovery (RFC 6275 §11.4), sans-IO:
 * fed decoded DHAAD Replies and Mobile Prefix Advertisements (already known to come from the
 * home agent's channel, marked as its own signaling) and a clock, it returns what to send and
 * what it learned. The driver (roles/mn/mobile-node.ts) seals the packets in the HA channel.
 *
 * Flow: discover(now) -> a DHAAD Request to the home prefix's HA anycast address and a Mobile
 * Prefix Solicitation to the HA, each with a fresh random Identifier. Unanswered ones go out
 * again with the same Identifier: the DHAAD Request INITIAL_DHAAD_TIMEOUT doubling, DHAAD_RETRIES
 * times (RFC 6275 §11.4.1); the MPS from INITIAL_SOLICIT_TIMER doubling with no limit on the
 * count, each wait capped at MAX_MOBPFX_SOLICIT_TIMEOUT (§11.4.2), until an MPA answers it.
 * Trust (issue #13, unchanged): a DHAAD Reply counts only with the Identifier of our outstanding
 * request (RFC 6275 §11.4.1), else it is dropped. An MPA with the outstanding solicitation's
 * Identifier is solicited; any other MPA from the HA channel is unsolicited (RFC 6275 §11.4.3):
 * still recorded, and acknowledged with a home-registration BU (`acknowledge`). Home agents
 * announced in an MPA (Home Agent Locator options) replace the learned ones; an unsolicited
 * change of that set asks DHAAD again.
 * Failover: the learned home agents in DHAAD order (else by preference), with what reaching
 * each takes; the configured HA always stays on the list.
 */
import { encodeIcmpv6Packet } from '../wire/packet.js';
import type { Icmpv6Message } from '../wire/icmpv6.js';
import { formatIpv6, maskPrefix, parseIpv6, parsePrefix, prefixContains } from '../wire/address.js';
import { systemRandom, type RandomSource } from '../util/random-source.js';
import {
  DHAAD_RETRIES,
  INITIAL_DHAAD_TIMEOUT_MS,
  INITIAL_SOLICIT_TIMER_MS,
  MAX_MOBPFX_SOLICIT_TIMEOUT_MS,
} from './constants.js';
import {
  advertisedHomeAgents,
  advertisedPrefixes,
  homeAgentAnycast,
  PREFIX_LIFETIME_INFINITE,
  type HomeAgentInfo,
} from './home-agent-discovery.js';

/** A home prefix from the last Mobile Prefix Advertisement ("prefix/length", seconds). */
export interface HomePrefix {
  prefix: string;
  validLifetime: number;
  preferredLifetime: number;
}

/** A home agent to fail over to, with what reaching it takes. */
export interface FailoverEntry {
  /** Its address on the home prefix. */
  address: string;
  agent4?: string | undefined;
  agent6?: string | undefined;
  port: number;
  publicKey: Uint8Array;
}

/** A home agent learned from an MPA, with the absolute expiry of its entry (ms). */
export type LearnedHomeAgent = HomeAgentInfo & { expiresAt: number };

export type HomeAgentDiscoveryAction =
  /** Seal this IPv6 packet (source: the HoA) as signaling in the HA channel. */
  | { kind: 'send'; packet: Uint8Array; message: 'haadRequest' | 'mobilePrefixSolicitation' }
  /** A DHAAD Reply answered our request: the home agents, most preferred first. */
  | { kind: 'homeAgents'; list: string[] }
  /** An MPA: the home prefixes; `ours` = one of them (still valid) holds the home address. */
  | { kind: 'homePrefixes'; prefixes: HomePrefix[]; ours: boolean }
  /** An unsolicited MPA: acknowledge it with a home-registration BU (when registered). */
  | { kind: 'acknowledge' }
  /** A message refused (a counted drop). */
  | { kind: 'drop'; reason: 'dhaad-reply-unsolicited' }
  /** The retransmissions ran out with these still unanswered. */
  | { kind: 'unanswered'; dhaad: boolean; mps: boolean };

export interface HomeAgentDiscoveryClientConfig {
  homeAddress: string;
  /** Length of the home prefix (DHAAD's anycast address). */
  homePrefixLength: number;
  /** The configured home agent: always a failover candidate. */
  configured: FailoverEntry;
  /** Identifiers come from here (default systemRandom). */
  random?: RandomSource | undefined;
  initialTimeoutMs?: number | undefined;
  retries?: number | undefined;
}

/** The DHAAD / MPS client and the home agents it learned (see the file comment). */
export class HomeAgentDiscoveryClient {
  /** HA addresses from the last DHAAD Reply (most preferred first). */
  homeAgents: string[] = [];
  /** Home prefixes from the last Mobile Prefix Advertisement. */
  homePrefixes: HomePrefix[] = [];
  /** Home agents announced in MPAs (underlay, port, key), by home-prefix address. */
  readonly learnedAgents = new Map<string, LearnedHomeAgent>();
  readonly #hoa: string;
  readonly #hoaBytes: Uint8Array;
  readonly #prefixLength: number;
  readonly #random: RandomSource;
  readonly #initialTimeoutMs: number;
  readonly #initialSolicitMs: number;
  readonly #retries: number;
  #configured: FailoverEntry;
  /** The home-prefix address of the HA in use (MPS destination). */
  #homeAgent: string;
  #dhaadRequest: number | undefined;
  #solicitation: number | undefined;
  /** The DHAAD Request's retransmissions (while #dhaadRequest is outstanding). */
  #retry: { nextAt: number; timeoutMs: number; left: number } | undefined;
  /** The MPS's retransmissions (while #solicitation is outstanding). */
  #solicitRetry: { nextAt: number; timeoutMs: number; sends: number } | undefined;
  /** When the last MPA's home prefix holding our home address becomes invalid (ms). */
  #homePrefixExpiresAt = Infinity;
  /** Discovery ran with the HA in use (once per HA, then on demand). */
  #discovered = false;

  constructor(config: HomeAgentDiscoveryClientConfig) {
    this.#hoa = config.homeAddress;
    this.#hoaBytes = parseIpv6(config.homeAddress);
    this.#prefixLength = config.homePrefixLength;
    this.#configured = config.configured;
    this.#homeAgent = config.configured.address;
    this.#random = config.random ?? systemRandom;
    this.#initialTimeoutMs = config.initialTimeoutMs ?? INITIAL_DHAAD_TIMEOUT_MS;
    this.#initialSolicitMs = config.initialTimeoutMs ?? INITIAL_SOLICIT_TIMER_MS;
    this.#retries = config.retries ?? DHAAD_RETRIES;
  }

  /** The configured HA's underlay addresses changed (re-resolved by name). */
  setConfiguredAgents(agents: { agent4?: string | undefined; agent6?: string | undefined }): void {
    this.#configured = { ...this.#configured, agent4: agents.agent4, agent6: agents.agent6 };
  }

  /** Another home agent is in use: nothing outstanding, discovery again once registered there. */
  switchHomeAgent(address: string): void {
    this.#homeAgent = address;
    this.#discovered = false;
    this.#retry = undefined;
    this.#solicitRetry = undefined;
    this.#dhaadRequest = undefined;
    this.#solicitation = undefined;
  }

  /** A DHAAD Request and a Mobile Prefix Solicitation, fresh Identifiers, timer restarted. */
  discover(now: number): HomeAgentDiscoveryAction[] {
    const out = [this.#dhaad(this.#newIdentifier())];
    this.#solicitation = this.#newIdentifier();
    out.push(this.#mps(this.#solicitation));
    this.#retry = {
      nextAt: now + this.#initialTimeoutMs,
      timeoutMs: this.#initialTimeoutMs,
      left: this.#retries,
    };
    this.#solicitRetry = {
      nextAt: now + this.#initialSolicitMs,
      timeoutMs: this.#initialSolicitMs,
      sends: 1,
    };
    return out;
  }

  /**
   * Registered with the HA in use: discover once, whenever the HA asks (BA status 1), and when
   * a learned home agent would expire before this registration does.
   */
  onRegistered(
    now: number,
    lifetimeSeconds: number,
    prefixDiscoveryNeeded: boolean,
  ): HomeAgentDiscoveryAction[] {
    const until = now + lifetimeSeconds * 1000;
    // A learned home agent, or our home prefix (RFC 6275 §11.4.2: ask before the home address
    // becomes invalid), would run out before this registration does.
    const expiring =
      this.#homePrefixExpiresAt <= until ||
      [...this.learnedAgents.values()].some((h) => h.expiresAt <= until);
    if (this.#discovered && !prefixDiscoveryNeeded && !expiring) return [];
    this.#discovered = true;
    return this.discover(now);
  }

  /** When unanswered messages go out again (Infinity: none outstanding). */
  nextDeadline(): number {
    const dhaad = this.#dhaadRequest === undefined ? Infinity : (this.#retry?.nextAt ?? Infinity);
    const mps =
      this.#solicitation === undefined ? Infinity : (this.#solicitRetry?.nextAt ?? Infinity);
    return Math.min(dhaad, mps);
  }

  /**
   * Resends what is still unanswered, same Identifiers, each timeout doubling: the DHAAD
   * Request DHAAD_RETRIES times, then 'unanswered' (with whether the MPS is still waiting too);
   * the MPS for as long as it stays unanswered, waiting at most MAX_MOBPFX_SOLICIT_TIMEOUT.
   */
  poll(now: number): HomeAgentDiscoveryAction[] {
    const out: HomeAgentDiscoveryAction[] = [];
    const r = this.#retry;
    if (r !== undefined && this.#dhaadRequest !== undefined && now >= r.nextAt) {
      if (r.left === 0) {
        this.#retry = undefined;
        this.#dhaadRequest = undefined;
        out.push({ kind: 'unanswered', dhaad: true, mps: this.#solicitation !== undefined });
      } else {
        r.left--;
        r.timeoutMs *= 2;
        r.nextAt = now + r.timeoutMs;
        out.push(this.#dhaad(this.#dhaadRequest));
      }
    }
    const m = this.#solicitRetry;
    if (m !== undefined && this.#solicitation !== undefined && now >= m.nextAt) {
      m.timeoutMs = Math.min(m.timeoutMs * 2, MAX_MOBPFX_SOLICIT_TIMEOUT_MS);
      m.nextAt = now + m.timeoutMs;
      m.sends++;
      out.push(this.#mps(this.#solicitation));
      if (m.sends === this.#retries + 1 && this.#dhaadRequest === undefined) {
        // The DHAAD Request was answered, the MPS not: say so once, at the same count.
        out.push({ kind: 'unanswered', dhaad: false, mps: true });
      }
    }
    return out;
  }

  /** A DHAAD Reply or an MPA the home agent sent as its own signaling. */
  onMessage(msg: Icmpv6Message, now: number): HomeAgentDiscoveryAction[] {
    if (msg.kind === 'haadReply') {
      if (this.#dhaadRequest === undefined || msg.identifier !== this.#dhaadRequest) {
        return [{ kind: 'drop', reason: 'dhaad-reply-unsolicited' }];
      }
      this.#dhaadRequest = undefined;
      this.homeAgents = [...msg.homeAgentAddresses];
      return [{ kind: 'homeAgents', list: this.homeAgents }];
    }
    if (msg.kind !== 'mobilePrefixAdvertisement') return [];
    const out: HomeAgentDiscoveryAction[] = [];
    const solicited = msg.identifier === this.#solicitation;
    if (solicited) this.#solicitation = undefined;
    // Announced home agents replace the learned ones; a changed set asks DHAAD again.
    const before = [...this.learnedAgents.keys()].sort().join(',');
    this.learnedAgents.clear();
    for (const a of advertisedHomeAgents(msg)) {
      if (a.lifetime > 0)
        this.learnedAgents.set(a.address, { ...a, expiresAt: now + a.lifetime * 1000 });
    }
    const after = [...this.learnedAgents.keys()].sort().join(',');
    if (!solicited && before !== after) out.push(this.#dhaad(this.#newIdentifier()));
    if (!solicited) out.push({ kind: 'acknowledge' });
    this.homePrefixes = advertisedPrefixes(msg);
    const ours = this.homePrefixes.some(
      (p) => p.validLifetime > 0 && holds(p.prefix, this.#hoaBytes),
    );
    out.push({ kind: 'homePrefixes', prefixes: this.homePrefixes, ours });
    let expiresAt = Infinity;
    for (const p of this.homePrefixes) {
      if (p.validLifetime !== PREFIX_LIFETIME_INFINITE && holds(p.prefix, this.#hoaBytes)) {
        expiresAt = Math.min(expiresAt, now + p.validLifetime * 1000);
      }
    }
    this.#homePrefixExpiresAt = expiresAt;
    return out;
  }

  /**
   * The home agents to fail over to, in DHAAD order (else by announced preference), each with
   * what reaching it takes; the configured HA uses the configured addresses and key. Entries
   * whose lifetime ran out, or that announced no underlay address, are left out.
   */
  failoverList(now: number): FailoverEntry[] {
    const order =
      this.homeAgents.length > 0
        ? this.homeAgents
        : [...this.learnedAgents.values()]
            .sort((a, b) => b.preference - a.preference)
            .map((a) => a.address);
    const configured = this.#configured;
    const out: FailoverEntry[] = [];
    for (const address of order.includes(configured.address)
      ? order
      : [...order, configured.address]) {
      if (address === configured.address) {
        out.push({ ...configured });
        continue;
      }
      const a = this.learnedAgents.get(address);
      if (a === undefined || a.expiresAt <= now) continue;
      if (a.underlay4 === undefined && a.underlay6 === undefined) continue;
      out.push({
        address,
        agent4: a.underlay4,
        agent6: a.underlay6,
        port: a.port ?? configured.port,
        publicKey: a.publicKey ?? configured.publicKey,
      });
    }
    return out;
  }

  /** The home agent after `current` in failoverList(), or undefined when there is no other. */
  nextHomeAgent(current: string, now: number): FailoverEntry | undefined {
    const list = this.failoverList(now);
    if (list.length < 2) return undefined;
    const i = list.findIndex((c) => c.address === current);
    const next = list[(i + 1) % list.length]!;
    return next.address === current ? undefined : next;
  }

  #newIdentifier(): number {
    return Math.floor(this.#random() * 0x10000);
  }

  #dhaad(identifier: number): HomeAgentDiscoveryAction {
    this.#dhaadRequest = identifier;
    const prefix = formatIpv6(maskPrefix(this.#hoaBytes, this.#prefixLength));
    return {
      kind: 'send',
      message: 'haadRequest',
      packet: encodeIcmpv6Packet({
        source: this.#hoa,
        destination: homeAgentAnycast(prefix, this.#prefixLength),
        message: { kind: 'haadRequest', identifier, mobileRouter: false },
      }),
    };
  }

  #mps(identifier: number): HomeAgentDiscoveryAction {
    return {
      kind: 'send',
      message: 'mobilePrefixSolicitation',
      packet: encodeIcmpv6Packet({
        source: this.#hoa,
        destination: this.#homeAgent,
        message: { kind: 'mobilePrefixSolicitation', identifier },
      }),
    };
  }
}

/** True when "prefix/len" contains the 16-byte address (false for text that is no prefix). */
function holds(text: string, address: Uint8Array): boolean {
  try {
    return prefixContains(parsePrefix(text), address);
  } catch {
    return false;
  }
}
