/**
 * Route-optimized data path throughput (not a test), issue 7: the direct MN <-> CN path against
 * the tunnel through the HA, and optionally against an earlier tree of mip6, side by side in one
 * run on one netns lab.
 *
 *   node --import tsx bench/ro-batch.ts [--rounds 5] [--seconds 6] [--before DIR] [--out FILE]
 *
 * `--before DIR`: a checkout of another mip6 tree (e.g. `git archive <rev> | tar -x -C DIR`, with
 * DIR/node_modules and DIR/build/Release linked to this tree's); its CN and MN daemons run as the
 * "before" variant. Both variants run from their sources through tsx, so they start alike.
 *
 * Flow: build the lab of test/lab/lab.ts (MN on "lte"), start the HA (this tree) once; then per
 * round, in alternating order, for each variant: start `mip6 cn` in the CN namespace and `mip6
 * mn` (the CN as a route-optimized [[correspondent]]) in the MN namespace, wait for
 * route-optimized, run iperf3 MN -> CN and CN -> MN (-R) between the home addresses, stop both.
 * The "tunnel" variant is this tree with route optimization off (everything through the HA).
 * Prints per-run lines and the medians; --out writes them as JSON. Every wait is bounded; the lab
 * and every process are removed on exit.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { MemberStatus } from '../src/io/control-protocol.js';
import {
  createLab,
  LAB_ADDR,
  labUnavailableReason,
  type Lab,
  type LabNode,
} from '../test/lab/lab.js';
import {
  cnToml,
  correspondentSection,
  Daemon,
  haToml,
  mnToml,
  Provisioned,
  startDaemon,
} from '../test/lab/mip6-lab.js';
import { median } from './lib/stats.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '6' },
    before: { type: 'string' },
    out: { type: 'string' },
  },
});
const ROUNDS = Math.max(1, Math.min(15, Number(opt.rounds)));
const SECONDS = Math.max(1, Math.min(30, Number(opt.seconds)));
const CN_HOA = '2001:db8:100::20';
const MN_HOA = LAB_ADDR.mn.homeAddress;
const IPERF_PORT = 5203;

type Variant = 'before' | 'after' | 'tunnel';
interface Run {
  round: number;
  variant: Variant;
  up: number;
  down: number;
  directOut: number;
  error?: string;
}

const log = (s: string): void => {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);
};

/** Starts a daemon of the tree at `root` (its sources through tsx). */
function startFrom(
  root: string,
  lab: Lab,
  node: LabNode,
  role: 'mn' | 'cn',
  config: string,
  socket: string,
): Daemon {
  const child = lab.spawn(node, process.execPath, [
    '--import',
    import.meta.resolve('tsx'),
    join(root, 'src', 'cli', 'main.ts'),
    role,
    '-c',
    config,
    '--log-format',
    'json',
  ]);
  return new Daemon(child, socket);
}

async function iperf(lab: Lab, reverse: boolean): Promise<number> {
  const args = ['-c', CN_HOA, '-p', String(IPERF_PORT), '-B', MN_HOA, '-t', String(SECONDS)];
  const r = await lab.exec(
    'mn',
    'iperf3',
    [...args, ...(reverse ? ['-R'] : []), '-J', '--connect-timeout', '3000'],
    { timeoutMs: (SECONDS + 20) * 1000 },
  );
  const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
  return j.end.sum_received.bits_per_second / 1e9;
}

async function main(): Promise<void> {
  const why = labUnavailableReason();
  if (why !== undefined) throw new Error(why);
  const prov = await Provisioned.create();
  const lab = await createLab({ network: 'lte' });
  const daemons: Daemon[] = [];
  const cleanup = async (): Promise<void> => {
    for (const d of daemons) await d.stop().catch(() => undefined);
    await lab.destroy();
    prov.remove();
  };
  try {
    const haFiles = await prov.member('ha', 'ha', [LAB_ADDR.ha.homePrefix]);
    const mnFiles = await prov.member('laptop', 'mn', [MN_HOA]);
    const cnFiles = await prov.member('cn1', 'cn', [CN_HOA]);
    const ha = startDaemon(lab, 'ha', 'ha', haToml(prov, haFiles), join(prov.dir, 'ha.sock'));
    daemons.push(ha);
    await ha.waitLog((l) => l.event === 'started', 60_000);
    lab.spawn('cn', 'iperf3', ['-s', '-p', String(IPERF_PORT)]);
    const base = mnToml(prov, 'laptop', mnFiles, haFiles);
    const { readFileSync } = await import('node:fs');
    const withRo = prov.write(
      'laptop-ro.toml',
      readFileSync(base, 'utf8') + correspondentSection(cnFiles.pub, true),
    );
    const cnCfg = cnToml(prov, cnFiles, haFiles);
    const variants: Variant[] = opt.before ? ['before', 'after', 'tunnel'] : ['after', 'tunnel'];
    const runs: Run[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? variants : [...variants].reverse();
      for (const variant of order) {
        const root = variant === 'before' ? opt.before! : ROOT;
        const cn = startFrom(root, lab, 'cn', 'cn', cnCfg, join(prov.dir, 'cn.sock'));
        const mnCfg = variant === 'tunnel' ? base : withRo;
        const mn = startFrom(root, lab, 'mn', 'mn', mnCfg, join(prov.dir, 'laptop.sock'));
        daemons.push(cn, mn);
        const run: Run = { round, variant, up: NaN, down: NaN, directOut: 0 };
        try {
          await cn.waitLog((l) => l.event === 'registered', 60_000);
          await mn.waitLog((l) => l.event === 'registered', 60_000);
          if (variant !== 'tunnel') {
            await mn.waitLog((l) => l.event === 'route-optimized', 30_000);
          }
          run.up = await iperf(lab, false);
          run.down = await iperf(lab, true);
          const st = await mn.status<MemberStatus>();
          run.directOut =
            st.bindingUpdateList.find((e) => e.kind === 'correspondent')?.packets?.directOut ?? 0;
        } catch (err) {
          run.error = (err as Error).message.slice(0, 300);
        }
        runs.push(run);
        log(
          `round ${round + 1} ${variant}: MN->CN ${run.up.toFixed(3)} Gbit/s, CN->MN ${run.down.toFixed(3)} Gbit/s, ` +
            `direct packets out ${run.directOut}${run.error ? ` ERROR ${run.error}` : ''}`,
        );
        await mn.stop().catch(() => undefined);
        await cn.stop().catch(() => undefined);
        daemons.splice(daemons.indexOf(cn), 2);
      }
    }
    const summary: Record<string, { up: number; down: number; n: number }> = {};
    for (const v of variants) {
      const rs = runs.filter((r) => r.variant === v && r.error === undefined);
      summary[v] = {
        up: median(rs.map((r) => r.up)),
        down: median(rs.map((r) => r.down)),
        n: rs.length,
      };
      log(
        `median ${v} (${rs.length} runs): MN->CN ${summary[v].up.toFixed(3)} Gbit/s, CN->MN ${summary[v].down.toFixed(3)} Gbit/s`,
      );
    }
    const json = { date: new Date().toISOString(), seconds: SECONDS, runs, summary };
    if (opt.out) writeFileSync(opt.out, JSON.stringify(json, null, 2) + '\n');
    process.stdout.write(JSON.stringify(summary) + '\n');
  } finally {
    await cleanup();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
