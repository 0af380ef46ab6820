/**
 * RFC 5555 (docs/CONFORMANCE.md D-12, issue #22): a deregistration ends the binding's hold on
 * its IPv4 home address, at the home agent of the real roles over fakes; the address stays the
 * member's lease, so its next registration gets it again.
 */
import t, { type Test } from 'tap';
import { World, type MnHandle } from '../helpers/world.js';

const HOA = '2001:db8:100::10';

/** A member asking for an IPv4 home address ('auto'), started; resolves once registered. */
async function register(t: Test, w: World): Promise<MnHandle> {
  const m = w.mobileNode({
    homeAddress: HOA,
    address4: '203.0.113.10',
    address6: '2001:db8:3::10',
    options: { ipv4HomeAddress: 'auto' },
  });
  m.careOf.candidates = [{ family: 4, localAddress: '203.0.113.10' }];
  m.mn.start();
  t.ok((await w.until(() => m.mn.registration.state === 'registered')) >= 0, 'registered');
  return m;
}

void t.test('deregistration releases the IPv4 home address, the lease stays', async (t) => {
  const w = await World.create({ ipv4Pool: '10.99.0.0/24' });
  const m = await register(t, w);
  const key = w.ha.cache.get(HOA)!.key;
  t.equal(w.ha.ipv4.addressOf(key), '10.99.0.2', 'granted');
  t.equal(w.ha.ipv4.activeCount, 1);

  let closed = false;
  const closing = m.mn.close(5000).then(() => (closed = true));
  await w.until(() => closed, 1000);
  await closing;
  t.equal(w.ha.cache.get(HOA), undefined, 'binding gone');
  t.equal(w.ha.ipv4.addressOf(key), undefined, 'the IPv4 home address is released');
  t.equal(w.ha.ipv4.activeCount, 0);

  const again = await register(t, w);
  t.equal(again.mn.status().homeAddress4, '10.99.0.2', 'the lease: the same address again');
});
