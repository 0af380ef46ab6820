import t from 'tap';
import { parseCnConfig, parseMnConfig } from '../../src/config/mn.js';
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

void t.test('[[correspondent]] in mn.toml and cn.toml', async (t) => {
  const mn = parseMnConfig(
    `${BASE}
[[correspondent]]
address = "2001:DB8:100::20"
underlay = ["203.0.113.130", "2001:db8:4::10"]
public_key = "keys/cn.pub"

[[correspondent]]
address = "2001:db8:100::21"
underlay = "203.0.113.131"
port = 5000
public_key = "/etc/mip6/other.pub"
route_optimization = false
lifetime = 100
ack = false
`,
    '/etc/mip6/mn.toml',
  );
  t.equal(mn.correspondents.length, 2);
  t.same(mn.correspondents[0], {
    address: '2001:db8:100::20',
    underlay: ['203.0.113.130', '2001:db8:4::10'],
    port: 4191,
    publicKey: '/etc/mip6/keys/cn.pub',
    routeOptimization: true,
    lifetime: 420,
    ack: true,
  });
  t.equal(mn.correspondents[1]?.routeOptimization, false);
  t.equal(mn.correspondents[1]?.port, 5000);
  t.equal(parseMnConfig(BASE, '/x/mn.toml').correspondents.length, 0, 'none by default');
  const cn = parseCnConfig(BASE, '/x/cn.toml');
  t.equal(cn.underlay.port, 4191, 'a CN listens on 4191 by default');
  t.equal(cn.routeOptimization.enabled, true);
  t.same(cn.correspondents, []);
});

void t.test('[[correspondent]] errors name the key', async (t) => {
  const bad = (extra: string, key: RegExp): void => {
    let err: unknown;
    try {
      parseMnConfig(`${BASE}\n[[correspondent]]\n${extra}`, '/x/mn.toml');
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof ConfigError && key.test(err.message), `${extra}: ${String(err)}`);
  };
  bad('underlay = "203.0.113.1"\npublic_key = "a"', /correspondent\[0\]\.address/);
  bad('address = "2001:db8::1"\npublic_key = "a"', /correspondent\[0\]\.underlay/);
  bad('address = "2001:db8::1"\nunderlay = "nope"\npublic_key = "a"', /underlay\[0\]/);
  bad('address = "2001:db8::1"\nunderlay = "192.0.2.1"', /public_key/);
  bad(
    'address = "2001:db8::1"\nunderlay = "192.0.2.1"\npublic_key = "a"\nlifetime = 421',
    /lifetime/,
  );
  bad('address = "2001:db8::1"\nunderlay = "192.0.2.1"\npublic_key = "a"\nfoo = 1', /foo/);
});
