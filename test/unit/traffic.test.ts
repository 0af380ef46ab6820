// The lab traffic tool: its pure parts (stream, framing, gap tracker, arguments) with exact
// inputs, then real pairs of processes on loopback ::1 (no root): a clean run with a mark, a run
// ended by --duration, a corrupted byte, a killed peer, and the driver's failure paths.
import t from 'tap';
import { spawn } from 'node:child_process';
import { WireError } from '../../src/util/errors.js';
import {
  DEFAULT_RATE,
  FrameReader,
  GapTracker,
  STREAM_SEED,
  dataFrame,
  endFrame,
  fillStream,
  parseTrafficArgs,
  verifyStream,
  type FrameEvent,
} from '../lab/traffic.js';
import {
  TrafficProcess,
  spawnLocal,
  spawnTrafficClient,
  spawnTrafficServer,
  startTrafficPair,
} from '../lab/traffic-client.js';

const SEED = STREAM_SEED.clientToServer;

void t.test('stream: any window equals the same slice of the whole stream', async (t) => {
  const whole = new Uint8Array(4096);
  fillStream(SEED, 0, whole);
  for (const [off, len] of [
    [0, 1],
    [1, 7],
    [3, 4],
    [5, 1000],
    [4093, 3],
  ] as const) {
    const part = new Uint8Array(len + 2);
    fillStream(SEED, off, part, 2, len);
    t.same(part.subarray(2), whole.subarray(off, off + len), `window ${off}+${len}`);
  }
  const other = new Uint8Array(64);
  fillStream(STREAM_SEED.serverToClient, 0, other);
  t.not(Buffer.from(other).toString('hex'), Buffer.from(whole.subarray(0, 64)).toString('hex'));
  t.ok(new Set(whole).size > 200, 'the stream uses (nearly) every byte value');
});

void t.test('verifyStream counts mismatches and reports the first offset', async (t) => {
  const data = new Uint8Array(1000);
  fillStream(SEED, 12345, data);
  t.same(verifyStream(SEED, 12345, data), { mismatches: 0, firstMismatchOffset: null });
  data[17] = (data[17] ?? 0) ^ 0x01;
  data[900] = (data[900] ?? 0) ^ 0x80;
  t.same(verifyStream(SEED, 12345, data), { mismatches: 2, firstMismatchOffset: 12345 + 17 });
  // The same bytes at the wrong offset (a duplicated or skipped segment) do not verify.
  fillStream(SEED, 12345, data);
  t.ok(verifyStream(SEED, 12346, data).mismatches > 900);
});

void t.test('FrameReader: frames split at every position parse the same', async (t) => {
  const a = dataFrame(5);
  fillStream(SEED, 0, a, 3, 5);
  const b = dataFrame(0);
  const c = dataFrame(300);
  fillStream(SEED, 5, c, 3, 300);
  const wire = Buffer.concat([a, b, c, endFrame(305)]);
  for (let cut = 0; cut <= wire.length; cut++) {
    const reader = new FrameReader();
    const events: FrameEvent[] = [
      ...reader.push(wire.subarray(0, cut)),
      ...reader.push(wire.subarray(cut)),
    ];
    const data = Buffer.concat(events.flatMap((e) => (e.type === 'data' ? [e.bytes] : [])));
    const ends = events.flatMap((e) => (e.type === 'end' ? [e.total] : []));
    if (data.length !== 305 || verifyStream(SEED, 0, data).mismatches !== 0) {
      t.fail(`cut at ${cut}: data ${data.length} bytes`);
      return;
    }
    if (ends.length !== 1 || ends[0] !== 305 || events.at(-1)?.type !== 'end') {
      t.fail(`cut at ${cut}: end ${JSON.stringify(ends)}`);
      return;
    }
  }
  t.pass('all cuts');
});

void t.test(
  'FrameReader rejects an unknown type and a bad END length with WireError',
  async (t) => {
    const reader = new FrameReader();
    reader.push(dataFrame(0));
    t.throws(() => reader.push(Buffer.from([9, 0, 0])), { code: 'ERR_BAD_VALUE', offset: 3 });
    t.throws(() => new FrameReader().push(Buffer.from([2, 0, 4])), { code: 'ERR_BAD_LENGTH' });
    try {
      new FrameReader().push(Buffer.from([7, 0, 0]));
    } catch (err) {
      t.ok(err instanceof WireError);
    }
  },
);

