/**
 * A binding belongs to the key that created it (issue #13, DESIGN.md §4), over fakes with the
 * real role code. Two certificates may hold the same home address: a replaced laptop whose old
 * certificate is still valid, or an `mn` certificate for the whole home prefix. Shown:
 *   - at the home agent, a BU from the second key (update or deregistration, with the owner's
 *     next sequence number) is refused with BA 129 and counted as 'binding-owner-mismatch' in
 *     the status drops; the binding (locator, care-of, sequence, owner, lifetime) and the
 *     owner's traffic are untouched; a full second MobileNode fails with 129;
 *   - the address is free again once the owner deregisters or its binding expires.
 * The same at a correspondent: test/sim/correspondent-attacks.test.ts.
 */
import t from 'tap';
import { DataKind } from '../../src/crypto/aead.js';
import type { PeerSession } from '../../src/crypto/endpoint.js';
import type { BindingCacheEntry } from '../../src/protocol/binding-cache.js';
import { decodePacket, encodeMobilityPacket } from '../../src/wire/packet.js';
import { bindingUpdateFlags } from '../../src/wire/types.js';
import { endpoint, memberKey, T0 } from '../helpers/crypto.js';
import {
  HA4,
  HA_HOME_ADDRESS,
  HA_PORT,
  HOME_PREFIX,
  World,
  type MnHandle,
} from '../helpers/world.js';
import { echo } from '../helpers/packets.js';

const HOA = '2001:db8:100::10';
const SERVER = '2001:db8:100::5';
const MN4 = '203.0.113.10';

/** The parts of a binding an attacker would want to change. */
function snapshot(e: BindingCacheEntry | undefined) {
  if (e === undefined) return undefined;
  return {
    locator: { ...e.locator },
    careOfAddress: e.careOfAddress,
    sequence: e.sequence,
    ownerKey: Buffer.from(e.ownerKey).toString('hex'),
    peerName: e.peerName,
    expiresAt: e.expiresAt,
    lifetimeSeconds: e.lifetimeSeconds,
  };
}

async function owner(w: World): Promise<MnHandle> {
  const m = w.mobileNode({ homeAddress: HOA, address4: MN4, address6: '2001:db8:3::10' });
  m.careOf.candidates = [{ family: 4, localAddress: MN4 }];
  m.mn.start();
  await w.until(() => m.mn.registration.state === 'registered');
  return m;
}

/**
 * A member driven by hand: its own certificate (`addresses`), a channel to the HA, and the
 * BA statuses it receives.
 */
async function handMember(
  w: World,
  name: string,
  keyByte: number,
  addresses: string[],
  address4: string,
) {
  const ep = endpoint(w.ca, { name, role: 'mn', key: memberKey(keyByte), addresses }, ['ha']);
  const udp = w.net.endpoint({ address: address4 });
  let session: PeerSession | undefined;
  const statuses: number[] = [];
  let data = 0;
  udp.onDatagrams((batch) => {
    for (let i = 0; i < batch.count; i++) {
      const copy = batch.packet(i).slice();
      const r = ep.receive(copy, T0 + w.clock.now());
      if (r.kind === 'established') session = r.session;
      // Path messages (validation, MTU probes) are sealed too and are not IPv6.
      if (r.kind !== 'data' || (copy[r.offset] ?? 0) >> 4 !== 6) continue;
      const p = decodePacket(copy.subarray(r.offset, r.offset + r.length));
      if (p.mobility?.kind === 'bindingAcknowledgement') statuses.push(p.mobility.status);
      else data++;
    }
  });
  udp.send(ep.connect(w.haKey.publicKey, T0 + w.clock.now()), HA4, HA_PORT);
  await w.until(() => session !== undefined, 1000);
  return {
    statuses,
    data: () => data,
    /** A home-registration BU for HOA from this member's own IPv4 care-of address. */
    bu(sequence: number, lifetimeUnits: number): void {
      const packet = encodeMobilityPacket({
        source: HOA,
        destination: HA_HOME_ADDRESS,
        message: {
          kind: 'bindingUpdate',
          sequence,
          flags: bindingUpdateFlags({ A: true, H: true }),
          lifetimeUnits,
          options: [{ type: 'ipv4CareOfAddress', address: address4 }],
        },
      });
      const sealed = ep.seal(session!, packet, T0 + w.clock.now(), DataKind.SIGNALING);
      if (sealed === null) throw new Error('seal failed');
      udp.send(sealed, HA4, HA_PORT);
    },
  };
}

