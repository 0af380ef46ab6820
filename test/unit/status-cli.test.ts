import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  formatBytes,
  formatDuration,
  formatStatus,
  runStatus,
  statusTargets,
} from '../../src/cli/status.js';
import { startControlServer } from '../../src/io/control-socket.js';
import type { HaStatus, MemberStatus } from '../../src/io/control-protocol.js';

const HA: HaStatus = {
  role: 'ha',
  version: '0.1.0',
  pid: 4242,
  uptime: 3725,
  tun: { name: 'mip6ha0', mtu: 1396 },
  listen: ['0.0.0.0:4191', '[::]:4191'],
  homePrefix: '2001:db8:100::/64',
  homeAddress: '2001:db8:100::1',
  bindings: [
    {
      homeAddress: '2001:db8:100::10',
      member: 'laptop',
      locator: '198.51.100.254:40123',
      careOfAddress: '::ffff:192.0.2.10',
      nat: 'detected',
      lifetimeRemaining: 598,
      sequence: 12,
      packetsIn: 10,
      packetsOut: 12,
      bytesIn: 1500,
      bytesOut: 2_500_000,
      lastSeen: 2,
    },
  ],
  counters: { packetsIn: 10, packetsOut: 12 },
  drops: { 'bad-tag': 3, replay: 1 },
};

const MN: MemberStatus = {
  role: 'mn',
  homeAddress: '2001:db8:100::10',
  homeAgent: '198.51.100.1:4191',
  state: 'away',
  bindingUpdateList: [
    {
      peer: '2001:db8:100::1',
      kind: 'home',
      careOfAddress: '::ffff:192.0.2.10',
      locator: '192.0.2.10:40123',
      state: 'registered',
      lifetimeRemaining: 590,
      sequence: 7,
      retransmits: 0,
      nat: 'detected',
      natKeepalive: 110,
      lastStatus: 0,
    },
  ],
  drops: {},
};

void t.test('duration and byte formatting', async (t) => {
  t.equal(formatDuration(42), '42s');
  t.equal(formatDuration(185), '3m05s');
  t.equal(formatDuration(3725), '1h02m');
  t.equal(formatDuration(3 * 86400 + 7200), '3d02h');
  t.equal(formatDuration(undefined), '-');
  t.equal(formatBytes(999), '999 B');
  t.equal(formatBytes(1500), '1.5 kB');
  t.equal(formatBytes(2_500_000), '2.5 MB');
});

void t.test('HA status table', async (t) => {
  const text = formatStatus(HA);
  const lines = text.split('\n');
  t.equal(
    lines[0],
    'mip6 ha  version 0.1.0  pid 4242  up 1h02m  tun mip6ha0 mtu 1396  listen 0.0.0.0:4191 [::]:4191',
  );
  t.match(text, /home prefix 2001:db8:100::\/64 {2}agent address 2001:db8:100::1/);
  t.match(text, /bindings \(1\)\nHOME ADDRESS\s+MEMBER\s+LOCATOR\s+NAT\s+LIFETIME\s+SEQ/);
  t.match(
    text,
    /2001:db8:100::10\s+laptop\s+198\.51\.100\.254:40123\s+detected\s+9m58s\s+12\s+10\/12\s+1\.5 kB\/2\.5 MB\s+2s ago/,
  );
  t.match(text, /counters: packetsIn=10 packetsOut=12\ndrops: bad-tag=3 replay=1\n$/);
  const header = lines.find((l) => l.startsWith('HOME ADDRESS')) ?? '';
  const row = lines.find((l) => l.startsWith('2001:db8:100::10')) ?? '';
  t.equal(header.indexOf('LOCATOR'), row.indexOf('198.51.100.254'), 'columns aligned');
});

