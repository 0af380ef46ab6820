/**
 * Return-routability flood at a correspondent node (issue 9), over fakes with the real role
 * code: HA + CN + two legitimate MNs, and two floods at once for FLOOD_MS (simulated):
 *   - anonymous HoTIs from the internet (injected into the HA's TUN towards the CN's home
 *     address, so the HA tunnels them to the CN like any packet for a bound HoA), from random
 *     spoofed sources: padded ones with random cookies, RFC-sized (unpadded) ones, and
 *     malformed ones (bad MH checksum, truncated MH, garbage);
 *   - a certified but hostile member flooding CoTIs on its own direct channel (same mix).
 * Shown: the CN keeps no state per request (binding cache, sessions, RR buckets and nonces
 * unchanged by the flood); no answer is larger than the request it answers (matched by cookie)
 * and RFC-sized requests get none; the answers per second stay within RR_ANSWER_RATE
 * (anonymous) and RR_MEMBER_ANSWER_RATE (the hostile member); every malformed request is
 * counted as a drop; a legitimate MN starting during the flood completes RR + BU (route
 * optimization) and another one completes RR again after a move.
 */
import { DataKind } from '../../src/crypto/aead.js';
import t from 'tap';
import type { PeerSession } from '../../src/crypto/endpoint.js';
import {
  RR_ANSWER_RATE,
  RR_MEMBER_ANSWER_RATE,
  RR_TEST_PACKET_LEN,
} from '../../src/protocol/correspondent-bindings.js';
import { RR_INIT_PADDING } from '../../src/protocol/correspondent-registration.js';
import { parseIpv6 } from '../../src/wire/address.js';
import { encodeMobilityHeader } from '../../src/wire/mobility.js';
import { decodePacket, encodePacket } from '../../src/wire/packet.js';
import { IPPROTO } from '../../src/wire/types.js';
import { endpoint, memberKey, T0 } from '../helpers/crypto.js';
import { HOME_PREFIX, World, type MnHandle } from '../helpers/world.js';

const CN_HOA = '2001:db8:100::20';
const CN4 = '203.0.113.130';
const MN1_HOA = '2001:db8:100::10';
const MN2_HOA = '2001:db8:100::11';
const ROGUE_HOA = '2001:db8:100::66';
const ROGUE4 = '203.0.113.99';
const FLOOD_MS = 3000;
/** Per simulated millisecond: anonymous HoTIs and hostile-member CoTIs. */
const HOTI_PER_MS = 2;
const COTI_PER_MS = 1;

/** Deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

type Kind = 'padded' | 'rfc-size' | 'bad-checksum' | 'truncated' | 'garbage';

function kindOf(r: number): Kind {
  if (r < 0.6) return 'padded';
  if (r < 0.75) return 'rfc-size';
  if (r < 0.85) return 'bad-checksum';
  if (r < 0.93) return 'truncated';
  return 'garbage';
}

/** A HoTI or CoTI of `kind` from `source` to the CN; `cookie` is random. */
function request(
  test: 'homeTestInit' | 'careOfTestInit',
  kind: Kind,
  source: string,
  cookie: Uint8Array,
  rnd: () => number,
): Uint8Array {
  const options = kind === 'rfc-size' ? [] : [RR_INIT_PADDING];
  const p = encodePacket({ source, destination: CN_HOA }, IPPROTO.MH, (ps) =>
    encodeMobilityHeader(
      test === 'homeTestInit'
        ? { kind: test, homeInitCookie: cookie, options }
        : { kind: test, careOfInitCookie: cookie, options },
      ps,
    ),
  );
  switch (kind) {
    case 'padded':
    case 'rfc-size':
      return p;
    case 'bad-checksum':
      p[40 + 4]! ^= 0x5a; // MH checksum (RFC 6275 §6.1.1)
      return p;
    case 'truncated': {
      // Header Len claims 24 bytes more than the packet carries (IPv6 payload length agrees
      // with what is there, so only the Mobility Header is inconsistent).
      p[40 + 1] = p[40 + 1]! + 3;
      return p;
    }
    case 'garbage': {
      for (let i = 41; i < p.length; i++) p[i] = Math.floor(rnd() * 256);
      return p;
    }
  }
}

function cookieKey(c: Uint8Array): string {
  return Buffer.from(c).toString('hex');
}

