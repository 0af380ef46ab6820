/**
 * The express lane's arming in the drivers (issue #16: roles/ha/ha-express.ts,
 * roles/mn/mn-express.ts), with the real HomeAgent and MobileNode over the fakes and a
 * FakeExpressLane that records what they arm and reports what a test says it carried. The
 * lane itself (native/express.c) has its own tests (test/native, test/lab); here: the lane only
 * carries what JS has just decided, and is emptied whenever JS state may change.
 *
 * After every callback of either node (TUN, sockets, timer, and the calls a test makes:
 * status, reload, revocation, removal) the tests check that
 *   - a callback that found the lane armed emptied it before anything else (the mobile node's
 *     timer may harvest instead, then clears or does nothing more);
 *   - whatever the home agent left armed is a member's channel under its current keys, from the
 *     validated locator of each home address it names (our address there as source), the path
 *     MTU of that locator, no capture open;
 *   - whatever the mobile node left armed is the home agent's channel and locator under the
 *     current keys, no handshake in flight, no capture open.
 * Then each state change the lane must follow (deregistration, expiry, a move, DAD, a capture,
 * a rekey, a revocation) is made while the lane is armed, and the counts the lane reports are
 * followed into the counters, the bindings, movement detection and the path MTU confirmations.
 */
import t, { type Test } from 'tap';
import { DEFAULT_TIMERS } from '../../src/crypto/endpoint.js';
import type { PeerSession } from '../../src/crypto/endpoint.js';
import type { BoundPath } from '../../src/roles/ha/binding-paths.js';
import { expressHarvestMs } from '../../src/roles/mn/mn-express.js';
import type { ExpressArm, ExpressCallback, FakeExpressLane } from '../helpers/fake-express.js';
import { T0 } from '../helpers/crypto.js';
import { echo, ipv4Udp } from '../helpers/packets.js';
import { HA4, HA_PORT, World, type MnHandle } from '../helpers/world.js';
import { formatIpv6 } from '../../src/wire/address.js';

const HOA = '2001:db8:100::10';
const HOA2 = '2001:db8:100::20';
const MN4 = '203.0.113.10';
const MN4B = '203.0.113.20';
const SERVER = '2001:db8:100::5';
const HA_LOCATOR = `${HA4}:${HA_PORT}`;
const POOL4 = '10.99.0.0/24';
const WEB4 = '203.0.113.80'; // an IPv4 server beyond the home agent

/** `a.b.c.d` as the lane's tables hold it (::ffff:a.b.c.d), in the fake lane's text form. */
function mapped(a4: string): string {
  const slot = new Uint8Array(16);
  slot[10] = slot[11] = 0xff;
  slot.set(a4.split('.').map(Number), 12);
  return formatIpv6(slot, 0);
}

/** The home agent's binding whose IPv4 home address (RFC 5555) is `a4`, by its key. */
function bindingOf4(w: World, a4: string): string | undefined {
  for (const e of w.ha.cache.entries()) if (w.ha.ipv4.addressOf(e.key) === a4) return e.homeAddress;
  return undefined;
}

/** A problem with `cb`'s lane ops: armed at entry, and not emptied (or harvested) first. */
function notClearedFirst(cb: ExpressCallback, mayHarvest: boolean): string | undefined {
  if (cb.armedAtEntry === 0) return undefined;
  const [first, second] = cb.ops;
  if (first?.op === 'clear') return undefined;
  // The mobile node's timer: a harvest, then nothing more unless it empties the lane.
  if (mayHarvest && cb.label === 'timer' && first?.op === 'harvest') {
    if (second === undefined || second.op === 'clear') return undefined;
  }
  return `${cb.label} found the lane armed and began with ${first?.op ?? 'nothing'}`;
}

/** Problems with what the home agent has armed now, against its state now. */
function haArmsHold(w: World): string[] {
  const out: string[] = [];
  const live = w.haExpress!.live;
  if (live.length > 0 && w.haEnv.capture !== undefined) out.push('armed while capturing');
  for (const a of live) {
    const what = `${a.direction} ${a.localSpi}`;
    if (a.addresses === null || a.addresses.length === 0) {
      out.push(`${what}: armed without home addresses`);
      continue;
    }
    for (const armed of a.addresses) {
      // An IPv4 home address (armed mapped) stands for the binding that holds it now.
      const a4 = armed.startsWith('::ffff:') ? armed.slice(7) : undefined;
      const hoa = a4 === undefined ? armed : bindingOf4(w, a4);
      if (hoa === undefined) {
        out.push(`${what}: no binding holds ${armed}`);
        continue;
      }
      const entry = w.ha.cache.get(hoa);
      const bound = entry?.path as BoundPath | undefined;
      if (bound === undefined) {
        out.push(`${what}: ${hoa} has no binding`);
        continue;
      }
      if (bound.data !== bound) out.push(`${what}: ${hoa}'s locator is not validated`);
      if (
        bound.address !== a.path.address ||
        bound.port !== a.path.port ||
        bound.local !== a.path.source
      ) {
        out.push(`${what}: ${hoa} is bound at ${bound.address}:${bound.port} from ${bound.local}`);
      }
      const s = bound.session;
      if (s.closed) out.push(`${what}: ${hoa}'s channel is closed`);
      if (s.current?.localSpi !== a.localSpi || s.current?.remoteSpi !== a.remoteSpi) {
        out.push(`${what}: not ${hoa}'s current keys (${s.current?.localSpi})`);
      }
      if (a.direction === 'tx' && (bound.mtuFor !== bound || bound.mtu?.maxInner !== a.maxInner)) {
        out.push(`${what}: maxInner ${a.maxInner}, the path's ${bound.mtu?.maxInner}`);
      }
    }
  }
  return out;
}

