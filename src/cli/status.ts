/**
 * `mip6 status [--json] [--socket PATH] [--role ha|mn|cn]`: asks a running daemon for its
 * status over the control socket and prints a readable summary (or the raw JSON). Without
 * --socket/--role it asks every daemon whose default socket exists.
 */
import { existsSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { defaultControlSocket, type Role } from '../config/common.js';
import { controlRequest } from '../io/control-socket.js';
import type { DadStatus } from '../io/dad.js';
import { NDPROXY_DROP_REASONS } from '../io/ndproxy.js';
import type {
  BindingStatus,
  BindingUpdateListStatus,
  ClusterStatus,
  Counters,
  HomeAgentStatus,
  HomeLinkStatus,
  PathMtuStatus,
} from '../io/control-protocol.js';
import { IoError } from '../util/errors.js';

const ROLES: readonly Role[] = ['ha', 'mn', 'cn'];

/** Seconds -> "1h02m", "3m05s", "42s"; "-" for unknown. */
export function formatDuration(seconds: unknown): string {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) return '-';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(s / 3600);
  if (h < 48) return `${h}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

/** Bytes -> "0 B", "1.5 kB", "12.0 MB" (SI units). */
export function formatBytes(n: unknown): string {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '-';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${v} ${units[i]}` : `${v.toFixed(1)} ${units[i]}`;
}

function cell(v: unknown): string {
  if (v === undefined || v === null || v === '') return '-';
  return String(v);
}

/** Left-aligned columns separated by two spaces. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function formatCounters(title: string, c: unknown): string | undefined {
  if (typeof c !== 'object' || c === null) return undefined;
  const entries = Object.entries(c as Counters).filter(([, v]) => typeof v === 'number');
  if (entries.length === 0) return `${title}: none`;
  return `${title}: ${entries.map(([k, v]) => `${k}=${v}`).join(' ')}`;
}

function pair(a: unknown, b: unknown, f: (x: unknown) => string = cell): string {
  if (a === undefined && b === undefined) return '-';
  return `${f(a)}/${f(b)}`;
}

/**
 * A path MTU (issue #21): the outer datagram size known to pass and how it was learnt, e.g.
 * "1456 probe", "1400 icmp", "1360 base searching", "1456 probe idle" (probing rests).
 */
function pathMtuText(p: PathMtuStatus | undefined): string {
  if (p === undefined || typeof p !== 'object') return '-';
  return `${cell(p.pathMtu)} ${cell(p.source)}${p.state === 'searching' ? ' searching' : ''}${p.idle === true ? ' idle' : ''}`;
}

function bindingRows(list: BindingStatus[]): string {
  return formatTable(
    [
      'HOME ADDRESS',
      'MEMBER',
      'LOCATOR',
      'NAT',
      'LIFETIME',
      'SEQ',
      'PKTS IN/OUT',
      'BYTES IN/OUT',
      'SEEN',
      'PATH MTU',
    ],
    list.map((b) => [
      b.homeAddress4 === undefined ? cell(b.homeAddress) : `${b.homeAddress} ${b.homeAddress4}`,
      cell(b.member),
      b.path === 'validating' ? `${b.locator} (validating)` : cell(b.locator),
      cell(b.nat),
      formatDuration(b.lifetimeRemaining),
      cell(b.sequence),
      pair(b.packetsIn, b.packetsOut),
      pair(b.bytesIn, b.bytesOut, formatBytes),
      b.lastSeen === undefined ? '-' : `${formatDuration(b.lastSeen)} ago`,
      pathMtuText(b.pathMtu),
    ]),
  );
}

/** A prefix lifetime: seconds, or "infinite" for 0xffffffff (RFC 4861 §4.6.2). */
function lifetimeText(v: unknown): string {
  return v === 0xffffffff ? 'infinite' : typeof v === 'number' ? formatDuration(v) : cell(v);
}

function homeAgentRows(list: HomeAgentStatus[]): string {
  return formatTable(
    ['ADDRESS', 'CURRENT', 'DHAAD', 'PREF', 'LIFETIME', 'UNDERLAY', 'PORT', 'FAILOVER'],
    list.map((a) => [
      cell(a.address),
      a.current ? 'yes' : '-',
      a.dhaad ? 'yes' : '-',
      cell(a.preference),
      a.lifetimeRemaining === undefined ? '-' : formatDuration(a.lifetimeRemaining),
      cell(a.underlay),
      cell(a.port),
      a.usable ? 'usable' : '-',
    ]),
  );
}

