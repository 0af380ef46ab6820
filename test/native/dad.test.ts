/**
 * Duplicate Address Detection on the ND proxy's socket (src/io/dad.ts, native/ndproxy_linux.c
 * ndproxyProbeStart/End): two namespaces joined by a veth, the engine on the "home agent" side.
 *   - 2 500 addresses probed at once, each by its own detect() as the home agent calls it, with
 *     three of them held by the far side's kernel (nodad): exactly those three are reported,
 *     the whole burst ends within about the 1 s window, and the process gains no thread while
 *     it runs (no thread per probe: /proc/self/task sampled);
 *   - an address our own ND proxy defends (for another binding) is probed too: it is a
 *     duplicate at once, and our proxy answers nothing (no probe of ours goes out for it);
 *   - a DAD probe from the far side for that defended address carrying the nonce of one of our
 *     own probes (nonces go out in the clear) is still answered (RFC 7527 nonces only mark our
 *     own looped-back probes for addresses under DAD);
 *   - a burst of 3 000 probes into a link whose queue cannot take them at once (tbf): the
 *     probes the queue refuses are sent again, none settles as failed, the held one is found;
 *   - from the far side, scapy (test/native/fixtures/dad-peer.py): another node's DAD probe and
 *     an NA (hop limit 255) make their targets duplicates; the same with hop limit 64 do not
 *     (RFC 4861 §7.1.1, §7.1.2); it also records our probes as the link sees them: NS from ::
 *     to the target's solicited-node group, hop limit 255, no Source Link-Layer Address option,
 *     a Nonce (RFC 4862 §5.4.2, RFC 7527);
 *   - after the proxy closes, a probe settles as failed: no answer, counted.
 * Root, two network namespaces, scapy.
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import {
  linkedNetns,
  linkLocalAddress,
  nativeSkipReason,
  SCAPY_PYTHON,
  scapySkipReason,
  run,
  runFixture,
  uniqueName,
} from '../helpers/netns.js';

const skip = nativeSkipReason() ?? false;
const python = SCAPY_PYTHON;
const noScapy = scapySkipReason(skip);

const P = '2001:db8:100::';
const COUNT = 2500;
// Two of them are among the COUNT, one is not.
const HELD = [`${P}a:7`, `${P}a:444`, `${P}9e1d`];
const PEER = { ns: `${P}d:1`, ns64: `${P}d:2`, na: `${P}d:3`, na64: `${P}d:4` };
/** The address dad-child.ts has its own proxy defend. */
const OWN = `${P}5e1f`;

interface Seen {
  target: string;
  src: string;
  dst: string;
  hlim: number;
  edst: string;
  options: number[];
}

