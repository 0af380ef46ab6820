/**
 * A hotel network with a captive portal (issue #15), real daemons in the netns lab: until the
 * guest logs in, the hotel router drops every UDP datagram and answers every HTTP request with
 * a redirect to its login page (a stand-in: iptables DNAT to a small HTTP server on the
 * router). The mobile node (full tunnel, kill switch on, [movement] portal_probe) finds no
 * port of the home agent answering, probes outside the tunnel, and `mip6 status` says a
 * captive portal is in the way, with its redirect. After the "login" (the router's rules
 * gone) it registers again by itself and the status clears.
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
const PROBE = `http://${LAB_ADDR.cn.v4}:8081/generate_204`;
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
    lab.spawn('cn', process.execPath, ['-e', httpServer(LAB_ADDR.cn.v4, 8081, 204)]);
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
      ) + `\n[movement]\nportal_probe = "${PROBE}"\n`,
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
        '8081',
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

    // "Login": the portal lets the guest out.
    const loginFrom = mn.lines.length;
    for (const r of portal) await lab.exec('router', 'iptables', rule('-D', r));
    await mn.waitLog((l) => l.event === 'registered', 60_000, loginFrom);
    const after = await mn.status<MemberStatus>();
    t.equal(after.homeAgentUnreachable, undefined, 'registered again: nothing to report');
    t.equal((await mn.stop(10_000)).code, 0);
  },
);
