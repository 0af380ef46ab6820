/**
 * Path MTU search (src/protocol/path-mtu.ts) on a fake timeline against a model path: a
 * largest inner size that passes, probes larger than that lost, acks after a round trip, and
 * (optionally) a Packet Too Big for each lost probe. Checks that the confirmed size never
 * exceeds what the path carries, how fast it converges, and what reports can and cannot do.
 */
import t, { type Test } from 'tap';
import {
  BASE_INNER,
  CONFIRM_INTERVAL_MS,
  decodePathMtuMessage,
  encodeProbe,
  encodeProbeAck,
  isPathMtuMessage,
  MAX_PROBES,
  PathMtuTable,
  type PathMtuState,
  PMTU_ACK_LEN,
  PMTU_RAISE_MS,
  PROBE_TIMER_MS,
  SEARCH_GRANULARITY,
} from '../../src/protocol/path-mtu.js';

const OVERHEAD4 = 60;
const RTT = 20;

interface Model {
  /** Largest inner size the path carries now. */
  limit: number;
  /** The path sends a Packet Too Big for a probe it cannot carry. */
  icmp: boolean;
  /** Outer bytes per packet (default IPv4's 60). */
  overhead?: number;
  /** No payload goes on the path (default: some before every step, a path in use). */
  idle?: boolean;
}

/**
 * Runs the table for `owner` until `until`, delivering acks after RTT; checks on every step
 * that the confirmed size fits the model. Returns the events seen.
 */
function run(
  t: Test,
  table: PathMtuTable<string>,
  model: Model,
  from: number,
  until: number,
): { probes: number; now: number } {
  let now = from;
  let probes = 0;
  const acks: { at: number; id: number; size: number }[] = [];
  const reports: { at: number; mtu: number }[] = [];
  for (let steps = 0; steps < 100_000 && now <= until; steps++) {
    if (model.idle !== true && table.get('ha')?.used === false) table.noteTraffic('ha', now);
    for (const p of table.poll(now)) {
      probes++;
      if (p.size <= model.limit) acks.push({ at: now + RTT, id: p.id, size: p.size });
      else if (model.icmp)
        reports.push({ at: now + RTT / 2, mtu: model.limit + (model.overhead ?? OVERHEAD4) });
    }
    const next = Math.min(
      table.nextDeadline(),
      ...acks.map((a) => a.at),
      ...reports.map((r) => r.at),
      until + 1,
    );
    now = next;
    for (const a of acks.filter((x) => x.at <= now)) table.onAck('ha', a.id, a.size, now);
    for (const r of reports.filter((x) => x.at <= now)) table.onTooBig('ha', r.mtu, now);
    acks.splice(0, acks.length, ...acks.filter((x) => x.at > now));
    reports.splice(0, reports.length, ...reports.filter((x) => x.at > now));
    const s = table.get('ha');
    if (s !== undefined && s.maxInner > Math.max(model.limit, BASE_INNER)) {
      t.fail(`at ${now} confirmed ${s.maxInner} > path ${model.limit}`);
      break;
    }
  }
  return { probes, now };
}

void t.test('codec: probe of an exact size, ack with id and size; others are neither', (t) => {
  const p = encodeProbe(0xdeadbeef, 1300);
  t.equal(p.length, 1300);
  t.ok(isPathMtuMessage(p, 0));
  t.same(decodePathMtuMessage(p, 0, p.length), { type: 'probe', id: 0xdeadbeef, size: 1300 });
  const a = encodeProbeAck(7, 1396);
  t.equal(a.length, PMTU_ACK_LEN);
  t.same(decodePathMtuMessage(a, 0, a.length), { type: 'ack', id: 7, size: 1396 });
  t.equal(decodePathMtuMessage(a, 0, a.length - 1), undefined, 'short ack');
  t.equal(decodePathMtuMessage(Uint8Array.of(0x60, 0, 0, 0, 0), 0, 5), undefined, 'IPv6');
  t.notOk(isPathMtuMessage(Uint8Array.of(0x10), 0), 'a path challenge is not one');
  t.throws(() => encodeProbe(1, 4), RangeError);
  t.end();
});