void t.test(
  'personal tunnel (issue #15): IPv4 home addresses and why the HA is unreachable',
  async (t) => {
    const mn = formatStatus({
      ...MN,
      homeAddress4: '10.99.0.2',
      homeAgentUnreachable: 'no answer on any port',
    });
    t.match(
      mn,
      /home address 2001:db8:100::10 {2}ipv4 10\.99\.0\.2 {2}home agent 198\.51\.100\.1:4191/,
    );
    t.match(mn, /home agent unreachable: no answer on any port/);
    const ha = formatStatus({
      ...HA,
      bindings: HA.bindings.map((b) => ({ ...b, homeAddress4: '10.99.0.2' })),
    });
    t.match(ha, /2001:db8:100::10 10\.99\.0\.2\s/);
  },
);

void t.test('HA status: home link programming (issue #17), up to date or behind', async (t) => {
  const base = { via: 'rtnetlink' as const, slowestMs: 38, done: 2402, batches: 7 };
  const fine = formatStatus({
    ...HA,
    homeLink: { ...base, queued: 0, oldestMs: 0, failed: {} },
  });
  t.match(
    fine,
    /home link programming \(rtnetlink\): up to date; 2402 done in 7 batches, slowest 38 ms\n/,
  );
  const behind = formatStatus({
    ...HA,
    homeLink: { ...base, via: 'ip-batch', queued: 1800, oldestMs: 950, failed: { ENODEV: 2 } },
  });
  t.match(
    behind,
    /home link programming \(ip-batch\): BEHIND: 1800 ops queued, oldest 950 ms; 2402 done in 7 batches, slowest 38 ms; failed: ENODEV 2\n/,
  );
  t.notMatch(formatStatus(HA), /home link programming/, 'no line without a real home link');
});

void t.test('HA status: who defends home addresses on the home link, with counters', async (t) => {
  const base = { via: 'rtnetlink' as const, queued: 0, oldestMs: 0, slowestMs: 1, done: 3 };
  const counters = {
    frames: 2013,
    solicitations: 2004,
    answered: 4,
    answeredDad: 1,
    notOurs: 2000,
    badLength: 1,
    badHopLimit: 1,
    badCode: 0,
    badChecksum: 2,
    badOption: 0,
    multicastTarget: 0,
    badDad: 0,
    notSolicitation: 0,
    sendErrors: 0,
    badSource: 0,
    addresses: 11,
    adverts: 7,
    badAdvert: 0,
    probesSent: 300,
    probeSendErrors: 0,
    duplicateByAdvert: 5,
    duplicateBySolicitation: 1,
    ownProbe: 0,
    probing: 40,
    rxDropped: 0,
    // Work, not drops: the dropped list below must not name them.
    probesDeferred: 12,
    duplicateDefended: 2,
    mldGroups: 9,
    mldReportsSent: 6,
    mldRecordsSent: 30,
    mldReportSendErrors: 0,
    mldReportRetries: 0,
    mldQueries: 4,
    mldQueriesAnswered: 2,
    mldQueriesCoalesced: 2,
    mldQueryNotOurs: 0,
    mldBadQueryLength: 0,
    mldBadQueryHopLimit: 3,
    mldBadQuerySource: 0,
    mldNoRouterAlert: 1,
    mldBadQueryChecksum: 0,
    mldBadQueryHeader: 0,
    mldBadQueryGroup: 0,
    mldV1ModeEntered: 0,
  };
  const dad = {
    via: 'ndproxy' as const,
    maxInFlight: 65536,
    inFlight: 40,
    queued: 0,
    peakInFlight: 256,
    peakQueued: 3,
    waited: 0,
    started: 300,
    unique: 254,
    duplicate: 6,
    failed: 0,
    joined: 0,
  };
  const out = formatStatus({
    ...HA,
    homeLink: { ...base, batches: 2, failed: {}, defence: 'ndproxy', ndproxy: counters, dad },
  });
  t.match(
    out,
    /\nhome link defence \(ndproxy\): 11 addresses; 2013 frames, 2004 solicitations, 4 answered \(1 DAD\), 2000 not ours; dropped: badLength 1, badHopLimit 1, badChecksum 2, mldBadQueryHopLimit 3, mldNoRouterAlert 1\n/,
  );
  t.match(
    out,
    /\nsolicited-node groups reported \(MLDv2\): 9 groups; 6 reports \(30 records\) sent; 4 queries, 2 answered, 2 coalesced, 0 not ours(\n|$)/,
  );
  t.match(
    out,
    /\nduplicate address detection \(ndproxy\): 40 in flight \(cap 65536, peak 256\), 0 queued \(0 waited\); 300 started: 254 unique, 6 duplicate, 0 failed; 300 probes sent, duplicates seen by NA 5, by DAD probe 1\n/,
  );
  const kernel = formatStatus({
    ...HA,
    homeLink: { ...base, batches: 2, failed: {}, defence: 'kernel-proxy' },
  });
  t.match(kernel, /\nhome link defence \(kernel-proxy\)\n/);
});