/** A home agent cluster (issue 18): etcd's health and the live home agents. */
function clusterLines(c: Partial<ClusterStatus>): string[] {
  const etcd = c.etcd;
  const head = `cluster ${cell(c.name)}  member ${cell(c.member)}  etcd ${
    etcd?.state === 'ok'
      ? `ok (${asArray(etcd.endpoints).length} endpoints)`
      : `UNREACHABLE since ${new Date(Number(etcd?.since ?? 0)).toISOString()}: ${cell(etcd?.error)}; serving the bindings held, moves between home agents refused`
  }`;
  const agents = asArray<ClusterStatus['homeAgents'][number]>(c.homeAgents);
  return [
    head,
    formatTable(
      ['HOME AGENT', 'ADDRESS', 'PREF', 'BINDINGS'],
      agents.map((a) => [
        a.member === c.member ? `${cell(a.member)} (this)` : cell(a.member),
        cell(a.address),
        cell(a.preference),
        cell(a.bindings),
      ]),
    ),
    ...haChannelLines(c.channels),
  ];
}

/** The HA-to-HA channels of a cluster on a virtual home network, when there are any. */
function haChannelLines(channels: unknown): string[] {
  const list = asArray<NonNullable<ClusterStatus['channels']>[number]>(channels);
  if (list.length === 0) return [];
  return [
    formatTable(
      ['HA CHANNEL', 'LOCATOR', 'STATE', 'FORWARDED OUT', 'FORWARDED IN'],
      list.map((ch) => [
        cell(ch.member),
        cell(ch.locator),
        ch.established ? 'up' : 'connecting',
        `${cell(ch.forwardedOut)} (${cell(ch.bytesOut)} B)`,
        `${cell(ch.forwardedIn)} (${cell(ch.bytesIn)} B)`,
      ]),
    ),
  ];
}

/**
 * The home link's programming: how many route / proxy-entry ops wait and for how long, what
 * failed. A backlog is shown as such (the BAs of new bindings wait for it).
 */
function homeLinkLine(h: Partial<HomeLinkStatus>): string {
  const failed = Object.entries(h.failed ?? {})
    .map(([code, n]) => `${code} ${cell(n)}`)
    .join(', ');
  const queued = Number(h.queued ?? 0);
  return (
    `home link programming (${cell(h.via)}): ` +
    (queued > 0
      ? `BEHIND: ${queued} ops queued, oldest ${cell(h.oldestMs)} ms; `
      : 'up to date; ') +
    `${cell(h.done)} done in ${cell(h.batches)} batches, slowest ${cell(h.slowestMs)} ms` +
    (failed !== '' ? `; failed: ${failed}` : '') +
    (h.defence !== undefined ? `\n${defenceLine(h.defence, h.ndproxy)}` : '') +
    (h.dad !== undefined ? `\n${dadLine(h.dad, h.ndproxy)}` : '') +
    (h.ndproxy?.['mldGroups'] !== undefined ? `\n${mldLine(h.ndproxy)}` : '')
  );
}

/** The ND proxy's MLDv2 listener: groups reported to snooping switches, queries answered. */
function mldLine(c: Record<string, number>): string {
  return (
    `solicited-node groups reported (MLDv2): ${cell(c['mldGroups'])} groups; ` +
    `${cell(c['mldReportsSent'])} reports (${cell(c['mldRecordsSent'])} records) sent` +
    (c['mldReportSendErrors'] ? ` (${cell(c['mldReportSendErrors'])} send errors)` : '') +
    (c['mldReportRetries']
      ? ` (${cell(c['mldReportRetries'])} refused by a full link, resent)`
      : '') +
    `; ${cell(c['mldQueries'])} queries, ${cell(c['mldQueriesAnswered'])} answered, ` +
    `${cell(c['mldQueriesCoalesced'])} coalesced, ${cell(c['mldQueryNotOurs'])} not ours` +
    (c['mldV1ModeEntered'] ? `; MLDv1 querier seen (${cell(c['mldV1ModeEntered'])} times)` : '')
  );
}

/** Duplicate Address Detection for new bindings: in flight, queued over the cap, outcomes. */
function dadLine(d: DadStatus, c: Record<string, number> | undefined): string {
  const seen =
    c === undefined
      ? ''
      : `; ${cell(c['probesSent'])} probes sent` +
        (c['probeSendErrors'] ? ` (${cell(c['probeSendErrors'])} send errors)` : '') +
        `, duplicates seen by NA ${cell(c['duplicateByAdvert'])}, ` +
        `by DAD probe ${cell(c['duplicateBySolicitation'])}`;
  return (
    `duplicate address detection (${cell(d.via)}): ${cell(d.inFlight)} in flight ` +
    `(cap ${cell(d.maxInFlight)}, peak ${cell(d.peakInFlight)}), ${cell(d.queued)} queued ` +
    `(${cell(d.waited)} waited); ${cell(d.started)} started: ${cell(d.unique)} unique, ` +
    `${cell(d.duplicate)} duplicate, ${cell(d.failed)} failed` +
    seen
  );
}

