/**
 * RFC 6275 requirements the code met without a test of its own (docs/CONFORMANCE.md, issue
 * #22): each test names the section it checks, on the sans-IO engines.
 */
import t from 'tap';
import { BindingCache } from '../../src/protocol/binding-cache.js';
import { CorrespondentBindings } from '../../src/protocol/correspondent-bindings.js';
import {
  CorrespondentRegistration,
  type CorrespondentRegistrationAction,
} from '../../src/protocol/correspondent-registration.js';
import { HomeAgentDiscoveryClient } from '../../src/protocol/home-agent-discovery-client.js';
import { processHomeBindingUpdate } from '../../src/protocol/home-agent-registration.js';
import {
  HomeRegistration,
  type HomeRegistrationAction,
} from '../../src/protocol/mobile-node-registration.js';
import {
  MH_CHECKSUM_OFF,
  decodeMobilityHeader,
  encodeMobilityHeader,
} from '../../src/wire/mobility.js';
import { decodePacket } from '../../src/wire/packet.js';
import {
  bindingUpdateFlags,
  type BindingAcknowledgement,
  type MobilityMessage,
} from '../../src/wire/types.js';
import { testRrCrypto } from '../helpers/rr.js';

const HOA = '2001:db8:100::5';
const HA = '2001:db8:100::1';
const COA = '2001:db8:5::20';
const CN = '2001:db8:4::10';

type Send = Extract<CorrespondentRegistrationAction, { kind: 'send' }>;

/** MN and CN engines; `exchange` hands MN packets to the CN and the answers back. */
function correspondents(
  requestAck: boolean,
  opts: { lifetimeSeconds?: number; maxBindings?: number } = {},
) {
  const mn = new CorrespondentRegistration(testRrCrypto(11), {
    homeAddress: HOA,
    correspondentAddress: CN,
    requestAck,
    ...(opts.lifetimeSeconds !== undefined ? { lifetimeSeconds: opts.lifetimeSeconds } : {}),
  });
  const cn = new CorrespondentBindings(testRrCrypto(23), {
    addresses: [CN],
    ...(opts.maxBindings !== undefined ? { maxBindings: opts.maxBindings } : {}),
  });
  const toCn: Send[] = [];
  const exchange = (
    actions: CorrespondentRegistrationAction[],
    now: number,
    pass: (s: Send) => boolean = () => true,
  ): CorrespondentRegistrationAction[] => {
    const events: CorrespondentRegistrationAction[] = [];
    const queue = [...actions];
    for (let guard = 0; guard < 50 && queue.length > 0; guard++) {
      const a = queue.shift()!;
      if (a.kind !== 'send') {
        events.push(a);
        continue;
      }
      if (!pass(a)) continue;
      toCn.push(a);
      for (const r of cn.handle(a.packet, now)) {
        if (r.kind !== 'send') continue;
        const d = decodePacket(r.packet);
        queue.push(...mn.handle(d, r.packet.subarray(d.upperOffset), now));
      }
    }
    return events;
  };
  return { mn, cn, toCn, exchange };
}

void t.test('reserved bits and unknown flags are ignored on receipt (§6.1)', async (t) => {
  const messages: MobilityMessage[] = [
    { kind: 'bindingRefreshRequest', options: [] },
    {
      kind: 'bindingUpdate',
      sequence: 9,
      flags: bindingUpdateFlags({ A: true, H: true }),
      lifetimeUnits: 15,
      options: [],
    },
    {
      kind: 'bindingAcknowledgement',
      status: 0,
      flags: { K: false, R: false, P: false, T: false, B: false, S: false, D: false },
      sequence: 9,
      lifetimeUnits: 15,
      options: [],
    },
    { kind: 'bindingError', status: 1, homeAddress: HOA, options: [] },
  ];
  // Offsets of reserved bits per message (RFC 6275 §6.1.1-§6.1.9), as [offset, mask].
  const reserved: Record<string, [number, number][]> = {
    bindingRefreshRequest: [
      [3, 0xff],
      [6, 0xff],
      [7, 0xff],
    ],
    bindingUpdate: [
      [3, 0xff],
      [9, 0x0f],
    ],
    bindingAcknowledgement: [
      [3, 0xff],
      [7, 0x01],
    ],
    bindingError: [
      [3, 0xff],
      [7, 0xff],
    ],
  };
  const fields = (bytes: Uint8Array): Record<string, unknown> => {
    const { checksum, ...rest } = decodeMobilityHeader(bytes) as unknown as Record<string, unknown>;
    void checksum;
    return rest;
  };
  for (const m of messages) {
    const clean = encodeMobilityHeader(m, undefined);
    const dirty = clean.slice();
    for (const [off, mask] of reserved[m.kind]!) dirty[off]! |= mask;
    dirty[MH_CHECKSUM_OFF] = 0; // no pseudo-header given: the checksum is not checked here
    t.same(fields(dirty), fields(clean), `${m.kind}: the same message with reserved bits set`);
  }
});

