/**
 * The personal tunnel's configuration (issue #15): [tun] routes and fwmark in mn.toml /
 * cn.toml, [home] ipv4_address (MN) and ipv4_pool / ipv4_masquerade (HA), and the policy-routing lines TunnelRoutes hands to `ip -batch` (a recording runner:
 * the order of removal, installation, suspension at home and removal at exit).
 */
import t from 'tap';
import { parseHaConfig } from '../../src/config/ha.js';
import { parseCnConfig, parseMnConfig } from '../../src/config/mn.js';
import { TunnelRoutes, type IpBatchRunner } from '../../src/io/tunnel-routes.js';
import { ConfigError } from '../../src/util/errors.js';

const BASE = `
[identity]
private_key = "keys/me.key"
certificate = "keys/me.cert"
authority = "keys/ca.pub"

[home]
address = "2001:db8:100::10"
agent = "198.51.100.1"
agent_public_key = "keys/ha.pub"
`;

void t.test('[tun] routes and fwmark', async (t) => {
  const plain = parseMnConfig(BASE, '/x/mn.toml');
  t.same(
    plain.tunnel,
    { routes: [], fwmark: 4191, dns: [], blockOutside: false },
    "default: the home prefix only, the machine's resolvers, no kill switch",
  );
  const full = parseMnConfig(
    `${BASE}\n[tun]\nroutes = ["::/0", "0.0.0.0/0", "2001:DB8:ff::/48", " 10.99.0.0/16"]\nfwmark = 51820\n`,
    '/x/mn.toml',
  );
  t.same(full.tunnel, {
    routes: ['::/0', '0.0.0.0/0', '2001:db8:ff::/48', '10.99.0.0/16'],
    fwmark: 51820,
    dns: [],
    blockOutside: false,
  });
  const dns = parseMnConfig(
    `${BASE}\n[tun]\ndns = ["10.99.0.1", "2001:DB8:100::1"]\nblock_outside = true\n`,
    '/x/mn.toml',
  );
  t.same(dns.tunnel.dns, ['10.99.0.1', '2001:db8:100::1']);
  t.equal(dns.tunnel.blockOutside, true);
  const cn = parseCnConfig(`${BASE}\n[tun]\nroutes = "0.0.0.0/0"\n`, '/x/cn.toml');
  t.same(cn.tunnel.routes, ['0.0.0.0/0'], 'a CN takes one string too');
});

void t.test('[tun] bad values: one line naming file and key', async (t) => {
  const bad = (tun: string, key: string, why: RegExp): void => {
    let err: unknown;
    try {
      parseMnConfig(`${BASE}\n[tun]\n${tun}\n`, '/x/mn.toml');
    } catch (e) {
      err = e;
    }
    t.type(err, ConfigError, tun);
    const msg = (err as Error).message;
    t.match(msg, '/x/mn.toml', `${tun}: names the file`);
    t.match(msg, `tun.${key}`, `${tun}: names the key`);
    t.match(msg, why, `${tun}: says why`);
    t.notOk(msg.includes('\n'), `${tun}: one line`);
  };
  bad('routes = ["0.0.0.0"]', 'routes[0]', /not an IPv4 or IPv6 prefix/);
  bad(
    'routes = ["::/0", "10.0.0.1/8"]',
    'routes[1]',
    /host bits set \(did you mean 10.0.0.0\/8\?\)/,
  );
  bad('routes = ["10.0.0.0/33"]', 'routes[0]', /not an IPv4 or IPv6 prefix/);
  bad('routes = ["::/0", "0::/0"]', 'routes[1]', /listed twice/);
  bad('routes = [1]', 'routes[0]', /expected a string/);
  bad('routes = "default"', 'routes[0]', /not an IPv4 or IPv6 prefix/);
  bad('fwmark = 0', 'fwmark', /./);
  // The mark is also the table's number: 253-255 are the kernel's ('route flush table 254'
  // would empty main).
  for (const n of [253, 254, 255]) bad(`fwmark = ${n}`, 'fwmark', /routing table of the kernel/);
  bad('fwmark = 4294967296', 'fwmark', /./);
  t.equal(parseMnConfig(`${BASE}\n[tun]\nfwmark = 252\n`, '/x/mn.toml').tunnel.fwmark, 252);
  t.equal(parseMnConfig(`${BASE}\n[tun]\nfwmark = 256\n`, '/x/mn.toml').tunnel.fwmark, 256);
  t.equal(
    parseMnConfig(`${BASE}\n[tun]\nfwmark = 4294967295\n`, '/x/mn.toml').tunnel.fwmark,
    4294967295,
  );
  for (const mark of [0, 253, 254, 255, 2 ** 32]) {
    t.throws(() => new TunnelRoutes({ tunName: 'x', routes: [], mark }), RangeError, `${mark}`);
  }
  bad('fwmark = "x"', 'fwmark', /./);
  bad('route = ["::/0"]', 'route', /did you mean "tun.routes"/);
  bad('dns = ["resolver.example"]', 'dns[0]', /not an IPv4 or IPv6 address/);
  bad('dns = ["10.99.0.1", 5]', 'dns[1]', /expected a string/);
  bad('block_outside = "yes"', 'block_outside', /boolean|true or false/);
});

