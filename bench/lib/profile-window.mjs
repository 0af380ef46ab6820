/**
 * Self and inclusive time per function of a V8 .cpuprofile (node --cpu-prof), optionally only
 * the samples inside a window of the monotonic clock (us; ha-load's refreshMonoUs). Not a test.
 *
 *   node bench/lib/profile-window.mjs FILE.cpuprofile [FROM_US TO_US] [--top 40]
 *
 * Prints the window's sampled milliseconds, then the top functions by self and by inclusive
 * time, in percent of the window (a function counted once per sample however deep it recurs).
 */
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const topAt = args.indexOf('--top');
const top = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) : 40;
const [file, fromText, toText] = args;
if (file === undefined) {
  process.stderr.write('usage: profile-window.mjs FILE [FROM_US TO_US] [--top N]\n');
  process.exit(2);
}
const from = fromText === undefined ? -Infinity : Number(fromText);
const to = toText === undefined ? Infinity : Number(toText);
const p = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const name = (n) => {
  const f = n.callFrame;
  return `${f.functionName || '(anon)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
};
// Time per node in the window: a sample's time is the delta to the next one.
const perNode = new Map();
let total = 0;
let t = p.startTime;
for (let i = 0; i < p.samples.length; i++) {
  t += p.timeDeltas[i] ?? 0;
  const dt = p.timeDeltas[i + 1] ?? 0;
  if (t < from || t > to) continue;
  perNode.set(p.samples[i], (perNode.get(p.samples[i]) ?? 0) + dt);
  total += dt;
}
const self = new Map();
const incl = new Map();
for (const [id, dt] of perNode) {
  const k = name(byId.get(id));
  self.set(k, (self.get(k) ?? 0) + dt);
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const key = name(byId.get(cur));
    if (seen.has(key)) continue;
    seen.add(key);
    incl.set(key, (incl.get(key) ?? 0) + dt);
  }
}
const show = (m, title) => {
  console.log(title);
  for (const [k, v] of [...m].sort((x, y) => y[1] - x[1]).slice(0, top)) {
    console.log(`${((100 * v) / total).toFixed(1).padStart(6)} ${k}`);
  }
};
console.log(`window ${(total / 1000).toFixed(0)} ms sampled`);
show(self, 'SELF');
show(incl, 'INCLUSIVE');