void t.test('GapTracker: the longest data-free interval per mark window', async (t) => {
  const g = new GapTracker();
  g.onData(1); // before begin: ignored
  g.begin(10);
  for (const at of [12, 14, 16]) g.onData(at);
  g.mark('move-1', 20);
  t.same(g.snapshot(21).gapsAfterMarks, [{ label: 'move-1', atMs: 20, gapMs: 5 }], 'open gap');
  g.onData(816); // an 800 ms outage that began before the mark counts whole
  g.onData(818);
  g.mark('move-2', 900);
  g.onData(902);
  const s = g.snapshot(1000); // 98 ms open so far
  t.same(s.gapsAfterMarks, [
    { label: 'move-1', atMs: 20, gapMs: 800 },
    { label: 'move-2', atMs: 900, gapMs: 98 },
  ]);
  t.equal(s.maxGapMs, 800);
  t.equal(s.maxGapMsSinceLastMark, 98);
  g.end(1003);
  const after = g.snapshot(5000); // the stream ended: no gap grows any more
  t.equal(after.maxGapMsSinceLastMark, 101);
  t.equal(after.gapsAfterMarks[1]?.gapMs, 101);
});

void t.test('parseTrafficArgs: defaults, bounds and usage errors', async (t) => {
  const c = parseTrafficArgs(['client', '--connect', '::1', '--port', '5000', '--bind', '::1']);
  t.match(c, { role: 'client', address: '::1', port: 5000, bind: '::1', rate: DEFAULT_RATE });
  t.equal(c.durationS, 30);
  const s = parseTrafficArgs(['server', '--listen', '::', '--rate', '2000', '--duration', '5']);
  t.match(s, { role: 'server', port: 0, rate: 2000, durationS: 5 });
  t.notOk('corruptAt' in s);
  for (const bad of [
    [],
    ['client', '--connect', '::1'],
    ['server'],
    ['server', '--listen', '::', '--duration', '601'],
    ['server', '--listen', '::', '--rate', '0'],
    ['server', '--listen', '::', '--rate', 'fast'],
    ['server', '--listen', '::', '--bind', '::1'],
    ['client', '--connect', '::1', '--port', '0'],
  ]) {
    t.throws(() => parseTrafficArgs(bad), { code: 'ERR_USAGE' }, bad.join(' '));
  }
  t.throws(() => parseTrafficArgs(['server', '--listen', '::', '--nope']), /Unknown option/);
});

/** Polls `p.report()` until `cond` holds (bounded). */
async function reportUntil(
  p: TrafficProcess,
  cond: (bytes: number) => boolean,
  timeoutMs = 15_000,
) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const r = await p.report();
    if (cond(r.bytesReceived)) return r;
    if (Date.now() > until) throw new Error(`no progress: ${JSON.stringify(r)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

void t.test(
  'a pair on ::1: both directions verified, totals equal, small gap after a mark',
  async (t) => {
    const rate = 1_000_000;
    const pair = await startTrafficPair({
      serverSpawn: spawnLocal,
      clientSpawn: spawnLocal,
      listen: '::1',
      rate,
    });
    t.teardown(() => pair.kill());
    await reportUntil(pair.client, (n) => n >= 300_000);
    pair.client.child.stdin?.write('{not json\n[1]\n{"cmd":"dance"}\n'); // dropped, not fatal
    await pair.mark('move-1');
    const mid = await pair.report();
    await reportUntil(pair.client, (n) => n >= mid.client.bytesReceived + 300_000);
    await reportUntil(pair.server, (n) => n >= mid.server.bytesReceived + 300_000);
    const { client, server } = await pair.stop();
    for (const r of [client, server]) {
      t.equal(r.exitCode, 0, `${r.role} exit 0 (${r.error})`);
      t.match(r, { final: true, ok: true, error: null, mismatches: 0, firstMismatchOffset: null });
      t.equal(r.verified, r.bytesReceived, `${r.role}: every byte verified`);
      t.equal(r.peerDeclaredSent, r.bytesReceived, `${r.role}: peer's END total matches`);
      t.ok(r.bytesReceived >= 600_000, `${r.role} received ${r.bytesReceived}`);
      t.ok(r.bytesSent <= (rate * r.elapsedMs) / 1000 + rate / 100, `${r.role}: rate bounded`);
      t.equal(r.gapsAfterMarks.length, 1);
      t.ok(r.connectedAtMs !== null && r.connectedAtMs < (r.gapsAfterMarks[0]?.atMs ?? 0));
      const gap = r.gapsAfterMarks[0];
      t.equal(gap?.label, 'move-1');
      // Paced every 2 ms on loopback; 500 ms leaves room for a loaded CI box, not for a stall.
      t.ok(gap !== undefined && gap.gapMs > 0 && gap.gapMs < 500, `${r.role} gap ${gap?.gapMs} ms`);
      t.ok(r.maxGapMsSinceLastMark >= (gap?.gapMs ?? 0));
    }
    t.equal(client.bytesReceived, server.bytesSent, 'server->client totals');
    t.equal(server.bytesReceived, client.bytesSent, 'client->server totals');
    const warnings = pair.client.log.filter((e) => e.event === 'warning');
    t.equal(warnings.length, 3, 'three bad lines: each dropped with a warning, none fatal');
    t.match(warnings[0]?.message, /not json/);
    t.match(warnings[2]?.message, /unknown command.*dance/);
  },
);

