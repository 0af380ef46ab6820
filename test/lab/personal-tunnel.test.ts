/**
 * The personal tunnel with the real daemons in the netns lab (issue #15): the mobile node
 * routes everything into the tunnel ([tun] routes = ["::/0", "0.0.0.0/0"]) and holds an IPv4
 * home address from the home agent's pool ([home] ipv4_address = "auto"; the HA masquerades
 * the pool out of its uplink). Servers beyond the home agent (the lab's CN namespace, no mip6
 * there) see an IPv4 connection from the HA's address (it came out of the tunnel and the HA's
 * NAT) and an IPv6 one from the home address. Both TCP streams survive LTE -> hotel (NAT44) ->
 * IPv6-only -> LTE with every byte verified; the hotel lets UDP 443 out but not 4191, so the
 * MN moves on to the HA's second port there ([listen] ports = [4191, 443], [home] agent_port =
 * [4191, 443]) and keeps 4191 elsewhere; the IPv4 home address stays the same throughout; a
 * capture of the MN's access links shows nothing but the tunnel's datagrams;
 * the policy rules exist while the MN runs and are gone after it exits, the HA's NAT rule
 * likewise.
 */
import t from 'tap';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { HaStatus, MemberStatus } from '../../src/io/control-protocol.js';
import { LAB_ADDR, labUnavailableReason, type LabNode } from './lab.js';
import { LabSession, mnToml } from './mip6-lab.js';

function reason(): string | false {
  const lab = labUnavailableReason();
  if (lab !== undefined) return lab;
  if (
    spawnSync('sh', ['-c', 'command -v dumpcap && command -v tshark'], { stdio: 'ignore' })
      .status !== 0
  )
    return 'needs dumpcap and tshark for the capture of the access links';
  if (spawnSync('sh', ['-c', 'command -v nft'], { stdio: 'ignore' }).status !== 0)
    return 'needs nft (nftables) for the kill switch';
  return false;
}
const skip = reason();
const ECHO = fileURLToPath(new URL('./fixtures/echo-stream.mjs', import.meta.url));
const HOA = LAB_ADDR.mn.homeAddress;
const WEB4 = LAB_ADDR.cn.v4; // an IPv4 server beyond the HA
const WEB6 = LAB_ADDR.cn.v6; // an IPv6 server beyond the HA
const MARK = 4191;

