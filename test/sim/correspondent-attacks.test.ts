/**
 * Attacks on a correspondent's binding cache by a certified member (issue #13), over fakes with
 * the real role code:
 *   - binding owner: a second key whose certificate holds the same home address, and that
 *     completes a genuine return routability for it (it holds the HA binding once the first
 *     key's has expired), still cannot take the correspondent binding the first key created
 *     ('cn-binding-owner-mismatch') until that binding expires;
 *   - locator hijack: a member does return routability from its own locator, then sends its
 *     BU from a spoofed outer source (a third party's IP:port). The care-of token covers the
 *     locator the CoTI came from, so that BU does not verify: no binding, nothing streamed at
 *     the third party; a bound member's spoofed BU after a move leaves its binding as it was;
 *   - a BU without a Home Address option: a member whose certificate holds a prefix gets a HoT
 *     for an address of it and one care-of token, and sends the BU from that address with an
 *     Alternate CoA: refused, as is a BU whose HAO names an address its certificate lacks.
 * Each refusal is a counted drop in the CN's status.
 */
import t from 'tap';
import { DataKind } from '../../src/crypto/aead.js';
import type { PeerSession, SecureEndpoint } from '../../src/crypto/endpoint.js';
import { decodePacket, type DecodedPacket } from '../../src/wire/packet.js';
import type { CareOfTest, HomeTest } from '../../src/wire/types.js';
import { endpoint, memberKey, T0 } from '../helpers/crypto.js';
import { rrInit, rrTokens, signedCorrespondentBu } from '../helpers/rr.js';
import { World, type MnHandle } from '../helpers/world.js';
import { echo } from '../helpers/packets.js';

const CN_HOA = '2001:db8:100::20';
const CN4 = '203.0.113.130';
/** A home address two certificates hold (the laptop's, and its replacement's). */
const HOA = '2001:db8:100::10';
const MN4 = '203.0.113.10';
const ATT_HOA = '2001:db8:100::30';
const ATT4 = '192.0.2.30';
/** The third party the attacker wants the CN to stream at. */
const VICTIM4 = '198.51.100.99';
const VICTIM_PORT = 5555;

function decoded(p: Uint8Array): DecodedPacket | undefined {
  try {
    return decodePacket(p);
  } catch {
    return undefined;
  }
}

async function correspondent(w: World): Promise<MnHandle> {
  const cn = w.correspondent({ homeAddress: CN_HOA, address4: CN4, address6: '2001:db8:4::10' });
  cn.careOf.candidates = [{ family: 4, localAddress: CN4 }];
  cn.mn.start();
  await w.until(() => cn.mn.registration.state === 'registered');
  return cn;
}

