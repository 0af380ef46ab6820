/**
 * RFC 6275 requirements checked over the simulated world (docs/CONFORMANCE.md, issue #22).
 */
import t from 'tap';
import type { DiscoveryConfig } from '../../src/protocol/home-agent-discovery.js';
import { World, HOME_PREFIX } from '../helpers/world.js';

const HOA = '2001:db8:100::10';

/** The discovery configuration with the home prefix's preferred lifetime set to `preferred`. */
function withPreferredLifetime(d: DiscoveryConfig, preferred: number): DiscoveryConfig {
  const [address, length] = HOME_PREFIX.split('/');
  return {
    ...d,
    prefixes: d.prefixes.map((p) =>
      p.address === address && p.length === Number(length)
        ? { ...p, preferredLifetime: preferred }
        : p,
    ),
  };
}

void t.test('the home prefix preferred lifetime does not shorten bindings (§10.3.1)', async (t) => {
  const w = await World.create({ delayMs: 1 });
  t.equal(w.ha.setDiscovery(withPreferredLifetime(w.ha.discovery, 20)), true, 'preferred 20 s');
  const m = w.mobileNode({
    homeAddress: HOA,
    address4: '203.0.113.10',
    address6: '2001:db8:3::10',
  });
  m.careOf.candidates = [{ family: 4, localAddress: '203.0.113.10' }];
  m.mn.start();
  t.ok((await w.until(() => m.mn.registration.state === 'registered')) >= 0, 'registered');
  const granted = w.ha.status().bindings[0]?.lifetimeRemaining ?? 0;
  t.ok(granted > 20, `granted ${granted} s, beyond the preferred lifetime`);
  t.equal(w.ha.setDiscovery(withPreferredLifetime(w.ha.discovery, 0)), true, 'deprecated');
  t.equal(w.ha.cache.size, 1, 'a deprecated (preferred 0) home prefix keeps the binding');
  t.ok((w.ha.status().bindings[0]?.lifetimeRemaining ?? 0) > 20, 'and its lifetime');
});
