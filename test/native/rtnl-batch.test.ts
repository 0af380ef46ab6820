/**
 * Home-link programming over rtnetlink against a real kernel (root, one netns; issue #17): the
 * addon's rtnlBatch adds, replaces and deletes /128 host routes into a TUN and proxy-ND entries
 * on a veth home link in batches of 1, 100 and 5000, and `ip -6 route` / `ip -6 neigh show
 * proxy` list exactly what was asked; each op has its own result (a bad ifindex fails alone);
 * re-adding and deleting what is gone succeed; the entries look exactly like the ones
 * `ip route replace` / `ip neigh replace proxy` make. Then the same through the HomeLinkProgrammer
 * (rtnetlink and the `ip -batch` fallback) and KernelHomeLink (host routes over rtnetlink, the
 * addresses in the addon's ND proxy set, no kernel proxy entry), whose status says nothing is
 * left behind.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { createNetns, nativeSkipReason, noDad, REPO_ROOT, run } from '../helpers/netns.js';

const skip = nativeSkipReason() ?? false;
const ENODEV = 19;

/** fd17:17::<i> as RFC 5952 text (i < 2^32). */
function hoa(i: number): string {
  const hi = Math.floor(i / 65536);
  return hi === 0
    ? `fd17:17::${i.toString(16)}`
    : `fd17:17::${hi.toString(16)}:${(i % 65536).toString(16)}`;
}

