/**
 * The correspondent's binding cache against the attacks of issue #13, on the engine alone
 * (CorrespondentBindings with the origin a driver gives it for a member's channel):
 *   - a binding belongs to the key of the channel that created it: another key with valid RR
 *     tokens for the same home address (a second certificate holding it) cannot update or
 *     delete it; once its owner deregisters or it expires the address is free again;
 *   - on a channel, a BU's home address must be one the member's certificate holds, and the BU
 *     must carry a HAO (the RFC's HAO-less returning-home deregistration excepted);
 *   - the care-of token covers the locator the CoTI came from, so a BU verifies only from that
 *     locator: sent from a spoofed one it is dropped and nothing changes.
 * Each attack is made with valid tokens (the strongest member-attacker), and the test asserts
 * the binding (care-of, sequence, owner, expiry) and the cache are exactly as before.
 */
import t from 'tap';
import {
  CorrespondentBindings,
  type CorrespondentAction,
  type CorrespondentOrigin,
} from '../../src/protocol/correspondent-bindings.js';
import type { Locator } from '../../src/protocol/locator.js';
import { formatIpv6 } from '../../src/wire/address.js';
import { decodePacket } from '../../src/wire/packet.js';
import {
  rrInit,
  rrTokens,
  signedCorrespondentBu,
  testRrCrypto as testCrypto,
  type RrTokens,
} from '../helpers/rr.js';
import { patchMobilityHeader } from '../helpers/packets.js';

const CN = '2001:db8:4::10';
const HOA = '2001:db8:100::5';
const OTHER_HOA = '2001:db8:100::9';
const COA = '::ffff:198.51.100.20';
const COA2 = '::ffff:203.0.113.66';
/** Where the member's datagrams come from (its NAT mapping, say). */
const L1: Locator = { address: '198.51.100.20', port: 40000 };
const L2: Locator = { address: '203.0.113.66', port: 40001 };
/** A third party's address and port: where a spoofed BU would point the CN. */
const VICTIM: Locator = { address: '192.0.2.99', port: 5555 };
const LAPTOP_KEY = new Uint8Array(32).fill(0x11);
/** A second key whose certificate holds the same home address (the old laptop's). */
const OLD_KEY = new Uint8Array(32).fill(0x33);

/** The origin the route-optimization driver gives for a member's channel. */
function channel(
  key: Uint8Array,
  locator: Locator,
  holds: (hoa: string) => boolean = (h) => h === HOA,
): CorrespondentOrigin {
  return {
    member: Buffer.from(key).toString('hex'),
    ownerKey: key,
    allowsHomeAddress: (a) => holds(formatIpv6(a)),
    locator,
  };
}

function sent(actions: CorrespondentAction[]): Extract<CorrespondentAction, { kind: 'send' }> {
  const a = actions.find((x) => x.kind === 'send');
  if (a?.kind !== 'send') throw new Error(`no answer: ${JSON.stringify(actions)}`);
  return a;
}

/**
 * Runs RR at `cn` the way a member does: HoTI from `home` (through the HA: anonymous origin)
 * and CoTI from `careOf` on the member's channel (`coti` origin); returns the tokens.
 */
function rr(
  cn: CorrespondentBindings,
  home: string,
  careOf: string,
  coti: CorrespondentOrigin,
  now: number,
): RrTokens {
  const hot = decodePacket(sent(cn.handle(rrInit('homeTestInit', home, CN), now)).packet);
  const cot = decodePacket(sent(cn.handle(rrInit('careOfTestInit', careOf, CN), now, coti)).packet);
  if (hot.mobility?.kind !== 'homeTest' || cot.mobility?.kind !== 'careOfTest') {
    throw new Error('no HoT/CoT');
  }
  return rrTokens(hot.mobility, cot.mobility);
}

function signedBu(
  tok: RrTokens,
  sequence: number,
  opts: { source: string; hao?: string; altCareOf?: string; lifetimeUnits?: number },
): Uint8Array {
  return signedCorrespondentBu(tok, CN, sequence, opts);
}

