/**
 * The home agent cluster in namespaces (issue 18), real daemons and a real etcd cluster the
 * test starts itself (test/lab/cluster-lab.ts: three HAs with an etcd member each on one home
 * link with a server, three members registered at ha1, ha2, ha3):
 *
 *   1. Every HA's `mip6 status` shows the cluster: etcd ok, three HAs, one binding each; a
 *      member's DHAAD / MPA lists all three live HAs.
 *   2. A verified TCP session from the server to each member (traffic.ts).
 *   3. SIGKILL of ha1's daemon (the PID this test started): mn1 registers at another HA within
 *      its probe time, and that HA's status says so; mn2 and mn3 stay where they were.
 *   4. One etcd member killed: nothing changes (health ok, bindings in place).
 *   5. All etcd members gone: the HAs keep serving (traffic flows), `mip6 status` and a log
 *      line say etcd is unreachable and moves between HAs are refused; etcd back (its members
 *      restarted on their data): health ok, the cluster's view has all bindings again.
 *   6. ha3 cut off from the other HAs and their etcd members (iptables in its namespace): it
 *      serves its member on, the majority side drops its lease (ha3 and its binding leave the
 *      list members get); healed, ha3 writes its binding again on a new lease.
 *   7. Every TCP session finishes with every byte verified.
 */
import t from 'tap';
import type { HaStatus, MemberStatus } from '../../src/io/control-protocol.js';
import { formatStatus } from '../../src/cli/status.js';
import { run } from '../helpers/netns.js';
import { etcdSkipReason } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';
import { labUnavailableReason } from './lab.js';
import {
  clusterLab,
  clusterOf,
  clusterView,
  HAS,
  haHome,
  haUnderlay,
  hoa,
  sessions,
} from './cluster-lab.js';
import type { TrafficPair } from './traffic-client.js';

const skip = labUnavailableReason() ?? etcdSkipReason() ?? false;

