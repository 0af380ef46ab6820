/**
 * Least privilege in the netns lab (issue 9): a home agent on a real home link and a mobile
 * node, both started as root with `--user nobody`, give up root after start-up and keep exactly
 * CAP_NET_ADMIN + CAP_NET_RAW (effective, permitted, ambient, bounding), with no_new_privs; and
 * everything privileged they do afterwards still works:
 *   - the HA adds a host route and a proxy-ND entry per binding (rtnetlink from the addon, the
 *     socket opened with the kept CAP_NET_ADMIN) and announces it with unsolicited NAs (raw
 *     ICMPv6 socket);
 *   - the MN goes home (HoA moved from the TUN to the home link by `ip -batch`, a default route,
 *     the home probe's `ping`), deregisters, and comes back (HoA back on the TUN, registered);
 *   - the HA withdraws and re-installs its proxy ND entry as the MN comes and goes;
 *   - the server on the home link reaches the MN's home address through the tunnel afterwards.
 * The HA's control socket has `control_group` set: it is root:<group> 0660, and a process of
 * another uid in that group gets `mip6 status`, one outside it is refused.
 * Nothing here needs this checkout to be readable by other users: the daemons load all their
 * code before they give up root, and the status client runs as one bundled file in a temp dir.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { build } from 'esbuild';
import {
  capabilityMask,
  readCredentials,
  readThreadCredentials,
} from '../../src/io/capabilities.js';
import type { HaStatus, MemberStatus } from '../../src/io/control-protocol.js';
import { waitFor } from '../helpers/wait.js';
import { LAB_ADDR, labUnavailableReason } from './lab.js';
import { LabSession, MAIN } from './mip6-lab.js';

const HOA = LAB_ADDR.mn.homeAddress;
const NOBODY = 65534;
const KEPT = capabilityMask(['NET_ADMIN', 'NET_RAW']);
/** A gid and uids nobody on this box uses (checked below): no /etc/group edit needed. */
const GROUP = 61_000 + (process.pid % 1000);
const MEMBER_UID = 62_000 + (process.pid % 1000);
const OUTSIDER_UID = 63_000 + (process.pid % 1000);

const skip: string | false = labUnavailableReason() ?? false;

/**
 * The `mip6` CLI as one file that any user can read, in `dir` (made 0755): the status client
 * runs as other uids, which need not be able to read this checkout (a clone in a home directory
 * is not readable by them). esbuild comes with tsx; the client needs no addon.
 */
async function readableCli(dir: string): Promise<string> {
  mkdirSync(dir, { mode: 0o755 });
  chmodSync(dir, 0o755);
  const file = join(dir, 'mip6.mjs');
  await build({
    entryPoints: [MAIN],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: file,
    // CommonJS dependencies (commander) call require() for Node built-ins.
    banner: {
      js: "import { createRequire as mip6Require } from 'node:module'; const require = mip6Require(import.meta.url);",
    },
    logLevel: 'error',
  });
  chmodSync(file, 0o644);
  return file;
}