function drops(actions: CorrespondentAction[]): string[] {
  return actions.flatMap((a) => (a.kind === 'drop' ? [a.reason] : []));
}

function status(actions: CorrespondentAction[]): number | undefined {
  const a = actions.find((x) => x.kind === 'send');
  return a?.kind === 'send' ? a.status : undefined;
}

/** A CN with the laptop bound: HoA -> COA at L1, sequence 10, owned by LAPTOP_KEY. */
function bound(now = 0): CorrespondentBindings {
  const cn = new CorrespondentBindings(testCrypto(23), { addresses: [CN] });
  const tok = rr(cn, HOA, COA, channel(LAPTOP_KEY, L1), now);
  const out = cn.handle(signedBu(tok, 10, { source: COA, hao: HOA }), now, channel(LAPTOP_KEY, L1));
  if (status(out) !== 0) throw new Error(`setup: ${JSON.stringify(out)}`);
  return cn;
}

void t.test('the binding records the key of the channel that created it', async (t) => {
  const cn = bound();
  const b = cn.get(HOA)!;
  t.equal(b.careOfAddress, COA);
  t.equal(b.sequence, 10);
  t.same(b.ownerKey, LAPTOP_KEY);
});

void t.test(
  'another key with valid tokens for the same HoA cannot update or delete the binding',
  async (t) => {
    const cn = bound();
    const before = structuredClone(cn.get(HOA)!);
    // The old laptop's certificate holds the same HoA; give it everything RR can give (its own
    // care-of test from its own locator, a home token) and the owner's next sequence numbers.
    const old = channel(OLD_KEY, L2);
    const tok = rr(cn, HOA, COA2, old, 1000);
    const move = cn.handle(signedBu(tok, 11, { source: COA2, hao: HOA }), 1000, old);
    t.same(drops(move), ['binding-owner-mismatch'], 'update: dropped, no BA');
    const dereg = cn.handle(
      signedBu(tok, 12, { source: COA2, hao: HOA, lifetimeUnits: 0 }),
      1000,
      old,
    );
    t.same(drops(dereg), ['binding-owner-mismatch'], 'deregistration: dropped, no BA');
    const stale = cn.handle(signedBu(tok, 3, { source: COA2, hao: HOA }), 1000, old);
    t.same(drops(stale), ['binding-owner-mismatch'], 'before the sequence check: no 135 leak');
    t.same(cn.get(HOA), before, 'care-of, sequence, owner and expiry unchanged');
    t.equal(cn.size, 1);
    // The owner goes on with its next sequence.
    const own = rr(cn, HOA, COA, channel(LAPTOP_KEY, L1), 2000);
    const ok = cn.handle(
      signedBu(own, 11, { source: COA, hao: HOA }),
      2000,
      channel(LAPTOP_KEY, L1),
    );
    t.equal(status(ok), 0, "the owner's own update is accepted");
  },
);

void t.test(
  'the HoA is free again once its owner deregisters it or the binding expires',
  async (t) => {
    await t.test('deregistered by its owner', async (t) => {
      const cn = bound();
      const own = rr(cn, HOA, COA, channel(LAPTOP_KEY, L1), 1000);
      const out = cn.handle(
        signedBu(own, 11, { source: COA, hao: HOA, lifetimeUnits: 0 }),
        1000,
        channel(LAPTOP_KEY, L1),
      );
      t.equal(status(out), 0);
      t.equal(cn.get(HOA), undefined);
      // Another key: not held to the owner's tombstone (sequence 3 < 11 is fine).
      const old = channel(OLD_KEY, L2);
      const tok = rr(cn, HOA, COA2, old, 2000);
      const taken = cn.handle(signedBu(tok, 3, { source: COA2, hao: HOA }), 2000, old);
      t.equal(status(taken), 0);
      t.same(cn.get(HOA)?.ownerKey, OLD_KEY);
      // The owner's own replay still meets its tombstone.
      const again = bound();
      const o2 = rr(again, HOA, COA, channel(LAPTOP_KEY, L1), 1000);
      again.handle(
        signedBu(o2, 11, { source: COA, hao: HOA, lifetimeUnits: 0 }),
        1000,
        channel(LAPTOP_KEY, L1),
      );
      const replay = again.handle(
        signedBu(o2, 10, { source: COA, hao: HOA }),
        1500,
        channel(LAPTOP_KEY, L1),
      );
      t.equal(status(replay), 135);
    });
    await t.test('expired', async (t) => {
      const cn = bound();
      const expiry = cn.get(HOA)!.expiresAt;
      t.same(
        cn.poll(expiry).filter((a) => a.kind === 'bindingDeleted'),
        [{ kind: 'bindingDeleted', homeAddress: HOA, reason: 'expired' }],
      );
      const old = channel(OLD_KEY, L2);
      const tok = rr(cn, HOA, COA2, old, expiry + 1);
      const taken = cn.handle(signedBu(tok, 1, { source: COA2, hao: HOA }), expiry + 1, old);
      t.equal(status(taken), 0);
      t.same(cn.get(HOA)?.ownerKey, OLD_KEY);
    });
  },
);