void t.test(
  'locator hijack: a BU from a spoofed outer source binds nothing and moves nothing',
  async (t) => {
    const w = await World.create();
    w.routeHomePrefix();
    const cn = await correspondent(w);
    const att = w.routeOptimizingMember({
      homeAddress: ATT_HOA,
      address4: ATT4,
      address6: '2001:db8:3::30',
      cn,
      cnHomeAddress: CN_HOA,
      cnAddress4: CN4,
    });

    // The third party: whatever the CN sends to its address and port is counted.
    const victim = w.net.endpoint({ address: VICTIM4, port: VICTIM_PORT });
    let atVictim = 0;
    victim.onDatagrams((batch) => (atVictim += batch.count));

    // The attacker's member runs the real MN code; only its BUs to the CN leave from the
    // victim's address and port (a spoofed source), everything else from its own socket.
    let spoof = true;
    const bus = new WeakSet<Uint8Array>();
    const ep = att.endpoint as SecureEndpoint;
    const seal = ep.seal.bind(ep);
    ep.seal = (session, packet, now, kind) => {
      const msg = seal(session, packet, now, kind);
      const d = decoded(packet);
      if (msg !== null && d?.destination === CN_HOA && d.mobility?.kind === 'bindingUpdate')
        bus.add(msg);
      return msg;
    };
    const send = att.udp4.send.bind(att.udp4);
    let spoofed = 0;
    att.udp4.send = (data, address, port, source) => {
      if (!spoof || !bus.has(data)) return send(data, address, port, source);
      spoofed++;
      return victim.send(data, address, port);
    };

    att.mn.start();
    const ro = (): boolean => att.ro!.registration(CN_HOA)!.routeOptimized;
    const bindings = cn.ro!.bindings!;
    await w.until(() => spoofed >= 3, 20_000);
    await w.run(50); // let the last ones arrive
    t.ok(spoofed >= 3, `${spoofed} BUs sent from ${VICTIM4}:${VICTIM_PORT} after RR`);
    t.ok(att.ro!.registration(CN_HOA)!.status(0).lastCareOfTest !== 0, 'RR itself completed');
    t.equal(bindings.get(ATT_HOA), undefined, 'no binding at the CN');
    t.notOk(ro(), 'not route-optimized');
    t.ok(cn.ro!.drops.get('cn-bu-authenticator') >= 3, 'each spoofed BU dropped and counted');
    // CN -> attacker traffic keeps going through the HA, never to the third party.
    cn.tun.inject(echo(CN_HOA, ATT_HOA, 1));
    await w.run(50);
    t.equal(atVictim, 0, 'nothing (no BA, no data) went to the third party');

    // Control: the very next BU from the attacker's own locator is accepted.
    spoof = false;
    t.ok((await w.until(ro, 40_000)) >= 0, 'from its own locator: route-optimized');
    const locatorOf = (): string | undefined =>
      cn.mn.status().bindings?.find((b) => b.homeAddress === ATT_HOA)?.locator;
    const port = att.udp4.localPort;
    t.equal(locatorOf(), `${ATT4}:${port}`, 'bound to the locator that got the CoT');
    const before = { ...bindings.get(ATT_HOA)!, locator: locatorOf() };

    // Bound, the attacker moves and sends the new BU from the third party's address again.
    spoof = true;
    const dropsBefore = cn.ro!.drops.get('cn-bu-authenticator');
    const spoofedBefore = spoofed;
    w.net.move(att.udp4, '192.0.2.31');
    att.careOf.candidates = [{ family: 4, localAddress: '192.0.2.31' }];
    att.careOf.changed();
    await w.until(() => spoofed >= spoofedBefore + 2, 20_000);
    await w.run(50); // let the last ones arrive
    t.ok(spoofed >= spoofedBefore + 2, 'RR from the new locator, BUs from the spoofed one');
    t.ok(cn.ro!.drops.get('cn-bu-authenticator') >= dropsBefore + 2, 'dropped');
    const after = bindings.get(ATT_HOA)!;
    t.same(
      { careOf: after.careOfAddress, sequence: after.sequence, expiresAt: after.expiresAt },
      { careOf: before.careOfAddress, sequence: before.sequence, expiresAt: before.expiresAt },
      'care-of, sequence and lifetime unchanged',
    );
    t.same(after.ownerKey, att.key.publicKey, 'owner unchanged');
    t.equal(locatorOf(), before.locator, 'locator unchanged');
    cn.tun.inject(echo(CN_HOA, ATT_HOA, 2));
    await w.run(50);
    t.equal(atVictim, 0, 'still nothing at the third party');
    t.ok(
      (cn.mn.status().drops?.['cn-bu-authenticator'] ?? 0) >= dropsBefore + 2,
      'visible in the CN status drops',
    );
  },
);

