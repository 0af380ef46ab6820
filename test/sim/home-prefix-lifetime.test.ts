/**
 * A reload (setDiscovery, what SIGHUP does with ha.toml) that shortens the home prefix's valid
 * lifetime shortens the bindings that would outlive it; one that ends it removes them (RFC 6275
 * §10.3.1). New registrations are granted no more than the prefix's remaining lifetime.
 */
import t, { type Test } from 'tap';
import type { DiscoveryConfig } from '../../src/protocol/home-agent-discovery.js';
import { World, HOME_PREFIX } from '../helpers/world.js';

const HOA = '2001:db8:100::10';

/** The home prefix with valid lifetime `valid` and preferred lifetime `preferred` (default:
 * the current one, at most `valid`). */
function withHomePrefixLifetime(
  d: DiscoveryConfig,
  valid: number,
  preferred?: number,
): DiscoveryConfig {
  const [address, length] = HOME_PREFIX.split('/');
  return {
    ...d,
    prefixes: d.prefixes.map((p) =>
      p.address === address && p.length === Number(length)
        ? {
            ...p,
            validLifetime: valid,
            preferredLifetime: preferred ?? Math.min(valid, p.preferredLifetime),
          }
        : p,
    ),
  };
}

/** One mobile node over IPv4, registered with the world's HA. */
async function register(t: Test, w: World): Promise<void> {
  const m = w.mobileNode({
    homeAddress: HOA,
    address4: '203.0.113.10',
    address6: '2001:db8:3::10',
  });
  m.careOf.candidates = [{ family: 4, localAddress: '203.0.113.10' }];
  m.mn.start();
  t.ok((await w.until(() => m.mn.registration.state === 'registered')) >= 0, 'registered');
}

void t.test('bindings follow the home prefix lifetime across reloads', async (t) => {
  const w = await World.create({ delayMs: 1 });
  await register(t, w);
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

void t.test('the home prefix preferred lifetime does not shorten bindings (§10.3.1)', async (t) => {
  const w = await World.create({ delayMs: 1 });
  const infinite = 0xffff_ffff;
  t.equal(w.ha.setDiscovery(withHomePrefixLifetime(w.ha.discovery, infinite, 20)), true);
  await register(t, w);
  const granted = w.ha.status().bindings[0]?.lifetimeRemaining ?? 0;
  t.ok(granted > 20, `granted ${granted} s, beyond the preferred lifetime of 20 s`);
  t.equal(w.ha.setDiscovery(withHomePrefixLifetime(w.ha.discovery, infinite, 0)), true);
  t.equal(w.ha.cache.size, 1, 'a deprecated home prefix (preferred 0) keeps the binding');
  t.ok((w.ha.status().bindings[0]?.lifetimeRemaining ?? 0) > 20, 'and its lifetime');
});
