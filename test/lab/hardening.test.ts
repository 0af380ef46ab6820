/**
 * The real home agent daemon under hostile input and faults, in the netns lab (issue 9):
 *  1. MIP6_FLOOD_COUNT (default 200 000) random and mutated datagrams on its UDP port from the
 *     CN namespace (paced at MIP6_FLOOD_RATE, default 25 000/s), and MIP6_TUN_JUNK_COUNT
 *     (default 20 000) random IPv6 packets routed into its TUN from the home side: the daemon
 *     stays up, counts the drops by reason in `mip6 status`, and the registered MN still
 *     answers ping6 through the tunnel afterwards.
 *  2. A handshake-initiation flood (well-formed initiations with a valid MAC1, 5 000/s): a
 *     mobile node started during the flood registers in under 1 s (cookies, not DH, for the
 *     flood).
 *  3. kill -9 of the MN and a new MN process; a TCP stream through the tunnel with netem loss,
 *     reordering and duplication on the MN's underlay link, every byte verified.
 *  4. kill -9 of the home agent while the MN is registered, then a restart: the MN notices
 *     (no answer to its probes), handshakes again and re-registers; the recovery time is
 *     measured and bounded.
 * Every figure is printed as a tap comment (SECURITY.md quotes them).
 */
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HaStatus } from '../../src/io/control-protocol.js';
import { waitFor } from '../helpers/wait.js';
import { LAB_ADDR, labUnavailableReason, type Lab } from './lab.js';
import { Daemon, LabSession } from './mip6-lab.js';
import { netnsSpawn, startTrafficPair } from './traffic-client.js';

const HOA = LAB_ADDR.mn.homeAddress;
const skip: string | false =
  labUnavailableReason() ?? (existsSync('/dev/net/tun') ? false : 'needs /dev/net/tun');
const FLOOD_COUNT = Number(process.env['MIP6_FLOOD_COUNT'] ?? 200_000);
const FLOOD_RATE = Number(process.env['MIP6_FLOOD_RATE'] ?? 25_000);
const TUN_JUNK_COUNT = Number(process.env['MIP6_TUN_JUNK_COUNT'] ?? 20_000);
const FLOOD = fileURLToPath(new URL('./fixtures/udp-flood.ts', import.meta.url));
const TUN_JUNK = fileURLToPath(new URL('./fixtures/tun-junk.py', import.meta.url));

/** Runs a lab child to completion (bounded) and returns its last stdout line as JSON. */
function runChild(lab: Lab, node: 'cn' | 'ha', cmd: string, args: string[], timeoutMs: number) {
  return new Promise<Record<string, number>>((resolve, reject) => {
    const child = lab.spawn(node, cmd, args);
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`${cmd} exited ${code}: ${err.slice(-500)}`));
      else resolve(JSON.parse(out.trim().split('\n').pop() ?? '{}') as Record<string, number>);
    });
  });
}

function flood(lab: Lab, haPub: string, extra: string[]) {
  return runChild(
    lab,
    'cn',
    process.execPath,
    [
      '--import',
      'tsx',
      FLOOD,
      '--to',
      LAB_ADDR.ha.v4,
      '--port',
      '4191',
      '--ha-pub',
      haPub,
      ...extra,
    ],
    150_000,
  );
}

/** Resident set size of a daemon (ip netns exec execs node, so the child PID is the daemon's). */
function rssKb(d: Daemon): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${d.child.pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN);
}

async function ping(lab: Lab): Promise<string> {
  const r = await lab.exec('server', 'ping', ['-6', '-c', '3', '-i', '0.2', '-W', '2', HOA], {
    check: false,
  });
  return r.stdout;
}