void t.test(
  'a BU without a HAO, or for an address the certificate lacks, binds nothing',
  async (t) => {
    const w = await World.create();
    const cn = await correspondent(w);
    const bindings = cn.ro!.bindings!;

    // A member whose `mn` certificate holds its home address and a whole /64 on the internet.
    const ROGUE4 = '203.0.113.99';
    const COA = `::ffff:${ROGUE4}`;
    const PREFIX_ADDRESS = '2001:db8:9::5';
    const FOREIGN = '2001:db8:8::5';
    const rogue = endpoint(
      w.ca,
      {
        name: 'rogue',
        role: 'mn',
        key: memberKey(0x92),
        addresses: ['2001:db8:100::66', '2001:db8:9::/64'],
      },
      ['cn'],
    );
    const udp = w.net.endpoint({ address: ROGUE4 });
    let session: PeerSession | undefined;
    let cot: CareOfTest | undefined;
    const acks: number[] = [];
    udp.onDatagrams((batch) => {
      for (let i = 0; i < batch.count; i++) {
        const copy = batch.packet(i).slice();
        const r = rogue.receive(copy, T0 + w.clock.now());
        if (r.kind === 'established') session = r.session;
        if (r.kind !== 'data') continue;
        const m = decoded(copy.subarray(r.offset, r.offset + r.length))?.mobility;
        if (m?.kind === 'careOfTest') cot = m;
        if (m?.kind === 'bindingAcknowledgement') acks.push(m.status);
      }
    });
    udp.send(rogue.connect(cn.key.publicKey, T0 + w.clock.now()), CN4, 4191);
    t.ok((await w.until(() => session !== undefined, 1000)) >= 0, 'channel to the CN');
    const toCn = (packet: Uint8Array): void => {
      const msg = rogue.seal(session!, packet, T0 + w.clock.now(), DataKind.SIGNALING);
      if (msg !== null) udp.send(msg, CN4, 4191);
    };

    // HoTs: HoTIs "from the internet" reach the CN through its HA, the HoTs leave the HA towards
    // their sources, where the member receives them (it owns those addresses, or sniffs them).
    const hots = new Map<string, HomeTest>();
    w.haTun.onKernelReceive((p) => {
      const d = decoded(p);
      if (d?.mobility?.kind === 'homeTest') hots.set(d.destination, d.mobility);
    });
    for (const a of [PREFIX_ADDRESS, FOREIGN]) w.haTun.inject(rrInit('homeTestInit', a, CN_HOA));
    toCn(rrInit('careOfTestInit', COA, CN_HOA)); // one care-of token, on its own channel
    await w.until(() => hots.size === 2 && cot !== undefined, 1000);
    t.equal(hots.size, 2, 'HoTs for both addresses');
    t.ok(cot, 'CoT');
    const sizeBefore = bindings.size;

    // 1. No HAO: the home address is the source, the CoA in an Alternate CoA option.
    const tokX = rrTokens(hots.get(PREFIX_ADDRESS)!, cot!);
    toCn(signedCorrespondentBu(tokX, CN_HOA, 1, { source: PREFIX_ADDRESS, altCareOf: COA }));
    await w.run(20);
    t.equal(cn.ro!.drops.get('cn-bu-without-hao'), 1, 'no HAO: dropped and counted');
    t.equal(bindings.get(PREFIX_ADDRESS), undefined);

    // 2. A HAO naming an address its certificate does not hold.
    const tokF = rrTokens(hots.get(FOREIGN)!, cot!);
    toCn(signedCorrespondentBu(tokF, CN_HOA, 1, { source: COA, hao: FOREIGN }));
    await w.run(20);
    t.equal(cn.ro!.drops.get('cn-bu-home-address-not-allowed'), 1, 'not in the certificate');
    t.equal(bindings.get(FOREIGN), undefined);
    t.equal(bindings.size, sizeBefore, 'the binding cache is as before');
    t.same(acks, [], 'no BA for either');
    const drops = cn.mn.status().drops ?? {};
    t.equal(drops['cn-bu-without-hao'], 1, 'visible in the CN status drops');
    t.equal(drops['cn-bu-home-address-not-allowed'], 1);

    // Control: the same tokens in a proper BU (HAO = an address the certificate holds) bind.
    toCn(signedCorrespondentBu(tokX, CN_HOA, 2, { source: COA, hao: PREFIX_ADDRESS }));
    await w.run(20);
    t.same(acks, [0], 'a well-formed BU for its own address is accepted');
    t.same(bindings.get(PREFIX_ADDRESS)?.ownerKey, memberKey(0x92).publicKey);
  },
);

