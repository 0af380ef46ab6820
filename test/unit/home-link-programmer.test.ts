/**
 * HomeLinkProgrammer (src/io/home-link-programmer.ts) over a scripted batch runner: a burst
 * goes out as one batch, what comes in while a batch runs goes into the next, batches are
 * capped at MAX_BATCH, unacknowledged ops are sent again, failures reject the op's promise and
 * are counted by errno, and status() says how many ops wait and for how long.
 */
import t from 'tap';
import {
  HomeLinkProgrammer,
  MAX_ATTEMPTS,
  MAX_BATCH,
  rtnetlinkRunner,
  type HomeLinkOp,
  type HomeLinkOpError,
} from '../../src/io/home-link-programmer.js';

/** A runner whose batches the test answers by hand. */
function scripted(): {
  batches: { ops: readonly HomeLinkOp[]; answer: (r: (HomeLinkOpError | null)[]) => void }[];
  run: (ops: readonly HomeLinkOp[]) => Promise<(HomeLinkOpError | null)[]>;
} {
  const batches: {
    ops: readonly HomeLinkOp[];
    answer: (r: (HomeLinkOpError | null)[]) => void;
  }[] = [];
  return {
    batches,
    run: (ops) => new Promise((answer) => batches.push({ ops, answer })),
  };
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
const op = (i: number): HomeLinkOp => ({ kind: 'route-replace', address: `fd00::${i}` });
const ok = (n: number): null[] => new Array<null>(n).fill(null);

void t.test('a burst is one batch; what arrives meanwhile is the next', async (t) => {
  let now = 1000;
  const r = scripted();
  const p = new HomeLinkProgrammer('rtnetlink', r.run, () => now);
  const first = [1, 2, 3].map((i) => p.run(op(i)));
  await turn();
  t.equal(r.batches.length, 1, 'one batch for three ops queued in one turn');
  t.same(
    r.batches[0]!.ops.map((o) => o.address),
    ['fd00::1', 'fd00::2', 'fd00::3'],
  );
  now = 1250;
  const later = [4, 5].map((i) => p.run(op(i)));
  t.match(p.status(), { via: 'rtnetlink', queued: 5, oldestMs: 250, done: 0 }, 'five behind');
  await turn();
  t.equal(r.batches.length, 1, 'no second batch while the first runs');
  now = 1300;
  r.batches[0]!.answer(ok(3));
  await Promise.all(first);
  await turn();
  t.equal(r.batches.length, 2, 'the ops that came meanwhile went out next, together');
  t.same(r.batches[1]!.ops.length, 2);
  t.match(p.status(), { queued: 2, oldestMs: 50, done: 3, batches: 1, slowestMs: 300 });
  r.batches[1]!.answer(ok(2));
  await Promise.all(later);
  t.match(p.status(), { queued: 0, oldestMs: 0, done: 5, batches: 2, failed: {} });
});

void t.test('batches are capped at MAX_BATCH', async (t) => {
  const r = scripted();
  const p = new HomeLinkProgrammer('rtnetlink', r.run);
  const all = Array.from({ length: 2 * MAX_BATCH + 5 }, (_, i) => p.run(op(i)));
  for (const want of [MAX_BATCH, MAX_BATCH, 5]) {
    await turn();
    const b = r.batches.at(-1)!;
    t.equal(b.ops.length, want, `a batch of ${want}`);
    b.answer(ok(want));
  }
  await Promise.all(all);
  t.equal(p.status().done, 2 * MAX_BATCH + 5);
});

void t.test('failures reject their op alone and are counted by errno', async (t) => {
  const r = scripted();
  const p = new HomeLinkProgrammer('rtnetlink', r.run);
  const runs = [1, 2, 3].map((i) => p.run(op(i)));
  await turn();
  r.batches[0]!.answer([
    null,
    { code: 'ENODEV', message: '`ip route replace fd00::2/128 dev t0` failed: ENODEV' },
    null,
  ]);
  const settled = await Promise.allSettled(runs);
  t.same(
    settled.map((s) => s.status),
    ['fulfilled', 'rejected', 'fulfilled'],
  );
  const err = (settled[1] as PromiseRejectedResult).reason as { code: string; message: string };
  t.equal(err.code, 'ERR_HOME_LINK_ENODEV');
  t.match(err.message, /fd00::2\/128.*ENODEV/);
  t.match(p.status(), { done: 2, failed: { ENODEV: 1 } });
});

void t.test('an unacknowledged op is sent again, MAX_ATTEMPTS times at most', async (t) => {
  const r = scripted();
  const p = new HomeLinkProgrammer('rtnetlink', r.run);
  const lost = { code: 'ENOBUFS', message: 'no ACK' };
  const a = p.run(op(1));
  const failsAtLast = t.rejects(
    a,
    { code: 'ERR_HOME_LINK_ENOBUFS' },
    'after MAX_ATTEMPTS it fails',
  );
  const b = p.run(op(2));
  await turn();
  r.batches[0]!.answer([lost, null]);
  await b;
  await turn();
  t.same(
    r.batches[1]!.ops.map((o) => o.address),
    ['fd00::1'],
    'the op without an ACK is sent again, first in the next batch',
  );
  for (let i = 1; i < MAX_ATTEMPTS; i++) {
    r.batches.at(-1)!.answer([lost]);
    await turn();
  }
  await failsAtLast;
  t.equal(r.batches.length, MAX_ATTEMPTS);
  t.match(p.status(), { queued: 0, done: 1, failed: { ENOBUFS: 1 } });
});

void t.test('a runner that throws fails its whole batch, the next batch still runs', async (t) => {
  let calls = 0;
  const p = new HomeLinkProgrammer('ip-batch', (ops) => {
    calls++;
    if (calls === 1)
      return Promise.reject(Object.assign(new Error('spawn ip ENOENT'), { code: 'ENOENT' }));
    return Promise.resolve(ok(ops.length));
  });
  const first = p.run(op(1));
  await t.rejects(first, { code: 'ERR_HOME_LINK_ENOENT', message: /spawn ip ENOENT/ });
  await p.run(op(2));
  t.match(p.status(), { via: 'ip-batch', done: 1, batches: 2, failed: { ENOENT: 1 } });
});

void t.test(
  'rtnetlinkRunner says why it cannot be used (the caller falls back to ip -batch)',
  async (t) => {
    t.match(
      await rtnetlinkRunner({}, 'tun0', 'eth1'),
      /no rtnlBatch/,
      'an addon without rtnlBatch',
    );
    const refused = await rtnetlinkRunner(
      {
        rtnlBatch: () => {
          throw Object.assign(new Error('socket failed: Address family not supported'), {
            code: 'EAFNOSUPPORT',
          });
        },
      },
      'tun0',
      'eth1',
    );
    t.match(refused, /rtnetlink socket does not open: socket failed: Address family not supported/);
    const probes: number[] = [];
    const usable = await rtnetlinkRunner(
      {
        rtnlBatch: (_ops, count) => {
          probes.push(count);
          return Promise.resolve(0);
        },
      },
      'tun0',
      'eth1',
    );
    t.type(usable, 'function', 'a socket that opens: a runner');
    t.same(probes, [0], 'checked with an empty batch');
  },
);
