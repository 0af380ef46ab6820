/**
 * src/io/capabilities.ts without privileges: capability masks as /proc prints them, and the
 * credential lines of /proc/PID/status (a status text of a daemon after `--user nobody`).
 */
import t from 'tap';
import { CAPABILITY, capabilityMask, parseProcStatus } from '../../src/io/capabilities.js';

void t.test('capability masks', async (t) => {
  t.equal(CAPABILITY.NET_ADMIN, 12, '<linux/capability.h> CAP_NET_ADMIN');
  t.equal(CAPABILITY.NET_RAW, 13, '<linux/capability.h> CAP_NET_RAW');
  t.equal(capabilityMask([]), 0n);
  t.equal(capabilityMask(['NET_ADMIN']).toString(16), '1000');
  t.equal(capabilityMask(['NET_ADMIN', 'NET_RAW']).toString(16), '3000', 'as CapEff prints it');
});

void t.test('parseProcStatus', async (t) => {
  const text = [
    'Name:\tnode',
    'Uid:\t65534\t65534\t65534\t65534',
    'Gid:\t65534\t65534\t65534\t65534',
    'Groups:\t65534 ',
    'CapInh:\t0000000000003000',
    'CapPrm:\t0000000000003000',
    'CapEff:\t0000000000003000',
    'CapBnd:\t0000000000003000',
    'CapAmb:\t0000000000003000',
    'NoNewPrivs:\t1',
    '',
  ].join('\n');
  const c = parseProcStatus(text);
  t.same(c.uid, [65534, 65534, 65534, 65534]);
  t.same(c.groups, [65534]);
  t.equal(c.effective, 0x3000n);
  t.equal(c.bounding, 0x3000n);
  t.equal(c.noNewPrivs, true);
  t.same(parseProcStatus(text.replace('Groups:\t65534 ', 'Groups:\t')).groups, [], 'no groups');
  t.throws(() => parseProcStatus('Name:\tnode\n'), { code: 'ERR_PROC' }, 'missing lines');
});