/** Who answers Neighbor Solicitations on the home link, and the responder's counters. */
function defenceLine(via: string, c: Record<string, number> | undefined): string {
  if (c === undefined) return `home link defence (${cell(via)})`;
  const { addresses, solicitations, answered, answeredDad, notOurs, frames, sendErrors } = c;
  const dropped = Object.entries(c)
    .filter(([why, n]) => n > 0 && NDPROXY_DROP_REASONS.has(why))
    .map(([why, n]) => `${why} ${cell(n)}`)
    .join(', ');
  return (
    `home link defence (${cell(via)}): ${cell(addresses)} addresses; ${cell(frames)} frames, ` +
    `${cell(solicitations)} solicitations, ${cell(answered)} answered (${cell(answeredDad)} DAD), ` +
    `${cell(notOurs)} not ours` +
    (sendErrors ? `, ${cell(sendErrors)} send errors` : '') +
    (dropped !== '' ? `; dropped: ${dropped}` : '')
  );
}

function bulRows(list: BindingUpdateListStatus[]): string {
  return formatTable(
    [
      'PEER',
      'KIND',
      'CARE-OF ADDRESS',
      'LOCATOR',
      'STATE',
      'LIFETIME',
      'SEQ',
      'RETX',
      'NAT',
      'STATUS',
      'PATH MTU',
    ],
    list.map((e) => [
      cell(e.peer),
      cell(e.kind),
      cell(e.careOfAddress),
      cell(e.locator),
      cell(e.state),
      formatDuration(e.lifetimeRemaining),
      cell(e.sequence),
      cell(e.retransmits),
      e.nat === 'detected' && e.natKeepalive !== undefined
        ? `detected (keepalive ${e.natKeepalive}s)`
        : cell(e.nat),
      cell(e.lastStatus),
      pathMtuText(e.pathMtu),
    ]),
  );
}

/** Route optimization per correspondent: state, direct vs tunnel packets, RR timestamps. */
function correspondentRows(list: BindingUpdateListStatus[]): string {
  const time = (iso: string | undefined): string => (iso === undefined ? '-' : iso.slice(11, 23));
  return formatTable(
    [
      'CORRESPONDENT',
      'RO',
      'DIRECT OUT/IN',
      'TUNNEL OUT/IN',
      'HOTI',
      'HOT',
      'COTI',
      'COT',
      'BU',
      'BA',
    ],
    list.map((e) => {
      const rr = e.returnRoutability ?? {};
      return [
        cell(e.peer),
        cell(e.routeOptimization),
        pair(e.packets?.directOut, e.packets?.directIn),
        pair(e.packets?.tunnelOut, e.packets?.tunnelIn),
        time(rr.homeTestInit),
        time(rr.homeTest),
        time(rr.careOfTestInit),
        time(rr.careOfTest),
        time(rr.bindingUpdate),
        time(rr.bindingAck),
      ];
    }),
  );
}

function asArray<T>(v: unknown): T[] {
  return Array.isArray(v) ? (v as T[]) : [];
}

