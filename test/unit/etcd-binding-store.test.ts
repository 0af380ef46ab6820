/**
 * The cluster's binding store (src/io/etcd-binding-store.ts, issue 18) against a real etcd
 * started by the test: bindings under /mip6/<cluster>/bindings/<hoa> on the serving home
 * agent's lease, compare-and-swap on the sequence number between two home agents, the watch
 * that tells a home agent another one took a member over, the live agents, a dead home agent's
 * bindings vanishing with its lease, etcd unreachable then back (the store catches up), and
 * etcd's client TLS with client certificates (made with openssl).
 */
import t from 'tap';
import { Etcd3 } from 'etcd3';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StoredBinding } from '../../src/io/binding-store.js';
import { EtcdBindingStore, type ClusterHealth } from '../../src/io/etcd-binding-store.js';
import { bindingUpdateFlags } from '../../src/wire/types.js';
import { etcdSkipReason, startEtcd, type EtcdCluster } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

const skip = etcdSkipReason() ?? false;

function binding(hoa: string, sequence: number, port = 40000): StoredBinding {
  return {
    homeAddress: hoa,
    ownerKey: new Uint8Array(32).fill(7),
    certificate: new Uint8Array([1, 2, 3]),
    peerName: 'laptop',
    careOfAddress: '::ffff:198.51.100.7',
    locator: { address: '198.51.100.7', port },
    sequence,
    lifetimeSeconds: 600,
    expiresAt: 1_900_000_000_000,
    flags: bindingUpdateFlags({ A: true, H: true }),
    natDetected: false,
    udpEncapsulationRequired: false,
    refreshTime: 0,
    refreshAdviceSeconds: 0,
  };
}

let clusters = 0;
function open(etcd: EtcdCluster, member: string, cluster: string): Promise<EtcdBindingStore> {
  return EtcdBindingStore.open({
    endpoints: etcd.endpoints,
    cluster,
    member,
    configKey: '[cluster] of test',
    leaseTtlSeconds: 2,
  });
}

