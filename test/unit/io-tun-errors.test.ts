// explainTunError: errno codes from opening /dev/net/tun become explanations with the fix.
import t from 'tap';
import { explainTunError } from '../../src/io/tun.js';

void t.test('missing /dev/net/tun tells to load the module', async (t) => {
  const e = explainTunError(
    Object.assign(new Error('open failed'), { code: 'ENOENT', errno: -2 }),
    '',
  );
  t.equal(e.code, 'ERR_TUN_UNAVAILABLE');
  t.match(e.message, /modprobe tun/);
  t.equal(e.errno, -2);
});

void t.test('EPERM tells how to grant CAP_NET_ADMIN', async (t) => {
  const e = explainTunError(Object.assign(new Error('x'), { code: 'EPERM' }), 'mip6-0');
  t.equal(e.code, 'ERR_TUN_PERMISSION');
  t.match(e.message, /mip6-0/);
  t.match(e.message, /run as root/);
  t.match(e.message, /setcap cap_net_admin\+ep \$\(which node\)/);
});

void t.test('EBUSY and others', async (t) => {
  t.equal(
    explainTunError(Object.assign(new Error('x'), { code: 'EBUSY' }), 'a').code,
    'ERR_TUN_BUSY',
  );
  const other = explainTunError(Object.assign(new Error('weird'), { code: 'EIO' }), 'a');
  t.equal(other.code, 'ERR_TUN_OPEN');
  t.match(other.message, /weird/);
});
