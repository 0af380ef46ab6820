/**
 * The daemons' V8 tiering (src/cli/jit.ts): after tuneJitForPackets() a small per-packet
 * function called at a lone packet's pace is optimized within a few hundred calls; with
 * MIP6_V8_TIERING=default (V8's own thresholds) the same function is not yet optimized then.
 * Each case runs in its own node process (V8 flags are per process) with
 * --allow-natives-syntax, which lets it read V8's optimization status of the function.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const JIT = fileURLToPath(new URL('../../src/cli/jit.ts', import.meta.url));
const CALLS = 400;

// The probe: tune (or not), then call a loop-free function in bursts of 50 with a pause between
// (as packets arrive), and report after how many calls V8 had it in TurboFan code (-1: not yet).
const PROBE = `
const { tuneJitForPackets } = await import(${JSON.stringify(JIT)});
tuneJitForPackets();
const status = new Function('f', 'return %GetOptimizationStatus(f)');
function step(buf, i) {
  let s = buf[i & 15] * 3;
  s ^= buf[(i + 1) & 15];
  if (s > 100) s -= 7;
  return s + buf.length;
}
const buf = new Uint8Array(16).fill(5);
let calls = 0;
let at = -1;
while (calls < ${CALLS} && at < 0) {
  for (let j = 0; j < 50; j++) step(buf, calls++);
  await new Promise((r) => setTimeout(r, 5));
  if (status(step) & 16) at = calls; // bit 4: optimized
}
process.stdout.write(JSON.stringify({ at }));
`;

function optimizedAfter(env: NodeJS.ProcessEnv): number {
  const r = spawnSync(
    process.execPath,
    ['--allow-natives-syntax', '--import', 'tsx', '--input-type=module', '-e', PROBE],
    { env, encoding: 'utf8', timeout: 30_000 },
  );
  if (r.status !== 0) throw new Error(`probe failed (${r.status}): ${r.stderr}`);
  return (JSON.parse(r.stdout) as { at: number }).at;
}

void t.test('the packet path is optimized within a few hundred calls', (t) => {
  const env = { ...process.env };
  delete env.MIP6_V8_TIERING;
  const at = optimizedAfter(env);
  t.ok(at > 0 && at <= CALLS, `optimized after ${at} calls (<= ${CALLS})`);
  t.end();
});

void t.test("MIP6_V8_TIERING=default keeps V8's thresholds: not optimized yet", (t) => {
  const at = optimizedAfter({ ...process.env, MIP6_V8_TIERING: 'default' });
  t.equal(at, -1, `with V8's defaults the function is not optimized within ${CALLS} calls`);
  t.end();
});