void t.test('DAD on the ND proxy socket', { skip: noScapy }, async (t) => {
  const [far, ha] = await linkedNetns(t, ['df', 'dh'], ['homel', 'homeb']);
  for (const a of HELD) {
    await run('ip', ['-n', far, 'addr', 'add', `${a}/64`, 'dev', 'homel', 'nodad']);
  }
  await run('ip', ['-n', far, 'link', 'set', 'homel', 'up']);
  await run('ip', ['-n', ha, 'link', 'set', 'homeb', 'up']);
  await linkLocalAddress(ha, 'homeb');
  const goFile = join(tmpdir(), uniqueName('dad-go'));
  t.teardown(() => rmSync(goFile, { force: true }));

  const peer = spawn(
    'ip',
    [
      'netns',
      'exec',
      far,
      python,
      fileURLToPath(new URL('fixtures/dad-peer.py', import.meta.url)),
      'homel',
      goFile,
      ...Object.entries(PEER).map(([kind, target]) => `${kind}=${target}`),
      `nsnonce=${OWN}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.teardown(() => {
    peer.kill('SIGKILL');
  });
  let peerOut = '';
  let peerErr = '';
  peer.stderr.on('data', (d: Buffer) => (peerErr += d.toString()));
  const peerDone = new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => peer.kill('SIGKILL'), 60_000);
    peer.on('close', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  await new Promise<void>((resolve, reject) => {
    peer.stdout.on('data', (d: Buffer) => {
      peerOut += d.toString();
      if (peerOut.includes('ready')) resolve();
    });
    peer.once('exit', (code) => reject(new Error(`dad-peer exited (${code}): ${peerErr}`)));
  });

  const r = await runFixture(
    ha,
    'dad-child.ts',
    ['homeb', goFile, HELD.join(','), Object.values(PEER).join(','), String(COUNT)],
    { timeoutMs: 60_000 },
  );
  t.equal(r.code, 0, r.stderr);
  const res = r.result as {
    ms: number;
    threadsBefore: number;
    threadsDuring: number;
    duplicates: string[];
    pair: string | null;
    status: Record<string, number>;
    ownAnswered: number;
    peerDuplicates: string[];
    counters: Record<string, number>;
    afterClose: string | null;
    afterCloseStatus: Record<string, number>;
  };

  t.same(
    [...res.duplicates].sort(),
    [...HELD, OWN].sort(),
    'exactly the held addresses and the one our proxy defends are duplicates',
  );
  t.equal(res.pair, HELD[0], 'a binding with two addresses: the held one is reported');
  t.ok(res.ms < 2000, `${COUNT + 2} probes at once took ${res.ms.toFixed(0)} ms (1 s window)`);
  t.ok(res.threadsDuring > 0, 'threads were sampled while the probes ran');
  t.ok(
    res.threadsDuring - res.threadsBefore <= 2,
    `no thread per probe: ${res.threadsBefore} threads before, at most ${res.threadsDuring} during`,
  );
  t.equal(res.ownAnswered, 0, 'our own proxy answered nothing: no probe went out for it');
  t.match(
    res.status,
    { via: 'ndproxy', failed: 0, duplicate: HELD.length + 2, inFlight: 0, queued: 0 },
    'status: no failure, the duplicates counted, nothing left running',
  );
  t.ok(res.status['peakInFlight']! >= COUNT, `peak in flight ${res.status['peakInFlight']}`);

  t.same(
    [...res.peerDuplicates].sort(),
    [PEER.ns, PEER.na].sort(),
    'the far side’s DAD probe and NA (hop limit 255) count; hop limit 64 does not',
  );
  const c = res.counters;
  t.equal(c['duplicateBySolicitation'], 1, 'one duplicate by another node’s DAD probe');
  t.equal(
    c['duplicateByAdvert'],
    HELD.length + 2,
    'the kernel’s NAs for the held ones, and scapy’s',
  );
  t.ok(c['badHopLimit']! >= 2, `hop limit 64 dropped: ${c['badHopLimit']}`);
  t.equal(c['probeSendErrors'], 0);
  t.equal(c['ownProbe'], 0, 'no probe of ours came back');
  t.equal(c['duplicateDefended'], 1, 'the defended one counted as such');
  t.equal(
    c['answeredDad'],
    1,
    'the far side’s probe with our nonce for a defended address: answered',
  );
  t.equal(c['rxDropped'], 0, 'the kernel dropped none of the answers');
  t.equal(c['probing'], 0, 'nothing left under DAD');
  t.equal(res.afterClose, null, 'after close: no answer');
  t.match(res.afterCloseStatus, { failed: 1 }, '... counted as failed');

  t.equal(await peerDone, 0, peerErr);
  const { seen } = JSON.parse(peerOut.trim().split('\n').pop() ?? '{}') as { seen: Seen[] };
  const ours = seen.filter((s) => s.target === `${P}d:1`);
  t.ok(ours.length >= 1, 'the far side saw our probe for ::d:1');
  t.match(
    ours[0],
    { src: '::', dst: 'ff02::1:ff0d:1', hlim: 255, edst: '33:33:ff:0d:00:01', options: [14] },
    'our probe: NS from ::, to the solicited-node group, hop limit 255, a Nonce and no SLLA',
  );
});

void t.test(
  'a burst the link cannot queue at once: deferred probes go again',
  { skip },
  async (t) => {
    const [far, ha] = await linkedNetns(t, ['bf', 'bh'], ['homel', 'homeb']);
    const held = `${P}a:5a5`;
    await run('ip', ['-n', far, 'addr', 'add', `${held}/64`, 'dev', 'homel', 'nodad']);
    await run('ip', ['-n', far, 'link', 'set', 'homel', 'up']);
    await run('ip', ['-n', ha, 'link', 'set', 'homeb', 'up']);
    // A small queue and a slow rate: 3 000 probes of 86 bytes do not fit at once.
    await run('tc', [
      '-n',
      ha,
      'qdisc',
      'add',
      'dev',
      'homeb',
      'root',
      'tbf',
      'rate',
      '20mbit',
      'burst',
      '20kb',
      'limit',
      '90kb',
    ]);
    await linkLocalAddress(ha, 'homeb');
    const r = await runFixture(
      ha,
      'dad-child.ts',
      ['homeb', '/nonexistent', held, '', '3000', 'burst'],
      { timeoutMs: 60_000 },
    );
    t.equal(r.code, 0, r.stderr);
    const res = r.result as {
      duplicates: string[];
      status: Record<string, number>;
      counters: Record<string, number>;
    };
    t.ok(
      res.counters['probesDeferred']! > 0,
      `the queue refused some (${res.counters['probesDeferred']} deferred)`,
    );
    t.equal(res.counters['probeSendErrors'], 0, 'none failed for good');
    t.same(
      [...res.duplicates].sort(),
      [held, OWN].sort(),
      'the held one found, and the defended one',
    );
    t.match(res.status, { failed: 0, inFlight: 0, queued: 0 }, 'every probe went out and ended');
  },
);
