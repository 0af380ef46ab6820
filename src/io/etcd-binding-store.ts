/**
 * The cluster's binding store (`[cluster]` in ha.toml, issue 18): the home agents of one home
 * prefix share their bindings through etcd (v3 API, the `etcd3` client), so any of them can
 * take a member over from another with the sequence number continuing.
 *
 * Keys, under /mip6/<cluster>/:
 *   bindings/<home address>  one binding as JSON: the StoredBinding (owner key, certificate,
 *                            locator, sequence, lifetime...) and `servingHa`, the member that
 *                            serves it. Attached to that home agent's lease.
 *   agents/<member>          a live home agent: its addresses, preference and binding count
 *                            (DHAAD and MPAs list these). On its lease too.
 * The lease (LEASE_TTL_S) is kept alive while the home agent runs; a dead home agent's keys
 * vanish when it expires, so its members find no binding to compete with at another one.
 *
 * Writes are compare-and-swap: a binding is put only if its key is still at the revision this
 * store last saw (or absent), and only if the sequence number there is not newer than ours in
 * 16-bit serial arithmetic (RFC 6275 §9.5.1) when another home agent serves it. A home agent
 * that loses that race, or whose watch shows another home agent writing one of its bindings,
 * hears `takenOver` and drops its own state for that home address.
 *
 * The home agent never waits on etcd per packet: `write` takes one burst, applies it to what
 * this store serves at once and syncs it in the background. When etcd cannot be reached the
 * store says so (`health`), keeps what it serves, and every RESYNC_MS tries again; once etcd
 * answers it takes a new lease if the old one expired and writes everything it serves again
 * (each a compare-and-swap: a binding another home agent took meanwhile is given up).
 */
import type { Etcd3, IKeyValue, Lease, Watcher } from 'etcd3';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { IoError } from '../util/errors.js';
import { formatIpv6, parseIpv6 } from '../wire/address.js';
import { bindingUpdateFlags, type BindingUpdateFlags } from '../wire/types.js';
import type { BindingStore, BindingStoreChanges, StoredBinding } from './binding-store.js';

/** Lease TTL (s): a dead home agent's bindings vanish this long after its last keepalive. */
export const LEASE_TTL_S = 5;
/** While etcd is unreachable, another attempt to sync this often (ms). */
export const RESYNC_MS = 1_000;
/** Deadline of one etcd request (ms): a request to a dead endpoint fails rather than waits. */
const REQUEST_DEADLINE_MS = 2_000;
/** Compare-and-swap attempts per binding per sync (a stale revision is re-read in between). */
const CAS_ATTEMPTS = 3;
/** The agent key's binding count is rewritten at most this often (ms). */
const AGENT_UPDATE_MS = 1_000;
/**
 * How often the live agents are read back and compared with what the watch says (ms). A watch
 * stream to an etcd member cut off from the others stays open and silent; the linearizable
 * read goes to a member with a leader, and a difference means the watch missed events: the
 * store takes a new snapshot and a new watch.
 */
const VIEW_CHECK_MS = 2_000;

export interface EtcdStoreOptions {
  /** etcd client URLs. */
  endpoints: string[];
  /** The cluster's name ([cluster] name) and this home agent's ([cluster] member). */
  cluster: string;
  member: string;
  /** PEM files for etcd's client TLS; `configKey` names them in errors. */
  tls?: { ca?: string | undefined; cert?: string | undefined; key?: string | undefined };
  /** How the config names this store in errors, e.g. "[cluster] of /etc/mip6/ha.toml". */
  configKey: string;
  /** Lease TTL (s); default LEASE_TTL_S. */
  leaseTtlSeconds?: number;
  /** How long open() waits for etcd (ms); default 10 s. */
  connectTimeoutMs?: number;
}

/** What the cluster says about one home address (from the watch). */
export interface ClusterBinding {
  homeAddress: string;
  servingHa: string;
  sequence: number;
  ownerKey: Uint8Array;
  /** etcd's mod revision of the key (compare-and-swap). */
  modRevision: string;
}

