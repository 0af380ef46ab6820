/**
 * Both ends mobile in the netns lab (issue 7: "two laptops roaming while talking"): two members,
 * each with its own home address at the HA and each answering return routability (`mip6 cn`,
 * the other one as its [[correspondent]]), one in the lab's MN namespace ("laptop"), one in its
 * CN namespace ("peer"). A verified TCP stream (test/lab/traffic.ts) runs between their home
 * addresses with route optimization; then the laptop moves (LTE -> IPv6-only), then the peer
 * (its dual-stack uplink -> its own IPv6-only network, Lab.moveCn). After each move RR is redone
 * and route optimization comes back: both sides' direct packet counters increase while the HA
 * decapsulates and tunnels no packet at all; at the end every byte is checked in both directions.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { HaStatus, MemberStatus } from '../../src/io/control-protocol.js';
import { waitFor } from '../helpers/wait.js';
import { LAB_ADDR, labUnavailableReason } from './lab.js';
import { cnToml, correspondentSection, Daemon, LabSession, type LogLine } from './mip6-lab.js';
import {
  netnsSpawn,
  spawnTrafficClient,
  spawnTrafficServer,
  type TrafficProcess,
} from './traffic-client.js';

const LAPTOP_HOA = LAB_ADDR.mn.homeAddress;
const PEER_HOA = '2001:db8:100::20';
const skip: string | false =
  labUnavailableReason() ?? (existsSync('/dev/net/tun') ? false : 'needs /dev/net/tun');

interface Direct {
  state: string | undefined;
  directOut: number;
  directIn: number;
}

async function direct(d: Daemon): Promise<Direct> {
  const s = await d.status<MemberStatus>();
  const e = s.bindingUpdateList.find((b) => b.kind === 'correspondent');
  return {
    state: e?.routeOptimization,
    directOut: e?.packets?.directOut ?? 0,
    directIn: e?.packets?.directIn ?? 0,
  };
}

async function haData(ha: Daemon): Promise<{ in: number; out: number }> {
  const c = ((await ha.status<HaStatus>()).counters ?? {}) as Record<string, number>;
  return { in: c.tunnelPacketsIn ?? 0, out: c.tunnelPacketsOut ?? 0 };
}

/** Waits (bounded) until both directions of the stream moved `bytes` more. */
async function progress(
  client: TrafficProcess,
  server: TrafficProcess,
  bytes: number,
  timeoutMs: number,
): Promise<boolean> {
  const [c0, s0] = await Promise.all([client.report(), server.report()]);
  return waitFor(
    `${bytes} more bytes each way`,
    async () => {
      const [c, s] = await Promise.all([client.report(), server.report()]);
      return (
        c.bytesReceived >= c0.bytesReceived + bytes && s.bytesReceived >= s0.bytesReceived + bytes
      );
    },
    timeoutMs,
    50,
  ).then(
    () => true,
    () => false,
  );
}

interface Window {
  ha: { in: number; out: number };
  laptop: Direct;
  peer: Direct;
  laptopGrew: number;
  peerGrew: number;
}

/**
 * Route optimization is back in both directions when, over a window in which the stream moved
 * on both ways, both members say 'direct', both direct-out counters grew and the HA's data
 * counters did not move at all. Retries windows (a member may first fall back to the tunnel
 * and redo RR) until `timeoutMs`; returns the last window.
 */
async function directAgain(
  ha: Daemon,
  laptop: Daemon,
  peer: Daemon,
  client: TrafficProcess,
  server: TrafficProcess,
  timeoutMs: number,
): Promise<{ ok: boolean; window: Window; windows: number }> {
  const deadline = Date.now() + timeoutMs;
  let windows = 0;
  for (;;) {
    windows++;
    const [h0, l0, p0] = await Promise.all([haData(ha), direct(laptop), direct(peer)]);
    const moved = await progress(client, server, 20_000, 5000);
    const [h1, l1, p1] = await Promise.all([haData(ha), direct(laptop), direct(peer)]);
    const window: Window = {
      ha: { in: h1.in - h0.in, out: h1.out - h0.out },
      laptop: l1,
      peer: p1,
      laptopGrew: l1.directOut - l0.directOut,
      peerGrew: p1.directOut - p0.directOut,
    };
    const ok =
      moved &&
      l0.state === 'direct' &&
      p0.state === 'direct' &&
      l1.state === 'direct' &&
      p1.state === 'direct' &&
      window.laptopGrew > 0 &&
      window.peerGrew > 0 &&
      window.ha.in === 0 &&
      window.ha.out === 0;
    if (ok || Date.now() > deadline) return { ok, window, windows };
  }
}

