/**
 * The HA's path MTU state belongs to a member's channel, not to one of its bindings (issue #21
 * review): a member with two home addresses (two bindings on one channel) deregisters one;
 * the other keeps a live path MTU state, still confirmed by probes, rather than a detached one
 * that no probe or report reaches any more.
 * An idle member's path is not confirmed (RFC 8899 lets probing rest while no payload goes,
 * issue 17); payload to it resumes the confirmations at once. Its finished search is then kept
 * as a size only, and made back the same with payload.
 */
import t from 'tap';
import { DataKind } from '../../src/crypto/aead.js';
import type { PeerSession } from '../../src/crypto/endpoint.js';
import type { PathMtuStatus } from '../../src/io/control-protocol.js';
import {
  CONFIRM_INTERVAL_MS,
  decodePathMtuMessage,
  encodeProbeAck,
  PathMtuState,
} from '../../src/protocol/path-mtu.js';
import { type HaChannel, haChannelIfAny } from '../../src/roles/ha/ha-channel.js';
import { encodeMobilityPacket } from '../../src/wire/packet.js';
import { bindingUpdateFlags } from '../../src/wire/types.js';
import { endpoint, memberKey, T0 } from '../helpers/crypto.js';
import { echo } from '../helpers/packets.js';
import { HA4, HA_HOME_ADDRESS, HA_PORT, World } from '../helpers/world.js';

const HOA1 = '2001:db8:100::21';
const HOA2 = '2001:db8:100::22';
const MN4 = '203.0.113.21';

/** A member on the sim's network that answers the HA's probes, and its BU sender. */
async function member(
  w: World,
  name: string,
  key: number,
  addresses: string[],
): Promise<{ bu: (hoa: string, lifetimeUnits: number) => void; probes: () => number }> {
  const ep = endpoint(w.ca, { name, role: 'mn', key: memberKey(key), addresses }, ['ha']);
  const udp = w.net.endpoint({ address: MN4 });
  const now = (): number => T0 + w.clock.now();
  let session: PeerSession | undefined;
  let probes = 0;
  udp.onDatagrams((batch) => {
    for (let i = 0; i < batch.count; i++) {
      const copy = batch.packet(i).slice();
      const r = ep.receive(copy, now());
      if (r.kind === 'established') session = r.session;
      if (r.kind !== 'data' || session === undefined) continue;
      const m = decodePathMtuMessage(copy, r.offset, r.length);
      if (m?.type !== 'probe') continue;
      probes++; // answered like a member does: the HA confirms the size
      const ack = ep.seal(session, encodeProbeAck(m.id, m.size), now(), DataKind.SIGNALING);
      if (ack !== null) udp.send(ack, HA4, HA_PORT);
    }
  });
  udp.send(ep.connect(w.haKey.publicKey, now()), HA4, HA_PORT);
  await w.until(() => session !== undefined, 1000);
  let seq = 1;
  const bu = (hoa: string, lifetimeUnits: number): void => {
    const packet = encodeMobilityPacket({
      source: hoa,
      destination: HA_HOME_ADDRESS,
      message: {
        kind: 'bindingUpdate',
        sequence: seq++,
        flags: bindingUpdateFlags({ A: true, H: true }),
        lifetimeUnits,
        options: [{ type: 'ipv4CareOfAddress', address: MN4 }],
      },
    });
    const sealed = ep.seal(session!, packet, now(), DataKind.SIGNALING);
    if (sealed === null) throw new Error('seal failed');
    udp.send(sealed, HA4, HA_PORT);
  };
  return { bu, probes: () => probes };
}