/** A live home agent of the cluster (its agents/ key). */
export interface ClusterAgent {
  member: string;
  /** Its address on the home prefix (DHAAD lists it). */
  homeAgentAddress: string;
  /** Its underlay addresses and port, where members reach it. */
  address4?: string | undefined;
  address6?: string | undefined;
  port: number;
  /** Home Agent Preference (RFC 6275 §7.4). */
  preference: number;
  /** Its static public key (X25519, hex): members check its certificate against it. */
  publicKey?: string | undefined;
  /** Bindings it serves (written at most once a second). */
  bindings: number;
}

export type ClusterHealthState = 'ok' | 'unreachable';

export interface ClusterHealth {
  state: ClusterHealthState;
  /** Unix ms of the last change. */
  since: number;
  /** Why it is unreachable (the last error). */
  error?: string | undefined;
  endpoints: string[];
}

export interface ClusterEvents {
  /** Another home agent now serves a home address this one served: drop it (no store write). */
  takenOver?: (homeAddress: string, by: string, sequence: number) => void;
  /** The set of live home agents, or one of their entries, changed. */
  agentsChanged?: (agents: ClusterAgent[]) => void;
  /** etcd became unreachable, or reachable again. */
  healthChanged?: (health: ClusterHealth) => void;
  /**
   * A value under the cluster's prefix that is not a well-formed binding or agent (skipped),
   * or a handler that failed on one: `key` and why. Those seen before on() are reported then.
   */
  badValue?: (key: string, why: string) => void;
}