/** The member's channel to the home agent (no route optimization: its only one). */
function haSession(m: MnHandle): PeerSession | undefined {
  return m.endpoint.allSessions().find((s) => !s.closed);
}

/** Problems with what the mobile node has armed now, against its state now. */
function mnArmsHold(m: MnHandle): string[] {
  const out: string[] = [];
  const live = m.express!.live;
  if (live.length > 0 && m.env.capture !== undefined) out.push('armed while capturing');
  const s = haSession(m);
  for (const a of live) {
    const what = `${a.direction} ${a.localSpi}`;
    // Only our granted IPv4 home address (RFC 5555), mapped, the last one the BA gave.
    const granted = m.events.filter((e) => e.event === 'ipv4-home-address').at(-1)?.fields[
      'address'
    ] as string | null | undefined;
    const mine = a.direction === 'rx' && granted != null ? [mapped(granted)] : null;
    if (JSON.stringify(a.addresses) !== JSON.stringify(mine)) {
      out.push(`${what}: armed with addresses ${a.addresses?.join()}`);
    }
    if (`${a.path.address}:${a.path.port}` !== HA_LOCATOR) {
      out.push(`${what}: to ${a.path.address}:${a.path.port}`);
    }
    if (s === undefined || s.current?.localSpi !== a.localSpi) out.push(`${what}: not current`);
    else if (s.current.remoteSpi !== a.remoteSpi) out.push(`${what}: remote SPI not current`);
    if (s?.pending !== null) out.push(`${what}: armed during a handshake`);
  }
  return out;
}

/** The home agent's checks after each of its callbacks, into `problems`. */
function watchHa(w: World, problems: string[]): void {
  w.haExpress!.afterEach = (cb) => {
    const first = notClearedFirst(cb, false);
    if (first !== undefined) problems.push(`HA ${first}`);
    for (const p of haArmsHold(w)) problems.push(`HA after ${cb.label}: ${p}`);
  };
}

/** A world whose home agent has a FakeExpressLane, checked after each callback. */
async function haWorld(
  t: Test,
  opts: Parameters<typeof World.create>[0] = {},
): Promise<{ w: World; problems: string[] }> {
  const w = await World.create({ haExpress: true, ...opts });
  t.teardown(() => w.ha.close());
  const problems: string[] = [];
  watchHa(w, problems);
  return { w, problems };
}

/** A member with an express lane and the checks after each of its callbacks; registered. */
async function member(
  w: World,
  problems: string[],
  homeAddress: string,
  address4: string,
  opts: Partial<Parameters<World['mobileNode']>[0]> = {},
): Promise<MnHandle & { express: FakeExpressLane }> {
  const m = w.mobileNode({
    homeAddress,
    address4,
    address6: '2001:db8:3::10',
    express: true,
    ...opts,
  });
  const lane = m.express!;
  lane.afterEach = (cb) => {
    const first = notClearedFirst(cb, true);
    if (first !== undefined) problems.push(`${homeAddress} ${first}`);
    for (const p of mnArmsHold(m)) problems.push(`${homeAddress} after ${cb.label}: ${p}`);
  };
  m.careOf.candidates = [{ family: 4, localAddress: address4 }];
  m.mn.start();
  if ((await w.until(() => m.mn.registration.state === 'registered', 5_000)) < 0) {
    throw new Error(`${homeAddress} did not register`);
  }
  return { ...m, express: lane };
}

let seq = 0;

/** Payload both ways through the home agent, `n` rounds (JS carries it all: the fake lane
 *  takes nothing by itself). */
async function exchange(w: World, m: MnHandle, hoa: string, n = 3): Promise<void> {
  for (let i = 0; i < n; i++) {
    m.tun.inject(echo(hoa, SERVER, seq++));
    await w.run(20);
    w.haTun.inject(echo(SERVER, hoa, seq++));
    await w.run(20);
  }
}

/** The home agent's channel of `hoa`'s binding. */
function channelOf(w: World, hoa: string): { bound: BoundPath; session: PeerSession } {
  const bound = w.ha.cache.get(hoa)?.path as BoundPath | undefined;
  if (bound === undefined) throw new Error(`no binding for ${hoa}`);
  return { bound, session: bound.session };
}

/** The arms of `lane` now that name `hoa`. */
function armsFor(lane: FakeExpressLane, hoa: string): ExpressArm[] {
  return lane.live.filter((a) => a.addresses?.includes(hoa) === true);
}