void t.test(
  'three HAs, one etcd cluster: SIGKILL of an HA',
  { skip, timeout: 240_000 },
  async (t) => {
    const lab = await clusterLab(t);
    const { haNs, etcd, has, mns } = lab;

    // ---- 1. the cluster as each HA sees it ---------------------------------------------------
    const view = clusterView;
    const expected = HAS.map((n) => `ha${n}:${haHome(n)}:1`).join(' ');
    for (const d of has) {
      await waitFor(
        'the cluster in mip6 status',
        async () => view(await clusterOf(d)) === expected,
        15_000,
      );
      t.equal((await clusterOf(d))?.etcd.state, 'ok');
    }
    t.match(
      formatStatus(await has[1]!.status()),
      /cluster lab {2}member ha2 {2}etcd ok \(3 endpoints\)/,
    );
    await waitFor(
      "mn1 learned all three HAs (DHAAD / MPA from etcd's agents)",
      async () =>
        ((await mns[0]!.status<MemberStatus>()).homeAgents ?? []).filter((a) => a.usable).length ===
        3,
      15_000,
    );

    // ---- 2. a verified TCP session from the server to each member ---------------------------
    const pairs = await sessions(t, lab);
    const received = async (p: TrafficPair): Promise<number> => {
      const r = await p.report();
      return Math.min(r.client.bytesReceived, r.server.bytesReceived);
    };
    for (const p of pairs)
      await waitFor('data both ways', async () => (await received(p)) > 0, 15_000);
    /** Every session moves another 10 kB both ways (within 20 s). */
    const flowing = async (what: string): Promise<void> => {
      for (const p of pairs) {
        const before = await received(p);
        await waitFor(what, async () => (await received(p)) > before + 10_000, 20_000);
      }
    };

    // ---- 3. SIGKILL of ha1 ------------------------------------------------------------------
    const mn1From = mns[0]!.lines.length;
    const others = await Promise.all(
      [2, 3].map(async (n) => (await mns[n - 1]!.status<MemberStatus>()).homeAgent),
    );
    const killedAt = Date.now();
    has[0]!.child.kill('SIGKILL');
    await waitFor('ha1 gone', () => has[0]!.exited !== undefined, 10_000);
    const swtch = await mns[0]!.waitLog((l) => l.event === 'home-agent-switch', 20_000, mn1From);
    await mns[0]!.waitLog((l) => l.event === 'registered', 20_000, mns[0]!.lines.indexOf(swtch));
    const took = Date.now() - killedAt;
    t.ok(took < 10_000, `mn1 registered at another HA ${took} ms after ha1 was killed`);
    const moved = (await mns[0]!.status<MemberStatus>()).homeAgent;
    t.not(moved, `${haUnderlay(1)}:4191`, `mn1 is at ${moved} now`);
    await waitFor(
      'another HA serves mn1',
      async () => {
        const all = await Promise.all(has.slice(1).map((d) => d.status<HaStatus>()));
        return all.some((s) => s.bindings.some((b) => b.homeAddress === hoa(1)));
      },
      10_000,
    );
    t.same(
      await Promise.all(
        [2, 3].map(async (n) => (await mns[n - 1]!.status<MemberStatus>()).homeAgent),
      ),
      others,
      'mn2 and mn3 stayed at their HAs',
    );
    await flowing('traffic flows again');
    await waitFor(
      "ha1's bindings gone from the cluster (its lease expired)",
      async () => view(await clusterOf(has[1]!))?.includes('ha1') === false,
      15_000,
    );

    // ---- 4. one etcd member killed: nothing changes -----------------------------------------
    await etcd.stop('e2', 'SIGKILL');
    await new Promise((r) => setTimeout(r, 3_000));
    for (const d of has.slice(1)) {
      t.equal((await clusterOf(d))?.etcd.state, 'ok', 'etcd healthy with two of three members');
    }
    const bindings = await Promise.all(
      has.slice(1).map(async (d) => (await d.status<HaStatus>()).bindings.length),
    );
    t.equal(
      bindings.reduce((a, b) => a + b, 0),
      3,
      'the three bindings still served',
    );

    // ---- 5. etcd entirely unreachable: the HAs keep serving, say so, and catch up ------------
    const logFrom = has.map((d) => d.lines.length);
    await Promise.all([etcd.stop('e0', 'SIGKILL'), etcd.stop('e1', 'SIGKILL')]);
    for (const [i, d] of has.entries()) {
      if (i === 0) continue;
      await waitFor(
        'etcd unreachable in status',
        async () => (await clusterOf(d))?.etcd.state === 'unreachable',
        20_000,
      );
      const line = await d.waitLog((l) => l.event === 'cluster-etcd', 5_000, logFrom[i]);
      t.match(line, {
        level: 'warn',
        state: 'unreachable',
        effect: /moves between home agents refused/,
      });
    }
    t.match(
      formatStatus(await has[1]!.status()),
      /etcd UNREACHABLE since .*serving the bindings held, moves between home agents refused/,
    );
    await flowing('traffic flows without etcd');
    await Promise.all(['e0', 'e1', 'e2'].map((m) => etcd.start(m)));
    for (const d of has.slice(1)) {
      await waitFor('etcd ok again', async () => (await clusterOf(d))?.etcd.state === 'ok', 30_000);
    }
    await waitFor(
      'the cluster caught up: three bindings, two HAs',
      async () => {
        const c = await clusterOf(has[2]!);
        return c?.homeAgents.length === 2 && c.homeAgents.reduce((a, x) => a + x.bindings, 0) === 3;
      },
      20_000,
    );

    // ---- 6. ha3 cut off from the other HAs (and their etcd members) -------------------------
    const cut = (op: '-I' | '-D') =>
      Promise.all(
        [1, 2].flatMap((n) => [
          run('ip', [
            'netns',
            'exec',
            haNs[2]!,
            'iptables',
            '-w',
            op,
            'INPUT',
            '-s',
            haUnderlay(n),
            '-j',
            'DROP',
          ]),
          run('ip', [
            'netns',
            'exec',
            haNs[2]!,
            'iptables',
            '-w',
            op,
            'OUTPUT',
            '-d',
            haUnderlay(n),
            '-j',
            'DROP',
          ]),
        ]),
      );
    await cut('-I');
    await waitFor(
      'ha3: etcd unreachable',
      async () => (await clusterOf(has[2]!))?.etcd.state === 'unreachable',
      20_000,
    );
    await waitFor(
      "ha2's view: ha3 and its binding gone with its lease",
      async () => view(await clusterOf(has[1]!)) === `ha2:${haHome(2)}:2`,
      20_000,
    );
    t.pass("the majority side dropped ha3's lease: ha2's cluster view lists ha2 alone");
    await flowing('traffic flows across the partition');
    t.equal(
      (await mns[2]!.status<MemberStatus>()).homeAgent,
      `${haUnderlay(3)}:4191`,
      'mn3 stayed at ha3',
    );
    await cut('-D');
    await waitFor(
      'ha3: etcd ok again',
      async () => (await clusterOf(has[2]!))?.etcd.state === 'ok',
      30_000,
    );
    await waitFor(
      'after the partition: ha3 and its binding back in the cluster',
      async () => view(await clusterOf(has[1]!)) === `ha2:${haHome(2)}:2 ha3:${haHome(3)}:1`,
      20_000,
    );
    t.pass('ha3 caught up: new lease, its binding written again');

    // ---- 7. every session intact -------------------------------------------------------------
    for (const p of pairs) {
      const end = await p.stop();
      t.ok(
        end.client.ok && end.server.ok,
        `every byte verified (${end.client.bytesReceived} / ${end.server.bytesReceived})`,
      );
      t.equal(end.client.mismatches + end.server.mismatches, 0);
    }
  },
);