void t.test('bindings in etcd: lease, compare-and-swap, takeover, agents', { skip }, async (t) => {
  const etcd = await startEtcd(t);
  const cluster = `c${clusters++}`;
  const client = new Etcd3({ hosts: etcd.endpoints });
  t.teardown(() => client.close());
  const a = await open(etcd, 'ha1', cluster);
  t.teardown(() => a.close());
  const b = await open(etcd, 'ha2', cluster);
  t.teardown(() => b.close());
  const takenA: string[] = [];
  const takenB: string[] = [];
  a.on({ takenOver: (hoa, by, seq) => takenA.push(`${hoa} by ${by} at ${seq}`) });
  b.on({ takenOver: (hoa, by, seq) => takenB.push(`${hoa} by ${by} at ${seq}`) });

  await a.announce({
    homeAgentAddress: '2001:db8:100::1',
    address4: '192.0.2.1',
    port: 4191,
    preference: 10,
  });
  await b.announce({
    homeAgentAddress: '2001:db8:100::2',
    address4: '192.0.2.2',
    port: 4191,
    preference: 0,
  });

  const hoa = '2001:db8:100::10';
  await a.write({ put: [binding(hoa, 10)], delete: [] });
  const key = `/mip6/${cluster}/bindings/${hoa}`;
  const kv = (await client.get(key).exec()).kvs[0];
  t.ok(kv, 'the binding is in etcd under its home address');
  const value = JSON.parse(kv!.value.toString()) as Record<string, unknown>;
  t.equal(value.servingHa, 'ha1');
  t.equal(value.sequence, 10);
  t.equal(value.ownerKey, '07'.repeat(32), 'the owner key');
  t.same(value.locator, { address: '198.51.100.7', port: 40000 });
  t.equal(value.lifetimeSeconds, 600);
  t.not(kv!.lease, '0', 'attached to a lease');

  // ha2 sees it through its watch, with its sequence number.
  await waitFor('ha2 to see the binding', () => b.binding(hoa)?.servingHa === 'ha1', 5_000);
  t.equal(b.binding(hoa)?.sequence, 10);

  // ha2 takes the member over with the next sequence number: ha1 hears of it and gives it up.
  await b.write({ put: [binding(hoa, 11, 40001)], delete: [] });
  await waitFor('ha1 to hear of the takeover', () => takenA.length === 1, 5_000);
  t.same(takenA, [`${hoa} by ha2 at 11`]);
  t.equal(a.served, 0, 'ha1 serves it no more');
  // A late write of ha1 (say, a refresh it processed meanwhile) does not undo the takeover.
  await a.write({ put: [binding(hoa, 10)], delete: [] });
  const after = JSON.parse((await client.get(key).string()) ?? '{}') as Record<string, unknown>;
  t.equal(after.servingHa, 'ha2', 'still served by ha2');
  t.equal(after.sequence, 11);
  t.equal(takenA.length, 2, 'ha1 gave it up again');
  // ha1 deleting "its" binding deletes nothing: ha2 holds it.
  await a.write({ put: [], delete: [hoa] });
  t.ok(await client.get(key).string(), 'not deleted by ha1');
  t.same(takenB, [], 'ha2 kept it throughout');

  // A stale sequence number from ha1 (an old BU) cannot take it back; a newer one can.
  await a.write({ put: [binding(hoa, 9)], delete: [] });
  t.equal(JSON.parse((await client.get(key).string()) ?? '{}').servingHa, 'ha2');
  t.equal(takenA.length, 3, 'ha1 gave its stale one up');
  await a.write({ put: [binding(hoa, 12)], delete: [] });
  await waitFor('ha2 to hear ha1 took it back', () => takenB.length === 1, 5_000);
  t.same(takenB, [`${hoa} by ha1 at 12`]);
  // Sequence numbers wrap (16-bit serial arithmetic): 2 is newer than 65534.
  await a.write({ put: [binding(hoa, 65534)], delete: [] });
  await waitFor('ha2 to see 65534', () => b.binding(hoa)?.sequence === 65534, 5_000);
  await b.write({ put: [binding(hoa, 2)], delete: [] });
  await waitFor('ha1 to hear of the wrapped takeover', () => takenA.length === 4, 5_000);
  t.equal(takenA[3], `${hoa} by ha2 at 2`);

  // Agents: both live, with their binding counts.
  await waitFor(
    'both agents with their counts',
    () =>
      a
        .agents()
        .map((x) => `${x.member}:${x.bindings}`)
        .join(',') === 'ha1:0,ha2:1',
    5_000,
  );
  t.same(
    b.agents().map((x) => [x.member, x.homeAgentAddress, x.preference]),
    [
      ['ha1', '2001:db8:100::1', 10],
      ['ha2', '2001:db8:100::2', 0],
    ],
  );
  t.same([...a.bindingCounts()], [['ha2', 1]]);
  t.equal(a.health.state, 'ok');

  // A home agent that stops: its agent entry goes at once, its bindings with its lease (2 s).
  await b.close();
  await waitFor('ha2 gone from the agents', () => a.agents().length === 1, 5_000);
  t.ok(await client.get(key).string(), 'its binding stays until the lease expires');
  await waitFor(
    'the lease to expire',
    async () => (await client.get(key).string()) === null,
    8_000,
  );
  await waitFor('ha1 to see it gone', () => a.binding(hoa) === undefined, 5_000);
});

