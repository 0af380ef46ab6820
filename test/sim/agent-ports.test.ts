/**
 * The home agent's ports in order (issue #15, [home] agent_port = [..]), with the real mobile
 * node over fakes: where the first port does not get through, the MN moves on to the next one
 * when the path is lost, registers there and remembers it for that network; a new network
 * starts again with the first port; back on the first network the remembered port is used at
 * once; with no port answering, `mip6 status` says so.
 */
import t from 'tap';
import { HA_PORT, World } from '../helpers/world.js';

const BLOCKED = 5000; // nothing listens there: as good as a port the network drops

void t.test('agent ports: next port on path loss, remembered per network', async (t) => {
  const w = await World.create();
  const m = w.mobileNode({
    homeAddress: '2001:db8:100::10',
    address4: '192.0.2.10',
    address6: '2001:db8:3::10',
    options: {
      agentPort: BLOCKED,
      agentPorts: [BLOCKED, HA_PORT],
      probeIntervalMs: 1000,
      probeTimeoutMs: 200,
      probeAttempts: 3,
    },
  });
  m.careOf.candidates = [{ family: 4, localAddress: '192.0.2.10' }];
  m.mn.start();
  const took = await w.until(() => m.mn.registration.state === 'registered', 30_000);
  t.ok(took > 0, `registered through the second port after ${took} ms (simulated)`);
  const switches = () => m.events.filter((e) => e.event === 'agent-port');
  t.same(
    switches().map((e) => e.fields['port']),
    [HA_PORT],
    'one switch, to the HA port',
  );
  t.match(m.mn.status().homeAgent, `:${HA_PORT}`, 'status shows the port in use');

  // Another network: the first port again (what works here is not known yet), then the next.
  m.careOf.candidates = [{ family: 4, localAddress: '198.51.100.77' }];
  w.net.move(m.udp4, '198.51.100.77');
  m.careOf.changed();
  await w.until(
    () => w.ha.cache.get('2001:db8:100::10')?.locator.address === '198.51.100.77',
    30_000,
  );
  t.equal(switches().length, 2, 'a new network starts with the first port again');

  // Back on the first network: its port is remembered, no switch needed.
  m.careOf.candidates = [{ family: 4, localAddress: '192.0.2.10' }];
  w.net.move(m.udp4, '192.0.2.10');
  m.careOf.changed();
  const back = await w.until(
    () => w.ha.cache.get('2001:db8:100::10')?.locator.address === '192.0.2.10',
    30_000,
  );
  t.ok(back >= 0 && back < 1000, `registered again at once (${back} ms)`);
  t.equal(switches().length, 2, 'the remembered port, no switch');
});

void t.test('agent ports: no port answers, status says so', async (t) => {
  const w = await World.create();
  const m = w.mobileNode({
    homeAddress: '2001:db8:100::10',
    address4: '192.0.2.10',
    address6: '2001:db8:3::10',
    options: {
      agentPort: BLOCKED,
      agentPorts: [BLOCKED, BLOCKED + 1],
      probeIntervalMs: 1000,
      probeTimeoutMs: 200,
      probeAttempts: 3,
    },
  });
  m.careOf.candidates = [{ family: 4, localAddress: '192.0.2.10' }];
  m.mn.start();
  const said = await w.until(() => m.mn.status().homeAgentUnreachable !== undefined, 60_000);
  t.ok(said > 0, `status says why after ${said} ms`);
  t.equal(m.mn.status().homeAgentUnreachable, 'no answer on any port');
  t.not(m.mn.registration.state, 'registered');
});