void t.test(
  'each channel is armed with its own home address, locator, keys and path MTU',
  async (t) => {
    const { w, problems } = await haWorld(t);
    const a = await member(w, problems, HOA, MN4);
    const b = await member(w, problems, HOA2, MN4B);
    await exchange(w, a, HOA);
    await exchange(w, b, HOA2);
    const ha = w.haExpress!;
    t.equal(ha.live.length, 4, 'both channels, both ways');
    for (const [m, hoa, address] of [
      [a, HOA, MN4],
      [b, HOA2, MN4B],
    ] as const) {
      const { bound, session } = channelOf(w, hoa);
      const keys = session.current!;
      t.equal(bound.data, bound, `${hoa}: its locator is validated`);
      const path = { family: 4, address, port: m.udp4.localPort, source: HA4 };
      const rx = ha.liveArm('rx', keys.localSpi);
      const tx = ha.liveArm('tx', keys.localSpi);
      t.same(rx?.addresses, [hoa], `HA rx: ${hoa} is the only inner source`);
      t.same(rx?.path, path, 'HA rx: from the validated locator, at our address it reached');
      t.equal(rx?.remoteSpi, keys.remoteSpi, 'HA rx: the current keys');
      t.same(tx?.addresses, [hoa], `HA tx: ${hoa} is the only destination`);
      t.same(tx?.path, path, 'HA tx: to the validated locator, from our address there');
      t.equal(tx?.maxInner, bound.mtu?.maxInner, 'HA tx: the path MTU of that locator');
      t.ok((tx?.maxInner ?? 0) > 1280, `the search has run (${tx?.maxInner})`);
      // A responder's keys: the lane stops at their reject point, counted from the arming.
      const haAge = T0 + rx!.at - keys.createdAt;
      t.equal(rx?.forMs, DEFAULT_TIMERS.rejectAfterTimeMs - haAge, 'HA rx: until the reject time');
      t.equal(rx?.limit, DEFAULT_TIMERS.rejectAfterMessages, 'HA rx: message limit');
      t.equal(tx?.forMs, DEFAULT_TIMERS.rejectAfterTimeMs - (T0 + tx!.at - keys.createdAt));
      t.equal(tx?.limit, DEFAULT_TIMERS.rekeyAfterMessages, 'HA tx: rekey message limit');

      const mk = haSession(m)!.current!;
      const mrx = m.express.liveArm('rx');
      const mtx = m.express.liveArm('tx');
      t.equal(m.express.live.length, 2, `${hoa}'s lane: the HA's channel both ways`);
      const agent = { family: 4, address: HA4, port: HA_PORT, source: undefined };
      t.same(mrx?.path, agent, 'MN rx: from the HA locator');
      t.same(mtx?.path, agent, 'MN tx: to the HA locator');
      t.equal(mrx?.addresses, null, 'MN rx: the lane checks our home address');
      t.equal(mrx?.localSpi, mk.localSpi, 'MN: the current keys');
      t.equal(mrx?.localSpi, keys.remoteSpi, "MN: the HA's channel");
      t.equal(mtx?.remoteSpi, keys.localSpi);
      // An initiator's keys: receive until 3 rekey timeouts before the reject point, send until
      // the rekey point (JS rekeys then), counted from the arming.
      const mAge = T0 + mrx!.at - mk.createdAt;
      const timers = DEFAULT_TIMERS;
      t.equal(mrx?.forMs, timers.rejectAfterTimeMs - 3 * timers.rekeyTimeoutMs - mAge);
      t.equal(mtx?.forMs, timers.rekeyAfterTimeMs - (T0 + mtx!.at - mk.createdAt));
      t.equal(mtx?.limit, timers.rekeyAfterMessages, 'MN tx: rekey message limit');
      const status = m.express.during('status', () => m.mn.status());
      const home = status.bindingUpdateList.find((e) => e.kind === 'home');
      t.equal(mtx?.maxInner, home?.pathMtu?.maxInner, "MN tx: the HA path's MTU");
      t.equal(m.express.live.length, 0, 'a status request empties the lane');
    }
    t.same(problems, [], 'every callback emptied the lane first and left only what holds');
  },
);

void t.test('every home agent callback empties the lane first', async (t) => {
  const { w, problems } = await haWorld(t);
  const a = await member(w, problems, HOA, MN4);
  const b = await member(w, problems, HOA2, MN4B);
  const ha = w.haExpress!;
  for (let i = 0; i < 20; i++) {
    await exchange(w, a, HOA, 1);
    await exchange(w, b, HOA2, 1);
    await w.run(200, 5);
  }
  const armedAt = new Set(ha.callbacks.filter((c) => c.armedAtEntry > 0).map((c) => c.label));
  t.ok(armedAt.has('udp4') && armedAt.has('tun') && armedAt.has('timer'), 'datagrams, TUN, timer');

  const calls: [string, () => unknown][] = [
    ['status', () => w.ha.status()],
    ['reload', () => w.ha.setDiscovery(w.ha.discovery)],
    ['revoke nobody', () => w.ha.revokeMembers(() => false)],
    ['cluster agents', () => w.ha.setClusterAgents(w.ha.discovery.homeAgents)],
    ['cluster peers', () => w.ha.setClusterPeers([])],
  ];
  for (const [label, call] of calls) {
    await exchange(w, a, HOA, 1);
    t.ok(ha.live.length > 0, `armed before ${label}`);
    ha.during(label, call);
    t.equal(ha.live.length, 0, `${label}: the lane is empty`);
  }

  // A revoked member: its channel closed, its binding gone; the lane never takes it again.
  await exchange(w, a, HOA, 1);
  await exchange(w, b, HOA2, 1);
  const revoked = channelOf(w, HOA2).session;
  const revokedSpi = revoked.current!.localSpi;
  t.ok(ha.liveArm('rx', revokedSpi), 'the member to revoke is armed');
  const since = ha.arms.length;
  const names = ha.during('revoke', () =>
    w.ha.revokeMembers((k) => Buffer.from(k).equals(Buffer.from(b.key.publicKey))),
  );
  t.equal(names.length, 1, 'revoked');
  t.equal(ha.live.length, 0, 'revocation: the lane is empty');
  t.ok(revoked.closed, 'its channel is closed');
  await exchange(w, b, HOA2, 2);
  await exchange(w, a, HOA, 2);
  const after = ha.arms.slice(since);
  t.ok(after.length > 0, 'the other member is armed again');
  t.notOk(
    after.some((x) => x.localSpi === revokedSpi || x.addresses?.includes(HOA2)),
    'never the revoked channel or its home address',
  );

  // A removal (another HA of the cluster took the binding over).
  await exchange(w, a, HOA, 1);
  t.ok(armsFor(ha, HOA).length > 0, 'armed before the removal');
  ha.during('removal', () => w.ha.clusterTookOver(HOA, 'ha-2'));
  t.equal(ha.live.length, 0, 'removal: the lane is empty');
  await exchange(w, a, HOA, 2);
  t.equal(armsFor(ha, HOA).length, 0, 'a removed binding is not armed again');
  t.same(problems, []);
});

