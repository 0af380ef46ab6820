/**
 * A hotel network with a captive portal (issue #15), real daemons in the netns lab: until the
 * guest logs in, the hotel router drops every UDP datagram and answers every HTTP request with
 * a redirect to its login page (a stand-in: iptables DNAT to a small HTTP server on the
 * router). The mobile node (full tunnel, kill switch on, [movement] portal_probe and the
 * opt-in portal_login) finds no port of the home agent answering, probes outside the tunnel,
 * and `mip6 status` says a captive portal is in the way, with its redirect; then, for the
 * login window only, DNS, HTTP and HTTPS go by the hotel's routes through the kill switch, so
 * a browser gets the login page, and nothing else does. After the "login" (the router's rules
 * gone) it registers again by itself, the status clears and the portal exceptions are gone.
 * (Without portal_login nothing opens: test/sim/portal-login.test.ts.)
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MemberStatus } from '../../src/io/control-protocol.js';
import { LAB_ADDR, labUnavailableReason } from './lab.js';
import { LabSession, mnToml } from './mip6-lab.js';

function reason(): string | false {
  const lab = labUnavailableReason();
  if (lab !== undefined) return lab;
  for (const tool of ['nft', 'curl']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status !== 0)
      return `needs ${tool}`;
  }
  return false;
}
const skip = reason();
const HOA = LAB_ADDR.mn.homeAddress;
const PROBE = `http://${LAB_ADDR.cn.v4}/generate_204`;
const PORTAL = 'http://192.0.2.1:8082/login';

/** A one-file HTTP server: `status` and an optional Location for every request. */
const httpServer = (address: string, port: number, status: number, location = ''): string => `
require('node:http').createServer((q, r) => {
  r.writeHead(${status}, ${location ? `{ Location: '${location}' }` : '{}'});
  r.end();
}).listen(${port}, '${address}');
setTimeout(() => process.exit(0), 300000);
`;

void t.test(
  'captive portal: detected, reported, then gone after login',
  { skip, timeout: 180_000 },
  async (t) => {
    const s = await LabSession.open(t, 'captive-portal');
    const lab = s.lab;
    await s.homeAgent({ extra: '\n[listen]\nports = [4191, 443]\n' });
    lab.spawn('cn', process.execPath, ['-e', httpServer(LAB_ADDR.cn.v4, 80, 204)]);
    lab.spawn('router', process.execPath, ['-e', httpServer('192.0.2.1', 8082, 302, PORTAL)]);
    const files = await s.prov.member('laptop', 'mn', [HOA]);
    const config = mnToml(s.prov, 'laptop', files, s.ha.files, {
      extraHome: 'agent_port = [4191, 443]',
    });
    writeFileSync(
      config,
      readFileSync(config, 'utf8').replace(
        'name = "mip6mn"',
        'name = "mip6mn"\nroutes = ["::/0", "0.0.0.0/0"]\nblock_outside = true',
      ) + `\n[movement]\nportal_probe = "${PROBE}"\nportal_login = true\n`,
    );
    lab.routeMark = 4191;
    const mn = s.start('mn', 'mn', config, join(s.prov.dir, 'laptop.sock'));
    await mn.waitLog((l) => l.event === 'registered', 30_000);

    // The portal: no UDP out of the hotel, every HTTP request to its login page.
    const portal = [
      ['FORWARD', '-i', 'hotel', '-p', 'udp', '-j', 'DROP'],
      [
        'PREROUTING',
        '-t',
        'nat',
        '-i',
        'hotel',
        '-p',
        'tcp',
        '--dport',
        '80',
        '-j',
        'DNAT',
        '--to-destination',
        '192.0.2.1:8082',
      ],
    ];
    const rule = (op: '-I' | '-D', r: string[]): string[] => {
      const table = r.includes('-t') ? ['-t', 'nat'] : [];
      const rest = r.filter((x, i) => x !== '-t' && r[i - 1] !== '-t');
      return ['-w', '5', ...table, op, ...rest];
    };
    for (const r of portal) await lab.exec('router', 'iptables', rule('-I', r));
    const from = mn.lines.length;
    await lab.move('hotel');
    const found = await mn.waitLog((l) => l.event === 'captive-portal', 60_000, from);
    t.match(String(found['portal']), `HTTP 302 from ${PROBE} (redirect to ${PORTAL})`);
    const st = await mn.status<MemberStatus>();
    t.match(
      st.homeAgentUnreachable,
      /^captive portal: HTTP 302 .*redirect to http:\/\/192\.0\.2\.1:8082\/login/,
    );
    t.comment(`mip6 status: homeAgentUnreachable = ${st.homeAgentUnreachable ?? ''}`);

    // The login window (opt-in): a browser can reach the portal (DNS, HTTP, HTTPS by the
    // hotel's routes, through the kill switch); anything else stays blocked.
    await mn.waitLog((l) => l.event === 'portal-login-open', 10_000, from);
    const browse = async (): Promise<string> =>
      (
        await lab.exec(
          'mn',
          'curl',
          ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', PROBE],
          { check: false },
        )
      ).stdout;
    const state = async (): Promise<string> =>
      (await lab.exec('mn', 'ip', ['-4', 'rule'])).stdout +
      (await lab.exec('mn', 'nft', ['list', 'ruleset'])).stdout;
    const t0 = Date.now();
    while (!/4189/.test(await state()) && Date.now() - t0 < 5000) {
      await new Promise((r) => setTimeout(r, 50));
    }
    t.equal(await browse(), '302', "a browser gets the portal's login redirect");
    const ping = await lab.exec('mn', 'ping', ['-c', '1', '-W', '1', '192.0.2.1'], {
      check: false,
    });
    t.not(ping.code, 0, 'anything else is still blocked by the kill switch');

    // "Login": the portal lets the guest out.
    const loginFrom = mn.lines.length;
    for (const r of portal) await lab.exec('router', 'iptables', rule('-D', r));
    await mn.waitLog((l) => l.event === 'registered', 60_000, loginFrom);
    const closed = await mn.waitLog((l) => l.event === 'portal-login-closed', 10_000, loginFrom);
    t.equal(closed['why'], 'registered', 'the login window closes on registration');
    const after = await mn.status<MemberStatus>();
    t.equal(after.homeAgentUnreachable, undefined, 'registered again: nothing to report');
    const t1 = Date.now();
    while (/4189|dport 53/.test(await state()) && Date.now() - t1 < 5000) {
      await new Promise((r) => setTimeout(r, 50));
    }
    t.notMatch(await state(), /4189|dport 53/, 'registered again: the portal exceptions are gone');
    t.equal((await mn.stop(10_000)).code, 0);
  },
);
