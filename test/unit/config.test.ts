import t, { type Test } from 'tap';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../src/util/errors.js';
import {
  defaultOverlayMtu,
  editDistance,
  loadHaConfig,
  loadMnConfig,
  parseCnConfig,
  parseHaConfig,
  parseMnConfig,
  suggestKey,
} from '../../src/config/index.js';

const IDENTITY = `[identity]
private_key = "keys/node.key"
certificate = "keys/node.cert"
authority = "/etc/mip6/authority.pub"
`;
const HA = `${IDENTITY}
[home]
prefix = "2001:db8:100::/64"
`;
const MN = `${IDENTITY}
[home]
address = "2001:DB8:100:0::10"
agent = "198.51.100.1"
`;

/** Runs `fn`, asserts a ConfigError naming `file` and `key` whose message matches `re`. */
function expectConfigError(
  t: Test,
  fn: () => unknown,
  file: string,
  key: string,
  re: RegExp,
): void {
  try {
    fn();
    t.fail(`expected a ConfigError for ${key}`);
  } catch (err) {
    t.ok(err instanceof ConfigError, 'is a ConfigError');
    const e = err as ConfigError;
    t.equal(e.code, 'ERR_CONFIG');
    t.equal(e.file, file);
    t.equal(e.key, key);
    t.match(e.message, re);
    t.ok(e.message.startsWith(`${file}: ${key}: `), e.message);
  }
}

void t.test('ha.toml: minimal file gets every default', async (t) => {
  const c = parseHaConfig(HA, '/etc/mip6/ha.toml');
  t.equal(c.role, 'ha');
  t.same(c.identity, {
    privateKey: '/etc/mip6/keys/node.key',
    certificate: '/etc/mip6/keys/node.cert',
    authority: '/etc/mip6/authority.pub',
  });
  t.same(c.listen, { address4: '0.0.0.0', address6: '::', port: 4191, ports: [4191] });
  t.equal(c.home.prefix.text, '2001:db8:100::/64');
  t.equal(c.home.address, '2001:db8:100::1', 'defaults to prefix::1');
  t.equal(c.home.maxLifetime, 600);
  t.equal(c.home.refreshAdvice, undefined);
  t.equal(c.home.natKeepalive, 110);
  t.equal(c.tun.mtu, 1396, '1500 - 80 - 24');
  t.equal(c.tun.name, undefined);
  t.same(c.log, { level: 'info', format: 'text' });
  t.equal(c.controlSocket, '/run/mip6/ha.sock');
  t.equal(c.pcap, undefined);
});

void t.test('ha.toml: every key set', async (t) => {
  const text = `control_socket = "/tmp/x/ha.sock"
pcap = "inner.pcap"
${IDENTITY}
[tun]
name = "mip6%d"
underlay_mtu = 9000
mtu = 8000
[log]
level = "debug"
format = "json"
[listen]
address4 = "198.51.100.1"
address6 = "off"
port = 5000
[home]
prefix = "2001:db8:100::/64"
address = "2001:db8:100::fe"
max_lifetime = 1002
refresh_advice = 301
nat_keepalive = 20
link = "br0"
`;
  const c = parseHaConfig(text, 'conf/ha.toml');
  t.equal(c.controlSocket, '/tmp/x/ha.sock');
  t.equal(c.pcap, 'conf/inner.pcap', 'relative paths resolve against the config file');
  t.same(c.tun, { name: 'mip6%d', mtu: 8000, underlayMtu: 9000 });
  t.same(c.log, { level: 'debug', format: 'json' });
  t.same(c.listen, { address4: '198.51.100.1', address6: undefined, port: 5000, ports: [5000] });
  t.equal(c.home.address, '2001:db8:100::fe');
  t.equal(c.home.maxLifetime, 1000, 'rounded down to 4 s units');
  t.equal(c.home.refreshAdvice, 300);
  t.equal(c.home.natKeepalive, 20);
  t.equal(c.home.link, 'br0');
});