void t.test('TunnelRoutes: the ip -batch lines, in order', async (t) => {
  const calls: { family: number; lines: string[]; force: boolean }[] = [];
  const runner: IpBatchRunner = async (family, lines, force) => {
    calls.push({ family, lines, force });
  };
  const r = new TunnelRoutes(
    { tunName: 'mip6t', routes: ['::/0', '0.0.0.0/0', '2001:db8:ff::/48'], mark: 4191 },
    runner,
  );
  t.same(r.families, [4, 6]);
  await r.install();
  const stale = [
    'rule del pref 4190 lookup main suppress_prefixlength 0',
    'rule del pref 4191 not fwmark 4191 lookup 4191',
    'rule del pref 4189 ipproto udp dport 53 lookup main',
    'rule del pref 4189 ipproto tcp dport 53 lookup main',
    'rule del pref 4189 ipproto tcp dport 80 lookup main',
    'rule del pref 4189 ipproto tcp dport 443 lookup main',
    'route flush table 4191',
  ];
  t.same(
    calls,
    [
      { family: 4, lines: stale, force: true },
      { family: 6, lines: stale, force: true },
      { family: 4, lines: ['route replace 0.0.0.0/0 dev mip6t table 4191'], force: false },
      {
        family: 6,
        lines: [
          'route replace ::/0 dev mip6t table 4191',
          'route replace 2001:db8:ff::/48 dev mip6t table 4191',
        ],
        force: false,
      },
      {
        family: 4,
        lines: [
          'rule add pref 4190 lookup main suppress_prefixlength 0',
          'rule add pref 4191 not fwmark 4191 lookup 4191',
        ],
        force: false,
      },
      {
        family: 6,
        lines: [
          'rule add pref 4190 lookup main suppress_prefixlength 0',
          'rule add pref 4191 not fwmark 4191 lookup 4191',
        ],
        force: false,
      },
    ],
    'stale state removed first (both families), routes into the table, then the rules',
  );
  calls.length = 0;
  await r.openPortal();
  await r.openPortal();
  t.same(
    calls.map((c) => [c.family, c.lines.length, c.lines[2]]),
    [
      [4, 4, 'rule add pref 4189 ipproto tcp dport 80 lookup main'],
      [6, 4, 'rule add pref 4189 ipproto tcp dport 80 lookup main'],
    ],
    'a captive portal: DNS, HTTP, HTTPS by the visited network, once',
  );
  calls.length = 0;
  await r.closePortal();
  await r.closePortal();
  t.same(
    calls.map((c) => c.lines[0]),
    [
      'rule del pref 4189 ipproto udp dport 53 lookup main',
      'rule del pref 4189 ipproto udp dport 53 lookup main',
    ],
    'registered again: closed, once per family',
  );
  calls.length = 0;
  await r.suspend();
  await r.suspend();
  t.same(
    calls.map((c) => c.lines[0]),
    [
      'rule del pref 4190 lookup main suppress_prefixlength 0',
      'rule del pref 4190 lookup main suppress_prefixlength 0',
    ],
    'at home: the rules away, once per family',
  );
  calls.length = 0;
  await r.resume();
  t.same(
    calls.map((c) => [c.family, c.lines[1]]),
    [
      [4, 'rule add pref 4191 not fwmark 4191 lookup 4191'],
      [6, 'rule add pref 4191 not fwmark 4191 lookup 4191'],
    ],
    'away again: the rules back',
  );
  calls.length = 0;
  await r.remove();
  t.same(
    calls.map((c) => c.force),
    [true, true],
    'exit: everything away, both families',
  );
  calls.length = 0;
  await r.resume();
  t.same(calls, [], 'nothing comes back after remove()');
});

