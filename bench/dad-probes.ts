/**
 * The home agent's Duplicate Address Detection on its own (issue 17): N probes started at once on
 * a real veth, the way a registration burst starts them, by each engine. Not a test; needs root.
 *
 *   node --import tsx bench/dad-probes.ts [--n 2000] [--fallback-n 256] [--runs 3]
 *
 * Two namespaces joined by a veth (names with pid + random suffix, deleted at the end even on
 * failure); the far side holds HELD of the probed addresses (nodad), so each run also checks that
 * exactly those are reported. Each run is a fresh child process in the near namespace:
 *   ndproxy     src/io/dad.ts on the ND proxy's socket (this change): one sendmmsg batch, one
 *               timer per 10 ms bucket, no thread per probe;
 *   threads     the addon's ndpSolicit for every probe at once (a thread and a raw socket each,
 *               an NS every 100 ms): what the home agent did before;
 *   threads-64  the same through src/io/dad.ts's fallback, at most 64 at a time (--fallback-n).
 * Reported per engine (median of --runs): wall time until the last probe settled, the child's
 * CPU time for the probes (process.cpuUsage: every thread of the process) per probe, and its peak
 * thread count (/proc/self/task, sampled every 20 ms). One JSON line.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: a } = parseArgs({
  options: {
    n: { type: 'string', default: '2000' },
    'fallback-n': { type: 'string', default: '256' },
    runs: { type: 'string', default: '3' },
    child: { type: 'string' },
    link: { type: 'string' },
  },
});
const P = '2001:db8:100::';
const HELD = [`${P}a:7`, `${P}a:1f`, `${P}a:40`];

interface ChildOut {
  engine: string;
  n: number;
  wallMs: number;
  cpuUsPerProbe: number;
  threadsBefore: number;
  threadsPeak: number;
  duplicates: string[];
}

async function child(engine: string, n: number, link: string): Promise<void> {
  const { loadAddon } = await import('../src/io/addon.js');
  const { addressBytes } = await import('../src/io/address-bytes.js');
  const dadModule = await import('../src/io/dad.js');
  const { NdProxy } = await import('../src/io/ndproxy.js');
  const addon = loadAddon();
  const addresses = Array.from({ length: n }, (_, i) => `${P}a:${i.toString(16)}`);
  const threads = (): number => readdirSync('/proc/self/task').length;
  let detect: (x: string) => Promise<boolean>;
  if (engine === 'ndproxy') {
    const proxy = NdProxy.open(addon, link);
    if (typeof proxy === 'string') throw new Error(proxy);
    const dad = new dadModule.DuplicateAddressDetector(new dadModule.ProxyDadBackend(proxy, 1000));
    detect = async (x) => (await dad.detect([x])) !== null;
  } else if (engine === 'threads-64') {
    const solicit = addon.ndpSolicit!.bind(addon);
    const dad = new dadModule.DuplicateAddressDetector(
      new dadModule.SolicitDadBackend(solicit, link, 1000),
    );
    detect = async (x) => (await dad.detect([x])) !== null;
  } else {
    detect = (x) => addon.ndpSolicit!(link, addressBytes(6, x), 1000);
  }
  const threadsBefore = threads();
  let threadsPeak = threadsBefore;
  const sampler = setInterval(() => (threadsPeak = Math.max(threadsPeak, threads())), 20);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const found = await Promise.all(addresses.map((x) => detect(x)));
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  clearInterval(sampler);
  const out: ChildOut = {
    engine,
    n,
    wallMs,
    cpuUsPerProbe: (cpu.user + cpu.system) / n,
    threadsBefore,
    threadsPeak,
    duplicates: addresses.filter((_, i) => found[i]),
  };
  console.log(JSON.stringify(out));
  process.exit(0);
}

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor((s.length - 1) / 2)] ?? NaN;
};

async function main(): Promise<void> {
  const n = Number(a.n);
  const fallbackN = Number(a['fallback-n']);
  const runs = Number(a.runs);
  if (![n, fallbackN, runs].every((x) => Number.isInteger(x) && x > 0 && x <= 20_000)) {
    throw new Error('--n, --fallback-n, --runs: 1 to 20 000');
  }
  const id = `${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
  const near = `m6dadn-${id}`;
  const far = `m6dadf-${id}`;
  const load = (): number[] =>
    readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
  const loadBefore = load();
  try {
    for (const ns of [near, far]) {
      ip(['netns', 'add', ns]);
      // DAD off on both sides: addresses usable at once, and the far kernel holds its own.
      const sysctl = ['sysctl', '-q', '-w', 'net.ipv6.conf.all.accept_dad=0'];
      execFileSync('ip', ['netns', 'exec', ns, ...sysctl, 'net.ipv6.conf.default.accept_dad=0']);
    }
    ip(['-n', near, 'link', 'add', 'dadn', 'type', 'veth', 'peer', 'name', 'dadf', 'netns', far]);
    for (const h of HELD) ip(['-n', far, 'addr', 'add', `${h}/64`, 'dev', 'dadf', 'nodad']);
    ip(['-n', far, 'link', 'set', 'dadf', 'up']);
    ip(['-n', near, 'link', 'set', 'dadn', 'up']);
    // The near side's link-local (DAD off: listed means usable); the ND proxy needs it.
    for (let i = 0; i < 100; i++) {
      const out = execFileSync('ip', ['-n', near, '-6', 'addr', 'show', 'dev', 'dadn']).toString();
      if (out.includes('scope link')) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const script = fileURLToPath(import.meta.url);
    const results: Record<string, ChildOut[]> = {};
    for (let r = 0; r < runs; r++) {
      for (const [engine, count] of [
        ['ndproxy', n],
        ['threads', n],
        ['threads-64', fallbackN],
      ] as const) {
        const c = spawnSync(
          'ip',
          ['netns', 'exec', near, process.execPath, '--import', 'tsx', script].concat([
            '--child',
            engine,
            '--n',
            String(count),
            '--link',
            'dadn',
          ]),
          { timeout: 120_000, encoding: 'utf8' },
        );
        if (c.status !== 0) throw new Error(`${engine}: ${c.stderr.slice(-500)}`);
        const line = JSON.parse(c.stdout.trim().split('\n').pop() ?? '{}') as ChildOut;
        (results[engine] ??= []).push(line);
      }
    }
    const summary = Object.fromEntries(
      Object.entries(results).map(([engine, rs]) => [
        engine,
        {
          n: rs[0]?.n,
          wallMsMedian: median(rs.map((x) => x.wallMs)),
          cpuUsPerProbeMedian: median(rs.map((x) => x.cpuUsPerProbe)),
          threadsBefore: median(rs.map((x) => x.threadsBefore)),
          threadsPeakMedian: median(rs.map((x) => x.threadsPeak)),
          /** Every run reported exactly the far side's addresses. */
          exact: rs.every((x) => [...x.duplicates].sort().join() === [...HELD].sort().join()),
          runs: rs.map((x) => ({
            wallMs: x.wallMs,
            cpuUsPerProbe: x.cpuUsPerProbe,
            threadsPeak: x.threadsPeak,
          })),
        },
      ]),
    );
    console.log(
      JSON.stringify({ n, fallbackN, runs, held: HELD, loadBefore, loadAfter: load(), summary }),
    );
  } finally {
    for (const ns of [near, far]) {
      try {
        ip(['netns', 'del', ns]);
      } catch {
        // already gone
      }
    }
  }
}

if (a.child !== undefined) {
  await child(a.child, Number(a.n), a.link ?? 'dadn');
} else {
  await main();
}
