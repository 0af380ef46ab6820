/**
 * Movement in the netns lab (real daemons, real TUN, iptables NAT), one TCP session from the MN
 * to the plain server on the home link kept through everything, every byte verified:
 *   LTE (IPv4) -> hotel (IPv4 behind NAT44) -> NAT rebinding (conntrack flushed) -> IPv6-only
 *   -> home (the MN recognises its home link, deregisters, its HoA moves onto the link; the HA
 *   withdraws proxy ND and the host route) -> LTE again (HoA back on the TUN, HA proxies again)
 *   -> suspend/resume (MN frozen with SIGSTOP longer than its 8 s binding lifetime, SIGCONT).
 * Each step also checks what the HA says (`mip6 status`) and how long after the link came up the
 * HA learned the new locator.
 */
import t from 'tap';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HaStatus, MemberStatus } from '../../src/io/control-protocol.js';
import { waitFor } from '../helpers/wait.js';
import { LAB_ADDR, labUnavailableReason } from './lab.js';
import { LabSession } from './mip6-lab.js';
import {
  netnsSpawn,
  spawnTrafficClient,
  spawnTrafficServer,
  type TrafficProcess,
} from './traffic-client.js';

const HOA = LAB_ADDR.mn.homeAddress;
const LIFETIME_S = 8;
const skip: string | false =
  labUnavailableReason() ?? (existsSync('/dev/net/tun') ? false : 'needs /dev/net/tun');

