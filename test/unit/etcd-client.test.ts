/**
 * The etcd3 client from npm against Debian's etcd 3.4 (the v3 gRPC API), for what the home
 * agent cluster (issue 18) uses: leases kept alive and their keys gone when revoked, a
 * transaction comparing a key's revision, a watch on a prefix, and a three-member cluster that
 * keeps serving with one member killed. Real etcd processes started by the test
 * (test/helpers/etcd.ts).
 */
import t from 'tap';
import { Etcd3 } from 'etcd3';
import { etcdSkipReason, startEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

const skip = etcdSkipReason() ?? false;

void t.test('lease, compare-and-swap and watch against etcd 3.4', { skip }, async (t) => {
  const etcd = await startEtcd(t);
  const client = new Etcd3({ hosts: etcd.endpoints, dialTimeout: 2_000 });
  t.teardown(() => client.close());
  const version = (await client.maintenance.status()).version;
  t.match(version, /^3\.4\./, 'the server is etcd 3.4');

  const events: string[] = [];
  const watcher = await client.watch().prefix('/t/').create();
  t.teardown(() => watcher.cancel());
  watcher.on('put', (kv) => events.push(`put ${kv.key.toString()}=${kv.value.toString()}`));
  watcher.on('delete', (kv) => events.push(`delete ${kv.key.toString()}`));

  const lease = client.lease(2);
  const leaseId = await lease.grant();
  t.ok(leaseId !== '', 'a lease is granted');
  // Create only if absent, then swap only at the revision read.
  const created = await client
    .if('/t/a', 'Create', '==', 0)
    .then(client.put('/t/a').value('1').lease(leaseId))
    .commit();
  t.equal(created.succeeded, true, 'created where absent');
  const again = await client
    .if('/t/a', 'Create', '==', 0)
    .then(client.put('/t/a').value('x'))
    .commit();
  t.equal(again.succeeded, false, 'not created twice');
  const kv = (await client.get('/t/a').exec()).kvs[0]!;
  const swapped = await client
    .if('/t/a', 'Mod', '==', kv.mod_revision)
    .then(client.put('/t/a').value('2').lease(leaseId))
    .commit();
  t.equal(swapped.succeeded, true, 'swapped at the revision read');
  const stale = await client
    .if('/t/a', 'Mod', '==', kv.mod_revision)
    .then(client.put('/t/a').value('3'))
    .commit();
  t.equal(stale.succeeded, false, 'a swap at a stale revision fails');
  t.equal(await client.get('/t/a').string(), '2');

  // Kept alive beyond its TTL of 2 s.
  await new Promise((r) => setTimeout(r, 3_000));
  t.equal(await client.get('/t/a').string(), '2', 'the key outlives its TTL while kept alive');
  await lease.revoke();
  t.equal(await client.get('/t/a').string(), null, 'revoking the lease deletes its keys');
  await waitFor('the watch to see the delete', () => events.includes('delete /t/a'), 5_000);
  t.same(events, ['put /t/a=1', 'put /t/a=2', 'delete /t/a'], 'the watch saw every change');
});

void t.test('a three-member cluster serves with one member killed', { skip }, async (t) => {
  const etcd = await startEtcd(t, { size: 3 });
  const client = new Etcd3({ hosts: etcd.endpoints, dialTimeout: 2_000 });
  t.teardown(() => client.close());
  await client.put('/t/b').value('1');
  await etcd.stop('e0', 'SIGKILL');
  // Each request may first go to the dead member; the client moves on to a live one.
  for (let i = 0; i < 6; i++) await client.put(`/t/b${i}`).value(String(i));
  t.equal(await client.get('/t/b5').string(), '5', 'writes go on with two of three members');
  await etcd.start('e0');
  t.equal(await client.get('/t/b').string(), '1', 'the restarted member rejoined');
});