void t.test('a deregistration leaves nothing armed for the binding', async (t) => {
  const { w, problems } = await haWorld(t);
  const m = await member(w, problems, HOA, MN4);
  await exchange(w, m, HOA);
  const ha = w.haExpress!;
  t.equal(armsFor(ha, HOA).length, 2, 'armed both ways');
  let removedIn: ExpressCallback | undefined;
  const check = ha.afterEach!;
  ha.afterEach = (cb) => {
    check(cb);
    if (removedIn === undefined && w.ha.cache.get(HOA) === undefined) removedIn = cb;
  };
  let closed = false;
  const closing = m.mn.close().then(() => (closed = true));
  t.equal(m.express.closed, true, "the member's lane closes first");
  t.equal(m.express.live.length, 0, 'and holds nothing');
  await w.until(() => closed, 3_000);
  await closing;
  t.equal(removedIn?.label, 'udp4', 'the deregistration came in a datagram callback');
  t.ok((removedIn?.armedAtEntry ?? 0) > 0, 'with the lane armed');
  t.equal(armsFor(ha, HOA).length, 0, 'nothing armed for it after that callback');
  t.same(problems, []);
});

void t.test('an expired binding is not armed again, even when only the lane carried', async (t) => {
  const { w, problems } = await haWorld(t, { maxLifetime: 8 });
  const m = await member(w, problems, HOA, MN4, { lifetime: 8 });
  await exchange(w, m, HOA);
  const ha = w.haExpress!;
  const spi = channelOf(w, HOA).session.current!.localSpi;
  let expiredIn: ExpressCallback | undefined;
  const check = ha.afterEach!;
  ha.afterEach = (cb) => {
    check(cb);
    if (expiredIn === undefined && w.ha.cache.get(HOA) === undefined) expiredIn = cb;
  };
  // The member falls silent (no refresh reaches the HA); payload flows through the lane alone.
  m.udp4.sendConditions = { loss: 1 };
  let carried = 0;
  for (let i = 0; i < 100 && w.ha.cache.get(HOA) !== undefined; i++) {
    if (ha.liveArm('tx', spi) !== undefined) {
      ha.carry(spi, { tx: 1, txBytes: 100 });
      carried++;
    }
    await w.run(100, 5);
  }
  t.equal(w.ha.cache.get(HOA), undefined, 'the binding expired');
  t.ok(carried > 10, `the lane carried until then (${carried} times)`);
  t.equal(expiredIn?.label, 'timer', 'in the timer');
  t.ok((expiredIn?.armedAtEntry ?? 0) > 0, 'which found the lane armed');
  t.equal(armsFor(ha, HOA).length, 0, 'nothing armed for it after that');
  w.haTun.inject(echo(SERVER, HOA, seq++));
  await w.run(20);
  t.equal(ha.live.length, 0, 'nor after more payload for it');
  t.same(problems, []);
});

void t.test('a move: nothing armed for the new locator until it is validated', async (t) => {
  const { w, problems } = await haWorld(t);
  const m = await member(w, problems, HOA, MN4);
  await exchange(w, m, HOA);
  const ha = w.haExpress!;
  t.equal(ha.liveArm('rx')?.path.address, MN4, 'armed at the first locator');
  t.ok(m.express.live.length > 0, "the member's lane is armed");
  // The HA's answers (BA, challenge) take a while: the new locator stays unvalidated meanwhile.
  w.haUdp4.sendConditions = { delayMs: 300 };
  const NEW = '203.0.113.77';
  w.net.move(m.udp4, NEW);
  let armedAtMove: number | undefined;
  m.mn.on((event) => {
    if (event === 'move') armedAtMove = m.express.live.length;
  });
  m.careOf.candidates = [{ family: 4, localAddress: NEW }];
  m.careOf.changed();
  const moved = await w.until(() => m.mn.counters.moves === 1, 100);
  t.ok(moved >= 0, 'the member moved');
  t.equal(armedAtMove, 0, "the member's lane was empty as it moved");
  await w.until(() => w.ha.cache.get(HOA)?.locator.address === NEW, 100);
  const { bound } = channelOf(w, HOA);
  t.not(bound.data, bound, 'the HA has the new locator, not validated yet');
  const inBefore = w.ha.counters.tunnelPacketsIn;
  const outBefore = w.ha.counters.tunnelPacketsOut;
  for (let i = 0; i < 5; i++) {
    m.tun.inject(echo(HOA, SERVER, seq++));
    w.haTun.inject(echo(SERVER, HOA, seq++));
    await w.run(20);
  }
  const now = channelOf(w, HOA).bound;
  t.not(now.data, now, 'still not validated');
  t.ok(w.ha.counters.tunnelPacketsIn > inBefore, 'JS forwarded payload from the new locator');
  t.ok(w.ha.counters.tunnelPacketsOut > outBefore, 'and payload to the member');
  t.equal(ha.live.length, 0, 'nothing armed meanwhile');
  t.notOk(
    ha.arms.some((x) => x.path.address === NEW),
    'never the new locator',
  );
  w.haUdp4.sendConditions = {};
  const validated = await w.until(() => {
    const p = channelOf(w, HOA).bound;
    return p.data === p;
  }, 2_000);
  t.ok(validated >= 0, 'validated');
  await exchange(w, m, HOA);
  t.same(ha.liveArm('rx')?.path, { family: 4, address: NEW, port: m.udp4.localPort, source: HA4 });
  t.equal(ha.liveArm('tx')?.path.address, NEW, 'both ways, once validated');
  t.same(problems, []);
});

