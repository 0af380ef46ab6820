/**
 * The ND proxy's MLDv2 listener (native/mld.c through native/ndproxy_linux.c) on real links.
 *
 * 1. A Linux bridge as the home link, MLD snooping on with the bridge as querier, the HA's port
 *    with mcast_flood off (unregistered multicast never reaches it) and a host on another port.
 *    Before the proxy defends an address, a Neighbor Solicitation to its solicited-node group
 *    does not reach the HA (while one to a defended control address's group does, sent just
 *    after it: the bridge forwards by its table); once it defends 1 000 addresses more, `bridge mdb show` lists their
 *    groups on the HA's port, they went out in a few frames (scapy decodes each: Router Alert,
 *    hop limit 1, ff02::16, checksum, 20-byte records), the bridge's queries are answered and
 *    the host resolves a defended address to the HA's MAC; after a delete, that group leaves
 *    the HA's port and the solicitation no longer reaches the HA; an address under DAD joins
 *    its group too, so another node's probe for it reaches the HA, and leaves it after; when
 *    the proxy closes, all its groups leave.
 * 2. A host with scapy and no key on a veth to the HA: forged or malformed queries (hop limit 64,
 *    no Router Alert, a global source, a bad checksum, 26 bytes; a Hop-by-Hop header without a
 *    Router Alert for MLD, with an option running past its end, or cut by the Payload Length)
 *    are dropped, counted by reason and change nothing; a flood of General Queries gets at most
 *    one response per second, one of address-specific Queries for our group one per 100 ms; an
 *    MLDv1 Query is answered too.
 * 3. A General Query answer for 20 000 groups is spaced by its size, and spread over the
 *    query's Maximum Response Delay.
 * 4. A join whose first report falls due with another group's repeat: the two transmissions of
 *    each group leave in separate frames.
 * 5. A snooping bridge behind a slow port (10 Mbit/s, a short queue): the frames the link
 *    refuses are sent again, and all of 20 000 groups reach the bridge's table.
 * 6. A General Query answer for 20 000 groups spread over the query's delay.
 * 7. A General Query answer of 2 000 groups (28 frames, one run's budget) on a slow port that
 *    refuses some: the rest goes after the back-off, not at the query's deadline.
 * 8. A keyless host's MLDv1 Query while joins wait for room on a slow port: they go on as
 *    MLDv1 Reports and every group reaches the bridge's table.
 * 9. A bridge whose querier speaks MLDv1: the HA answers in MLDv1, its groups reach the
 *    bridge's table and a deleted one's leaves it.
 * Root, network namespaces, scapy.
 */
