/**
 * A home agent restart loses nothing (issue 20), with the real daemons in the netns lab:
 *  1. An HA with `[home] state` (SQLite) on the lab's home link; a busy MN (on "lte", a verified
 *     TCP stream to the server on the home link at 200 kB/s each way and a ping to it every
 *     50 ms) and an idle MN (in the cn namespace, its verified TCP session to the server paused:
 *     nothing crosses the tunnel). Default [movement] settings on both.
 *  2. kill -9 of the HA (the PID this test started), then the same HA started again at once.
 *     It loads the store, re-installs routes and proxy ND, initiates a channel to each member's
 *     last locator and sends a Binding Refresh Request. Asserted: traffic to and from both
 *     members flows again within 1 s of the restarted HA being up (its `started` log line): the
 *     busy MN's pings, and pings from the server to the idle MN; both TCP sessions survive with
 *     every byte verified; each MN answered with a BU; the idle MN never probed.
 *  3. Attacks on the same MN (issue 20: only its HA's key may re-establish the HA channel): a
 *     member key initiating a handshake and sending a BRR and a BA 135 sealed as signaling, and
 *     keyless forged datagrams (scapy: junk initiation, a fake signaling data message, a bare
 *     BRR) from the HA's spoofed locator. Nothing the attacker sent is taken: no BRR answered,
 *     the forged sequence not adopted, the HA binding's locator unchanged.
 *  4. SIGTERM: the HA exits cleanly and its store still holds both bindings for the next start.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HaStatus, MemberStatus } from '../../src/io/control-protocol.js';
import { openSqliteBindingStore } from '../../src/io/sqlite-binding-store.js';
import { waitFor } from '../helpers/wait.js';
import { LAB_ADDR, labUnavailableReason, type Lab, type LabNode } from './lab.js';
import { LabSession, type Daemon } from './mip6-lab.js';
import { netnsSpawn, startTrafficPair, type TrafficPair } from './traffic-client.js';

const BUSY = LAB_ADDR.mn.homeAddress;
const IDLE = '2001:db8:100::30';
const SERVER = LAB_ADDR.server.v6;
const FAKE_HA = fileURLToPath(new URL('./fixtures/fake-home-agent.ts', import.meta.url));
const FORGE = fileURLToPath(new URL('./fixtures/forge-channel.py', import.meta.url));
const skip: string | false =
  labUnavailableReason() ?? (existsSync('/dev/net/tun') ? false : 'needs /dev/net/tun');

/** A running `ping -D`: the wall-clock times (ms) of its replies. */
interface Pinger {
  replies: number[];
  kill(): void;
}

function ping(lab: Lab, node: LabNode, target: string, count: number): Pinger {
  const child = spawn('ip', [
    'netns',
    'exec',
    lab.ns(node),
    'ping',
    '-6',
    '-D',
    '-n',
    '-i',
    '0.05',
    '-c',
    String(count),
    '-W',
    '1',
    target,
  ]);
  const replies: number[] = [];
  let buf = '';
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const l of lines) {
      const m = /^\[(\d+\.\d+)\] \d+ bytes from/.exec(l);
      if (m) replies.push(Number(m[1]) * 1000);
    }
  });
  return {
    replies,
    kill: () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

/** Runs a child in a lab namespace to completion (bounded); its last stdout line as JSON. */
function runJson(lab: Lab, node: LabNode, cmd: string, args: string[], timeoutMs: number) {
  return new Promise<Record<string, unknown>>((resolve, reject) => {
    const child = lab.spawn(node, cmd, args);
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`${cmd} exited ${code}: ${err.slice(-500)}`));
      else resolve(JSON.parse(out.trim().split('\n').pop() ?? '{}') as Record<string, unknown>);
    });
  });
}

/** What an attacker on the MN would aim at, from both daemons' status. */
async function aimedAt(mn: Daemon, ha: Daemon, hoa: string) {
  const m = await mn.status<MemberStatus>();
  const h = await ha.status<HaStatus>();
  const bul = m.bindingUpdateList[0];
  const binding = h.bindings.find((b) => b.homeAddress === hoa);
  return {
    state: m.state,
    homeRegistration: bul?.state,
    sequence: bul?.sequence,
    bindingLocator: binding?.locator,
    bindingSequence: binding?.sequence,
  };
}

/** Bytes each side of a traffic pair has received so far. */
async function received(pair: TrafficPair): Promise<[number, number]> {
  const r = await pair.report();
  return [r.client.bytesReceived, r.server.bytesReceived];
}

