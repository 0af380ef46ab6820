/**
 * Movement detection at the MN on a fake clock (RFC 6275 §11.5): the care-of choice (current
 * kept, preferred family, only families the HA can be reached on, never a home-link candidate),
 * the home-link proof step and resting of a refused link, NUD-like probing (silence -> probe,
 * probeAttempts unanswered BUs -> path lost, once per attempt), sleep/resume (late timer, wall
 * clock jump) and the periodic re-check.
 */
import t from 'tap';
import {
  CLOCK_JUMP_MS,
  LATE_TIMER_MS,
  MovementDetector,
  RETURN_HOME_RETRY_MAX_MS,
  RETURN_HOME_RETRY_MS,
  type AgentFamilies,
  type CareOfCandidate,
} from '../../src/protocol/movement.js';

const V4: CareOfCandidate = { family: 4, localAddress: '192.0.2.10' };
const V4B: CareOfCandidate = { family: 4, localAddress: '198.51.100.10' };
const V6: CareOfCandidate = { family: 6, localAddress: '2001:db8:1::10' };
const HOME: CareOfCandidate = {
  family: 6,
  localAddress: '2001:db8:100::1000',
  homeLink: 'eth1',
  homeLinkIndex: 3,
};
const BOTH = { agent4: '203.0.113.1', agent6: '2001:db8:ff::1' };

function detector(prefer: 'ipv4' | 'ipv6' = 'ipv6', canGoHome = true): MovementDetector {
  const m = new MovementDetector({
    prefer,
    canGoHome,
    recheckIntervalMs: 5000,
    probeIntervalMs: 5000,
    probeAttempts: 3,
  });
  m.start(0, 1_000_000);
  return m;
}

/** Runs a candidate round the way the driver does; returns the action kinds. */
function round(
  m: MovementDetector,
  c: CareOfCandidate[],
  now: number,
  agents: AgentFamilies = BOTH,
): string[] {
  const out: string[] = [];
  for (const a of m.onCandidates(c, agents, now)) {
    out.push(a.kind);
    if (a.kind === 'move') m.moved(a.to);
    if (a.kind === 'enter-home') m.enteredHome(a.candidate);
    if (a.kind === 'stay-home' || a.kind === 'enter-home') return out;
  }
  for (const a of m.afterMove(true)) out.push(a.kind);
  return out;
}

void t.test('care-of choice', async (t) => {
  const m = detector('ipv6');
  t.same(round(m, [V4, V6], 0), ['move']);
  t.equal(m.careOf, V6, 'the preferred family');
  t.same(round(m, [V4, V6], 1), [], 'same care-of: no move');
  t.same(round(m, [V4B, V6], 2), [], 'the current one stays while offered');
  t.same(round(m, [V4B], 3), ['move']);
  t.equal(m.careOf, V4B);
  t.same(round(m, [V4B, V6], 4), [], 'no flapping back to the preferred family');
  t.same(round(m, [V6], 5, { agent4: '203.0.113.1' }), ['move'], 'no IPv6 HA address');
  t.equal(m.careOf, null, 'detached');
});

void t.test('home link: proof, entering, staying, leaving', async (t) => {
  const m = detector('ipv4');
  t.same(round(m, [V4, HOME], 0), ['move', 'prove-home'], 'a candidate is not a care-of');
  t.equal(m.careOf, V4);
  t.same(m.homeProof, { link: 'eth1', ifindex: 3 });
  t.same(round(m, [V4, HOME], 1), [], 'proof outstanding');
  m.homeProven();
  t.same(round(m, [V4, HOME], 2), ['enter-home']);
  t.equal(m.atHome, 'eth1');
  t.same(round(m, [V4, HOME], 3), ['stay-home'], 'the home link wins');
  t.same(round(m, [V4], 4), ['leave-home', 'move'], 'leaving home, then the move');
  t.equal(m.atHome, undefined);
  t.equal(m.careOf, V4);
});

void t.test('home link: a proof cancelled when the link goes away or is replaced', async (t) => {
  const m = detector('ipv4');
  round(m, [V4, HOME], 0);
  t.same(round(m, [V4], 1), ['cancel-home-proof']);
  t.equal(m.homeProof, undefined);
  round(m, [V4, HOME], 2);
  m.onCandidates([V4, HOME], BOTH, 3);
  t.same(
    m.afterMove(false).map((a) => a.kind),
    ['cancel-home-proof', 'prove-home'],
    'a new registration replaced it: asked again',
  );
});