void t.test('mn.toml and cn.toml defaults', async (t) => {
  const m = parseMnConfig(MN, 'mn.toml');
  t.equal(m.home.address, '2001:db8:100::10', 'canonical form');
  t.equal(m.home.prefix.text, '2001:db8:100::/64');
  t.equal(m.home.agent, '198.51.100.1');
  t.equal(m.home.agentKind, 'ipv4');
  t.equal(m.home.agentPort, 4191);
  t.equal(m.home.agentAddress, '2001:db8:100::1');
  t.equal(m.home.lifetime, 600);
  t.equal(m.home.firstRegistrationTimeout, 1.5);
  t.equal(m.underlay.port, 0);
  t.same(m.movement, {
    netlink: true,
    probeInterval: 5,
    probeTimeout: 1,
    probeAttempts: 3,
    returnHome: true,
    portalLogin: false,
  });
  t.equal(
    parseMnConfig(MN + '[movement]\nreturn_home = false\n', 'mn.toml').movement.returnHome,
    false,
    'return_home = false: never home, always tunnel',
  );
  t.equal(m.controlSocket, '/run/mip6/mn.sock');
  const c = parseCnConfig(MN, 'cn.toml');
  t.equal(c.role, 'cn');
  t.equal(c.underlay.port, 4191, 'a CN listens on the dsmipv6 port');
  t.same(c.routeOptimization, { enabled: true, bindingLifetime: 420 });
  t.equal(c.controlSocket, '/run/mip6/cn.sock');
  const h = parseMnConfig(MN.replace('198.51.100.1', 'HA.Example.net'), 'mn.toml');
  t.equal(h.home.agent, 'ha.example.net');
  t.equal(h.home.agentKind, 'hostname');
  const v6 = parseMnConfig(MN.replace('198.51.100.1', '2001:db8:ff:0::1'), 'mn.toml');
  t.equal(v6.home.agent, '2001:db8:ff::1');
  t.equal(v6.home.agentKind, 'ipv6');
});

void t.test('unknown keys are rejected with a suggestion', async (t) => {
  expectConfigError(
    t,
    () => parseHaConfig(HA + 'max_lifetim = 60\n', 'ha.toml'),
    'ha.toml',
    'home.max_lifetim',
    /unknown key in \[home\] \(did you mean "home.max_lifetime"\?\)/,
  );
  expectConfigError(
    t,
    () => parseHaConfig('contol_socket = "/x"\n' + HA, 'ha.toml'),
    'ha.toml',
    'contol_socket',
    /did you mean "control_socket"/,
  );
  expectConfigError(
    t,
    () => parseHaConfig(HA + '[homes]\n', 'ha.toml'),
    'ha.toml',
    'homes',
    /unknown key at top level \(did you mean "home"\?\)/,
  );
  expectConfigError(
    t,
    () => parseMnConfig(MN + 'zzzzzzzz = 1\n', 'mn.toml'),
    'mn.toml',
    'home.zzzzzzzz',
    /^(?!.*did you mean).*unknown key/,
  );
  expectConfigError(
    t,
    () => parseMnConfig(MN + '[route_optimization]\nenabled = true\n', 'mn.toml'),
    'mn.toml',
    'route_optimization',
    /unknown key/,
  );
});

