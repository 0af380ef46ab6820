// The netns lab itself: every access network reaches the HA, the hotel NAT is real, the home
// link works, and nothing is left behind, even when the process that built the lab crashes.
import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { waitFor } from '../helpers/wait.js';
import { createLab, LAB_ADDR, labUnavailableReason, waitForLine, type Lab } from './lab.js';

const skip = labUnavailableReason();

// A UDP echo server answering every datagram with the source address and port it observed.
const ECHO_SERVER = `
const dgram = require('node:dgram');
const port = Number(process.argv[1]);
let bound = 0;
for (const type of ['udp4', 'udp6']) {
  const s = dgram.createSocket({ type, ipv6Only: type === 'udp6' });
  s.on('message', (m, r) => s.send(r.address + ' ' + r.port, r.port, r.address));
  s.bind(port, type === 'udp4' ? '0.0.0.0' : '::', () => { if (++bound === 2) console.log('ready'); });
}`;
// Sends one probe and prints the answer; exits 1 after 2 s without one.
const ECHO_CLIENT = `
const dgram = require('node:dgram');
const [host, port] = [process.argv[1], Number(process.argv[2])];
const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
s.on('message', (m) => { console.log(m.toString()); process.exit(0); });
s.on('error', (e) => { console.error(e.message); process.exit(2); });
s.send('probe', port, host);
setTimeout(() => process.exit(1), 2000);`;
const ECHO_PORT = 4191;