void t.test('MN status: binding update list; tolerant of junk', async (t) => {
  const text = formatStatus(MN);
  t.match(text, /home address 2001:db8:100::10 {2}home agent 198\.51\.100\.1:4191 {2}state away/);
  t.match(text, /binding update list \(1\)/);
  t.match(
    text,
    /2001:db8:100::1\s+home\s+::ffff:192\.0\.2\.10\s+192\.0\.2\.10:40123\s+registered\s+9m50s\s+7\s+0\s+detected \(keepalive 110s\)\s+0/,
  );
  t.match(text, /drops: none/);
  t.match(formatStatus({ role: 'ha', bindings: 'nope' }), /bindings \(0\)/);
  t.match(formatStatus(null), /unexpected status/);
});

void t.test('targets: explicit socket, role default, discovery', async (t) => {
  t.same(statusTargets({ socket: '/x.sock' }), [{ path: '/x.sock', role: '' }]);
  t.same(statusTargets({ role: 'mn' }), [{ path: '/run/mip6/mn.sock', role: 'mn' }]);
  t.same(
    statusTargets({}, (p) => p.endsWith('/cn.sock') || p.endsWith('/ha.sock')),
    [
      { path: '/run/mip6/ha.sock', role: 'ha' },
      { path: '/run/mip6/cn.sock', role: 'cn' },
    ],
  );
  t.throws(() => statusTargets({}, () => false), {
    code: 'ERR_NO_DAEMON',
    message: /no mip6 daemon/,
  });
});

void t.test('runStatus against a live control server, and the CLI error line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), `mip6-status-${process.pid}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'ha.sock');
  const server = await startControlServer(path, { status: () => HA });
  t.teardown(() => server.close());
  t.same(JSON.parse(await runStatus({ socket: path, json: true })), HA);
  t.equal(await runStatus({ socket: path, role: 'ha' }), formatStatus(HA));

  const cli = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/cli/main.ts',
      'status',
      '--role',
      'ha',
      '--socket',
      join(dir, 'gone.sock'),
    ],
    { encoding: 'utf8', cwd: process.cwd() },
  );
  t.equal(cli.status, 1);
  t.equal(
    cli.stderr,
    `mip6: ERR_NO_DAEMON: no mip6 ha daemon at ${join(dir, 'gone.sock')}: is it running?\n`,
  );
});

void t.test('path MTU (issue #21): size and how it was learnt, per peer', async (t) => {
  const pathMtu = {
    locator: '192.0.2.1:4191',
    pathMtu: 1400,
    maxInner: 1340,
    source: 'icmp',
    state: 'complete',
  };
  const home = { ...MN.bindingUpdateList[0]!, pathMtu };
  const text = formatStatus({ ...MN, bindingUpdateList: [home] });
  t.match(text, /PATH MTU/);
  t.match(text, /1400 icmp/);
  const searching = { ...pathMtu, pathMtu: 1340, source: 'base', state: 'searching' };
  const ha = { ...HA, bindings: [{ ...HA.bindings[0]!, pathMtu: searching }] };
  t.match(formatStatus(ha), /1340 base searching/);
  const idle = { ...pathMtu, pathMtu: 1456, source: 'probe', idle: true };
  const rests = { ...HA, bindings: [{ ...HA.bindings[0]!, pathMtu: idle }] };
  t.match(formatStatus(rests), /1456 probe idle/, 'an idle path says its size may be old');
  t.match(formatStatus(HA), /PATH MTU/, 'a column also without one');
});
