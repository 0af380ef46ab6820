/**
 * `npm run demo`: builds the netns lab (home agent with a home link and a plain server, a router
 * with LTE, hotel-NAT and IPv6-only access networks, the mobile node), starts the real mip6
 * daemons, runs one TCP connection between the server and the MN's home address carrying a
 * verified byte stream in both directions, and moves the MN LTE -> hotel NAT -> IPv6-only -> LTE.
 * For each move it prints when the home agent saw the new locator and how long each direction
 * of the TCP stream was interrupted, then checks every byte and tears everything down.
 * `npm run demo -- --personal`: the personal tunnel instead (scripts/demo-personal.ts).
 * `npm run demo -- --cluster`: the home agent cluster instead (scripts/demo-cluster.ts).
 */
import { join } from 'node:path';
import type { HaStatus } from '../src/io/control-protocol.js';
import {
  createLab,
  LAB_ADDR,
  labUnavailableReason,
  type AccessNetwork,
  type Lab,
} from '../test/lab/lab.js';
import { haToml, mnToml, Provisioned, startDaemon } from '../test/lab/mip6-lab.js';
import {
  netnsSpawn,
  spawnTrafficClient,
  spawnTrafficServer,
  type TrafficProcess,
} from '../test/lab/traffic-client.js';
import { waitFor } from '../test/helpers/wait.js';
import { personalTunnelDemo } from './demo-personal.js';
import { clusterDemo } from './demo-cluster.js';

const MOVES: { network: AccessNetwork; what: string; locator: string }[] = [
  { network: 'hotel', what: 'hotel Wi-Fi behind NAT44', locator: `${LAB_ADDR.natPublic}:` },
  { network: 'v6only', what: 'IPv6-only network', locator: `[${LAB_ADDR.mn.v6only}]:` },
  { network: 'lte', what: 'back to LTE (plain IPv4)', locator: `${LAB_ADDR.mn.lte}:` },
];

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

async function flowing(p: TrafficProcess, bytes = 50_000): Promise<void> {
  const start = (await p.report()).bytesReceived;
  await waitFor(
    'data flowing again',
    async () => (await p.report()).bytesReceived > start + bytes,
    15_000,
    5,
  );
}