void t.test('wrong types', async (t) => {
  expectConfigError(
    t,
    () => parseHaConfig(HA + 'max_lifetime = "600"\n', 'ha.toml'),
    'ha.toml',
    'home.max_lifetime',
    /expected an integer, got a string/,
  );
  expectConfigError(
    t,
    () => parseHaConfig(HA + 'max_lifetime = 60.5\n', 'ha.toml'),
    'ha.toml',
    'home.max_lifetime',
    /expected an integer, got a float/,
  );
  expectConfigError(
    t,
    () => parseHaConfig('home = 3\n' + IDENTITY, 'ha.toml'),
    'ha.toml',
    'home',
    /expected a table/,
  );
  expectConfigError(
    t,
    () => parseHaConfig(HA + '[log]\nlevel = "verbose"\n', 'ha.toml'),
    'ha.toml',
    'log.level',
    /expected one of "debug", "info", "warn", "error", got "verbose"/,
  );
  expectConfigError(
    t,
    () => parseMnConfig(MN + '[movement]\nnetlink = "yes"\n', 'mn.toml'),
    'mn.toml',
    'movement.netlink',
    /expected true or false/,
  );
  expectConfigError(
    t,
    () => parseMnConfig(MN + '[movement]\nreturn_home = "off"\n', 'mn.toml'),
    'mn.toml',
    'movement.return_home',
    /^mn.toml: movement.return_home: expected true or false, got a string$/,
  );
  expectConfigError(
    t,
    () => parseMnConfig(MN + '[underlay]\ninterfaces = ["eth0", 3]\n', 'mn.toml'),
    'mn.toml',
    'underlay.interfaces[1]',
    /expected a string, got an integer/,
  );
});

void t.test('out of range', async (t) => {
  expectConfigError(
    t,
    () => parseHaConfig(HA + 'max_lifetime = 262144\n', 'ha.toml'),
    'ha.toml',
    'home.max_lifetime',
    /maximum is 262140 s/,
  );
  expectConfigError(
    t,
    () => parseHaConfig(HA + 'max_lifetime = 0\n', 'ha.toml'),
    'ha.toml',
    'home.max_lifetime',
    /minimum is 4 s/,
  );
  expectConfigError(
    t,
    () => parseHaConfig(HA + 'max_lifetime = 100\nrefresh_advice = 100\n', 'ha.toml'),
    'ha.toml',
    'home.refresh_advice',
    /less than home.max_lifetime/,
  );
  expectConfigError(
    t,
    () => parseHaConfig(HA + '[listen]\nport = 70000\n', 'ha.toml'),
    'ha.toml',
    'listen.port',
    /maximum is 65535/,
  );
  expectConfigError(
    t,
    () => parseHaConfig(HA + '[tun]\nmtu = 1500\n', 'ha.toml'),
    'ha.toml',
    'tun.mtu',
    /maximum is 1396/,
  );
  expectConfigError(
    t,
    () => parseHaConfig(HA + '[tun]\nmtu = 1000\n', 'ha.toml'),
    'ha.toml',
    'tun.mtu',
    /below the IPv6 minimum link MTU 1280/,
  );
  expectConfigError(
    t,
    () => parseHaConfig(HA + '[tun]\nname = "a-very-long-tun-name"\n', 'ha.toml'),
    'ha.toml',
    'tun.name',
    /1 to 15 characters/,
  );
  expectConfigError(
    t,
    () => parseMnConfig(MN + 'first_registration_timeout = 40\n', 'mn.toml'),
    'mn.toml',
    'home.first_registration_timeout',
    /maximum is 32 s/,
  );
  expectConfigError(
    t,
    () => parseCnConfig(MN + '[route_optimization]\nbinding_lifetime = 600\n', 'cn.toml'),
    'cn.toml',
    'route_optimization.binding_lifetime',
    /maximum is 420 s/,
  );
});

