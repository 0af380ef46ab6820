/**
 * Before/after benchmark of the real daemons (not a test):
 *   node --import tsx bench/tree-compare.ts --before <commit> [--rounds 5] [--seconds 5]
 *
 * Checks out <commit> into a temporary git worktree (removed at the end) and runs, in one netns
 * lab, the real `mip6 ha` and `mip6 mn` of that commit ("before") and of this working tree
 * ("after"), interleaved round by round so both see the same machine load. Each round starts
 * fresh daemons (MN on the lab's LTE network, HA on the home link), waits for the
 * registration, then measures through the tunnel with the plain server on the home link:
 *   - TCP server -> MN and MN -> server: iperf3, one stream, --seconds each;
 *   - RTT: 200 pings from the server to the MN's home address at 5 ms intervals.
 * Reports medians per variant and the after/before ratios, and writes
 * bench/results/tree-compare-<date>.md. Needs root, /dev/net/tun, iperf3, ping and git.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { createLab, LAB_ADDR, type Lab } from '../test/lab/lab.js';
import { Daemon, haToml, mnToml, Provisioned, type MemberFiles } from '../test/lab/mip6-lab.js';
import { median, quantile } from './lib/stats.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const { values } = parseArgs({
  options: {
    before: { type: 'string' },
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '5' },
    write: { type: 'boolean', default: true },
    'no-write': { type: 'boolean', default: false },
  },
});
if (values.before === undefined) {
  console.error('tree-compare: --before <commit> is required (e.g. --before HEAD~3)');
  process.exit(2);
}
const ROUNDS = Math.max(1, Math.min(9, Number(values.rounds)));
const SECONDS = Math.max(1, Math.min(30, Number(values.seconds)));
const PINGS = 200;
const HOA = LAB_ADDR.mn.homeAddress;
const IPERF_PORT = 5211;

type Variant = 'before' | 'after';
interface Sample {
  down: number; // Gbit/s server -> MN
  up: number; // Gbit/s MN -> server
  rttMedian: number;
  rttP99: number;
}

function commitOf(ref: string): string {
  return execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', ref]).toString().trim();
}

/** A worktree of `ref` sharing this checkout's node_modules and native build. */
function worktree(ref: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'mip6-before-'));
  rmSync(dir, { recursive: true });
  execFileSync('git', ['-C', ROOT, 'worktree', 'add', '--detach', dir, ref], { stdio: 'ignore' });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  symlinkSync(join(ROOT, 'build'), join(dir, 'build'));
  return dir;
}

function daemon(lab: Lab, tree: string, node: 'ha' | 'mn', config: string, sock: string): Daemon {
  const main = join(tree, 'src', 'cli', 'main.ts');
  const child = lab.spawn(node, process.execPath, [
    '--import',
    import.meta.resolve('tsx'),
    main,
    node,
    '-c',
    config,
    '--log-format',
    'json',
  ]);
  return new Daemon(child, sock);
}

async function iperf(lab: Lab, reverse: boolean): Promise<number> {
  const args = ['-c', HOA, '-p', String(IPERF_PORT), '-t', String(SECONDS), '-J'];
  if (reverse) args.push('-R');
  args.push('--connect-timeout', '3000');
  const out = await lab.exec('server', 'iperf3', args, { timeoutMs: (SECONDS + 20) * 1000 });
  const j = JSON.parse(out.stdout) as { end: { sum_received: { bits_per_second: number } } };
  return j.end.sum_received.bits_per_second / 1e9;
}

