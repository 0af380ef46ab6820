/**
 * Underlay loss, reordering and duplication in the netns lab (issue 9, "tc netem in the lab"):
 * this kernel has no sch_netem (`tc qdisc add ... netem` fails "Specified qdisc kind is
 * unknown"), so the userspace impairment element (test/lab/impair.ts, started through
 * test/lab/impairment.ts) sits in the router's forwarding path instead. With 3% loss, 2%
 * duplication and 5% of packets held back 10 ms (so later ones overtake them), in both
 * directions of the MN's LTE link, plus 1 ms of delay:
 *  1. a home agent and a mobile node come up and register through the impaired underlay;
 *  2. a TCP session MN <-> home-link server through the tunnel moves a few MB each way, every
 *     byte verified; the element's counters prove it dropped, duplicated and reordered packets
 *     in each direction; both daemons are still up and the binding is intact (status);
 *  3. the NAT44 of the hotel network still works with the element on: the MN moves there,
 *     registers from behind the NAT and pings the server through the tunnel.
 * test/lab/hardening.test.ts keeps its iptables-statistic loss run (no daemon restarts here).
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import type { HaStatus, MemberStatus } from '../../src/io/control-protocol.js';
import { waitFor } from '../helpers/wait.js';
import { LAB_ADDR, labUnavailableReason } from './lab.js';
import { Daemon, LabSession } from './mip6-lab.js';
import { startImpairment, type ImpairmentRule } from './impairment.js';
import { netnsSpawn, startTrafficPair } from './traffic-client.js';

const HOA = LAB_ADDR.mn.homeAddress;
const LTE_NET = '203.0.113.0/25';
const RATE = 500_000; // bytes/s each way
const DURATION_S = 6; // ~3 MB each way
const skip: string | false =
  labUnavailableReason() ?? (existsSync('/dev/net/tun') ? false : 'needs /dev/net/tun');

const impaired = (name: string, match: { src: string } | { dst: string }): ImpairmentRule => ({
  name,
  ...match,
  delayMs: 1,
  loss: 0.03,
  duplicate: 0.02,
  reorder: 0.05,
  reorderMs: 10,
});

void t.test(
  'TCP through the tunnel over an impaired underlay',
  { skip, timeout: 150_000 },
  async (t) => {
    const started = Date.now();
    const session = await LabSession.open(t, 'impairment');
    const { lab } = session;
    const imp = await startImpairment(lab, {
      seed: 9,
      rules: [impaired('to-mn', { dst: LTE_NET }), impaired('from-mn', { src: LTE_NET })],
    });
    t.teardown(() => imp.stop());
    const ha = (await session.homeAgent()).daemon;
    const mn = (await session.mobileNode()).daemon;

    await t.test('a few MB each way, every byte verified, every impairment seen', async (t) => {
      const before = await imp.stats();
      const replays = async (d: Daemon): Promise<number> =>
        ((await d.status<HaStatus | MemberStatus>()).drops ?? {})['channel-replay'] ?? 0;
      const replayBefore = { ha: await replays(ha), mn: await replays(mn) };
      const pair = await startTrafficPair({
        serverSpawn: netnsSpawn(lab.ns('server')),
        clientSpawn: netnsSpawn(lab.ns('mn')),
        listen: LAB_ADDR.server.v6,
        rate: RATE,
        durationS: DURATION_S,
      });
      t.teardown(() => pair.kill());
      // The client ends its stream after DURATION_S; only then is the server told to stop.
      const client = await pair.client.final(60_000);
      const server = await pair.server.stop(60_000);
      for (const [name, r] of [
        ['server -> MN', client],
        ['MN -> server', server],
      ] as const) {
        t.comment(
          `${name}: ${r.verified} bytes verified, ${r.mismatches} mismatches, ` +
            `max gap ${r.maxGapMs} ms, error ${r.error}`,
        );
        t.ok(r.ok, `${name}: the stream is intact (totals equal, no error)`);
        t.equal(r.mismatches, 0, `${name}: no corrupted byte`);
        t.ok(r.verified >= 1_000_000, `${name}: at least 1 MB verified`);
      }
      t.equal(client.bytesReceived, server.bytesSent, 'every byte the server sent arrived');
      t.equal(server.bytesReceived, client.bytesSent, 'every byte the MN sent arrived');

      const after = await imp.stats();
      for (const dir of ['to-mn', 'from-mn']) {
        const a = after.rules[dir];
        const b = before.rules[dir];
        if (a === undefined || b === undefined) {
          t.fail(`no counters for ${dir}`);
          continue;
        }
        const d = (k: 'packets' | 'lost' | 'duplicated' | 'heldBack' | 'reordered'): number =>
          a[k] - b[k];
        t.comment(
          `${dir} during the transfer: ${d('packets')} packets, ${d('lost')} lost, ` +
            `${d('duplicated')} duplicated, ${d('heldBack')} held back, ${d('reordered')} ` +
            `overtaken; queue-full drops ${a.queueFull}, mean sojourn ` +
            `${(a.delaySumMs / Math.max(1, a.forwarded)).toFixed(2)} ms`,
        );
        t.ok(d('packets') > 1000, `${dir}: the transfer crossed the element`);
        t.ok(d('lost') > 0, `${dir}: packets were dropped`);
        t.ok(d('duplicated') > 0, `${dir}: packets were duplicated`);
        t.ok(d('reordered') > 0, `${dir}: packets arrived out of order`);
        // The rates drawn match the configuration (binomial; wide bounds, no flakiness).
        const lossRate = d('lost') / d('packets');
        t.ok(
          lossRate > 0.01 && lossRate < 0.06,
          `${dir}: loss rate ${(100 * lossRate).toFixed(2)}%`,
        );
        t.equal(a.queueFull, 0, `${dir}: the queue cap was never reached`);
      }
      t.equal(after.writeFailures, 0, 'the element wrote every released packet back');
      // Each duplicate reaches the receiving daemon's replay window and is dropped there: the
      // duplicates were really delivered, and mip6 discarded them.
      for (const [who, d, dir] of [
        ['ha', ha, 'from-mn'],
        ['mn', mn, 'to-mn'],
      ] as const) {
        const dropped = (await replays(d)) - replayBefore[who];
        const dup = (after.rules[dir]?.duplicated ?? 0) - (before.rules[dir]?.duplicated ?? 0);
        t.ok(
          dropped > 0 && dropped <= dup,
          `${who} dropped ${dropped} replayed datagrams (${dup} duplicated towards it)`,
        );
      }

      t.equal(ha.exited, undefined, 'the home agent is still running');
      t.equal(mn.exited, undefined, 'the mobile node is still running');
      const hs = await ha.status<HaStatus>();
      t.ok(
        hs.bindings.some((b) => b.homeAddress === HOA && b.locator.startsWith(LAB_ADDR.mn.lte)),
        'the HA still holds the LTE binding',
      );
      t.comment(`HA drops: ${JSON.stringify(hs.drops ?? {})}`);
      const ms = await mn.status<MemberStatus>();
      t.equal(ms.bindingUpdateList.find((e) => e.kind === 'home')?.state, 'registered');
      t.comment(`MN drops: ${JSON.stringify(ms.drops ?? {})}`);
    });

    await t.test('the hotel NAT44 still works with the element on', async (t) => {
      // Only delay from here on: this is about the NAT, not about loss.
      await imp.configure({
        rules: [
          { name: 'to-mn', dst: LTE_NET, delayMs: 1 },
          { name: 'from-mn', src: LTE_NET, delayMs: 1 },
          { name: 'hotel-v4', src: '0.0.0.0/0', delayMs: 1 },
        ],
      });
      const before = (await imp.stats()).rules['hotel-v4']?.forwarded ?? 0;
      await lab.move('hotel');
      await waitFor(
        'the binding behind the NAT',
        async () =>
          (await ha.status<HaStatus>()).bindings.some(
            (b) => b.homeAddress === HOA && b.locator.startsWith(`${LAB_ADDR.natPublic}:`),
          ),
        20_000,
        50,
      );
      t.pass(`the HA sees the MN at the NAT's public address ${LAB_ADDR.natPublic}`);
      const r = await lab.exec(
        'mn',
        'ping',
        ['-6', '-c', '5', '-i', '0.1', '-W', '2', LAB_ADDR.server.v6],
        { check: false },
      );
      t.match(r.stdout, /5 received/, 'ping6 through the tunnel from behind the NAT');
      const ct = await lab.conntrackList();
      t.match(
        ct,
        new RegExp(
          `udp .*src=${LAB_ADDR.mn.hotel} dst=${LAB_ADDR.ha.v4} .*dst=${LAB_ADDR.natPublic}`,
        ),
        'conntrack holds the NAT mapping',
      );
      const after = (await imp.stats()).rules['hotel-v4']?.forwarded ?? 0;
      // At least the 5 echo requests and 5 replies, each one tunneled datagram (plus the BU/BA).
      t.ok(after - before >= 10, `${after - before} hotel datagrams crossed the element`);
    });

    const final = await imp.stop();
    t.comment(`element counters: ${JSON.stringify(final.rules)}`);
    t.comment(`test duration ${((Date.now() - started) / 1000).toFixed(1)} s`);
  },
);
