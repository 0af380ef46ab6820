import t from 'tap';
import {
  HomeRegistration,
  type HomeRegistrationAction,
  type HomeRegistrationConfig,
} from '../../src/protocol/mobile-node-registration.js';
import type { BindingAcknowledgement, MobilityOption } from '../../src/wire/types.js';

const HOA = '2001:db8:100::5';
const HA = '2001:db8:100::1';
const CONFIG: HomeRegistrationConfig = {
  homeAddress: HOA,
  homeAgentAddress: HA,
  lifetimeSeconds: 600,
};
const V4 = { family: 4 as const, localAddress: '192.0.2.10' };
const V4B = { family: 4 as const, localAddress: '198.51.100.20' };
const V6 = { family: 6 as const, localAddress: '2001:db8:5::20' };

type Send = Extract<HomeRegistrationAction, { kind: 'sendBindingUpdate' }>;

function ba(
  sequence: number,
  status = 0,
  lifetimeUnits = 150,
  options: MobilityOption[] = [],
): BindingAcknowledgement {
  return {
    kind: 'bindingAcknowledgement',
    status,
    sequence,
    lifetimeUnits,
    options,
    flags: { K: false, R: false, P: false, T: false, B: false, S: false, D: false },
  };
}

function sends(actions: HomeRegistrationAction[]): Send[] {
  return actions.filter((a): a is Send => a.kind === 'sendBindingUpdate');
}

/** Fake clock: fire every deadline up to `end`; returns [time, action] pairs. */
function run(mn: HomeRegistration, from: number, end: number): [number, HomeRegistrationAction][] {
  const out: [number, HomeRegistrationAction][] = [];
  let now = from;
  for (let guard = 0; guard < 10_000; guard++) {
    const d = mn.nextDeadline();
    if (d > end) break;
    now = Math.max(now, d);
    for (const a of mn.poll(now)) out.push([now, a]);
  }
  return out;
}

/** Registers at time 0 with the BU's BA arriving at `at`; returns the machine. */
function registered(options: MobilityOption[] = [], at = 100, config = CONFIG): HomeRegistration {
  const mn = new HomeRegistration(config, 0, 1000);
  const [bu] = sends(mn.setCareOf(V4, 0));
  mn.onBindingAcknowledgement(ba(bu!.message.sequence, 0, 150, options), at);
  return mn;
}

void t.test('IPv4 care-of: RFC 5555 BU at once (inner src HoA, IPv4 CoA option)', async (t) => {
  const mn = new HomeRegistration(CONFIG, 0, 1000);
  t.equal(mn.nextDeadline(), Infinity, 'idle');
  const a = mn.setCareOf(V4, 0);
  t.equal(a.length, 1);
  const s = sends(a)[0]!;
  t.equal(s.reason, 'move');
  t.equal(s.message.sequence, 1000);
  t.equal(s.message.flags.A, true);
  t.equal(s.message.flags.H, true);
  t.equal(s.message.flags.K, false);
  t.equal(s.message.lifetimeUnits, 150);
  t.equal(s.innerSource, HOA);
  t.equal(s.innerDestination, HA);
  t.equal(s.homeAddressOption, undefined);
  t.same(s.message.options, [{ type: 'ipv4CareOfAddress', address: '192.0.2.10' }]);
  t.same(s.careOf, V4);
  t.equal(mn.state, 'registering');
});

void t.test('IPv6 care-of: RFC 6275 BU (inner src CoA, HAO, Alternate CoA)', async (t) => {
  const mn = new HomeRegistration(CONFIG, 0, 7);
  const s = sends(mn.setCareOf({ family: 6, localAddress: '2001:DB8:5:0::20' }, 0))[0]!;
  t.equal(s.innerSource, '2001:db8:5::20', 'canonical text');
  t.equal(s.homeAddressOption, HOA);
  t.same(s.message.options, [{ type: 'alternateCareOfAddress', address: '2001:db8:5::20' }]);
});