async function pingRtt(lab: Lab): Promise<{ median: number; p99: number }> {
  const out = await lab.exec(
    'server',
    'ping',
    ['-6', '-c', String(PINGS), '-i', '0.005', '-W', '1', HOA],
    { check: false, timeoutMs: 30_000 },
  );
  const times = [...out.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  return { median: median(times), p99: quantile(times, 0.99) };
}

async function round(
  lab: Lab,
  prov: Provisioned,
  tree: string,
  files: { ha: MemberFiles; mn: MemberFiles },
): Promise<Sample> {
  const ha = daemon(lab, tree, 'ha', haToml(prov, files.ha), join(prov.dir, 'ha.sock'));
  let mn: Daemon | undefined;
  try {
    await ha.waitLog((l) => l.event === 'started');
    mn = daemon(
      lab,
      tree,
      'mn',
      mnToml(prov, 'laptop', files.mn, files.ha),
      join(prov.dir, 'laptop.sock'),
    );
    await mn.waitLog((l) => l.event === 'registered');
    const iperfServer = lab.spawn('mn', 'iperf3', ['-s', '-p', String(IPERF_PORT), '-B', HOA]);
    try {
      await new Promise((r) => setTimeout(r, 300));
      const rtt = await pingRtt(lab);
      const down = await iperf(lab, false);
      const up = await iperf(lab, true);
      return { down, up, rttMedian: rtt.median, rttP99: rtt.p99 };
    } finally {
      iperfServer.kill('SIGKILL');
    }
  } finally {
    await mn?.stop().catch(() => mn?.child.kill('SIGKILL'));
    await ha.stop().catch(() => ha.child.kill('SIGKILL'));
  }
}

async function main(): Promise<void> {
  const before = commitOf(values.before!);
  const after = `${commitOf('HEAD')}${execFileSync('git', ['-C', ROOT, 'status', '--porcelain', 'src']).length > 0 ? '+changes' : ''}`;
  const trees: Record<Variant, string> = { before: worktree(values.before!), after: ROOT };
  const prov = await Provisioned.create();
  const lab = await createLab({ network: 'lte' });
  const samples: Record<Variant, Sample[]> = { before: [], after: [] };
  try {
    const files = {
      ha: await prov.member('ha', 'ha', [LAB_ADDR.ha.homePrefix]),
      mn: await prov.member('laptop', 'mn', [HOA]),
    };
    for (let r = 0; r < ROUNDS; r++) {
      const order: Variant[] = r % 2 === 0 ? ['before', 'after'] : ['after', 'before'];
      for (const v of order) {
        const s = await round(lab, prov, trees[v], files);
        samples[v].push(s);
        console.log(
          `round ${r + 1} ${v}: down ${s.down.toFixed(3)} up ${s.up.toFixed(3)} Gbit/s, ` +
            `rtt ${s.rttMedian.toFixed(3)}/${s.rttP99.toFixed(3)} ms`,
        );
      }
    }
  } finally {
    await lab.destroy();
    prov.remove();
    execFileSync('git', ['-C', ROOT, 'worktree', 'remove', '--force', trees.before], {
      stdio: 'ignore',
    });
  }
  const med = (v: Variant, k: keyof Sample): number => median(samples[v].map((s) => s[k]));
  const rows = (
    [
      ['TCP server -> MN (Gbit/s)', 'down', 3],
      ['TCP MN -> server (Gbit/s)', 'up', 3],
      ['RTT median (ms)', 'rttMedian', 3],
      ['RTT p99 (ms)', 'rttP99', 3],
    ] as const
  ).map(([name, k, d]) => {
    const b = med('before', k);
    const a = med('after', k);
    return `| ${name} | ${b.toFixed(d)} | ${a.toFixed(d)} | ${(a / b).toFixed(3)} |`;
  });
  const report = [
    `# mip6 before/after: ${before} vs ${after} (${new Date().toISOString().slice(0, 10)})`,
    '',
    `Real \`mip6 ha\` / \`mip6 mn\` daemons of both trees in one netns lab, interleaved, ` +
      `${ROUNDS} rounds, iperf3 ${SECONDS} s one stream, ${PINGS} pings at 5 ms; medians. ` +
      `${cpus().length} cores, load ${loadavg()[0]!.toFixed(2)} at the end.`,
    '',
    `| median | before (${before}) | after (${after}) | after / before |`,
    '|---|---|---|---|',
    ...rows,
    '',
    'Per round:',
    '',
    ...(['before', 'after'] as const).flatMap((v) =>
      samples[v].map(
        (s, i) =>
          `- ${v} ${i + 1}: down ${s.down.toFixed(3)}, up ${s.up.toFixed(3)} Gbit/s, ` +
          `RTT ${s.rttMedian.toFixed(3)} / ${s.rttP99.toFixed(3)} ms`,
      ),
    ),
    '',
  ].join('\n');
  console.log(report);
  if (values.write && !values['no-write']) {
    mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
    const file = join(
      ROOT,
      'bench',
      'results',
      `tree-compare-${new Date().toISOString().slice(0, 10)}.md`,
    );
    writeFileSync(file, report);
    console.log(`written: ${file}`);
  }
}

await main();