void t.test('--duration ends the run on its own; the server mirrors the close', async (t) => {
  const server = spawnTrafficServer(spawnLocal, { listen: '::1' });
  t.teardown(() => server.kill());
  const { port } = await server.ready();
  const client = spawnTrafficClient(spawnLocal, {
    connect: '::1',
    port,
    bind: '::1',
    durationS: 0.3,
    rate: 200_000,
  });
  t.teardown(() => client.kill());
  const [c, s] = await Promise.all([client.final(), server.final()]);
  t.match(c, { ok: true, exitCode: 0, mismatches: 0 });
  t.match(s, { ok: true, exitCode: 0, mismatches: 0 });
  t.equal(s.bytesReceived, c.bytesSent);
  t.ok(c.bytesSent > 0 && c.bytesSent <= 200_000 * 0.3 + 2000, `client sent ${c.bytesSent}`);
  t.equal(c.bytesReceived, s.bytesSent);
});

void t.test('a corrupted byte is detected with its offset and fails the run', async (t) => {
  const pair = await startTrafficPair({
    serverSpawn: spawnLocal,
    clientSpawn: spawnLocal,
    listen: '::1',
    extraArgs: ['--corrupt-at', '1000'],
  });
  t.teardown(() => pair.kill());
  await reportUntil(pair.server, (n) => n > 2000);
  await reportUntil(pair.client, (n) => n > 2000);
  const mid = await pair.server.report();
  t.match(mid, { ok: false, mismatches: 1, firstMismatchOffset: 1000 });
  const { client, server } = await pair.stop();
  for (const r of [client, server]) {
    t.match(r, { final: true, ok: false, mismatches: 1, firstMismatchOffset: 1000 }, r.role);
    t.equal(r.exitCode, 1, `${r.role} exits 1`);
    t.equal(r.verified, r.bytesReceived - 1);
    t.equal(r.peerDeclaredSent, r.bytesReceived, 'totals still match');
  }
  t.match(pair.server.stderr, /mismatch at offset 1000/);
});

void t.test('a peer that vanishes fails the run (reset or truncated stream)', async (t) => {
  const pair = await startTrafficPair({
    serverSpawn: spawnLocal,
    clientSpawn: spawnLocal,
    listen: '::1',
  });
  t.teardown(() => pair.kill());
  await reportUntil(pair.client, (n) => n > 10_000);
  pair.server.kill();
  const c = await pair.client.final(20_000);
  t.equal(c.exitCode, 1);
  t.equal(c.ok, false);
  t.match(c.error, /ECONNRESET|EPIPE|without an END frame|closed before/);
});

void t.test('the driver: usage errors, early exits and timeouts reject with stderr', async (t) => {
  const bad = new TrafficProcess('server', spawnLocal, [
    'server',
    '--listen',
    '::1',
    '--rate',
    '0',
  ]);
  t.teardown(() => bad.kill());
  await t.rejects(bad.ready(), /exited \(code 2\) before listening.*--rate must be/s);
  await t.rejects(bad.report(), /exited \(code 2\)/);

  const silent = spawnTrafficServer(
    (cmd) => spawn(cmd, ['-e', 'setTimeout(() => {}, 20000)'], { stdio: 'pipe' }),
    { listen: '::1', timeoutMs: 300 },
  );
  t.teardown(() => silent.kill());
  await t.rejects(silent.ready(), /no listening within 300 ms/);
  silent.kill();
  await t.rejects(silent.final(5000), /exited \(SIGKILL\)/);

  const noHost = spawnTrafficClient(spawnLocal, { connect: '::1', port: 1 });
  t.teardown(() => noHost.kill());
  await t.rejects(noHost.ready(), /ECONNREFUSED/);
  const f = await noHost.final();
  t.match(f, { ok: false, connected: false, exitCode: 1, error: /ECONNREFUSED/ });
});
