/**
 * Lone-packet benchmark (issue #16, not a test): how a ping's round trip through the tunnel and
 * the daemons' CPU per ping develop from the first packet on, with the daemons' V8 tiering as
 * shipped (src/cli/jit.ts) and with V8's defaults (`MIP6_V8_TIERING=default`), side by side.
 *
 *   node --import tsx bench/lone-packet.ts [--rounds 3] [--batches 5] [--count 300]
 *        [--interval-ms 5] [--out bench/results/lone-packet-DATE]
 *
 * Per round and variant (alternating which goes first), a fresh netns lab (test/lab/lab.ts)
 * with the real HA and MN daemons; once the MN is registered, `--batches` batches of `--count`
 * pings from the MN's home address to the server on the home link. Per batch: RTT median and
 * p99 (ping's own times), and the CPU time of every thread of both daemons over the batch
 * (/proc/<pid>/task/<tid>/schedstat) per ping answered. Reports per batch index the medians over
 * rounds and the ratio shipped / default. Needs root and /dev/net/tun.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { createLab, LAB_ADDR } from '../test/lab/lab.js';
import { Provisioned } from '../test/lab/mip6-lab.js';
import { intOption, startMip6Pair, type Mip6Pair } from './lib/mip6-pair.js';
import { cpuSecondsFine } from './lib/proc.js';
import { median, quantile } from './lib/stats.js';

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    batches: { type: 'string', default: '5' },
    count: { type: 'string', default: '300' },
    'interval-ms': { type: 'string', default: '5' },
    out: { type: 'string' },
  },
});
const ROUNDS = intOption(opt.rounds, 1, 20, 'rounds');
const BATCHES = intOption(opt.batches, 1, 20, 'batches');
const COUNT = intOption(opt.count, 10, 2000, 'count');
const INTERVAL_MS = intOption(opt['interval-ms'], 2, 1000, 'interval-ms');
const DATE = new Date().toISOString().slice(0, 10);
const OUT = opt.out ?? join('bench', 'results', `lone-packet-${DATE}`);

type Variant = 'shipped' | 'default';
interface Batch {
  p50: number;
  p99: number;
  lost: number;
  cpuUsPerPing: number;
}
interface Run {
  round: number;
  variant: Variant;
  batches: Batch[];
}

const log = (m: string): void => {
  process.stderr.write(`[lone-packet] ${m}\n`);
};

async function measure(round: number, variant: Variant): Promise<Run> {
  const lab = await createLab({ network: 'lte' });
  const prov = await Provisioned.create();
  let pair: Mip6Pair | undefined;
  try {
    const env = {
      ...process.env,
      ...(variant === 'default' ? { MIP6_V8_TIERING: 'default' } : {}),
    };
    pair = await startMip6Pair(lab, prov, env);
    const pids = pair.pids;
    const batches: Batch[] = [];
    for (let b = 0; b < BATCHES; b++) {
      const cpu0 = pids.map(cpuSecondsFine);
      const args = ['-6', '-c', String(COUNT), '-i', String(INTERVAL_MS / 1000), '-W', '1'];
      const out = await lab.exec(
        'mn',
        'ping',
        [...args, '-I', LAB_ADDR.mn.homeAddress, LAB_ADDR.server.v6],
        { check: false, timeoutMs: COUNT * INTERVAL_MS * 4 + 10_000 },
      );
      const cpu = pids.map(cpuSecondsFine).reduce((a, c, i) => a + c - (cpu0[i] ?? NaN), 0);
      const times = [...out.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
      const batch: Batch = {
        p50: median(times),
        p99: quantile(times, 0.99),
        lost: COUNT - times.length,
        cpuUsPerPing: times.length > 0 ? (cpu * 1e6) / times.length : NaN,
      };
      batches.push(batch);
      log(
        `round ${round + 1} ${variant} batch ${b + 1}: RTT ${batch.p50.toFixed(3)} ms p99 ` +
          `${batch.p99.toFixed(3)}, daemons' CPU ${batch.cpuUsPerPing.toFixed(0)} us/ping, ` +
          `lost ${batch.lost}`,
      );
    }
    return { round, variant, batches };
  } finally {
    await pair?.stop();
    await lab.destroy();
    prov.remove();
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/lone-packet.ts needs root (netns lab)');
  const loadBefore = loadavg();
  const runs: Run[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const order: Variant[] = round % 2 === 0 ? ['shipped', 'default'] : ['default', 'shipped'];
    for (const v of order) runs.push(await measure(round, v));
  }
  const loadAfter = loadavg();
  const cell = (v: Variant, b: number, k: keyof Batch): number =>
    median(runs.filter((r) => r.variant === v).map((r) => r.batches[b]![k]));
  const lines = [
    `# Lone packets through the tunnel, V8 tiering shipped vs default — ${DATE}`,
    '',
    '```',
    `node --import tsx bench/lone-packet.ts --rounds ${ROUNDS} --batches ${BATCHES} --count ${COUNT} --interval-ms ${INTERVAL_MS}`,
    '```',
    '',
    `Host: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, Linux ${release()}, load average ` +
      `${loadBefore.map((x) => x.toFixed(2)).join(' ')} before, ` +
      `${loadAfter.map((x) => x.toFixed(2)).join(' ')} after. A fresh lab and daemons per ` +
      `round and variant; ping every ${INTERVAL_MS} ms from the MN's home address to the server ` +
      `on the home link (MN -> router -> HA -> server). Medians over ${ROUNDS} rounds.`,
    '',
    '| batch (pings) | RTT median shipped / default (ms) | RTT p99 shipped / default (ms) | CPU per ping, both daemons, shipped / default (us) | CPU ratio |',
    '|---|---|---|---|---|',
  ];
  for (let b = 0; b < BATCHES; b++) {
    const cs = cell('shipped', b, 'cpuUsPerPing');
    const cd = cell('default', b, 'cpuUsPerPing');
    lines.push(
      `| ${b + 1} (${b * COUNT + 1}-${(b + 1) * COUNT}) | ` +
        `${cell('shipped', b, 'p50').toFixed(3)} / ${cell('default', b, 'p50').toFixed(3)} | ` +
        `${cell('shipped', b, 'p99').toFixed(3)} / ${cell('default', b, 'p99').toFixed(3)} | ` +
        `${cs.toFixed(0)} / ${cd.toFixed(0)} | ${(cs / cd).toFixed(2)} |`,
    );
  }
  lines.push('');
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(`${OUT}.md`, lines.join('\n'));
  writeFileSync(
    `${OUT}.json`,
    JSON.stringify(
      { date: DATE, rounds: ROUNDS, count: COUNT, loadBefore, loadAfter, runs },
      null,
      1,
    ),
  );
  log(`written ${OUT}.md / .json`);
  process.stdout.write(lines.join('\n') + '\n');
}

await main();