void t.test('bad addresses and prefixes', async (t) => {
  expectConfigError(
    t,
    () => parseHaConfig(HA + 'address = "2001:db8:100::zz"\n', 'ha.toml'),
    'ha.toml',
    'home.address',
    /not a valid IPv6 address/,
  );
  expectConfigError(
    t,
    () => parseHaConfig(HA + 'address = "198.51.100.1"\n', 'ha.toml'),
    'ha.toml',
    'home.address',
    /expected an IPv6 address, got the IPv4 address/,
  );
  expectConfigError(
    t,
    () => parseHaConfig(HA + '[listen]\naddress4 = "198.51.100.256"\n', 'ha.toml'),
    'ha.toml',
    'listen.address4',
    /not a valid dotted-quad IPv4 address/,
  );
  expectConfigError(
    t,
    () => parseHaConfig(HA + '[listen]\naddress4 = "off"\naddress6 = "off"\n', 'ha.toml'),
    'ha.toml',
    'listen',
    /enable at least one/,
  );
  expectConfigError(
    t,
    () => parseHaConfig(HA.replace('::/64', '::/64x'), 'ha.toml'),
    'ha.toml',
    'home.prefix',
    /not a valid IPv6 prefix/,
  );
  expectConfigError(
    t,
    () => parseHaConfig(HA.replace('::/64', '::1/64'), 'ha.toml'),
    'ha.toml',
    'home.prefix',
    /bits set after the \/64 boundary \(did you mean "2001:db8:100::\/64"\?\)/,
  );
  expectConfigError(
    t,
    () => parseHaConfig(HA.replace('2001:db8:100::/64', '198.51.100.0/24'), 'ha.toml'),
    'ha.toml',
    'home.prefix',
    /IPv4 prefix/,
  );
  expectConfigError(
    t,
    () => parseHaConfig(HA.replace('2001:db8:100::/64', '2000::/8'), 'ha.toml'),
    'ha.toml',
    'home.prefix',
    /too short/,
  );
  expectConfigError(
    t,
    () => parseMnConfig(MN.replace('198.51.100.1', '198.51.100'), 'mn.toml'),
    'mn.toml',
    'home.agent',
    /neither an IPv4 address, an IPv6 address nor a hostname/,
  );
  expectConfigError(
    t,
    () => parseMnConfig(MN.replace('198.51.100.1', 'bad_host!'), 'mn.toml'),
    'mn.toml',
    'home.agent',
    /neither/,
  );
  expectConfigError(
    t,
    () => parseMnConfig(MN.replace('198.51.100.1', '2001:db8::g'), 'mn.toml'),
    'mn.toml',
    'home.agent',
    /not a valid IPv6 address/,
  );
});

void t.test('addresses outside their prefix', async (t) => {
  expectConfigError(
    t,
    () => parseHaConfig(HA + 'address = "2001:db8:200::1"\n', 'ha.toml'),
    'ha.toml',
    'home.address',
    /2001:db8:200::1 is outside home.prefix 2001:db8:100::\/64/,
  );
  expectConfigError(
    t,
    () => parseHaConfig(HA + 'address = "2001:db8:100::"\n', 'ha.toml'),
    'ha.toml',
    'home.address',
    /Subnet-Router anycast/,
  );
  expectConfigError(
    t,
    () => parseMnConfig(MN + 'agent_address = "2001:db8:101::1"\n', 'mn.toml'),
    'mn.toml',
    'home.agent_address',
    /outside the home prefix 2001:db8:100::\/64/,
  );
  expectConfigError(
    t,
    () => parseMnConfig(MN + 'agent_address = "2001:db8:100::10"\n', 'mn.toml'),
    'mn.toml',
    'home.agent_address',
    /same as home.address/,
  );
  // A /56 home prefix makes 2001:db8:100:1::1 legal.
  const ok = parseMnConfig(
    MN + 'prefix_length = 56\nagent_address = "2001:db8:100:1::1"\n',
    'mn.toml',
  );
  t.equal(ok.home.prefix.text, '2001:db8:100::/56');
});

void t.test('missing required keys', async (t) => {
  expectConfigError(
    t,
    () => parseHaConfig(IDENTITY, 'ha.toml'),
    'ha.toml',
    'home.prefix',
    /required key is missing/,
  );
  expectConfigError(
    t,
    () => parseHaConfig('[home]\nprefix = "2001:db8:100::/64"\n', 'ha.toml'),
    'ha.toml',
    'identity.private_key',
    /required key is missing/,
  );
  expectConfigError(
    t,
    () => parseMnConfig(MN.replace(/agent = .*\n/, ''), 'mn.toml'),
    'mn.toml',
    'home.agent',
    /required key is missing/,
  );
  expectConfigError(
    t,
    () => parseMnConfig(MN.replace(/address = .*\n/, ''), 'mn.toml'),
    'mn.toml',
    'home.address',
    /required key is missing/,
  );
  expectConfigError(
    t,
    () => parseHaConfig(HA.replace('"keys/node.key"', '""'), 'ha.toml'),
    'ha.toml',
    'identity.private_key',
    /empty string/,
  );
});

