/**
 * The mobile node's view of its care-of addresses on Linux: which local address the kernel
 * would use to reach each of the home agent's underlay addresses (`ip -j route get`), and a
 * stream of rtnetlink events (`ip -o monitor link address route`) that says when to look
 * again. A change of the chosen address is a move (RFC 6275 §11.5.1, done by the MN role).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { ip } from './iproute.js';

export interface CareOf {
  family: 4 | 6;
  localAddress: string;
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
}

interface RouteGet {
  dev?: string;
  prefsrc?: string;
  type?: string;
}

export class RouteCareOfSource {
  readonly #opts: RouteCareOfOptions;
  #monitor: ChildProcess | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(opts: RouteCareOfOptions) {
    this.#opts = opts;
  }

  async #lookup(family: 4 | 6, agent: string | undefined): Promise<CareOf | null> {
    if (agent === undefined) return null;
    let out: string;
    try {
      out = await ip([family === 4 ? '-4' : '-6', '-j', 'route', 'get', agent]);
    } catch {
      return null; // "Network is unreachable": no care-of of this family
    }
    let routes: RouteGet[];
    try {
      routes = JSON.parse(out) as RouteGet[];
    } catch {
      return null;
    }
    const r = routes[0];
    if (r === undefined || r.prefsrc === undefined || r.dev === undefined) return null;
    if (r.type !== undefined && r.type !== 'unicast') return null;
    if (r.dev === this.#opts.tunName) return null;
    const allowed = this.#opts.interfaces ?? [];
    if (allowed.length > 0 && !allowed.includes(r.dev)) return null;
    return { family, localAddress: r.prefsrc };
  }

  async probe(): Promise<CareOf[]> {
    const found = await Promise.all([
      this.#lookup(4, this.#opts.agent4),
      this.#lookup(6, this.#opts.agent6),
    ]);
    return found.filter((c): c is CareOf => c !== null);
  }

  watch(onChange: () => void): void {
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
      }, this.#opts.debounceMs ?? 5);
    });
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#monitor?.kill();
    this.#monitor = undefined;
  }
}