void t.test(
  'a restarted home agent serves its bindings again on a new lease',
  { skip },
  async (t) => {
    const etcd = await startEtcd(t);
    const cluster = `c${clusters++}`;
    const client = new Etcd3({ hosts: etcd.endpoints });
    t.teardown(() => client.close());
    const first = await open(etcd, 'ha1', cluster);
    await first.write({
      put: [binding('2001:db8:100::20', 5), binding('2001:db8:100::21', 6)],
      delete: [],
    });
    await first.close(); // its lease is no longer kept alive
    const second = await open(etcd, 'ha1', cluster);
    t.teardown(() => second.close());
    const other = await open(etcd, 'ha2', cluster);
    t.teardown(() => other.close());
    await other.write({ put: [binding('2001:db8:100::30', 1)], delete: [] });
    const loaded = await second.load();
    t.same(
      loaded.map((x) => [x.homeAddress, x.sequence]).sort(),
      [
        ['2001:db8:100::20', 5],
        ['2001:db8:100::21', 6],
      ],
      'its own bindings only',
    );
    t.same(loaded[0]!.ownerKey, new Uint8Array(32).fill(7));
    // Beyond the old lease's TTL they are still there: on the new lease, kept alive.
    await new Promise((r) => setTimeout(r, 4_500));
    const left = await client.getAll().prefix(`/mip6/${cluster}/bindings/`).keys();
    t.same(left.sort(), [
      `/mip6/${cluster}/bindings/2001:db8:100::20`,
      `/mip6/${cluster}/bindings/2001:db8:100::21`,
      `/mip6/${cluster}/bindings/2001:db8:100::30`,
    ]);
  },
);

void t.test(
  'etcd unreachable: the store says so, keeps serving, catches up',
  { skip },
  async (t) => {
    const etcd = await startEtcd(t);
    const cluster = `c${clusters++}`;
    const a = await open(etcd, 'ha1', cluster);
    t.teardown(() => a.close());
    const health: ClusterHealth['state'][] = [];
    a.on({ healthChanged: (h) => health.push(h.state) });
    await a.announce({ homeAgentAddress: '2001:db8:100::1', port: 4191, preference: 0 });
    await a.write({ put: [binding('2001:db8:100::40', 1)], delete: [] });

    await etcd.stop('e0', 'SIGKILL');
    await waitFor('the store to see etcd gone', () => a.health.state === 'unreachable', 10_000);
    t.match(a.health.error, /./, 'with the reason');
    // A burst while etcd is away resolves (the home agent never waits on it) and is kept.
    await a.write({ put: [binding('2001:db8:100::41', 1)], delete: ['2001:db8:100::40'] });
    t.equal(a.served, 1);
    // Away longer than the lease TTL (2 s): the lease is gone when etcd returns.
    await new Promise((r) => setTimeout(r, 3_000));
    await etcd.start('e0');
    await waitFor('the store to catch up', () => a.health.state === 'ok', 20_000);
    t.same(health, ['unreachable', 'ok']);
    const client = new Etcd3({ hosts: etcd.endpoints });
    t.teardown(() => client.close());
    await waitFor(
      'the burst written during the outage to be in etcd',
      async () =>
        (await client.getAll().prefix(`/mip6/${cluster}/bindings/`).keys()).join() ===
        `/mip6/${cluster}/bindings/2001:db8:100::41`,
      10_000,
    );
    await waitFor(
      'the agent entry back',
      async () => (await client.get(`/mip6/${cluster}/agents/ha1`).string()) !== null,
      5_000,
    );
    // On a live lease: still there after more than its TTL.
    await new Promise((r) => setTimeout(r, 3_000));
    t.ok(await client.get(`/mip6/${cluster}/bindings/2001:db8:100::41`).string(), 'kept alive');
  },
);

