/**
 * The captive-portal answer and the portal login window (issue #15 security review): a hostile
 * network only has to drop UDP to the HA and answer the plain-HTTP probe with anything but 204
 * to "be a portal". Without [movement] portal_login that is only reported (status, log line),
 * nothing opens; with it, DNS, HTTP and HTTPS are let out (open) for a limited time, and closed
 * again when the time is up, on a move, and on registration. Real mobile node over fakes.
 */
import t from 'tap';
import { HA_PORT, World } from '../helpers/world.js';

const BLOCKED = 5000; // nothing listens there: as good as a port the network drops
const PORTAL = 'HTTP 302 from http://203.0.113.80/generate_204 (redirect to http://login/)';

async function setup(portalLogin: boolean, durationMs = 60_000, ports = [BLOCKED, BLOCKED + 1]) {
  const w = await World.create();
  const calls: string[] = [];
  const m = w.mobileNode({
    homeAddress: '2001:db8:100::10',
    address4: '192.0.2.10',
    address6: '2001:db8:3::10',
    options: {
      agentPort: ports[0]!,
      agentPorts: ports,
      probeIntervalMs: 1000,
      probeTimeoutMs: 200,
      probeAttempts: 3,
      portalProbe: async () => PORTAL,
      ...(portalLogin
        ? {
            portalLogin: {
              durationMs,
              open: async () => {
                calls.push('open');
              },
              close: async () => {
                calls.push('close');
              },
            },
          }
        : {}),
    },
  });
  m.careOf.candidates = [{ family: 4, localAddress: '192.0.2.10' }];
  // The "portal": nothing of ours gets out (until the test lets it).
  m.udp4.sendConditions = { loss: 1 };
  m.mn.start();
  const found = await w.until(() => m.events.some((e) => e.event === 'captive-portal'), 60_000);
  return { w, m, calls, found };
}

void t.test('a portal answer without portal_login: reported, nothing opens', async (t) => {
  const { w, m, calls, found } = await setup(false);
  t.ok(found >= 0, 'the portal is found');
  t.match(m.mn.status().homeAgentUnreachable, /^captive portal: HTTP 302/);
  t.notMatch(m.mn.status().homeAgentUnreachable, /portal login open/);
  await w.run(5000, 10);
  t.same(calls, [], 'nothing opened');
  t.notOk(m.events.some((e) => e.event === 'portal-login-open'));
});

void t.test('portal_login: opens, and closes after the time limit', async (t) => {
  const { w, m, calls } = await setup(true, 10_000);
  await w.run(10, 1);
  t.same(calls, ['open'], 'opened once');
  const opened = m.events.find((e) => e.event === 'portal-login-open')!;
  t.ok(opened, 'portal-login-open event');
  t.match(m.mn.status().homeAgentUnreachable, /portal login open .* for \d+ s more$/);
  const took = await w.until(() => calls.length === 2, 20_000, 10);
  t.ok(took >= 0, 'closed');
  const closed = m.events.find((e) => e.event === 'portal-login-closed')!;
  t.equal(closed.fields['why'], 'time limit');
  t.ok(closed.at - opened.at >= 10_000 && closed.at - opened.at < 10_100, 'after 10 s');
  t.same(calls, ['open', 'close']);
  // The network keeps the HA unreachable: the window does not open again on it (once per
  // network, until a move or a registration).
  await w.run(60_000, 10);
  t.same(calls, ['open', 'close'], 'not opened again on the same network');
  // Another network: it may open there.
  m.careOf.candidates = [{ family: 4, localAddress: '198.51.100.77' }];
  w.net.move(m.udp4, '198.51.100.77');
  m.careOf.changed();
  const again = await w.until(() => calls.length === 3, 60_000, 10);
  t.ok(again >= 0, 'opened on the next network');
  t.same(calls, ['open', 'close', 'open']);
});

void t.test('portal_login: closed on a move', async (t) => {
  const { w, m, calls } = await setup(true);
  await w.run(10, 1);
  t.same(calls, ['open']);
  m.careOf.candidates = [{ family: 4, localAddress: '198.51.100.77' }];
  w.net.move(m.udp4, '198.51.100.77');
  m.careOf.changed();
  const took = await w.until(() => calls.length === 2, 5000);
  t.ok(took >= 0 && took < 1000, `closed at once (${took} ms)`);
  t.equal(m.events.find((e) => e.event === 'portal-login-closed')?.fields['why'], 'move');
});

void t.test('portal_login: closed on a detach, on registration and at exit', async (t) => {
  const a = await setup(true);
  await a.w.run(10, 1);
  a.m.careOf.candidates = [];
  a.m.careOf.changed();
  await a.w.until(() => a.calls.length === 2, 5000);
  t.same(a.calls, ['open', 'close']);
  t.equal(a.m.events.find((e) => e.event === 'portal-login-closed')?.fields['why'], 'detached');

  // "Logged in": the HA's port lets us out now; registered, the window closes.
  const b = await setup(true, 600_000, [BLOCKED, HA_PORT]);
  await b.w.run(10, 1);
  t.same(b.calls, ['open']);
  b.m.udp4.sendConditions = {};
  const took = await b.w.until(() => b.m.mn.registration.state === 'registered', 120_000, 10);
  t.ok(took >= 0, `registered after the login (${took} ms)`);
  await b.w.run(10, 1);
  t.same(b.calls, ['open', 'close'], 'closed on registration');
  t.equal(b.m.events.find((e) => e.event === 'portal-login-closed')?.fields['why'], 'registered');
  t.equal(b.m.mn.status().homeAgentUnreachable, undefined);

  const c = await setup(true);
  await c.w.run(10, 1);
  await c.m.mn.close(100);
  t.same(c.calls, ['open', 'close'], 'closed at exit');
  t.equal(c.m.events.find((e) => e.event === 'portal-login-closed')?.fields['why'], 'exit');
});
