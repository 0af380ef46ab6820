/**
 * The addon's Neighbor Solicitation probe (native/ndisc_linux.c ndpSolicit), the MN's home-link
 * check: on a link where we hold only a link-local address, an address that is on the link
 * answers (the far namespace's kernel sends the NA) within milliseconds; one that is not gives
 * false after the timeout; a missing interface rejects with ERR_NDISC; a wrong-length target is
 * a RangeError. Root, two network namespaces.
 */
import t from 'tap';
import { createNetns, nativeSkipReason, run, runFixture } from '../helpers/netns.js';

const skip = nativeSkipReason() ?? false;

void t.test('ndpSolicit', { skip }, async (t) => {
  const mn = await createNetns(t, 'nm');
  const ha = await createNetns(t, 'nh');
  for (const ns of [mn, ha]) {
    await run('ip', [
      'netns',
      'exec',
      ns,
      'sysctl',
      '-q',
      '-w',
      'net.ipv6.conf.all.accept_dad=0',
      'net.ipv6.conf.default.accept_dad=0',
    ]);
  }
  await run('ip', [
    '-n',
    mn,
    'link',
    'add',
    'homel',
    'type',
    'veth',
    'peer',
    'name',
    'homeb',
    'netns',
    ha,
  ]);
  await run('ip', ['-n', ha, 'addr', 'add', '2001:db8:100::1/64', 'dev', 'homeb', 'nodad']);
  await run('ip', ['-n', ha, 'link', 'set', 'homeb', 'up']);
  await run('ip', ['-n', mn, 'link', 'set', 'homel', 'up']);
  const r = await runFixture(mn, 'ndp-solicit-child.ts', [], { timeoutMs: 20_000 });
  t.equal(r.code, 0, r.stderr);
  const res = r.result as {
    present: boolean;
    presentMs: number;
    absent: boolean;
    absentMs: number;
    noInterface: { code?: string; message?: string } | string;
    shortTarget: string;
  };
  t.equal(res.present, true, `the on-link address answers (${res.presentMs.toFixed(1)} ms)`);
  t.ok(res.presentMs < 2500, 'before the timeout');
  t.equal(res.absent, false, 'an address not on the link: false');
  t.ok(res.absentMs >= 290, `after the timeout (${res.absentMs.toFixed(0)} ms)`);
  t.match(res.noInterface, { code: 'ERR_NDISC', message: /if_nametoindex nosuch0/ });
  t.equal(res.shortTarget, 'RangeError');
  // The kernel on the far side saw our solicitation come from our link-local address.
  const neigh = await run('ip', ['-n', ha, '-6', 'neigh', 'show', 'dev', 'homeb']);
  t.match(neigh, /fe80::/, `the HA side learned our link-local from the NS: ${neigh.trim()}`);
});