void t.test('a clean path: one probe of the ceiling, confirmed in one round trip', (t) => {
  const table = new PathMtuTable<string>();
  const s = table.setPath('ha', '192.0.2.1:4191', OVERHEAD4, 1396, 0);
  t.equal(s.maxInner, BASE_INNER, 'starts at the base');
  t.equal(s.source, 'base');
  const r = run(t, table, { limit: 1500, icmp: false }, 0, RTT + 1);
  t.equal(r.probes, 1);
  t.equal(s.maxInner, 1396);
  t.equal(s.source, 'probe');
  t.equal(s.status().state, 'complete');
  t.equal(s.status().pathMtu, 1456);
  t.equal(table.nextDeadline(), RTT + CONFIRM_INTERVAL_MS, 'next: a confirmation');
  const c = run(t, table, { limit: 1500, icmp: false }, RTT, RTT + CONFIRM_INTERVAL_MS + 1);
  t.equal(c.probes, 1, 'one confirmation probe per interval');
  t.equal(s.maxInner, 1396);
  t.end();
});

void t.test('an idle path is not confirmed; payload resumes its confirmations (RFC 8899)', (t) => {
  const table = new PathMtuTable<string>();
  const s = table.setPath('ha', '192.0.2.1:4191', OVERHEAD4, 1396, 0);
  // The search runs whether payload goes or not (a new locator: done before the first packet).
  const r = run(t, table, { limit: 1500, icmp: false, idle: true }, 0, RTT + 1);
  t.equal(r.probes, 1, 'the search: one probe of the ceiling');
  t.equal(s.maxInner, 1396);
  // No payload for an hour: not one confirmation, and no timer for this path either.
  const idle = run(t, table, { limit: 1500, icmp: false, idle: true }, RTT, 3_600_000);
  t.equal(idle.probes, 0, 'no confirmation in an idle hour');
  t.ok(s.suspended, 'probing suspended');
  t.equal(s.status().idle, true, 'and the status says so');
  t.equal(table.nextDeadline(), Infinity, 'no deadline while suspended');
  t.equal(s.maxInner, 1396, 'the confirmed size is kept');
  // Payload goes again: a confirmation at once.
  t.ok(table.noteTraffic('ha', 3_600_000), 'resumed');
  t.notOk(s.suspended);
  t.equal(table.nextDeadline(), 3_600_000, 'due now');
  const [c] = table.poll(3_600_000);
  t.equal(c?.size, 1396, 'the confirmed size is probed');
  table.onAck('ha', c!.id, c!.size, 3_600_000 + RTT);
  t.notOk(table.noteTraffic('ha', 3_600_000 + RTT), 'not suspended: nothing to resume');
  // Payload within the interval: the next confirmation goes; then idle again: suspended.
  const [c2] = table.poll(3_600_000 + RTT + CONFIRM_INTERVAL_MS);
  t.equal(c2?.size, 1396, 'confirmed while in use');
  table.onAck('ha', c2!.id, c2!.size, 3_600_000 + 2 * RTT + CONFIRM_INTERVAL_MS);
  const after = run(
    t,
    table,
    { limit: 1500, icmp: false, idle: true },
    3_600_000 + RTT + CONFIRM_INTERVAL_MS,
    7_200_000,
  );
  t.equal(after.probes, 0, 'idle again: no more');
  t.ok(s.suspended);
  t.equal(s.maxInner, 1396);
  t.end();
});

void t.test('a report on an idle path: payload resuming does not send its probe twice', (t) => {
  const table = new PathMtuTable<string>();
  const s = table.setPath('ha', '192.0.2.1:4191', OVERHEAD4, 1396, 0);
  run(t, table, { limit: 1500, icmp: false, idle: true }, 0, RTT + 1);
  run(t, table, { limit: 1500, icmp: false, idle: true }, RTT, 3_600_000);
  t.ok(s.suspended, 'idle: suspended');
  const T = 3_600_000;
  // Our own interface refused a send (not exact): recheck the size at once.
  t.equal(table.onTooBig('ha', 1300 + OVERHEAD4, T, false), 'recheck');
  const first = table.poll(T);
  t.equal(first.length, 1, 'the recheck probe goes');
  table.noteTraffic('ha', T + 5);
  t.ok(table.nextDeadline() > T + 5, 'payload does not make it due again');
  t.same(table.poll(T + 5), [], 'no second probe 5 ms later');
  t.end();
});

