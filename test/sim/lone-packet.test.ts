/**
 * Issue #16 (latency): a lone packet leaves in the same turn it arrived. The TUN hands the role a
 * batch of one packet; the sealed datagram must be on the network before that call returns (no
 * deferred flush, no timer, no microtask between), on the mobile node and on the home agent.
 * Over fakes (FakeTun, FakeNetwork, FakeClock): the real role code and channel.
 */
import t from 'tap';
import { World } from '../helpers/world.js';
import { echo } from '../helpers/packets.js';

const HOA = '2001:db8:100::10';
const SERVER = '2001:db8:100::5';

void t.test('a lone packet is sealed and sent within the TUN read that brought it', async (t) => {
  const w = await World.create();
  const m = await w.registeredMobileNode({
    homeAddress: HOA,
    address4: '203.0.113.10',
    address6: '2001:db8:3::10',
  });
  await w.run(50); // nothing left in flight from the registration

  const toHome: Uint8Array[] = [];
  w.haTun.onKernelReceive((p) => toHome.push(p));
  const toMn: Uint8Array[] = [];
  m.tun.onKernelReceive((p) => toMn.push(p));

  for (let i = 0; i < 3; i++) {
    const up = echo(HOA, SERVER, i, 64 + 100 * i);
    const sent = w.net.stats.sent;
    m.tun.inject(up);
    t.equal(w.net.stats.sent, sent + 1, `MN: datagram ${i} sent before inject() returned`);
    await w.run(20);
    t.same(toHome.at(-1), up, 'and it reached the home side unchanged');

    const down = echo(SERVER, HOA, i, 64 + 100 * i);
    const sentDown = w.net.stats.sent;
    w.haTun.inject(down);
    t.equal(w.net.stats.sent, sentDown + 1, `HA: datagram ${i} sent before inject() returned`);
    await w.run(20);
    t.same(toMn.at(-1), down, 'and it reached the MN unchanged');
  }
});
