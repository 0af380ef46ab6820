/**
 * The README's Quick start with the repository's CLI (issue 19), in two network namespaces:
 * `mip6 init ha`, `service install ha`, `member add laptop`, the copy, `mip6 join`, `service
 * install mn` as the README writes them (test/lab/quickstart.ts says what is redirected); the
 * laptop registers and pings the home agent's home address through the tunnel. Then
 * `mip6 member remove laptop`: the running home agent gets SIGHUP, drops the laptop's binding
 * and channel at once, and refuses the laptop's handshakes when it starts again.
 */
import t from 'tap';
import type { HaStatus } from '../../src/io/control-protocol.js';
import { nativeSkipReason } from '../helpers/netns.js';
import { mip6Command } from './mip6-lab.js';
import {
  cli,
  execStart,
  LAPTOP_HOA,
  pingHomeAgent,
  quickstart,
  readmeQuickstart,
  twoHosts,
} from './quickstart.js';
import { join } from 'node:path';

const skip = nativeSkipReason() ?? false;

async function waitFor(
  what: () => string,
  check: () => Promise<boolean>,
  ms: number,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

void t.test('the README Quick start commands are the ones this test runs', async (t) => {
  t.same(readmeQuickstart(), [
    'npm install -g mip6',
    'mip6 init ha --address ha.example.net --prefix 2001:db8:100::/64',
    'mip6 service install ha',
    'mip6 member add laptop',
    'scp ~/.mip6-ca/members/laptop.join root@laptop:',
    'mip6 join laptop.join',
    'mip6 service install mn',
  ]);
});

void t.test(
  'Quick start in two namespaces: enrolment, registration, revocation',
  { skip, timeout: 240_000 },
  async (t) => {
    const hosts = await twoHosts(t);
    const mip6 = [process.execPath, ...mip6Command()];
    const q = await quickstart(t, hosts, {
      mip6,
      // ExecStart runs bin/mip6 (dist/); the test runs the same command from src when dist
      // is older (mip6Command), so it never tests a stale build.
      daemonArgv: (argv) => [process.execPath, ...mip6Command(), ...argv.slice(2)],
    });
    const unit = execStart(join(hosts.dir, 'units', 'mip6-ha.service'));
    t.same(unit.slice(2), [
      'ha',
      '-c',
      join(hosts.dir, 'ha-etc', 'ha.toml'),
      '--log-format',
      'json',
    ]);
    t.match(unit[1], /\/bin\/mip6$/, 'ExecStart runs bin/mip6');
    t.match(q.commands[2]?.result.stdout, /added laptop \(mn\): home address 2001:db8:100::10/);

    await q.mn.waitLog((l) => l.event === 'registered', 30_000);
    const st = await q.ha.status<HaStatus>();
    t.match(st.bindings, [{ homeAddress: LAPTOP_HOA, member: 'laptop' }], 'registered');
    t.equal(await pingHomeAgent(hosts, 3), 3, "the laptop reaches the HA's home address");

    // Revocation: one command on the home agent.
    const removed = await cli([...mip6, 'member', 'remove', 'laptop'], q.env.ha, hosts.dir);
    t.equal(removed.code, 0, removed.stderr);
    t.match(removed.stdout, /home agent \(pid \d+\) reloads the list: laptop is cut off/);
    await q.ha.waitLog((l) => l.event === 'revocations' && l.disconnected === 'laptop');
    const after = await q.ha.status<HaStatus>();
    t.same(after.bindings, [], 'binding removed at once');
    t.equal(await pingHomeAgent(hosts, 2), 0, 'no traffic through the tunnel any more');

    // The laptop starts again: refused at the handshake, never registered.
    await q.mn.stop();
    const again = q.restart('mn');
    await again.waitLog((l) => l.event === 'started', 60_000);
    let drops: Record<string, number> = {};
    await waitFor(
      () => `a refused handshake (HA drops: ${JSON.stringify(drops)})`,
      async () => {
        drops = (await q.ha.status<HaStatus>()).drops ?? {};
        return (drops['channel-revoked'] ?? 0) >= 1;
      },
      30_000,
    );
    await new Promise((r) => setTimeout(r, 2000));
    t.notOk(
      again.lines.some((l) => l.event === 'registered'),
      'the revoked laptop never registers',
    );
    t.same((await q.ha.status<HaStatus>()).bindings, [], 'and holds no binding');
  },
);