void t.test(
  'retransmission: 1.5 s first, doubling, capped at 32 s, new sequence each time',
  async (t) => {
    const mn = new HomeRegistration(CONFIG, 0, 65533);
    const first = sends(mn.setCareOf(V4, 0));
    const later = run(mn, 0, 200_000).filter(([, a]) => a.kind === 'sendBindingUpdate');
    const times = [0, ...later.map(([at]) => at)];
    t.same(times, [0, 1500, 4500, 10500, 22500, 46500, 78500, 110500, 142500, 174500]);
    const seqs = [...first, ...later.map(([, a]) => a as Send)].map((s) => s.message.sequence);
    t.same(
      seqs.slice(0, 5),
      [65533, 65534, 65535, 0, 1],
      'new greater sequence, wrapping 65535 -> 0',
    );
    t.ok(later.every(([, a]) => (a as Send).reason === 'retransmit'));
    t.equal(mn.status(174_500).retransmissions, 9);
    t.equal(mn.status(174_500).totalRetransmissions, 9);
  },
);

void t.test('retransmission of a non-first registration starts at 1 s', async (t) => {
  const mn = registered();
  const move = sends(mn.setCareOf(V4B, 10_000));
  t.equal(move.length, 1);
  const later = run(mn, 10_000, 80_000).filter(([, a]) => a.kind === 'sendBindingUpdate');
  t.same(later.map(([at]) => at - 10_000).slice(0, 7), [1000, 3000, 7000, 15000, 31000, 63000]);
});

void t.test('a late BA for an earlier retransmission of the same attempt registers', async (t) => {
  const mn = new HomeRegistration(CONFIG, 0, 10);
  mn.setCareOf(V4, 0);
  run(mn, 0, 1500); // seq 11 sent at 1.5 s
  const a = mn.onBindingAcknowledgement(ba(10, 0), 1800);
  t.equal(a[0]?.kind, 'registered');
  t.same(mn.onBindingAcknowledgement(ba(11, 0), 1900), [], 'the second BA is a duplicate: ignored');
});

void t.test('BAs that do not answer the current attempt are ignored', async (t) => {
  const mn = new HomeRegistration(CONFIG, 0, 10);
  mn.setCareOf(V4, 0); // seq 10 for V4
  mn.setCareOf(V4B, 100); // seq 11 for V4B
  t.same(mn.onBindingAcknowledgement(ba(10, 0), 200), [], 'BA for the old care-of');
  t.same(mn.onBindingAcknowledgement(ba(99, 0), 200), [], 'unknown sequence');
  t.equal(mn.state, 'registering');
  const r = mn.onBindingAcknowledgement(ba(11, 0), 300);
  t.equal(r[0]?.kind, 'registered');
  t.same((r[0] as { careOf: unknown }).careOf, V4B);
});

