/**
 * Returning home against an evil twin, with the real daemons (issue #13). The mobile node is
 * registered over LTE; then its Wi-Fi comes up on a link where an evil twin (a namespace with no
 * mip6 key, test/lab/fixtures/evil-twin.py) pretends to be the home link:
 *   1. it answers the MN's Neighbor Solicitations for the HA's home address (scapy, hop limit
 *      255): the link looks like a home link holding only a link-local address;
 *   2. then it sends Router Advertisements for the home prefix: the MN gets an address of the
 *      home prefix on that link by SLAAC (and an on-link route for the home prefix there);
 *   3. the MN restarts with that route in place, older than its TUN's (only the pinned route
 *      keeps the home prefix in the tunnel);
 * and all along it relays what the MN sends on that link (the returning-home BU) over the
 * internet to the HA, and the HA's answers back, like a NAT.
 * Asserted: the HA refuses every relayed returning-home BU (BA 129, counted 'home-not-on-link'),
 * the MN never goes home (its home address stays on the TUN, never on the Wi-Fi), it stays
 * registered over LTE with the same binding at the HA (locator, proxy ND entry), the tunnel
 * carries traffic to the home link's server, and a capture on the Wi-Fi link shows nothing of
 * the MN's in clear: only Neighbor Discovery / MLD and sealed channel datagrams.
 */
import t from 'tap';
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HaStatus, MemberStatus } from '../../src/io/control-protocol.js';
import { createLab, LAB_ADDR, labUnavailableReason, type Lab } from './lab.js';
import { haToml, mnToml, Provisioned, startDaemon, type Daemon } from './mip6-lab.js';

const HOA = LAB_ADDR.mn.homeAddress;
const PYTHON = '/usr/bin/python3';
const EVIL = fileURLToPath(new URL('./fixtures/evil-twin.py', import.meta.url));
/** The evil twin's own uplink to the lab router (documentation prefix). */
const EVIL_NET = { router: '2001:db8:66::1', evil: '2001:db8:66::6' };

function reason(): string | false {
  const lab = labUnavailableReason();
  if (lab !== undefined) return lab;
  if (!existsSync('/dev/net/tun')) return 'needs /dev/net/tun';
  if (spawnSync(PYTHON, ['-c', 'import scapy'], { stdio: 'ignore' }).status !== 0)
    return `${PYTHON} lacks scapy (install python3-scapy)`;
  if (spawnSync('sh', ['-c', 'command -v dumpcap tshark'], { stdio: 'ignore' }).status !== 0)
    return 'needs tshark (dumpcap) for the capture';
  return false;
}
const skip = reason();

async function until(what: string, check: () => Promise<boolean>, ms: number): Promise<number> {
  const start = Date.now();
  for (;;) {
    try {
      if (await check()) return Date.now() - start;
    } catch {
      // not yet (a control socket between answers)
    }
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Lines of JSON a child prints, collected; wait() resolves on the first one matching. */
class JsonLines {
  readonly lines: Record<string, unknown>[] = [];
  readonly #waiters = new Set<() => void>();
  constructor(child: ChildProcess) {
    let buf = '';
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      const parts = buf.split('\n');
      buf = parts.pop() ?? '';
      for (const p of parts) {
        try {
          this.lines.push(JSON.parse(p) as Record<string, unknown>);
        } catch {
          // not ours
        }
      }
      for (const w of this.#waiters) w();
    });
  }
  wait(match: (l: Record<string, unknown>) => boolean, ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (this.lines.some(match)) {
          clearTimeout(timer);
          this.#waiters.delete(check);
          resolve();
        }
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`evil twin: timed out; saw ${JSON.stringify(this.lines)}`));
      }, ms);
      this.#waiters.add(check);
      check();
    });
  }
}

