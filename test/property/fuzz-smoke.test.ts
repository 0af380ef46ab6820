// A short pass of every fuzz target (test/fuzz/targets.ts; `npm run fuzz` is the long run):
// each target keeps its contract for a bounded number of mutated inputs from a fixed seed,
// every stored crash reproducer in test/fuzz/crashers/ now passes, and the engine does catch
// a planted bug (so a clean run means something).
import t from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fuzzTarget, mutate, Rng, type FuzzTarget } from '../fuzz/engine.js';
import { CRASHERS_DIR, loadTargets } from '../fuzz/targets.js';

const targets = await loadTargets();
/** Executions per target; the channel targets do Diffie-Hellman, so they get fewer. */
const EXECUTIONS = (name: string): number =>
  name.startsWith('channel-') && name !== 'channel-data' ? 300 : 3000;
const SEED = 0x6d697036;

for (const target of targets) {
  void t.test(`fuzz ${target.name}: ${target.description}`, async (t) => {
    const r = fuzzTarget(target, {
      seed: SEED,
      maxExecutions: EXECUTIONS(target.name),
      budgetMs: 8000,
    });
    t.ok(r.executions >= Math.min(EXECUTIONS(target.name), 50), `${r.executions} executions`);
    t.same(
      r.crashes.map((c) => c.error),
      [],
      'no input broke the contract',
    );
  });
}

void t.test('every stored crash reproducer passes its target', async (t) => {
  const files = existsSync(CRASHERS_DIR)
    ? readdirSync(CRASHERS_DIR).filter((f) => f.endsWith('.bin'))
    : [];
  for (const f of files) {
    const target = targets.find(
      (x) => f.startsWith(`${x.name}-`) && /^[0-9a-f]{16}\.bin$/.test(f.slice(x.name.length + 1)),
    );
    t.ok(target, `${f} names a target`);
    if (target)
      t.doesNotThrow(() => target.run(new Uint8Array(readFileSync(join(CRASHERS_DIR, f)))), f);
  }
  t.pass(`${files.length} reproducers replayed`);
});

void t.test('the engine finds a planted bug and keeps its input', async (t) => {
  // A decoder that "crashes" on a length byte of 0xff at offset 1, deep enough to need mutation.
  const planted: FuzzTarget = {
    name: 'planted',
    description: 'throws TypeError when byte 1 is 0xff',
    corpus: () => [new Uint8Array([0x60, 0x00, 0x01, 0x02])],
    run(input) {
      if (input.length > 1 && input[1] === 0xff) throw new TypeError('planted');
    },
  };
  const r = fuzzTarget(planted, { seed: 7, maxExecutions: 20_000 });
  t.equal(r.crashes.length, 1, 'one distinct crash');
  t.equal(r.crashes[0]?.input[1], 0xff, 'the reproducer triggers it');
  t.match(r.crashes[0]?.error ?? '', /^TypeError: planted/);
});

void t.test('mutate is deterministic per seed and changes its input', async (t) => {
  const base = new Uint8Array(64).map((_, i) => i);
  const a = mutate(base, new Rng(42), [base]);
  const b = mutate(base, new Rng(42), [base]);
  t.same(a, b, 'same seed, same mutation');
  let changed = 0;
  const rng = new Rng(1);
  for (let i = 0; i < 200; i++)
    if (!Buffer.from(mutate(base, rng, [])).equals(Buffer.from(base))) changed++;
  t.ok(changed > 180, `${changed}/200 mutations changed the bytes`);
  t.equal(base[10], 10, 'the input itself is never modified');
});
