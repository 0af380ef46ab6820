/**
 * Revocation with a running home agent (issue 19), over fakes: two members registered; the
 * revocation list file gains one of them and the HA's SIGHUP path (reloadRevocations, what
 * `mip6 ha` runs on SIGHUP) takes it in: that member's binding, home-link state and channel go
 * at once, its next handshakes are refused and counted as 'revoked', it never registers again;
 * the other member keeps its binding and traffic. A bad list keeps the one in force.
 */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REVOCATION_LIST_HEADER, revocationLine } from '../../src/crypto/revocation-list.js';
import { reloadRevocations, Revocations } from '../../src/cli/ha-reload.js';
import { Logger } from '../../src/util/log.js';
import { World } from '../helpers/world.js';

const LAPTOP = '2001:db8:100::10';
const PHONE = '2001:db8:100::11';

function logger() {
  const lines: Record<string, unknown>[] = [];
  const sink = {
    write: (s: string) => (lines.push(JSON.parse(s) as Record<string, unknown>), true),
  };
  return { lines, log: new Logger({ sink, format: 'json', level: 'debug' }) };
}

void t.test('a revoked member is cut off by the reload and refused afterwards', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mip6-revocation-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'revoked.txt');
  writeFileSync(file, REVOCATION_LIST_HEADER);

  const revocations = new Revocations();
  const w = await World.create({ isRevoked: revocations.isRevoked });
  const { lines, log } = logger();
  reloadRevocations(revocations, file, w.ha, log);
  t.equal(revocations.current.size, 0, 'empty list at start');

  const start = (homeAddress: string, address4: string) => {
    const m = w.mobileNode({
      homeAddress,
      address4,
      address6: `2001:db8:3::${homeAddress.slice(-2)}`,
      // Probe quickly so the revoked member notices the lost channel within the test.
      options: { probeIntervalMs: 1000, probeTimeoutMs: 500, probeAttempts: 2 },
    });
    m.careOf.candidates = [{ family: 4, localAddress: address4 }];
    m.mn.start();
    return m;
  };
  const laptop = start(LAPTOP, '203.0.113.10');
  const phone = start(PHONE, '203.0.113.11');
  await w.until(
    () =>
      laptop.mn.registration.state === 'registered' && phone.mn.registration.state === 'registered',
  );
  t.ok(w.ha.cache.get(LAPTOP) && w.ha.cache.get(PHONE), 'both registered');

  writeFileSync(
    file,
    `${REVOCATION_LIST_HEADER}${revocationLine(laptop.key.publicKey, 'laptop', new Date())}\n`,
  );
  reloadRevocations(revocations, file, w.ha, log);
  t.equal(w.ha.cache.get(LAPTOP), undefined, 'binding removed at once');
  t.notOk(w.homeLink.bound.has(LAPTOP), 'home-link state withdrawn');
  t.equal(w.haEndpoint.session(laptop.key.publicKey), undefined, 'channel closed');
  t.ok(w.ha.cache.get(PHONE), 'the other member keeps its binding');
  t.match(lines.at(-1), { event: 'revocations', revoked: 1, disconnected: /^mn-\d+$/ });

  // The laptop finds its channel gone and tries again: refused at every handshake.
  const refused = await w.until(() => w.haEndpoint.drops.revoked >= 2, 120_000, 5);
  t.ok(refused >= 0, `its new handshakes are refused (revoked: ${w.haEndpoint.drops.revoked})`);
  await w.run(5_000, 5);
  t.equal(w.ha.cache.get(LAPTOP), undefined, 'never registered again');
  t.not(laptop.mn.registration.state, 'registered');
  const drops: Record<string, number> = w.ha.status().drops ?? {};
  t.equal(drops['channel-revoked'], w.haEndpoint.drops.revoked, 'in mip6 status');
  t.equal(phone.mn.registration.state, 'registered', 'the other member is still registered');
  t.ok(w.haEndpoint.session(phone.key.publicKey)?.established, 'its channel is up');

  // A broken list keeps the one in force (the laptop stays out).
  writeFileSync(file, 'garbage\n');
  reloadRevocations(revocations, file, w.ha, log);
  t.equal(revocations.current.size, 1, 'bad file: the list in force is kept');
  t.match(lines.at(-1), { event: 'revocation-reload-failed', level: 'error' });

  // Taken off the list, the member may register again.
  writeFileSync(file, REVOCATION_LIST_HEADER);
  reloadRevocations(revocations, file, w.ha, log);
  const back = await w.until(() => w.ha.cache.get(LAPTOP) !== undefined, 120_000, 5);
  t.ok(back >= 0, 'registered again once no longer revoked');
});
