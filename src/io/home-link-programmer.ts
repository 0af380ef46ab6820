/**
 * The home agent's per-binding kernel state on a real home link (src/io/home-link.ts asks for
 * it): host routes into the TUN and proxy Neighbor Discovery entries on the link, programmed in
 * batches. Everything queued while one batch runs goes into the next (at most MAX_BATCH ops per
 * batch), and each op's promise settles with the kernel's own answer for it.
 *
 * Two ways to the kernel, chosen once at start:
 *  - rtnetlink through the addon (native/netlink_linux.c rtnlBatch): many requests per sendmsg,
 *    every one acknowledged, on a thread of its own (the event loop never waits for the kernel);
 *  - `ip -batch -` child processes, only when the addon has no rtnlBatch or its netlink socket
 *    cannot be opened (the daemon logs which one it uses).
 * Every op is idempotent: a route is replaced, a proxy entry added or replaced, and deleting
 * what is not there counts as done; an op that got no acknowledgement (the socket's buffer
 * overran, or no answer in 2 s) is sent again, up to MAX_ATTEMPTS times.
 *
 * status() says how far programming is behind: ops queued or in flight, the age of the oldest,
 * the slowest op so far (queued to acknowledged) and failures by errno name.
 */
import { execFile } from 'node:child_process';
import { constants } from 'node:os';
import { IoError } from '../util/errors.js';
import type { NativeAddon } from './addon.js';
import type { HomeLinkStatus } from './control-protocol.js';
import { writeAddress } from './address-bytes.js';
import { interfaceIndex, ip, IP_BIN } from './iproute.js';

/** One change to the home link: a /128 (/32) host route into the TUN, or a proxy ND entry. */
export type HomeLinkOpKind = 'route-replace' | 'route-delete' | 'proxy-add' | 'proxy-delete';

export interface HomeLinkOp {
  kind: HomeLinkOpKind;
  /** IPv6 address text (IPv4 works as well: a /32 route, a proxy ARP entry). */
  address: string;
}

/** Why an op failed: an errno name ("ENODEV") and a sentence naming the op. */
export interface HomeLinkOpError {
  code: string;
  message: string;
}

/** Runs one batch; resolves with one entry per op, null when the op is done. */
export type HomeLinkBatchRunner = (
  ops: readonly HomeLinkOp[],
) => Promise<(HomeLinkOpError | null)[]>;

/**
 * Ops per batch (one rtnlBatch call): ~5 ms of kernel time for 1024 routes, more for proxy
 * entries as their table grows (bench/results/home-link-programming-2026-12-05.md).
 */
export const MAX_BATCH = 1024;
/** Sends of an op that got no acknowledgement (ENOBUFS, ETIMEDOUT) before it fails. */
export const MAX_ATTEMPTS = 3;

/** What `ip` command each kind stands for (and what the rtnetlink request does the same as). */
function ipArgs(op: HomeLinkOp, tunName: string, link: string): string[] {
  const host = `${op.address}/${op.address.includes(':') ? 128 : 32}`;
  switch (op.kind) {
    case 'route-replace':
      return ['route', 'replace', host, 'dev', tunName];
    case 'route-delete':
      return ['route', 'del', host, 'dev', tunName];
    case 'proxy-add':
      return ['neigh', 'replace', 'proxy', op.address, 'dev', link];
    case 'proxy-delete':
      return ['neigh', 'del', 'proxy', op.address, 'dev', link];
  }
}

function describe(op: HomeLinkOp, tunName: string, link: string): string {
  return `ip ${ipArgs(op, tunName, link).join(' ')}`;
}

interface Pending {
  op: HomeLinkOp;
  queuedAt: number;
  attempts: number;
  settle: (err: HomeLinkOpError | null) => void;
}

/** Worth another try: a full socket buffer, no ACK in time, a thread that could not start. */
const TRANSIENT = new Set(['ENOBUFS', 'ETIMEDOUT', 'EINTR', 'EAGAIN']);

export class HomeLinkProgrammer {
  readonly #run: HomeLinkBatchRunner;
  readonly #via: HomeLinkStatus['via'];
  readonly #now: () => number;
  #queue: Pending[] = [];
  #inFlight: Pending[] = [];
  #running = false;
  #slowestMs = 0;
  #done = 0;
  #batches = 0;
  readonly #failed: Record<string, number> = {};

  constructor(
    via: HomeLinkStatus['via'],
    run: HomeLinkBatchRunner,
    now: () => number = () => performance.now(),
  ) {
    this.#via = via;
    this.#run = run;
    this.#now = now;
  }