class Child {
  readonly #proc: ChildProcessWithoutNullStreams;
  readonly #lines: AsyncIterator<string>;
  constructor(ns: string) {
    const script = fileURLToPath(new URL('./fixtures/rtnl-batch-child.ts', import.meta.url));
    this.#proc = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', script], {
      cwd: REPO_ROOT,
    });
    this.#proc.stderr.on('data', (d: Buffer) => process.stderr.write(d));
    this.#lines = createInterface({ input: this.#proc.stdout })[Symbol.asyncIterator]();
  }
  async ask<T = Record<string, unknown>>(req: unknown): Promise<T> {
    this.#proc.stdin.write(JSON.stringify(req) + '\n');
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(
        () => reject(new Error(`no answer to ${JSON.stringify(req).slice(0, 80)}`)),
        60_000,
      ).unref(),
    );
    const next = await Promise.race([this.#lines.next(), timeout]);
    if (next.done === true) throw new Error('the fixture exited');
    return JSON.parse(next.value) as T;
  }
  stop(): void {
    if (this.#proc.exitCode === null) this.#proc.kill('SIGKILL');
  }
}

/** The test prefix's host routes via rtun and proxy entries on rhome, as sorted address lists. */
async function tables(ns: string): Promise<{ routes: string[]; proxies: string[]; v4: string[] }> {
  // -d shows what plain `ip route` hides: the type and protocol boot.
  const routes = (await run('ip', ['-n', ns, '-d', '-6', 'route', 'show', 'table', 'main'], 30_000))
    .split('\n')
    .filter((l) => l.startsWith('unicast fd17:17:'))
    .map((l) => {
      const m = /^unicast (\S+) dev rtun proto boot scope global metric 1024 /.exec(l);
      if (m === null) throw new Error(`unexpected route: ${l}`);
      return m[1] ?? '';
    });
  const proxies = (await run('ip', ['-n', ns, '-6', 'neigh', 'show', 'proxy'], 30_000))
    .split('\n')
    .filter((l) => l.startsWith('fd17:17:'))
    .map((l) => {
      if (!/^\S+ dev rhome proxy/.test(l)) throw new Error(`unexpected proxy entry: ${l}`);
      return l.split(' ')[0] ?? '';
    });
  const v4 = (await run('ip', ['-n', ns, '-d', '-4', 'route', 'show', 'table', 'main']))
    .split('\n')
    .filter((l) => l.startsWith('unicast 10.99.17.'))
    .map((l) => l.trim());
  return { routes: routes.sort(), proxies: proxies.sort(), v4 };
}

/** n addresses from fd17:17::<from>, sorted as tables() sorts. */
const range = (from: number, n: number): string[] =>
  Array.from({ length: n }, (_, i) => hoa(from + i)).sort();

/**
 * A fresh netns with a veth home link `rhome` (its peer up) and a TUN `rtun`, and the fixture
 * running inside it; all removed in teardown.
 */
async function homeLinkNetns(
  t: Parameters<typeof createNetns>[0],
  prefix: string,
): Promise<{ ns: string; child: Child }> {
  const ns = await createNetns(t, prefix);
  await noDad(ns);
  await run('ip', ['-n', ns, 'link', 'add', 'rhome', 'type', 'veth', 'peer', 'name', 'rpeer']);
  await run('ip', ['-n', ns, 'tuntap', 'add', 'rtun', 'mode', 'tun']);
  for (const dev of ['rhome', 'rpeer', 'rtun'])
    await run('ip', ['-n', ns, 'link', 'set', dev, 'up']);
  const child = new Child(ns);
  t.teardown(() => child.stop());
  return { ns, child };
}

void t.test(
  'rtnlBatch: routes and proxy entries in batches, per-op results',
  { skip },
  async (t) => {
    const { ns, child } = await homeLinkNetns(t, 'rb');

    type Raw = { results: number[]; us: number; thrown?: unknown };
    const batch = (kind: number, addrs: string[], dev?: string | number): Promise<Raw> =>
      child.ask<Raw>({
        raw: addrs.map((a) => [kind, 6, dev ?? (kind <= 3 ? 'rtun' : 'rhome'), a]),
      });
    const ok = (r: Raw, n: number, what: string): void => {
      t.same(r.results, new Array(n).fill(0), `${what}: every op acknowledged with 0`);
    };

    // Batches of 1, 100 and 5000 routes (replace) and proxy entries (add), disjoint addresses.
    const sets = [range(1, 1), range(0x100, 100), range(0x10000, 5000)];
    for (const addrs of sets) {
      ok(await batch(1, addrs), addrs.length, `route replace x${addrs.length}`);
      ok(await batch(4, addrs), addrs.length, `proxy add x${addrs.length}`);
    }
    const all = sets.flat().sort();
    let now = await tables(ns);
    t.same(
      now.routes,
      all,
      'ip -6 route: exactly the 5101 routes asked for, unicast via rtun, proto boot, metric 1024',
    );
    t.same(
      now.proxies,
      all,
      'ip -6 neigh show proxy: exactly the 5101 entries asked for, on rhome',
    );

    // Idempotent: again the same, and route add (EXCL) of existing routes.
    ok(await batch(1, sets[2]!), 5000, 'route replace of existing routes');
    ok(await batch(4, sets[2]!), 5000, 'proxy add of existing entries');
    ok(await batch(2, sets[1]!), 100, 'route add (EXCL) of existing routes: EEXIST counts as done');

    // Delete the 100-set, then delete it again: nothing there counts as done.
    ok(await batch(3, sets[1]!), 100, 'route delete x100');
    ok(await batch(5, sets[1]!), 100, 'proxy delete x100');
    ok(await batch(3, sets[1]!), 100, 'route delete of missing routes (ESRCH) counts as done');
    ok(await batch(5, sets[1]!), 100, 'proxy delete of missing entries (ENOENT) counts as done');
    now = await tables(ns);
    const left = [...sets[0]!, ...sets[2]!].sort();
    t.same(now.routes, left, 'after the deletes exactly the other routes are left');
    t.same(now.proxies, left, 'after the deletes exactly the other proxy entries are left');

    // A bad ifindex fails alone, in the middle of a batch.
    const mixed = await child.ask<Raw>({
      raw: [
        [1, 6, 'rtun', hoa(0x200)],
        [1, 6, 999_999, hoa(0x201)],
        [4, 6, 999_999, hoa(0x202)],
        [4, 6, 'rhome', hoa(0x203)],
        [2, 6, 'rtun', hoa(0x204)],
      ],
    });
    t.same(
      mixed.results,
      [0, -ENODEV, -ENODEV, 0, 0],
      'only the ops with the bad ifindex fail (ENODEV)',
    );
    now = await tables(ns);
    t.ok(
      now.routes.includes(hoa(0x200)) && now.routes.includes(hoa(0x204)),
      'its neighbours are in place',
    );
    t.notOk(now.routes.includes(hoa(0x201)), 'the failed route is not');
    t.ok(now.proxies.includes(hoa(0x203)) && !now.proxies.includes(hoa(0x202)), 'same for proxies');

    // IPv4: a /32 host route like `ip route replace A/32 dev rtun` (scope link).
    const v4 = await child.ask<Raw>({ raw: [[1, 4, 'rtun', '10.99.17.5']] });
    t.same(v4.results, [0], 'IPv4 host route replaced');
    const v4Routes = (await tables(ns)).v4;
    t.equal(v4Routes.length, 1, 'one IPv4 route');
    t.match(
      v4Routes[0],
      /^unicast 10\.99\.17\.5 dev rtun proto boot scope link\b/,
      'as ip makes it',
    );

    // The same entries as the ip commands make: compare one made each way, attribute by attribute.
    await run('ip', ['-n', ns, 'route', 'replace', `${hoa(0x300)}/128`, 'dev', 'rtun']);
    await run('ip', ['-n', ns, 'neigh', 'replace', 'proxy', hoa(0x300), 'dev', 'rhome']);
    const detail = async (a: string): Promise<string> =>
      (await run('ip', ['-n', ns, '-d', '-j', '-6', 'route', 'show', `${a}/128`])).replace(a, 'X') +
      (await run('ip', ['-n', ns, '-d', '-j', '-6', 'neigh', 'show', 'proxy', a])).replace(a, 'X');
    t.equal(
      await detail(hoa(1)),
      await detail(hoa(0x300)),
      'route and proxy entry equal what ip makes',
    );

    // Bad input throws before anything is sent.
    const bad = await child.ask<{ thrown?: { name: string } }>({ raw: [[9, 6, 'rtun', hoa(1)]] });
    t.equal(bad.thrown?.name, 'RangeError', 'an unknown kind is a RangeError');

    // Clean the raw part up through the batch call itself.
    const everything = [...left, hoa(0x200), hoa(0x203), hoa(0x204), hoa(0x300)];
    ok(await batch(3, everything), everything.length, 'route delete of the rest');
    ok(await batch(5, everything), everything.length, 'proxy delete of the rest');
    now = await tables(ns);
    t.same([now.routes, now.proxies], [[], []], 'nothing of the test prefix is left');
  },
);

void t.test(
  'programmer and KernelHomeLink: rtnetlink and the ip -batch fallback',
  { skip },
  async (t) => {
    const { ns, child } = await homeLinkNetns(t, 'rp');
    type Programmed = { errors: ({ code: string } | null)[]; status: Record<string, unknown> };

    for (const via of ['rtnetlink', 'ip-batch'] as const) {
      const addrs = range(0x1000, 300);
      const ops = addrs.flatMap((address) => [
        { kind: 'route-replace', address },
        { kind: 'proxy-add', address },
      ]);
      const added = await child.ask<Programmed>({ via, ops });
      t.same(added.errors, new Array(600).fill(null), `${via}: 600 ops queued at once, all done`);
      t.match(
        added.status,
        { via, queued: 0, oldestMs: 0, done: 600, failed: {} },
        `${via}: status`,
      );
      t.ok(Number(added.status.batches) >= 1, `${via}: in ${String(added.status.batches)} batches`);
      let now = await tables(ns);
      t.same(
        [now.routes, now.proxies],
        [addrs, addrs],
        `${via}: exactly the 300 routes and entries`,
      );
      const removed = await child.ask<Programmed>({
        via,
        ops: [
          ...ops.map((o) => ({
            ...o,
            kind: o.kind === 'route-replace' ? 'route-delete' : 'proxy-delete',
          })),
        ],
      });
      t.same(removed.errors, new Array(600).fill(null), `${via}: deletes done`);
      const again = await child.ask<Programmed>({
        via,
        ops: [
          { kind: 'route-delete', address: addrs[0] },
          { kind: 'proxy-delete', address: addrs[0] },
        ],
      });
      t.same(again.errors, [null, null], `${via}: deleting what is gone is done, not failed`);
      now = await tables(ns);
      t.same([now.routes, now.proxies], [[], []], `${via}: all gone`);
    }

    const bad = await child.ask<Programmed>({
      via: 'rtnetlink',
      ops: [{ kind: 'route-replace', address: 'fe80::1' }],
    });
    t.same(
      bad.errors,
      [null],
      'a link-local host route into the TUN is accepted (the kernel decides)',
    );
    await child.ask({ via: 'rtnetlink', ops: [{ kind: 'route-delete', address: 'fe80::1' }] });

    // KernelHomeLink: 500 bindings at once (with the L flag's link-local), then all removed.
    // Host routes go over rtnetlink; the addresses are defended by the addon's ND proxy (its
    // set), not by kernel proxy entries (issue #17).
    const started = await child.ask<{ status: Record<string, unknown> }>({ start: true });
    t.match(
      started.status,
      { via: 'rtnetlink', queued: 0, defence: 'ndproxy' },
      'start() picks rtnetlink and the ND proxy',
    );
    const hoas = range(0x20000, 500);
    const added = await child.ask<{ rejected: string[]; status: Record<string, unknown> }>({
      add: hoas,
      alsoDefend: ['fe80::17'],
    });
    t.same(added.rejected, [], 'every bindingAdded resolved');
    t.match(added.status, {
      via: 'rtnetlink',
      queued: 0,
      oldestMs: 0,
      done: 500,
      failed: {},
      ndproxy: { addresses: 501 },
    });
    let now = await tables(ns);
    t.same([now.routes, now.proxies], [hoas, []], '500 routes, no kernel proxy entry');
    const removed = await child.ask<{ rejected: string[]; status: Record<string, unknown> }>({
      remove: hoas,
    });
    t.same(removed.rejected, [], 'every bindingRemoved resolved');
    t.match(
      removed.status,
      { queued: 0, failed: {}, ndproxy: { addresses: 0 } },
      'nothing behind, nothing failed, nothing defended (the link-local too)',
    );
    now = await tables(ns);
    t.same([now.routes, now.proxies], [[], []], 'all removed');
  },
);