void t.test('status 0: registered, lifetime min(granted, asked), refresh at 85%', async (t) => {
  const mn = new HomeRegistration({ ...CONFIG, lifetimeSeconds: 400 }, 0, 5);
  mn.setCareOf(V4, 0);
  const a = mn.onBindingAcknowledgement(ba(5, 0, 150), 200); // granted 600 > asked 400
  t.same(a, [
    {
      kind: 'registered',
      status: 0,
      changed: true,
      lifetimeSeconds: 400,
      careOf: V4,
      natDetected: false,
      udpEncapsulationRequired: false,
      refreshTime: 0,
      prefixDiscoveryNeeded: false,
      homeAddress4: null,
      ipv4Status: null,
    },
  ]);
  t.equal(mn.state, 'registered');
  t.equal(mn.nextDeadline(), 340_000, 'refresh at 85% of 400 s from the BU send time');
  const st = mn.status(100_000);
  t.equal(st.lifetimeRemainingSeconds, 300);
  t.equal(st.registeredCareOf, '::ffff:192.0.2.10');
  t.equal(st.lastStatusName, 'Binding Update accepted');
  const r = run(mn, 200, 340_000);
  t.equal(r.length, 1);
  t.equal((r[0]![1] as Send).reason, 'refresh');
  t.equal((r[0]![1] as Send).message.sequence, 6);
  t.equal(mn.nextDeadline(), 341_000, 'refresh BU retransmits after 1 s');
  const again = mn.onBindingAcknowledgement(ba(6, 0, 150), 340_050);
  t.equal((again[0] as { changed: boolean }).changed, false, 'a refresh is not a change');
  t.equal(mn.nextDeadline(), 340_000 + 340_000, 'next refresh counted from the refresh BU');
  void t.test('granted shorter than asked wins', async (t) => {
    const m2 = new HomeRegistration(CONFIG, 0, 5);
    m2.setCareOf(V4, 0);
    const r2 = m2.onBindingAcknowledgement(ba(5, 0, 10), 50);
    t.equal((r2[0] as { lifetimeSeconds: number }).lifetimeSeconds, 40);
  });
});

void t.test('Binding Refresh Advice sets the refresh time', async (t) => {
  const mn = registered([{ type: 'bindingRefreshAdvice', refreshInterval: 30 }]);
  t.equal(mn.nextDeadline(), 120_000);
});

void t.test('NAT Detection: refresh no later than the NAT refresh time', async (t) => {
  const mn = registered([
    { type: 'natDetection', udpEncapsulationRequired: true, refreshTime: 25 },
  ]);
  t.equal(mn.nextDeadline(), 25_000);
  const st = mn.status(1000);
  t.equal(st.natDetected, true);
  t.equal(st.udpEncapsulationRequired, true);
  t.equal(st.natRefreshTimeSeconds, 25);
  const r = run(mn, 100, 25_000);
  t.equal((r[0]![1] as Send).reason, 'natKeepalive');
  void t.test('refresh time 0 means the 110 s default; all-ones means none', async (t) => {
    t.equal(
      registered([
        { type: 'natDetection', udpEncapsulationRequired: false, refreshTime: 0 },
      ]).nextDeadline(),
      110_000,
    );
    t.equal(
      registered([
        { type: 'natDetection', udpEncapsulationRequired: false, refreshTime: 0xffffffff },
      ]).nextDeadline(),
      510_000,
    );
  });
});

void t.test('status 1: registered and prefix discovery needed', async (t) => {
  const mn = new HomeRegistration(CONFIG, 0, 5);
  mn.setCareOf(V4, 0);
  const a = mn.onBindingAcknowledgement(ba(5, 1), 100);
  t.equal(a[0]?.kind, 'registered');
  t.equal((a[0] as { prefixDiscoveryNeeded: boolean }).prefixDiscoveryNeeded, true);
  t.equal(mn.status(100).prefixDiscoveryNeeded, true);
});

void t.test('status 135: resync to BA sequence + 1 and resend at once', async (t) => {
  const mn = new HomeRegistration(CONFIG, 0, 65530); // e.g. a restarted MN; the HA last accepted 65535
  mn.setCareOf(V4, 0);
  const a = sends(mn.onBindingAcknowledgement(ba(65535, 135, 0), 100));
  t.equal(a.length, 1);
  t.equal(a[0]?.reason, 'resync');
  t.equal(a[0]?.message.sequence, 0, '65535 + 1 wraps to 0');
  t.equal(mn.status(100).lastStatus, 135);
  const r = mn.onBindingAcknowledgement(ba(0, 0), 200);
  t.equal(r[0]?.kind, 'registered');
  void t.test('a 135 that cannot answer the outstanding BU is ignored', async (t) => {
    const m2 = new HomeRegistration(CONFIG, 0, 5000);
    m2.setCareOf(V4, 0); // seq 5000
    t.same(m2.onBindingAcknowledgement(ba(4000, 135, 0), 100), [], '5000 is newer than 4000');
    t.equal(m2.status(100).sequence, 5000, 'counter not moved back');
    t.equal(sends(m2.onBindingAcknowledgement(ba(5000, 135, 0), 100))[0]?.message.sequence, 5001);
  });
});

