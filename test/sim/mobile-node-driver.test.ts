/**
 * The mobile node as a driver over its engines (issue #14): its Binding Update List holds the
 * home entry the registration keeps (and `mip6 status` shows it), identifiers and the first
 * sequence number come from the injected random source, and close() waits for the
 * deregistration's BA on the node's own clock, not on a timer of its own.
 */
import t from 'tap';
import { World } from '../helpers/world.js';

const HOA = '2001:db8:100::42';

void t.test('binding update list, injected randomness, close() on the node clock', async (t) => {
  const w = await World.create();
  const m = w.mobileNode({
    homeAddress: HOA,
    address4: '203.0.113.42',
    address6: '2001:db8:3::42',
    options: { random: () => 0.5 },
  });
  m.careOf.candidates = [{ family: 4, localAddress: '203.0.113.42' }];
  m.mn.start();
  t.ok((await w.until(() => m.mn.registration.state === 'registered')) >= 0, 'registered');
  const entries = [...m.mn.bindingUpdateList.entries()];
  t.equal(entries.length, 1, 'one entry: the home registration');
  const e = entries[0]!;
  t.equal(e.homeAddress, HOA);
  t.equal(e.careOfAddress, '::ffff:203.0.113.42');
  t.equal(e.lastSequenceSent, 0x8000, 'the first sequence number from the random source');
  t.ok(e.expiresAt > 0 && e.grantedLifetimeSeconds > 0, 'acknowledged');
  const home = m.mn.status().bindingUpdateList[0]!;
  t.equal(home.sequence, e.lastSequenceSent, 'status shows the list');
  t.equal(home.kind, 'home');
  // The HA goes silent: close() gives up at its deadline, on the fake clock.
  m.udp4.sendConditions = { loss: 1 };
  let closed = false;
  void m.mn.close(2000).then(() => (closed = true));
  await w.run(1500);
  t.notOk(closed, 'still waiting for the BA');
  t.ok((await w.until(() => closed, 1000)) >= 0, 'gave up at the deadline');
});
