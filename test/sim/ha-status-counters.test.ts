/**
 * `mip6 status` on a home agent reads each binding's traffic counters without creating them:
 * an idle binding has none (binding-cache.ts makes them on first traffic, issue 17: memory per
 * binding), and a status call on an HA with 100 000 idle members must not give every binding a
 * counters object it then keeps. A binding with traffic shows its counts.
 */
import t from 'tap';
import { echo } from '../helpers/packets.js';
import { World } from '../helpers/world.js';

const HOA = '2001:db8:100::10';
const SERVER = '2001:db8:100::5';

void t.test('status shows zeros for an idle binding and creates no counters', async (t) => {
  const w = await World.create();
  t.teardown(() => w.ha.close());
  await w.registeredMobileNode({
    homeAddress: HOA,
    address4: '203.0.113.10',
    address6: '2001:db8:3::10',
  });
  t.equal(w.ha.cache.get(HOA)?.countersIfAny, undefined, 'registered, no traffic: no counters');
  const idle = w.ha.status().bindings?.find((b) => b.homeAddress === HOA);
  t.match(idle, { packetsIn: 0, packetsOut: 0, bytesIn: 0, bytesOut: 0 }, 'status: zeros');
  t.equal(w.ha.cache.get(HOA)?.countersIfAny, undefined, 'status made none');

  w.haTun.inject(echo(SERVER, HOA, 1));
  await w.until(() => (w.ha.cache.get(HOA)?.countersIfAny?.packetsOut ?? 0) === 1);
  const busy = w.ha.status().bindings?.find((b) => b.homeAddress === HOA);
  t.equal(busy?.packetsOut, 1, 'a packet to the member is counted and shown');
  t.ok((busy?.bytesOut ?? 0) > 0, 'with its bytes');
});