void t.test('fragments and ICMP dropped: probing alone finds the size, never above it', (t) => {
  const table = new PathMtuTable<string>();
  const s = table.setPath('ha', '192.0.2.1:4191', OVERHEAD4, 1396, 0);
  const limit = 1400 - OVERHEAD4; // a 1400-byte link over IPv4
  // The first failure costs MAX_PROBES probe timers; the next step (the middle) passes.
  run(t, table, { limit, icmp: false }, 0, MAX_PROBES * PROBE_TIMER_MS + RTT);
  t.ok(s.maxInner > BASE_INNER && s.maxInner <= limit, `after the first failure: ${s.maxInner}`);
  run(t, table, { limit, icmp: false }, MAX_PROBES * PROBE_TIMER_MS + RTT, 60_000);
  t.equal(s.status().state, 'complete');
  t.ok(limit - s.maxInner < SEARCH_GRANULARITY, `converged to ${s.maxInner} (path ${limit})`);
  t.equal(s.source, 'probe');
  t.end();
});

void t.test('with ICMP: a checked report sets the ceiling and its size is probed at once', (t) => {
  const table = new PathMtuTable<string>();
  const s = table.setPath('ha', '[2001:db8::1]:4191', 80, 1396, 0);
  const limit = 1400 - 80;
  const r = run(t, table, { limit, icmp: true, overhead: 80 }, 0, 3 * RTT);
  t.equal(s.maxInner, limit, 'exactly the reported size, confirmed by its probe');
  t.equal(s.status().state, 'complete');
  t.ok(r.probes <= 3, `${r.probes} probes`);
  t.ok(s.status().reportsAccepted >= 1);
  t.end();
});

void t.test('reports never shrink below the base nor raise the size', (t) => {
  const table = new PathMtuTable<string>();
  const s = table.setPath('ha', '192.0.2.1:4191', OVERHEAD4, 1396, 0);
  run(t, table, { limit: 1500, icmp: false }, 0, RTT + 1);
  t.equal(s.maxInner, 1396);
  t.equal(table.onTooBig('ha', 9000, 100), 'ignored', 'larger than what passes: ignored');
  t.equal(s.maxInner, 1396);
  t.equal(table.onTooBig('ha', 576, 101), 'lowered', 'a tiny MTU lowers only to the base');
  t.equal(s.maxInner, BASE_INNER);
  t.equal(s.source, 'icmp');
  t.equal(table.onTooBig('ha', 1500, 102), 'ignored', 'and nothing raises it again');
  t.equal(s.maxInner, BASE_INNER);
  t.equal(table.onTooBig('nobody', 1300, 103), 'ignored', 'an unknown peer');
  // Only a later search (PMTU_RAISE_MS) goes up again, by probes.
  run(t, table, { limit: 1500, icmp: false }, 102, 102 + PMTU_RAISE_MS + RTT + 1);
  t.equal(s.maxInner, 1396, 'raised by a probe after the raise timer');
  t.equal(s.source, 'probe');
  t.end();
});

void t.test(
  'a path that shrinks later: lost confirmations fall back to the base, then search',
  (t) => {
    const table = new PathMtuTable<string>();
    const s = table.setPath('ha', '192.0.2.1:4191', OVERHEAD4, 1396, 0);
    run(t, table, { limit: 1500, icmp: false }, 0, RTT + 1);
    t.equal(s.maxInner, 1396);
    const model = { limit: 1340, icmp: false };
    // The model's check would flag the stale size; advance to the confirmation by hand.
    const at = CONFIRM_INTERVAL_MS + RTT;
    table.noteTraffic('ha', at); // payload goes: the path is confirmed
    let lost = 0;
    for (let now = at, i = 0; i < MAX_PROBES; i++, now += PROBE_TIMER_MS) {
      lost += table.poll(now).length;
    }
    t.equal(lost, MAX_PROBES, 'the confirmation is sent MAX_PROBES times');
    t.equal(s.maxInner, 1396, 'still the old size while it may be loss');
    table.poll(at + MAX_PROBES * PROBE_TIMER_MS);
    t.equal(s.maxInner, BASE_INNER, 'black hole: back to the base');
    t.equal(s.source, 'base');
    run(t, table, model, at + MAX_PROBES * PROBE_TIMER_MS, at + 60_000);
    t.ok(model.limit - s.maxInner < SEARCH_GRANULARITY, `found ${s.maxInner} again`);
    t.end();
  },
);