void t.test('TOML syntax errors name the line', async (t) => {
  expectConfigError(
    t,
    () => parseHaConfig(HA + 'max_lifetime = = 3\n', 'ha.toml'),
    'ha.toml',
    'line 8',
    /TOML syntax error at column \d+/,
  );
  expectConfigError(
    t,
    () => parseHaConfig('[identity\n', 'x.toml'),
    'x.toml',
    'line 1',
    /TOML syntax/,
  );
  expectConfigError(
    t,
    () => parseHaConfig(HA + '[home]\n', 'ha.toml'),
    'ha.toml',
    'line 8',
    /TOML syntax/,
  );
});

void t.test('loader: missing, unreadable and valid files', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mip6-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const missing = join(dir, 'nope.toml');
  await t.rejects(loadHaConfig(missing), {
    code: 'ERR_CONFIG',
    file: missing,
    key: '(file)',
    message: /no such file/,
  });
  await t.rejects(loadHaConfig(dir), { code: 'ERR_CONFIG', message: /is a directory/ });
  const good = join(dir, 'ha.toml');
  writeFileSync(good, HA);
  const c = await loadHaConfig(good);
  t.equal(c.identity.privateKey, join(dir, 'keys/node.key'));
  const mn = join(dir, 'mn.toml');
  writeFileSync(mn, MN + 'agent_port = 0\n');
  await t.rejects(loadMnConfig(mn), { file: mn, key: 'home.agent_port', message: /minimum is 1/ });
  if (process.getuid?.() !== 0) {
    chmodSync(good, 0o000);
    await t.rejects(loadHaConfig(good), { message: /permission denied/ });
  }
});

void t.test('helpers', async (t) => {
  t.equal(editDistance('kitten', 'sitting'), 3);
  t.equal(editDistance('', 'abc'), 3);
  t.equal(suggestKey('max-lifetime', ['max_lifetime', 'address']), 'max_lifetime');
  t.equal(suggestKey('qqqq', ['max_lifetime', 'address']), undefined);
  t.equal(defaultOverlayMtu(1500), 1396);
  t.equal(defaultOverlayMtu(1300), 1280, 'never below the IPv6 minimum');
});

void t.test('home.agent may list several addresses', async (t) => {
  const m = parseMnConfig(
    MN.replace('"198.51.100.1"', '["198.51.100.1", "2001:DB8:ff::1", "ha.example"]'),
    'mn.toml',
  );
  t.same(m.home.agents, ['198.51.100.1', '2001:db8:ff::1', 'ha.example']);
  t.equal(m.home.agent, '198.51.100.1');
  t.equal(m.home.agentKind, 'ipv4');
  expectConfigError(
    t,
    () => parseMnConfig(MN.replace('"198.51.100.1"', '["198.51.100.1", "2001:db8::g"]'), 'mn.toml'),
    'mn.toml',
    'home.agent[1]',
    /not a valid IPv6 address/,
  );
  expectConfigError(
    t,
    () => parseMnConfig(MN.replace('"198.51.100.1"', '[]'), 'mn.toml'),
    'mn.toml',
    'home.agent',
    /required key is missing/,
  );
  expectConfigError(
    t,
    () => parseMnConfig(MN.replace('"198.51.100.1"', '4'), 'mn.toml'),
    'mn.toml',
    'home.agent',
    /expected a string or an array of strings, got an integer/,
  );
});