void t.test(
  'malformed values in etcd: skipped and counted, at load and in the watch; the HA starts',
  { skip },
  async (t) => {
    const etcd = await startEtcd(t);
    const cluster = `c${clusters++}`;
    const client = new Etcd3({ hosts: etcd.endpoints });
    t.teardown(() => client.close());
    const prefix = `/mip6/${cluster}/`;
    const good = '2001:db8:100::60';
    const first = await open(etcd, 'ha1', cluster);
    await first.write({ put: [binding(good, 5)], delete: [] });
    const wire = JSON.parse((await client.get(`${prefix}bindings/${good}`).string())!) as Record<
      string,
      unknown
    >;
    await first.close();
    // What a writer of etcd (or damage) can leave under bindings/: every one was let through
    // before, and the first threw in load() (the HA could not start) and in the watch.
    const bad: [string, unknown][] = [
      ['2001:db8:100::61', { ...wire, homeAddress: '2001:db8:100::61', locator: null }],
      [
        '2001:db8:100::62',
        { ...wire, homeAddress: '2001:db8:100::62', locator: { address: '198.51.100.7', port: 0 } },
      ],
      ['2001:db8:100::63', { ...wire, homeAddress: '2001:db8:100::63', flags: { A: 'yes' } }],
      ['2001:db8:100::64', { ...wire, homeAddress: '2001:db8:100::64', expiresAt: '1e20' }],
      ['2001:db8:100::65', { ...wire, homeAddress: '2001:db8:100::65', careOfAddress: 'x' }],
      ['2001:db8:100::66', { ...wire, homeAddress: '2001:db8:100::66', sequence: 1.5 }],
      ['2001:db8:100::67', { ...wire, homeAddress: good }], // not the key's address
      ['2001:db8:100:0::68', { ...wire, homeAddress: '2001:db8:100:0::68' }], // not canonical
      ['2001:db8:100::69', 'not json'],
    ];
    for (const [hoa, value] of bad) {
      await client
        .put(`${prefix}bindings/${hoa}`)
        .value(typeof value === 'string' ? value : JSON.stringify(value))
        .exec();
    }
    await client.put(`${prefix}agents/ghost`).value('{"member":"ghost"}').exec();

    const second = await open(etcd, 'ha1', cluster);
    t.teardown(() => second.close());
    const loaded = await second.load();
    t.same(
      loaded.map((x) => x.homeAddress),
      [good],
      'load() returns the good binding; the HA starts',
    );
    t.equal(second.badValues, bad.length + 1, 'every bad value counted once');
    const reported: string[] = [];
    const taken: string[] = [];
    second.on({
      badValue: (key, why) => reported.push(`${key.slice(prefix.length)}: ${why}`),
      takenOver: (hoa, by) => taken.push(`${hoa} by ${by}`),
    });
    t.equal(reported.length, bad.length + 1, 'reported once a handler is there');
    t.ok(reported.includes('bindings/2001:db8:100::61: locator.address'), reported.join('; '));
    t.ok(reported.includes('bindings/2001:db8:100::67: homeAddress is not the key'));
    t.same(
      second.agents().map((a) => a.member),
      [],
      'no ghost agent',
    );
    t.ok(reported.includes('agents/ghost: not an agent entry'));
    for (const [hoa] of bad) t.equal(second.binding(hoa), undefined, `${hoa}: not in the view`);

    // In the watch: a malformed value does not escape into etcd3's stream handler, and one
    // under another key claiming a binding this HA serves (servingHa ha2, a newer sequence)
    // does not take it over.
    await client
      .put(`${prefix}bindings/2001:db8:100::70`)
      .value(JSON.stringify({ homeAddress: '2001:db8:100::70', locator: null }))
      .exec();
    await client
      .put(`${prefix}bindings/2001:db8:100::71`)
      .value(JSON.stringify({ ...wire, servingHa: 'ha2', sequence: 6 }))
      .exec();
    await waitFor('the watch to skip both', () => second.badValues === bad.length + 3, 5_000);
    t.same(taken, [], 'no takeover from a value under another key');
    t.equal(second.served, 1, 'ha1 still serves its binding');
    t.equal(second.binding(good)?.servingHa, 'ha1');
    // The watch goes on: a real takeover by ha2 still arrives.
    const other = await open(etcd, 'ha2', cluster);
    t.teardown(() => other.close());
    await other.write({ put: [binding(good, 6)], delete: [] });
    await waitFor('the takeover through the watch', () => taken.length === 1, 5_000);
    t.same(taken, [`${good} by ha2`]);
    t.equal(second.health.state, 'ok');
  },
);

void t.test('etcd that never answers: one error line', { skip }, async (t) => {
  const start = Date.now();
  await t.rejects(
    EtcdBindingStore.open({
      endpoints: ['http://127.0.0.1:9'],
      cluster: 'x',
      member: 'ha1',
      configKey: '[cluster] of /etc/mip6/ha.toml',
      connectTimeoutMs: 1_000,
    }),
    {
      code: 'ERR_CLUSTER_UNREACHABLE',
      message: /^\[cluster\] of \/etc\/mip6\/ha.toml: etcd at http:\/\/127.0.0.1:9 does not answer/,
    },
  );
  t.ok(Date.now() - start < 8_000, 'within the timeout');
});