void t.test('CN: a replayed BU without A still gets BA 135 (§9.5.4)', async (t) => {
  const p = correspondents(false);
  p.exchange(p.mn.setCareOf(COA, 0), 0);
  t.ok(p.mn.routeOptimized, 'bound without a BA');
  const bu = p.toCn.find((s) => s.message === 'bindingUpdate')!;
  const d = decodePacket(bu.packet);
  t.equal(d.mobility?.kind === 'bindingUpdate' && d.mobility.flags.A, false, 'A clear');
  const replay = p.cn.handle(bu.packet, 1000);
  const ba = replay.find((a) => a.kind === 'send');
  t.equal(ba?.kind === 'send' ? ba.status : -1, 135, 'rejection answered although A = 0');
});

void t.test('HA: K is never echoed, the BA copies the sequence number (§10.3.1)', async (t) => {
  const cache = new BindingCache();
  const r = processHomeBindingUpdate(
    cache,
    {
      bu: {
        kind: 'bindingUpdate',
        sequence: 4242,
        flags: bindingUpdateFlags({ A: true, H: true, K: true }),
        lifetimeUnits: 30,
        options: [{ type: 'ipv4CareOfAddress', address: '192.0.2.10' }],
      },
      innerSource: HOA,
      innerDestination: HA,
      locator: { address: '192.0.2.10', port: 4191 },
      peer: {
        name: 'laptop',
        publicKey: new Uint8Array(32).fill(1),
        allowsHomeAddress: () => true,
      },
      config: {
        homePrefix: '2001:db8:100::/64',
        homeAgentAddress: HA,
        maxLifetimeSeconds: 600,
        natKeepaliveSeconds: 25,
        maxBindings: 10,
      },
    },
    1000,
  );
  t.equal(r.status, 0);
  t.equal(r.ack?.flags.K, false, 'no IKE here: K clear although the BU set it');
  t.equal(r.ack?.sequence, 4242);
  t.equal(r.ack?.lifetimeUnits, 30);
});

void t.test(
  'MN: Binding Error status 2 from a CN stops route optimization with it (§11.3.6)',
  async (t) => {
    const p = correspondents(true);
    p.exchange(p.mn.setCareOf(COA, 0), 0);
    t.ok(p.mn.routeOptimized);
    const out = p.mn.onBindingError(
      { kind: 'bindingError', status: 2, homeAddress: HOA, options: [] },
      1000,
    );
    t.same(out, [
      { kind: 'tunneled', reason: 'be-unrecognized-mh' },
      { kind: 'disabled', reason: 'be-unrecognized-mh' },
    ]);
    t.equal(p.mn.state, 'disabled');
    t.same(p.mn.setCareOf('2001:db8:6::20', 2000), [], 'no RR after the next move either');
    t.equal(p.mn.nextDeadline(), Infinity, 'nothing scheduled');
  },
);

void t.test('MN: the home-registration BU never sets L or K (§11.7.1)', async (t) => {
  const mn = new HomeRegistration(
    { homeAddress: HOA, homeAgentAddress: HA, lifetimeSeconds: 600 },
    0,
    7,
  );
  const bus = (actions: HomeRegistrationAction[]) =>
    actions.flatMap((a) => (a.kind === 'sendBindingUpdate' ? [a.message] : []));
  const first = bus(mn.setCareOf({ family: 6, localAddress: COA }, 0));
  const retransmitted = bus(mn.poll(mn.nextDeadline()));
  for (const bu of [...first, ...retransmitted]) {
    t.equal(bu.flags.L, false, `seq ${bu.sequence}: L clear`);
    t.equal(bu.flags.K, false, `seq ${bu.sequence}: K clear`);
    t.ok(bu.flags.A && bu.flags.H, 'A and H set');
  }
  t.equal(first.length + retransmitted.length, 2);
});

void t.test('MN: BA 137 from a CN fetches the care-of token again (§11.7.3)', async (t) => {
  const p = correspondents(true);
  // RR completes; the BU goes out but never reaches the CN.
  let held: Send | undefined;
  p.exchange(p.mn.setCareOf(COA, 0), 0, (s) => {
    if (s.message !== 'bindingUpdate') return true;
    held = s;
    return false;
  });
  t.equal(p.mn.state, 'updating');
  const bu = decodePacket(held!.packet).mobility;
  if (bu?.kind !== 'bindingUpdate') throw new Error('no BU');
  // The CN's answer: care-of nonce expired (no BAD, the CN had no Kbm).
  const ba: BindingAcknowledgement = {
    kind: 'bindingAcknowledgement',
    status: 137,
    flags: { K: false, R: false, P: false, T: false, B: false, S: false, D: false },
    sequence: bu.sequence,
    lifetimeUnits: 0,
    options: [],
  };
  const out = p.mn.onBindingAck(ba, encodeMobilityHeader(ba, undefined), 500);
  const now = out.some((a) => a.kind === 'send') ? 500 : p.mn.nextDeadline();
  const again = now === 500 ? out : p.mn.poll(now);
  const messages = again.flatMap((a) => (a.kind === 'send' ? [a.message] : []));
  t.same(messages, ['careOfTestInit'], 'only a new CoTI: the home token is still good');
  t.equal(p.mn.state, 'testing');
  p.exchange(again, now);
  t.ok(p.mn.routeOptimized, 'the BU with the fresh care-of token binds');
  t.equal(p.cn.get(HOA)?.careOfAddress, COA);
});