function roUp(m: MnHandle): boolean {
  return m.ro?.registration(CN_HOA)?.routeOptimized === true;
}

function legitimate(w: World, cn: MnHandle, homeAddress: string, address4: string): MnHandle {
  return w.routeOptimizingMember({
    homeAddress,
    address4,
    address6: `2001:db8:3::${homeAddress.split('::')[1]}`,
    cn,
    cnHomeAddress: CN_HOA,
    cnAddress4: CN4,
  });
}

void t.test(
  'RR flood at a CN: stateless, no amplification, rate-limited, RR still works',
  async (t) => {
    const w = await World.create({ delayMs: 2 });
    w.routeHomePrefix();
    const cn = w.correspondent({ homeAddress: CN_HOA, address4: CN4, address6: '2001:db8:4::10' });
    cn.careOf.candidates = [{ family: 4, localAddress: CN4 }];
    cn.mn.start();
    const mn1 = legitimate(w, cn, MN1_HOA, '192.0.2.10');
    mn1.mn.start();
    t.ok((await w.until(() => roUp(mn1), 10_000)) >= 0, 'MN1 route-optimized before the flood');
    const bindings = cn.ro!.bindings!;

    // ---- what leaves the HA towards the (spoofed) internet: HoTs answering the flood ----
    const homePrefix = parseIpv6(HOME_PREFIX.split('/')[0]!);
    const anonAnswers: { at: number; len: number; cookie: string }[] = [];
    w.haTun.onKernelReceive((p) => {
      for (let i = 0; i < 8; i++) {
        if (p[24 + i] !== homePrefix[i]) {
          const d = decodePacket(p);
          if (d.mobility?.kind === 'homeTest') {
            anonAnswers.push({
              at: w.clock.now(),
              len: p.length,
              cookie: cookieKey(d.mobility.homeInitCookie),
            });
          }
          return;
        }
      }
    });

    // ---- the hostile member and its direct channel to the CN ----
    const rogue = endpoint(
      w.ca,
      { name: 'rogue', role: 'mn', key: memberKey(0x91), addresses: [ROGUE_HOA] },
      ['cn'],
    );
    const rogueUdp = w.net.endpoint({ address: ROGUE4 });
    let rogueSession: PeerSession | undefined;
    const rogueAnswers: { at: number; len: number; datagram: number; cookie: string }[] = [];
    rogueUdp.onDatagrams((batch) => {
      for (let i = 0; i < batch.count; i++) {
        const copy = batch.packet(i).slice();
        const r = rogue.receive(copy, T0 + w.clock.now());
        if (r.kind === 'established') rogueSession = r.session;
        if (r.kind === 'data') {
          const inner = copy.subarray(r.offset, r.offset + r.length);
          const d = decodePacket(inner);
          if (d.mobility?.kind === 'careOfTest') {
            rogueAnswers.push({
              at: w.clock.now(),
              len: inner.length,
              datagram: copy.length,
              cookie: cookieKey(d.mobility.careOfInitCookie),
            });
          }
        }
      }
    });
    rogueUdp.send(rogue.connect(cn.key.publicKey, T0 + w.clock.now()), CN4, 4191);
    t.ok((await w.until(() => rogueSession !== undefined, 2000)) >= 0, 'rogue channel up');

    const before = {
      bindings: bindings.size,
      sessions: countSessions(cn),
      rr: bindings.rrState(),
    };
    const dropsBefore = { ...cn.mn.status().drops };
    const haDropsBefore = w.ha.drops.get('signaling-to-member');

    // ---- the flood ----
    const rnd = prng(20261129);
    const sent = { hoti: new Map<Kind, number>(), coti: new Map<Kind, number>() };
    const requestLen = new Map<string, number>();
    let bytesIn = 0;
    let rogueDatagramsOut = 0;
    const randomBytes = (n: number): Uint8Array =>
      Uint8Array.from({ length: n }, () => Math.floor(rnd() * 256));
    let mn2: MnHandle | undefined;
    const start = w.clock.now();
    for (let ms = 0; ms < FLOOD_MS; ms++) {
      const hotis: Uint8Array[] = [];
      for (let i = 0; i < HOTI_PER_MS; i++) {
        const kind = kindOf(rnd());
        const cookie = randomBytes(8);
        const h = (): string => Math.floor(rnd() * 0x10000).toString(16);
        const src = `2001:db8:9:${h()}:${h()}:${h()}:${h()}:${h()}`;
        const p = request('homeTestInit', kind, src, cookie, rnd);
        sent.hoti.set(kind, (sent.hoti.get(kind) ?? 0) + 1);
        requestLen.set(cookieKey(cookie), p.length);
        bytesIn += p.length;
        hotis.push(p);
      }
      w.haTun.inject(hotis);
      for (let i = 0; i < COTI_PER_MS; i++) {
        const kind = kindOf(rnd());
        const cookie = randomBytes(8);
        const p = request('careOfTestInit', kind, `2001:db8:7::${i + 1}`, cookie, rnd);
        sent.coti.set(kind, (sent.coti.get(kind) ?? 0) + 1);
        requestLen.set(cookieKey(cookie), p.length);
        const msg = rogue.seal(rogueSession!, p, T0 + w.clock.now(), DataKind.SIGNALING);
        if (msg !== null) {
          rogueDatagramsOut += msg.length;
          rogueUdp.send(msg, CN4, 4191);
        }
      }
      if (ms === 500) {
        // A new member starts during the flood: its whole RR (HoTI + CoTI) and BU.
        mn2 = legitimate(w, cn, MN2_HOA, '192.0.2.20');
        mn2.mn.start();
        // MN1 moves: a new CoTI/CoT (its home token is still fresh) and BU.
        w.net.move(mn1.udp4, '198.51.100.99');
        mn1.careOf.candidates = [{ family: 4, localAddress: '198.51.100.99' }];
        mn1.careOf.changed();
      }
      await w.run(1);
    }
    const floodEnd = w.clock.now();
    await w.run(500);

    const total = (m: Map<Kind, number>): number => [...m.values()].reduce((a, b) => a + b, 0);
    t.comment(
      `sent ${total(sent.hoti)} HoTIs (${[...sent.hoti].map(([k, n]) => `${k} ${n}`).join(', ')}) ` +
        `and ${total(sent.coti)} CoTIs in ${floodEnd - start} ms (simulated)`,
    );

    await t.test('a legitimate MN completes RR and RO during the flood', async (t) => {
      t.ok(mn2 !== undefined && roUp(mn2), 'MN2 (started mid-flood) is route-optimized');
      const st2 = mn2!.ro!.registration(CN_HOA)!.status(0);
      t.ok(
        st2.lastBindingAck > 0 && st2.lastBindingAck - T0 < floodEnd,
        `MN2's BA arrived ${st2.lastBindingAck - T0 - start - 500} ms after it started, during the flood`,
      );
      t.ok(roUp(mn1), 'MN1 route-optimized again after its move');
      t.equal(bindings.get(MN1_HOA)?.careOfAddress, '::ffff:198.51.100.99', 'with the new CoA');
      const st1 = mn1.ro!.registration(CN_HOA)!.status(0);
      const cot = st1.lastCareOfTest - T0;
      t.ok(
        cot > start && cot < floodEnd,
        `CoT received ${cot - start - 500} ms after the move, mid-flood`,
      );
    });

    await t.test('no state per request', async (t) => {
      t.equal(bindings.size, before.bindings + 1, 'binding cache: only MN2 added');
      t.equal(countSessions(cn), before.sessions + 1, 'channels: only MN2 added');
      const rr = bindings.rrState();
      t.ok(
        rr.memberBuckets <= before.rr.memberBuckets + 2,
        `RR buckets: ${before.rr.memberBuckets} -> ${rr.memberBuckets} (members only)`,
      );
      t.ok(rr.nonces <= 2, `nonces: ${rr.nonces} (rotated by time, not by requests)`);
    });

    await t.test('no amplification', async (t) => {
      let larger = 0;
      let unmatched = 0;
      let toShort = 0;
      for (const a of [...anonAnswers, ...rogueAnswers]) {
        const req = requestLen.get(a.cookie);
        if (req === undefined) unmatched++;
        else if (a.len > req) larger++;
        else if (req < RR_TEST_PACKET_LEN) toShort++;
      }
      t.equal(unmatched, 0, 'every answer matches a request by cookie');
      t.equal(larger, 0, 'no answer larger than its request');
      t.equal(toShort, 0, 'no RFC-sized (short) request answered');
      const bytesOut = anonAnswers.reduce((a, b) => a + b.len, 0);
      t.ok(bytesOut <= bytesIn, `anonymous: ${bytesIn} B in, ${bytesOut} B out`);
      const rogueIn = rogueAnswers.reduce((a, b) => a + b.datagram, 0);
      t.ok(
        rogueIn <= rogueDatagramsOut,
        `hostile member: ${rogueDatagramsOut} B of datagrams in, ${rogueIn} B out`,
      );
    });

    await t.test('rate limits hold', async (t) => {
      const perSecond = (xs: { at: number }[]): number[] => {
        const bins: number[] = [];
        for (const x of xs) {
          const s = Math.floor((x.at - start) / 1000);
          bins[s] = (bins[s] ?? 0) + 1;
        }
        return [...bins].map((n) => n ?? 0);
      };
      const anon = perSecond(anonAnswers);
      const member = perSecond(rogueAnswers);
      t.comment(`anonymous HoTs per second: ${anon.join(', ')}`);
      t.comment(`hostile member's CoTs per second: ${member.join(', ')}`);
      // A full bucket (burst = rate) plus the refill: at most 2x in the first second.
      t.ok(anon[0]! <= 2 * RR_ANSWER_RATE, 'first second: burst + rate');
      t.ok(
        anon.slice(1).every((n) => n <= RR_ANSWER_RATE + 1),
        `then <= RR_ANSWER_RATE (${RR_ANSWER_RATE})/s`,
      );
      t.ok(anon.reduce((a, b) => a + b, 0) > RR_ANSWER_RATE, 'and the limit is actually used');
      t.ok(member[0]! <= 2 * RR_MEMBER_ANSWER_RATE, 'member: first second burst + rate');
      t.ok(
        member.slice(1).every((n) => n <= RR_MEMBER_ANSWER_RATE + 1),
        `then <= RR_MEMBER_ANSWER_RATE (${RR_MEMBER_ANSWER_RATE})/s`,
      );
    });

    await t.test('malformed and refused requests are counted as drops', async (t) => {
      const after = cn.mn.status().drops ?? {};
      const delta = (k: string): number => (after[k] ?? 0) - (dropsBefore[k] ?? 0);
      const counts = Object.fromEntries(
        Object.keys(after)
          .map((k) => [k, delta(k)] as const)
          .filter(([, n]) => n > 0),
      );
      t.comment(`CN drops during the flood: ${JSON.stringify(counts)}`);
      const malformedHoti =
        (sent.hoti.get('bad-checksum') ?? 0) +
        (sent.hoti.get('truncated') ?? 0) +
        (sent.hoti.get('garbage') ?? 0);
      const malformedCoti =
        (sent.coti.get('bad-checksum') ?? 0) +
        (sent.coti.get('truncated') ?? 0) +
        (sent.coti.get('garbage') ?? 0);
      // Garbage whose MH type is not HoTI/HoT is not relayed by the HA at all (DESIGN.md §4).
      const haRefused = w.ha.drops.get('signaling-to-member') - haDropsBefore;
      t.comment(`HA refused to relay ${haRefused} as signaling-to-member`);
      const tunnelMalformed =
        haRefused +
        Object.entries(counts)
          .filter(([k]) => k === 'mh-invalid' || k.startsWith('wire-') || k === 'malformed-inner')
          .reduce((a, [, n]) => a + n, 0);
      const directMalformed = (counts['cn-malformed'] ?? 0) + (counts['cn-mh-checksum'] ?? 0);
      t.equal(tunnelMalformed, malformedHoti, 'every malformed HoTI counted');
      t.equal(directMalformed, malformedCoti, 'every malformed CoTI counted');
      const answered = anonAnswers.length + rogueAnswers.length;
      const refused = (counts['cn-rr-short'] ?? 0) + (counts['cn-rr-rate'] ?? 0);
      t.equal(
        answered + refused + tunnelMalformed + directMalformed,
        total(sent.hoti) + total(sent.coti),
        `every flooded request is answered (${answered}) or counted as a drop`,
      );
    });
  },
);

function countSessions(m: MnHandle): number {
  return m.endpoint.allSessions().length;
}
