/**
 * ha.toml keys for the Home Agents List and the advertised prefixes (issue 6): [home]
 * preference / prefix_valid_lifetime / prefix_preferred_lifetime, [[home.advertise]],
 * [[home.agents]]; each problem is one ConfigError naming the file and the dotted key. Also the
 * DiscoveryConfig the daemon builds from them and what a SIGHUP reload keeps or reports.
 */
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseHaConfig } from '../../src/config/index.js';
import { ConfigError } from '../../src/util/errors.js';
import { haDiscovery, restartOnlyChanges } from '../../src/cli/ha-reload.js';
import { encodeKey, KeyTag } from '../../src/crypto/keys.js';
import { initCrypto } from '../../src/crypto/sodium.js';

const FILE = '/etc/mip6/ha.toml';
const BASE = `[identity]
private_key = "k"
certificate = "c"
authority = "a"
[home]
prefix = "2001:db8:100::/64"
`;

function parse(extra: string): ReturnType<typeof parseHaConfig> {
  return parseHaConfig(BASE + extra, FILE);
}

function expectError(t: Test, extra: string, key: string, re: RegExp): void {
  try {
    parse(extra);
    t.fail(`expected a ConfigError for ${key}`);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    t.equal(err.key, key, `key ${key}`);
    t.match(err.message, re);
    t.ok(err.message.startsWith(`${FILE}: ${key}: `), err.message);
    t.notOk(err.message.includes('\n'), 'one line');
  }
}

void t.test('defaults: preference 0, infinite home prefix, no other agents', async (t) => {
  const c = parse('');
  t.equal(c.home.preference, 0);
  t.equal(c.home.prefixValidLifetime, 0xffffffff);
  t.equal(c.home.prefixPreferredLifetime, 0xffffffff);
  t.same(c.home.advertise, []);
  t.same(c.home.agents, []);
});

void t.test('every new key set', async (t) => {
  const c = parse(`preference = -7
prefix_valid_lifetime = 3600
prefix_preferred_lifetime = 1800
[[home.advertise]]
prefix = "2001:db8:200::/48"
valid_lifetime = "infinity"
preferred_lifetime = 0
[[home.agents]]
home_address = "2001:DB8:100::2"
address = ["203.0.113.7", "2001:db8:ff::0:7"]
port = 4192
preference = 20
lifetime = 600
public_key = "keys/ha2.pub"
[[home.agents]]
home_address = "2001:db8:100::3"
address = "198.51.100.9"
`);
  t.equal(c.home.preference, -7);
  t.equal(c.home.prefixValidLifetime, 3600);
  t.equal(c.home.prefixPreferredLifetime, 1800);
  t.same(c.home.advertise, [
    {
      prefix: { address: '2001:db8:200::', length: 48, text: '2001:db8:200::/48' },
      validLifetime: 0xffffffff,
      preferredLifetime: 0,
    },
  ]);
  t.same(c.home.agents, [
    {
      homeAddress: '2001:db8:100::2',
      address4: '203.0.113.7',
      address6: '2001:db8:ff::7',
      port: 4192,
      preference: 20,
      lifetime: 600,
      publicKey: '/etc/mip6/keys/ha2.pub',
    },
    {
      homeAddress: '2001:db8:100::3',
      address4: '198.51.100.9',
      address6: undefined,
      port: 4191,
      preference: 0,
      lifetime: 1800,
      publicKey: undefined,
    },
  ]);
});

void t.test('haDiscovery reads peer keys; reload diff names restart-only keys', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mip6-cfg-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pub = join(dir, 'ha2.pub');
  await initCrypto();
  const key = Uint8Array.from({ length: 32 }, (_, i) => 255 - i);
  writeFileSync(pub, encodeKey(KeyTag.MEMBER_PUBLIC, key));
  const text = `${BASE}preference = 3
[[home.agents]]
home_address = "2001:db8:100::2"
address = "203.0.113.7"
preference = 9
public_key = "ha2.pub"
`;
  const a = parseHaConfig(text, join(dir, 'ha.toml'));
  const d = haDiscovery(a);
  t.same(
    d.homeAgents.map((h) => [h.address, h.preference, h.underlay4, h.port]),
    [
      ['2001:db8:100::1', 3, undefined, undefined],
      ['2001:db8:100::2', 9, '203.0.113.7', 4191],
    ],
  );
  t.same(d.homeAgents[1]?.publicKey, key, "the peer's key is read from its file");
  t.equal(d.homeAgents[0]?.publicKey, undefined, 'members use the key they pinned for us');
  t.same(d.prefixes, [
    {
      address: '2001:db8:100::',
      length: 64,
      validLifetime: 0xffffffff,
      preferredLifetime: 0xffffffff,
    },
  ]);
  const b = parseHaConfig(
    text.replace('preference = 9', 'preference = 1') + '[listen]\nport = 5000\n',
    join(dir, 'ha.toml'),
  );
  t.same(restartOnlyChanges(a, b), ['listen'], 'agents are reloadable, listen is not');
  const c = parseHaConfig(
    text.replace('prefix = "2001:db8:100::/64"', 'prefix = "2001:db8:100::/64"\nmax_lifetime = 40'),
    join(dir, 'ha.toml'),
  );
  t.same(restartOnlyChanges(a, c), ['home.maxLifetime']);
});

