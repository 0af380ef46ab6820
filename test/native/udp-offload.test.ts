// UDP offloads on the addon's sockets (issue #16), between two namespaces joined by a veth
// pair: a batch of same-size datagrams leaves as segmented sends (UDP_SEGMENT) and arrives as
// the same datagrams, byte for byte; with UDP_GRO the receiver gets them as coalesced reads
// and the addon cuts them back apart. Each offload is also turned off (MIP6_OFFLOAD_OFF, the
// fallback paths) and the receiver must see exactly the same datagrams.
import t from 'tap';
import {
  linkedNetns,
  nativeSkipReason,
  run,
  runFixture,
  startFixture,
  uniqueName,
} from '../helpers/netns.js';

const skip = nativeSkipReason() ?? false;
/** Datagrams the fixture sends to the receiver's port (40 + 1 + 5 in the batch, one empty). */
const WANT = 47;

interface RecvResult {
  seen: [number, string][];
  batches: number;
  counters: Record<string, number>;
  offloads: { gso: boolean; gro: boolean; disabledByEnv: boolean };
}
interface SendResult {
  sent: number;
  counters: Record<string, number>;
  offloads: { gso: boolean; gro: boolean; gsoRefusedErrno?: number };
}

/** Starts the receiver in `ns`; resolves its port and, later, its result. */
async function receiver(
  t: { teardown(fn: () => void): void },
  ns: string,
  family: 4 | 6,
  off: string,
  maxBatch = 0,
): Promise<{ port: number; result: Promise<RecvResult> }> {
  const args = ['recv', String(family), String(WANT), off, String(maxBatch)];
  const rx = startFixture(ns, 'udp-offload-child.ts', args, { t });
  const port = Number(await rx.firstLine);
  const result = rx.done.then((r) => {
    if (r.result === undefined) throw new Error(`receiver printed no result: ${r.stderr}`);
    return r.result as RecvResult;
  });
  return { port, result };
}

for (const family of [4, 6] as const) {
  void t.test(
    `IPv${family}: UDP GSO send and GRO receive, and their fallbacks`,
    { skip },
    async (t) => {
      const a = uniqueName('ua');
      const [nsA, nsB] = await linkedNetns(t, ['uoa', 'uob'], [a, `${a}b`]);
      const addrs =
        family === 4 ? ['192.0.2.1/24', '192.0.2.2/24'] : ['fd00:16::1/64', 'fd00:16::2/64'];
      const ipf = family === 4 ? [] : ['-6'];
      await run('ip', ['-n', nsA, ...ipf, 'addr', 'add', addrs[0]!, 'dev', a]);
      await run('ip', ['-n', nsB, ...ipf, 'addr', 'add', addrs[1]!, 'dev', `${a}b`]);
      await run('ip', ['-n', nsA, 'link', 'set', a, 'up']);
      await run('ip', ['-n', nsB, 'link', 'set', `${a}b`, 'up']);
      const dst = addrs[1]!.split('/')[0]!;

      const runs: { label: string; send: string; recv: string; maxBatch?: number }[] = [
        { label: 'GSO + GRO', send: '-', recv: '-' },
        { label: 'GSO, GRO off', send: '-', recv: 'udp-gro' },
        { label: 'GSO off, GRO', send: 'udp-gso', recv: '-' },
        { label: 'both off', send: 'all', recv: 'all' },
        // A 41-datagram train in batches of 3: more than the poller's rounds per readiness
        // event, so the rest comes from its backlog in later loop turns, none stranded.
        { label: 'GSO + GRO, batches of 3', send: '-', recv: '-', maxBatch: 3 },
      ];
      const delivered: string[] = [];
      for (const r of runs) {
        const rx = await receiver(t, nsB, family, r.recv, r.maxBatch);
        const tx = await runFixture(nsA, 'udp-offload-child.ts', [
          'send',
          String(family),
          dst,
          String(rx.port),
          r.send,
        ]);
        t.equal(tx.code, 0, tx.stderr);
        const sent = tx.result as SendResult;
        const got = await rx.result;
        t.equal(sent.sent, WANT + 2, `${r.label}: every datagram of the batch accepted`);
        t.equal(sent.counters.txDatagrams, WANT + 3, 'and the empty one');
        t.equal(sent.counters.txTooBig, 3, `${r.label}: the 1600-byte ones refused (EMSGSIZE)`);
        t.equal(sent.counters.txErrors, 0);
        t.equal(sent.offloads.gsoRefusedErrno, undefined, 'GSO not turned off by them');
        t.equal(got.seen.length, WANT, `${r.label}: ${WANT} datagrams delivered`);
        delivered.push(JSON.stringify(got.seen));
        const gso = r.send === '-';
        const gro = r.recv === '-';
        t.equal(sent.offloads.gso, gso, `${r.label}: GSO ${gso ? 'on' : 'off'}`);
        t.equal(got.offloads.gro, gro, `${r.label}: GRO ${gro ? 'on' : 'off'}`);
        if (gso) {
          // 40 x 1200 + 300 is one run of 41, the 5 x 700 a second; the 3 to another port a third.
          t.equal(sent.counters.txGsoSends, 3, `${r.label}: three segmented sends`);
          t.equal(sent.counters.txGsoDatagrams, WANT + 2, 'holding every datagram of the batch');
        } else {
          t.equal(sent.counters.txGsoSends, 0, `${r.label}: no segmented send`);
        }
        if (gso && gro) {
          t.ok(got.counters.rxGroReads! >= 1, `coalesced reads (${got.counters.rxGroReads})`);
          t.ok(got.counters.rxGroDatagrams! > got.counters.rxGroReads!, 'several datagrams each');
        }
        if (!gro) t.equal(got.counters.rxGroReads, 0, `${r.label}: no coalesced read`);
        t.equal(got.counters.rxTruncated, 0);
        if (r.maxBatch !== undefined) {
          t.ok(
            got.batches >= Math.ceil(WANT / r.maxBatch),
            `${r.label}: delivered in ${got.batches} batches`,
          );
        }
      }
      const sizes = (JSON.parse(delivered[0]!) as [number, string][]).map(([n]) => n);
      t.same(
        sizes,
        [...Array<number>(40).fill(1200), 300, ...Array<number>(5).fill(700), 0],
        'the datagrams in order, with their sizes',
      );
      for (let i = 1; i < delivered.length; i++)
        t.equal(
          delivered[i],
          delivered[0],
          `${runs[i]!.label}: the same bytes as ${runs[0]!.label}`,
        );
    },
  );
}