  /** Queues `op`; resolves once the kernel acknowledged it, rejects with IoError otherwise. */
  run(op: HomeLinkOp): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({
        op,
        queuedAt: this.#now(),
        attempts: 0,
        settle: (err) =>
          err === null ? resolve() : reject(new IoError(`ERR_HOME_LINK_${err.code}`, err.message)),
      });
      if (!this.#running) void this.#next();
    });
  }

  status(): HomeLinkStatus {
    const oldest = this.#inFlight[0] ?? this.#queue[0];
    return {
      via: this.#via,
      queued: this.#inFlight.length + this.#queue.length,
      oldestMs: oldest === undefined ? 0 : Math.round(this.#now() - oldest.queuedAt),
      slowestMs: Math.round(this.#slowestMs),
      done: this.#done,
      batches: this.#batches,
      failed: { ...this.#failed },
    };
  }

  async #next(): Promise<void> {
    this.#running = true;
    // The first batch of a burst waits for the rest of this turn of the event loop (a datagram
    // batch's BUs, the DAD probes that ended together), then takes all of it.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, MAX_BATCH);
      this.#inFlight = batch;
      let results: (HomeLinkOpError | null)[];
      try {
        results = await this.#run(batch.map((p) => p.op));
      } catch (err) {
        const e = err as { code?: unknown; message?: unknown };
        const failure = {
          code: typeof e.code === 'string' ? e.code : 'EIO',
          message: String(e.message ?? err),
        };
        results = batch.map(() => failure);
      }
      this.#batches++;
      const retry: Pending[] = [];
      const now = this.#now();
      batch.forEach((p, i) => {
        const err = results[i] ?? null;
        p.attempts++;
        if (err !== null && TRANSIENT.has(err.code) && p.attempts < MAX_ATTEMPTS) {
          retry.push(p);
          return;
        }
        this.#slowestMs = Math.max(this.#slowestMs, now - p.queuedAt);
        if (err === null) this.#done++;
        else this.#failed[err.code] = (this.#failed[err.code] ?? 0) + 1;
        p.settle(err);
      });
      this.#inFlight = [];
      this.#queue.unshift(...retry);
    }
    this.#running = false;
  }
}

/** errno number -> name ("ENODEV"), from node's table. */
const ERRNO_NAMES = new Map<number, string>(
  Object.entries(constants.errno).map(([name, no]) => [no, name]),
);

/** Bytes per op in rtnlBatch's input (native/netlink_linux.c). */
const RTNL_OP_LEN = 24;
const RTNL_KIND: Record<HomeLinkOpKind, number> = {
  'route-replace': 1,
  'route-delete': 3,
  'proxy-add': 4,
  'proxy-delete': 5,
};

/**
 * Batches through the addon's rtnlBatch, or a sentence saying why it cannot be used (an addon
 * without it, or a netlink socket that does not open): the caller falls back to `ip -batch`.
 */
export async function rtnetlinkRunner(
  addon: Pick<NativeAddon, 'rtnlBatch'>,
  tunName: string,
  link: string,
): Promise<HomeLinkBatchRunner | string> {
  const batch = addon.rtnlBatch;
  if (batch === undefined) return 'the native addon has no rtnlBatch (rebuild it)';
  try {
    await batch.call(addon, new Uint8Array(0), 0, new Int32Array(0));
  } catch (err) {
    return `the rtnetlink socket does not open: ${(err as Error).message}`;
  }
  return async (ops) => {
    // Looked up per batch: a re-created interface gets a new index.
    const tun = interfaceIndex(tunName);
    const home = interfaceIndex(link);
    const buf = new Uint8Array(ops.length * RTNL_OP_LEN);
    const view = new DataView(buf.buffer);
    ops.forEach((op, i) => {
      const at = i * RTNL_OP_LEN;
      const family = op.address.includes(':') ? 6 : 4;
      buf[at] = RTNL_KIND[op.kind];
      buf[at + 1] = family;
      view.setUint32(at + 4, op.kind.startsWith('route') ? tun : home, true);
      writeAddress(family, op.address, buf, at + 8);
    });
    const results = new Int32Array(ops.length);
    await batch.call(addon, buf, ops.length, results);
    return ops.map((op, i) => {
      const r = results[i] ?? 0;
      if (r === 0) return null;
      const dev = op.kind.startsWith('route') ? tunName : link;
      const code =
        (op.kind.startsWith('route') ? tun : home) === 0
          ? 'ENODEV'
          : (ERRNO_NAMES.get(-r) ?? `errno ${-r}`);
      return {
        code,
        message: `\`${describe(op, tunName, link)}\` over rtnetlink failed: ${code}${code === 'ENODEV' ? ` (no interface ${dev})` : ''}${code === 'EPERM' ? ' (needs root or CAP_NET_ADMIN)' : ''}`,
      };
    });
  };
}

/** What `ip` says when a delete finds nothing to delete: counted as done, like rtnetlink. */
const NOTHING_TO_DELETE = /No such process|No such file or directory/;

/**
 * The fallback: one `ip -batch -` per batch (a process per batch instead of two per binding).
 * A batch that fails in any way (some `ip neigh` errors end the whole batch) is run again one
 * command at a time, which gives each command its own result.
 */
export function ipBatchRunner(tunName: string, link: string): HomeLinkBatchRunner {
  const one = (op: HomeLinkOp): Promise<HomeLinkOpError | null> =>
    ip(ipArgs(op, tunName, link)).then(
      () => null,
      (err: unknown) => {
        const message = err instanceof Error ? err.message : String(err);
        if (op.kind.endsWith('delete') && NOTHING_TO_DELETE.test(message)) return null;
        return { code: 'EIPROUTE', message };
      },
    );
  return (ops) =>
    new Promise((resolve) => {
      const child = execFile(IP_BIN, ['-batch', '-'], { timeout: 10_000 }, (err) => {
        if (err === null) {
          resolve(ops.map(() => null));
          return;
        }
        void (async () => {
          const results: (HomeLinkOpError | null)[] = [];
          for (const op of ops) results.push(await one(op));
          resolve(results);
        })();
      });
      // No family option in batch lines: the addresses select it.
      child.stdin?.end(ops.map((op) => ipArgs(op, tunName, link).join(' ')).join('\n') + '\n');
    });
}
