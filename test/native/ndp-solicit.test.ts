/**
 * The addon's Neighbor Solicitation probe (native/ndisc_linux.c ndpSolicit), the MN's home-link
 * check: on a link where we hold only a link-local address, an address that is on the link
 * answers (the far namespace's kernel sends the NA) within milliseconds; one that is not gives
 * false after the timeout; 32 probes at once run together (a thread each, not libuv's four pool
 * threads); a missing interface rejects with ERR_NDISC; a wrong-length target is
 * a RangeError; an answer with a hop limit below 255 (scapy) does not count, only one with 255.
 * Root, two network namespaces.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import {
  linkedNetns,
  nativeSkipReason,
  SCAPY_PYTHON,
  scapySkipReason,
  run,
  runFixture,
} from '../helpers/netns.js';

const skip = nativeSkipReason() ?? false;

void t.test('ndpSolicit', { skip }, async (t) => {
  const [mn, ha] = await linkedNetns(t, ['nm', 'nh'], ['homel', 'homeb']);
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
    concurrent: { answered: number; ms: number };
  };
  t.equal(res.present, true, `the on-link address answers (${res.presentMs.toFixed(1)} ms)`);
  t.ok(res.presentMs < 2500, 'before the timeout');
  t.equal(res.absent, false, 'an address not on the link: false');
  t.ok(res.absentMs >= 290, `after the timeout (${res.absentMs.toFixed(0)} ms)`);
  t.equal(res.concurrent.answered, 0, '32 probes at once for absent addresses: all false');
  t.ok(
    res.concurrent.ms < 2000,
    `... and they ran together, not four at a time (${res.concurrent.ms.toFixed(0)} ms for 32 x 500 ms)`,
  );
  t.match(res.noInterface, { code: 'ERR_NDISC', message: /if_nametoindex nosuch0/ });
  t.equal(res.shortTarget, 'RangeError');
  // The kernel on the far side saw our solicitation come from our link-local address.
  const neigh = await run('ip', ['-n', ha, '-6', 'neigh', 'show', 'dev', 'homeb']);
  t.match(neigh, /fe80::/, `the HA side learned our link-local from the NS: ${neigh.trim()}`);
});

const python = SCAPY_PYTHON;
const noScapy = scapySkipReason(skip);

void t.test(
  'ndpSolicit counts only a Neighbor Advertisement with hop limit 255',
  { skip: noScapy },
  async (t) => {
    const [mn, ha] = await linkedNetns(t, ['nm', 'nh'], ['homel', 'homeb']);
    await run('ip', ['-n', ha, 'link', 'set', 'homeb', 'up']);
    await run('ip', ['-n', mn, 'link', 'set', 'homel', 'up']);
    // scapy on the far side answers for two addresses nobody holds: one NA as if it had crossed
    // a router (hop limit 64), one as a neighbour sends it (255).
    const responder = spawn(
      'ip',
      [
        'netns',
        'exec',
        ha,
        python,
        fileURLToPath(new URL('fixtures/na-responder.py', import.meta.url)),
        'homeb',
        '2001:db8:100::77=64',
        '2001:db8:100::78=255',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    t.teardown(() => {
      responder.kill('SIGKILL');
    });
    await new Promise<void>((resolve, reject) => {
      responder.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) resolve();
      });
      responder.once('exit', (code) => reject(new Error(`na-responder exited (${code})`)));
    });
    const r = await runFixture(mn, 'ndp-solicit-child.ts', ['hoplimit'], { timeoutMs: 20_000 });
    t.equal(r.code, 0, r.stderr);
    t.same(
      r.result,
      { routed: false, onLink: true },
      'the hop-limit-64 answer is ignored (RFC 4861 §7.1.2), the 255 one counts',
    );
  },
);