void t.test('home link: refused links rest, doubling, forgotten when gone', async (t) => {
  const m = detector('ipv4');
  round(m, [V4, HOME], 0);
  t.same(m.homeRefused(0), { link: 'eth1', waitMs: RETURN_HOME_RETRY_MS });
  t.same(round(m, [V4, HOME], RETURN_HOME_RETRY_MS - 1), [], 'resting');
  t.same(round(m, [V4, HOME], RETURN_HOME_RETRY_MS), ['prove-home']);
  t.equal(m.homeRefused(RETURN_HOME_RETRY_MS).waitMs, 2 * RETURN_HOME_RETRY_MS, 'doubling');
  let now = RETURN_HOME_RETRY_MS;
  for (let i = 0; i < 10; i++) {
    now += RETURN_HOME_RETRY_MAX_MS;
    round(m, [V4, HOME], now);
    m.homeRefused(now);
  }
  t.equal(m.homeRefused(now).link, undefined, 'nothing outstanding');
  now += RETURN_HOME_RETRY_MAX_MS;
  round(m, [V4, HOME], now);
  t.equal(m.homeRefused(now).waitMs, RETURN_HOME_RETRY_MAX_MS, 'capped');
  round(m, [V4], now + 1);
  t.same(round(m, [V4, HOME], now + 2), ['prove-home'], 'gone and back: no rest');
  const never = detector('ipv4', false);
  t.same(round(never, [V4, HOME], 0), ['move'], 'without home-link control: never home');
});

void t.test('probing: silence, then path lost once per attempt', async (t) => {
  const m = detector();
  round(m, [V6], 0);
  t.equal(m.nextDeadline(true), 5000, 'only the re-check before anything is sent');
  t.ok(m.sent(), 'the first send starts the silence deadline');
  t.notOk(m.sent());
  m.heard(1000);
  t.equal(m.nextDeadline(false), 5000, 'not registered: no silence deadline');
  m.sent();
  t.same(m.poll(5000, 1_005_000, true), [{ kind: 'recheck' }]);
  t.equal(m.nextDeadline(true), 6000);
  m.armed(6000, 5000);
  t.same(m.poll(6000, 1_006_000, true), [{ kind: 'probe', why: 'silence', silentMs: 5000 }]);
  t.same(m.bindingUpdateSent(2, false), []);
  t.same(m.bindingUpdateSent(3, true), [], 'a home-link BU says nothing about the path');
  t.same(m.bindingUpdateSent(3, false), [{ kind: 'path-lost', unanswered: 3 }]);
  t.same(m.bindingUpdateSent(4, false), [], 'once per attempt');
  m.registered();
  t.same(m.bindingUpdateSent(3, false), [{ kind: 'path-lost', unanswered: 3 }], 'a new attempt');
  m.moved(V4);
  t.same(m.bindingUpdateSent(3, false), [{ kind: 'path-lost', unanswered: 3 }], 'after a move');
  m.heard(7000);
  t.equal(m.nextDeadline(true), Infinity, 'heard: silence over, re-check done');
});

void t.test('sleep/resume: late timer and wall-clock jump', async (t) => {
  const m = detector();
  m.armed(10_000, 0);
  t.same(m.poll(10_000 + LATE_TIMER_MS, 1_010_000 + LATE_TIMER_MS, false), [], 'just in time');
  m.armed(20_000, 12_000);
  t.same(m.poll(30_000, 1_030_000, false), [{ kind: 'resume', how: 'late-timer', ms: 10_000 }]);
  m.armed(31_000, 30_000);
  t.same(m.poll(31_000, 1_031_000 + CLOCK_JUMP_MS + 1, false), [
    { kind: 'resume', how: 'clock-jump', ms: CLOCK_JUMP_MS + 1 },
  ]);
  m.armed(32_000, 31_000);
  t.same(m.poll(32_000, 1_032_000 + CLOCK_JUMP_MS + 1, false), [], 'the new offset is kept');
});