void t.test('TunnelRoutes: a rule that cannot be added leaves nothing behind', async (t) => {
  const calls: string[] = [];
  const runner: IpBatchRunner = async (family, lines, force) => {
    calls.push(`${family}${force ? 'f' : ''}:${lines[0] ?? ''}`);
    if (!force && lines[0]?.startsWith('rule add') === true && family === 6) {
      throw new Error('RTNETLINK answers: Operation not permitted');
    }
  };
  const r = new TunnelRoutes({ tunName: 'x', routes: ['::/0', '0.0.0.0/0'], mark: 7 }, runner);
  await t.rejects(r.install(), /Operation not permitted/);
  t.match(calls.slice(-2), [/^4f:rule del/, /^6f:rule del/], 'cleaned up both families');
  t.throws(() => new TunnelRoutes({ tunName: 'x', routes: [], mark: 0 }, runner), RangeError);
});

const HA = `
[identity]
private_key = "keys/ha.key"
certificate = "keys/ha.cert"
authority = "keys/ca.pub"

[home]
prefix = "2001:db8:100::/64"
`;

void t.test('IPv4 home addresses: [home] ipv4_address, ipv4_pool, ipv4_masquerade', async (t) => {
  t.equal(parseMnConfig(BASE, '/x/mn.toml').home.ipv4Address, undefined, 'none by default');
  t.equal(
    parseMnConfig(BASE.replace('[home]', '[home]\nipv4_address = "auto"'), '/x/mn.toml').home
      .ipv4Address,
    'auto',
  );
  t.equal(
    parseMnConfig(BASE.replace('[home]', '[home]\nipv4_address = "10.99.0.7"'), '/x/mn.toml').home
      .ipv4Address,
    '10.99.0.7',
  );
  const ha = parseHaConfig(
    `${HA}ipv4_pool = "10.99.0.0/24"\nipv4_masquerade = "eth0"\n`,
    '/x/ha.toml',
  );
  t.equal(ha.home.ipv4Pool, '10.99.0.0/24');
  t.equal(ha.home.ipv4Masquerade, 'eth0');
  t.equal(parseHaConfig(HA, '/x/ha.toml').home.ipv4Pool, undefined);

  const bad = (fn: () => unknown, file: string, key: string, why: RegExp): void => {
    let err: unknown;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    t.type(err, ConfigError, key);
    const msg = (err as Error).message;
    t.match(msg, file);
    t.match(msg, key);
    t.match(msg, why);
    t.notOk(msg.includes('\n'), 'one line');
  };
  const mn = (v: string) => () =>
    parseMnConfig(BASE.replace('[home]', `[home]\nipv4_address = ${v}`), '/x/mn.toml');
  bad(mn('"10.99.0"'), '/x/mn.toml', 'home.ipv4_address', /neither "auto" nor a unicast IPv4/);
  bad(mn('"224.0.0.1"'), '/x/mn.toml', 'home.ipv4_address', /unicast/);
  bad(mn('"2001:db8::1"'), '/x/mn.toml', 'home.ipv4_address', /unicast IPv4/);
  bad(mn('7'), '/x/mn.toml', 'home.ipv4_address', /expected a string/);
  const haBad = (extra: string) => () => parseHaConfig(`${HA}${extra}\n`, '/x/ha.toml');
  bad(haBad('ipv4_pool = "10.99.0.1/24"'), '/x/ha.toml', 'home.ipv4_pool', /host bits set/);
  bad(haBad('ipv4_pool = "2001:db8::/64"'), '/x/ha.toml', 'home.ipv4_pool', /not an IPv4 prefix/);
  bad(haBad('ipv4_pool = "10.99.0.0/31"'), '/x/ha.toml', 'home.ipv4_pool', /8 to 30/);
  bad(haBad('ipv4_pool = "pool"'), '/x/ha.toml', 'home.ipv4_pool', /not an IPv4 or IPv6 prefix/);
  const probe = (v: string) => () =>
    parseMnConfig(`${BASE}\n[movement]\nportal_probe = ${v}\n`, '/x/mn.toml');
  t.equal(
    probe('"http://203.0.113.80/generate_204"')().movement.portalProbe,
    'http://203.0.113.80/generate_204',
  );
  t.equal(
    probe('"http://[2001:db8::80]:8080/generate_204"')().movement.portalProbe,
    'http://[2001:db8::80]:8080/generate_204',
    'an IPv6 literal in brackets',
  );
  t.equal(probe('"http://203.0.113.80:8080"')().movement.portalLogin, false, 'opt-in only');
  bad(probe('"https://x.example/"'), '/x/mn.toml', 'movement.portal_probe', /not a plain http/);
  bad(probe('"http://a b/"'), '/x/mn.toml', 'movement.portal_probe', /not a plain http/);
  // A host name would be blocked by the kill switch: an address is needed.
  for (const url of [
    'http://connectivity.example/generate_204',
    'http://2001:db8::80/',
    'http://[2001:db8::zz]/',
    'http://[connectivity.example]/',
    'http://203.0.113.300/',
    'http://203.0.113.80:0/',
    'http://203.0.113.80:65536/',
  ]) {
    bad(probe(`"${url}"`), '/x/mn.toml', 'movement.portal_probe', /with an address/);
  }
  const login = (v: string) => () =>
    parseMnConfig(
      `${BASE}\n[movement]\nportal_probe = "http://203.0.113.80/"\nportal_login = ${v}\n`,
      '/x/mn.toml',
    );
  t.equal(login('true')().movement.portalLogin, true);
  bad(login('"yes"'), '/x/mn.toml', 'movement.portal_login', /boolean|true or false/);
  bad(
    () => parseMnConfig(`${BASE}\n[movement]\nportal_login = true\n`, '/x/mn.toml'),
    '/x/mn.toml',
    'movement.portal_login',
    /needs \[movement\] portal_probe/,
  );
  bad(
    haBad('ipv4_masquerade = "eth0"'),
    '/x/ha.toml',
    'home.ipv4_masquerade',
    /needs home.ipv4_pool/,
  );
  bad(
    haBad('ipv4_pool = "10.99.0.0/24"\nipv4_masquerade = "a/b"'),
    '/x/ha.toml',
    'home.ipv4_masquerade',
    /not a valid interface name/,
  );
});