/** A CA, etcd's server certificate for 127.0.0.1 and a client certificate, made by openssl. */
function makeTlsFiles(dir: string): {
  ca: string;
  cert: string;
  key: string;
  clientCert: string;
  clientKey: string;
  otherCert: string;
  otherKey: string;
} {
  const f = (n: string): string => join(dir, n);
  const ssl = (...args: string[]): void => {
    execFileSync('openssl', args, { stdio: 'ignore', timeout: 20_000 });
  };
  const ext = f('server.ext');
  writeFileSync(ext, 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  const clientExt = f('client.ext');
  writeFileSync(clientExt, 'extendedKeyUsage=clientAuth\n');
  const ca = (name: string): void =>
    ssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      f(`${name}.key`),
      '-out',
      f(`${name}.pem`),
    );
  const issue = (name: string, by: string, extFile: string): void => {
    ssl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      f(`${name}.key`),
      '-out',
      f(`${name}.csr`),
    );
    ssl(
      'x509',
      '-req',
      '-in',
      f(`${name}.csr`),
      '-CA',
      f(`${by}.pem`),
      '-CAkey',
      f(`${by}.key`),
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      extFile,
      '-out',
      f(`${name}.pem`),
    );
  };
  ca('ca');
  ca('other-ca');
  issue('server', 'ca', ext);
  issue('ha1', 'ca', clientExt);
  issue('intruder', 'other-ca', clientExt);
  return {
    ca: f('ca.pem'),
    cert: f('server.pem'),
    key: f('server.key'),
    clientCert: f('ha1.pem'),
    clientKey: f('ha1.key'),
    otherCert: f('intruder.pem'),
    otherKey: f('intruder.key'),
  };
}

void t.test('etcd over TLS with client certificates ([cluster] tls_*)', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mip6-etcd-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const files = makeTlsFiles(dir);
  const etcd = await startEtcd(t, {
    tls: {
      ca: files.ca,
      cert: files.cert,
      key: files.key,
      client: { cert: files.clientCert, key: files.clientKey },
    },
  });
  t.match(etcd.endpoints[0], /^https:\/\/127\.0\.0\.1:/);
  const base = {
    endpoints: etcd.endpoints,
    cluster: 'tls',
    member: 'ha1',
    configKey: '[cluster] of test',
    connectTimeoutMs: 1_500,
  };
  const store = await EtcdBindingStore.open({
    ...base,
    tls: { ca: files.ca, cert: files.clientCert, key: files.clientKey },
  });
  t.teardown(() => store.close());
  await store.write({ put: [binding('2001:db8:100::50', 1)], delete: [] });
  const again = await EtcdBindingStore.open({
    ...base,
    tls: { ca: files.ca, cert: files.clientCert, key: files.clientKey },
  });
  t.teardown(() => again.close());
  await waitFor(
    'the binding over TLS',
    () => again.binding('2001:db8:100::50')?.servingHa === 'ha1',
    5_000,
  );
  // A client certificate of another CA, or none, gets nothing.
  await t.rejects(
    EtcdBindingStore.open({
      ...base,
      tls: { ca: files.ca, cert: files.otherCert, key: files.otherKey },
    }),
    { code: 'ERR_CLUSTER_UNREACHABLE' },
    'a client certificate etcd does not trust is refused',
  );
  await t.rejects(
    EtcdBindingStore.open({ ...base, tls: { ca: files.ca } }),
    { code: 'ERR_CLUSTER_UNREACHABLE' },
    'no client certificate: refused',
  );
  await t.rejects(
    EtcdBindingStore.open({ ...base, tls: { ca: join(dir, 'missing.pem') } }),
    { code: 'ERR_CLUSTER_TLS', message: /^\[cluster\] of test: cannot read tls_ca .*missing\.pem/ },
    'a TLS file that cannot be read: one line naming it',
  );
});
