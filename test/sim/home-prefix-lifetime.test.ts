/**
 * A reload (setDiscovery, what SIGHUP does with ha.toml) that shortens the home prefix's valid
 * lifetime shortens the bindings that would outlive it; one that ends it removes them (RFC 6275
 * §10.3.1). New registrations are granted no more than the prefix's remaining lifetime.
 */
import t from 'tap';
import type { DiscoveryConfig } from '../../src/protocol/home-agent-discovery.js';
import { World, HOME_PREFIX } from '../helpers/world.js';

const HOA = '2001:db8:100::10';

function withHomePrefixLifetime(d: DiscoveryConfig, valid: number): DiscoveryConfig {
  const [address, length] = HOME_PREFIX.split('/');
  return {
    ...d,
    prefixes: d.prefixes.map((p) =>
      p.address === address && p.length === Number(length)
        ? { ...p, validLifetime: valid, preferredLifetime: Math.min(valid, p.preferredLifetime) }
        : p,
    ),
  };
}

void t.test('bindings follow the home prefix lifetime across reloads', async (t) => {
  const w = await World.create({ delayMs: 1 });
  const m = w.mobileNode({
    homeAddress: HOA,
    address4: '203.0.113.10',
    address6: '2001:db8:3::10',
  });
  m.careOf.candidates = [{ family: 4, localAddress: '203.0.113.10' }];
  m.mn.start();
  t.ok((await w.until(() => m.mn.registration.state === 'registered')) >= 0, 'registered');
  const before = w.ha.status().bindings[0]?.lifetimeRemaining ?? 0;
  t.ok(before > 60, `granted ${before} s`);

  t.equal(w.ha.setDiscovery(withHomePrefixLifetime(w.ha.discovery, 60)), true, 'changed');
  const after = w.ha.status().bindings[0]?.lifetimeRemaining ?? Infinity;
  t.ok(after <= 60, `shortened to ${after} s`);
  t.equal(w.ha.cache.size, 1);

  t.equal(w.ha.setDiscovery(withHomePrefixLifetime(w.ha.discovery, 0)), true);
  t.equal(w.ha.cache.size, 0, 'a withdrawn home prefix removes the binding');
  t.notOk(w.homeLink.bound.has(HOA), 'route and proxy ND withdrawn');
});