void t.test('a datagram from another port of the member: no receive armed there', async (t) => {
  const { w, problems } = await haWorld(t);
  const m = await member(w, problems, HOA, MN4);
  await exchange(w, m, HOA);
  const ha = w.haExpress!;
  const port = m.udp4.localPort;
  t.equal(ha.liveArm('rx')?.path.port, port, 'receive armed at the bound port');
  // A NAT rebinding: the member's datagrams come from another port; the HA's hint (a Binding
  // Refresh Request there) takes a while, so the binding stays at the old port meanwhile.
  w.haUdp4.sendConditions = { delayMs: 300 };
  w.net.move(m.udp4, MN4, port + 1);
  const inBefore = w.ha.counters.tunnelPacketsIn;
  for (let i = 0; i < 3; i++) {
    m.tun.inject(echo(HOA, SERVER, seq++));
    await w.run(20);
  }
  t.ok(w.ha.counters.tunnelPacketsIn > inBefore, 'JS forwarded its payload');
  t.equal(channelOf(w, HOA).bound.port, port, 'the binding is still at the old port');
  t.equal(ha.liveArm('rx'), undefined, 'no receive armed: the channel is heard elsewhere');
  w.haUdp4.sendConditions = {};
  const followed = await w.until(() => {
    const b = channelOf(w, HOA).bound;
    return b.port === port + 1 && b.data === b;
  }, 2_000);
  t.ok(followed >= 0, 'the binding followed, validated');
  await exchange(w, m, HOA);
  t.equal(ha.liveArm('rx')?.path.port, port + 1, 'then armed at the new port');
  t.same(problems, []);
});

void t.test('a binding waiting for DAD is not armed', async (t) => {
  const { w, problems } = await haWorld(t);
  w.homeLink.holdDetections = true;
  const m = w.mobileNode({ homeAddress: HOA, address4: MN4, address6: '2001:db8:3::10' });
  m.careOf.candidates = [{ family: 4, localAddress: MN4 }];
  m.mn.start();
  await w.until(() => w.ha.cache.get(HOA) !== undefined && w.homeLink.detections.length === 1);
  const { bound } = channelOf(w, HOA);
  t.equal(bound.data, bound, 'bound at a validated locator');
  const out = w.ha.counters.tunnelPacketsOut;
  for (let i = 0; i < 5; i++) {
    w.haTun.inject(echo(SERVER, HOA, seq++));
    await w.run(10);
  }
  t.ok(w.ha.counters.tunnelPacketsOut > out, 'JS sent payload to the member meanwhile');
  t.equal(w.haExpress!.arms.length, 0, 'nothing armed while DAD runs');
  w.homeLink.releaseDetections();
  await w.until(() => m.mn.registration.state === 'registered');
  for (let i = 0; i < 3; i++) {
    w.haTun.inject(echo(SERVER, HOA, seq++));
    await w.run(20);
  }
  t.same(w.haExpress!.liveArm('tx')?.addresses, [HOA], 'armed once DAD said the address is free');
  t.same(problems, []);
});

void t.test('a capture keeps every packet in JS', async (t) => {
  const { w, problems } = await haWorld(t);
  const m = await member(w, problems, HOA, MN4);
  await exchange(w, m, HOA);
  t.ok(w.haExpress!.live.length > 0 && m.express.live.length > 0, 'both lanes armed');
  const captured = { ha: 0, mn: 0 };
  w.haEnv.capture = { write: () => void captured.ha++, close: () => {} };
  m.env.capture = { write: () => void captured.mn++, close: () => {} };
  await exchange(w, m, HOA);
  t.ok(captured.ha >= 6 && captured.mn >= 6, `captured (${captured.ha}, ${captured.mn})`);
  t.equal(w.haExpress!.live.length, 0, 'the HA arms nothing');
  t.equal(m.express.live.length, 0, 'the member arms nothing');
  w.haEnv.capture = undefined;
  m.env.capture = undefined;
  await exchange(w, m, HOA);
  t.ok(w.haExpress!.live.length > 0 && m.express.live.length > 0, 'armed again without one');
  t.same(problems, []);
});