void t.test('a move starts over at the base; the same locator keeps its state', (t) => {
  const table = new PathMtuTable<string>();
  const a = table.setPath('ha', '192.0.2.1:4191', OVERHEAD4, 1396, 0);
  run(t, table, { limit: 1500, icmp: false }, 0, RTT + 1);
  t.equal(table.setPath('ha', '192.0.2.1:4191', OVERHEAD4, 1396, 50), a, 'same locator');
  const b = table.setPath('ha', '198.51.100.1:4191', OVERHEAD4, 1396, 100);
  t.not(b, a);
  t.equal(b.maxInner, BASE_INNER);
  t.equal(table.nextDeadline(), 100, 'probes at once');
  const stale = a;
  t.notOk(table.onAck('ha', 1, stale.maxInner, 101), 'an ack of the old path does nothing');
  const c = table.setPath('ha', '[2001:db8::1]:4191', 80, 1396, 200);
  t.equal(c.ceiling, 1396);
  run(t, table, { limit: 1500 - 80, icmp: false }, 200, 200 + RTT + 1);
  t.equal(c.maxInner, 1396);
  t.equal(c.status().pathMtu, 1476);
  table.forget('ha');
  t.equal(table.get('ha'), undefined);
  t.equal(table.poll(1_000_000).length, 0, 'forgotten: nothing to send');
  t.end();
});

void t.test('an unknown or mismatched ack is refused', (t) => {
  const table = new PathMtuTable<string>();
  table.setPath('ha', '192.0.2.1:4191', OVERHEAD4, 1396, 0);
  const [p] = table.poll(0);
  t.ok(p);
  t.notOk(table.onAck('ha', p!.id, p!.size - 1, 1), 'wrong size');
  t.notOk(table.onAck('ha', p!.id + 1, p!.size, 1), 'wrong id');
  t.notOk(table.onAck('other', p!.id, p!.size, 1), 'wrong peer');
  t.ok(table.onAck('ha', p!.id, p!.size, 1));
  t.notOk(table.onAck('ha', p!.id, p!.size, 2), 'twice');
  t.end();
});

void t.test('a ceiling at the base needs no search', (t) => {
  const table = new PathMtuTable<string>();
  const s = table.setPath('ha', '192.0.2.1:4191', OVERHEAD4, 1200, 0);
  t.equal(s.ceiling, BASE_INNER);
  t.equal(s.status().state, 'complete');
  t.equal(table.poll(CONFIRM_INTERVAL_MS).length, 0, 'the base is never probed');
  t.end();
});