void t.test(
  "on a channel, the BU's home address must be one the member's certificate holds",
  async (t) => {
    const cn = bound();
    const before = structuredClone(cn.get(HOA)!);
    // A member whose certificate holds OTHER_HOA only, with valid tokens for HOA.
    const other = channel(OLD_KEY, L2, (h) => h === OTHER_HOA);
    const tok = rr(cn, HOA, COA2, other, 1000);
    t.same(
      drops(cn.handle(signedBu(tok, 11, { source: COA2, hao: HOA }), 1000, other)),
      ['bu-home-address-not-allowed'],
      'HAO naming a HoA the certificate lacks',
    );
    // For an address nobody holds, too (it can get a HoT for any address it receives at).
    const x = '2001:db8:7::5';
    const tx = rr(cn, x, COA2, other, 1000);
    t.same(drops(cn.handle(signedBu(tx, 1, { source: COA2, hao: x }), 1000, other)), [
      'bu-home-address-not-allowed',
    ]);
    t.same(cn.get(HOA), before);
    t.equal(cn.get(x), undefined);
    t.equal(cn.size, 1);
  },
);

void t.test('on a channel, a BU without a HAO binds nothing', async (t) => {
  // A member whose certificate holds a whole prefix, and one care-of token: without the HAO
  // rule every address of the prefix it can get a HoT for would be bound from that token.
  const cn = new CorrespondentBindings(testCrypto(23), { addresses: [CN] });
  const member = channel(OLD_KEY, L2, () => true);
  const x = '2001:db8:9::5';
  const tok = rr(cn, x, COA2, member, 0);
  const noHao = signedBu(tok, 1, { source: x, altCareOf: COA2 });
  t.same(drops(cn.handle(noHao, 0, member)), ['bu-without-hao']);
  t.equal(cn.size, 0);
  // Off a channel (the engine as a plain RFC 6275 CN) the same BU is valid (§9.5.1).
  const plain = new CorrespondentBindings(testCrypto(23), { addresses: [CN] });
  const tp = rr(plain, x, COA2, {}, 0);
  t.equal(status(plain.handle(signedBu(tp, 1, { source: x, altCareOf: COA2 }), 0)), 0);
  t.equal(plain.get(x)?.careOfAddress, COA2);

  await t.test("the RFC's returning-home deregistration (from the HoA) still works", async (t) => {
    const c2 = bound();
    const own = rr(c2, HOA, COA, channel(LAPTOP_KEY, L1), 1000);
    const home = signedBu(own, 11, { source: HOA, lifetimeUnits: 0 });
    t.equal(decodePacket(home).homeAddress, undefined, 'no HAO');
    t.equal(status(c2.handle(home, 1000, channel(LAPTOP_KEY, L1))), 0);
    t.equal(c2.get(HOA), undefined);
  });
});