/** `mip6 status --json --socket PATH` as uid/gid (groups = [gid]) with `cli`, bounded. */
function statusAs(
  cli: string,
  uid: number,
  gid: number,
  socket: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      'setpriv',
      [
        `--reuid=${uid}`,
        `--regid=${gid}`,
        `--groups=${gid}`,
        '--inh-caps=-all',
        '--bounding-set=-all',
        // A fresh environment: tap's hooks (NODE_OPTIONS, re-added to every spawn) would make
        // the client write tap's own files, which other uids cannot.
        '--reset-env',
        '--',
        process.execPath,
        cli,
        'status',
        '--json',
        '--socket',
        socket,
      ],
      { cwd: dirname(cli), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Direct children of `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter((x) => x !== '')
      .map(Number);
  } catch {
    return [];
  }
}

function idsUnused(): boolean {
  const passwd = readFileSync('/etc/passwd', 'utf8');
  const group = readFileSync('/etc/group', 'utf8');
  const used = (text: string, field: number, id: number): boolean =>
    text.split('\n').some((l) => l.split(':')[field] === String(id));
  return !used(group, 2, GROUP) && !used(passwd, 2, MEMBER_UID) && !used(passwd, 2, OUTSIDER_UID);
}

void t.test(
  'HA on a home link and MN as nobody: only CAP_NET_ADMIN + CAP_NET_RAW, still moving',
  { skip, timeout: 150_000 },
  async (t) => {
    t.ok(idsUnused(), `test ids ${GROUP}/${MEMBER_UID}/${OUTSIDER_UID} are unused here`);
    const session = await LabSession.open(t, 'least-privilege');
    const { lab, prov } = session;
    // Like /run: others may traverse the directory (but not list or read it); the keys inside
    // stay 0600 and the control socket's own directory gets the group.
    chmodSync(prov.dir, 0o711);
    const cli = await readableCli(join(prov.dir, 'cli'));
    const haSock = join(prov.dir, 'run', 'ha.sock');
    const ha = (
      await session.homeAgent({
        edit: (toml) =>
          `control_group = "${GROUP}"\n` +
          toml.replace(/^control_socket = .*$/m, `control_socket = "${haSock}"`),
        socket: haSock,
        args: ['--user', 'nobody'],
      })
    ).daemon;
    const haPriv = await ha.waitLog((l) => l.event === 'privileges');
    t.equal(haPriv['capabilities'], 'NET_ADMIN,NET_RAW', 'HA logs the capabilities it keeps');

    const mnStarted = await session.mobileNode({
      args: ['--user', 'nobody', '--log-level', 'debug'],
    });
    const mn = mnStarted.daemon;
    /** The HA defends the HoA (its only member) on the home link: in its ND proxy's set. */
    const proxied = async (): Promise<boolean> =>
      ((await ha.status<HaStatus>()).homeLink?.ndproxy?.['addresses'] ?? 0) > 0;

    await t.test('credentials in /proc: uid nobody, exactly the kept set', async (t) => {
      for (const [name, d] of [
        ['HA', ha],
        ['MN', mn],
      ] as const) {
        const c = readCredentials(d.child.pid!);
        t.same(c.uid, [NOBODY, NOBODY, NOBODY, NOBODY], `${name}: real/effective/saved/fs uid`);
        t.same(c.gid, [NOBODY, NOBODY, NOBODY, NOBODY], `${name}: gid`);
        t.same(c.groups, [NOBODY], `${name}: no supplementary group of root left`);
        t.equal(c.effective, KEPT, `${name}: CapEff = NET_ADMIN + NET_RAW (3000)`);
        t.equal(c.permitted, KEPT, `${name}: CapPrm the same`);
        t.equal(c.ambient, KEPT, `${name}: CapAmb the same (for its ip/ping children)`);
        t.equal(c.bounding, KEPT, `${name}: CapBnd the same`);
        t.ok(c.noNewPrivs, `${name}: no_new_privs`);
        // Capabilities are per thread: libuv's pool threads (native async work such as the
        // home probe's Neighbor Solicitations, fs calls) hold the same set, V8's none.
        const threads = readThreadCredentials(d.child.pid!);
        t.ok(
          threads.every((th) => th.uid.every((u) => u === NOBODY)),
          `${name}: all ${threads.length} threads run as nobody`,
        );
        t.ok(
          threads.every((th) => th.effective === KEPT || th.effective === 0n),
          `${name}: every thread holds the kept set or nothing`,
        );
        t.ok(
          threads.filter((th) => th.effective === KEPT).length >= 2,
          `${name}: the JS thread and the pool threads hold the kept set`,
        );
      }
      // The MN's long-lived `ip -o monitor` child: spawned after the switch.
      const kids = childrenOf(mn.child.pid!);
      const monitor = kids.find((k) => {
        try {
          return readFileSync(`/proc/${k}/cmdline`, 'utf8').includes('monitor');
        } catch {
          return false;
        }
      });
      t.ok(monitor !== undefined, 'the MN runs `ip monitor` as a child');
      if (monitor !== undefined) {
        const c = readCredentials(monitor);
        t.equal(c.uid[1], NOBODY, 'child runs as nobody');
        t.equal(c.effective, KEPT, 'child inherits exactly the kept set (ambient)');
      }
    });

    await t.test('HA per-binding state installed by the unprivileged HA', async (t) => {
      await t.resolves(
        waitFor('HoA defended', proxied),
        'the HoA is in the ND proxy set of the home link',
      );
      const defence = await ha.waitLog((l) => l.event === 'home-link-defence');
      t.equal(defence['via'], 'ndproxy', 'answered by the addon, not by kernel proxy entries');
      const route = await lab.exec('ha', 'ip', ['-6', 'route', 'show', `${HOA}/128`]);
      t.match(route.stdout, /dev mip6ha/, 'host route for the HoA into the TUN');
      const how = await ha.waitLog((l) => l.event === 'home-link-programming');
      t.equal(how['via'], 'rtnetlink', 'programmed over rtnetlink, not by `ip` children');
    });

    await t.test('control socket: root:group 0660, group members only', async (t) => {
      const st = statSync(haSock);
      t.equal(st.mode & 0o777, 0o660, 'socket mode 0660');
      t.equal(st.uid, 0, 'owned by root (created before the switch)');
      t.equal(st.gid, GROUP, 'group = control_group');
      const dir = statSync(join(prov.dir, 'run'));
      t.equal(dir.mode & 0o777, 0o750, 'its directory 0750');
      t.equal(dir.gid, GROUP, 'directory group = control_group');
      const member = await statusAs(cli, MEMBER_UID, GROUP, haSock);
      t.equal(member.code, 0, 'a member of the group runs mip6 status');
      t.equal(member.stderr, '', 'without any complaint');
      const st2 = JSON.parse(member.stdout) as HaStatus[] | HaStatus;
      const ha0 = Array.isArray(st2) ? st2[0] : st2;
      t.ok(
        ha0?.bindings.some((b) => b.homeAddress === HOA),
        'and sees the binding',
      );
      t.match(
        ha0?.homeLink,
        { via: 'rtnetlink', queued: 0, failed: {} },
        'nothing failed as nobody',
      );
      const outsider = await statusAs(cli, OUTSIDER_UID, OUTSIDER_UID, haSock);
      t.equal(outsider.code, 1, 'another user cannot');
      t.equal(
        outsider.stderr,
        `mip6: ERR_CONTROL_ACCESS: permission denied on ${haSock}: the control socket is for ` +
          'root or its control_group only (try sudo)\n',
        'told why, in one line',
      );
    });

    await t.test('home and back: address and route changes as nobody', async (t) => {
      let from = mn.lines.length;
      await lab.move('home');
      await mn.waitLog((l) => l.event === 'home', 10_000, from);
      const dereg = await mn.waitLog((l) => l.event === 'deregistered', 10_000, from);
      t.equal(dereg['gaveUp'], false, 'deregistration acknowledged');
      const addrs = await lab.exec('mn', 'ip', ['-6', '-o', 'addr', 'show']);
      t.match(addrs.stdout, new RegExp(`home\\s+inet6 ${HOA}/64`), 'HoA moved onto the home link');
      t.notMatch(addrs.stdout, new RegExp(`mip6mn\\s+inet6 ${HOA}/`), 'HoA off the TUN');
      await t.resolves(
        waitFor('defence withdrawn', async () => !(await proxied())),
        'HA stopped defending the HoA',
      );

      from = mn.lines.length;
      await lab.move('lte');
      await mn.waitLog((l) => l.event === 'registered', 10_000, from);
      const back = await lab.exec('mn', 'ip', ['-6', '-o', 'addr', 'show', 'dev', 'mip6mn']);
      t.match(back.stdout, HOA, 'HoA back on the TUN');
      await t.resolves(waitFor('proxy ND again', proxied), 'HA proxies for the HoA again');
      const st = await mn.status<MemberStatus>();
      t.equal(st.state, 'registered', 'MN control socket answers: registered');
      const ping = await lab.exec(
        'server',
        'ping',
        ['-6', '-c', '3', '-i', '0.2', '-W', '2', HOA],
        {
          check: false,
        },
      );
      t.match(ping.stdout, /[1-3] received/, 'server on the home link reaches the HoA again');
    });

    await t.test('no permission error anywhere', async (t) => {
      for (const [name, d] of [
        ['HA', ha],
        ['MN', mn],
      ] as const) {
        const bad = d.stderrText.filter((l) =>
          /EPERM|EACCES|not permitted|Permission denied|CAP_NET/i.test(l),
        );
        t.same(bad, [], `${name} logged no permission error`);
      }
      const [hs, ms] = await Promise.all([ha.stop(), mn.stop()]);
      t.equal(ms.code, 0, 'MN exits cleanly');
      t.equal(hs.code, 0, 'HA exits cleanly');
    });
  },
);