void t.test(
  'our own interface refusing a size: an upper bound, the search halves below it',
  (t) => {
    const table = new PathMtuTable<string>();
    const s = table.setPath('ha', '192.0.2.1:4191', OVERHEAD4, 1396, 0);
    const [p] = table.poll(0);
    t.equal(p?.size, 1396);
    // The interface carries 1400: a 1456-byte datagram refused, reported as 1455.
    t.equal(table.onTooBig('ha', 1456 - 1, 1, false), 'ceiling');
    t.equal(s.maxInner, BASE_INNER, 'nothing confirmed by it');
    const limit = 1400 - OVERHEAD4;
    let probes = 0;
    for (let now = 1, i = 0; i < 40 && s.searching; i++, now += RTT) {
      for (const q of table.poll(now)) {
        probes++;
        if (q.size <= limit) table.onAck('ha', q.id, q.size, now + 1);
        else table.onTooBig('ha', q.size + OVERHEAD4 - 1, now + 1, false);
      }
    }
    t.notOk(s.searching, 'the search ended');
    t.ok(limit - s.maxInner < SEARCH_GRANULARITY && s.maxInner <= limit, `found ${s.maxInner}`);
    t.ok(probes <= 8, `in ${probes} probes, not one per byte`);
    // Later the interface shrinks below the confirmed size: only a confirmation of that size at
    // once; when it is lost (the interface refuses it), back to the base and search below.
    const found = s.maxInner;
    t.equal(table.onTooBig('ha', 1300 + OVERHEAD4, 10_000, false), 'recheck');
    t.equal(s.maxInner, found, 'a local report lowers no confirmed size');
    let now = 10_000;
    for (let i = 0; i < MAX_PROBES; i++, now += PROBE_TIMER_MS) {
      const due = table.poll(now);
      t.same(
        due.map((q) => q.size),
        [found],
        'the confirmed size probed again',
      );
      table.onTooBig('ha', found + OVERHEAD4 - 1, now + 1, false);
    }
    const [next] = table.poll(now);
    t.equal(s.maxInner, BASE_INNER, 'confirmation lost: back to the base');
    t.equal(s.source, 'base');
    t.ok(
      next !== undefined && next.size <= 1300,
      `the search goes on below the bound (${next?.size})`,
    );
    t.end();
  },
);

void t.test('a local report lowers only the search ceiling', (t) => {
  const table = new PathMtuTable<string>();
  const s = table.setPath('ha', '192.0.2.1:4191', OVERHEAD4, 1440, 0);
  const [p] = table.poll(0);
  t.equal(p?.size, 1440);
  // Refused at 1400 inner + overhead: a ceiling for the search, the base still what is sent.
  t.equal(table.onTooBig('ha', 1400 + OVERHEAD4 - 1, 1, false), 'ceiling');
  t.equal(s.maxInner, BASE_INNER, 'not lowered, not raised');
  t.equal(s.status().state, 'searching');
  const [q] = table.poll(1);
  t.ok(q !== undefined && q.size < 1400 && q.size > BASE_INNER, `probes below it (${q?.size})`);
  t.equal(table.onTooBig('ha', 1400 + OVERHEAD4 - 1, 2, false), 'ignored', 'the same bound again');
  t.end();
});

void t.test('a flood of local reports cannot take maxInner below what probes confirm', (t) => {
  // A forged ICMP error pending on the socket fails our next send (EMSGSIZE): a local report
  // quoting our own real datagram, whatever size it had. The path carries 1400 all along.
  const table = new PathMtuTable<string>();
  const limit = 1400;
  const s = table.setPath('ha', '192.0.2.1:4191', OVERHEAD4, 1440, 0);
  const end = run(t, table, { limit, icmp: false }, 0, 60_000);
  const confirmed = s.maxInner;
  t.ok(confirmed <= limit && limit - confirmed < SEARCH_GRANULARITY, `confirmed ${confirmed}`);
  let probes = 0;
  let lowered = 0;
  let now = end.now;
  const acks: { at: number; id: number; size: number }[] = [];
  for (let i = 0; i < 5_000; i++, now += 20) {
    // 50 forged local reports a second, down to the smallest size they could name.
    if (table.onTooBig('ha', BASE_INNER + OVERHEAD4, now, false) === 'lowered') lowered++;
    for (const q of table.poll(now)) {
      probes++;
      if (q.size <= limit) acks.push({ at: now + RTT, id: q.id, size: q.size });
    }
    for (const a of acks.filter((x) => x.at <= now + 19)) table.onAck('ha', a.id, a.size, a.at);
    acks.splice(0, acks.length, ...acks.filter((x) => x.at > now + 19));
    if (s.maxInner < confirmed) break;
  }
  t.equal(s.maxInner, confirmed, 'maxInner stays at what the probes confirmed');
  t.equal(lowered, 0, 'no report lowered it');
  t.ok(
    probes <= (5_000 * 20) / PROBE_TIMER_MS + 10,
    `about one confirmation a second (${probes} probes in 100 s)`,
  );
  t.end();
});

