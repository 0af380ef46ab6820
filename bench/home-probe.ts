/**
 * Home-link check benchmark (not a test):
 * `node --import tsx bench/home-probe.ts [--rounds 20] [--method ndp|ping|both]`.
 *
 * How long the MN takes to recognise its home link (src/io/care-of.ts, RouteCareOfSource): two
 * fresh namespaces joined by a veth, the "home agent" side holding 2001:db8:100::1/64, the MN
 * side up with only its link-local address. Each round flushes the MN's neighbour cache, builds
 * a new RouteCareOfSource (no cached verdict), calls probe() and times until the home candidate
 * is reported. The timing runs inside the MN namespace (this script re-executes itself there).
 * `ndp`: the addon's Neighbor Solicitation probe; `ping`: the fallback that spawns `ip` and
 * `ping` (what ran before the addon had ndpSolicit). Prints min / median / max in ms. Needs root.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadAddon } from '../src/io/addon.js';
import { RouteCareOfSource } from '../src/io/care-of.js';
import { median } from './lib/stats.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '20' },
    method: { type: 'string', default: 'both' },
    inner: { type: 'string' },
  },
});
const HA_HOME = '2001:db8:100::1';
const HOA = '2001:db8:100::10';

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: 'ignore', timeout: 10_000 });
}

async function inner(dev: string, rounds: number, method: string): Promise<void> {
  // The fallback path runs when the addon has no ndpSolicit.
  if (method === 'ping') (loadAddon() as { ndpSolicit?: unknown }).ndpSolicit = undefined;
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    ip(['-6', 'neigh', 'flush', 'dev', dev]);
    const src = new RouteCareOfSource({
      tunName: 'none0',
      events: false,
      home: { homeAddress: HOA, prefixLength: 64, homeAgentAddress: HA_HOME },
    });
    const start = performance.now();
    const found = new Promise<void>((resolve) => src.watch(() => resolve()));
    const first = await src.probe();
    if (!first.some((c) => c.homeLink === dev)) {
      await Promise.race([found, new Promise((r) => setTimeout(r, 5000))]);
    }
    const again = await src.probe();
    const ms = performance.now() - start;
    src.close();
    if (!again.some((c) => c.homeLink === dev)) throw new Error(`round ${i}: home not found`);
    times.push(ms);
  }
  console.log(
    `home-link check (${method}), ${rounds} rounds: min ${Math.min(...times).toFixed(1)} ms, median ${median(times).toFixed(1)} ms, max ${Math.max(...times).toFixed(1)} ms`,
  );
}

async function outer(rounds: number): Promise<void> {
  const tag = `hp${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
  const ha = `${tag}h`;
  const mn = `${tag}m`;
  try {
    ip(['netns', 'add', ha]);
    ip(['netns', 'add', mn]);
    ip(['-n', ha, 'link', 'add', 'home0', 'type', 'veth', 'peer', 'name', 'wifi0', 'netns', mn]);
    ip(['-n', ha, 'addr', 'add', `${HA_HOME}/64`, 'dev', 'home0', 'nodad']);
    ip(['-n', ha, 'link', 'set', 'home0', 'up']);
    ip(['-n', mn, 'link', 'set', 'wifi0', 'up']);
    ip(['-n', ha, 'link', 'set', 'lo', 'up']);
    ip(['-n', mn, 'link', 'set', 'lo', 'up']);
    // Let the link-local addresses finish DAD and the veth carrier settle.
    for (let i = 0; i < 50; i++) {
      const r = spawnSync('ip', ['-n', mn, '-6', 'addr', 'show', 'dev', 'wifi0', 'tentative']);
      if (r.stdout.toString().trim() === '') break;
      await new Promise((res) => setTimeout(res, 100));
    }
    const self = fileURLToPath(import.meta.url);
    for (const method of values.method === 'both' ? ['ping', 'ndp'] : [values.method]) {
      const r = spawnSync(
        'ip',
        [
          'netns',
          'exec',
          mn,
          process.execPath,
          ...process.execArgv,
          self,
          '--inner',
          'wifi0',
          '--rounds',
          String(rounds),
          '--method',
          method,
        ],
        { stdio: 'inherit', timeout: 120_000 },
      );
      if (r.status !== 0) throw new Error(`inner run failed (${r.status ?? r.signal})`);
    }
  } finally {
    spawnSync('ip', ['netns', 'del', ha]);
    spawnSync('ip', ['netns', 'del', mn]);
  }
}

const rounds = Number(values.rounds);
if (values.inner !== undefined) await inner(values.inner, rounds, values.method);
else await outer(rounds);
