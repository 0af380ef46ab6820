/**
 * [cluster] in ha.toml (issue 18): etcd endpoints, the cluster's and this member's names, etcd's
 * client TLS files; without the table the home agent runs alone. Every problem is one
 * ConfigError naming the file and the dotted key; a change needs a restart (SIGHUP reports it).
 */
import t, { type Test } from 'tap';
import { parseHaConfig } from '../../src/config/index.js';
import { ConfigError } from '../../src/util/errors.js';
import { restartOnlyChanges } from '../../src/cli/ha-reload.js';

const FILE = '/etc/mip6/ha.toml';
/** The smallest ha.toml: identity files and the home prefix. */
const BASE = [
  '[identity]',
  'private_key = "k"',
  'certificate = "c"',
  'authority = "a"',
  '[home]',
  'prefix = "2001:db8:100::/64"',
  '',
].join('\n');
const CLUSTER = `[cluster]
etcd = ["http://192.0.2.1:2379", "http://[2001:db8::2]:2379"]
name = "home1"
member = "ha1"
`;

function parse(extra: string): ReturnType<typeof parseHaConfig> {
  return parseHaConfig(BASE + extra, FILE);
}

/** `extra` is refused with one line: "<file>: <key>: <problem matching re>". */
function expectError(t: Test, extra: string, key: string, re: RegExp): void {
  let thrown: unknown;
  try {
    parse(extra);
  } catch (err) {
    thrown = err;
  }
  if (!(thrown instanceof ConfigError)) {
    t.fail(`expected a ConfigError for ${key}, got ${String(thrown)}`);
    return;
  }
  t.match(thrown, { key, message: re }, thrown.message);
  t.equal(thrown.message.split('\n').length, 1, 'one line');
  t.equal(thrown.message.indexOf(`${FILE}: ${key}: `), 0, 'names file and key');
}

void t.test('without [cluster] the home agent runs alone', async (t) => {
  t.equal(parse('').cluster, undefined);
});

void t.test('[cluster] with plain http endpoints', async (t) => {
  t.same(parse(CLUSTER).cluster, {
    etcd: ['http://192.0.2.1:2379', 'http://[2001:db8::2]:2379'],
    name: 'home1',
    member: 'ha1',
    tlsCa: undefined,
    tlsCert: undefined,
    tlsKey: undefined,
  });
});

void t.test('[cluster] with TLS: paths resolved against the config file', async (t) => {
  const c = parse(`[cluster]
etcd = "https://etcd1.example:2379"
name = "home1"
member = "ha-2"
tls_ca = "etcd/ca.pem"
tls_cert = "/etc/ssl/ha2.pem"
tls_key = "etcd/ha2.key"
`).cluster;
  t.same(c, {
    etcd: ['https://etcd1.example:2379'],
    name: 'home1',
    member: 'ha-2',
    tlsCa: '/etc/mip6/etcd/ca.pem',
    tlsCert: '/etc/ssl/ha2.pem',
    tlsKey: '/etc/mip6/etcd/ha2.key',
  });
});

void t.test('bad [cluster] values: one line naming file and key', async (t) => {
  const only = (lines: string): string => `[cluster]\n${lines}\n`;
  expectError(t, only('name = "a"\nmember = "b"'), 'cluster.etcd', /required key is missing/);
  expectError(t, only('etcd = []\nname = "a"\nmember = "b"'), 'cluster.etcd', /required/);
  expectError(
    t,
    only('etcd = 2379\nname = "a"\nmember = "b"'),
    'cluster.etcd',
    /expected a string/,
  );
  expectError(t, only('etcd = "10.0.0.1:2379"\nname = "a"\nmember = "b"'), 'cluster.etcd', /http/);
  expectError(
    t,
    only('etcd = "http://10.0.0.1"\nname = "a"\nmember = "b"'),
    'cluster.etcd',
    /host:port/,
  );
  expectError(
    t,
    only('etcd = ["http://10.0.0.1:2379", "http://10.0.0.2:2379/v3"]\nname = "a"\nmember = "b"'),
    'cluster.etcd[1]',
    /nothing more/,
  );
  expectError(
    t,
    only('etcd = ["http://10.0.0.1:2379", "https://10.0.0.2:2379"]\nname = "a"\nmember = "b"'),
    'cluster.etcd',
    /mixes http/,
  );
  expectError(t, only('etcd = "http://10.0.0.1:2379"\nmember = "b"'), 'cluster.name', /required/);
  expectError(
    t,
    only('etcd = "http://10.0.0.1:2379"\nname = "a/b"\nmember = "b"'),
    'cluster.name',
    /letters/,
  );
  expectError(t, only('etcd = "http://10.0.0.1:2379"\nname = "a"'), 'cluster.member', /required/);
  expectError(
    t,
    only('etcd = "http://10.0.0.1:2379"\nname = "a"\nmember = ""'),
    'cluster.member',
    /letters/,
  );
  expectError(
    t,
    only('etcd = "http://10.0.0.1:2379"\nname = "a"\nmember = "b"\ntls_ca = "ca.pem"'),
    'cluster.tls_ca',
    /needs https/,
  );
  expectError(
    t,
    only('etcd = "https://10.0.0.1:2379"\nname = "a"\nmember = "b"\ntls_cert = "c.pem"'),
    'cluster.tls_cert',
    /needs cluster\.tls_key too/,
  );
  expectError(
    t,
    only('etcd = "https://10.0.0.1:2379"\nname = "a"\nmember = "b"\ntls_key = "k.pem"'),
    'cluster.tls_key',
    /needs cluster\.tls_cert too/,
  );
  expectError(
    t,
    only('etcd = "http://10.0.0.1:2379"\nname = "a"\nmember = "b"\nttl = 3'),
    'cluster.ttl',
    /unknown key/,
  );
  try {
    parseHaConfig(`cluster = 1\n${BASE}`, FILE);
    t.fail('expected a ConfigError');
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    t.match(err.message, /^\/etc\/mip6\/ha.toml: cluster: expected a table \(\[cluster\]\), got /);
  }
});

void t.test('[home] state and [cluster] exclude each other', async (t) => {
  try {
    parseHaConfig(BASE + 'state = "ha.db"\n' + CLUSTER, FILE);
    t.fail('expected a ConfigError');
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    t.equal(err.key, 'home.state');
    t.match(err.message, /cluster keeps its bindings in etcd/);
  }
});

void t.test('[home] ipv4_pool and [cluster] exclude each other', async (t) => {
  // Pools and leases are per home agent: two HAs of a cluster would grant the same address.
  expectError(
    t,
    'ipv4_pool = "10.99.0.0/24"\n' + CLUSTER,
    'home.ipv4_pool',
    /not shared by a cluster \(\[cluster\]\): remove home\.ipv4_pool$/,
  );
  t.equal(parse('ipv4_pool = "10.99.0.0/24"\n').home.ipv4Pool, '10.99.0.0/24', 'alone: fine');
});

void t.test('a changed [cluster] needs a restart', async (t) => {
  const a = parse(CLUSTER);
  const b = parse(CLUSTER.replace('ha1', 'ha9'));
  t.same(restartOnlyChanges(a, b), ['cluster']);
  t.same(restartOnlyChanges(a, parse(CLUSTER)), []);
});
