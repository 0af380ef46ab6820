/**
 * `npm run demo -- --cluster`: the home agent cluster (issue 18) in network namespaces
 * (test/lab/cluster-lab.ts): a three-member etcd cluster, three home agents on one home link
 * with a server, three mobile nodes spread over them. A TCP session from the server to each
 * member runs (every byte checked, test/lab/traffic.ts) while the demo kills one home agent
 * with SIGKILL (its member registers at another one; the demo prints how long that took), then
 * one etcd member (nothing changes), and prints what `mip6 status` shows on a home agent at
 * each step. Everything it created is removed at the end, also on Ctrl-C.
 */
import type { MemberStatus } from '../src/io/control-protocol.js';
import { formatStatus } from '../src/cli/status.js';
import { waitFor } from '../test/helpers/wait.js';
import { clusterLab, clusterOf, clusterView, sessions } from '../test/lab/cluster-lab.js';

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** What the lab registers for removal, run in reverse order at the end. */
class Cleanup {
  readonly #fns: (() => unknown)[] = [];
  teardown(fn: () => unknown): void {
    this.#fns.push(fn);
  }
  async run(): Promise<void> {
    for (const fn of this.#fns.splice(0).reverse()) {
      try {
        await fn();
      } catch {
        // the rest goes on
      }
    }
  }
}

export async function clusterDemo(): Promise<number> {
  const cleanup = new Cleanup();
  const onSignal = (): void => {
    void cleanup.run().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    say('building: etcd x3, home agents ha1-ha3 on one home link, members mn1-mn3 ...');
    const lab = await clusterLab(cleanup);
    const { etcd, has, mns } = lab;
    const showStatus = async (title: string): Promise<void> => {
      say(`\n--- ${title}: mip6 status on ha2 ---`);
      say(formatStatus(await has[1]!.status()));
    };
    await waitFor(
      'three HAs with one binding each',
      async () => (clusterView(await clusterOf(has[1]!)) ?? '').split(' ').length === 3,
      15_000,
    );
    await showStatus('running');
    const pairs = await sessions(cleanup, lab);
    say('\nTCP sessions from the server to mn1, mn2, mn3 are running');
    await new Promise((r) => setTimeout(r, 2_000));

    const from = mns[0]!.lines.length;
    const killedAt = Date.now();
    has[0]!.child.kill('SIGKILL');
    say('\nha1 killed (SIGKILL)');
    const swtch = await mns[0]!.waitLog((l) => l.event === 'home-agent-switch', 20_000, from);
    await mns[0]!.waitLog((l) => l.event === 'registered', 20_000, mns[0]!.lines.indexOf(swtch));
    const at = (await mns[0]!.status<MemberStatus>()).homeAgent;
    say(`mn1 registered at ${at} ${Date.now() - killedAt} ms after the kill`);
    await waitFor(
      'ha1 gone from the cluster (its lease expired)',
      async () => !(clusterView(await clusterOf(has[1]!)) ?? 'ha1').includes('ha1'),
      15_000,
    );
    await showStatus('ha1 dead');

    await etcd.stop('e2', 'SIGKILL');
    say('\netcd member e2 killed');
    await new Promise((r) => setTimeout(r, 3_000));
    await showStatus('one etcd member down');

    say('\nstopping the TCP sessions ...');
    let ok = true;
    for (const [i, p] of pairs.entries()) {
      const end = await p.stop();
      const good = end.client.ok && end.server.ok;
      ok &&= good;
      say(
        `mn${i + 1}: ${end.client.bytesReceived} bytes down, ${end.server.bytesReceived} up, ` +
          `longest pause ${Math.round(Math.max(end.client.maxGapMs, end.server.maxGapMs))} ms, ` +
          (good ? 'every byte verified' : `FAILED: ${end.client.error ?? end.server.error ?? '?'}`),
      );
    }
    return ok ? 0 : 1;
  } finally {
    say('\ncleaning up ...');
    await cleanup.run();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
