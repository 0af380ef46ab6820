/**
 * The home agent cluster in namespaces (issue 18), real daemons and a real etcd cluster the
 * test starts itself:
 *
 *   "home" ns: bridge homebr = the home link (2001:db8:100::/64), the server ::5 on it
 *   ha1..ha3:  `mip6 ha` with [cluster] (link hl0 on the home link, ::1..::3; underlay up0
 *              198.51.100.1-3) and one etcd member each (198.51.100.N:2379/2380)
 *   mn1..mn3:  `mip6 mn` (198.51.100.11-13), registered at ha1, ha2, ha3 respectively
 *   "core" ns: bridge core0, the underlay joining HAs and members
 *
 *   1. Every HA's `mip6 status` shows the cluster: etcd ok, three HAs, one binding each; a
 *      member's DHAAD / MPA lists all three live HAs.
 *   2. A verified TCP session from the server to each member (traffic.ts).
 *   3. SIGKILL of ha1's daemon (the PID this test started): mn1 registers at another HA within
 *      its probe time, and that HA's status says so; mn2 and mn3 stay where they were.
 *   4. One etcd member killed: nothing changes (health ok, bindings in place).
 *   5. All etcd members gone: the HAs keep serving (traffic flows), `mip6 status` and a log
 *      line say etcd is unreachable and moves between HAs are refused; etcd back (its members
 *      restarted on their data): health ok, the cluster's view has all bindings again.
 *   6. ha3 cut off from the other HAs and their etcd members (iptables in its namespace): it
 *      serves its member on, the majority side drops its lease (ha3 and its binding leave the
 *      list members get); healed, ha3 writes its binding again on a new lease.
 *   7. Every TCP session finishes with every byte verified.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { HaStatus, MemberStatus } from '../../src/io/control-protocol.js';
import { formatStatus } from '../../src/cli/status.js';
import { createNetns, noDad, run } from '../helpers/netns.js';
import { etcdSkipReason, startEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';
import { labUnavailableReason } from './lab.js';
import { Daemon, mip6Command, Provisioned, type MemberFiles } from './mip6-lab.js';
import { netnsSpawn, startTrafficPair, type TrafficPair } from './traffic-client.js';

const skip = labUnavailableReason() ?? etcdSkipReason() ?? false;
const PREFIX = '2001:db8:100::/64';
const SERVER = '2001:db8:100::5';
const HAS = [1, 2, 3] as const;
const haUnderlay = (n: number): string => `198.51.100.${n}`;
const haHome = (n: number): string => `2001:db8:100::${n}`;
const mnUnderlay = (n: number): string => `198.51.100.${10 + n}`;
const hoa = (n: number): string => `2001:db8:100::1${n}`;

void t.test(
  'three HAs, one etcd cluster: SIGKILL of an HA',
  { skip, timeout: 240_000 },
  async (t) => {
    // ---- namespaces: the underlay bridge, the home link, three HAs, three members ----------
    const core = await createNetns(t, 'co');
    const home = await createNetns(t, 'hl');
    await noDad(home);
    await run('ip', ['-n', core, 'link', 'add', 'core0', 'type', 'bridge']);
    await run('ip', ['-n', core, 'link', 'set', 'core0', 'up']);
    await run('ip', ['-n', home, 'link', 'add', 'homebr', 'type', 'bridge']);
    await run('ip', ['-n', home, 'link', 'set', 'homebr', 'up']);
    await run('ip', ['-n', home, 'addr', 'add', `${SERVER}/64`, 'dev', 'homebr', 'nodad']);
    /** A veth from `ns` (named `name` there) into `bridge` of `bridgeNs`. */
    const plug = async (
      ns: string,
      name: string,
      bridgeNs: string,
      bridge: string,
      tag: string,
    ) => {
      const peer = `p${tag}`;
      await run('ip', [
        '-n',
        ns,
        'link',
        'add',
        name,
        'type',
        'veth',
        'peer',
        'name',
        peer,
        'netns',
        bridgeNs,
      ]);
      await run('ip', ['-n', bridgeNs, 'link', 'set', peer, 'master', bridge, 'up']);
      await run('ip', ['-n', ns, 'link', 'set', name, 'up']);
    };
    const haNs: string[] = [];
    const mnNs: string[] = [];
    for (const n of HAS) {
      const ns = await createNetns(t, `h${n}`);
      await noDad(ns);
      await plug(ns, 'up0', core, 'core0', `h${n}`);
      await plug(ns, 'hl0', home, 'homebr', `l${n}`);
      await run('ip', ['-n', ns, 'addr', 'add', `${haUnderlay(n)}/24`, 'dev', 'up0']);
      await run('ip', ['-n', ns, 'addr', 'add', `${haHome(n)}/64`, 'dev', 'hl0', 'nodad']);
      haNs.push(ns);
      const m = await createNetns(t, `m${n}`);
      await noDad(m);
      await plug(m, 'up0', core, 'core0', `m${n}`);
      await run('ip', ['-n', m, 'addr', 'add', `${mnUnderlay(n)}/24`, 'dev', 'up0']);
      mnNs.push(m);
    }

    // ---- etcd: three members, one in each HA's namespace ------------------------------------
    const etcd = await startEtcd(t, {
      size: 3,
      hosts: HAS.map(haUnderlay),
      ports: HAS.map(() => ({ client: 2379, peer: 2380 })),
      netns: (i) => haNs[i],
    });

    // ---- members and daemons ---------------------------------------------------------------
    const prov = await Provisioned.create();
    t.teardown(() => prov.remove());
    const daemons: Daemon[] = [];
    t.teardown(async () => {
      for (const d of [...daemons].reverse()) {
        if (d.exited === undefined) await d.stop(5_000).catch(() => d.child.kill('SIGKILL'));
      }
    });
    /** Provisions member `name`, writes <name>.toml (its socket and identity, then `rest`), runs it. */
    const member = async (
      ns: string,
      name: string,
      role: 'ha' | 'mn',
      addresses: string[],
      rest: string,
    ): Promise<{ files: MemberFiles; daemon: Daemon }> => {
      const files = await prov.member(name, role, addresses);
      const socket = join(prov.dir, `${name}.sock`);
      const identity = {
        private_key: files.key,
        certificate: files.cert,
        authority: prov.authorityPub,
      };
      const config = prov.write(
        `${name}.toml`,
        [
          `control_socket = "${socket}"`,
          '[identity]',
          ...Object.entries(identity).map(([k, v]) => `${k} = "${v}"`),
          rest,
        ].join('\n'),
      );
      const argv = [process.execPath, ...mip6Command(), role, '-c', config, '--log-format', 'json'];
      const child = spawn('ip', ['netns', 'exec', ns, ...argv], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const daemon = new Daemon(child, socket);
      daemons.push(daemon);
      return { files, daemon };
    };
    const haFiles: MemberFiles[] = [];
    const has: Daemon[] = [];
    const endpoints = etcd.endpoints.map((e) => `"${e}"`).join(', ');
    for (const n of HAS) {
      const ha = await member(
        haNs[n - 1]!,
        `ha${n}`,
        'ha',
        [PREFIX],
        `[tun]
name = "mip6ha"
[listen]
address4 = "${haUnderlay(n)}"
address6 = "off"
[home]
prefix = "${PREFIX}"
address = "${haHome(n)}"
link = "hl0"
preference = ${10 - n}
[cluster]
etcd = [${endpoints}]
name = "lab"
member = "ha${n}"
`,
      );
      haFiles.push(ha.files);
      has.push(ha.daemon);
    }
    for (const d of has) await d.waitLog((l) => l.event === 'started', 30_000);
    const mns: Daemon[] = [];
    for (const n of HAS) {
      const mn = await member(
        mnNs[n - 1]!,
        `mn${n}`,
        'mn',
        [hoa(n)],
        `[tun]
name = "mip6mn"
[home]
address = "${hoa(n)}"
prefix_length = 64
agent = "${haUnderlay(n)}"
agent_address = "${haHome(n)}"
agent_public_key = "${haFiles[n - 1]!.pub}"
lifetime = 120
[movement]
probe_interval = 0.5
probe_timeout = 0.3
probe_attempts = 3
`,
      );
      mns.push(mn.daemon);
    }
    for (const d of mns) await d.waitLog((l) => l.event === 'registered', 30_000);

    // ---- 1. the cluster as each HA sees it ---------------------------------------------------
    const clusterOf = async (d: Daemon) => (await d.status<HaStatus>()).cluster;
    const view = (c: HaStatus['cluster']) =>
      c?.homeAgents.map((a) => `${a.member}:${a.address}:${a.bindings}`).join(' ');
    const expected = HAS.map((n) => `ha${n}:${haHome(n)}:1`).join(' ');
    for (const d of has) {
      await waitFor(
        'the cluster in mip6 status',
        async () => view(await clusterOf(d)) === expected,
        15_000,
      );
      t.equal((await clusterOf(d))?.etcd.state, 'ok');
    }
    t.match(
      formatStatus(await has[1]!.status()),
      /cluster lab {2}member ha2 {2}etcd ok \(3 endpoints\)/,
    );
    await waitFor(
      "mn1 learned all three HAs (DHAAD / MPA from etcd's agents)",
      async () =>
        ((await mns[0]!.status<MemberStatus>()).homeAgents ?? []).filter((a) => a.usable).length ===
        3,
      15_000,
    );

    // ---- 2. a verified TCP session from the server to each member ---------------------------
    const pairs: TrafficPair[] = [];
    t.teardown(() => pairs.forEach((p) => p.kill()));
    for (const n of HAS) {
      pairs.push(
        await startTrafficPair({
          serverSpawn: netnsSpawn(mnNs[n - 1]!),
          clientSpawn: netnsSpawn(home),
          listen: hoa(n),
          rate: 50_000,
          durationS: 200,
        }),
      );
    }
    const received = async (p: TrafficPair): Promise<number> => {
      const r = await p.report();
      return Math.min(r.client.bytesReceived, r.server.bytesReceived);
    };
    for (const p of pairs)
      await waitFor('data both ways', async () => (await received(p)) > 0, 15_000);
    /** Every session moves another 10 kB both ways (within 20 s). */
    const flowing = async (what: string): Promise<void> => {
      for (const p of pairs) {
        const before = await received(p);
        await waitFor(what, async () => (await received(p)) > before + 10_000, 20_000);
      }
    };

    // ---- 3. SIGKILL of ha1 ------------------------------------------------------------------
    const mn1From = mns[0]!.lines.length;
    const others = await Promise.all(
      [2, 3].map(async (n) => (await mns[n - 1]!.status<MemberStatus>()).homeAgent),
    );
    const killedAt = Date.now();
    has[0]!.child.kill('SIGKILL');
    await waitFor('ha1 gone', () => has[0]!.exited !== undefined, 10_000);
    const swtch = await mns[0]!.waitLog((l) => l.event === 'home-agent-switch', 20_000, mn1From);
    await mns[0]!.waitLog((l) => l.event === 'registered', 20_000, mns[0]!.lines.indexOf(swtch));
    const took = Date.now() - killedAt;
    t.ok(took < 10_000, `mn1 registered at another HA ${took} ms after ha1 was killed`);
    const moved = (await mns[0]!.status<MemberStatus>()).homeAgent;
    t.not(moved, `${haUnderlay(1)}:4191`, `mn1 is at ${moved} now`);
    await waitFor(
      'another HA serves mn1',
      async () => {
        const all = await Promise.all(has.slice(1).map((d) => d.status<HaStatus>()));
        return all.some((s) => s.bindings.some((b) => b.homeAddress === hoa(1)));
      },
      10_000,
    );
    t.same(
      await Promise.all(
        [2, 3].map(async (n) => (await mns[n - 1]!.status<MemberStatus>()).homeAgent),
      ),
      others,
      'mn2 and mn3 stayed at their HAs',
    );
    await flowing('traffic flows again');
    await waitFor(
      "ha1's bindings gone from the cluster (its lease expired)",
      async () => view(await clusterOf(has[1]!))?.includes('ha1') === false,
      15_000,
    );

    // ---- 4. one etcd member killed: nothing changes -----------------------------------------
    await etcd.stop('e2', 'SIGKILL');
    await new Promise((r) => setTimeout(r, 3_000));
    for (const d of has.slice(1)) {
      t.equal((await clusterOf(d))?.etcd.state, 'ok', 'etcd healthy with two of three members');
    }
    const bindings = await Promise.all(
      has.slice(1).map(async (d) => (await d.status<HaStatus>()).bindings.length),
    );
    t.equal(
      bindings.reduce((a, b) => a + b, 0),
      3,
      'the three bindings still served',
    );

    // ---- 5. etcd entirely unreachable: the HAs keep serving, say so, and catch up ------------
    const logFrom = has.map((d) => d.lines.length);
    await Promise.all([etcd.stop('e0', 'SIGKILL'), etcd.stop('e1', 'SIGKILL')]);
    for (const [i, d] of has.entries()) {
      if (i === 0) continue;
      await waitFor(
        'etcd unreachable in status',
        async () => (await clusterOf(d))?.etcd.state === 'unreachable',
        20_000,
      );
      const line = await d.waitLog((l) => l.event === 'cluster-etcd', 5_000, logFrom[i]);
      t.match(line, {
        level: 'warn',
        state: 'unreachable',
        effect: /moves between home agents refused/,
      });
    }
    t.match(
      formatStatus(await has[1]!.status()),
      /etcd UNREACHABLE since .*serving the bindings held, moves between home agents refused/,
    );
    await flowing('traffic flows without etcd');
    await Promise.all(['e0', 'e1', 'e2'].map((m) => etcd.start(m)));
    for (const d of has.slice(1)) {
      await waitFor('etcd ok again', async () => (await clusterOf(d))?.etcd.state === 'ok', 30_000);
    }
    await waitFor(
      'the cluster caught up: three bindings, two HAs',
      async () => {
        const c = await clusterOf(has[2]!);
        return c?.homeAgents.length === 2 && c.homeAgents.reduce((a, x) => a + x.bindings, 0) === 3;
      },
      20_000,
    );

    // ---- 6. ha3 cut off from the other HAs (and their etcd members) -------------------------
    const cut = (op: '-I' | '-D') =>
      Promise.all(
        [1, 2].flatMap((n) => [
          run('ip', [
            'netns',
            'exec',
            haNs[2]!,
            'iptables',
            '-w',
            op,
            'INPUT',
            '-s',
            haUnderlay(n),
            '-j',
            'DROP',
          ]),
          run('ip', [
            'netns',
            'exec',
            haNs[2]!,
            'iptables',
            '-w',
            op,
            'OUTPUT',
            '-d',
            haUnderlay(n),
            '-j',
            'DROP',
          ]),
        ]),
      );
    await cut('-I');
    await waitFor(
      'ha3: etcd unreachable',
      async () => (await clusterOf(has[2]!))?.etcd.state === 'unreachable',
      20_000,
    );
    await waitFor(
      "ha2's view: ha3 and its binding gone with its lease",
      async () => view(await clusterOf(has[1]!)) === `ha2:${haHome(2)}:2`,
      20_000,
    );
    t.pass("the majority side dropped ha3's lease: ha2's cluster view lists ha2 alone");
    await flowing('traffic flows across the partition');
    t.equal(
      (await mns[2]!.status<MemberStatus>()).homeAgent,
      `${haUnderlay(3)}:4191`,
      'mn3 stayed at ha3',
    );
    await cut('-D');
    await waitFor(
      'ha3: etcd ok again',
      async () => (await clusterOf(has[2]!))?.etcd.state === 'ok',
      30_000,
    );
    await waitFor(
      'after the partition: ha3 and its binding back in the cluster',
      async () => view(await clusterOf(has[1]!)) === `ha2:${haHome(2)}:2 ha3:${haHome(3)}:1`,
      20_000,
    );
    t.pass('ha3 caught up: new lease, its binding written again');

    // ---- 7. every session intact -------------------------------------------------------------
    for (const p of pairs) {
      const end = await p.stop();
      t.ok(
        end.client.ok && end.server.ok,
        `every byte verified (${end.client.bytesReceived} / ${end.server.bytesReceived})`,
      );
      t.equal(end.client.mismatches + end.server.mismatches, 0);
    }
  },
);