void t.test('rejections stop and report the status name', async (t) => {
  const names: Record<number, string> = {
    128: 'Reason unspecified',
    129: 'Administratively prohibited',
    130: 'Insufficient resources',
    131: 'Home registration not supported',
    132: 'Not home subnet',
    133: 'Not home agent for this mobile node',
    134: 'Duplicate Address Detection failed',
    136: 'Expired home nonce index',
    139: 'Registration type change disallowed',
    140: 'Mobile Router operation not permitted',
    174: 'Invalid care-of address',
    250: 'unknown status 250 (rejected)',
  };
  for (const [code, name] of Object.entries(names)) {
    const mn = new HomeRegistration(CONFIG, 0, 5);
    mn.setCareOf(V4, 0);
    const a = mn.onBindingAcknowledgement(ba(5, Number(code), 0), 100);
    const failover = [130, 131, 132, 133].includes(Number(code));
    t.same(
      a,
      [{ kind: 'failed', status: Number(code), statusName: name, tryAnotherHomeAgent: failover }],
      `status ${code}${failover ? ': try another home agent' : ''}`,
    );
    t.equal(mn.state, 'failed');
    t.equal(mn.nextDeadline(), Infinity, 'no more BUs');
    t.same(run(mn, 100, 1_000_000), []);
    const retry = sends(mn.setCareOf(V4, 2_000_000));
    t.equal(retry.length, 1, 'setCareOf retries after a failure');
  }
});

void t.test('unknown accepted status (< 128) registers', async (t) => {
  const mn = new HomeRegistration(CONFIG, 0, 5);
  mn.setCareOf(V4, 0);
  t.equal(mn.onBindingAcknowledgement(ba(5, 77), 100)[0]?.kind, 'registered');
});

void t.test(
  'MAX_UPDATE_RATE: at most 3 BUs per second, the deferred one carries the latest care-of',
  async (t) => {
    const mn = new HomeRegistration(CONFIG, 0, 1);
    const out: Send[] = [];
    const cares = ['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4', '192.0.2.5'];
    cares.forEach((c, i) =>
      out.push(...sends(mn.setCareOf({ family: 4, localAddress: c }, i * 20))),
    );
    t.equal(out.length, 3);
    t.equal(mn.nextDeadline(), 1000);
    const later = run(mn, 100, 1000);
    t.equal(later.length, 1);
    t.equal(later[0]![0], 1000);
    t.same((later[0]![1] as Send).message.options, [
      { type: 'ipv4CareOfAddress', address: '192.0.2.5' },
    ]);
  },
);

void t.test('expiry when refreshes go unanswered', async (t) => {
  const mn = registered([], 100, { ...CONFIG, lifetimeSeconds: 40 });
  const r = run(mn, 100, 40_000);
  const kinds = r.map(([at, a]) => `${at}:${a.kind}`);
  t.same(kinds, [
    '34000:sendBindingUpdate',
    '35000:sendBindingUpdate',
    '37000:sendBindingUpdate',
    '40000:bindingExpired',
  ]);
  t.equal(mn.state, 'registering', 'keeps trying');
  t.equal(mn.status(40_000).lifetimeRemainingSeconds, 0);
});

void t.test('Binding Refresh Request: BU at once when registered; ignored otherwise', async (t) => {
  const idle = new HomeRegistration(CONFIG, 0, 1);
  t.same(idle.onBindingRefreshRequest(0), []);
  const mn = registered();
  const a = sends(mn.onBindingRefreshRequest(5000));
  t.equal(a.length, 1);
  t.equal(a[0]?.reason, 'refreshRequest');
  t.same(mn.onBindingRefreshRequest(5001), [], 'one already in flight');
});