/** Renders a daemon status object (tolerant of missing or extra fields). */
export function formatStatus(status: unknown): string {
  if (typeof status !== 'object' || status === null)
    return `unexpected status: ${JSON.stringify(status)}`;
  const s = status as Record<string, unknown>;
  const out: string[] = [];
  const role = typeof s.role === 'string' ? s.role : '?';
  const head = [`mip6 ${role}`];
  if (s.version !== undefined) head.push(`version ${cell(s.version)}`);
  if (s.pid !== undefined) head.push(`pid ${cell(s.pid)}`);
  if (s.uptime !== undefined) head.push(`up ${formatDuration(s.uptime)}`);
  const tun = s.tun as { name?: unknown; mtu?: unknown } | undefined;
  if (tun !== undefined && tun !== null) head.push(`tun ${cell(tun.name)} mtu ${cell(tun.mtu)}`);
  if (Array.isArray(s.listen)) head.push(`listen ${s.listen.map(cell).join(' ')}`);
  out.push(head.join('  '));
  if (Array.isArray(s.offloads))
    out.push(`offloads ${s.offloads.length > 0 ? s.offloads.map(cell).join(' ') : 'none'}`);

  if (role === 'ha') {
    out.push(
      `home prefix ${cell(s.homePrefix)}` +
        (s.homeAddress !== undefined ? `  agent address ${cell(s.homeAddress)}` : ''),
    );
    const has = asArray<{
      address?: unknown;
      preference?: unknown;
      lifetime?: unknown;
      underlay?: unknown;
    }>(s.homeAgents);
    if (has.length > 1) {
      out.push(
        `home agents (DHAAD): ${has.map((a) => `${cell(a.address)} (pref ${cell(a.preference)}${a.underlay !== undefined ? `, ${cell(a.underlay)}` : ''})`).join(', ')}`,
      );
    }
    const adv = asArray<{ prefix?: unknown; validLifetime?: unknown }>(s.advertisedPrefixes);
    if (adv.length > 1 || adv.some((p) => p.validLifetime !== 0xffffffff)) {
      out.push(
        `advertised prefixes: ${adv.map((p) => `${cell(p.prefix)} (valid ${lifetimeText(p.validLifetime)})`).join(', ')}`,
      );
    }
    if (typeof s.homeLink === 'object' && s.homeLink !== null) {
      out.push(homeLinkLine(s.homeLink as Partial<HomeLinkStatus>));
    }
    if (typeof s.cluster === 'object' && s.cluster !== null) {
      out.push('', ...clusterLines(s.cluster as Partial<ClusterStatus>));
    }
    const b = asArray<BindingStatus>(s.bindings);
    out.push('', `bindings (${b.length})`);
    if (b.length > 0) out.push(bindingRows(b));
  } else {
    out.push(
      `home address ${cell(s.homeAddress)}` +
        (s.homeAddress4 !== undefined ? `  ipv4 ${cell(s.homeAddress4)}` : '') +
        `  home agent ${cell(s.homeAgent)}  state ${cell(s.state)}`,
    );
    if (s.homeAgentUnreachable !== undefined) {
      out.push(`home agent unreachable: ${cell(s.homeAgentUnreachable)}`);
    }
    const bul = asArray<BindingUpdateListStatus>(s.bindingUpdateList);
    out.push('', `binding update list (${bul.length})`);
    if (bul.length > 0) out.push(bulRows(bul));
    const cns = bul.filter((e) => e.kind === 'correspondent');
    if (cns.length > 0) {
      out.push('', `route optimization (${cns.length}; RR times UTC)`, correspondentRows(cns));
    }
    const b = asArray<BindingStatus>(s.bindings);
    if (b.length > 0) out.push('', `correspondent bindings (${b.length})`, bindingRows(b));
    const has = asArray<HomeAgentStatus>(s.homeAgents);
    if (has.length > 0)
      out.push('', `home agents (${has.length}; DHAAD order)`, homeAgentRows(has));
    const prefixes = asArray<{ prefix?: unknown; validLifetime?: unknown }>(s.homePrefixes);
    if (prefixes.length > 0) {
      out.push(
        '',
        `home prefixes: ${prefixes.map((p) => `${cell(p.prefix)} (valid ${lifetimeText(p.validLifetime)})`).join(', ')}`,
      );
    }
  }
  const counters = formatCounters('counters', s.counters);
  const drops = formatCounters('drops', s.drops);
  if (counters !== undefined || drops !== undefined) out.push('');
  if (counters !== undefined) out.push(counters);
  if (drops !== undefined) out.push(drops);
  return out.join('\n') + '\n';
}

interface StatusOptions {
  json?: boolean;
  socket?: string;
  role?: Role;
  timeout?: string;
}

/** Which sockets to ask: explicit path, the role's default, or every default that exists. */
export function statusTargets(
  opts: { socket?: string | undefined; role?: Role | undefined },
  exists: (p: string) => boolean = existsSync,
): { path: string; role: string }[] {
  if (opts.socket !== undefined) return [{ path: opts.socket, role: opts.role ?? '' }];
  if (opts.role !== undefined) return [{ path: defaultControlSocket(opts.role), role: opts.role }];
  const found = ROLES.filter((r) => exists(defaultControlSocket(r)));
  if (found.length === 0) {
    throw new IoError(
      'ERR_NO_DAEMON',
      `no mip6 daemon at /run/mip6/{ha,mn,cn}.sock: is one running? (or pass --socket PATH)`,
    );
  }
  return found.map((r) => ({ path: defaultControlSocket(r), role: r }));
}

/** Runs the command: returns the text to print. */
export async function runStatus(opts: StatusOptions): Promise<string> {
  const timeoutMs = opts.timeout === undefined ? 3000 : Number(opts.timeout);
  const targets = statusTargets(opts);
  const results: unknown[] = [];
  for (const t of targets) {
    results.push(await controlRequest(t.path, { cmd: 'status' }, { daemon: t.role, timeoutMs }));
  }
  if (opts.json === true) {
    return JSON.stringify(results.length === 1 ? results[0] : results, null, 2) + '\n';
  }
  return results.map(formatStatus).join('\n');
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('show bindings, paths, NAT state and counters of a running daemon')
    .option('--json', 'print the raw status object as JSON')
    .option('--socket <path>', 'control socket of the daemon (default /run/mip6/<role>.sock)')
    .addOption(new Option('--role <role>', 'which daemon to ask').choices(['ha', 'mn', 'cn']))
    .option('--timeout <ms>', 'give up after this many milliseconds', '3000')
    .action(async (opts: StatusOptions) => {
      process.stdout.write(await runStatus(opts));
    });
}