void t.test('movement, NAT, home and sleep in the lab', { skip, timeout: 150_000 }, async (t) => {
  const session = await LabSession.open(t, 'movement');
  const { lab, prov } = session;
  const haStarted = await session.homeAgent({ extra: 'max_lifetime = 600\nnat_keepalive = 3' });
  const { files: haFiles, daemon: ha } = haStarted;
  // A short lifetime and fast reachability probing.
  const mn = (
    await session.mobileNode({
      name: 'roamer',
      lifetime: LIFETIME_S,
      extra: '[movement]\nprobe_interval = 1\nprobe_timeout = 0.5\nprobe_attempts = 3\n',
      args: ['--log-level', 'debug'],
    })
  ).daemon;

  /** Addresses in the HA's ND proxy set (the HoA and, with the L flag, its link-local). */
  const defended = async (): Promise<number> =>
    (await ha.status<HaStatus>()).homeLink?.ndproxy?.['addresses'] ?? -1;
  const locator = async (): Promise<string | undefined> => {
    const st = await ha.status<HaStatus>();
    return st.bindings.find((b) => b.homeAddress === HOA)?.locator;
  };
  const server = spawnTrafficServer(netnsSpawn(lab.ns('server')), { listen: '::', rate: 300_000 });
  const { port } = await server.ready();
  const client = spawnTrafficClient(netnsSpawn(lab.ns('mn')), {
    connect: LAB_ADDR.server.v6,
    port,
    rate: 300_000,
    durationS: 140,
  });
  t.teardown(() => {
    server.kill();
    client.kill();
  });
  await client.ready();
  /** Both directions moved another 15 kB (bounded wait). */
  const flowing = async (ms = 15_000): Promise<void> => {
    const base = await Promise.all([client.report(), server.report()]);
    const procs: TrafficProcess[] = [client, server];
    await waitFor(
      'data flowing both ways',
      async () => {
        const now = await Promise.all(procs.map((p) => p.report()));
        return now.every((r, i) => r.bytesReceived > base[i]!.bytesReceived + 15_000);
      },
      ms,
    );
  };
  const mark = (label: string): Promise<unknown> =>
    Promise.all([client.mark(label), server.mark(label)]);

  await t.test('DHAAD and mobile prefix discovery inside the channel', async (t) => {
    const agents = await mn.waitLog((l) => l.event === 'home-agents', 5000);
    t.equal(agents['list'], LAB_ADDR.ha.home, 'DHAAD Reply lists the HA');
    const prefix = await mn.waitLog((l) => l.event === 'home-prefix', 5000);
    t.match(String(prefix['prefixes']), LAB_ADDR.ha.homePrefix, 'MPA carries the home prefix');
  });

  await t.test('moves: the HA learns each new locator right after the link is up', async (t) => {
    const expected = {
      hotel: `${LAB_ADDR.natPublic}:`,
      v6only: `[${LAB_ADDR.mn.v6only}]:`,
    } as const;
    for (const network of ['hotel', 'v6only'] as const) {
      await mark(network);
      await lab.move(network);
      const took = await waitFor(
        `binding on ${network}`,
        async () => (await locator())?.startsWith(expected[network]) ?? false,
      );
      t.ok(took < 500, `${network}: HA has the new locator ${took} ms after the link came up`);
      await flowing();
      if (network === 'hotel') {
        // NAT keepalive at the HA's refresh time (3 s here): refresh BUs keep coming.
        const from = mn.lines.length;
        await t.resolves(
          mn.waitLog((l) => l.event === 'bu' && l['reason'] === 'natKeepalive', 8000, from),
          'NAT keepalive BU at the negotiated refresh time',
        );

        // NAT rebinding: from now on the router maps the hotel's UDP to ports 40000-40999
        // only, and it forgets every mapping: the MN's next packet leaves from a new port.
        await mark('rebinding');
        const before = await locator();
        await lab.exec('router', 'iptables', [
          '-w',
          '-t',
          'nat',
          '-I',
          'POSTROUTING',
          '1',
          '-s',
          '192.0.2.0/24',
          '-p',
          'udp',
          '-j',
          'MASQUERADE',
          '--to-ports',
          '40000-40999',
        ]);
        const flushed = Date.now();
        await lab.flushConntrack();
        const learned = await waitFor('HA follows the new mapping', async () => {
          const port = Number((await locator())?.split(':').pop());
          return port >= 40000 && port <= 40999;
        });
        t.comment(`HA locator ${before} -> ${await locator()}`);
        t.ok(
          learned < 1000,
          `HA follows the new public port ${Date.now() - flushed} ms after the flush`,
        );
        await flowing();
        const after = await locator();
        t.ok(after?.startsWith(`${LAB_ADDR.natPublic}:`), 'still through the NAT');
      }
    }
  });

  await t.test('home: deregistration, HoA on the home link, proxy ND withdrawn', async (t) => {
    await mark('home');
    const from = mn.lines.length;
    await lab.move('home');
    const up = Date.now();
    await mn.waitLog((l) => l.event === 'home', 5000, from);
    await mn.waitLog((l) => l.event === 'deregistered', 5000, from);
    const took = await waitFor('binding removed', async () => (await locator()) === undefined);
    t.comment(`binding removed ${Date.now() - up} ms after the home link came up (${took})`);
    const addrs = await lab.exec('mn', 'ip', ['-6', '-o', 'addr', 'show']);
    t.match(addrs.stdout, new RegExp(`home\\s+inet6 ${HOA}/64`), 'HoA on the home link');
    t.notMatch(addrs.stdout, new RegExp(`mip6mn\\s+inet6 ${HOA}/`), 'HoA off the TUN');
    await waitFor('defence withdrawn', async () => (await defended()) === 0);
    await flowing();
    t.pass('the TCP session continues on the home link');
  });

  await t.test('leaving home: HoA back on the TUN, registered, proxied again', async (t) => {
    await mark('away');
    const from = mn.lines.length;
    await lab.move('lte');
    const took = await waitFor(
      'binding on lte',
      async () => (await locator())?.startsWith(`${LAB_ADDR.mn.lte}:`) ?? false,
    );
    t.ok(took < 1000, `HA has the LTE locator ${took} ms after the link came up`);
    await mn.waitLog((l) => l.event === 'left-home', 1000, from);
    const addrs = await lab.exec('mn', 'ip', ['-6', '-o', 'addr', 'show', 'dev', 'mip6mn']);
    t.match(addrs.stdout, HOA, 'HoA back on the TUN');
    t.ok((await defended()) > 0, 'HA defends the HoA again (in its ND proxy set)');
    await flowing();
  });

  await t.test('home again and away again: the deregistration BA still arrives', async (t) => {
    let from = mn.lines.length;
    await lab.move('home');
    const dereg = await mn.waitLog((l) => l.event === 'deregistered', 5000, from);
    t.equal(dereg['gaveUp'], false, 'BA received (no give-up after retransmissions)');
    await flowing();
    from = mn.lines.length;
    await lab.move('lte');
    await mn.waitLog((l) => l.event === 'registered', 5000, from);
    await flowing();
  });

  await t.test('suspend/resume: frozen beyond the lifetime, re-registers', async (t) => {
    await mark('suspend');
    const pid = mn.child.pid!;
    const from = mn.lines.length;
    process.kill(pid, 'SIGSTOP');
    try {
      await waitFor(
        'binding expired at the HA',
        async () => (await locator()) === undefined,
        15_000,
      );
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const resumed = Date.now();
    await mn.waitLog((l) => l.event === 'registered', 5000, from);
    t.ok(Date.now() - resumed < 2000, `re-registered ${Date.now() - resumed} ms after SIGCONT`);
    t.ok(
      mn.lines.slice(from).some((l) => l.event === 'resume' || l.event === 'binding-expired'),
      'noticed the freeze',
    );
    await flowing(30_000);
  });

  await t.test('every byte arrived, none corrupted', async (t) => {
    const [c, s] = await Promise.all([client.stop(), server.stop()]);
    t.equal(c.mismatches, 0, 'server -> MN: no byte corrupted');
    t.equal(s.mismatches, 0, 'MN -> server: no byte corrupted');
    t.equal(c.bytesReceived, s.bytesSent, 'every byte the server sent arrived');
    t.equal(s.bytesReceived, c.bytesSent, 'every byte the MN sent arrived');
    for (const g of c.gapsAfterMarks) t.comment(`${g.label}: server->MN gap ${g.gapMs} ms`);
    for (const g of s.gapsAfterMarks) t.comment(`${g.label}: MN->server gap ${g.gapMs} ms`);
    await mn.stop();
  });

  await t.test(
    'HA renumbered: a member naming it by DNS re-resolves and re-registers',
    async (t) => {
      // `ip netns exec` shows /etc/netns/NS/hosts as /etc/hosts inside NS: the lab's DNS.
      const etc = `/etc/netns/${lab.ns('cn')}`;
      mkdirSync(etc, { recursive: true });
      t.teardown(() => rmSync(etc, { recursive: true, force: true }));
      const hosts = join(etc, 'hosts');
      writeFileSync(hosts, `${LAB_ADDR.ha.v4} ha.mip6.test\n`);
      const hoa = '2001:db8:100::40';
      const files = await prov.member('wanderer', 'mn', [hoa]);
      const cfg = prov.write(
        'wanderer.toml',
        `control_socket = "${join(prov.dir, 'wanderer.sock')}"
[identity]
private_key = "${files.key}"
certificate = "${files.cert}"
authority = "${prov.authorityPub}"
[tun]
name = "mip6wa"
[home]
address = "${hoa}"
agent = "ha.mip6.test"
agent_address = "${LAB_ADDR.ha.home}"
agent_public_key = "${haFiles.pub}"
[movement]
probe_interval = 0.5
probe_timeout = 0.3
probe_attempts = 2
`,
      );
      const w = session.start('cn', 'mn', cfg, join(prov.dir, 'wanderer.sock'));
      await w.waitLog((l) => l.event === 'registered');
      // Keep a little traffic going so that silence is noticed.
      lab.spawn('cn', 'ping', [
        '-6',
        '-n',
        '-q',
        '-i',
        '0.2',
        '-c',
        '100',
        '-I',
        hoa,
        LAB_ADDR.server.v6,
      ]);
      const NEW_HA4 = '198.51.100.2';
      const from = w.lines.length;
      await lab.exec('ha', 'sysctl', ['-q', '-w', 'net.ipv4.conf.uplink.promote_secondaries=1']);
      await lab.exec('ha', 'ip', ['addr', 'add', `${NEW_HA4}/24`, 'dev', 'uplink']);
      writeFileSync(hosts, `${NEW_HA4} ha.mip6.test\n`);
      const renumbered = Date.now();
      await lab.exec('ha', 'ip', ['addr', 'del', `${LAB_ADDR.ha.v4}/24`, 'dev', 'uplink']);
      await w.waitLog((l) => l.event === 'agent-resolved' && l['agent4'] === NEW_HA4, 15_000, from);
      await w.waitLog((l) => l.event === 'registered', 10_000, from);
      t.pass(
        `registered with the HA at ${NEW_HA4} ${Date.now() - renumbered} ms after the renumbering`,
      );
      const st = await w.status<MemberStatus>();
      t.equal(st.homeAgent, `${NEW_HA4}:4191`, 'status names the new HA address');
      const ping = await lab.exec('cn', 'ping', [
        '-6',
        '-c',
        '2',
        '-W',
        '2',
        '-I',
        hoa,
        LAB_ADDR.server.v6,
      ]);
      t.match(ping.stdout, /2 received/, 'home address reachable again');
      await w.stop();
    },
  );
});