/** The evil twin's namespace: unique per lab, deleted in teardown and on exit. */
function evilNamespace(t: { teardown(fn: () => unknown): void }, lab: Lab): string {
  const ns = `${lab.tag}-evil`;
  execFileSync('ip', ['netns', 'add', ns]);
  const remove = (): void => {
    for (const pid of spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' })
      .stdout.split(/\s+/)
      .filter((p) => p !== '')) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone already
      }
    }
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  };
  process.once('exit', remove);
  t.teardown(() => {
    remove();
    process.removeListener('exit', remove);
  });
  return ns;
}
function ip(ns: string, line: string): void {
  execFileSync('ip', ['-n', ns, ...line.split(' ')], { stdio: 'pipe' });
}

function sysctl(ns: string, ...settings: string[]): void {
  execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', ...settings], { stdio: 'pipe' });
}

void t.test(
  'an evil twin cannot make the MN return home and send in clear',
  { skip, timeout: 150_000 },
  async (t) => {
    const prov = await Provisioned.create();
    const lab = await createLab({ network: 'lte' }).catch((err: unknown) => {
      prov.remove();
      throw err;
    });
    t.teardown(async () => {
      await lab.destroy();
      prov.remove();
    });
    const mnNs = lab.ns('mn');
    const evil = evilNamespace(t, lab);
    sysctl(evil, 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0');
    ip(evil, 'link set lo up');
    // The Wi-Fi link: the MN's "wlan" (down until the MN is registered) and the twin's.
    ip(mnNs, `link add wlan type veth peer name wlan netns ${evil}`);
    // Like a laptop on hotel Wi-Fi, the MN takes Router Advertisements there.
    sysctl(mnNs, 'net.ipv6.conf.wlan.accept_ra=2', 'net.ipv6.conf.wlan.autoconf=1');
    // The twin's own way to the internet: a link to the lab router.
    ip(evil, `link add evup type veth peer name evil netns ${lab.ns('router')}`);
    ip(lab.ns('router'), `addr add ${EVIL_NET.router}/64 dev evil nodad`);
    ip(lab.ns('router'), 'link set evil up');
    ip(evil, `addr add ${EVIL_NET.evil}/64 dev evup nodad`);
    ip(evil, 'link set evup up');
    ip(evil, `route add ::/0 via ${EVIL_NET.router}`);
    ip(evil, 'link set wlan up');
    const mnMac = (
      JSON.parse(
        execFileSync('ip', ['-n', mnNs, '-j', 'link', 'show', 'wlan'], { encoding: 'utf8' }),
      ) as {
        address: string;
      }[]
    )[0]!.address;

    // Everything on the Wi-Fi link, as the twin sees it.
    const pcap = join(prov.dir, 'wlan.pcapng');
    const capture = spawn(
      'ip',
      ['netns', 'exec', evil, 'dumpcap', '-q', '-i', 'wlan', '-w', pcap],
      {
        stdio: 'ignore',
      },
    );
    t.teardown(() => {
      capture.kill('SIGKILL');
    });
    const twinProc = spawn(
      'ip',
      [
        'netns',
        'exec',
        evil,
        PYTHON,
        EVIL,
        'wlan',
        'evup',
        LAB_ADDR.ha.home,
        LAB_ADDR.ha.homePrefix,
        LAB_ADDR.ha.v6,
        '4191',
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    t.teardown(() => {
      twinProc.kill('SIGKILL');
    });
    const twin = new JsonLines(twinProc);
    await twin.wait((l) => l['ready'] === true, 20_000);
    await until('capture running', () => Promise.resolve(existsSync(pcap)), 10_000);

    const haFiles = await prov.member('ha', 'ha', [LAB_ADDR.ha.homePrefix]);
    const mnFiles = await prov.member('laptop', 'mn', [HOA]);
    const ha: Daemon = startDaemon(
      lab,
      'ha',
      'ha',
      haToml(prov, haFiles),
      join(prov.dir, 'ha.sock'),
    );
    await ha.waitLog((l) => l.event === 'started');
    const mnConfig = mnToml(prov, 'laptop', mnFiles, haFiles);
    const startMn = (): Daemon =>
      startDaemon(lab, 'mn', 'mn', mnConfig, join(prov.dir, 'laptop.sock'));
    let mn = startMn();
    await mn.waitLog((l) => l.event === 'registered');
    const binding = async (): Promise<HaStatus['bindings'][number] | undefined> =>
      (await ha.status<HaStatus>()).bindings.find((b) => b.homeAddress === HOA);
    let before = await binding();
    t.match(before?.locator, new RegExp(`^${LAB_ADDR.mn.lte}:`), 'registered over LTE');
    const hoaOn = async (dev: string): Promise<boolean> =>
      (await lab.exec('mn', 'ip', ['-6', '-o', 'addr', 'show', 'dev', dev])).stdout.includes(
        `${HOA}/`,
      );

    await t.test('1. the twin answers for the HA home address: refused', async (t) => {
      ip(mnNs, 'link set wlan up');
      await twin.wait((l) => typeof l['na'] === 'number', 15_000);
      t.pass('the twin answered our Neighbor Solicitation (hop limit 255)');
      const cand = await mn.waitLog((l) => l.event === 'home-candidate', 15_000);
      t.equal(cand['link'], 'wlan', 'the Wi-Fi link became a home-link candidate');
      await twin.wait((l) => typeof l['up'] === 'number', 10_000);
      t.pass('the twin relayed the returning-home BU to the HA over the internet');
      const refused = await mn.waitLog((l) => l.event === 'home-refused', 10_000);
      t.match(refused, { link: 'wlan', status: 129 }, 'the HA answered BA 129 (relayed back)');
      const rejected = await ha.waitLog(
        (l) =>
          l.event === 'bu-rejected' &&
          String(l['reason']).includes('not received on the home link'),
        5000,
      );
      t.equal(rejected['status'], 129);
      t.ok(((await ha.status<HaStatus>()).drops ?? {})['home-not-on-link']! >= 1, 'counted');
    });

    await t.test('2. a rogue RA for the home prefix: refused again', async (t) => {
      twinProc.stdin?.write('ra\n');
      await twin.wait((l) => typeof l['ra'] === 'number', 10_000);
      await until(
        'an address of the home prefix on wlan (SLAAC)',
        async () =>
          (
            await lab.exec('mn', 'ip', [
              '-6',
              '-o',
              'addr',
              'show',
              'dev',
              'wlan',
              'scope',
              'global',
            ])
          ).stdout.includes('2001:db8:100:'),
        10_000,
      );
      t.pass('the MN took an address of the home prefix from the rogue RA');
      // The link rests 10 s after the first refusal, then it is asked again.
      const from = mn.lines.length;
      const refused = await mn.waitLog((l) => l.event === 'home-refused', 25_000, from);
      t.match(refused, { link: 'wlan', status: 129, retryInS: 20 });
      const now = await binding();
      t.equal(now?.locator, before?.locator, 'binding at the HA: same locator');
    });

    await t.test('3. the MN restarts with the rogue route in place', async (t) => {
      // The Wi-Fi's on-link route for the home prefix is now older than the TUN's: only the
      // pinned route (metric 128) keeps the home prefix in the tunnel.
      t.equal((await mn.stop()).code, 0, 'stopped');
      mn = startMn();
      await mn.waitLog((l) => l.event === 'registered', 20_000);
      const refused = await mn.waitLog((l) => l.event === 'home-refused', 10_000);
      t.match(refused, { link: 'wlan', status: 129 }, 'the Wi-Fi is asked about and refused again');
      const routes = await lab.exec('mn', 'ip', [
        '-6',
        '-o',
        'route',
        'show',
        LAB_ADDR.ha.homePrefix,
      ]);
      t.match(routes.stdout, / dev wlan /, `the rogue route is there: ${routes.stdout.trim()}`);
      await until(
        'registered again',
        async () => (await mn.status<MemberStatus>()).state === 'registered',
        10_000,
      );
      before = await binding();
    });

    await t.test('the MN stayed away: HoA on the TUN, registered over LTE', async (t) => {
      t.notOk(
        mn.lines.some((l) => l.event === 'home'),
        'never went home',
      );
      t.ok(await hoaOn('mip6mn'), 'HoA on the TUN');
      t.notOk(await hoaOn('wlan'), 'HoA never on the Wi-Fi');
      const st = await mn.status<MemberStatus>();
      t.equal(st.state, 'registered');
      t.match(st.bindingUpdateList[0], {
        state: 'registered',
        careOfAddress: `::ffff:${LAB_ADDR.mn.lte}`,
      });
      const after = await binding();
      t.equal(after?.locator, before?.locator, 'binding at the HA: same locator');
      t.equal(after?.careOfAddress, before?.careOfAddress, 'binding at the HA: same care-of');
      const defence = (await ha.status<HaStatus>()).homeLink;
      t.equal(defence?.defence, 'ndproxy', 'the HA defends home addresses with its ND proxy');
      t.ok(
        (defence?.ndproxy?.['addresses'] ?? 0) >= 1,
        'and still defends the HoA on the home link (its only member)',
      );
      const route = await lab.exec('mn', 'ip', ['-6', '-o', 'route', 'get', LAB_ADDR.server.v6]);
      t.match(
        route.stdout,
        / dev mip6mn /,
        `the home prefix still goes into the TUN: ${route.stdout.trim()}`,
      );
      // The HA's home address is the one the twin claims on the Wi-Fi link: pings to it and to
      // the home link's server must go through the tunnel, never to the twin in clear.
      for (const dst of [LAB_ADDR.ha.home, LAB_ADDR.server.v6]) {
        const ping = await lab.exec(
          'mn',
          'ping',
          ['-6', '-n', '-c', '3', '-i', '0.2', '-W', '2', dst],
          { check: false },
        );
        t.equal(ping.code, 0, `${dst} answers through the tunnel`);
      }
    });

    await t.test('nothing of the MN in clear on the Wi-Fi link', async (t) => {
      await new Promise((r) => setTimeout(r, 500));
      capture.kill('SIGTERM');
      await new Promise((r) => capture.once('exit', r));
      const fields = execFileSync(
        'tshark',
        [
          '-r',
          pcap,
          '-T',
          'fields',
          '-E',
          'separator=|',
          '-e',
          'eth.src',
          '-e',
          'ipv6.src',
          '-e',
          'ipv6.dst',
          '-e',
          'ipv6.nxt',
          '-e',
          'icmpv6.type',
          '-e',
          'udp.dstport',
          '-e',
          'data.data',
          '-e',
          'eth.type',
        ],
        { encoding: 'utf8' },
      );
      const frames = fields
        .trim()
        .split('\n')
        .filter((l) => l.startsWith(mnMac));
      t.ok(frames.length > 0, `${frames.length} frames from the MN on the Wi-Fi link`);
      const nd = new Set(['133', '135', '136', '143']); // RS, NS, NA, MLDv2 report
      let channel = 0;
      const clear: string[] = [];
      for (const f of frames) {
        const [, src = '', dst = '', , icmp = '', dport = '', data = '', ethType = ''] =
          f.split('|');
        if (ethType !== '0x86dd') clear.push(f);
        else if (src === HOA || dst === HOA) clear.push(f);
        else if (icmp !== '' && nd.has(icmp.split(',')[0]!)) continue;
        // A sealed channel data message: type 4, receiver SPI, counter, ciphertext + tag.
        else if (dport === '4191' && data.startsWith('04')) channel++;
        else clear.push(f);
      }
      t.ok(channel >= 2, `${channel} sealed channel datagrams (the returning-home BUs)`);
      t.same(clear, [], 'nothing else: no inner packet, no HoA traffic in clear');
    });

    await t.test('clean exit', async (t) => {
      twinProc.stdin?.write('quit\n');
      t.equal((await mn.stop()).code, 0);
      t.equal((await ha.stop()).code, 0);
      rmSync(pcap, { force: true });
    });
  },
);
