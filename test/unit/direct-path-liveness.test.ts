/**
 * Direct-path liveness (src/protocol/direct-path-liveness.ts) on a fake clock: when a probe
 * goes out, when the path is declared failed, what counts as heard, and the deadlines the
 * driver arms its timer with.
 */
import t, { type Test } from 'tap';
import {
  DIRECT_FAIL_MS,
  DIRECT_PROBE_AFTER_MS,
  DIRECT_TICK_MS,
  DirectPathLiveness,
  PROBE_REPLY,
  PROBE_REQUEST,
  probeAnswer,
  type DirectPathAction,
} from '../../src/protocol/direct-path-liveness.js';

const T0 = 1_000_000;

/**
 * Polls every DIRECT_TICK_MS from `from` (exclusive) to `to` (inclusive), each at the deadline
 * the engine asked for (checked); returns the actions with their time since T0.
 */
function tick(
  t: Test,
  l: DirectPathLiveness,
  from: number,
  to: number,
  active = true,
): [number, DirectPathAction][] {
  const out: [number, DirectPathAction][] = [];
  for (let now = from + DIRECT_TICK_MS; now <= to; now += DIRECT_TICK_MS) {
    t.equal(l.nextDeadline(), now, `deadline armed for ${now - T0}`);
    for (const a of l.poll(now, active)) out.push([now - T0, a]);
  }
  return out;
}

void t.test('the constants are the ones the daemons have always used', (t) => {
  t.equal(DIRECT_PROBE_AFTER_MS, 300);
  t.equal(DIRECT_FAIL_MS, 700);
  t.equal(DIRECT_TICK_MS, 100);
  t.equal(PROBE_REQUEST, 0x01);
  t.equal(PROBE_REPLY, 0x02);
  t.end();
});

void t.test('idle until route optimized, then a check every tick', (t) => {
  const l = new DirectPathLiveness();
  t.equal(l.nextDeadline(), Infinity, 'no deadline before the route is optimized');
  t.same(l.poll(T0, false), []);
  t.equal(l.nextDeadline(), Infinity);
  l.routeOptimized(T0);
  t.equal(l.nextDeadline(), T0 + DIRECT_TICK_MS);
  l.routeOptimized(T0 + 50);
  t.equal(l.nextDeadline(), T0 + DIRECT_TICK_MS, 'an armed check is not pushed back');
  t.same(tick(t, l, T0, T0 + 1000), [], 'nothing sent: nothing to judge, no probe');
  t.same(l.poll(T0 + 1100, false), [], 'route no longer optimized');
  t.equal(l.nextDeadline(), Infinity, 'idle again');
  t.end();
});

void t.test('silence while sending: probes from 300 ms, one a tick; failed at 700 ms', (t) => {
  const l = new DirectPathLiveness();
  l.routeOptimized(T0);
  l.sent(T0 + 10);
  const actions = tick(t, l, T0, T0 + 700);
  t.same(actions, [
    [300, { kind: 'sendProbe', message: PROBE_REQUEST }],
    [400, { kind: 'sendProbe', message: PROBE_REQUEST }],
    [500, { kind: 'sendProbe', message: PROBE_REQUEST }],
    [600, { kind: 'sendProbe', message: PROBE_REQUEST }],
    [700, { kind: 'pathFailed', silentMs: 700 }],
  ]);
  t.equal(l.nextDeadline(), T0 + 800, 'still checking until the driver reports the tunnel');
  t.end();
});

void t.test('a probe reply (or any packet) keeps the path alive', (t) => {
  const l = new DirectPathLiveness();
  l.routeOptimized(T0);
  l.sent(T0 + 10);
  t.same(l.poll(T0 + 300, true), [{ kind: 'sendProbe', message: PROBE_REQUEST }]);
  t.equal(l.probeReceived(PROBE_REPLY, T0 + 320), undefined, 'a reply asks for nothing');
  t.same(l.poll(T0 + 400, true), [], 'answered since the last send: not sending');
  l.sent(T0 + 450);
  t.same(l.poll(T0 + 600, true), [], '280 ms of silence: too early to probe');
  t.same(l.poll(T0 + 620, true), [{ kind: 'sendProbe', message: PROBE_REQUEST }]);
  t.same(l.poll(T0 + 700, true), [], 'at most one probe per tick');
  l.heard(T0 + 710);
  l.sent(T0 + 720);
  t.same(l.poll(T0 + 1009, true), [], 'data heard: the silence restarts');
  t.same(l.poll(T0 + 1010, true), [{ kind: 'sendProbe', message: PROBE_REQUEST }]);
  t.same(l.poll(T0 + 1409, true), [{ kind: 'sendProbe', message: PROBE_REQUEST }]);
  t.same(l.poll(T0 + 1410, true), [{ kind: 'pathFailed', silentMs: 700 }]);
  t.end();
});

void t.test('a probe request is answered and counts as heard', (t) => {
  const l = new DirectPathLiveness();
  l.routeOptimized(T0);
  l.sent(T0 + 10);
  t.equal(l.probeReceived(PROBE_REQUEST, T0 + 650), PROBE_REPLY, 'answered');
  t.same(l.poll(T0 + 700, true), [], 'the request proved the path');
  l.sent(T0 + 700);
  t.same(l.poll(T0 + 1349, true), [{ kind: 'sendProbe', message: PROBE_REQUEST }]);
  t.same(l.poll(T0 + 1350, true), [{ kind: 'pathFailed', silentMs: 700 }]);
  t.end();
});

void t.test('probeAnswer: only a request is answered', (t) => {
  t.equal(probeAnswer(PROBE_REQUEST), PROBE_REPLY);
  t.equal(probeAnswer(PROBE_REPLY), undefined);
  t.equal(probeAnswer(0x60), undefined);
  t.equal(probeAnswer(undefined), undefined);
  t.end();
});

void t.test('a new route optimization after a failure starts from a clean silence', (t) => {
  const l = new DirectPathLiveness();
  l.routeOptimized(T0);
  l.sent(T0 + 1);
  t.same(l.poll(T0 + 700, true), [{ kind: 'pathFailed', silentMs: 700 }]);
  t.same(l.poll(T0 + 800, false), [], 'the driver fell back to the tunnel');
  t.equal(l.nextDeadline(), Infinity);
  l.routeOptimized(T0 + 2000); // RR redone, BA back
  t.equal(l.nextDeadline(), T0 + 2100);
  t.same(l.poll(T0 + 2100, true), [], 'the BA counts as heard');
  l.sent(T0 + 2150);
  t.same(l.poll(T0 + 2299, true), []);
  t.same(l.poll(T0 + 2300, true), [{ kind: 'sendProbe', message: PROBE_REQUEST }]);
  t.end();
});