void t.test(
  'several ports: [listen] ports (HA) and [home] agent_port as a list (MN)',
  async (t) => {
    const ha = parseHaConfig(`[listen]\nports = [4191, 443]\n${HA}`, '/x/ha.toml');
    t.same([ha.listen.port, ha.listen.ports], [4191, [4191, 443]]);
    const mn = parseMnConfig(
      BASE.replace('[home]', '[home]\nagent_port = [4191, 443]'),
      '/x/mn.toml',
    );
    t.same([mn.home.agentPort, mn.home.agentPorts], [4191, [4191, 443]]);
    t.same(parseMnConfig(BASE, '/x/mn.toml').home.agentPorts, [4191], 'default: 4191 alone');
    const one = (toml: string, file: string, key: string, why: RegExp): void => {
      let err: unknown;
      try {
        if (file.endsWith('ha.toml')) parseHaConfig(toml, file);
        else parseMnConfig(toml, file);
      } catch (e) {
        err = e;
      }
      t.type(err, ConfigError, key);
      const msg = (err as Error).message;
      t.match(msg, `${file}: ${key}:`);
      t.match(msg, why);
      t.notOk(msg.includes('\n'));
    };
    one(`[listen]\nport = 4191\nports = [443]\n${HA}`, '/x/ha.toml', 'listen.ports', /either/);
    one(`[listen]\nports = [443, 443]\n${HA}`, '/x/ha.toml', 'listen.ports[1]', /listed twice/);
    one(`[listen]\nports = []\n${HA}`, '/x/ha.toml', 'listen.ports', /at least one/);
    one(`[listen]\nports = [70000]\n${HA}`, '/x/ha.toml', 'listen.ports[0]', /65535/);
    one(
      BASE.replace('[home]', '[home]\nagent_port = [4191, "443"]'),
      '/x/mn.toml',
      'home.agent_port[1]',
      /expected an integer/,
    );
    one(BASE.replace('[home]', '[home]\nagent_port = 0'), '/x/mn.toml', 'home.agent_port', /1/);
  },
);