void t.test(
  'home agent daemon under hostile input and faults',
  { skip, timeout: 600_000 },
  async (t) => {
    const session = await LabSession.open(t, 'hardening', { timeoutMs: 20_000 });
    const { lab, prov } = session;
    const haStarted = await session.homeAgent({ extra: 'max_lifetime = 600' });
    const { files: haFiles, config: haConfig } = haStarted;
    let ha: Daemon = haStarted.daemon;
    const mnStarted = await session.mobileNode({
      extra: '[movement]\nprobe_interval = 1\nprobe_timeout = 0.5\nprobe_attempts = 2\n',
    });
    const mnConfig = mnStarted.config;
    let mn: Daemon = mnStarted.daemon;
    const haSock = ha.socket;

    await t.test(
      `${FLOOD_COUNT} hostile datagrams and ${TUN_JUNK_COUNT} TUN packets`,
      async (t) => {
        const before = await ha.status<HaStatus>();
        const rssBefore = rssKb(ha);
        const [udp, tun] = await Promise.all([
          flood(lab, haFiles.pub, [
            '--count',
            String(FLOOD_COUNT),
            '--rate',
            String(FLOOD_RATE),
            '--seed',
            '9',
          ]),
          runChild(
            lab,
            'ha',
            '/usr/bin/python3',
            [TUN_JUNK, HOA, String(TUN_JUNK_COUNT), '5'],
            150_000,
          ),
        ]);
        t.equal(udp['sent'], FLOOD_COUNT, `${udp['sent']} datagrams sent in ${udp['ms']} ms`);
        t.ok((tun['sent'] ?? 0) > TUN_JUNK_COUNT / 2, `${tun['sent']} packets into the TUN`);
        t.equal(ha.exited, undefined, 'the home agent is still running');
        const st = await ha.status<HaStatus>();
        const drops = st.drops ?? {};
        const delta = (k: string): number => (drops[k] ?? 0) - (before.drops?.[k] ?? 0);
        const channel = Object.keys(drops)
          .filter((k) => k.startsWith('channel-') || k === 'handshake-rate-limited')
          .reduce((n, k) => n + delta(k), 0);
        t.comment(`drops by reason: ${JSON.stringify(drops)}`);
        t.comment(
          `counted channel drops ${channel} of ${FLOOD_COUNT} sent (${((100 * channel) / FLOOD_COUNT).toFixed(1)}%)`,
        );
        t.ok(
          channel >= FLOOD_COUNT * 0.5,
          'most hostile datagrams reached the daemon and were counted',
        );
        t.ok(channel <= FLOOD_COUNT, 'never more drops than datagrams');
        const rssAfter = rssKb(ha);
        t.comment(`HA resident memory ${rssBefore} kB before, ${rssAfter} kB after the flood`);
        t.ok(rssAfter - rssBefore < 64 * 1024, 'memory stays bounded (< 64 MB growth)');
        t.ok(
          delta('channel-malformed') > 0 && delta('handshake-rate-limited') > 0,
          'malformed and per-source rate-limited handshakes seen',
        );
        t.ok(
          st.bindings.some((b) => b.homeAddress === HOA),
          'the MN binding is intact',
        );
        t.match(await ping(lab), /3 received/, 'ping6 through the tunnel afterwards');
      },
    );

    await t.test(
      'a new MN registers in under 1 s (plus the HA’s 1 s DAD) during a handshake-initiation flood',
      async (t) => {
        await mn.stop();
        const shed = (d: Record<string, number> | undefined): number =>
          (d?.['channel-cookie-required'] ?? 0) + (d?.['handshake-rate-limited'] ?? 0);
        const before = shed((await ha.status<HaStatus>()).drops);
        const flooding = flood(lab, haFiles.pub, [
          '--mode',
          'initiations',
          '--count',
          '40000',
          '--rate',
          '5000',
        ]);
        // Let the flood reach full rate (the HA is shedding it) before starting the MN.
        await waitFor(
          'the flood being shed',
          async () => shed((await ha.status<HaStatus>()).drops) > before + 1000,
          20_000,
        );
        mn = session.start('mn', 'mn', mnConfig, join(prov.dir, 'laptop.sock'));
        await mn.waitLog((l) => l.event === 'started', 20_000);
        const started = Date.now();
        await mn.waitLog((l) => l.event === 'registered', 10_000);
        const took = Date.now() - started;
        t.comment(`registration during the flood took ${took} ms`);
        // A new binding on the lab's real home link waits for Duplicate Address Detection
        // (RFC 6275 §10.3.1: 1 s) before its BA; the flood may add no more than 1 s to that.
        t.ok(took < 2000, `registered ${took} ms after start-up (1 s of it DAD), during the flood`);
        const r = await flooding;
        const after = (await ha.status<HaStatus>()).drops ?? {};
        t.comment(
          `initiation flood: ${r['sent']} in ${r['ms']} ms; drops ${JSON.stringify(after)}`,
        );
        t.ok(
          shed(after) - before > r['sent']! / 2,
          'the flood was shed (per-source limit, cookies)',
        );
        t.equal(ha.exited, undefined, 'the home agent is still running');
      },
    );

    await t.test('kill -9 of the MN, then a new MN process: registered again', async (t) => {
      mn.child.kill('SIGKILL');
      await waitFor('MN exit', () => mn.exited !== undefined, 10_000);
      t.ok(
        (await ha.status<HaStatus>()).bindings.some((b) => b.homeAddress === HOA),
        'the HA keeps the crashed MN binding until its lifetime ends',
      );
      mn = session.start('mn', 'mn', mnConfig, join(prov.dir, 'laptop.sock'));
      await mn.waitLog((l) => l.event === 'started', 20_000);
      const started = Date.now();
      await mn.waitLog((l) => l.event === 'registered', 15_000);
      t.comment(`the restarted MN registered ${Date.now() - started} ms after start-up`);
      t.match(await ping(lab), /3 received/, 'ping6 through the tunnel');
    });

    // netem on both ends of the MN's LTE link: 1% loss, 10 ms +- 5 ms delay, 25% reordered,
    // 1% duplicated, in each direction. Some kernels (this CI's) are built without sch_netem.
    const netem = [
      'netem',
      'loss',
      '1%',
      'delay',
      '10ms',
      '5ms',
      'reorder',
      '25%',
      '50%',
      'duplicate',
      '1%',
    ];
    const probe = await lab.exec('mn', 'tc', ['qdisc', 'add', 'dev', 'lte', 'root', ...netem], {
      check: false,
    });
    const netemSkip =
      probe.code === 0 ? false : `netem unavailable in this kernel (${probe.stderr.trim()})`;
    await t.test(
      'TCP through the tunnel survives underlay loss, reordering, duplication',
      { skip: netemSkip },
      async (t) => {
        t.teardown(() =>
          lab.exec('mn', 'tc', ['qdisc', 'del', 'dev', 'lte', 'root'], { check: false }),
        );
        await lab.exec('router', 'tc', ['qdisc', 'add', 'dev', 'lte', 'root', ...netem]);
        t.teardown(() =>
          lab.exec('router', 'tc', ['qdisc', 'del', 'dev', 'lte', 'root'], { check: false }),
        );
        const pair = await startTrafficPair({
          serverSpawn: netnsSpawn(lab.ns('server')),
          clientSpawn: netnsSpawn(lab.ns('mn')),
          listen: LAB_ADDR.server.v6,
          rate: 250_000,
          durationS: 8,
        });
        t.teardown(() => pair.kill());
        // The client ends its stream after durationS; only then is the server told to stop.
        const client = await pair.client.final(60_000);
        const server = await pair.server.stop(60_000);
        for (const [name, r] of [
          ['server -> MN', client],
          ['MN -> server', server],
        ] as const) {
          t.comment(
            `${name}: ${r.verified} bytes verified, ${r.mismatches} mismatches, error ${r.error}`,
          );
          t.ok(r.ok, `${name}: the stream is intact`);
          t.equal(r.mismatches, 0, `${name}: no corrupted byte`);
          t.ok(r.verified > 250_000, `${name}: data flowed`);
        }
        const st = await ha.status<HaStatus>();
        t.comment(`HA drops after netem: ${JSON.stringify(st.drops)}`);
        for (const node of ['mn', 'router'] as const) {
          await lab.exec(node, 'tc', ['qdisc', 'del', 'dev', 'lte', 'root'], { check: false });
        }
      },
    );

    // Where the kernel has no sch_netem, iptables' statistic match still gives random loss on
    // the router's forwarding path (both directions of the MN's LTE link); reordering and
    // duplication are then covered by the simulations (FakeNetwork jitter and duplicate).
    const lossRule = (op: '-I' | '-D', dir: '-i' | '-o'): string[] => [
      '-w',
      op,
      'FORWARD',
      dir,
      'lte',
      '-p',
      'udp',
      '-m',
      'statistic',
      '--mode',
      'random',
      '--probability',
      '0.03',
      '-j',
      'DROP',
    ];
    const ipt = (args: string[]) => lab.exec('router', 'iptables', args, { check: false });
    let lossSkip: string | false = netemSkip === false ? 'netem ran above' : false;
    if (lossSkip === false) {
      const added = await ipt(lossRule('-I', '-i'));
      if (added.code !== 0) lossSkip = `iptables statistic unavailable: ${added.stderr.trim()}`;
      else await ipt(lossRule('-D', '-i'));
    }
    await t.test(
      'TCP through the tunnel survives 3% random underlay loss (iptables statistic)',
      { skip: lossSkip },
      async (t) => {
        await ipt(lossRule('-I', '-i'));
        await ipt(lossRule('-I', '-o'));
        t.teardown(async () => {
          await ipt(lossRule('-D', '-i'));
          await ipt(lossRule('-D', '-o'));
        });
        const pair = await startTrafficPair({
          serverSpawn: netnsSpawn(lab.ns('server')),
          clientSpawn: netnsSpawn(lab.ns('mn')),
          listen: LAB_ADDR.server.v6,
          rate: 250_000,
          durationS: 6,
        });
        t.teardown(() => pair.kill());
        // The client ends its stream after durationS; only then is the server told to stop.
        const client = await pair.client.final(60_000);
        const server = await pair.server.stop(60_000);
        for (const [name, r] of [
          ['server -> MN', client],
          ['MN -> server', server],
        ] as const) {
          t.comment(`${name} with 3% loss: ${r.verified} bytes verified, max gap ${r.maxGapMs} ms`);
          t.ok(r.ok, `${name}: the stream is intact`);
          t.equal(r.mismatches, 0, `${name}: no corrupted byte`);
          t.ok(r.verified > 250_000, `${name}: data flowed`);
        }
        const counters = await lab.exec('router', 'iptables', [
          '-w',
          '-L',
          'FORWARD',
          '-v',
          '-n',
          '-x',
        ]);
        const dropped = [
          ...counters.stdout.matchAll(/^\s*(\d+)\s+\d+\s+DROP\s+(?:udp|17)\b.*statistic/gm),
        ]
          .map((m) => Number(m[1]))
          .reduce((a, b) => a + b, 0);
        t.comment(
          counters.stdout
            .split('\n')
            .filter((l) => l.includes('statistic'))
            .join('\n'),
        );
        t.ok(dropped > 0, `the underlay really lost packets (${dropped} UDP datagrams dropped)`);
      },
    );

    await t.test(
      'kill -9 of the home agent: the MN re-registers with the restarted one',
      async (t) => {
        // The MN is in use: a ping to the home-link server runs across the restart (an idle MN
        // learns of it at its next refresh BU: nothing rekeys an idle channel, issue 17).
        const pinger = lab.spawn('mn', 'ping', [
          '-6',
          '-i',
          '0.2',
          '-c',
          '300',
          '-W',
          '1',
          LAB_ADDR.server.v6,
        ]);
        t.teardown(() => {
          pinger.kill('SIGKILL');
        });
        const from = mn.lines.length;
        ha.child.kill('SIGKILL');
        await waitFor('HA exit', () => ha.exited !== undefined, 10_000);
        ha = session.start('ha', 'ha', haConfig, haSock);
        await ha.waitLog((l) => l.event === 'started', 20_000);
        const restarted = Date.now();
        let took = -1;
        try {
          took = await waitFor(
            'the MN binding at the restarted HA',
            async () => (await ha.status<HaStatus>()).bindings.some((b) => b.homeAddress === HOA),
            45_000,
          );
        } finally {
          const events = mn.lines
            .slice(from)
            .map(
              (l) =>
                `${String(l['time'] ?? '').slice(11)} ${l.event ?? ''} ${String(l['reason'] ?? '')}`,
            );
          t.comment(
            `HA restarted at ${new Date(restarted).toISOString().slice(11)}; MN events: ${events.join(' | ')}`,
          );
        }
        t.comment(`re-registration ${took} ms after the restarted HA was up`);
        t.ok(took < 15_000, `MN re-registered ${took} ms after the HA restart`);
        await waitFor(
          'ping6 through the tunnel',
          async () => /[1-3] received/.test(await ping(lab)),
          20_000,
        );
        t.comment(`ping6 works again ${Date.now() - restarted} ms after the restart`);
      },
    );

    await mn.stop().catch(() => undefined);
    await ha.stop().catch(() => undefined);
  },
);
