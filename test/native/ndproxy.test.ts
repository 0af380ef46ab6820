/**
 * The home agent's userspace ND proxy (native/ndproxy_linux.c through src/io/ndproxy.ts): two
 * namespaces joined by a veth, the proxy on the "home agent" side defending a few addresses.
 * From the far side, scapy (test/native/fixtures/ns-prober.py) solicits: an address in the set
 * gets a solicited NA (S=1, O=0, R=0, hop limit 255, from the HA's link-local, Target Link-Layer
 * Address = the HA's MAC) to the solicitor; a DAD probe gets one to ff02::1 (S=0); one not in
 * the set, one with hop limit 64 and each malformed one get nothing and are counted by reason;
 * a flood of solicitations for random targets from random sources (a keyless host on the link)
 * only moves counters. The far side's kernel resolves a defended address to the HA's MAC (ping).
 * 10 000 addresses go in and out by batch. Root, two network namespaces, scapy.
 */
import { spawn } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
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
  startFixture,
  uniqueName,
} from '../helpers/netns.js';
import { waitFor } from '../helpers/wait.js';

const skip = nativeSkipReason() ?? false;
const python = SCAPY_PYTHON;
const noScapy = scapySkipReason(skip);

const P = '2001:db8:100::';
const FLOOD = 2000;

interface Na {
  target: string;
  src: string;
  dst: string;
  hlim: number;
  R: number;
  S: number;
  O: number;
  tlla: string | null;
  edst: string;
}

void t.test('ndproxy answers for its set only', { skip: noScapy }, async (t) => {
  const [far, ha] = await linkedNetns(t, ['nf', 'nh'], ['homel', 'homeb']);
  await run('ip', ['-n', ha, 'link', 'set', 'homeb', 'up']);
  await run('ip', ['-n', far, 'addr', 'add', `${P}2/64`, 'dev', 'homel', 'nodad']);
  await run('ip', ['-n', far, 'link', 'set', 'homel', 'up']);
  const haMac = JSON.parse(await run('ip', ['-n', ha, '-j', 'link', 'show', 'homeb']))[0]
    .address as string;
  // The HA side's link-local (DAD is off in these namespaces: usable once it is listed).
  const haLinkLocal = await linkLocalAddress(ha, 'homeb');
  const doneFile = join(tmpdir(), uniqueName('ndproxy-done'));
  t.teardown(() => rmSync(doneFile, { force: true }));
  const defended = ['10', '12', '13', '14', '15', '16', '17', '18', '19', '1a', '1b', '20'].map(
    (x) => P + x,
  );
  const child = startFixture(ha, 'ndproxy-child.ts', ['homeb', doneFile, ...defended], {
    timeoutMs: 60_000,
    t,
  });
  t.equal(await child.firstLine, 'ready');

  // The far side's own kernel: ping a defended address, its neighbour entry gets the HA's MAC.
  await run('ip', ['netns', 'exec', far, 'ping', '-6', '-c', '1', '-W', '1', `${P}20`]).catch(
    () => undefined,
  );
  await waitFor('the far kernel resolving the defended address', async () => {
    const n = await run('ip', ['-n', far, '-6', 'neigh', 'show', `${P}20`, 'dev', 'homel']);
    return n.includes(haMac);
  });
  t.pass(`${P}20 resolves to the HA's MAC ${haMac} on the far side`);

  const probe = spawn(
    'ip',
    [
      'netns',
      'exec',
      far,
      python,
      fileURLToPath(new URL('fixtures/ns-prober.py', import.meta.url)),
      'homel',
      haMac,
      P,
      String(FLOOD),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.teardown(() => {
    probe.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  probe.stdout.on('data', (d: Buffer) => (out += d.toString()));
  probe.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => probe.kill('SIGKILL'), 60_000);
    probe.on('close', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  t.equal(code, 0, err);
  const { nas } = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { nas: Na[] };
  writeFileSync(doneFile, '');
  const res = await child.done;
  t.equal(res.code, 0, res.stderr);
  const r = res.result as Record<string, unknown> & { counters: Record<string, number> };

  const byTarget = new Map<string, Na[]>();
  for (const na of nas) byTarget.set(na.target, [...(byTarget.get(na.target) ?? []), na]);
  t.same(
    [...byTarget.keys()].sort(),
    [`${P}10`, `${P}13`, `${P}1a`],
    'NAs only for the valid solicitations of defended addresses',
  );
  t.match(
    byTarget.get(`${P}10`),
    [{ src: haLinkLocal, dst: `${P}2`, hlim: 255, R: 0, S: 1, O: 0, tlla: haMac }],
    'solicited NA to the solicitor: S=1 O=0 R=0, hop limit 255, TLLA = HA MAC',
  );
  t.match(
    byTarget.get(`${P}13`),
    [{ dst: 'ff02::1', edst: '33:33:00:00:00:01', hlim: 255, S: 0, tlla: haMac }],
    'a DAD probe is answered to all-nodes with S=0',
  );
  t.match(byTarget.get(`${P}1a`), [{ dst: `${P}2`, S: 1 }], 'a unicast NUD probe is answered');

  const c = r.counters;
  t.ok(c['frames']! >= 13 + FLOOD, `frames read: ${c['frames']}`);
  // The three the prober saw, and the far kernel's solicitation(s) for ::20 before it.
  t.ok(c['answered']! >= 4 && c['answered']! <= 6, `answered: ${c['answered']}`);
  t.equal(c['answeredDad'], 1, 'one of them for DAD');
  t.ok(c['notOurs']! >= 1 + FLOOD, `not ours (1 + the flood): ${c['notOurs']}`);
  t.equal(c['badHopLimit'], 1, 'hop limit 64 counted');
  t.equal(c['badChecksum'], 1, 'bad checksum counted');
  t.equal(c['badCode'], 1, 'code 1 counted');
  t.equal(c['badOption'], 1, 'zero-length option counted');
  t.equal(c['badLength'], 1, 'payload length beyond the frame counted');
  t.equal(c['badDad'], 3, 'DAD with an SLLA (8 or 16 bytes), DAD to a unicast destination counted');
  t.equal(c['multicastTarget'], 1, 'multicast target counted');
  t.equal(c['badSource'], 1, 'multicast source counted');
  t.equal(c['sendErrors'], 0);
  t.equal(c['addresses'], defended.length, 'the set holds the defended addresses');

  t.equal(r['addedTargets'], defended.length);
  t.equal(r['batchAdd'], 10_000, '10 000 added by one batch');
  t.equal(r['batchAddAgain'], 0, 'again: none new');
  t.equal(r['sizeWithBatch'], 10_000 + defended.length);
  t.equal(r['batchDelete'], 10_000, '10 000 deleted by one batch');
  t.equal(r['batchDeleteAgain'], 0, 'again: none there');
  t.equal(r['sizeAfterBatch'], defended.length);
  t.ok(
    (r['batchAddUs'] as number) < 50,
    `insert: ${(r['batchAddUs'] as number).toFixed(2)} us per address`,
  );
  t.equal(r['shortBuffer'], 'RangeError');
  t.equal(r['longName'], 'TypeError', 'an interface name over 15 characters is refused');
  t.equal(r['badHandle'], 'TypeError');
  t.equal(r['afterClose'], 'Error', 'a closed handle refuses adds');
  t.notOk(existsSync('/nonexistent'));
});