/** a is newer than b in 16-bit serial arithmetic (RFC 1982; RFC 6275 §9.5.1). */
function serialNewer(a: number, b: number): boolean {
  return a !== b && ((a - b) & 0xffff) < 0x8000;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** The JSON of a binding key: keys as hex / base64, and who serves it. */
type WireBinding = Omit<StoredBinding, 'ownerKey' | 'certificate'> & {
  ownerKey: string;
  certificate: string;
  servingHa: string;
};

function encodeBinding(b: StoredBinding, servingHa: string): string {
  const w: WireBinding = {
    homeAddress: b.homeAddress,
    ownerKey: hex(b.ownerKey),
    certificate: Buffer.from(b.certificate).toString('base64'),
    peerName: b.peerName,
    careOfAddress: b.careOfAddress,
    locator: { address: b.locator.address, port: b.locator.port },
    sequence: b.sequence,
    lifetimeSeconds: b.lifetimeSeconds,
    expiresAt: b.expiresAt,
    flags: b.flags,
    natDetected: b.natDetected,
    udpEncapsulationRequired: b.udpEncapsulationRequired,
    refreshTime: b.refreshTime,
    refreshAdviceSeconds: b.refreshAdviceSeconds,
    servingHa,
  };
  return JSON.stringify(w);
}

/** The names of a BU's flags, as a stored binding carries them. */
const FLAG_NAMES = Object.keys(bindingUpdateFlags()) as (keyof BindingUpdateFlags)[];

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isIntIn = (v: unknown, min: number, max: number): v is number =>
  Number.isInteger(v) && (v as number) >= min && (v as number) <= max;

/** `text` is an IPv6 address in its canonical (RFC 5952) form: the binding cache's key. */
function isCanonicalIpv6(text: unknown): text is string {
  if (typeof text !== 'string') return false;
  try {
    return formatIpv6(parseIpv6(text)) === text;
  } catch {
    return false;
  }
}

/** A stored flags object: exactly the BU flags, each a boolean. */
function decodeFlags(v: unknown): BindingUpdateFlags | undefined {
  if (!isObject(v)) return undefined;
  const flags = bindingUpdateFlags();
  for (const name of FLAG_NAMES) {
    const f = v[name];
    if (typeof f !== 'boolean') return undefined;
    flags[name] = f;
  }
  return flags;
}

/**
 * A binding value stored under `.../bindings/<keyHoa>`, or why it is not one (another writer's
 * junk, or a damaged value). Every field is checked here: the home agent and the watch's
 * listeners take what comes out as a well-formed binding.
 */
export function decodeBinding(
  text: string,
  keyHoa: string,
): { binding: StoredBinding; servingHa: string } | string {
  let w: unknown;
  try {
    w = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  if (!isObject(w)) return 'not an object';
  if (!isCanonicalIpv6(w.homeAddress)) return 'homeAddress';
  if (w.homeAddress !== keyHoa) return 'homeAddress is not the key';
  if (typeof w.servingHa !== 'string' || w.servingHa === '') return 'servingHa';
  if (typeof w.ownerKey !== 'string' || !/^[0-9a-f]{64}$/.test(w.ownerKey)) return 'ownerKey';
  if (typeof w.certificate !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(w.certificate)) {
    return 'certificate';
  }
  if (typeof w.peerName !== 'string') return 'peerName';
  if (typeof w.careOfAddress !== 'string' || isIP(w.careOfAddress) !== 6) return 'careOfAddress';
  const loc = w.locator;
  if (!isObject(loc) || typeof loc.address !== 'string' || isIP(loc.address) === 0) {
    return 'locator.address';
  }
  if (!isIntIn(loc.port, 1, 65535)) return 'locator.port';
  if (!isIntIn(w.sequence, 0, 0xffff)) return 'sequence';
  for (const f of ['lifetimeSeconds', 'expiresAt', 'refreshTime', 'refreshAdviceSeconds']) {
    if (!isFiniteNumber(w[f]) || (w[f] as number) < 0) return f;
  }
  const flags = decodeFlags(w.flags);
  if (flags === undefined) return 'flags';
  if (typeof w.natDetected !== 'boolean') return 'natDetected';
  if (typeof w.udpEncapsulationRequired !== 'boolean') return 'udpEncapsulationRequired';
  return {
    servingHa: w.servingHa,
    binding: {
      homeAddress: w.homeAddress,
      ownerKey: new Uint8Array(Buffer.from(w.ownerKey, 'hex')),
      certificate: new Uint8Array(Buffer.from(w.certificate, 'base64')),
      peerName: w.peerName,
      careOfAddress: w.careOfAddress,
      locator: { address: loc.address, port: loc.port },
      sequence: w.sequence,
      lifetimeSeconds: w.lifetimeSeconds as number,
      expiresAt: w.expiresAt as number,
      flags,
      natDetected: w.natDetected,
      udpEncapsulationRequired: w.udpEncapsulationRequired,
      refreshTime: w.refreshTime as number,
      refreshAdviceSeconds: w.refreshAdviceSeconds as number,
    },
  };
}

function decodeAgent(text: string): ClusterAgent | undefined {
  let a: unknown;
  try {
    a = JSON.parse(text);
  } catch {
    return undefined;
  }
  const optString = (v: unknown): boolean => v === undefined || typeof v === 'string';
  if (
    !isObject(a) ||
    typeof a.member !== 'string' ||
    typeof a.homeAgentAddress !== 'string' ||
    !optString(a.address4) ||
    !optString(a.address6) ||
    !isIntIn(a.port, 1, 65535) ||
    !isIntIn(a.preference, -32768, 32767) ||
    (a.publicKey !== undefined &&
      (typeof a.publicKey !== 'string' || !/^[0-9a-f]{64}$/.test(a.publicKey))) ||
    !isIntIn(a.bindings, 0, Number.MAX_SAFE_INTEGER)
  ) {
    return undefined;
  }
  return a as unknown as ClusterAgent;
}

function readPem(path: string | undefined, what: string, configKey: string): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    throw new IoError(
      'ERR_CLUSTER_TLS',
      `${configKey}: cannot read ${what} ${path}: ${String(err)}`,
    );
  }
}