void t.test('a rekey: nothing armed during the handshake, then the new keys', async (t) => {
  const { w, problems } = await haWorld(t);
  const m = await member(w, problems, HOA, MN4);
  await exchange(w, m, HOA);
  const session = haSession(m)!;
  const oldSpi = session.current!.localSpi;
  const haOldSpi = channelOf(w, HOA).session.current!.localSpi;
  // Payload every second until the member's keys are due for a rekey; then its next payload
  // asks for the handshake.
  const createdAt = session.current!.createdAt;
  while (T0 + w.clock.now() - createdAt < DEFAULT_TIMERS.rekeyAfterTimeMs) {
    m.tun.inject(echo(HOA, SERVER, seq++));
    await w.run(1_000, 50);
  }
  m.tun.inject(echo(HOA, SERVER, seq++));
  t.equal(session.pending, null, 'the payload asked for a handshake, not started yet');
  t.equal(m.express.live.length, 0, 'that payload leaves nothing armed (a handshake wanted)');
  const out = await w.until(() => session.pending !== null, 100);
  t.ok(out >= 0, `a handshake is in flight ${out} ms later`);
  t.equal(session.current!.localSpi, oldSpi, 'the old keys still current');
  // Payload both ways while it is: JS carries it under the old keys, the lane gets none of it.
  m.tun.inject(echo(HOA, SERVER, seq++));
  t.not(session.pending, null, 'still in flight');
  t.equal(m.express.live.length, 0, 'the member arms nothing during the handshake');
  const handshakeCallbacks = m.express.callbacks.filter((c) => c.label === 'tun').at(-1);
  t.ok(
    handshakeCallbacks?.ops.some((o) => o.op === 'io'),
    'JS sent it',
  );
  await w.until(() => session.pending === null, 1_000);
  t.not(session.current!.localSpi, oldSpi, 'new keys');
  await exchange(w, m, HOA, 2);
  t.equal(m.express.liveArm('tx')?.localSpi, session.current!.localSpi, 'armed: the new SPI');
  const haNow = channelOf(w, HOA).session.current!;
  t.not(haNow.localSpi, haOldSpi, 'the HA has the new keys too');
  t.equal(w.haExpress!.liveArm('rx')?.localSpi, haNow.localSpi, 'and arms them');
  t.same(problems, []);
});

void t.test("what the lane carried reaches the home agent's counters", async (t) => {
  const { w, problems } = await haWorld(t);
  const m = await member(w, problems, HOA, MN4);
  await exchange(w, m, HOA);
  const ha = w.haExpress!;
  const { session } = channelOf(w, HOA);
  const spi = session.current!.localSpi;
  const entry = w.ha.cache.get(HOA)!;
  const before = {
    binding: { ...entry.counters },
    lastUsedAt: entry.lastUsedAt!,
    session: [session.packetsIn, session.bytesIn, session.packetsOut, session.bytesOut],
    tunnel: { ...w.ha.counters },
    badTag: w.haEndpoint.drops['bad-tag'],
  };
  const t1 = w.clock.now();
  ha.carry(spi, { rx: 5, rxBytes: 500, at: t1 + 1 });
  ha.carry(spi, { tx: 3, txBytes: 300, at: t1 + 2 });
  ha.carry(spi, { badTags: 2, sendErrors: 1, tunErrors: 4 });
  w.clock.advance(3); // nothing due: no callback runs
  const status = ha.during('status', () => w.ha.status());
  t.same(
    { ...entry.counters },
    {
      packetsIn: before.binding.packetsIn + 5,
      bytesIn: before.binding.bytesIn + 500,
      packetsOut: before.binding.packetsOut + 3,
      bytesOut: before.binding.bytesOut + 300,
    },
    "the binding's counters",
  );
  t.equal(entry.lastUsedAt, T0 + t1 + 2, 'lastUsedAt: the last packet the lane carried');
  t.ok(entry.lastUsedAt! > before.lastUsedAt, 'later than JS last saw one');
  t.same(
    [session.packetsIn, session.bytesIn, session.packetsOut, session.bytesOut],
    [
      before.session[0]! + 5,
      before.session[1]! + 500,
      before.session[2]! + 3,
      before.session[3]! + 300,
    ],
    "the channel's counters",
  );
  t.equal(w.ha.counters.tunnelPacketsIn, before.tunnel.tunnelPacketsIn + 5);
  t.equal(w.ha.counters.tunnelBytesIn, before.tunnel.tunnelBytesIn + 500);
  t.equal(w.ha.counters.tunnelPacketsOut, before.tunnel.tunnelPacketsOut + 3);
  t.equal(w.ha.counters.tunnelBytesOut, before.tunnel.tunnelBytesOut + 300);
  t.equal(w.haEndpoint.drops['bad-tag'], before.badTag + 2, 'bad tags: channel drops');
  t.equal(session.drops['bad-tag'], 2, "the channel's own bad-tag count");
  t.equal(w.ha.drops.get('udp-send'), 1, 'send errors: udp-send drops');
  t.equal(w.ha.drops.get('tun-write'), 4, 'TUN errors: tun-write drops');
  const shown = status.bindings?.find((b) => b.homeAddress === HOA);
  t.equal(shown?.packetsIn, before.binding.packetsIn + 5, 'status shows them');
  t.equal(status.counters?.expressRxTaken, 5, "and the lane's own counters");
  t.same(problems, []);
});

