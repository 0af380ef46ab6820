/**
 * `npm run demo -- --personal`: the personal tunnel (issue #15) in the netns lab. The home
 * agent has an IPv4 pool it masquerades out of its uplink and listens on UDP 4191 and 443; the
 * mobile node sends everything through the tunnel ([tun] routes ::/0 and 0.0.0.0/0, kill switch
 * on) and holds an IPv4 home address. Two TCP streams, one to an IPv4-only and one to an IPv6
 * server beyond the home agent, run while the MN moves LTE -> hotel (which drops UDP 4191) ->
 * IPv6-only -> LTE; the demo prints what the servers see, which port each network used, and
 * checks every byte.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MemberStatus } from '../src/io/control-protocol.js';
import { createLab, LAB_ADDR, type AccessNetwork, type Lab } from '../test/lab/lab.js';
import { haToml, mnToml, Provisioned, startDaemon } from '../test/lab/mip6-lab.js';

const ECHO = fileURLToPath(new URL('../test/lab/fixtures/echo-stream.mjs', import.meta.url));

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** The echo fixture's JSON lines. */
function lines(child: ChildProcess): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  let buf = '';
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop() ?? '';
    for (const p of parts) {
      try {
        out.push(JSON.parse(p) as Record<string, unknown>);
      } catch {
        // not JSON
      }
    }
  });
  return out;
}

async function until<T>(what: string, f: () => T | undefined, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const received = (l: Record<string, unknown>[]): number => {
  for (let i = l.length - 1; i >= 0; i--) {
    const r = l[i]!['received'];
    if (typeof r === 'number') return r;
  }
  return 0;
};

export async function personalTunnelDemo(): Promise<number> {
  say('mip6 demo (personal tunnel): building the lab...');
  let lab: Lab | undefined;
  let prov: Provisioned | undefined;
  const children: ChildProcess[] = [];
  try {
    lab = await createLab({ network: 'lte' });
    prov = await Provisioned.create();
    const haFiles = await prov.member('ha', 'ha', [LAB_ADDR.ha.homePrefix]);
    const mnFiles = await prov.member('laptop', 'mn', [LAB_ADDR.mn.homeAddress]);
    const haConf = haToml(
      prov,
      haFiles,
      'ipv4_pool = "10.99.0.0/24"\nipv4_masquerade = "uplink"\n\n[listen]\nports = [4191, 443]\n',
    );
    const ha = startDaemon(lab, 'ha', 'ha', haConf, join(prov.dir, 'ha.sock'));
    await ha.waitLog((l) => l.event === 'started');
    say('  home agent: IPv4 pool 10.99.0.0/24 (NAT44 out of its uplink), UDP ports 4191 and 443');
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
    say('  the hotel network drops UDP 4191 (only 443 gets out)');
    const mnConf = mnToml(prov, 'laptop', mnFiles, haFiles, {
      extraHome: 'ipv4_address = "auto"\nagent_port = [4191, 443]',
    });
    writeFileSync(
      mnConf,
      readFileSync(mnConf, 'utf8').replace(
        'name = "mip6mn"',
        'name = "mip6mn"\nroutes = ["::/0", "0.0.0.0/0"]\nblock_outside = true',
      ),
    );
    lab.routeMark = 4191;
    const mn = startDaemon(lab, 'mn', 'mn', mnConf, join(prov.dir, 'laptop.sock'));
    await mn.waitLog((l) => l.event === 'ipv4-home-address');
    const st = await mn.status<MemberStatus>();
    say(
      `  mobile node on LTE: home addresses ${st.homeAddress} and ${st.homeAddress4 ?? '?'}; ` +
        'everything through the tunnel, kill switch on',
    );
    const server = spawn(
      'ip',
      [
        'netns',
        'exec',
        lab.ns('cn'),
        process.execPath,
        ECHO,
        'server',
        '8080',
        LAB_ADDR.cn.v4,
        LAB_ADDR.cn.v6,
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    children.push(server);
    const sl = lines(server);
    await until('the servers', () => (sl.length >= 2 ? true : undefined));
    const client = (host: string): { child: ChildProcess; l: Record<string, unknown>[] } => {
      const child = spawn(
        'ip',
        ['netns', 'exec', lab!.ns('mn'), process.execPath, ECHO, 'client', host, '8080'],
        { stdio: ['pipe', 'pipe', 'ignore'] },
      );
      children.push(child);
      return { child, l: lines(child) };
    };
    const c4 = client(LAB_ADDR.cn.v4);
    const c6 = client(LAB_ADDR.cn.v6);
    const peer = (l: Record<string, unknown>[]): string =>
      String(l.find((x) => typeof x['peer'] === 'string')?.['peer'] ?? '');
    await until('the peers', () => (peer(c4.l) && peer(c6.l) ? true : undefined));
    say(`  the IPv4-only server ${LAB_ADDR.cn.v4} sees ${peer(c4.l)} (the home agent's NAT)`);
    say(`  the IPv6 server ${LAB_ADDR.cn.v6} sees ${peer(c6.l)} (the home address)`);
    const moves: { network: AccessNetwork; what: string }[] = [
      { network: 'hotel', what: 'hotel Wi-Fi (NAT44, UDP 4191 blocked)' },
      { network: 'v6only', what: 'IPv6-only network' },
      { network: 'lte', what: 'LTE again' },
    ];
    for (const m of moves) {
      const from = mn.lines.length;
      const a = received(c4.l);
      const b = received(c6.l);
      const t0 = performance.now();
      await lab.move(m.network);
      await mn.waitLog((l) => l.event === 'registered', 30_000, from);
      await until('the streams', () =>
        received(c4.l) > a + 65536 && received(c6.l) > b + 65536 ? true : undefined,
      );
      const now = await mn.status<MemberStatus>();
      say(
        `move to ${m.what}: registered with ${now.homeAgent}, streams flowing again after ` +
          `${(performance.now() - t0).toFixed(0)} ms; IPv4 home address ${now.homeAddress4 ?? '?'}`,
      );
    }
    for (const c of [c4, c6]) c.child.stdin?.write('stop\n');
    const r4 = await until('IPv4 result', () => c4.l.find((x) => typeof x['sent'] === 'number'));
    const r6 = await until('IPv6 result', () => c6.l.find((x) => typeof x['sent'] === 'number'));
    const ok = r4['ok'] === true && r6['ok'] === true;
    say(
      `${String(r4['received'])} bytes over IPv4 and ${String(r6['received'])} over IPv6 echoed, ` +
        (ok ? 'every byte verified' : 'FAILED: a stream was damaged'),
    );
    await mn.stop();
    await ha.stop();
    say('stopped: the daemons remove their policy rules, kill switch and NAT rule at exit');
    return ok ? 0 : 1;
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await lab?.destroy();
    prov?.remove();
    say('lab removed');
  }
}
