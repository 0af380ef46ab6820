/**
 * The MN's care-of source against a real kernel (root, two netns): care-of addresses from
 * RTM_GETROUTE through the addon (IPv4 and IPv6 routes, fast), the home link recognised by the
 * home probe (the HA's home address answers on a link where we hold only a link-local address),
 * and an unsolicited Neighbor Advertisement that overrides a neighbour's stale cache entry.
 */
import t from 'tap';
import { createNetns, nativeSkipReason, noDad, run, runFixture } from '../helpers/netns.js';

const skip = nativeSkipReason() ?? false;

void t.test('route care-of, home probe and unsolicited NA', { skip }, async (t) => {
  const mn = await createNetns(t, 'cm');
  const ha = await createNetns(t, 'ch');
  for (const ns of [mn, ha]) await noDad(ns);
  const batch = async (ns: string, lines: string[]): Promise<void> => {
    for (const l of lines) await run('ip', ['-n', ns, ...l.split(' ')]);
  };
  await batch(mn, [
    `link add acc type veth peer name acc netns ${ha}`,
    `link add homel type veth peer name homeb netns ${ha}`,
    'addr add 192.0.2.10/24 dev acc',
    'link set acc up',
    'link set homel up',
    'route add default via 192.0.2.1',
  ]);
  await batch(ha, [
    'addr add 192.0.2.1/24 dev acc',
    'addr add 203.0.113.1/32 dev lo',
    'link set acc up',
    'addr add 2001:db8:100::1/64 dev homeb nodad',
    'link set homeb up',
    // A stale cache entry with a wrong link-layer address: the NA must override it.
    'neigh add 2001:db8:100::10 lladdr 02:00:00:00:00:01 dev homeb nud stale',
  ]);
  const mnMac = JSON.parse(await run('ip', ['-n', mn, '-j', 'link', 'show', 'homel']))[0]
    .address as string;
  const r = await runFixture(mn, 'care-of-child.ts', [], { timeoutMs: 20_000 });
  t.equal(r.code, 0, r.stderr);
  const res = r.result as {
    first: { family: number; localAddress: string; homeLink?: string }[];
    firstMs: number;
    second: { family: number; localAddress: string; homeLink?: string; homeLinkIndex?: number }[];
  };
  // The home probe was still running: the first answer did not wait for it.
  t.same(
    res.first,
    [{ family: 4, localAddress: '192.0.2.10' }],
    'IPv4 care-of from the route, without waiting for the home probe',
  );
  t.comment(`first probe took ${res.firstMs.toFixed(1)} ms (includes loading the addon)`);
  t.match(
    res.second[0],
    { family: 6, localAddress: '2001:db8:100::10', homeLink: 'homel', homeLinkIndex: Number },
    'home link candidate recognised, with its interface index',
  );
  t.ok((res.second[0]?.homeLinkIndex ?? 0) > 0, 'a real interface index');
  const neigh = await run('ip', [
    '-n',
    ha,
    '-6',
    'neigh',
    'show',
    '2001:db8:100::10',
    'dev',
    'homeb',
  ]);
  t.match(neigh, mnMac, `NA overrode the cache entry: ${neigh.trim()}`);
});

void t.test(
  'a link the kernel has not brought up yet carries no care-of address',
  { skip },
  async (t) => {
    // Packets sent on a link before the kernel's link watcher has made it operational are
    // dropped (a first ARP request, and the Binding Update queued behind it until the next try
    // a second later): the MN moves only once the link's operational state says it is up.
    const mn = await createNetns(t, 'lm');
    const ha = await createNetns(t, 'lh');
    await run('ip', [
      '-n',
      mn,
      'link',
      'add',
      'acc',
      'type',
      'veth',
      'peer',
      'name',
      'acc',
      'netns',
      ha,
    ]);
    for (const cmd of [
      'addr add 192.0.2.10/24 dev acc',
      'link set acc up',
      'route add default via 192.0.2.1',
    ]) {
      await run('ip', ['-n', mn, ...cmd.split(' ')]);
    }
    await run('ip', ['-n', ha, 'addr', 'add', '192.0.2.1/24', 'dev', 'acc']);
    await run('ip', ['-n', ha, 'addr', 'add', '203.0.113.1/32', 'dev', 'lo']);
    type Res = {
      candidates: { family: number; localAddress: string }[];
      links: Record<string, boolean>;
    };
    const probe = async (): Promise<Res> => {
      const r = await runFixture(mn, 'link-state-child.ts', ['acc', 'lo', 'nosuch0', '../acc'], {
        timeoutMs: 20_000,
      });
      t.equal(r.code, 0, r.stderr);
      return r.result as Res;
    };
    const operstate = async (): Promise<string> =>
      (await run('ip', ['netns', 'exec', mn, 'cat', '/sys/class/net/acc/operstate'])).trim();

    t.not(await operstate(), 'up', 'the peer is down: our end is not operational');
    const down = await probe();
    t.same(down.candidates, [], 'no care-of on it, though the route to the HA is there');
    t.same(
      down.links,
      { acc: false, lo: true, nosuch0: true, '../acc': true },
      'not operational; loopback (state unknown) is; no such link or no usable name: not held back',
    );

    await run('ip', ['-n', ha, 'link', 'set', 'acc', 'up']);
    const deadline = Date.now() + 10_000;
    while ((await operstate()) !== 'up' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    t.equal(await operstate(), 'up', 'the kernel has brought the link up');
    const up = await probe();
    t.same(up.candidates, [{ family: 4, localAddress: '192.0.2.10' }], 'now it is the care-of');
    t.equal(up.links['acc'], true);
  },
);