void t.test(
  'HA: another key holding the home address cannot update or deregister the binding',
  async (t) => {
    const w = await World.create();
    const m = await owner(w);
    const before = snapshot(w.ha.cache.get(HOA));
    t.equal(before?.ownerKey, Buffer.from(m.key.publicKey).toString('hex'), 'owner recorded');
    const toMn: Uint8Array[] = [];
    m.tun.onKernelReceive((p) => toMn.push(p));

    const thieves = [
      await handMember(w, 'old-laptop', 0x90, [HOA], '198.51.100.66'),
      await handMember(w, 'prefix-mn', 0x91, [HOME_PREFIX], '198.51.100.67'),
    ];
    for (const thief of thieves) {
      // The owner's next sequence numbers: a takeover, then a deregistration.
      const seq = w.ha.cache.get(HOA)!.sequence;
      thief.bu((seq + 1) & 0xffff, 150);
      await w.run(20);
      thief.bu((seq + 2) & 0xffff, 0);
      await w.run(20);
      t.same(thief.statuses, [129, 129], 'both refused: administratively prohibited');
    }
    t.same(snapshot(w.ha.cache.get(HOA)), before, 'locator, care-of, sequence, owner unchanged');
    t.equal(w.ha.drops.get('binding-owner-mismatch'), 4, 'each refusal counted');
    t.equal(w.ha.status().drops?.['binding-owner-mismatch'], 4, 'visible in status --json');

    // The owner's traffic still goes to the owner, and only there.
    w.haTun.inject(echo(SERVER, HOA, 1));
    await w.run(20);
    t.equal(toMn.length, 1, 'home link -> owner delivered');
    t.equal(thieves[0]!.data() + thieves[1]!.data(), 0, 'nothing reached the other keys');
    // And the owner refreshes with its own next sequence as if nothing happened.
    m.careOf.candidates = [{ family: 4, localAddress: '203.0.113.11' }];
    w.net.move(m.udp4, '203.0.113.11');
    m.careOf.changed();
    await w.until(() => w.ha.cache.get(HOA)?.locator.address === '203.0.113.11', 1000);
    t.equal(w.ha.cache.get(HOA)?.locator.address, '203.0.113.11', 'the owner still moves it');
  },
);

void t.test(
  'HA: a second MobileNode for the same home address fails with 129 until the owner leaves',
  async (t) => {
    const w = await World.create();
    const m = await owner(w);
    const before = snapshot(w.ha.cache.get(HOA));
    const thief = w.mobileNode({
      homeAddress: HOA,
      address4: '198.51.100.66',
      address6: '2001:db8:3::66',
    });
    thief.careOf.candidates = [{ family: 4, localAddress: '198.51.100.66' }];
    thief.mn.start();
    await w.until(() => thief.events.some((e) => e.event === 'failed'));
    t.equal(thief.events.find((e) => e.event === 'failed')?.fields['status'], 129);
    t.same(snapshot(w.ha.cache.get(HOA)), before, 'the binding is untouched');
    t.ok(w.ha.drops.get('binding-owner-mismatch') >= 1, 'counted');

    // The owner deregisters (shuts down): the address is free for the other key's next try.
    let closed = false;
    const closing = m.mn.close(5000).then(() => (closed = true));
    await w.until(() => closed, 6000);
    await closing;
    t.equal(w.ha.cache.get(HOA), undefined, 'deregistered by its owner');
    thief.careOf.candidates = [{ family: 4, localAddress: '198.51.100.68' }];
    w.net.move(thief.udp4, '198.51.100.68');
    thief.careOf.changed();
    const took = await w.until(() => thief.mn.registration.state === 'registered', 5000);
    t.ok(took >= 0, `the other key registered ${took} ms after moving`);
    const e = w.ha.cache.get(HOA);
    t.equal(e?.locator.address, '198.51.100.68');
    t.same(e?.ownerKey, thief.key.publicKey, 'now owned by the other key');
  },
);

void t.test('HA: once the owner’s binding expires, another key may register', async (t) => {
  const w = await World.create({ maxLifetime: 40 });
  const m = await owner(w);
  const prefix = await handMember(w, 'prefix-mn', 0x91, [HOME_PREFIX], '198.51.100.67');
  prefix.bu(1, 150);
  await w.run(20);
  t.same(prefix.statuses, [129], 'refused while the binding lives');
  // The owner vanishes: nothing it sends arrives any more, its binding runs out.
  m.udp4.sendConditions = { loss: 1 };
  m.udp6.sendConditions = { loss: 1 };
  await w.run(41_000, 500);
  t.equal(w.ha.cache.get(HOA), undefined, 'expired');
  prefix.bu(2, 150);
  await w.run(20);
  t.same(prefix.statuses, [129, 0], 'accepted once the address is free');
  t.equal(w.ha.cache.get(HOA)?.peerName, 'prefix-mn');
});
