/**
 * The personal tunnel's data path against the home prefix's, in the same run (issue #15; not a
 * test): node --import tsx bench/personal-tunnel.ts [--rounds 3] [--seconds 3] [--no-write]
 *
 * One netns lab, the real daemons: the HA with an IPv4 pool masqueraded out of its uplink, the
 * MN on LTE with [tun] routes ::/0 + 0.0.0.0/0 and an IPv4 home address. Per round, interleaved
 * so every path sees the same load, iperf3 TCP (one stream, MN -> server and server -> MN with
 * -R) over:
 *   home prefix    the MN's home address <-> the plain server on the home link (as before #15)
 *   full IPv6      the home address <-> an IPv6 server beyond the HA (the lab's CN namespace)
 *   full IPv4      the IPv4 home address <-> an IPv4-only server beyond the HA (the pool
 *                  routed by the lab router to the HA, no NAT44, like the home prefix)
 * Prints medians and the ratios to the home prefix; writes bench/results/personal-tunnel-<date>.md.
 */
import { writeFileSync, readFileSync, mkdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { createLab, LAB_ADDR, type Lab, type LabNode } from '../test/lab/lab.js';
import { haToml, mnToml, Provisioned, startDaemon } from '../test/lab/mip6-lab.js';
import { median } from './lib/stats.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '3' },
    'no-write': { type: 'boolean', default: false },
  },
});
const ROUNDS = Math.max(1, Math.min(9, Number(values.rounds)));
const SECONDS = Math.max(1, Math.min(30, Number(values.seconds)));
const PORT = 5201;

interface Path {
  name: string;
  server: LabNode;
  /** The address the MN's iperf3 client connects to. */
  target: string;
}
const PATHS: Path[] = [
  { name: 'home prefix', server: 'server', target: LAB_ADDR.server.v6 },
  { name: 'full IPv6', server: 'cn', target: LAB_ADDR.cn.v6 },
  { name: 'full IPv4', server: 'cn', target: LAB_ADDR.cn.v4 },
];

/** Gbit/s of one iperf3 run; one retry when the server was still busy; NaN if both failed. */
async function iperf(lab: Lab, target: string, reverse: boolean): Promise<number> {
  const args = ['-c', target, '-p', String(PORT), '-t', String(SECONDS), '-J'];
  if (reverse) args.push('-R');
  args.push('--connect-timeout', '3000');
  for (let attempt = 0; attempt < 2; attempt++) {
    const out = await lab.exec('mn', 'iperf3', args, {
      timeoutMs: (SECONDS + 20) * 1000,
      check: false,
    });
    try {
      const j = JSON.parse(out.stdout) as {
        end?: { sum_received?: { bits_per_second: number } };
        error?: string;
      };
      const bps = j.end?.sum_received?.bits_per_second;
      if (bps !== undefined) return bps / 1e9;
      console.log(`iperf3 ${target}: ${j.error ?? 'no result'}`);
    } catch {
      console.log(`iperf3 ${target}: ${out.stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  return NaN;
}

async function main(): Promise<void> {
  const lab = await createLab({ network: 'lte' });
  const prov = await Provisioned.create();
  try {
    const haFiles = await prov.member('ha', 'ha', [LAB_ADDR.ha.homePrefix]);
    const mnFiles = await prov.member('laptop', 'mn', [LAB_ADDR.mn.homeAddress]);
    // The pool routed, not masqueraded: the router sends it to the HA like the home prefix, so
    // the IPv4 path differs from the IPv6 one by the inner version only (no NAT44 on the way).
    const haConf = haToml(prov, haFiles, 'ipv4_pool = "10.99.0.0/24"\n');
    await lab.exec('router', 'ip', ['route', 'add', '10.99.0.0/24', 'via', LAB_ADDR.ha.v4]);
    const ha = startDaemon(lab, 'ha', 'ha', haConf, join(prov.dir, 'ha.sock'));
    await ha.waitLog((l) => l.event === 'started');
    const mnConf = mnToml(prov, 'laptop', mnFiles, haFiles, { extraHome: 'ipv4_address = "auto"' });
    writeFileSync(
      mnConf,
      readFileSync(mnConf, 'utf8').replace(
        'name = "mip6mn"',
        'name = "mip6mn"\nroutes = ["::/0", "0.0.0.0/0"]',
      ),
    );
    lab.routeMark = 4191;
    const mn = startDaemon(lab, 'mn', 'mn', mnConf, join(prov.dir, 'laptop.sock'));
    await mn.waitLog((l) => l.event === 'ipv4-home-address');
    const servers = [
      lab.spawn('server', 'iperf3', ['-s', '-p', String(PORT)]),
      lab.spawn('cn', 'iperf3', ['-s', '-p', String(PORT)]),
    ];
    await new Promise((r) => setTimeout(r, 500));
    const results = new Map<string, { up: number[]; down: number[] }>();
    for (const p of PATHS) results.set(p.name, { up: [], down: [] });
    const med = (xs: number[]): number => median(xs.filter((x) => !Number.isNaN(x)));
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const order = round % 2 === 0 ? PATHS : [...PATHS].reverse();
        for (const p of order) {
          const r = results.get(p.name)!;
          r.up.push(await iperf(lab, p.target, false));
          r.down.push(await iperf(lab, p.target, true));
          console.log(
            `round ${round + 1} ${p.name}: MN -> server ${r.up.at(-1)!.toFixed(2)} Gbit/s, ` +
              `server -> MN ${r.down.at(-1)!.toFixed(2)} Gbit/s`,
          );
        }
      }
    } finally {
      for (const s of servers) s.kill('SIGKILL');
    }
    const base = results.get('home prefix')!;
    const rows = PATHS.map((p) => {
      const r = results.get(p.name)!;
      const up = med(r.up);
      const down = med(r.down);
      return (
        `| ${p.name} | ${p.target} | ${up.toFixed(2)} | ${(up / med(base.up)).toFixed(2)}x | ` +
        `${down.toFixed(2)} | ${(down / med(base.down)).toFixed(2)}x |`
      );
    });
    const date = new Date().toISOString().slice(0, 10);
    const text = [
      `# mip6 personal tunnel vs home prefix (${date})`,
      '',
      `Real daemons in one netns lab, MN on LTE with \`[tun] routes = ["::/0", "0.0.0.0/0"]\` and ` +
        `an IPv4 home address; ${ROUNDS} interleaved rounds, iperf3 TCP one stream, ${SECONDS} s ` +
        `each; medians (Gbit/s). ${cpus().length} cores, load ${loadavg()[0]!.toFixed(2)} at the end.`,
      '',
      '| path | server | MN -> server | ratio | server -> MN | ratio |',
      '|---|---|---:|---:|---:|---:|',
      ...rows,
      '',
    ].join('\n');
    console.log(`\n${text}`);
    if (values['no-write'] !== true) {
      mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
      const file = join(ROOT, `bench/results/personal-tunnel-${date}.md`);
      writeFileSync(file, text);
      console.log(`written to ${file}`);
    }
    await mn.stop();
    await ha.stop();
  } finally {
    await lab.destroy();
    prov.remove();
  }
}

await main();
