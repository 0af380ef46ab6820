/**
 * The home agent cluster on a virtual home network (issue 18): the home prefix lives on each
 * HA's TUN, there is no home link, and an HA that receives traffic for a member another HA
 * serves forwards it on an HA-to-HA channel (src/roles/ha/ha-peers.ts). Real daemons, a real
 * three-member etcd cluster started by the test (test/lab/cluster-lab.ts with `virtual`:
 * mn1..mn3 registered at ha1..ha3, a host beyond ha1, an ordinary host on the underlay).
 *
 *   1. Every HA's `mip6 status` lists an established channel to each other HA.
 *   2. A verified TCP session (every byte checked) between mn1 (at ha1) and mn2 (at ha2), and
 *      one from the host beyond ha1 to mn2: both cross the ha1 -> ha2 channel, and the
 *      status counters of both ends say so.
 *   3. Attacks on ha2, each asserting that nothing changed (its channels' forwarded counts,
 *      its bindings) and that every datagram was dropped and counted:
 *      a. a member's own valid key (role mn) opens a channel to ha2 and sends what a
 *         forwarding HA would: payload to mn2 from other members' and outside addresses;
 *      b. an ordinary host with no key sends datagrams spoofing ha1's underlay locator:
 *         junk initiations, data messages (payload and signaling kind) and bare packets.
 *   4. etcd entirely down: mn1 loses ha1 (its packets to ha1 dropped in its namespace) and
 *      tries another HA, which refuses the move (BA 130, a 'bu-rejected' line, the
 *      'cluster-move-refused' count); ha1 keeps serving mn1's binding. etcd back: the move
 *      goes through, ha1 drops the binding, the cluster's view has mn1 at its new HA.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { HaStatus } from '../../src/io/control-protocol.js';
import { formatStatus } from '../../src/cli/status.js';
import { run } from '../helpers/netns.js';
import { etcdSkipReason } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';
import { labUnavailableReason } from './lab.js';
import { BEYOND, clusterLab, clusterOf, haUnderlay, hoa } from './cluster-lab.js';
import { netnsSpawn, startTrafficPair, type TrafficPair } from './traffic-client.js';
import type { Daemon } from './mip6-lab.js';

const skip = labUnavailableReason() ?? etcdSkipReason() ?? false;
const MEMBER_AS_PEER = fileURLToPath(new URL('./fixtures/member-as-peer.ts', import.meta.url));
const FORGE = fileURLToPath(new URL('./fixtures/forge-ha-forward.py', import.meta.url));

/** The channel of `d` to HA `member`, from its status. */
async function channel(d: Daemon, member: string) {
  return (await clusterOf(d))?.channels?.find((c) => c.member === member);
}

/** What the attacks aim at on an HA: its channels' counts and its bindings. */
/**
 * What an attack on an HA must not change: its HA channels and which home address is bound
 * where. Not the sequence numbers: a member's own probes and refreshes raise them meanwhile.
 */
async function aimedAt(d: Daemon) {
  const s = await d.status<HaStatus>();
  return {
    channels: JSON.stringify(s.cluster?.channels ?? []),
    bindings: JSON.stringify(s.bindings.map((b) => [b.homeAddress, b.locator]).sort()),
  };
}

const dropTotal = (s: HaStatus): number =>
  Object.values(s.drops ?? {}).reduce((a, b) => a + Number(b), 0);

