import t from 'tap';
import { ConfigError, WireError } from '../../src/util/errors.js';

void t.test('ConfigError names file, key and problem', async (t) => {
  const err = new ConfigError('/etc/mip6/ha.toml', 'home.prefix', 'not an IPv6 prefix: "x"');
  t.equal(err.code, 'ERR_CONFIG');
  t.equal(err.message, '/etc/mip6/ha.toml: home.prefix: not an IPv6 prefix: "x"');
});

void t.test('WireError carries code and offset', async (t) => {
  const err = new WireError('ERR_TRUNCATED', 'need 40 bytes', 12);
  t.equal(err.code, 'ERR_TRUNCATED');
  t.equal(err.offset, 12);
  t.equal(err.name, 'WireError');
});
