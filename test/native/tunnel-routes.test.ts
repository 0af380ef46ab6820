/**
 * The full tunnel's policy routing against a real kernel (root, two netns; issue #15): with
 * `0.0.0.0/0` and `::/0` routed into the TUN, the mobile node's marked UDP socket still reaches
 * the home agent over the visited network (both families), care-of lookups made with the mark
 * still see the visited network (without the mark they would see the TUN and find nothing),
 * an unmarked datagram goes into the TUN, remove() leaves no rule and no route behind, and a
 * run that died without removing anything (kill -9) is cleaned up by the next install.
 */
import { spawn } from 'node:child_process';
import t from 'tap';
import { createNetns, nativeSkipReason, noDad, run, runFixture } from '../helpers/netns.js';

const skip = nativeSkipReason() ?? false;

const ECHO = `
const dgram = require('node:dgram');
for (const [type, addr] of [['udp4', '203.0.113.1'], ['udp6', '2001:db8:ff::1']]) {
  const s = dgram.createSocket(type);
  s.on('message', (m, r) => s.send(m, r.port, r.address));
  s.bind(4191, addr);
}
setTimeout(() => process.exit(0), 60000);
`;

async function policyState(ns: string): Promise<{ rules: string; table4: string; table6: string }> {
  const rules =
    (await run('ip', ['-n', ns, '-4', 'rule', 'show'])) +
    (await run('ip', ['-n', ns, '-6', 'rule', 'show']));
  const table4 = await run('ip', ['-n', ns, '-4', 'route', 'show', 'table', '4191']).catch(
    () => '',
  );
  const table6 = await run('ip', ['-n', ns, '-6', 'route', 'show', 'table', '4191']).catch(
    () => '',
  );
  return { rules, table4, table6 };
}

void t.test(
  'full tunnel: marked underlay escapes, the rest enters the TUN',
  { skip },
  async (t) => {
    const mn = await createNetns(t, 'fm');
    const net = await createNetns(t, 'fn');
    for (const ns of [mn, net]) await noDad(ns);
    const batch = async (ns: string, lines: string[]): Promise<void> => {
      for (const l of lines) await run('ip', ['-n', ns, ...l.split(' ')]);
    };
    await batch(mn, [
      `link add acc type veth peer name acc netns ${net}`,
      'addr add 192.0.2.10/24 dev acc',
      'addr add 2001:db8:3::10/64 dev acc nodad',
      'link set acc up',
      'route add default via 192.0.2.1',
      'route add ::/0 via 2001:db8:3::1',
    ]);
    await batch(net, [
      'addr add 192.0.2.1/24 dev acc',
      'addr add 2001:db8:3::1/64 dev acc nodad',
      'addr add 203.0.113.1/32 dev lo',
      'addr add 2001:db8:ff::1/128 dev lo',
      'link set acc up',
    ]);
    const echo = spawn('ip', ['netns', 'exec', net, process.execPath, '-e', ECHO], {
      stdio: 'ignore',
    });
    t.teardown(() => {
      if (echo.pid !== undefined && echo.exitCode === null) echo.kill('SIGKILL');
    });

    const r = await runFixture(mn, 'tunnel-routes-child.ts', ['run'], { timeoutMs: 40_000 });
    t.equal(r.code, 0, r.stderr);
    const res = r.result as {
      marked: { family: number; localAddress: string }[];
      unmarked: unknown[];
      round4: boolean;
      round6: boolean;
      tun4: boolean;
      tun6: boolean;
    };
    t.same(
      res.marked,
      [
        { family: 4, localAddress: '192.0.2.10' },
        { family: 6, localAddress: '2001:db8:3::10' },
      ],
      'care-of lookups with the mark see the visited network, both families',
    );
    t.same(res.unmarked, [], 'without the mark the route to the HA is the TUN: no care-of at all');
    t.ok(res.round4, 'marked IPv4 datagram reached the HA stand-in and its answer came back');
    t.ok(res.round6, 'marked IPv6 datagram reached the HA stand-in and its answer came back');
    t.ok(res.tun4, 'an unmarked IPv4 datagram to the same address went into the TUN');
    t.ok(res.tun6, 'an unmarked IPv6 datagram to the same address went into the TUN');
    const after = await policyState(mn);
    t.notMatch(after.rules, /4191|suppress_prefixlength/, 'remove(): no rule left');
    t.equal(after.table4.trim() + after.table6.trim(), '', 'remove(): table 4191 empty');

    // What a kill -9 leaves (rules; the table's routes went with the TUN), then the next start.
    const crash = await runFixture(mn, 'tunnel-routes-child.ts', ['crash'], { timeoutMs: 20_000 });
    t.equal(crash.code, 0, crash.stderr);
    const stale = await policyState(mn);
    t.match(
      stale.rules,
      /not from all fwmark 0x105f lookup 4191/,
      'the crashed run left its rules',
    );
    const again = await runFixture(mn, 'tunnel-routes-child.ts', ['run'], { timeoutMs: 40_000 });
    t.equal(again.code, 0, again.stderr);
    t.ok((again.result as { round4: boolean }).round4, 'the next run works over the stale rules');
    const clean = await policyState(mn);
    t.notMatch(
      clean.rules,
      /4191|suppress_prefixlength/,
      'the next run cleaned up the stale rules',
    );
  },
);