const optimizedAt =
  (careOf: string) =>
  (l: LogLine): boolean =>
    l.event === 'route-optimized' && l.careOf === careOf;

void t.test(
  'both mobile: two roaming members keep a TCP session direct',
  { skip, timeout: 120_000 },
  async (t) => {
    const session = await LabSession.open(t, 'both-mobile');
    const { lab, prov } = session;
    const traffic: TrafficProcess[] = [];
    t.teardown(() => {
      for (const p of traffic) p.kill();
    });
    const laptopFiles = await prov.member('laptop', 'cn', [LAPTOP_HOA]);
    const peerFiles = await prov.member('peer', 'cn', [PEER_HOA]);
    const { files: haFiles, daemon: ha } = await session.homeAgent();
    // Each starts from the other's configured underlay addresses; after that each follows the
    // locator the other proved with RR + BU.
    const peer = session.start(
      'cn',
      'cn',
      cnToml(prov, peerFiles, haFiles, {
        name: 'peer',
        homeAddress: PEER_HOA,
        tun: 'mip6cn',
        extra: correspondentSection(laptopFiles.pub, true, {
          address: LAPTOP_HOA,
          underlay: [LAB_ADDR.mn.lte, LAB_ADDR.mn.v6only],
        }),
      }),
      join(prov.dir, 'peer.sock'),
    );
    await peer.waitLog((l) => l.event === 'registered');
    const laptop = session.start(
      'mn',
      'cn',
      cnToml(prov, laptopFiles, haFiles, {
        name: 'laptop',
        homeAddress: LAPTOP_HOA,
        tun: 'mip6mn',
        extra: correspondentSection(peerFiles.pub, true, { address: PEER_HOA }),
      }),
      join(prov.dir, 'laptop.sock'),
    );
    await laptop.waitLog((l) => l.event === 'route-optimized', 20_000);
    await peer.waitLog((l) => l.event === 'route-optimized', 20_000);

    const server = spawnTrafficServer(netnsSpawn(lab.ns('cn')), { listen: '::', rate: 300_000 });
    traffic.push(server);
    const { port } = await server.ready();
    const client = spawnTrafficClient(netnsSpawn(lab.ns('mn')), {
      connect: PEER_HOA,
      port,
      rate: 300_000,
      durationS: 90,
    });
    traffic.push(client);
    await client.ready();

    const first = await directAgain(ha, laptop, peer, client, server, 20_000);
    t.ok(first.ok, `direct both ways before any move: ${JSON.stringify(first.window)}`);

    const moves: [string, () => Promise<void>, Daemon, string][] = [
      ['laptop lte -> v6only', () => lab.move('v6only'), laptop, LAB_ADDR.mn.v6only],
      ['peer uplink -> v6only', () => lab.moveCn('v6only'), peer, LAB_ADDR.cn.v6only],
    ];
    for (const [label, move, mover, careOf] of moves) {
      const from = mover.lines.length;
      const started = Date.now();
      await Promise.all([client.mark(label), server.mark(label)]);
      await move();
      const again = await mover.waitLog(optimizedAt(careOf), 20_000, from);
      t.equal(again.careOf, careOf, `${label}: the mover redid RR and its BU from ${careOf}`);
      const r = await directAgain(ha, laptop, peer, client, server, 30_000);
      t.ok(
        r.ok,
        `${label}: direct both ways again, HA forwards nothing ` +
          `(${r.windows} window(s), ${Date.now() - started} ms after the move): ${JSON.stringify(r.window)}`,
      );
    }

    const [c, s] = await Promise.all([client.stop(), server.stop()]);
    t.equal(c.mismatches, 0, 'peer -> laptop: no byte corrupted');
    t.equal(s.mismatches, 0, 'laptop -> peer: no byte corrupted');
    t.ok(c.bytesReceived > 0 && s.bytesReceived > 0, 'bytes flowed both ways');
    t.equal(c.bytesReceived, s.bytesSent, 'every byte the peer sent arrived');
    t.equal(s.bytesReceived, c.bytesSent, 'every byte the laptop sent arrived');
    t.ok(c.ok && s.ok, 'both ends report a verified stream');
    for (const g of c.gapsAfterMarks) t.comment(`${g.label}: peer -> laptop gap ${g.gapMs} ms`);
    for (const g of s.gapsAfterMarks) t.comment(`${g.label}: laptop -> peer gap ${g.gapMs} ms`);
  },
);