export class EtcdBindingStore implements BindingStore {
  readonly location: string;
  readonly member: string;
  readonly #client: Etcd3;
  readonly #prefix: string;
  readonly #ttl: number;
  /** Every binding of the cluster, by home address (from the initial read and the watch). */
  readonly #cluster = new Map<string, ClusterBinding>();
  /** Live home agents by member. */
  readonly #agents = new Map<string, ClusterAgent>();
  /** What this home agent serves (the last put of each), and deletes not yet in etcd. */
  readonly #mine = new Map<string, StoredBinding>();
  readonly #unsynced = new Set<string>();
  readonly #deletes = new Set<string>();
  #lease: Lease | undefined;
  #leaseId = '';
  #watcher: Watcher | undefined;
  #health: ClusterHealth;
  #events: ClusterEvents = {};
  #agent: Omit<ClusterAgent, 'bindings' | 'member'> | undefined;
  #agentWrittenCount = -1;
  #agentTimer: NodeJS.Timeout | undefined;
  #resyncTimer: NodeJS.Timeout | undefined;
  #viewTimer: NodeJS.Timeout | undefined;
  #checkingView = false;
  /** Values skipped as malformed (badValue), and those not reported yet (before on()). */
  #badValues = 0;
  #unreportedBadValues: [string, string][] = [];
  /** Bad values seen (key and mod revision): a snapshot taken again does not report them twice. */
  #seenBadValues = new Set<string>();
  #syncing: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(client: Etcd3, o: EtcdStoreOptions) {
    this.#client = client;
    this.member = o.member;
    this.#prefix = `/mip6/${o.cluster}/`;
    this.#ttl = o.leaseTtlSeconds ?? LEASE_TTL_S;
    this.location = `etcd ${o.endpoints.join(',')} ${this.#prefix}`;
    this.#health = { state: 'ok', since: Date.now(), endpoints: o.endpoints };
  }

  /**
   * Connects, takes this home agent's lease, reads the cluster's bindings and agents and starts
   * watching them. Fails (IoError, one line) when etcd does not answer within the timeout.
   */
  static async open(o: EtcdStoreOptions): Promise<EtcdBindingStore> {
    const { Etcd3 } = await import('etcd3');
    const ca = readPem(o.tls?.ca, 'tls_ca', o.configKey);
    const cert = readPem(o.tls?.cert, 'tls_cert', o.configKey);
    const key = readPem(o.tls?.key, 'tls_key', o.configKey);
    const https = o.endpoints.some((e) => e.startsWith('https:'));
    const client = new Etcd3({
      hosts: o.endpoints,
      dialTimeout: REQUEST_DEADLINE_MS,
      defaultCallOptions: (ctx) =>
        ctx.isStream ? {} : { deadline: Date.now() + REQUEST_DEADLINE_MS },
      ...(https && ca !== undefined
        ? {
            credentials: {
              rootCertificate: ca,
              ...(key !== undefined ? { privateKey: key } : {}),
              ...(cert !== undefined ? { certChain: cert } : {}),
            },
          }
        : {}),
    });
    const store = new EtcdBindingStore(client, o);
    const deadline = Date.now() + (o.connectTimeoutMs ?? 10_000);
    for (;;) {
      try {
        await store.#connect();
        store.#viewTimer = setInterval(() => void store.#checkView(), VIEW_CHECK_MS);
        store.#viewTimer.unref();
        return store;
      } catch (err) {
        if (Date.now() >= deadline) {
          await store.#teardown();
          throw new IoError(
            'ERR_CLUSTER_UNREACHABLE',
            `${o.configKey}: etcd at ${o.endpoints.join(', ')} does not answer: ${
              err instanceof Error ? err.message : String(err)
            }`,
          );
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  /** The home agent's handlers (set before load()). */
  on(events: ClusterEvents): void {
    this.#events = events;
    if (events.badValue !== undefined) {
      for (const [key, why] of this.#unreportedBadValues.splice(0)) events.badValue(key, why);
    }
  }

  /** Values under the cluster's prefix skipped as malformed since open(). */
  get badValues(): number {
    return this.#badValues;
  }

  /** A malformed value at `kv`: counted, reported (one line in the HA's log), skipped. */
  #badValue(kv: IKeyValue, why: string): void {
    const key = kv.key.toString();
    const seen = `${key}@${kv.mod_revision}`;
    if (this.#seenBadValues.has(seen)) return;
    if (this.#seenBadValues.size >= 10_000) this.#seenBadValues.clear();
    this.#seenBadValues.add(seen);
    this.#badValues++;
    if (this.#events.badValue !== undefined) this.#events.badValue(key, why);
    else if (this.#unreportedBadValues.length < 16) this.#unreportedBadValues.push([key, why]);
  }

  get health(): ClusterHealth {
    return { ...this.#health };
  }

  /** The cluster's record of a home address, whoever serves it. */
  binding(homeAddress: string): ClusterBinding | undefined {
    return this.#cluster.get(homeAddress);
  }

  /** Live home agents, by member name. */
  agents(): ClusterAgent[] {
    return [...this.#agents.values()].sort((a, b) => a.member.localeCompare(b.member));
  }

  /** Bindings per serving home agent (the cluster's view). */
  bindingCounts(): Map<string, number> {
    const out = new Map<string, number>();
    for (const b of this.#cluster.values()) out.set(b.servingHa, (out.get(b.servingHa) ?? 0) + 1);
    return out;
  }

  /** Home addresses this home agent serves. */
  get served(): number {
    return this.#mine.size;
  }

  /** Announces this home agent (its agents/ key, on the lease), kept current with its count. */
  async announce(agent: Omit<ClusterAgent, 'bindings' | 'member'>): Promise<void> {
    this.#agent = agent;
    this.#agentWrittenCount = -1;
    await this.#writeAgent();
    this.#agentTimer ??= setInterval(() => {
      if (this.#agentWrittenCount !== this.#mine.size && this.#health.state === 'ok') {
        this.#writeAgent().catch((err: unknown) => this.#unreachable(err));
      }
    }, AGENT_UPDATE_MS);
    this.#agentTimer.unref();
  }

  /**
   * The bindings this home agent served before a restart (still in etcd: the restart came
   * within the lease TTL), moved onto the new lease.
   */
  async load(): Promise<StoredBinding[]> {
    const r = await this.#client.getAll().prefix(`${this.#prefix}bindings/`).exec();
    const out: StoredBinding[] = [];
    const prefix = `${this.#prefix}bindings/`;
    for (const kv of r.kvs) {
      const key = kv.key.toString();
      const d = decodeBinding(kv.value.toString(), key.slice(prefix.length));
      if (typeof d === 'string') {
        this.#badValue(kv, d);
        continue;
      }
      if (d.servingHa !== this.member) continue;
      out.push(d.binding);
      this.#mine.set(d.binding.homeAddress, d.binding);
      this.#unsynced.add(d.binding.homeAddress);
    }
    await this.#sync();
    return out;
  }

  write(changes: BindingStoreChanges): Promise<void> {
    if (this.#closed) return Promise.resolve();
    for (const b of changes.put) {
      this.#mine.set(b.homeAddress, b);
      this.#deletes.delete(b.homeAddress);
      this.#unsynced.add(b.homeAddress);
    }
    for (const hoa of changes.delete) {
      if (!this.#mine.delete(hoa)) continue;
      this.#unsynced.delete(hoa);
      this.#deletes.add(hoa);
    }
    return this.#sync();
  }

  /**
   * Stops keeping the lease alive and withdraws this home agent's agents/ key; its bindings
   * stay until the lease expires (a restart within LEASE_TTL_S serves them again).
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#syncing.catch(() => {});
    if (this.#health.state === 'ok') {
      await this.#client
        .delete()
        .key(`${this.#prefix}agents/${this.member}`)
        .exec()
        .catch(() => {});
    }
    await this.#teardown();
  }

  async #teardown(): Promise<void> {
    if (this.#agentTimer !== undefined) clearInterval(this.#agentTimer);
    if (this.#viewTimer !== undefined) clearInterval(this.#viewTimer);
    if (this.#resyncTimer !== undefined) clearTimeout(this.#resyncTimer);
    this.#lease?.release();
    this.#lease?.removeAllListeners();
    await this.#watcher?.cancel().catch(() => {});
    this.#client.close();
  }

  // ---- connection, lease and watch ---------------------------------------------------------

  /** A lease, the cluster's current state and a watch from right after it. */
  async #connect(): Promise<void> {
    if (this.#lease === undefined) {
      const lease = this.#client.lease(this.#ttl);
      lease.on('lost', (err: Error) => {
        if (this.#lease !== lease) return;
        this.#lease = undefined;
        this.#leaseId = '';
        this.#unreachable(err);
      });
      // etcd3 passes the error here, though its types say a response.
      lease.on('keepaliveFailed', (err: unknown) => {
        if (this.#lease === lease) this.#unreachable(err);
      });
      lease.on('keepaliveSucceeded', () => {
        if (this.#lease === lease && this.#health.state !== 'ok' && !this.#resyncPending) {
          this.#scheduleResync(0);
        }
      });
      this.#lease = lease;
      try {
        this.#leaseId = await lease.grant();
      } catch (err) {
        this.#lease = undefined;
        lease.removeAllListeners();
        throw err;
      }
      // Everything this home agent serves goes onto the new lease.
      for (const hoa of this.#mine.keys()) this.#unsynced.add(hoa);
      this.#agentWrittenCount = -1;
    }
    const all = await this.#client.getAll().prefix(this.#prefix).exec();
    this.#cluster.clear();
    this.#agents.clear();
    for (const kv of all.kvs) this.#applyPut(kv, false);
    await this.#watcher?.cancel().catch(() => {});
    const next = (BigInt(all.header.revision) + 1n).toString();
    const w = await this.#client.watch().prefix(this.#prefix).startRevision(next).create();
    // Nothing may throw into etcd3's stream handler: a failure is reported and the watch goes on.
    w.on('put', (kv) => this.#guarded(kv, () => this.#applyPut(kv, true)));
    w.on('delete', (kv) => this.#guarded(kv, () => this.#applyDelete(kv)));
    w.on('error', (err) => this.#unreachable(err));
    this.#watcher = w;
    this.#events.agentsChanged?.(this.agents());
  }

  /** The live agents read back; a watch that missed a change is replaced (VIEW_CHECK_MS). */
  async #checkView(): Promise<void> {
    if (this.#closed || this.#checkingView || this.#health.state !== 'ok') return;
    this.#checkingView = true;
    try {
      const r = await this.#client.getAll().prefix(`${this.#prefix}agents/`).exec();
      // Malformed entries (skipped by the watch, #applyPut) do not count as a difference.
      const read = r.kvs
        .map((kv) => [kv.key.toString().slice(this.#prefix.length + 7), kv.value.toString()])
        .filter(([member, value]) => decodeAgent(value!)?.member === member)
        .map(([member]) => member!)
        .sort();
      if (read.join() !== [...this.#agents.keys()].sort().join()) {
        // Through the sync chain: one connect at a time.
        const run = this.#syncing.then(() => this.#connect());
        this.#syncing = run.catch((err: unknown) => this.#unreachable(err));
        await this.#syncing;
      }
    } catch (err) {
      this.#unreachable(err);
    } finally {
      this.#checkingView = false;
    }
  }

  #guarded(kv: IKeyValue, apply: () => void): void {
    try {
      apply();
    } catch (err) {
      try {
        this.#badValue(kv, `failed: ${err instanceof Error ? err.message : String(err)}`);
      } catch {
        // the report itself failed: the watch goes on
      }
    }
  }

  #applyPut(kv: IKeyValue, live: boolean): void {
    const key = kv.key.toString();
    const rest = key.slice(this.#prefix.length);
    if (rest.startsWith('agents/')) {
      const a = decodeAgent(kv.value.toString());
      if (a === undefined || a.member !== rest.slice('agents/'.length)) {
        this.#badValue(kv, 'not an agent entry');
        return;
      }
      this.#agents.set(a.member, a);
      if (live) this.#events.agentsChanged?.(this.agents());
      return;
    }
    if (!rest.startsWith('bindings/')) return;
    const d = decodeBinding(kv.value.toString(), rest.slice('bindings/'.length));
    if (typeof d === 'string') {
      this.#badValue(kv, d);
      return;
    }
    const hoa = d.binding.homeAddress;
    this.#cluster.set(hoa, {
      homeAddress: hoa,
      servingHa: d.servingHa,
      sequence: d.binding.sequence,
      ownerKey: d.binding.ownerKey,
      modRevision: kv.mod_revision,
    });
    if (d.servingHa !== this.member && this.#mine.has(hoa)) {
      this.#giveUp(hoa, d.servingHa, d.binding.sequence);
    }
  }

  #applyDelete(kv: IKeyValue): void {
    const rest = kv.key.toString().slice(this.#prefix.length);
    if (rest.startsWith('agents/')) {
      if (this.#agents.delete(rest.slice('agents/'.length))) {
        this.#events.agentsChanged?.(this.agents());
      }
      return;
    }
    if (!rest.startsWith('bindings/')) return;
    const hoa = rest.slice('bindings/'.length);
    this.#cluster.delete(hoa);
    // Ours, and gone without our delete: our lease expired. Written again with the new one.
    if (this.#mine.has(hoa)) this.#unsynced.add(hoa);
  }

  /** Another home agent serves `hoa` now: this one forgets it and tells the home agent. */
  #giveUp(hoa: string, by: string, sequence: number): void {
    this.#mine.delete(hoa);
    this.#unsynced.delete(hoa);
    this.#events.takenOver?.(hoa, by, sequence);
  }

  #unreachable(err: unknown): void {
    if (this.#closed) return;
    const error = err instanceof Error ? err.message : String(err);
    if (this.#health.state !== 'unreachable') {
      this.#health = { ...this.#health, state: 'unreachable', since: Date.now(), error };
      this.#events.healthChanged?.(this.health);
    } else {
      this.#health.error = error;
    }
    this.#scheduleResync(RESYNC_MS);
  }

  #resyncPending = false;

  #scheduleResync(ms: number): void {
    if (this.#closed || this.#resyncPending) return;
    this.#resyncPending = true;
    this.#resyncTimer = setTimeout(() => {
      this.#resyncPending = false;
      this.#resyncTimer = undefined;
      void this.#sync();
    }, ms);
    this.#resyncTimer.unref();
  }

  // ---- syncing what this home agent serves ---------------------------------------------------

  /** One sync at a time; each resolves when everything written so far was tried. */
  #sync(): Promise<void> {
    const run = this.#syncing.then(() => this.#syncOnce());
    this.#syncing = run.catch(() => {});
    return this.#syncing;
  }

  async #syncOnce(): Promise<void> {
    if (this.#closed) return;
    try {
      if (this.#health.state !== 'ok' || this.#lease === undefined) await this.#connect();
      const puts = [...this.#unsynced];
      const deletes = [...this.#deletes];
      await Promise.all([...puts.map((h) => this.#put(h)), ...deletes.map((h) => this.#delete(h))]);
      if (this.#agent !== undefined && this.#agentWrittenCount === -1) await this.#writeAgent();
      if (this.#health.state !== 'ok') {
        this.#health = { state: 'ok', since: Date.now(), endpoints: this.#health.endpoints };
        this.#events.healthChanged?.(this.health);
      }
    } catch (err) {
      this.#unreachable(err);
    }
  }

  /** Compare-and-swap of one binding this home agent serves. */
  async #put(hoa: string): Promise<void> {
    const key = `${this.#prefix}bindings/${hoa}`;
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const b = this.#mine.get(hoa);
      if (b === undefined) return; // deleted or given up meanwhile
      const known = this.#cluster.get(hoa);
      if (
        known !== undefined &&
        known.servingHa !== this.member &&
        !serialNewer(b.sequence, known.sequence)
      ) {
        this.#giveUp(hoa, known.servingHa, known.sequence);
        return;
      }
      const value = encodeBinding(b, this.member);
      const r = await (
        known === undefined
          ? this.#client.if(key, 'Create', '==', 0)
          : this.#client.if(key, 'Mod', '==', known.modRevision)
      )
        .then(this.#client.put(key).value(value).lease(this.#leaseId))
        .else(this.#client.get(key))
        .commit();
      if (r.succeeded) {
        if (this.#mine.get(hoa) === b) this.#unsynced.delete(hoa);
        this.#cluster.set(hoa, {
          homeAddress: hoa,
          servingHa: this.member,
          sequence: b.sequence,
          ownerKey: b.ownerKey,
          modRevision: r.header.revision,
        });
        if (this.#mine.get(hoa) === b) return;
        continue; // a newer put came meanwhile
      }
      const current = r.responses[0]?.response_range?.kvs[0];
      if (current === undefined) this.#cluster.delete(hoa);
      else this.#applyPut(current, false);
    }
  }

  /** Deletes a binding this home agent served, unless another one took it meanwhile. */
  async #delete(hoa: string): Promise<void> {
    const key = `${this.#prefix}bindings/${hoa}`;
    const known = this.#cluster.get(hoa);
    if (known === undefined || known.servingHa !== this.member) {
      this.#deletes.delete(hoa);
      return;
    }
    await this.#client
      .if(key, 'Mod', '==', known.modRevision)
      .then(this.#client.delete().key(key))
      .commit();
    this.#deletes.delete(hoa);
  }

  async #writeAgent(): Promise<void> {
    if (this.#agent === undefined || this.#lease === undefined) return;
    const count = this.#mine.size;
    const a: ClusterAgent = { member: this.member, ...this.#agent, bindings: count };
    await this.#client
      .put(`${this.#prefix}agents/${this.member}`)
      .value(JSON.stringify(a))
      .lease(this.#leaseId)
      .exec();
    this.#agentWrittenCount = count;
  }
}