void t.test(
  'ownership: a second key with a genuine RR cannot take the binding another key created',
  async (t) => {
    const w = await World.create({ maxLifetime: 40 });
    w.routeHomePrefix();
    const cn = w.correspondent({
      homeAddress: CN_HOA,
      address4: CN4,
      address6: '2001:db8:4::10',
      maxBindingLifetimeSeconds: 120,
    });
    cn.careOf.candidates = [{ family: 4, localAddress: CN4 }];
    cn.mn.start();
    const member = (address4: string): MnHandle =>
      w.routeOptimizingMember({
        homeAddress: HOA,
        address4,
        address6: `2001:db8:3::${address4.split('.')[3]}`,
        cn,
        cnHomeAddress: CN_HOA,
        cnAddress4: CN4,
      });
    const roUp = (m: MnHandle): boolean => m.ro?.registration(CN_HOA)?.routeOptimized === true;
    const first = member(MN4);
    first.mn.start();
    t.ok((await w.until(() => roUp(first), 10_000)) >= 0, 'first key route-optimized');
    const bindings = cn.ro!.bindings!;
    const b = bindings.get(HOA)!;
    t.same(b.ownerKey, first.key.publicKey, 'owned by the first key');
    const before = {
      careOfAddress: b.careOfAddress,
      sequence: b.sequence,
      expiresAt: b.expiresAt,
      locator: cn.mn.status().bindings?.find((x) => x.homeAddress === HOA)?.locator,
    };
    t.equal(before.locator?.startsWith(MN4), true);

    // The first laptop vanishes; its HA binding (40 s) runs out long before its correspondent
    // binding (120 s). Then the second key, whose certificate holds the same HoA, registers at
    // the HA and does a genuine RR with the CN: the HoT now reaches it.
    first.udp4.sendConditions = { loss: 1 };
    first.udp6.sendConditions = { loss: 1 };
    await w.until(() => w.ha.cache.get(HOA) === undefined, 45_000, 100);
    t.equal(w.ha.cache.get(HOA), undefined, "the first key's home binding expired");
    const second = member('198.51.100.66');
    second.mn.start();
    t.ok(
      (await w.until(() => second.mn.registration.state === 'registered', 5000)) >= 0,
      'the second key holds the home binding now',
    );
    const refusedAt = await w.until(
      () => cn.ro!.drops.get('cn-binding-owner-mismatch') >= 1,
      10_000,
    );
    t.ok(refusedAt >= 0, 'its BU reached the CN and was refused');
    t.ok(
      second.ro!.registration(CN_HOA)!.status(0).lastCareOfTest !== 0,
      'after a complete return routability',
    );
    const now = bindings.get(HOA)!;
    t.same(
      {
        careOfAddress: now.careOfAddress,
        sequence: now.sequence,
        expiresAt: now.expiresAt,
        locator: cn.mn.status().bindings?.find((x) => x.homeAddress === HOA)?.locator,
      },
      before,
      'care-of, sequence, expiry and locator unchanged',
    );
    t.same(now.ownerKey, first.key.publicKey, 'owner unchanged');
    t.notOk(roUp(second), 'the second key is not route-optimized');
    t.ok(
      (cn.mn.status().drops?.['cn-binding-owner-mismatch'] ?? 0) >= 1,
      'visible in the CN status drops',
    );

    // Once the first key's correspondent binding expires the address is free: the second
    // key's next BU retransmission is accepted.
    const freed = await w.until(() => roUp(second), 150_000, 10);
    t.ok(freed >= 0, 'the second key route-optimized after the old binding expired');
    t.ok((bindings.get(HOA)?.registeredAt ?? 0) >= before.expiresAt, 'not before');
    t.same(bindings.get(HOA)?.ownerKey, second.key.publicKey);
  },
);