function namespacesWith(tag: string): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.includes(tag));
}
function rootLinksWith(tag: string): string[] {
  return execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.includes(tag));
}
/** True while `pid` runs (a zombie waiting to be reaped counts as gone). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) [ZX]/.test(stat);
  } catch {
    return false;
  }
}

async function ping(lab: Lab, node: 'mn' | 'server' | 'cn' | 'ha', dest: string): Promise<boolean> {
  const r = await lab.exec(node, 'ping', [dest.includes(':') ? '-6' : '-4', '-c1', '-W1', dest], {
    check: false,
  });
  return r.code === 0;
}

async function probe(lab: Lab, dest: string): Promise<string> {
  const r = await lab.exec('mn', process.execPath, ['-e', ECHO_CLIENT, dest, String(ECHO_PORT)], {
    check: false,
  });
  return r.code === 0 ? r.stdout.trim() : `failed(${r.code}) ${r.stderr.trim()}`;
}

void t.test('netns lab', { skip: skip ?? false }, async (t) => {
  const t0 = Date.now();
  const lab = await createLab();
  t.comment(`lab ${lab.tag} built in ${Date.now() - t0} ms`);
  t.teardown(() => lab.destroy());
  t.equal(namespacesWith(lab.tag).length, 5, 'five namespaces carry the tag');
  t.equal(lab.network, 'none');

  const echo = lab.spawn('ha', process.execPath, ['-e', ECHO_SERVER, String(ECHO_PORT)]);
  await waitForLine(echo, /^ready$/);
  const echoPid = echo.pid ?? 0;
  t.ok(alive(echoPid), 'echo server runs in the ha namespace');

  await t.test('lte: plain IPv4, the HA sees the real address', async (t) => {
    const m0 = Date.now();
    await lab.move('lte');
    t.comment(`move lte: ${Date.now() - m0} ms`);
    t.ok(await ping(lab, 'mn', LAB_ADDR.ha.v4), 'mn pings the HA over IPv4');
    t.notOk(await ping(lab, 'mn', LAB_ADDR.ha.v6), 'no IPv6 on lte');
    t.match(await probe(lab, LAB_ADDR.ha.v4), new RegExp(`^${LAB_ADDR.mn.lte} \\d+$`));
  });

  await t.test('hotel: IPv4 behind a real NAT44', async (t) => {
    const m0 = Date.now();
    await lab.move('hotel');
    t.comment(`move hotel: ${Date.now() - m0} ms`);
    t.ok(await ping(lab, 'mn', LAB_ADDR.ha.v4), 'mn pings the HA through the NAT');
    const seen = await probe(lab, LAB_ADDR.ha.v4);
    t.match(
      seen,
      new RegExp(`^${LAB_ADDR.natPublic.replace(/\./g, '\\.')} \\d+$`),
      'HA sees the NAT address',
    );
    t.notMatch(seen, LAB_ADDR.mn.hotel, 'never the private address');
    t.match(
      await lab.conntrackList(),
      /src=192\.0\.2\.10 .*dport=4191/,
      'the router tracks the mapping',
    );
    await lab.flushConntrack();
    t.notMatch(
      await lab.conntrackList(),
      /src=192\.0\.2\.10 .*dport=4191/,
      'flushConntrack forgets it',
    );
    t.notOk(await ping(lab, 'ha', LAB_ADDR.mn.hotel), 'nothing gets in unsolicited');
    t.match(
      await probe(lab, LAB_ADDR.ha.v4),
      /^198\.51\.100\.254 \d+$/,
      'a new mapping works after the flush',
    );
  });

  await t.test('v6only: IPv6 without IPv4', async (t) => {
    const m0 = Date.now();
    await lab.move('v6only');
    t.comment(`move v6only: ${Date.now() - m0} ms`);
    t.ok(await ping(lab, 'mn', LAB_ADDR.ha.v6), 'mn pings the HA over IPv6');
    t.notOk(await ping(lab, 'mn', LAB_ADDR.ha.v4), 'no IPv4 route');
    t.match(await probe(lab, LAB_ADDR.ha.v6), /^2001:db8:3::10 \d+$/);
    const addrs = (await lab.exec('mn', 'ip', ['-o', 'addr', 'show', 'scope', 'global'])).stdout;
    t.notMatch(addrs, /203\.0\.113\.10|192\.0\.2\.10/, 'old addresses are gone');
  });

  await t.test('home link, server and CN', async (t) => {
    await lab.move('home');
    const link = (await lab.exec('mn', 'ip', ['-o', 'link', 'show', 'home'])).stdout;
    t.match(link, /state UP/, 'home port up');
    t.ok(await ping(lab, 'server', LAB_ADDR.ha.home), 'server reaches the HA on the home link');
    t.ok(await ping(lab, 'cn', LAB_ADDR.ha.v4), 'CN reaches the HA over IPv4');
    t.ok(await ping(lab, 'cn', LAB_ADDR.server.v6), 'the home prefix is routed to the HA');
  });

  await t.test('none: no access link', async (t) => {
    await lab.move('none');
    t.equal(lab.network, 'none');
    t.notOk(await ping(lab, 'mn', LAB_ADDR.ha.v4));
    const up = (await lab.exec('mn', 'ip', ['-o', 'link', 'show', 'up'])).stdout;
    t.notMatch(up, /\b(lte|hotel|v6only|home)\b/, 'every access link is down');
  });

  await t.test('destroy removes everything and is idempotent', async (t) => {
    await lab.destroy();
    await lab.destroy();
    t.same(namespacesWith(lab.tag), [], 'no namespaces left');
    t.same(rootLinksWith(lab.tag), [], 'no links left');
    t.notOk(alive(echoPid), 'tracked process killed');
    t.throws(() => lab.spawn('ha', 'true'), /already destroyed/);
  });
});

for (const mode of ['uncaught', 'signal'] as const) {
  void t.test(
    `a crashing process still removes its lab (${mode})`,
    { skip: skip ?? false },
    async (t) => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', 'test/lab/lab-crash-fixture.ts', mode],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      const exited = new Promise<[number | null, string | null]>((resolve) =>
        child.once('exit', (code, signal) => resolve([code, signal])),
      );
      t.teardown(() => {
        if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
          process.kill(child.pid, 'SIGKILL');
        }
      });
      const line = await waitForLine(child, /^tag \S+ child \d+$/, 60000);
      const [, tag = 'none', , pidText = '0'] = line.split(' ');
      t.equal(namespacesWith(tag).length, 5, 'lab built');
      if (mode === 'signal' && child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
      const [code, signal] = await exited;
      if (mode === 'uncaught') t.equal(code, 1, 'the exception still ends the process');
      else t.equal(signal, 'SIGTERM', 'the signal still ends the process');
      t.same(namespacesWith(tag), [], 'namespaces removed');
      // The killed child is reparented and reaped by init: allow a bounded moment for that.
      await t.resolves(
        waitFor('the fixture child to die', () => !alive(Number(pidText)), 5000),
        'its processes killed',
      );
    },
  );
}