import { execFile, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import {
  createNetns,
  linkedNetns,
  linkLocalAddress,
  nativeSkipReason,
  noDad,
  REPO_ROOT,
  run,
  SCAPY_PYTHON,
  scapySkipReason,
} from '../helpers/netns.js';
import { waitFor } from '../helpers/wait.js';

const execFileAsync = promisify(execFile);
const skip = scapySkipReason(nativeSkipReason() ?? false);
const P = '2001:db8:100::';
const HOST_SCRIPT = fileURLToPath(new URL('fixtures/mld-host.py', import.meta.url));
const MANY = 1000;
/** Records per report on a 1500-byte link: (1500 - 40 - 8 - 8) / 20 (native/mld.c). */
const RECORDS_PER_FRAME = 72;

type Counters = Record<string, number>;

/** How each counter moved from `from` to `to`. */
function difference(from: Counters, to: Counters): Counters {
  return Object.fromEntries(Object.keys(to).map((k) => [k, to[k]! - from[k]!]));
}
/** What test/native/fixtures/mld-child.ts answers to a command. */
interface ChildAnswer {
  changed?: number;
  flags?: number[];
  counters: Counters;
}

/** The HA side: test/native/fixtures/mld-child.ts in `ns`, driven line by line. */
async function startProxy(
  t: { teardown(fn: () => void): void },
  ns: string,
  link: string,
): Promise<(line: string) => Promise<ChildAnswer>> {
  const script = fileURLToPath(new URL('fixtures/mld-child.ts', import.meta.url));
  const child = spawn(
    'ip',
    ['netns', 'exec', ns, process.execPath, '--import', 'tsx', script, link],
    { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const killer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  t.teardown(() => {
    clearTimeout(killer);
    child.kill('SIGKILL');
  });
  const lines = createInterface({ input: child.stdout });
  const waiting: ((line: string) => void)[] = [];
  lines.on('line', (line) => waiting.shift()?.(line));
  const next = (): Promise<string> => new Promise((resolve) => waiting.push(resolve));
  const ready = await next();
  if (ready !== 'ready') throw new Error(`mld-child: ${ready}`);
  return async (line: string) => {
    const answer = next();
    child.stdin.write(`${line}\n`);
    return JSON.parse(await answer) as ChildAnswer;
  };
}

/**
 * Floods `count` General Queries from `ns` (link `dev`, source `ll`) and waits until the proxy
 * read each and answered or coalesced it; returns how many were answered and how long the
 * flood took.
 */
async function generalFlood(
  proxy: (line: string) => Promise<{ counters: Counters }>,
  ns: string,
  dev: string,
  ll: string,
  count: number,
  timeoutMs: number,
): Promise<{ answered: number; seconds: number; after: Counters; end: Counters }> {
  const after = (await proxy('counters')).counters;
  const { seconds } = JSON.parse(await host(ns, ['flood', dev, ll, String(count)])) as {
    seconds: number;
  };
  await waitFor(
    'every flooded query read and answered or coalesced',
    async () => {
      const c = (await proxy('counters')).counters;
      return (
        c['mldQueries']! - after['mldQueries']! === count &&
        c['mldQueriesAnswered']! -
          after['mldQueriesAnswered']! +
          c['mldQueriesCoalesced']! -
          after['mldQueriesCoalesced']! ===
          count
      );
    },
    timeoutMs,
  );
  const end = (await proxy('counters')).counters;
  return {
    answered: end['mldQueriesAnswered']! - after['mldQueriesAnswered']!,
    seconds,
    after,
    end,
  };
}

function host(ns: string, args: readonly string[]): Promise<string> {
  return run('ip', ['netns', 'exec', ns, SCAPY_PYTHON, HOST_SCRIPT, ...args], 60_000);
}

/** The solicited-node group of a 2001:db8:100:: address written as P + up to 4 hex digits +
 *  ':' + up to 4 (or just 4), as `bridge mdb` prints it. */
function solicitedNode(low24: number): string {
  const hi = (low24 >> 16) & 0xff;
  const lo = low24 & 0xffff;
  return `ff02::1:ff${hi.toString(16).padStart(2, '0')}:${lo.toString(16)}`;
}

interface MdbEntry {
  port: string;
  grp: string;
}

async function mdbGroups(ns: string, port: string): Promise<Set<string>> {
  // 20 000 entries are ~2 MB of JSON: more than run()'s default buffer.
  const { stdout } = await execFileAsync('bridge', ['-n', ns, '-j', 'mdb', 'show', 'dev', 'br0'], {
    maxBuffer: 64 << 20,
    timeout: 10_000,
  });
  const out = JSON.parse(stdout) as { mdb?: MdbEntry[] }[];
  return new Set(
    out
      .flatMap((x) => x.mdb ?? [])
      .filter((e) => e.port === port)
      .map((e) => e.grp),
  );
}

/**
 * Waits up to `timeoutMs` for every one of `groups` to be on the HA's port (haport) in the
 * bridge table; resolves to how many are still missing then, or (with `strict`) rejects.
 */
async function mdbMissing(
  br: string,
  groups: readonly string[],
  timeoutMs: number,
  strict: boolean,
): Promise<number> {
  let missing = groups.length;
  const waiting = waitFor(
    'every group on the HA port in the bridge table',
    async () => {
      const seen = await mdbGroups(br, 'haport');
      missing = groups.filter((g) => !seen.has(g)).length;
      return missing === 0;
    },
    timeoutMs,
    100,
  );
  await (strict ? waiting : waiting.catch(() => undefined));
  return missing;
}

interface Report {
  time: number;
  edst: string;
  src: string;
  dst: string;
  hlim: number;
  hbh: [number, number | null][] | null;
  cksum: number;
  cksumScapy: number;
  recordsNumber: number;
  records: [number, number, number, string][];
}

/**
 * What a capture saw. Under load scapy's socket can run out of room and miss frames (a CI run
 * saw 214 of 278): `complete` says it missed none (the kernel's drop count for the socket is
 * 0). Tests count what the addon sent from its counters, and hold a capture to every frame
 * only when it is complete; otherwise to a substantial part.
 */
interface Captured {
  reports: Report[];
  complete: boolean;
}

/**
 * Sniffs the MLD Reports that leave `dev` in `ns` from `mac` for `seconds` at most (scapy, the
 * fixture's `capture` mode); resolves once the sniffer is up, to `{ done, stop }`: a promise of
 * what it saw, and a function that ends it now (once the counters say what the test waits for
 * was sent: a fixed window can end first under load) and returns that promise.
 */
async function capture(
  t: { teardown(fn: () => void): void; comment(...message: unknown[]): void },
  ns: string,
  dev: string,
  seconds: number,
  mac: string,
): Promise<{ done: Promise<Captured>; stop(): Promise<Captured> }> {
  const sniff = spawn(
    'ip',
    ['netns', 'exec', ns, SCAPY_PYTHON, HOST_SCRIPT, 'capture', dev, String(seconds), mac],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  t.teardown(() => sniff.kill('SIGKILL'));
  const out: string[] = [];
  const ready = new Promise<void>((resolve) =>
    createInterface({ input: sniff.stdout }).on('line', (l) =>
      l === 'ready' ? resolve() : out.push(l),
    ),
  );
  const done = new Promise<Captured>((resolve) =>
    sniff.on('close', () => {
      const { drops, reports } = JSON.parse(out.at(-1) ?? '{"drops":-1,"reports":[]}') as {
        drops: number;
        reports: Report[];
      };
      if (drops !== 0) t.comment(`the capture missed ${drops} frames: only a part is checked`);
      resolve({ reports, complete: drops === 0 });
    }),
  );
  await ready;
  return {
    done,
    stop: () => {
      sniff.stdin.end('stop\n');
      return done;
    },
  };
}

/**
 * A bridge (namespace `br`, br0) with MLD snooping and its querier on (centiseconds: a General
 * Query every 3 s, answers within 1 s), the MLD version and options in `extra` (its first
 * word the version: 1 or 2), and a namespace `ha` whose link
 * `haLink` is the bridge's port haport.
 */
async function snoopingBridge(
  t: { teardown(fn: () => unknown): void },
  haLink: string,
  extra: readonly string[],
): Promise<{ br: string; ha: string }> {
  const br = await createNetns(t, 'mb');
  const ha = await createNetns(t, 'mh');
  for (const ns of [br, ha]) await noDad(ns);
  await run('ip', [
    ...['-n', br, 'link', 'add', 'br0', 'type', 'bridge'],
    ...['mcast_snooping', '1', 'mcast_querier', '1'],
    ...['mcast_query_interval', '300', 'mcast_query_response_interval', '100'],
    ...['mcast_startup_query_interval', '100', 'mcast_mld_version', ...extra],
  ]);
  await run('ip', ['-n', br, 'link', 'add', 'haport', 'type', 'veth', 'peer', haLink]);
  await run('ip', ['-n', br, 'link', 'set', haLink, 'netns', ha]);
  await run('ip', ['-n', br, 'link', 'set', 'haport', 'master', 'br0', 'up']);
  await run('ip', ['-n', br, 'link', 'set', 'br0', 'up']);
  return { br, ha };
}

/** A host namespace (prefix `prefix`) whose link `dev` (still down) is the bridge's port
 *  hostport. */
async function hostOnBridge(
  t: { teardown(fn: () => unknown): void },
  br: string,
  prefix: string,
  dev: string,
): Promise<string> {
  const other = await createNetns(t, prefix);
  await noDad(other);
  await run('ip', [
    ...['-n', br, 'link', 'add', 'hostport', 'type', 'veth', 'peer', dev],
    ...['netns', other],
  ]);
  await run('ip', ['-n', br, 'link', 'set', 'hostport', 'master', 'br0', 'up']);
  return other;
}

void t.test('solicited-node groups through an MLD-snooping bridge', { skip }, async (t) => {
  const { br, ha } = await snoopingBridge(t, 'homeb', ['2', 'mcast_last_member_interval', '50']);
  const other = await hostOnBridge(t, br, 'mo', 'hostl');
  await run('bridge', ['-n', br, 'link', 'set', 'dev', 'haport', 'mcast_flood', 'off']);
  await run('ip', ['-n', ha, 'link', 'set', 'homeb', 'up']);
  await run('ip', ['-n', other, 'addr', 'add', `${P}2/64`, 'dev', 'hostl', 'nodad']);
  await run('ip', ['-n', other, 'link', 'set', 'hostl', 'up']);
  const haMac = JSON.parse(await run('ip', ['-n', ha, '-j', 'link', 'show', 'homeb']))[0]
    .address as string;
  const haLinkLocal = await linkLocalAddress(ha, 'homeb');
  await linkLocalAddress(br, 'br0'); // the querier's source
  const proxy = await startProxy(t, ha, 'homeb');

  // The bridge is querier (its queries reach every port, flood flag or not): only then does it
  // forward multicast by its table instead of flooding.
  await waitFor(
    'a query from the bridge',
    async () => (await proxy('counters')).counters['mldQueries']! >= 1,
    15_000,
  );

  // A control address the HA reports from the start: its solicitation reaching the HA shows the
  // bridge forwards by its table (until it counts its querier as present, which can take a few
  // seconds after it starts, it floods, and flooding skips the HA's port).
  const control = `${P}c0`;
  t.equal((await proxy(`add ${control}`)).changed, 1);
  const target = `${P}20`;
  /** Has the host send `frames` (the fixture's arguments) until the proxy's counter `name`
   *  moves within 500 ms of a sending. */
  const sendUntilCounted = async (what: string, frames: string[], name: string): Promise<void> => {
    await waitFor(
      what,
      async () => {
        const before = (await proxy('counters')).counters[name]!;
        await host(other, frames);
        return waitFor(
          `${name} counted`,
          async () => (await proxy('counters')).counters[name]! > before,
          500,
        ).then(
          () => true,
          () => false,
        );
      },
      30_000,
      0,
    );
  };
  /** Waits until the group of the address with these low 24 bits is off the HA's port. */
  const groupGone = (low24: number): Promise<number> =>
    waitFor(
      `${solicitedNode(low24)} gone from the HA port`,
      async () => !(await mdbGroups(br, 'haport')).has(solicitedNode(low24)),
      15_000,
      100,
    );
  /** Solicits `first`, then the control, each to its group, until the control's reaches the
   *  HA; returns how the counters moved meanwhile. */
  const solicitWithControl = async (first: string): Promise<Counters> => {
    const start = (await proxy('counters')).counters;
    await sendUntilCounted(
      'a solicitation to the control group reaching the HA',
      ['ns', 'hostl', `${P}2`, first, control],
      'answered',
    );
    return difference(start, (await proxy('counters')).counters);
  };
  const before = await solicitWithControl(target);
  t.equal(before['notOurs'], 0, 'not defended yet: no solicitation to its group reached the HA');

  const captured = await capture(t, ha, 'homeb', 15, haMac);

  // The 1 000: P::20 and 999 others with distinct low 24 bits, in one batch.
  const lows = [0x20, ...Array.from({ length: MANY - 1 }, (_, i) => 0x10000 + i)];
  const addrs = lows.map((x) => (x === 0x20 ? target : `${P}1:${(x & 0xffff).toString(16)}`));
  const added = await proxy(`add ${addrs.join(' ')}`);
  t.equal(added.changed, MANY);
  const groups = lows.map(solicitedNode);
  await mdbMissing(br, groups, 15_000, true);
  t.pass(`bridge mdb lists all ${MANY} groups on the HA's port`);
  const frames = Math.ceil(MANY / RECORDS_PER_FRAME);
  await waitFor('the State Change Reports and their repeat', async () => {
    const c = (await proxy('counters')).counters;
    return c['mldRecordsSent']! >= 2 * MANY;
  });
  const c = (await proxy('counters')).counters;
  t.equal(c['mldGroups'], MANY + 1);
  t.ok(
    c['mldReportsSent']! <= frames * (2 + c['mldQueriesAnswered']!) + 2,
    `${c['mldReportsSent']} report frames for ${MANY} groups sent twice, the control's 2 and ${c['mldQueriesAnswered']} query answers (${frames} per round)`,
  );
  // The HA's kernel reports its own groups from the same MAC: ours are the reports that name
  // one of the defended addresses' groups, and they name nothing else.
  const ourGroups = new Set([...groups, solicitedNode(0xc0)]);
  const seen = await captured.stop();
  const reports = seen.reports.filter((r) => r.records.some((rec) => ourGroups.has(rec[3])));
  t.ok(
    reports.length >= (seen.complete ? 2 : 1) * frames,
    `${reports.length} of our reports captured`,
  );
  const wrong: string[] = [];
  const changes = new Map<string, number>();
  for (const r of reports) {
    const head = [r.edst, r.src, r.dst, r.hlim, JSON.stringify(r.hbh?.[0])].join(' ');
    if (head !== `33:33:00:00:00:16 ${haLinkLocal} ff02::16 1 [5,0]`) wrong.push(`header ${head}`);
    if (r.cksum !== r.cksumScapy) wrong.push(`checksum ${r.cksum}, scapy ${r.cksumScapy}`);
    if (r.recordsNumber !== r.records.length || r.records.length > RECORDS_PER_FRAME)
      wrong.push(`${r.recordsNumber} records said, ${r.records.length} there`);
    for (const [type, aux, nsrc, grp] of r.records) {
      // CHANGE_TO_EXCLUDE_MODE (a join), or MODE_IS_EXCLUDE answering the bridge's query.
      if ((type !== 4 && type !== 2) || aux !== 0 || nsrc !== 0 || !ourGroups.has(grp))
        wrong.push(`record ${type} ${aux} ${nsrc} ${grp}`);
      if (type === 4) changes.set(grp, (changes.get(grp) ?? 0) + 1);
    }
  }
  t.same(wrong, [], 'each report as RFC 3810 §5.2 says, decoded by scapy');
  // Each group twice (Robustness Variable 2); a capture that missed frames holds at most that,
  // and still most groups (a missing repeat would leave none twice).
  const twice = groups.filter((g) => changes.get(g) === 2).length;
  t.ok(
    [...changes.values()].every((n) => n <= 2) &&
      twice >= (seen.complete ? MANY : MANY / 4) &&
      changes.size <= MANY,
    `${twice} of the ${MANY} groups announced twice, none more, no other group announced`,
  );

  await waitFor(
    'the bridge querier answered',
    async () => {
      const n = (await proxy('counters')).counters;
      return n['mldQueriesAnswered']! >= 1;
    },
    15_000,
  );

  const defended = await solicitWithControl(target);
  t.ok(defended['answered']! >= 2 && defended['notOurs'] === 0, 'its solicitation reaches the HA');

  // The host's own kernel resolves the defended address through the switch.
  await waitFor('the host resolving the defended address to the HA', async () => {
    await run('ip', ['netns', 'exec', other, 'ping', '-6', '-c', '1', '-W', '1', target]).catch(
      () => undefined,
    );
    const n = await run('ip', ['-n', other, '-6', 'neigh', 'show', target, 'dev', 'hostl']);
    return n.includes(haMac);
  });
  t.pass(`${target} resolves to the HA's MAC through the snooping bridge`);

  // Its last address out: the group leaves the HA's port, the solicitation no longer arrives.
  t.equal((await proxy(`del ${target}`)).changed, 1);
  await groupGone(0x20);
  t.pass('the group left the bridge table after the delete');
  const others = await mdbGroups(br, 'haport');
  t.ok(
    groups.slice(1).every((g) => others.has(g)),
    'the other groups stay',
  );
  const left = (await proxy('counters')).counters;
  t.equal(left['mldGroups'], MANY);
  const deleted = await solicitWithControl(target);
  t.equal(deleted['notOurs'], 0, 'deleted: no solicitation to its group reached the HA');

  // An address under Duplicate Address Detection: its group joins too (RFC 4862 5.4.2), so
  // another node's probe for it, sent to the group, reaches the HA through the bridge and
  // marks it duplicate; when DAD ends the group leaves. Before, the bridge never forwarded it.
  const probed = `${P}30`;
  await proxy(`probe-start ${probed}`);
  await sendUntilCounted(
    "another node's probe for the address reaching the HA",
    ['dad', 'hostl', probed],
    'duplicateBySolicitation',
  );
  t.ok((await mdbGroups(br, 'haport')).has(solicitedNode(0x30)), 'its group on the HA port');
  t.same((await proxy(`probe-end ${probed}`)).flags, [1 | 2], 'DAD saw the duplicate');
  await groupGone(0x30);
  t.pass('DAD over: its group left the bridge table');

  // The proxy closes (the HA stops): it leaves every group at once, so the bridge stops
  // forwarding them within its last-listener queries, not after its 260 s membership timer.
  // The control's address is deleted just before (its leave still due then): its group goes
  // too. Before, closing left out a group whose leave was pending, and the bridge kept it.
  void proxy(`quit ${control}`); // the child answers by exiting
  await waitFor(
    'every group gone from the HA port',
    async () => {
      const seen = await mdbGroups(br, 'haport');
      return [...groups.slice(1), solicitedNode(0xc0)].every((g) => !seen.has(g));
    },
    15_000,
    100,
  );
  t.pass('closing the proxy took all its groups off the HA port');
});

/**
 * Adds `count` addresses (`${P}${block}:` and a counter), checks each changed a group and waits
 * until their joins and repeats went out; returns them and the counters then.
 */
async function joinAndSettle(
  t: { equal(found: unknown, wanted: unknown): void },
  proxy: (line: string) => Promise<ChildAnswer>,
  block: number,
  count: number,
): Promise<{ addrs: string[]; before: Counters }> {
  const addrs = Array.from({ length: count }, (_, i) => `${P}${block}:${i.toString(16)}`);
  t.equal((await proxy(`add ${addrs.join(' ')}`)).changed, count);
  await waitFor(
    'the joins and their repeats sent',
    async () => (await proxy('counters')).counters['mldRecordsSent']! >= 2 * count,
    15_000,
  );
  return { addrs, before: (await proxy('counters')).counters };
}

/**
 * A keyless host (namespace `other`, link `hostDev`) on a veth to the HA (`ha`, `haDev`), both
 * links up with their link-local addresses, and the proxy open on `haDev`.
 */
async function hostAndProxy(
  t: { teardown(fn: () => unknown): void },
  prefixes: [string, string],
  hostDev: string,
  haDev: string,
): Promise<{
  other: string;
  ha: string;
  hostLinkLocal: string;
  haMac: string;
  proxy: (line: string) => Promise<ChildAnswer>;
}> {
  const [other, ha] = await linkedNetns(t, prefixes, [hostDev, haDev]);
  await run('ip', ['-n', ha, 'link', 'set', haDev, 'up']);
  await run('ip', ['-n', other, 'link', 'set', hostDev, 'up']);
  const hostLinkLocal = await linkLocalAddress(other, hostDev);
  await linkLocalAddress(ha, haDev);
  const haMac = JSON.parse(await run('ip', ['-n', ha, '-j', 'link', 'show', haDev]))[0]
    .address as string;
  return { other, ha, hostLinkLocal, haMac, proxy: await startProxy(t, ha, haDev) };
}

void t.test('forged and flooded queries from a keyless host', { skip }, async (t) => {
  const { other, ha, hostLinkLocal, haMac, proxy } = await hostAndProxy(
    t,
    ['mq', 'mh'],
    'hostl',
    'homeb',
  );
  t.equal((await proxy(`add ${P}20`)).changed, 1);
  await waitFor(
    'the join and its repeat',
    async () => (await proxy('counters')).counters['mldReportsSent'] === 2,
  );

  /** Runs the fixture's `mode` (malformed queries, then a valid one for a group we are not in:
   *  the marker) and checks how the counters named in `expected` moved once it was read. */
  const forged = async (mode: string, expected: Counters, what: string): Promise<Counters> => {
    const from = (await proxy('counters')).counters;
    await host(other, [mode, 'hostl', hostLinkLocal, 'ff02::1:ff99:9999']);
    await waitFor(
      `the marker query after ${mode}`,
      async () =>
        (await proxy('counters')).counters['mldQueryNotOurs'] === from['mldQueryNotOurs']! + 1,
    );
    const to = (await proxy('counters')).counters;
    t.same(
      Object.fromEntries(Object.keys(expected).map((k) => [k, to[k]! - from[k]!])),
      expected,
      what,
    );
    return to;
  };
  await forged(
    'forge',
    {
      mldBadQueryHopLimit: 1,
      mldNoRouterAlert: 1,
      mldBadQuerySource: 1,
      mldBadQueryChecksum: 1,
      mldBadQueryLength: 1,
      mldBadQueryHeader: 0,
      mldBadQueryGroup: 0,
      mldQueries: 1, // the marker
      mldQueriesAnswered: 0,
      mldReportsSent: 0,
    },
    'each forged query dropped and counted by reason; no report',
  );
  // Queries valid but for their Hop-by-Hop header: no Router Alert (PadN instead, or one for
  // something other than MLD) or a malformed header (an option running past its end, a Payload
  // Length ending inside it): counted by reason, nothing sent.
  await forged(
    'forge-hbh',
    {
      mldNoRouterAlert: 2,
      mldBadQueryHeader: 3,
      mldBadQueryLength: 0,
      mldBadQueryChecksum: 0,
      mldQueries: 1,
      mldQueriesAnswered: 0,
      mldReportsSent: 0,
    },
    'malformed Hop-by-Hop headers dropped and counted by reason; no report',
  );

  // A flood of General Queries asking for an answer at once: at most one per second.
  const FLOOD = 200;
  const { answered, seconds, after, end } = await generalFlood(
    proxy,
    other,
    'hostl',
    hostLinkLocal,
    FLOOD,
    15_000,
  );
  t.ok(
    answered >= 1 && answered <= Math.ceil(seconds) + 1,
    `${answered} responses to ${FLOOD} queries in ${seconds.toFixed(2)} s`,
  );
  t.equal(
    end['mldReportsSent']! - after['mldReportsSent']!,
    answered,
    'one frame per response (one group)',
  );

  // Address-specific Queries for our group, flooded: at most one answer per 100 ms.
  const SPECIFIC = 50;
  const specific = JSON.parse(
    await host(other, ['flood', 'hostl', hostLinkLocal, String(SPECIFIC), 'ff02::1:ff00:20']),
  ) as { seconds: number };
  const moved = async (from: Counters): Promise<Counters> =>
    difference(from, (await proxy('counters')).counters);
  await waitFor('every address-specific query read and answered or coalesced', async () => {
    const d = await moved(end);
    return (
      d['mldQueries'] === SPECIFIC &&
      d['mldQueriesAnswered']! + d['mldQueriesCoalesced']! === SPECIFIC
    );
  });
  const s = await moved(end);
  t.ok(
    s['mldQueriesAnswered']! >= 1 &&
      s['mldQueriesAnswered']! <= Math.ceil(specific.seconds * 10) + 1 &&
      s['mldReportsSent'] === s['mldQueriesAnswered'] &&
      s['mldQueryNotOurs'] === 0,
    `${s['mldQueriesAnswered']} answers to ${SPECIFIC} queries for our group in ${specific.seconds.toFixed(2)} s`,
  );

  // An MLDv1 Query (24 bytes): the link has an MLDv1 querier, so for the next 260 s the HA
  // speaks MLDv1 (RFC 3810 8.2.1): the answer is an MLDv1 Report to the group itself, a join
  // sends two Reports, a leave two Dones to ff02::2, and no MLDv2 Report leaves.
  const captured = await capture(t, ha, 'homeb', 15, haMac);
  const beforeV1 = (await proxy('counters')).counters;
  await host(other, ['flood', 'hostl', hostLinkLocal, '1', '::', 'v1']);
  await waitFor('the MLDv1 query answered', async () => {
    const d = await moved(beforeV1);
    return d['mldQueries'] === 1 && d['mldQueriesAnswered'] === 1 && d['mldReportsSent'] === 1;
  });
  t.equal((await proxy(`add ${P}21`)).changed, 1);
  await waitFor('the join and its repeat', async () => {
    return (await moved(beforeV1))['mldReportsSent'] === 3;
  });
  t.equal((await proxy(`del ${P}21`)).changed, 1);
  await waitFor('the leave and its repeat', async () => {
    return (await moved(beforeV1))['mldReportsSent'] === 5;
  });
  t.equal((await moved(beforeV1))['mldV1ModeEntered'], 1, 'the MLDv1 query switched the mode');
  const v1Seen = await captured.stop();
  const v1 = v1Seen.reports
    .filter((r) => r.records.some((x) => ['ff02::1:ff00:20', 'ff02::1:ff00:21'].includes(x[3])))
    .map((r) => [r.records[0]?.[0], r.records[0]?.[3], r.dst, r.edst, r.cksum === r.cksumScapy]);
  const report = (g: string, mac: string): unknown[] => [131, g, g, mac, true];
  const done = (g: string): unknown[] => [132, g, 'ff02::2', '33:33:00:00:00:02', true];
  const expected = [
    report('ff02::1:ff00:20', '33:33:ff:00:00:20'),
    report('ff02::1:ff00:21', '33:33:ff:00:00:21'),
    report('ff02::1:ff00:21', '33:33:ff:00:00:21'),
    done('ff02::1:ff00:21'),
    done('ff02::1:ff00:21'),
  ];
  const what = 'the answer, the join and the leave in MLDv1, decoded by scapy';
  if (v1Seen.complete) t.same(v1, expected, what);
  else {
    // Frames missed: what was seen is the expected in order with gaps, a Report and a Done.
    let at = 0;
    for (const frame of v1) {
      while (at < expected.length && JSON.stringify(expected[at]) !== JSON.stringify(frame)) at++;
      at++;
    }
    t.ok(
      at <= expected.length && v1.some((f) => f[0] === 131) && v1.some((f) => f[0] === 132),
      `${what}: ${JSON.stringify(v1)}`,
    );
  }

  // A forged query asking for the longest delay cannot hold back a later one asking for 1 s
  // (RFC 3810 6.2: the sooner wins); before the fix the answer stayed due for over an hour.
  const beforeLate = (await proxy('counters')).counters;
  await host(other, ['late-then-soon', 'hostl', hostLinkLocal, 'ff02::1:ff00:20']);
  const sent = Date.now();
  await waitFor(
    'the address-specific answer',
    async () => (await moved(beforeLate))['mldQueriesAnswered'] === 1,
    3_000,
  );
  const late = await moved(beforeLate);
  t.ok(
    late['mldQueries'] === 2 && late['mldReportsSent'] === 1,
    `both queries read, one answer ${Date.now() - sent} ms after the second`,
  );
});

void t.test('a General Query answer for many groups is spaced by its size', { skip }, async (t) => {
  // 20 000 groups take ~278 report frames per General answer: answers at least 10 ms per
  // frame apart (2.8 s), not one a second, so a keyless host's query each second cannot make
  // the HA multicast its whole table each second (review of 7b43a8a).
  const { other, hostLinkLocal, proxy } = await hostAndProxy(t, ['mz', 'mk'], 'hostz', 'homez');
  const GROUPS = 20_000;
  const addrs = Array.from({ length: GROUPS }, (_, i) => `${P}1:${i.toString(16)}`);
  t.equal((await proxy(`add ${addrs.join(' ')}`)).changed, GROUPS);
  const frames = Math.ceil(GROUPS / 72);
  await waitFor(
    'the joins and their repeats sent',
    async () => {
      const c = (await proxy('counters')).counters;
      return c['mldGroups'] === GROUPS && c['mldRecordsSent']! >= 2 * GROUPS;
    },
    15_000,
  );
  const { answered, seconds } = await generalFlood(
    proxy,
    other,
    'hostz',
    hostLinkLocal,
    150,
    30_000,
  );
  const gapS = (frames * 10) / 1000;
  t.ok(
    answered >= 1 && answered <= Math.ceil(seconds / gapS) + 1,
    `${answered} full answers (${frames} frames each) to 150 queries in ` +
      `${seconds.toFixed(2)} s: at least ${gapS.toFixed(2)} s apart`,
  );
});

void t.test(
  'a join just before the repeat is due: its two reports in two frames',
  { skip },
  async (t) => {
    // A's first report goes 10 ms after its join, its repeat within the next second; B joins 15
    // ms after A and the loop stalls for 1.1 s, so B's first report and A's repeat are due in
    // the same run of the proxy's timer. Before the fix B's first report and its repeat left in
    // one frame (the repeat list was read after B had joined it).
    const { ha, haMac, proxy } = await hostAndProxy(t, ['mr', 'mp'], 'hostr', 'homer');
    // A's repeat can fall before B's join (1 time in ~200): then try again with two more groups.
    for (let attempt = 0; attempt < 4; attempt++) {
      const lows = [0x30000 + attempt * 16 + 0xa, 0x30000 + attempt * 16 + 0xb];
      const [a, b] = lows.map((x) => `${P}3:${(x & 0xffff).toString(16)}`);
      const [groupA, groupB] = lows.map(solicitedNode);
      const captured = await capture(t, ha, 'homer', 10, haMac);
      const start = (await proxy('counters')).counters;
      const atStall = (await proxy(`stall-after ${a} ${b}`)).counters;
      if (atStall['mldReportsSent']! - start['mldReportsSent']! !== 1) {
        t.comment(`attempt ${attempt}: A's repeat was not pending when B joined; again`);
        await captured.stop();
        continue;
      }
      await waitFor(
        'both groups reported twice',
        async () =>
          (await proxy('counters')).counters['mldRecordsSent']! - start['mldRecordsSent']! >= 4,
      );
      // The addon's counters: four records, four frames (none names two groups, so none names
      // a group twice); the capture, when complete, shows which.
      const sent = difference(start, (await proxy('counters')).counters);
      t.same([sent['mldRecordsSent'], sent['mldReportsSent']], [4, 4], 'four frames of one record');
      const { reports, complete } = await captured.stop();
      const named = (g: string): Report[] =>
        reports.filter((r) => r.records.some((x) => x[3] === g));
      t.same(
        reports.filter((r) => new Set(r.records.map((x) => x[3])).size !== r.records.length),
        [],
        'no frame names a group twice',
      );
      for (const g of [groupA!, groupB!]) {
        const n = named(g).length;
        t.ok(complete ? n === 2 : n <= 2, `${g}: ${n} frames captured`);
      }
      return;
    }
    t.fail("no attempt had A's repeat pending when B joined");
  },
);

void t.test(
  'on a slow link every group reaches the switch: refused frames are sent again',
  { skip },
  async (t) => {
    // The HA's port is a 10 Mbit/s token bucket with room for ~20 frames: a burst of report
    // frames finds the queue full (ENOBUFS) or the socket's buffer full (EAGAIN). Before the fix
    // the frames refused were counted and dropped, and the same tail was lost every round (each
    // burst in the same order), so most of the 20 000 groups never reached the bridge.
    const { br, ha } = await snoopingBridge(t, 'homes', ['2', 'mcast_hash_max', '65536']);
    await run('tc', [
      ...['-n', ha, 'qdisc', 'add', 'dev', 'homes', 'root', 'tbf'],
      ...['rate', '10mbit', 'burst', '4500', 'limit', '30000'],
    ]);
    await run('ip', ['-n', ha, 'link', 'set', 'homes', 'up']);
    await linkLocalAddress(ha, 'homes');
    const proxy = await startProxy(t, ha, 'homes');
    const GROUPS = 20_000;
    const lows = Array.from({ length: GROUPS }, (_, i) => 0x40000 + i);
    const addrs = lows.map((x) => `${P}4:${(x & 0xffff).toString(16)}`);
    t.equal((await proxy(`add ${addrs.join(' ')}`)).changed, GROUPS);
    const groups = lows.map(solicitedNode);
    const missing = await mdbMissing(br, groups, 30_000, false);
    const c = (await proxy('counters')).counters;
    t.equal(missing, 0, `all ${GROUPS} groups in the bridge table (${missing} missing)`);
    t.ok(
      c['mldReportRetries']! > 0 && c['mldReportSendErrors'] === 0,
      `the link refused frames (${c['mldReportRetries']} sent again, ${c['mldReportSendErrors']} lost, ${c['mldReportsSent']} sent)`,
    );
  },
);

void t.test(
  'a General Query answer for many groups is spread over its delay',
  { skip },
  async (t) => {
    // 20 000 groups are 278 frames: asked to answer within 2 s, the HA spreads them over the 2 s
    // (RFC 3810 6.2 sends the answer at a random time within the delay) instead of one burst
    // at one random time (the old code).
    const { other, ha, hostLinkLocal, haMac, proxy } = await hostAndProxy(
      t,
      ['mg', 'mj'],
      'hostg',
      'homeg',
    );
    const GROUPS = 20_000;
    const { addrs, before } = await joinAndSettle(t, proxy, 5, GROUPS);
    const captured = await capture(t, ha, 'homeg', 15, haMac);
    const { at: sentAt } = JSON.parse(
      await host(other, ['general', 'hostg', hostLinkLocal, '2000']),
    ) as { at: number };
    // What the addon sent, from its own counters: every group once, in as few frames as the
    // MTU allows, none lost (a frame the link refused and took later counts once, as sent).
    await waitFor(
      'the answer sent',
      async () => {
        const d = difference(before, (await proxy('counters')).counters);
        return d['mldQueriesAnswered'] === 1 && d['mldRecordsSent']! >= GROUPS;
      },
      10_000,
    );
    const frames = Math.ceil(GROUPS / RECORDS_PER_FRAME);
    const sent = difference(before, (await proxy('counters')).counters);
    t.same(
      [sent['mldRecordsSent'], sent['mldReportsSent'], sent['mldReportSendErrors']],
      [GROUPS, frames, 0],
      `the addon sent ${GROUPS} records in ${frames} frames, none lost ` +
        `(${sent['mldReportRetries']} refused by the link and sent again)`,
    );
    // The capture is for the timing only: under load scapy misses frames (a CI run saw 214 of
    // 278), so it must hold a substantial part of the answer, each group in it once, and the
    // times of what it holds span most of the 2 s and end within it. The old code sent all 278
    // in one burst at one random time: a spread near 0.
    const ours = new Set(addrs.map((_, i) => solicitedNode(0x50000 + i)));
    const seen = await captured.stop();
    const answer = seen.reports.filter((r) => r.records.every((x) => x[0] === 2 && ours.has(x[3])));
    const named = answer.flatMap((r) => r.records.map((x) => x[3]));
    t.ok(
      answer.length >= (seen.complete ? frames : frames / 2) &&
        answer.length <= frames &&
        new Set(named).size === named.length,
      `${answer.length} of the ${frames} frames captured, no group in two of them`,
    );
    const times = answer.map((r) => r.time);
    const spread = Math.max(...times) - Math.min(...times);
    const end = Math.max(...times) - sentAt;
    t.ok(
      Math.min(...times) >= sentAt && spread >= 1 && end <= 2.5,
      `the answer spread over ${spread.toFixed(2)} s, done ${end.toFixed(2)} s after the query`,
    );
  },
);

void t.test(
  'a General answer of one run that the link cuts short goes on after the back-off',
  { skip },
  async (t) => {
    // 2 000 groups are 28 frames, under one run's budget of 32: the answer goes in one go. On a
    // 10 Mbit/s port with a short queue the second batch of 16 finds it full (ENOBUFS or EAGAIN). Before
    // the fix the rest waited for the query's deadline (up to 10 s later), and the
    // address-specific answers it covered with it (RFC 3810 6.2: late); now it goes after the
    // back-off. The query asks for 10 s: the old code fails unless its random delay fell in the
    // last second.
    const { other, ha, hostLinkLocal, proxy } = await hostAndProxy(
      t,
      ['mc', 'mw'],
      'hostc',
      'homec',
    );
    await run('tc', [
      ...['-n', ha, 'qdisc', 'add', 'dev', 'homec', 'root', 'tbf'],
      ...['rate', '10mbit', 'burst', '4500', 'limit', '30000'],
    ]);
    const GROUPS = 2000;
    const { before } = await joinAndSettle(t, proxy, 7, GROUPS);
    const frames = Math.ceil(GROUPS / RECORDS_PER_FRAME);
    await host(other, ['general', 'hostc', hostLinkLocal, '10000']);
    const asked = Date.now();
    let first = 0;
    await waitFor(
      'the answer sent',
      async () => {
        const d = difference(before, (await proxy('counters')).counters);
        if (first === 0 && d['mldReportsSent']! > 0) first = Date.now();
        return d['mldReportsSent']! >= frames;
      },
      15_000,
    );
    const last = Date.now();
    const d = difference(before, (await proxy('counters')).counters);
    t.same(
      [d['mldQueriesAnswered'], d['mldRecordsSent'], d['mldReportsSent'], d['mldReportSendErrors']],
      [1, GROUPS, frames, 0],
      `one answer: ${GROUPS} records in ${frames} frames, none lost`,
    );
    t.ok(d['mldReportRetries']! > 0, `the link refused ${d['mldReportRetries']} of them`);
    t.ok(
      last - first < 1000,
      `its first frame ${first - asked} ms after the query, its last ${last - first} ms later`,
    );
  },
);

void t.test(
  "a keyless host's MLDv1 Query while joins are pending: they go on, in MLDv1",
  { skip },
  async (t) => {
    // The HA's port nearly shut (8 kbit/s, a queue of two frames): of 1 000 joins (14 frames)
    // the first few leave, the rest wait for room. Then a host with no key sends an MLDv1 Query
    // for a group not ours and the port opens. Before the fix entering MLDv1 mode cancelled the
    // pending joins and their repeats (RFC 3810 8.2.1 says so): until a querier asked, the bridge
    // never learnt most of the groups. Now they leave as MLDv1 Reports.
    // No querier on the bridge: no General Query answers for the groups (it learns from reports).
    const { br, ha } = await snoopingBridge(t, 'homeq', ['2', 'mcast_querier', '0']);
    const other = await hostOnBridge(t, br, 'mu', 'hostu');
    await run('ip', ['-n', other, 'link', 'set', 'hostu', 'up']);
    const hostLinkLocal = await linkLocalAddress(other, 'hostu');
    const tbf = (rate: string, limit: string): string[] => [
      ...['dev', 'homeq', 'root', 'tbf', 'rate', rate, 'burst', '4500', 'limit', limit],
    ];
    await run('tc', ['-n', ha, 'qdisc', 'add', ...tbf('8kbit', '3000')]);
    await run('ip', ['-n', ha, 'link', 'set', 'homeq', 'up']);
    await linkLocalAddress(ha, 'homeq');
    const proxy = await startProxy(t, ha, 'homeq');
    const GROUPS = 1000;
    const lows = Array.from({ length: GROUPS }, (_, i) => 0x80000 + i);
    const addrs = lows.map((x) => `${P}8:${(x & 0xffff).toString(16)}`);
    const start = (await proxy('counters')).counters;
    t.equal((await proxy(`add ${addrs.join(' ')}`)).changed, GROUPS);
    await host(other, ['flood', 'hostu', hostLinkLocal, '1', 'ff02::1:ff99:9999', 'v1']);
    await waitFor(
      'the MLDv1 query read',
      async () => (await proxy('counters')).counters['mldV1ModeEntered'] === 1,
      10_000,
    );
    const atQuery = (await proxy('counters')).counters;
    t.ok(
      atQuery['mldRecordsSent']! < GROUPS,
      `${atQuery['mldRecordsSent']} of ${GROUPS} joins out when the query came`,
    );
    await run('tc', ['-n', ha, 'qdisc', 'change', ...tbf('10mbit', '30000')]);
    const missing = await mdbMissing(br, lows.map(solicitedNode), 15_000, false);
    t.equal(missing, 0, `all ${GROUPS} groups in the bridge table (${missing} missing)`);
    await waitFor(
      'every join and its repeat sent',
      async () => (await proxy('counters')).counters['mldRecordsSent']! >= 2 * GROUPS,
      15_000,
    );
    const d = difference(start, (await proxy('counters')).counters);
    t.same(
      [d['mldReportSendErrors'], d['mldQueriesAnswered'], d['mldQueryNotOurs']],
      [0, 0, 1],
      `${d['mldReportsSent']} frames, none lost; no query answered (none told the groups)`,
    );
  },
);

void t.test('behind an MLDv1 querier the groups reach the switch in MLDv1', { skip }, async (t) => {
  const { br, ha } = await snoopingBridge(t, 'homev', ['1', 'mcast_last_member_interval', '50']);
  await run('ip', ['-n', ha, 'link', 'set', 'homev', 'up']);
  await linkLocalAddress(ha, 'homev');
  await linkLocalAddress(br, 'br0'); // the querier's source
  const proxy = await startProxy(t, ha, 'homev');
  await waitFor(
    'an MLDv1 query from the bridge',
    async () => (await proxy('counters')).counters['mldV1ModeEntered'] === 1,
    15_000,
  );
  const lows = Array.from({ length: 200 }, (_, i) => 0x60000 + i);
  const addrs = lows.map((x) => `${P}6:${(x & 0xffff).toString(16)}`);
  const groups = lows.map(solicitedNode);
  t.equal((await proxy(`add ${addrs.join(' ')}`)).changed, lows.length);
  await mdbMissing(br, groups, 15_000, true);
  t.pass(`bridge mdb lists all ${lows.length} groups, reported in MLDv1`);
  t.equal((await proxy(`del ${addrs[0]!}`)).changed, 1);
  await waitFor(
    "the deleted address's group gone from the HA port",
    async () => !(await mdbGroups(br, 'haport')).has(groups[0]!),
    15_000,
    100,
  );
  const c = (await proxy('counters')).counters;
  t.ok(
    c['mldV1ModeEntered'] === 1 && c['mldRecordsSent']! >= 2 * lows.length,
    `MLDv1 Done took it off; ${c['mldReportsSent']} MLDv1 messages, one group each`,
  );
  t.equal(c['mldReportsSent'], c['mldRecordsSent'], 'one group per message');
});