void t.test(
  'the care-of token covers the CoTI locator: a BU from a spoofed locator binds nothing',
  async (t) => {
    const cn = new CorrespondentBindings(testCrypto(23), { addresses: [CN] });
    // RR from the member's real locator L1; the same BU then sent from VICTIM's address/port.
    const tok = rr(cn, HOA, COA, channel(LAPTOP_KEY, L1), 0);
    const bu = signedBu(tok, 10, { source: COA, hao: HOA });
    for (const spoofed of [VICTIM, { ...L1, port: L1.port + 1 }, { ...L1, address: '::1' }]) {
      t.same(
        drops(cn.handle(bu, 0, channel(LAPTOP_KEY, spoofed))),
        ['bu-authenticator'],
        `from ${spoofed.address}:${spoofed.port}: dropped without a BA`,
      );
    }
    t.equal(cn.size, 0, 'no binding');
    const out = cn.handle(bu, 0, channel(LAPTOP_KEY, L1));
    t.equal(status(out), 0, 'from the locator that got the CoT: accepted');
    t.equal(cn.get(HOA)?.sequence, 10);

    await t.test('an existing binding is not moved by a spoofed refresh', async (t) => {
      const before = structuredClone(cn.get(HOA)!);
      const fresh = rr(cn, HOA, COA, channel(LAPTOP_KEY, L1), 1000);
      const refresh = signedBu(fresh, 11, { source: COA, hao: HOA });
      t.same(drops(cn.handle(refresh, 1000, channel(LAPTOP_KEY, VICTIM))), ['bu-authenticator']);
      t.same(cn.get(HOA), before, 'sequence and lifetime unchanged');
    });
    await t.test('a care-of test from the victim locator does not help', async (t) => {
      // The CoT for a CoTI "from" VICTIM goes to VICTIM, not to the member: the member never
      // sees that token. With only its own (L1) token it cannot make a BU that verifies there.
      const own = rr(cn, HOA, COA, channel(LAPTOP_KEY, L1), 2000);
      const atVictim = rr(cn, HOA, COA, channel(LAPTOP_KEY, VICTIM), 2000);
      t.notSame(own.careOfToken, atVictim.careOfToken, 'a different token per locator');
    });
  },
);

void t.test(
  'the correspondent applies the shared RFC 6275 §9.2 Mobility Header checks',
  async (t) => {
    const cn = new CorrespondentBindings(testCrypto(23), { addresses: [CN] });
    const hoti = rrInit('homeTestInit', HOA, CN);
    const patched = (p: Uint8Array, at: number, value: number, mhLen?: number): Uint8Array =>
      patchMobilityHeader(p, at, value, { source: HOA, destination: CN }, mhLen);

    await t.test('Payload Proto not 59: Parameter Problem at byte 40', async (t) => {
      const out = cn.handle(patched(hoti, 0, 6), 0);
      t.same(drops(out), ['mh-payload-proto']);
      const pp = decodePacket(sent(out).packet);
      t.equal(sent(out).message, 'parameterProblem');
      t.equal(pp.source, CN);
      t.equal(pp.destination, HOA);
      t.match(pp.icmpv6, { kind: 'parameterProblem', code: 0, pointer: 40 });
    });
    await t.test('Header Len below the minimum: Parameter Problem at byte 41', async (t) => {
      const out = cn.handle(patched(hoti, 1, 0, 8), 0);
      t.same(drops(out), ['mh-header-len']);
      t.match(decodePacket(sent(out).packet).icmpv6, { kind: 'parameterProblem', pointer: 41 });
    });
    await t.test('unknown MH type: Binding Error status 2', async (t) => {
      const out = cn.handle(patched(hoti, 2, 99), 0);
      t.same(drops(out), ['mh-unknown-type']);
      t.match(decodePacket(sent(out).packet).mobility, { kind: 'bindingError', status: 2 });
    });
    await t.test('a wrong checksum is dropped silently', async (t) => {
      const bad = hoti.slice();
      bad[44] = (bad[44] ?? 0) ^ 0xff;
      const out = cn.handle(bad, 0);
      t.same(out, [{ kind: 'drop', reason: 'mh-checksum' }]);
    });
    await t.test('not addressed to us: dropped without an answer', async (t) => {
      const other = rrInit('homeTestInit', HOA, '2001:db8:4::99');
      const out = cn.handle(other, 0);
      t.same(out, [{ kind: 'drop', reason: 'not-for-us' }]);
    });
  },
);