void t.test('removing one of two bindings of a channel keeps its path MTU state', async (t) => {
  const w = await World.create();
  const m = await member(w, 'two-homes', 0x71, [HOA1, HOA2]);
  const bu = m.bu;
  bu(HOA1, 150);
  bu(HOA2, 150);
  await w.until(() => w.ha.cache.get(HOA1) !== undefined && w.ha.cache.get(HOA2) !== undefined);
  // The search runs and ends (every probe acked).
  await w.run(10_000, 50);
  t.ok(m.probes() > 0, `the HA probed the member's path (${m.probes()})`);

  bu(HOA2, 0);
  await w.until(() => w.ha.cache.get(HOA2) === undefined, 1000);
  t.ok(w.ha.cache.get(HOA1), 'the other binding stays');
  // Payload to the member (from the home side) every 5 s: its path is in use.
  const before = m.probes();
  for (let i = 0; i < CONFIRM_INTERVAL_MS / 5000 + 1; i++) {
    w.haTun.inject(echo('2001:db8:300::5', HOA1, i + 1));
    await w.run(5000, 100);
  }
  t.ok(m.probes() > before, `its path is still confirmed by probes (${m.probes() - before} more)`);
  t.ok(w.ha.counters.tunnelPacketsOut > 0, 'the payload went to the member');

  // Then no payload: after the confirmation in flight, none for two intervals (all within the
  // keys' life, REJECT_AFTER_TIME: past it the HA probes nothing anyway).
  await w.run(CONFIRM_INTERVAL_MS + 5000, 100);
  const idleFrom = m.probes();
  await w.run(2 * CONFIRM_INTERVAL_MS, 1000);
  t.equal(m.probes(), idleFrom, 'no confirmation of an idle path in two intervals');
  // Payload again: a confirmation at once (within a second), not at the next interval.
  w.haTun.inject(echo('2001:db8:300::5', HOA1, 99));
  await w.run(1000, 50);
  t.equal(m.probes(), idleFrom + 1, 'payload resumes the confirmations');
});

void t.test(
  'an idle member keeps only its path MTU size, and gets it back with payload',
  async (t) => {
    // Issue 17: a finished search on an idle path is kept as a number on the channel record, not
    // as a PathMtuState; payload makes the state back with the same size and confirms it at once.
    const w = await World.create();
    const m = await member(w, 'one-home', 0x72, [HOA1]);
    m.bu(HOA1, 150);
    await w.until(() => w.ha.cache.get(HOA1) !== undefined);
    const record = (): HaChannel | undefined => {
      const s = w.haEndpoint.sessionByName('one-home');
      return s === undefined ? undefined : haChannelIfAny(s);
    };
    const pathMtu = (): PathMtuStatus | undefined =>
      w.ha.status().bindings.find((b) => b.homeAddress === HOA1)?.pathMtu;
    // The search ends (every probe acked) while a little payload goes.
    w.haTun.inject(echo('2001:db8:300::5', HOA1, 1));
    await w.run(5000, 50);
    const found = pathMtu();
    t.equal(found?.state, 'complete', 'the search ended');
    t.ok(record()?.mtu instanceof PathMtuState, 'a state while the path is in use');
    // Then no payload: probing rests and the state goes, its size stays.
    await w.run(2 * CONFIRM_INTERVAL_MS, 1000);
    t.equal(typeof record()?.mtu, 'number', 'idle: no PathMtuState, only its size');
    t.same(pathMtu(), found, 'the same path MTU in the status');
    // A refresh BU from the same locator leaves it so.
    m.bu(HOA1, 150);
    await w.run(1000, 50);
    t.equal(typeof record()?.mtu, 'number', 'a refresh BU makes no state');
    t.same(pathMtu(), found);
    // Payload again: the same size back, and a confirmation of it at once.
    const idleFrom = m.probes();
    const out = w.ha.counters.tunnelPacketsOut;
    w.haTun.inject(echo('2001:db8:300::5', HOA1, 2));
    await w.run(1000, 50);
    t.ok(w.ha.counters.tunnelPacketsOut > out, 'the payload went to the member');
    t.equal(m.probes(), idleFrom + 1, 'payload resumes the confirmations at once');
    t.ok(record()?.mtu instanceof PathMtuState, 'a state again while confirming');
    t.same(pathMtu(), found, 'the same size back');
    // Idle again: back to the number.
    await w.run(2 * CONFIRM_INTERVAL_MS, 1000);
    t.equal(typeof record()?.mtu, 'number', 'idle again: only the size');
  },
);