/** A fixture's JSON lines, with a bounded wait for one that matches. */
class Lines {
  readonly lines: Record<string, unknown>[] = [];
  readonly child: ChildProcess;
  constructor(child: ChildProcess) {
    this.child = child;
    let buf = '';
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      const parts = buf.split('\n');
      buf = parts.pop() ?? '';
      for (const p of parts) {
        try {
          this.lines.push(JSON.parse(p) as Record<string, unknown>);
        } catch {
          // not JSON
        }
      }
    });
  }
  async wait(what: string, match: (l: Record<string, unknown>) => boolean, ms = 20_000) {
    const end = Date.now() + ms;
    for (;;) {
      const found = this.lines.find(match);
      if (found !== undefined) return found;
      if (Date.now() > end || this.child.exitCode !== null) {
        throw new Error(`${what}: not seen; last ${JSON.stringify(this.lines.slice(-3))}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  get received(): number {
    for (let i = this.lines.length - 1; i >= 0; i--) {
      const r = this.lines[i]!['received'];
      if (typeof r === 'number') return r;
    }
    return 0;
  }
}

void t.test(
  'full tunnel: IPv4 and IPv6 beyond the HA, kept across LTE, hotel, IPv6-only',
  { skip, timeout: 240_000 },
  async (t) => {
    const s = await LabSession.open(t, 'personal-tunnel');
    const lab = s.lab;
    const ip = async (node: LabNode, args: string[]): Promise<string> =>
      (await lab.exec(node, 'ip', args)).stdout;
    await s.homeAgent({
      extra:
        'ipv4_pool = "10.99.0.0/24"\nipv4_masquerade = "uplink"\n\n[listen]\nports = [4191, 443]\n',
    });
    // The hotel lets UDP 443 out, not 4191 (the HA also listens on 443: a kernel redirect).
    await lab.exec('router', 'iptables', [
      '-w',
      '5',
      '-I',
      'FORWARD',
      '-i',
      'hotel',
      '-p',
      'udp',
      '--dport',
      '4191',
      '-j',
      'DROP',
    ]);
    t.match(
      (await lab.exec('ha', 'iptables', ['-w', '5', '-t', 'nat', '-S', 'PREROUTING'])).stdout,
      /--dport 443 .*mip6 listen 443.* REDIRECT --to-ports 4191/,
      'the HA redirects 443 to its socket',
    );
    const nat = async (): Promise<string> =>
      (await lab.exec('ha', 'iptables', ['-w', '5', '-t', 'nat', '-S', 'POSTROUTING'])).stdout;
    t.match(await nat(), /-s 10\.99\.0\.0\/24 -o uplink .*mip6 mip6ha ipv4 home.* MASQUERADE/);

    const files = await s.prov.member('laptop', 'mn', [HOA]);
    const base = mnToml(s.prov, 'laptop', files, s.ha.files, {
      extraHome: 'ipv4_address = "auto"\nagent_port = [4191, 443]',
    });
    const text = readFileSync(base, 'utf8').replace(
      'name = "mip6mn"',
      'name = "mip6mn"\nroutes = ["::/0", "0.0.0.0/0"]\n' +
        'dns = ["10.99.0.1", "2001:db8:100::1"]\nblock_outside = true',
    );
    writeFileSync(base, text);
    // The MN namespace's own resolver file: `ip netns exec` mounts /etc/netns/NS/resolv.conf
    // over /etc/resolv.conf for the daemon, which rewrites it in place (the host's file is
    // never touched: checked before the daemon starts).
    const etcNetns = `/etc/netns/${lab.ns('mn')}`;
    mkdirSync(etcNetns, { recursive: true });
    t.teardown(() => rmSync(etcNetns, { recursive: true, force: true }));
    const resolv = join(etcNetns, 'resolv.conf');
    writeFileSync(resolv, 'nameserver 192.0.2.1\n');
    t.equal(
      (await lab.exec('mn', 'cat', ['/etc/resolv.conf'])).stdout,
      'nameserver 192.0.2.1\n',
      "the daemon's /etc/resolv.conf is the namespace's own",
    );
    const gatewayPing = async (): Promise<number> =>
      (await lab.exec('mn', 'ping', ['-c', '1', '-W', '1', '203.0.113.1'], { check: false }))
        .code ?? -1;
    t.equal(await gatewayPing(), 0, 'before: the LTE gateway answers (it is on-link)');
    lab.routeMark = MARK; // lab.move() checks the route of the daemon's marked packets
    const mn = s.start('mn', 'mn', base, join(s.prov.dir, 'laptop.sock'));
    await mn.waitLog((l) => l.event === 'registered', 30_000);
    const granted = await mn.waitLog((l) => l.event === 'ipv4-home-address', 10_000);
    t.equal(granted['address'], '10.99.0.2', 'the first address of the pool after the HA');
    const st = await mn.status<MemberStatus>();
    t.equal(st.homeAddress4, '10.99.0.2', 'mip6 status: homeAddress4');
    const ha = await s.ha.daemon.status<HaStatus>();
    t.equal(ha.bindings.find((b) => b.homeAddress === HOA)?.homeAddress4, '10.99.0.2');
    const rules = (await ip('mn', ['-4', 'rule'])) + (await ip('mn', ['-6', 'rule']));
    t.match(rules, /4191:\s+not from all fwmark 0x105f lookup 4191/, 'policy rule installed');
    t.match(rules, /4190:\s+from all lookup main suppress_prefixlength 0/);
    t.match(await ip('mn', ['-4', 'addr', 'show', 'dev', 'mip6mn']), /inet 10\.99\.0\.2\/32/);
    t.match(await ip('mn', ['-4', 'route', 'get', WEB4]), /dev mip6mn/, 'IPv4 into the TUN');
    t.match(readFileSync(resolv, 'utf8'), /nameserver 10\.99\.0\.1\nnameserver 2001:db8:100::1\n/);
    t.match(
      (await lab.exec('mn', 'nft', ['list', 'table', 'inet', 'mip6_4191'])).stdout,
      /meta mark 0x0000105f accept/,
      'the kill switch is in place',
    );
    t.not(await gatewayPing(), 0, 'kill switch: the on-link gateway (main route) is blocked');

    // Everything on the MN's access links from now on: only the tunnel's datagrams (UDP 4191 or
    // 443) may appear, and ARP / Neighbor Discovery / MLD; no application traffic in clear.
    const pcap = join(s.prov.dir, 'access.pcapng');
    // (-i any in the cooked v2 format, which records each packet's interface: the access links
    // are down until the MN moves onto them, and dumpcap refuses a link that is down.)
    const capture = lab.spawn('mn', 'dumpcap', ['-q', '-i', 'any', '-y', 'LINUX_SLL2', '-w', pcap]);
    const captureStarted = Date.now();
    while (!existsSync(pcap) && Date.now() - captureStarted < 10_000) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 300));
    const server = new Lines(
      lab.spawn('cn', process.execPath, [ECHO, 'server', '8080', WEB4, WEB6]),
    );
    await server.wait('server listening', (l) => l['listening'] === WEB6);
    const client = (host: string): Lines => {
      const c = lab.spawn('mn', process.execPath, [ECHO, 'client', host, '8080'], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      return new Lines(c);
    };
    const c4 = client(WEB4);
    const c6 = client(WEB6);
    const p4 = await c4.wait('IPv4 peer', (l) => typeof l['peer'] === 'string');
    const p6 = await c6.wait('IPv6 peer', (l) => typeof l['peer'] === 'string');
    t.equal(p4['peer'], LAB_ADDR.ha.v4, 'the IPv4 server sees the HA (tunnel, then its NAT)');
    t.equal(p6['peer'], HOA, 'the IPv6 server sees the home address');

    const progress = async (label: string): Promise<void> => {
      const a = c4.received;
      const b = c6.received;
      const end = Date.now() + 30_000;
      while (c4.received < a + 65536 || c6.received < b + 65536) {
        if (Date.now() > end) throw new Error(`${label}: the streams stalled`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await progress('lte');
    for (const network of ['hotel', 'v6only', 'lte'] as const) {
      const from = mn.lines.length;
      await lab.move(network);
      await mn.waitLog((l) => l.event === 'registered', 30_000, from);
      await progress(network);
      const now = await mn.status<MemberStatus>();
      t.equal(now.homeAddress4, '10.99.0.2', `${network}: the same IPv4 home address`);
      const port = network === 'hotel' ? 443 : 4191;
      t.match(now.homeAgent, `:${port}`, `${network}: the HA on port ${port}`);
      t.comment(`${network}: registered; IPv4 ${c4.received} B, IPv6 ${c6.received} B echoed`);
    }
    for (const c of [c4, c6]) c.child.stdin?.write('stop\n');
    const r4 = await c4.wait('IPv4 result', (l) => typeof l['sent'] === 'number');
    const r6 = await c6.wait('IPv6 result', (l) => typeof l['sent'] === 'number');
    t.ok(r4['ok'], `IPv4 stream: every byte verified (${String(r4['received'])} B)`);
    t.ok(r6['ok'], `IPv6 stream: every byte verified (${String(r6['received'])} B)`);
    t.comment(
      `longest pause: IPv4 ${String(r4['maxGapMs'])} ms, IPv6 ${String(r6['maxGapMs'])} ms`,
    );

    const captureDone = new Promise((r) => capture.once('exit', r));
    capture.kill('SIGINT');
    await Promise.race([captureDone, new Promise((r) => setTimeout(r, 5000))]);
    const links = JSON.parse(await ip('mn', ['-j', 'link', 'show'])) as {
      ifname: string;
      ifindex: number;
    }[];
    const access = links
      .filter((l) => ['lte', 'hotel', 'v6only'].includes(l.ifname))
      .map((l) => l.ifindex);
    t.equal(access.length, 3);
    const onAccess = `(${access.map((x) => `sll.ifindex == ${x}`).join(' || ')})`;
    const fields = (filter: string): string[] =>
      spawnSync('tshark', ['-r', pcap, '-Y', filter, '-T', 'fields', '-e', 'frame.protocols'], {
        encoding: 'utf8',
      })
        .stdout.split('\n')
        .filter((l) => l !== '');
    const tunnel = fields(`${onAccess} && (udp.port == 4191 || udp.port == 443)`);
    const other = fields(
      `${onAccess} && !(udp.port == 4191 || udp.port == 443) && !arp && !(icmpv6.type >= 130 && icmpv6.type <= 143)`,
    );
    t.ok(tunnel.length > 100, `the access links carried the tunnel (${tunnel.length} datagrams)`);
    t.same(other, [], 'and nothing else: no application packet in clear');
    const exited = await mn.stop(10_000);
    t.equal(exited.code, 0, 'the MN exits cleanly');
    const after = (await ip('mn', ['-4', 'rule'])) + (await ip('mn', ['-6', 'rule']));
    t.equal(readFileSync(resolv, 'utf8'), 'nameserver 192.0.2.1\n', 'the old resolvers back');
    t.notMatch(
      (await lab.exec('mn', 'nft', ['list', 'ruleset'])).stdout,
      /mip6_/,
      'the kill switch is gone after exit',
    );
    t.equal(await gatewayPing(), 0, 'after: the gateway answers again');
    t.notMatch(after, /4191|suppress_prefixlength/, 'no policy rule left after exit');
    const haExit = await s.ha.daemon.stop(10_000);
    t.equal(haExit.code, 0);
    t.notMatch(await nat(), /mip6/, "the HA's NAT rule is gone after exit");
    t.notMatch(
      (await lab.exec('ha', 'iptables', ['-w', '5', '-t', 'nat', '-S', 'PREROUTING'])).stdout,
      /mip6/,
      'and its port redirect',
    );
    const switches = mn.lines.filter((l) => l.event === 'agent-port').map((l) => l['port']);
    t.same(switches, [443], 'one port switch: in the hotel; LTE and IPv6-only kept 4191');
  },
);
