/**
 * `npm run fuzz [-- --seconds N] [--target NAME] [--seed N] [--write-corpus]`
 *
 * Runs every fuzz target of test/fuzz/targets.ts for a share of the time budget (default 60 s
 * in total), prints executions and crashes per target, stores each new crash reproducer in
 * test/fuzz/crashers/<target>-<sha256 prefix>.bin and exits 1 if there was any.
 * `--write-corpus` (re)writes test/fuzz/corpus/<target>/*.bin from the generated seeds.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fuzzTarget } from '../test/fuzz/engine.js';
import { CORPUS_DIR, CRASHERS_DIR, loadTargets } from '../test/fuzz/targets.js';

function usage(msg: string): never {
  process.stderr.write(
    `fuzz: ${msg}\nusage: npm run fuzz -- [--seconds N] [--target NAME] [--seed N] [--write-corpus]\n`,
  );
  process.exit(2);
}

const args = process.argv.slice(2);
let seconds = 60;
let only: string | undefined;
let seed = Date.now() >>> 0;
let writeCorpus = false;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const value = (): string => args[++i] ?? usage(`${a} needs a value`);
  if (a === '--seconds') {
    seconds = Number(value());
    if (!Number.isFinite(seconds) || seconds <= 0) usage('--seconds must be a positive number');
  } else if (a === '--target') only = value();
  else if (a === '--seed') seed = Number(value()) >>> 0;
  else if (a === '--write-corpus') writeCorpus = true;
  else usage(`unknown argument ${a}`);
}

const targets = (await loadTargets()).filter((t) => only === undefined || t.name === only);
if (targets.length === 0) usage(`no target named ${only}`);

if (writeCorpus) {
  for (const t of targets) {
    const dir = join(CORPUS_DIR, t.name);
    mkdirSync(dir, { recursive: true });
    t.corpus().forEach((b, i) => writeFileSync(join(dir, `seed-${i}.bin`), b));
    process.stdout.write(`corpus ${t.name}: ${t.corpus().length} files in ${dir}\n`);
  }
  process.exit(0);
}

const share = (seconds * 1000) / targets.length;
process.stdout.write(`fuzz: ${targets.length} targets, ${seconds} s, seed ${seed}\n`);
let total = 0;
let crashes = 0;
for (const [i, t] of targets.entries()) {
  const r = fuzzTarget(t, { seed: (seed + i) >>> 0, budgetMs: share });
  total += r.executions;
  const rate = Math.round(r.executions / (r.elapsedMs / 1000));
  process.stdout.write(
    `${t.name.padEnd(20)} ${String(r.executions).padStart(9)} execs ${String(rate).padStart(7)}/s  ` +
      `${r.crashes.length} crashes  (${t.description})\n`,
  );
  for (const c of r.crashes) {
    crashes++;
    mkdirSync(CRASHERS_DIR, { recursive: true });
    const id = createHash('sha256').update(c.input).digest('hex').slice(0, 16);
    const file = join(CRASHERS_DIR, `${t.name}-${id}.bin`);
    writeFileSync(file, c.input);
    process.stdout.write(`  CRASH ${c.error}\n  reproducer: ${file}\n`);
  }
}
process.stdout.write(`fuzz: ${total} executions, ${crashes} crashes\n`);
process.exit(crashes > 0 ? 1 : 0);