void t.test('errors: one line naming file, key and cause', async (t) => {
  expectError(t, 'preference = 40000', 'home.preference', /maximum is 32767/);
  expectError(t, 'preference = "high"', 'home.preference', /expected an integer/);
  expectError(t, 'prefix_valid_lifetime = -1', 'home.prefix_valid_lifetime', /minimum is 0/);
  expectError(
    t,
    'prefix_valid_lifetime = 4294967296',
    'home.prefix_valid_lifetime',
    /maximum is 4294967295/,
  );
  expectError(
    t,
    'prefix_valid_lifetime = "forever"',
    'home.prefix_valid_lifetime',
    /seconds or "infinity", got "forever"/,
  );
  expectError(
    t,
    'prefix_valid_lifetime = 60\nprefix_preferred_lifetime = 61',
    'home.prefix_preferred_lifetime',
    /longer than home.prefix_valid_lifetime \(60 s\)/,
  );
  expectError(
    t,
    'prefix_valid_lifetime = true',
    'home.prefix_valid_lifetime',
    /a string or a number/,
  );
  // [[home.advertise]]
  expectError(t, 'advertise = "x"', 'home.advertise', /array of tables/);
  expectError(t, '[[home.advertise]]\nvalid_lifetime = 5', 'home.advertise[0].prefix', /required/);
  expectError(
    t,
    '[[home.advertise]]\nprefix = "2001:db8:200::1/64"',
    'home.advertise[0].prefix',
    /bits set after the \/64/,
  );
  expectError(
    t,
    '[[home.advertise]]\nprefix = "2001:db8:100::/64"',
    'home.advertise[0].prefix',
    /is home.prefix, which is always advertised/,
  );
  expectError(
    t,
    '[[home.advertise]]\nprefix = "2001:db8:200::/64"\n[[home.advertise]]\nprefix = "2001:db8:200::/64"',
    'home.advertise[1].prefix',
    /listed twice/,
  );
  expectError(
    t,
    '[[home.advertise]]\nprefix = "2001:db8:200::/64"\nvalid_lifetime = 10\npreferred_lifetime = 20',
    'home.advertise[0].preferred_lifetime',
    /longer than home.advertise\[0\].valid_lifetime/,
  );
  expectError(
    t,
    '[[home.advertise]]\nprefix = "2001:db8:200::/64"\nvalid_lifetme = 10',
    'home.advertise[0].valid_lifetme',
    /unknown key in \[home.advertise\[0\]\] \(did you mean "home.advertise\[0\].valid_lifetime"\?\)/,
  );
  // [[home.agents]]
  const agent = (body: string): string => `[[home.agents]]\n${body}`;
  expectError(t, 'agents = ["x"]', 'home.agents', /array of tables/);
  expectError(t, agent('address = "203.0.113.7"'), 'home.agents[0].home_address', /required/);
  expectError(
    t,
    agent('home_address = "2001:db8:101::2"\naddress = "203.0.113.7"'),
    'home.agents[0].home_address',
    /outside home.prefix 2001:db8:100::\/64/,
  );
  expectError(
    t,
    agent('home_address = "2001:db8:100::"\naddress = "203.0.113.7"'),
    'home.agents[0].home_address',
    /Subnet-Router anycast/,
  );
  expectError(
    t,
    agent('home_address = "2001:db8:100::1"\naddress = "203.0.113.7"'),
    'home.agents[0].home_address',
    /our own home.address/,
  );
  expectError(
    t,
    agent('home_address = "2001:db8:100::2"\naddress = "203.0.113.7"') +
      '\n' +
      agent('home_address = "2001:db8:100:0::2"\naddress = "203.0.113.8"'),
    'home.agents[1].home_address',
    /listed twice/,
  );
  expectError(
    t,
    agent('home_address = "198.51.100.2"'),
    'home.agents[0].home_address',
    /expected an IPv6 address/,
  );
  expectError(t, agent('home_address = "2001:db8:100::2"'), 'home.agents[0].address', /required/);
  expectError(
    t,
    agent('home_address = "2001:db8:100::2"\naddress = []'),
    'home.agents[0].address',
    /required/,
  );
  expectError(
    t,
    agent('home_address = "2001:db8:100::2"\naddress = "ha2.example.net"'),
    'home.agents[0].address',
    /not an IPv4 or IPv6 address \(names are not resolved here\)/,
  );
  expectError(
    t,
    agent('home_address = "2001:db8:100::2"\naddress = ["203.0.113.7", "203.0.113.8"]'),
    'home.agents[0].address[1]',
    /second IPv4 address/,
  );
  expectError(
    t,
    agent('home_address = "2001:db8:100::2"\naddress = ["2001:db8::7", "2001:db8::8"]'),
    'home.agents[0].address[1]',
    /second IPv6 address/,
  );
  expectError(
    t,
    agent('home_address = "2001:db8:100::2"\naddress = "203.0.113.7"\nport = 0'),
    'home.agents[0].port',
    /minimum is 1/,
  );
  expectError(
    t,
    agent('home_address = "2001:db8:100::2"\naddress = "203.0.113.7"\npreference = -32769'),
    'home.agents[0].preference',
    /minimum is -32768/,
  );
  expectError(
    t,
    agent('home_address = "2001:db8:100::2"\naddress = "203.0.113.7"\nlifetime = 0'),
    'home.agents[0].lifetime',
    /minimum is 1 s/,
  );
  expectError(
    t,
    agent('home_address = "2001:db8:100::2"\naddress = "203.0.113.7"\nlifetime = 65536'),
    'home.agents[0].lifetime',
    /maximum is 65535 s/,
  );
  expectError(
    t,
    agent('home_address = "2001:db8:100::2"\naddress = "203.0.113.7"\npublic_key = ""'),
    'home.agents[0].public_key',
    /expected a file path/,
  );
  expectError(
    t,
    agent('home_address = "2001:db8:100::2"\naddress = "203.0.113.7"\nprefernce = 1'),
    'home.agents[0].prefernce',
    /did you mean "home.agents\[0\].preference"/,
  );
});