void t.test('deregistration: lifetime 0, BA ends it', async (t) => {
  const mn = registered();
  const a = sends(mn.deregister(10_000));
  t.equal(a[0]?.message.lifetimeUnits, 0);
  t.equal(a[0]?.reason, 'deregister');
  t.equal(mn.state, 'deregistering');
  const d = mn.onBindingAcknowledgement(ba(a[0]!.message.sequence, 0, 0), 10_100);
  t.same(d, [{ kind: 'deregistered', status: 0, gaveUp: false }]);
  t.equal(mn.state, 'deregistered');
  t.equal(mn.nextDeadline(), Infinity);
  void t.test('133 (no binding at the HA) also ends it', async (t) => {
    const m2 = registered();
    const s = sends(m2.deregister(1000));
    t.same(m2.onBindingAcknowledgement(ba(s[0]!.message.sequence, 133, 0), 1100), [
      { kind: 'deregistered', status: 133, gaveUp: false },
    ]);
  });
});

void t.test('deregistration gives up after 3 tries', async (t) => {
  const mn = registered();
  sends(mn.deregister(10_000));
  const r = run(mn, 10_000, 100_000).map(([at, a]) => `${at - 10_000}:${a.kind}`);
  t.same(r, ['1000:sendBindingUpdate', '3000:sendBindingUpdate', '7000:deregistered']);
  t.equal(mn.state, 'deregistered');
  void t.test('without a link it ends at once', async (t) => {
    const m2 = registered();
    m2.setCareOf(null, 1000);
    t.same(m2.deregister(1001), [{ kind: 'deregistered', status: null, gaveUp: true }]);
  });
});

void t.test(
  'back home (care-of == HoA): returning-home BU from the HoA, no options, on the link',
  async (t) => {
    const mn = new HomeRegistration(CONFIG, 0, 1);
    mn.setCareOf(V6, 0);
    mn.onBindingAcknowledgement(ba(1, 0), 50);
    const s = sends(mn.setCareOf({ family: 6, localAddress: HOA }, 1000))[0]!;
    t.equal(s.message.lifetimeUnits, 0);
    t.equal(s.innerSource, HOA);
    t.equal(s.homeAddressOption, undefined);
    t.same(s.message.options, []);
    t.equal(s.onHomeLink, true, 'to be sent out of the home link, not through the tunnel');
    t.equal(s.reason, 'returnHome');
    t.equal(mn.state, 'returning-home');
  },
);

void t.test(
  'returning home: only the BA makes it home; the binding stays until then',
  async (t) => {
    const mn = registered();
    const refreshAt = mn.nextDeadline();
    const [s] = sends(mn.returnHome(10_000));
    t.ok(s, 'BU at once');
    t.equal(s!.careOf.localAddress, HOA, 'CoA == HoA');
    t.equal(s!.message.lifetimeUnits, 0);
    t.same(s!.message.flags.H && s!.message.flags.A, true, 'H and A');
    const st = mn.status(10_000);
    t.equal(st.state, 'returning-home');
    t.ok(st.bindingValid, 'the away binding is still in force');
    t.same(st.careOf, V4, 'the away care-of is still ours');
    t.same(mn.returnHome(10_001), [], 'a second call while one is outstanding: nothing');
    t.same(mn.onBindingRefreshRequest(10_002), [], 'no refresh meanwhile');
    const done = mn.onBindingAcknowledgement(ba(s!.message.sequence, 0, 0), 10_050);
    t.same(done, [{ kind: 'returnedHome', status: 0 }]);
    t.equal(mn.state, 'deregistered');
    t.same(mn.status(10_050).careOf, { family: 6, localAddress: HOA });
    t.equal(mn.status(10_050).bindingValid, false);
    t.equal(mn.nextDeadline(), Infinity, 'nothing more to send at home');
    t.same(mn.returnHome(20_000), [], 'already home');
    t.ok(refreshAt < Infinity);
  },
);

