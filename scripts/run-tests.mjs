#!/usr/bin/env node
// The README's test command (`npm test`). Runs tap over test/, then prints one closing line
// "N passed, N failed, N skipped": passed/failed count the top-level tests of every test file (a
// file that crashes before reporting counts as one failure), skipped counts skipped tests at any
// depth. Extra arguments go to tap (e.g. a file list).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

const RESULTS = '.tap/test-results';
rmSync(RESULTS, { recursive: true, force: true });

const args = process.argv.slice(2);
const run = spawnSync('npx', ['tap', ...args], { stdio: 'inherit' });

function walk(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

let passed = 0;
let failed = 0;
let skipped = 0;
for (const file of walk(RESULTS).filter((f) => f.endsWith('.tap'))) {
  const lines = readFileSync(file, 'utf8').split('\n');
  let points = 0;
  for (const line of lines) {
    // Skips are counted at any depth (a skipped subtest inside a passing test shows up too).
    if (/^\s+ok \d+.*# SKIP/i.test(line)) skipped++;
    const m = /^(not ok|ok) \d+/.exec(line);
    if (!m) continue;
    points++;
    if (/# SKIP/i.test(line)) skipped++;
    else if (m[1] === 'ok' || /# TODO/i.test(line)) passed++;
    else failed++;
  }
  const plan = lines.find((l) => /^1\.\.\d+/.test(l));
  if (points === 0 && !(plan && plan.startsWith('1..0'))) failed++;
}
if (run.status !== 0 && failed === 0) failed = 1; // tap failed for a reason the files don't show (e.g. coverage)
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(run.status === 0 && failed === 0 ? 0 : 1);