async function main(): Promise<number> {
  const why = labUnavailableReason();
  if (why !== undefined) {
    say(`mip6 demo: ${why}. Run it as root on Linux: sudo npm run demo`);
    return 2;
  }
  say('mip6 demo: building the lab (network namespaces, veths, a NAT44 router)...');
  let lab: Lab | undefined;
  let prov: Provisioned | undefined;
  try {
    lab = await createLab({ network: 'lte' });
    prov = await Provisioned.create();
    say(`  authority, keys and certificates in ${prov.dir} (mip6 ca init / keygen / cert issue)`);
    const haFiles = await prov.member('ha', 'ha', [LAB_ADDR.ha.homePrefix]);
    const mnFiles = await prov.member('laptop', 'mn', [LAB_ADDR.mn.homeAddress]);
    const ha = startDaemon(lab, 'ha', 'ha', haToml(prov, haFiles), join(prov.dir, 'ha.sock'), [
      '--pcap',
      join(prov.dir, 'ha.pcap'),
    ]);
    await ha.waitLog((l) => l.event === 'started');
    say(
      `  home agent up: underlay ${LAB_ADDR.ha.v4} and ${LAB_ADDR.ha.v6}, home prefix ${LAB_ADDR.ha.homePrefix}`,
    );
    const mn = startDaemon(
      lab,
      'mn',
      'mn',
      mnToml(prov, 'laptop', mnFiles, haFiles),
      join(prov.dir, 'laptop.sock'),
      ['--log-level', 'debug'],
    );
    await mn.waitLog((l) => l.event === 'registered');
    say(
      `  mobile node registered from LTE ${LAB_ADDR.mn.lte}, home address ${LAB_ADDR.mn.homeAddress}`,
    );

    const server = spawnTrafficServer(netnsSpawn(lab.ns('server')), {
      listen: '::',
      rate: 1_000_000,
    });
    const { port } = await server.ready();
    const client = spawnTrafficClient(netnsSpawn(lab.ns('mn')), {
      connect: LAB_ADDR.server.v6,
      port,
      rate: 1_000_000,
      durationS: 300,
    });
    await client.ready();
    say(
      `  TCP session: server [${LAB_ADDR.server.v6}]:${port} <-> MN [${LAB_ADDR.mn.homeAddress}], ` +
        '1 MB/s each way, every byte checked\n',
    );
    await Promise.all([flowing(client), flowing(server)]);

    const haLocator = async (): Promise<string> =>
      (await ha.status<HaStatus>()).bindings.find((b) => b.homeAddress === LAB_ADDR.mn.homeAddress)
        ?.locator ?? '';
    const rows: string[] = [];
    // Moves are paced a second apart: RFC 6275 §11.8 lets an MN send at most MAX_UPDATE_RATE
    // (3) BUs per second, and a laptop does not change networks several times a second.
    let lastMove = performance.now();
    for (const [i, move] of MOVES.entries()) {
      const pause = lastMove + 1000 - performance.now();
      if (pause > 0) await new Promise((r) => setTimeout(r, pause));
      lastMove = performance.now();
      await Promise.all([client.mark(move.network), server.mark(move.network)]);
      const t0 = performance.now();
      await lab.move(move.network);
      const linkUp = performance.now() - t0;
      const bound = await waitFor(
        `the binding on ${move.network}`,
        async () => (await haLocator()).startsWith(move.locator),
        15_000,
        5,
      );
      const locator = await haLocator();
      await Promise.all([flowing(client), flowing(server)]);
      const [c, s] = await Promise.all([client.report(), server.report()]);
      const down = c.gapsAfterMarks.find((g) => g.label === move.network)?.gapMs ?? NaN;
      const up = s.gapsAfterMarks.find((g) => g.label === move.network)?.gapMs ?? NaN;
      say(`move ${i + 1}: ${move.what}`);
      say(
        `  link switched in ${linkUp.toFixed(0)} ms; home agent bound ${locator} ${bound.toFixed(0)} ms later`,
      );
      say(`  interruption: server -> MN ${down.toFixed(0)} ms, MN -> server ${up.toFixed(0)} ms`);
      rows.push(
        `${move.network.padEnd(8)} ${String(Math.round(down)).padStart(8)} ${String(Math.round(up)).padStart(8)}`,
      );
    }

    const [c, s] = await Promise.all([client.stop(), server.stop()]);
    const ok =
      c.ok &&
      s.ok &&
      c.mismatches === 0 &&
      s.mismatches === 0 &&
      c.bytesReceived === s.bytesSent &&
      s.bytesReceived === c.bytesSent;
    say('\nmove     down(ms)   up(ms)');
    for (const r of rows) say(r);
    say(`\n${c.verified} bytes verified server -> MN, ${s.verified} bytes verified MN -> server`);
    say(
      ok
        ? 'the TCP session survived every move with no byte lost or corrupted'
        : 'FAILED: the stream was damaged',
    );
    const haDrops = Object.entries((await ha.status<HaStatus>()).drops ?? {})
      .map(([reason, n]) => `${reason}=${n}`)
      .join(' ');
    say(`home agent drops by reason: ${haDrops || 'none'}`);
    const buLog = mn.lines.filter((l) => l.event === 'bu').map((l) => `${String(l['reason'])}`);
    say(`binding updates sent by the MN: ${buLog.length} (${buLog.join(', ')})`);
    await mn.stop();
    const st = await ha.status<HaStatus>();
    say(
      `mobile node stopped: it deregistered, the home agent now holds ${st.bindings.length} bindings`,
    );
    await ha.stop();
    return ok ? 0 : 1;
  } finally {
    await lab?.destroy();
    prov?.remove();
    say('lab removed');
  }
}

(process.argv.includes('--personal')
  ? personalTunnelDemo()
  : process.argv.includes('--cluster')
    ? clusterDemo()
    : main()
).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`mip6 demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
