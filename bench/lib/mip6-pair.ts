/**
 * The real `mip6 ha` and `mip6 mn` daemons in a netns lab, the MN registered (bench helpers:
 * bench/lone-packet.ts, bench/hop-latency.ts), and integer options checked the same way.
 */
import { join } from 'node:path';
import { LAB_ADDR, type Lab } from '../../test/lab/lab.js';
import { Daemon, haToml, mip6Command, mnToml, Provisioned } from '../../test/lab/mip6-lab.js';

export interface Mip6Pair {
  ha: Daemon;
  mn: Daemon;
  /** Both daemons' PIDs (for their CPU time). */
  pids: number[];
  /** Stops both daemons (never throws). */
  stop(): Promise<void>;
}

/**
 * Starts the HA (home prefix of the lab) and the MN (`LAB_ADDR.mn.homeAddress`) with the
 * provisioned files of `prov`, each with `env`, and waits until the MN is registered.
 */
export async function startMip6Pair(
  lab: Lab,
  prov: Provisioned,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Mip6Pair> {
  const daemons: Daemon[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(daemons.map((d) => d.stop().catch(() => undefined)));
  };
  try {
    const start = (node: 'ha' | 'mn', config: string, socket: string): Daemon => {
      const args = [...mip6Command(), node, '-c', config, '--log-format', 'json'];
      const d = new Daemon(lab.spawn(node, process.execPath, args, { env }), socket);
      daemons.push(d);
      return d;
    };
    const haFiles = await prov.member('ha', 'ha', [LAB_ADDR.ha.homePrefix]);
    const mnFiles = await prov.member('bench', 'mn', [LAB_ADDR.mn.homeAddress]);
    const ha = start('ha', haToml(prov, haFiles), join(prov.dir, 'ha.sock'));
    await ha.waitLog((l) => l.event === 'started', 60_000);
    const mn = start('mn', mnToml(prov, 'bench', mnFiles, haFiles), join(prov.dir, 'mn.sock'));
    await mn.waitLog((l) => l.event === 'registered', 60_000);
    const pids = [ha.child.pid, mn.child.pid].filter((p): p is number => p !== undefined);
    return { ha, mn, pids, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** An integer option in [lo, hi], or an error that names it. */
export function intOption(v: string | undefined, lo: number, hi: number, name: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < lo || n > hi) {
    throw new Error(`--${name} must be an integer in [${lo}, ${hi}], got ${v}`);
  }
  return n;
}