void t.test('returning home refused (BA 129): still registered, binding untouched', async (t) => {
  const mn = registered();
  const before = mn.status(10_000);
  const deadline = mn.nextDeadline();
  const [s] = sends(mn.returnHome(10_000));
  const r = mn.onBindingAcknowledgement(ba(s!.message.sequence, 129, 0), 10_020);
  t.same(r, [{ kind: 'returnHomeFailed', status: 129 }]);
  t.equal(mn.state, 'registered');
  const after = mn.status(10_020);
  t.same(after.careOf, before.careOf);
  t.equal(after.registeredCareOf, before.registeredCareOf);
  t.ok(after.bindingValid);
  t.equal(mn.nextDeadline(), deadline, 'the refresh stays where it was');
  t.equal(after.lastStatus, 129);
});

void t.test('returning home unanswered: 3 tries, then registration goes on', async (t) => {
  const mn = registered();
  t.equal(sends(mn.returnHome(10_000)).length, 1);
  const r = run(mn, 10_000, 20_000).map(([at, a]) => `${at - 10_000}:${a.kind}`);
  t.same(r, ['1000:sendBindingUpdate', '3000:sendBindingUpdate', '7000:returnHomeFailed']);
  t.equal(mn.state, 'registered');
  void t.test('with the move timeout the tries are quicker', async (t) => {
    const m2 = registered([], 100, { ...CONFIG, moveTimeoutMs: 250 });
    sends(m2.returnHome(10_000));
    const r2 = run(m2, 10_000, 20_000).map(([at, a]) => `${at - 10_000}:${a.kind}`);
    t.same(r2, ['250:sendBindingUpdate', '750:sendBindingUpdate', '1750:returnHomeFailed']);
  });
});

void t.test(
  'a move while returning home: registered from the new care-of if it fails',
  async (t) => {
    const mn = registered();
    const [home] = sends(mn.returnHome(10_000));
    t.same(mn.setCareOf(V4B, 10_010), [], 'the home BU stays the one outstanding');
    t.equal(mn.state, 'returning-home');
    const r = mn.onBindingAcknowledgement(ba(home!.message.sequence, 129, 0), 10_020);
    t.equal(r[0]?.kind, 'returnHomeFailed');
    const [bu] = sends(r);
    t.equal(bu?.careOf.localAddress, V4B.localAddress, 'a BU for the new care-of at once');
    t.equal(bu?.message.lifetimeUnits, 150);
    t.notOk(bu?.onHomeLink, 'through the tunnel');
    t.equal(mn.state, 'registering');
  },
);

void t.test(
  'returning home supersedes an outstanding BU; a resync stays on the link',
  async (t) => {
    const mn = new HomeRegistration(CONFIG, 0, 1000);
    const [first] = sends(mn.setCareOf(V4, 0));
    const [home] = sends(mn.returnHome(10));
    t.equal(home?.message.sequence, first!.message.sequence + 1);
    t.same(mn.onBindingAcknowledgement(ba(first!.message.sequence, 0), 20), [], 'old BA: not ours');
    const [again] = sends(mn.onBindingAcknowledgement(ba(4000, 135, 0), 30));
    t.equal(again?.message.sequence, 4001, 'resynchronised');
    t.equal(again?.onHomeLink, true, 'still out of the home link');
    t.same(mn.onBindingAcknowledgement(ba(4001, 0, 0), 40), [{ kind: 'returnedHome', status: 0 }]);
  },
);