void t.test('an idle finished path is parked as its size and made back the same', (t) => {
  // Two tables side by side, the same events: one parks idle finished paths, one never does.
  const store = new Map<string, PathMtuState | number>();
  const shape = { locator: '192.0.2.1:4191', overhead: OVERHEAD4, ceiling: 1396 };
  let parkedCalls = 0;
  const parking = new PathMtuTable<string>(store, {
    pathOf: () => shape,
    park: () => (parkedCalls++, true),
  });
  const plain = new PathMtuTable<string>();
  const tables = [parking, plain];
  for (const table of tables) table.setPath('ha', shape.locator, OVERHEAD4, 1396, 0);
  const both = <T>(f: (table: PathMtuTable<string>) => T): [T, T] => [f(parking), f(plain)];
  // The search: one probe of the ceiling, acked.
  const probes = both((table) => table.poll(0));
  t.same(probes[0], probes[1]);
  both((table) => table.onAck('ha', probes[0][0]!.id, 1396, RTT));
  t.same(
    both((table) => table.poll(RTT)),
    [[], []],
    'the search ends at the ceiling',
  );
  // No payload: at the confirmation's time probing rests, and the parking table drops the state.
  const rest = both((table) => table.poll(RTT + CONFIRM_INTERVAL_MS));
  t.same(rest, [[], []], 'no probe from either');
  t.equal(typeof store.get('ha'), 'number', 'parked: no PathMtuState, only a number');
  t.equal(parkedCalls, 1);
  t.ok(parking.isParked('ha'));
  t.equal(parking.nextDeadline(), Infinity, 'no deadline for a parked path');
  t.same(
    parking.statusOf('ha'),
    plain.statusOf('ha') && {
      ...plain.statusOf('ha'),
      probesSent: 0,
      probesAcked: 0,
    },
    'the same status (the per-path counters start again)',
  );
  t.equal(parking.locatorOf('ha'), shape.locator);
  // The same locator set again (a refresh) while parked: the same size, still suspended.
  const again = both((table) => table.setPath('ha', shape.locator, OVERHEAD4, 1396, 3_600_000));
  t.equal(again[0].maxInner, 1396, 'the same size back');
  t.equal(again[0].source, again[1].source);
  t.ok(again[0].suspended && again[1].suspended);
  t.equal(again[0].used, false);
  // Payload again after an hour: both resume with a confirmation of 1396 at once.
  t.same(
    both((table) => table.noteTraffic('ha', 3_600_000)),
    [true, true],
  );
  const confirm = both((table) => table.poll(3_600_000));
  t.same(
    confirm.map((c) => c.map((p) => p.size)),
    [[1396], [1396]],
    'the same confirmation probe',
  );
  t.equal(parking.nextDeadline(), plain.nextDeadline(), 'the same timer');
  t.notOk(parking.isParked('ha'), 'a state again while confirming');
  t.end();
});

void t.test('a parked path takes a report as the state would', (t) => {
  const store = new Map<string, PathMtuState | number>();
  const shape = { locator: '192.0.2.1:4191', overhead: OVERHEAD4, ceiling: 1396 };
  const parking = new PathMtuTable<string>(store, { pathOf: () => shape, park: () => true });
  const plain = new PathMtuTable<string>();
  for (const table of [parking, plain]) {
    table.setPath('ha', shape.locator, OVERHEAD4, 1396, 0);
    const [p] = table.poll(0);
    table.onAck('ha', p!.id, 1396, RTT);
    table.poll(RTT);
    table.poll(RTT + CONFIRM_INTERVAL_MS);
  }
  t.ok(parking.isParked('ha'));
  // A report above the size changes nothing: parked again, no state kept.
  t.equal(parking.onTooBig('ha', 1500, 40_000), plain.onTooBig('ha', 1500, 40_000));
  t.ok(parking.isParked('ha'), 'parked again after a report that changed nothing');
  // A Packet Too Big below it lowers it in both, with the same next deadline.
  t.equal(parking.onTooBig('ha', 1300 + OVERHEAD4, 41_000), 'lowered');
  t.equal(plain.onTooBig('ha', 1300 + OVERHEAD4, 41_000), 'lowered');
  t.equal(parking.get('ha')?.maxInner, 1300);
  t.equal(parking.get('ha')?.source, 'icmp');
  t.equal(parking.nextDeadline(), plain.nextDeadline());
  t.end();
});