void t.test("payload mostly through the lanes keeps both sides' path MTU confirmed", async (t) => {
  const { w, problems } = await haWorld(t);
  const m = await member(w, problems, HOA, MN4);
  await exchange(w, m, HOA);
  await w.run(2_000, 10); // both searches done
  const ha = w.haExpress!;
  const probes = (): [number, number] => [
    Number(ha.during('status', () => w.ha.status()).counters?.probesSent),
    Number(m.express.during('status', () => m.mn.status()).counters?.probesSent),
  ];
  await exchange(w, m, HOA); // armed again after the status requests
  const before = probes();
  await exchange(w, m, HOA);
  // 100 s of payload both ways, each packet through the lanes when both ends are armed for it
  // (JS then sees nothing of it), else through JS.
  const mn = m.express;
  let laned = 0;
  let js = 0;
  for (let i = 0; i < 100; i++) {
    const up = [mn.liveArm('tx'), ha.liveArm('rx')] as const;
    if (up[0] !== undefined && up[1] !== undefined) {
      mn.carry(up[0].localSpi, { tx: 1, txBytes: 104 });
      ha.carry(up[1].localSpi, { rx: 1, rxBytes: 104 });
      laned++;
    } else {
      m.tun.inject(echo(HOA, SERVER, seq++));
      js++;
    }
    await w.run(10);
    const down = [ha.liveArm('tx'), mn.liveArm('rx')] as const;
    if (down[0] !== undefined && down[1] !== undefined) {
      ha.carry(down[0].localSpi, { tx: 1, txBytes: 104 });
      mn.carry(down[1].localSpi, { rx: 1, rxBytes: 104 });
      laned++;
    } else {
      w.haTun.inject(echo(SERVER, HOA, seq++));
      js++;
    }
    await w.run(990, 10);
  }
  t.ok(laned > 150, `the lanes carried ${laned} packets, JS ${js}`);
  const after = probes();
  // One confirmation per CONFIRM_INTERVAL_MS (30 s) each side: without the lane's traffic
  // mark, probing rests after the first one (an idle path).
  t.ok(after[0] - before[0] >= 3, `the HA confirmed ${after[0] - before[0]} times`);
  t.ok(after[1] - before[1] >= 3, `the member confirmed ${after[1] - before[1]} times`);
  t.same(problems, []);
});

void t.test("the member's timer harvests the lane without emptying it", async (t) => {
  const { w, problems } = await haWorld(t);
  const m = await member(w, problems, HOA, MN4);
  await exchange(w, m, HOA);
  const lane = m.express;
  const armed = [...lane.live];
  const spi = armed[0]!.localSpi;
  const session = haSession(m)!;
  const before = {
    counters: { ...m.mn.counters },
    session: [session.packetsIn, session.bytesIn, session.packetsOut, session.bytesOut],
  };
  // A ping through the lane: out, then the answer in.
  const t1 = w.clock.now();
  lane.carry(spi, { tx: 1, txBytes: 104, at: t1 + 5 });
  lane.carry(spi, { rx: 1, rxBytes: 104, at: t1 + 10 });
  const callbacks = lane.callbacks.length;
  const every = expressHarvestMs(undefined);
  await w.run(every + 50, 5);
  const timers = lane.callbacks.slice(callbacks).filter((c) => c.label === 'timer');
  t.equal(timers[0]?.at, armed.at(-1)!.at + every, `the timer fired ${every} ms after the arming`);
  t.same(
    timers[0]?.ops.map((o) => o.op),
    ['harvest'],
    'and only harvested (a send answered by a receive needs no re-arm)',
  );
  t.same(lane.live, armed, 'the lane stays armed');
  t.equal(m.mn.counters.tunnelPacketsIn, before.counters.tunnelPacketsIn + 1, 'counted in');
  t.equal(m.mn.counters.tunnelBytesIn, before.counters.tunnelBytesIn + 104);
  t.equal(m.mn.counters.tunnelPacketsOut, before.counters.tunnelPacketsOut + 1, 'counted out');
  t.equal(m.mn.counters.tunnelBytesOut, before.counters.tunnelBytesOut + 104);
  t.same(
    [session.packetsIn, session.bytesIn, session.packetsOut, session.bytesOut],
    [
      before.session[0]! + 1,
      before.session[1]! + 104,
      before.session[2]! + 1,
      before.session[3]! + 104,
    ],
    "the channel's counters",
  );
  // Errors the lane met reach the member's drops.
  lane.carry(spi, { badTags: 3, sendErrors: 2, tunErrors: 1 });
  await w.run(every, 5);
  t.equal(session.drops['bad-tag'], 3, 'bad tags: channel drops');
  t.equal(m.mn.drops.get('udp-send'), 2, 'send errors: udp-send drops');
  t.equal(m.mn.drops.get('tun-write'), 1, 'TUN errors: tun-write drops');
  t.same(problems, []);
});

/**
 * The HA falls silent after the lane carried a receive and a send, `last` of them the later one
 * (10 ms apart); returns when the member probed (-1: not within 8 s) and when the receive was.
 */
async function silentAfter(
  t: Test,
  last: 'rx' | 'tx',
): Promise<{ probedAt: number | undefined; heardAt: number; problems: string[] }> {
  const { w, problems } = await haWorld(t);
  const m = await member(w, problems, HOA, MN4);
  await exchange(w, m, HOA);
  await w.run(100);
  const lane = m.express;
  const spi = lane.live[0]!.localSpi;
  w.haUdp4.sendConditions = { loss: 1 };
  const t1 = w.clock.now();
  const heardAt = last === 'tx' ? t1 : t1 + 10;
  lane.carry(spi, { rx: 1, rxBytes: 104, at: heardAt });
  lane.carry(spi, { tx: 1, txBytes: 104, at: last === 'tx' ? t1 + 10 : t1 });
  await w.until(() => m.events.some((e) => e.event === 'probe'), 8_000, 10);
  return { probedAt: m.events.find((e) => e.event === 'probe')?.at, heardAt, problems };
}

void t.test('a lane send after the last lane receive keeps the silence deadline', async (t) => {
  const { probedAt, heardAt, problems } = await silentAfter(t, 'tx');
  t.equal(probedAt, heardAt + 5_000, 'a probe, probeInterval after the last receive');
  t.same(problems, []);
});