void t.test('HA kill -9 and restart with [home] state', { skip, timeout: 300_000 }, async (t) => {
  const session = await LabSession.open(t, 'ha-restart', { timeoutMs: 30_000 });
  const { lab, prov } = session;
  const state = join(prov.dir, 'ha.db');
  const haStarted = await session.homeAgent({ extra: `state = "${state}"` });
  const haConfig = haStarted.config;
  let ha = haStarted.daemon;
  const busy = await session.mobileNode();
  const idle = await session.mobileNode({ name: 'tablet', homeAddress: IDLE, node: 'cn' });
  t.equal(statSync(state).mode & 0o777, 0o600, 'the state file is 0600');

  const pairs: TrafficPair[] = [];
  t.teardown(() => pairs.forEach((p) => p.kill()));
  const busyPair = await startTrafficPair({
    serverSpawn: netnsSpawn(lab.ns('server')),
    clientSpawn: netnsSpawn(lab.ns('mn')),
    listen: SERVER,
    rate: 200_000,
    durationS: 120,
  });
  pairs.push(busyPair);
  const idlePair = await startTrafficPair({
    serverSpawn: netnsSpawn(lab.ns('server')),
    clientSpawn: netnsSpawn(lab.ns('cn')),
    listen: SERVER,
    rate: 20_000,
    durationS: 120,
  });
  pairs.push(idlePair);
  // Both sessions carry data, then the idle one pauses: nothing crosses its tunnel.
  for (const pair of [busyPair, idlePair]) {
    await waitFor('data both ways', async () => (await received(pair)).every((n) => n > 0), 10_000);
  }
  await Promise.all([idlePair.client.setRate(0), idlePair.server.setRate(0)]);
  let last = await received(idlePair);
  await waitFor(
    'the idle session quiet',
    async () => {
      const now = await received(idlePair);
      const quiet = now[0] === last[0] && now[1] === last[1];
      last = now;
      return quiet;
    },
    10_000,
    300,
  );
  const pings: Pinger[] = [];
  t.teardown(() => pings.forEach((p) => p.kill()));
  const busyPing = ping(lab, 'mn', SERVER, 1200);
  pings.push(busyPing);
  await waitFor('busy pings answered', () => busyPing.replies.length > 2, 10_000);
  const before = {
    busy: await aimedAt(busy.daemon, ha, BUSY),
    idle: await aimedAt(idle.daemon, ha, IDLE),
  };
  const idleFrom = idle.daemon.lines.length;
  await Promise.all([busyPair.mark('restart'), idlePair.mark('restart')]);

  // kill -9 of the HA process this test started, and the same HA again at once.
  ha.child.kill('SIGKILL');
  await waitFor('HA exit', () => ha.exited !== undefined, 10_000);
  const killedAt = Date.now();
  ha = session.start('ha', 'ha', haConfig, ha.socket);
  const started = await ha.waitLog((l) => l.event === 'started', 30_000);
  const up = Date.parse(String(started['time']));
  t.comment(`HA down ${up - killedAt} ms (process start-up included)`);
  const restored = await ha.waitLog((l) => l.event === 'bindings-restored', 1000);
  t.match(restored, { restored: 2, members: 2, dropped: 0 }, 'both bindings loaded from the store');
  const idlePing = ping(lab, 'server', IDLE, 400);
  pings.push(idlePing);

  const firstAfter = (p: Pinger): number | undefined => p.replies.find((at) => at > up);
  await waitFor(
    'pings to and from both members',
    () => firstAfter(busyPing) !== undefined && firstAfter(idlePing) !== undefined,
    15_000,
    20,
  );
  const busyMs = firstAfter(busyPing)! - up;
  const idleMs = firstAfter(idlePing)! - up;
  t.comment(`busy MN: ping through the tunnel again ${Math.round(busyMs)} ms after the HA was up`);
  t.comment(`idle MN: ping from the server again ${Math.round(idleMs)} ms after the HA was up`);
  t.ok(busyMs <= 1000, `busy member flows again within 1 s (${Math.round(busyMs)} ms)`);
  t.ok(idleMs <= 1000, `idle member flows again within 1 s (${Math.round(idleMs)} ms)`);

  // Both TCP sessions carry verified data again (the idle one resumes its pace now).
  await Promise.all([idlePair.client.setRate(20_000), idlePair.server.setRate(20_000)]);
  for (const [name, pair] of [
    ['busy', busyPair],
    ['idle', idlePair],
  ] as const) {
    const base = await received(pair);
    await waitFor(
      `${name} TCP session carries data again`,
      async () => {
        const now = await received(pair);
        return now[0] > base[0] && now[1] > base[1];
      },
      15_000,
      50,
    );
    const r = await pair.report();
    const gap = Math.max(
      r.client.gapsAfterMarks.at(-1)?.gapMs ?? 0,
      r.server.gapsAfterMarks.at(-1)?.gapMs ?? 0,
    );
    t.comment(`${name} TCP session: longest gap ${Math.round(gap)} ms across the restart`);
    t.ok(r.client.ok && r.server.ok, `${name} TCP session: every byte verified`);
  }
  const status = await ha.status<HaStatus>();
  for (const [name, d, hoa] of [
    ['busy', busy.daemon, BUSY],
    ['idle', idle.daemon, IDLE],
  ] as const) {
    const binding = status.bindings.find((b) => b.homeAddress === hoa);
    t.equal(binding?.path, 'validated', `${name}: binding at the restarted HA, path validated`);
    const after = await aimedAt(d, ha, hoa);
    const seqBefore = before[name].sequence ?? 0;
    t.ok(
      after.state === 'registered' && after.sequence !== seqBefore,
      `${name} MN answered the Binding Refresh Request with a BU (sequence ${seqBefore} -> ${after.sequence})`,
    );
  }
  t.notOk(
    idle.daemon.lines.slice(idleFrom).some((l) => l.event === 'probe' || l.event === 'path-lost'),
    'the idle MN never probed: the HA came to it',
  );
  for (const pair of [busyPair, idlePair]) {
    const { client, server } = await pair.stop();
    t.ok(client.ok && server.ok, 'TCP session ended with every byte verified both ways');
    t.equal(client.mismatches + server.mismatches, 0);
  }
  pings.forEach((p) => p.kill());

  await t.test('only its HA key re-establishes the HA channel of an MN', async (t) => {
    const mnStatus = await idle.daemon.status<MemberStatus>();
    t.equal(mnStatus.state, 'registered', 'idle MN registered');
    const binding = (await ha.status<HaStatus>()).bindings.find((b) => b.homeAddress === IDLE);
    const m = /^(.*):(\d+)$/.exec(binding?.locator ?? '');
    t.ok(m, `the MN's locator ${binding?.locator}`);
    const [, mnAddress, mnPort] = m!;
    const before = await aimedAt(idle.daemon, ha, IDLE);
    const attackFrom = idle.daemon.lines.length;
    // A member key (another laptop's certificate) playing the restarted HA.
    const rogue = await prov.member('rogue', 'mn', ['2001:db8:100::66']);
    const r = await runJson(
      lab,
      'router',
      process.execPath,
      [
        '--import',
        'tsx',
        FAKE_HA,
        rogue.key,
        rogue.cert,
        prov.authorityPub,
        idle.files.pub,
        mnAddress!,
        mnPort!,
        IDLE,
        LAB_ADDR.ha.home,
      ],
      30_000,
    );
    t.comment(`member key as HA: ${JSON.stringify(r)}`);
    // Keyless datagrams from the HA's spoofed underlay locator.
    const forged = await runJson(
      lab,
      'router',
      '/usr/bin/python3',
      [
        FORGE,
        mnAddress!,
        mnPort!,
        mnAddress!.includes(':') ? LAB_ADDR.ha.v6 : LAB_ADDR.ha.v4,
        '4191',
        IDLE,
        LAB_ADDR.ha.home,
        '3',
      ],
      30_000,
    );
    t.equal(forged['sent'], 9, 'forged datagrams sent');
    const mnAfter = await idle.daemon.status<MemberStatus>();
    const drops = mnAfter.drops ?? {};
    t.comment(`MN drops after the attacks: ${JSON.stringify(drops)}`);
    t.ok(
      r['established'] === false
        ? (drops['channel-wrong-role'] ?? 0) > 0
        : (drops['not-home-agent'] ?? 0) > 0,
      'the member key is refused (certificate role) or its signaling ignored',
    );
    t.ok(
      (drops['channel-malformed'] ?? 0) + (drops['channel-unknown-spi'] ?? 0) > 0,
      'the keyless datagrams were dropped by the channel',
    );
    // The MN may refresh on its own meanwhile (a probe when its traffic stops): what must hold
    // is that nothing the attacker sent was taken, and that the MN and the HA still agree.
    const after = await aimedAt(idle.daemon, ha, IDLE);
    t.equal(after.state, 'registered', 'still registered');
    t.equal(after.bindingLocator, before.bindingLocator, 'HA binding locator unchanged');
    t.equal(after.sequence, after.bindingSequence, 'MN and HA agree on the BU sequence');
    t.not(after.sequence, 0x1237, 'the forged BA 135 sequence was not adopted');
    t.notOk(
      idle.daemon.lines
        .slice(attackFrom)
        .some((l) => l.event === 'refresh-request' || l.event === 'home-agent-refused'),
      'no Binding Refresh Request taken from the attacker',
    );
    const pinger = ping(lab, 'server', IDLE, 20);
    t.teardown(() => pinger.kill());
    await waitFor('the idle MN still reachable', () => pinger.replies.length > 0, 10_000);
  });

  await t.test('SIGTERM: the HA writes what is pending and keeps the bindings', async (t) => {
    const stopped = await ha.stop(10_000);
    t.equal(stopped.code, 0, 'clean exit');
    const store = openSqliteBindingStore(state);
    t.teardown(() => store.close());
    const kept = (await store.load()).map((b) => b.homeAddress).sort();
    t.same(kept, [BUSY, IDLE].sort(), 'both bindings are in the store for the next start');
  });
});