void t.test(
  'virtual home network: three HAs forward to each other over HA-to-HA channels',
  { skip, timeout: 300_000 },
  async (t) => {
    const lab = await clusterLab(t, { virtual: true });
    const { has, mnNs, etcd, prov, haFiles } = lab;
    const [ha1, ha2] = [has[0]!, has[1]!];

    // ---- 1. the channels -------------------------------------------------------------------
    for (const d of has) {
      await waitFor(
        'an established channel to each other HA',
        async () =>
          ((await clusterOf(d))?.channels ?? []).filter((c) => c.established).length === 2,
        20_000,
      );
    }
    t.match(formatStatus(await ha1.status()), /HA CHANNEL +LOCATOR +STATE/);
    t.match(formatStatus(await ha1.status()), /ha2 +198\.51\.100\.2:4191 +up/);

    // ---- 2. verified TCP across the ha1 -> ha2 channel -------------------------------------
    const pairs: TrafficPair[] = [];
    t.teardown(() => pairs.forEach((p) => p.kill()));
    const out0 = (await channel(ha1, 'ha2'))?.forwardedOut ?? 0;
    const in0 = (await channel(ha2, 'ha1'))?.forwardedIn ?? 0;
    pairs.push(
      await startTrafficPair({
        serverSpawn: netnsSpawn(mnNs[1]!),
        clientSpawn: netnsSpawn(mnNs[0]!),
        listen: hoa(2),
        rate: 50_000,
        durationS: 120,
      }),
      await startTrafficPair({
        serverSpawn: netnsSpawn(mnNs[1]!),
        clientSpawn: netnsSpawn(lab.home),
        listen: hoa(2),
        rate: 50_000,
        durationS: 120,
      }),
    );
    const received = async (p: TrafficPair): Promise<number> => {
      const r = await p.report();
      return Math.min(r.client.bytesReceived, r.server.bytesReceived);
    };
    for (const p of pairs) {
      await waitFor('100 kB both ways', async () => (await received(p)) > 100_000, 30_000);
    }
    const c12 = (await channel(ha1, 'ha2'))!;
    const c21 = (await channel(ha2, 'ha1'))!;
    t.ok(c12.forwardedOut > out0, `ha1 forwarded ${c12.forwardedOut} packets to ha2`);
    t.ok(c21.forwardedIn > in0, `ha2 delivered ${c21.forwardedIn} packets from ha1`);
    t.ok(c21.forwardedOut > 0, `ha2 forwarded mn2's answers to mn1 (${c21.forwardedOut})`);
    t.equal((await ha2.status<HaStatus>()).drops?.['ha-forward-not-served'] ?? 0, 0);
    for (const p of pairs) {
      const end = await p.stop();
      t.ok(
        end.client.ok && end.server.ok,
        `every byte verified (${end.client.bytesReceived} / ${end.server.bytesReceived})`,
      );
      t.equal(end.client.mismatches + end.server.mismatches, 0);
    }
    // Settled: nothing in flight any more (two status reads a moment apart agree).
    let last = '';
    await waitFor(
      'the channels idle',
      async () => {
        const now = (await aimedAt(ha2)).channels;
        const same = now === last;
        last = now;
        return same;
      },
      10_000,
      500,
    );

    // ---- 3a. a member's own key cannot act as a home agent ---------------------------------
    const mallory = await prov.member('mallory', 'mn', ['2001:db8:100::99']);
    {
      const before = await aimedAt(ha2);
      const s0 = await ha2.status<HaStatus>();
      const count = 5;
      const sources = [hoa(1), '2001:db8:100::99', BEYOND];
      const r = await run(
        'ip',
        [
          'netns',
          'exec',
          lab.attacker!,
          process.execPath,
          '--import',
          import.meta.resolve('tsx'),
          MEMBER_AS_PEER,
          mallory.key,
          mallory.cert,
          prov.authorityPub,
          haFiles[1]!.pub,
          haUnderlay(2),
          hoa(2),
          String(count),
          ...sources,
        ],
        30_000,
      );
      const answer = JSON.parse(r.trim().split('\n').pop() ?? '{}') as {
        established?: boolean;
        sent?: number;
      };
      t.same(answer, { established: true, sent: count * sources.length }, 'the channel came up');
      const noBinding = s0.drops?.['no-binding'] ?? 0;
      // Every datagram that arrives is dropped as no-binding. UDP may lose some on a busy box,
      // so the wait ends when all are counted or the count has not moved for 2 s.
      let last = -1;
      let lastChange = Date.now();
      await waitFor(
        'every arriving packet dropped as no-binding',
        async () => {
          const got = ((await ha2.status<HaStatus>()).drops?.['no-binding'] ?? 0) - noBinding;
          if (got !== last) {
            last = got;
            lastChange = Date.now();
          }
          return got === count * sources.length || (got > 0 && Date.now() - lastChange > 2_000);
        },
        20_000,
        100,
      );
      t.ok(last > 0, `${last} of ${count * sources.length} arrived, each counted as no-binding`);
      t.same(await aimedAt(ha2), before, "ha2's channels and bindings unchanged");
    }

    // ---- 3b. keyless datagrams spoofing ha1 ------------------------------------------------
    {
      const before = await aimedAt(ha2);
      const total0 = dropTotal(await ha2.status<HaStatus>());
      const out = await run(
        'ip',
        [
          'netns',
          'exec',
          lab.attacker!,
          '/usr/bin/python3',
          FORGE,
          haUnderlay(2),
          '4191',
          haUnderlay(1),
          '4191',
          hoa(1),
          hoa(2),
          '3',
        ],
        60_000,
      );
      const sent = (JSON.parse(out.trim().split('\n').pop() ?? '{}') as { sent?: number }).sent;
      t.equal(sent, 12);
      await waitFor(
        'the forged datagrams dropped and counted',
        async () => dropTotal(await ha2.status<HaStatus>()) >= total0 + 12,
        10_000,
      );
      t.same(await aimedAt(ha2), before, "ha2's channels and bindings unchanged");
      t.ok(
        JSON.stringify((await ha2.status<HaStatus>()).drops).includes('channel-'),
        'counted by the channel layer',
      );
    }

    // ---- 4. etcd down: a move between HAs is refused; etcd back: it goes through -----------
    const logFrom = has.map((d) => d.lines.length);
    await Promise.all(['e0', 'e1', 'e2'].map((m) => etcd.stop(m, 'SIGKILL')));
    for (const d of has) {
      await waitFor(
        'etcd unreachable in status',
        async () => (await clusterOf(d))?.etcd.state === 'unreachable',
        20_000,
      );
    }
    /**
     * mn1 hears nothing from ha1 any more (in mn1's namespace; an OUTPUT rule would fail its
     * sends with EPERM, which it takes for a local error, not for a silent home agent).
     */
    const block = (op: '-I' | '-D') =>
      Promise.all(
        [['INPUT', '-s']].map(([chain, dir]) =>
          run('ip', [
            'netns',
            'exec',
            mnNs[0]!,
            'iptables',
            '-w',
            op,
            chain!,
            dir!,
            haUnderlay(1),
            '-j',
            'DROP',
          ]),
        ),
      );
    await block('-I');
    t.teardown(() => block('-D').catch(() => {}));
    // mn1 notices the silence of its HA only while it sends: a ping (bounded: 60 s at most).
    const ping = spawn(
      'ip',
      ['netns', 'exec', mnNs[0]!, 'ping', '-6', '-q', '-i', '0.2', '-w', '60', hoa(2)],
      {
        stdio: 'ignore',
      },
    );
    t.teardown(() => {
      if (ping.exitCode === null) ping.kill();
    });
    const refusal = await Promise.race(
      [1, 2].map((i) =>
        has[i]!.waitLog(
          (l) => l.event === 'bu-rejected' && l['member'] === 'mn1' && l['status'] === 130,
          30_000,
          logFrom[i],
        ).then((line) => ({ i, line })),
      ),
    );
    t.match(refusal.line, { level: 'warn', reason: /etcd is unreachable/ });
    const refuser = has[refusal.i]!;
    t.ok(
      ((await refuser.status<HaStatus>()).drops?.['cluster-move-refused'] ?? 0) > 0,
      `ha${refusal.i + 1} counts the refused move`,
    );
    t.ok(
      (await ha1.status<HaStatus>()).bindings.some((b) => b.homeAddress === hoa(1)),
      'ha1 keeps serving mn1',
    );
    t.notOk(
      (await refuser.status<HaStatus>()).bindings.some((b) => b.homeAddress === hoa(1)),
      'no binding at the refusing HA',
    );
    await Promise.all(['e0', 'e1', 'e2'].map((m) => etcd.start(m)));
    for (const d of has) {
      await waitFor('etcd ok again', async () => (await clusterOf(d))?.etcd.state === 'ok', 30_000);
    }
    await waitFor(
      'mn1 served by ha2 or ha3, no longer by ha1',
      async () => {
        const [s1, s2, s3] = await Promise.all(has.map((d) => d.status<HaStatus>()));
        const at = (s: HaStatus) => s.bindings.some((b) => b.homeAddress === hoa(1));
        return !at(s1!) && (at(s2!) || at(s3!));
      },
      // mn1 was refused by every HA it knows while etcd was down: it tries again on its timer
      // (5 s, doubling), so this covers a few rounds of that plus etcd's own recovery.
      60_000,
    );
    await waitFor(
      "the cluster's view: ha1 serves nothing, three bindings in all",
      async () => {
        const c = await clusterOf(ha2);
        const count = (m: string) => c?.homeAgents.find((a) => a.member === m)?.bindings;
        return (
          count('ha1') === 0 && (c?.homeAgents ?? []).reduce((a, x) => a + x.bindings, 0) === 3
        );
      },
      20_000,
    );
    t.pass('etcd back: the refused move went through and ha1 gave the binding up');
  },
);