void t.test(
  'MN: HoTI and CoTI carry neither HAO nor RH2; the HoTI goes through the tunnel while route optimized (§6.1)',
  async (t) => {
    const p = correspondents(true);
    p.exchange(p.mn.setCareOf(COA, 0), 0);
    t.ok(p.mn.routeOptimized);
    // A Binding Refresh Request from the CN restarts RR while the route is optimized; past
    // MAX_TOKEN_LIFETIME (210 s) the home token is fetched again too.
    const again = p.mn.onBindingRefreshRequest(300_000);
    const tests = [...p.toCn, ...again.filter((a): a is Send => a.kind === 'send')].filter(
      (s) => s.message === 'homeTestInit' || s.message === 'careOfTestInit',
    );
    t.equal(tests.length, 4, 'two HoTIs and two CoTIs');
    for (const s of tests) {
      const d = decodePacket(s.packet);
      t.equal(d.homeAddress, undefined, `${s.message}: no Home Address option`);
      t.equal(d.routingHomeAddress, undefined, `${s.message}: no type 2 routing header`);
      t.equal(d.source, s.message === 'homeTestInit' ? HOA : COA);
      t.equal(s.path, s.message === 'homeTestInit' ? 'tunnel' : 'direct');
    }
    t.ok(p.mn.routeOptimized, 'data stays direct meanwhile');
  },
);

void t.test(
  'CN: a full binding cache answers BA 130 and binds nothing; the MN keeps tunnelling (§9.5.2)',
  async (t) => {
    const p = correspondents(true, { maxBindings: 0 });
    const events = p.exchange(p.mn.setCareOf(COA, 0), 0);
    t.equal(p.cn.get(HOA), undefined, 'no binding');
    t.notOk(p.mn.routeOptimized, 'the MN took the 130: tunnel');
    t.notOk(
      events.some((e) => e.kind === 'routeOptimized'),
      'never route optimized',
    );
    // Without A the CN answers the rejection all the same (§9.5.4).
    const q = correspondents(false, { maxBindings: 0 });
    q.exchange(q.mn.setCareOf(COA, 0), 0);
    const bu = q.toCn.find((s) => s.message === 'bindingUpdate')!;
    const answer = q.cn.handle(bu.packet, 10).find((a) => a.kind === 'send');
    t.equal(answer?.kind === 'send' ? answer.status : -1, 130, 'BA 130 although A = 0');
  },
);

void t.test('MN: a correspondent BU asks at most MAX_RR_BINDING_LIFETIME (§11.7.2)', async (t) => {
  const p = correspondents(true, { lifetimeSeconds: 10_000 });
  p.exchange(p.mn.setCareOf(COA, 0), 0);
  const bu = decodePacket(p.toCn.find((s) => s.message === 'bindingUpdate')!.packet).mobility;
  t.equal(bu?.kind === 'bindingUpdate' ? bu.lifetimeUnits : -1, 105, '420 s in 4 s units');
  t.equal(p.cn.get(HOA)?.lifetimeSeconds, 420);
});

void t.test(
  'MN: MPA options it does not know are skipped, the prefixes still count (§6.8)',
  async (t) => {
    const c = new HomeAgentDiscoveryClient({
      homeAddress: HOA,
      homePrefixLength: 64,
      configured: { address: HA, port: 4191, publicKey: new Uint8Array(32).fill(1) },
      random: () => 0.5,
    });
    const out = c.onMessage(
      {
        kind: 'mobilePrefixAdvertisement',
        identifier: 1,
        managed: false,
        other: false,
        options: [
          { type: 'unknown', optionType: 99, data: new Uint8Array(6).fill(7) },
          {
            type: 'prefixInformation',
            prefixLength: 64,
            onLink: false,
            autonomous: false,
            routerAddress: true,
            validLifetime: 3600,
            preferredLifetime: 1800,
            prefix: HA,
          },
          { type: 'unknown', optionType: 253, data: new Uint8Array(14) },
        ],
      },
      0,
    );
    const prefixes = out.find((a) => a.kind === 'homePrefixes');
    t.same(prefixes, {
      kind: 'homePrefixes',
      prefixes: [{ prefix: '2001:db8:100::1/64', validLifetime: 3600, preferredLifetime: 1800 }],
      ours: true,
    });
  },
);