void t.test('returning home without any binding (started at home)', async (t) => {
  const mn = new HomeRegistration(CONFIG, 0, 1);
  const [s] = sends(mn.setCareOf({ family: 6, localAddress: HOA }, 0));
  t.ok(s, 'the BU is sent all the same: it is the proof');
  t.same(mn.onBindingAcknowledgement(ba(1, 129, 0), 10), [
    { kind: 'returnHomeFailed', status: 129 },
  ]);
  t.equal(mn.state, 'idle', 'no care-of, no binding');
  const [s2] = sends(mn.returnHome(100));
  t.same(mn.onBindingAcknowledgement(ba(s2!.message.sequence, 0, 0), 110), [
    { kind: 'returnedHome', status: 0 },
  ]);
  void t.test('cancelled: back to what it was', async (t) => {
    const m2 = registered();
    sends(m2.returnHome(10_000));
    t.same(m2.cancelReturnHome(10_001), []);
    t.equal(m2.state, 'registered');
    t.same(m2.cancelReturnHome(10_002), [], 'nothing to cancel');
  });
});

void t.test('loss of all links stops sending; a new link registers at once', async (t) => {
  const mn = new HomeRegistration(CONFIG, 0, 1);
  mn.setCareOf(V4, 0);
  t.same(mn.setCareOf(null, 500), []);
  t.equal(mn.state, 'detached');
  t.equal(mn.nextDeadline(), Infinity);
  const s = sends(mn.setCareOf(V6, 5000));
  t.equal(s.length, 1);
  t.equal(s[0]?.message.sequence, 2);
  t.same(mn.setCareOf(V6, 5001), [], 'same care-of again is a no-op');
});

void t.test('status() and the binding update list entry', async (t) => {
  const mn = new HomeRegistration(CONFIG, 0, 42);
  const st0 = mn.status(0);
  t.equal(st0.state, 'idle');
  t.equal(st0.sequence, null);
  mn.setCareOf(V4, 0);
  mn.onBindingAcknowledgement(
    ba(42, 0, 150, [{ type: 'natDetection', udpEncapsulationRequired: false, refreshTime: 30 }]),
    100,
  );
  const st = mn.status(10_000);
  t.equal(st.state, 'registered');
  t.equal(st.sequence, 42);
  t.equal(st.lifetimeSeconds, 600);
  t.equal(st.lifetimeRemainingSeconds, 590);
  t.equal(st.refreshInSeconds, 20);
  t.equal(st.natDetected, true);
  t.same(st.careOf, V4);
  t.equal(JSON.parse(JSON.stringify(st)).homeAddress, HOA, 'JSON-able');
  const bul = mn.bindingUpdateListEntry();
  t.equal(bul.destination, HA);
  t.equal(bul.careOfAddress, '::ffff:192.0.2.10');
  t.equal(bul.lastSequenceSent, 42);
  t.equal(bul.expiresAt, 600_000);
});

void t.test('edge inputs', async (t) => {
  t.throws(() => new HomeRegistration(CONFIG, 0, 70000), RangeError);
  t.throws(() => new HomeRegistration({ ...CONFIG, lifetimeSeconds: 0 }, 0), RangeError);
  const r = new HomeRegistration(CONFIG, 0);
  const s = r.status(0);
  t.equal(s.sequence, null);
  const bu = sends(r.setCareOf(V4, 0))[0]!;
  t.ok(bu.message.sequence >= 0 && bu.message.sequence <= 0xffff, 'random start in range');
  void t.test('losing the link while deregistering ends the deregistration', async (t) => {
    const mn = registered();
    mn.deregister(1000);
    t.same(mn.setCareOf(null, 1100), [{ kind: 'deregistered', status: null, gaveUp: true }]);
    t.equal(mn.state, 'deregistered');
  });
  void t.test('deregister before any registration ends at once', async (t) => {
    const mn = new HomeRegistration(CONFIG, 0, 1);
    t.same(mn.deregister(0), [{ kind: 'deregistered', status: null, gaveUp: true }]);
    t.same(mn.deregister(1), [], 'twice is a no-op');
  });
});