void t.test('a lane receive after its last send starts no silence deadline', async (t) => {
  const { probedAt, problems } = await silentAfter(t, 'rx');
  t.equal(probedAt, undefined, 'no probe: the last thing the lane saw was the HA');
  t.same(problems, []);
});

void t.test('a member with route optimization never arms its lane', async (t) => {
  const { w, problems } = await haWorld(t);
  const m = await member(w, problems, HOA, MN4, {
    peerRoles: ['ha', 'cn', 'mn'],
    routeOptimization: { respond: false, correspondents: [] },
  });
  await exchange(w, m, HOA, 5);
  t.ok(w.haExpress!.live.length > 0, 'the HA arms its side of the channel');
  t.ok(m.mn.counters.tunnelPacketsIn >= 5, 'payload reached the member through the HA');
  t.equal(m.express.arms.length, 0, 'the member arms nothing');
  t.same(problems, []);
});

/** IPv4 payload both ways between `a4` and WEB4, `n` rounds, through JS. */
async function exchange4(w: World, m: MnHandle, a4: string, n = 3): Promise<void> {
  for (let i = 0; i < n; i++) {
    m.tun.inject(ipv4Udp(a4, WEB4, seq++));
    await w.run(20);
    w.haTun.inject(ipv4Udp(WEB4, a4, seq++));
    await w.run(20);
  }
}

void t.test(
  'an IPv4 home address (RFC 5555) is armed mapped once JS carried IPv4, never once released',
  async (t) => {
    const { w, problems } = await haWorld(t, { ipv4Pool: POOL4 });
    const ha = w.haExpress!;
    const ask = { options: { ipv4HomeAddress: 'auto' } };
    const a = await member(w, problems, HOA, MN4, ask);
    const granted = a.events.find((e) => e.event === 'ipv4-home-address')?.fields['address'];
    t.equal(granted, '10.99.0.2', 'granted from the pool');
    const A4 = mapped('10.99.0.2');
    t.equal(A4, '::ffff:10.99.0.2');

    // IPv6 only so far: the HA arms the IPv6 home address alone; the MN its IPv4 one already
    // (the HA's channel may deliver to it).
    await exchange(w, a, HOA);
    const keys = channelOf(w, HOA).session.current!;
    t.same(ha.liveArm('rx', keys.localSpi)?.addresses, [HOA], 'HA rx: IPv6 only before IPv4');
    t.same(ha.liveArm('tx', keys.localSpi)?.addresses, [HOA], 'HA tx: IPv6 only before IPv4');
    t.same(a.express.liveArm('rx')?.addresses, [A4], 'MN rx: its IPv4 home address, mapped');
    t.equal(a.express.liveArm('tx')?.addresses, null, 'MN tx: every destination');

    // IPv4 both ways through JS: the HA arms it next to the IPv6 one, each direction.
    await exchange4(w, a, '10.99.0.2');
    await exchange(w, a, HOA, 1);
    t.same(ha.liveArm('rx', keys.localSpi)?.addresses, [HOA, A4], 'HA rx: both home addresses');
    t.same(ha.liveArm('tx', keys.localSpi)?.addresses, [HOA, A4], 'HA tx: both home addresses');
    t.same(a.express.liveArm('rx')?.addresses, [A4], 'MN rx: still its IPv4 home address');

    // IPv4 one way only: that direction alone (a fresh channel after a re-registration).
    const b = await member(w, problems, HOA2, MN4B, ask);
    t.equal(b.events.find((e) => e.event === 'ipv4-home-address')?.fields['address'], '10.99.0.3');
    await exchange(w, b, HOA2);
    for (let i = 0; i < 3; i++) {
      b.tun.inject(ipv4Udp('10.99.0.3', WEB4, seq++));
      await w.run(20);
    }
    await exchange(w, b, HOA2, 1);
    const bk = channelOf(w, HOA2).session.current!;
    t.same(ha.liveArm('rx', bk.localSpi)?.addresses, [HOA2, mapped('10.99.0.3')], 'B rx: both');
    t.same(ha.liveArm('tx', bk.localSpi)?.addresses, [HOA2], 'B tx: no IPv4 sent to it yet');

    // A deregisters: its IPv4 home address is released with the binding.
    const key = w.ha.cache.get(HOA)!.key;
    let closed = false;
    const closing = a.mn.close(5000).then(() => (closed = true));
    await w.until(() => closed, 3_000);
    await closing;
    t.equal(w.ha.ipv4.addressOf(key), undefined, 'released');
    t.equal(ha.live.filter((x) => x.addresses?.includes(A4)).length, 0, 'nothing armed for it');

    // The same home address registers again without asking for an IPv4 one; IPv4 payload of
    // the released address both ways (the HA drops it): nothing arms that address any more.
    const since = ha.arms.length;
    const again = await member(w, problems, HOA, MN4);
    await exchange(w, again, HOA);
    await exchange4(w, again, '10.99.0.2');
    await exchange(w, again, HOA);
    await exchange(w, b, HOA2);
    const later = ha.arms.slice(since);
    t.ok(
      later.some((x) => x.addresses?.includes(HOA)),
      'the IPv6 home address is armed again',
    );
    t.notOk(
      later.some((x) => x.addresses?.includes(A4)),
      'the released IPv4 home address is never armed',
    );
    t.ok(w.ha.drops.get('no-binding-ipv4') > 0, 'its IPv4 payload was dropped by JS');
    t.same(again.express.liveArm('rx')?.addresses ?? null, null, 'MN rx: no IPv4 address');
    t.same(problems, [], 'every callback emptied the lane first and left only what holds');
  },
);
