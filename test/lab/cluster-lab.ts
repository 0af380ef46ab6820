/**
 * The home agent cluster's lab (issue 18), for test/lab/ha-cluster.test.ts and
 * `npm run demo -- --cluster`: namespaces, a three-member etcd cluster and real daemons, every
 * one of them registered with `t.teardown` (removed even when the caller fails):
 *
 *   "home" ns: bridge homebr = the home link (2001:db8:100::/64), the server ::5 on it
 *   ha1..ha3:  `mip6 ha` with [cluster] (link hl0 on the home link, ::1..::3; underlay up0
 *              198.51.100.1-3, preference 9, 8, 7) and one etcd member each
 *              (198.51.100.N:2379/2380)
 *   mn1..mn3:  `mip6 mn` (198.51.100.11-13; home addresses ::11..::13), registered at ha1,
 *              ha2, ha3 respectively, probing their HA every 0.5 s
 *   "core" ns: bridge core0, the underlay joining HAs and members
 * With `virtual` (test/lab/ha-cluster-virtual.test.ts) there is no home link: the home prefix
 * lives on each HA's TUN (a virtual home network) and the HAs forward to each other over
 * HA-to-HA channels. Instead of the home link:
 *   "home" ns: a host beyond ha1 (2001:db8:300::5 on a veth to ha1's 2001:db8:300::1), routed
 *              to the home prefix through ha1; ha2 and ha3 route 2001:db8:300::/64 back to
 *              ha1 over the underlay (2001:db8:ff::N on up0); every HA forwards
 *   "x" ns:    an ordinary host on the underlay (198.51.100.50), no mip6, no key
 *   members:   [tun] routes the host's prefix into the tunnel
 * Only documentation ranges; every name carries a unique tag (test/helpers/netns.ts).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { HaStatus } from '../../src/io/control-protocol.js';
import { createNetns, noDad, run } from '../helpers/netns.js';
import { startEtcd, type EtcdCluster } from '../helpers/etcd.js';
import { Daemon, mip6Command, Provisioned, type MemberFiles, type Teardown } from './mip6-lab.js';
import { netnsSpawn, startTrafficPair, type TrafficPair } from './traffic-client.js';

export const PREFIX = '2001:db8:100::/64';
export const SERVER = '2001:db8:100::5';
export const HAS = [1, 2, 3] as const;
export const haUnderlay = (n: number): string => `198.51.100.${n}`;
export const haHome = (n: number): string => `2001:db8:100::${n}`;
export const mnUnderlay = (n: number): string => `198.51.100.${10 + n}`;
export const hoa = (n: number): string => `2001:db8:100::1${n}`;
/** The host beyond ha1 on a virtual home network, its prefix, and the ordinary host. */
export const BEYOND = '2001:db8:300::5';
export const BEYOND_PREFIX = '2001:db8:300::/64';
export const ATTACKER4 = '198.51.100.50';

export interface ClusterLab {
  /** The home link's namespace (the server); with `virtual` the host beyond ha1. */
  home: string;
  /** With `virtual`: an ordinary host's namespace on the underlay (no mip6, no key). */
  attacker?: string;
  /** The HAs' key files (their public keys). */
  haFiles: MemberFiles[];
  prov: Provisioned;
  haNs: string[];
  mnNs: string[];
  etcd: EtcdCluster;
  /** ha1..ha3 and mn1..mn3, started: the HAs logged "started", the members "registered". */
  has: Daemon[];
  mns: Daemon[];
}

/** Builds the lab and starts everything in it. */
export async function clusterLab(
  t: Teardown,
  opts: { virtual?: boolean } = {},
): Promise<ClusterLab> {
  const virtual = opts.virtual === true;
  // ---- namespaces: the underlay bridge, the home link, three HAs, three members ----------
  const core = await createNetns(t, 'co');
  const home = await createNetns(t, virtual ? 'bx' : 'hl');
  await noDad(home);
  await run('ip', ['-n', core, 'link', 'add', 'core0', 'type', 'bridge']);
  await run('ip', ['-n', core, 'link', 'set', 'core0', 'up']);
  if (!virtual) {
    await run('ip', ['-n', home, 'link', 'add', 'homebr', 'type', 'bridge']);
    await run('ip', ['-n', home, 'link', 'set', 'homebr', 'up']);
    await run('ip', ['-n', home, 'addr', 'add', `${SERVER}/64`, 'dev', 'homebr', 'nodad']);
  }
  /** A veth from `ns` (named `name` there) into `bridge` of `bridgeNs`. */
  const plug = async (ns: string, name: string, bridgeNs: string, bridge: string, tag: string) => {
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
    await run('ip', ['-n', ns, 'addr', 'add', `${haUnderlay(n)}/24`, 'dev', 'up0']);
    if (virtual) await virtualRoutes(ns, n, home);
    else {
      await plug(ns, 'hl0', home, 'homebr', `l${n}`);
      await run('ip', ['-n', ns, 'addr', 'add', `${haHome(n)}/64`, 'dev', 'hl0', 'nodad']);
    }
    haNs.push(ns);
    const m = await createNetns(t, `m${n}`);
    await noDad(m);
    await plug(m, 'up0', core, 'core0', `m${n}`);
    await run('ip', ['-n', m, 'addr', 'add', `${mnUnderlay(n)}/24`, 'dev', 'up0']);
    mnNs.push(m);
  }
  let attacker: string | undefined;
  if (virtual) {
    attacker = await createNetns(t, 'x');
    await plug(attacker, 'up0', core, 'core0', 'x');
    await run('ip', ['-n', attacker, 'addr', 'add', `${ATTACKER4}/24`, 'dev', 'up0']);
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
${virtual ? '' : 'link = "hl0"'}
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
${virtual ? `routes = ["${BEYOND_PREFIX}"]` : ''}
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
  return {
    home,
    ...(attacker !== undefined ? { attacker } : {}),
    haNs,
    mnNs,
    etcd,
    has,
    mns,
    haFiles,
    prov,
  };
}

/**
 * A virtual home network's routing in HA `n`'s namespace: forwarding on, 2001:db8:ff::N on the
 * underlay; ha1 has the host beyond it (`beyond` ns) on a veth, the others route that host's
 * prefix to ha1.
 */
async function virtualRoutes(ns: string, n: number, beyond: string): Promise<void> {
  await run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1']);
  await run('ip', ['-n', ns, 'addr', 'add', `2001:db8:ff::${n}/64`, 'dev', 'up0', 'nodad']);
  if (n !== 1) {
    await run('ip', ['-n', ns, 'route', 'add', BEYOND_PREFIX, 'via', '2001:db8:ff::1']);
    return;
  }
  await run('ip', [
    '-n',
    ns,
    'link',
    'add',
    'bx0',
    'type',
    'veth',
    'peer',
    'name',
    'bx1',
    'netns',
    beyond,
  ]);
  await run('ip', ['-n', ns, 'addr', 'add', '2001:db8:300::1/64', 'dev', 'bx0', 'nodad']);
  await run('ip', ['-n', ns, 'link', 'set', 'bx0', 'up']);
  await run('ip', ['-n', beyond, 'addr', 'add', `${BEYOND}/64`, 'dev', 'bx1', 'nodad']);
  await run('ip', ['-n', beyond, 'link', 'set', 'bx1', 'up']);
  await run('ip', ['-n', beyond, 'link', 'set', 'lo', 'up']);
  await run('ip', ['-n', beyond, 'route', 'add', PREFIX, 'via', '2001:db8:300::1']);
}

/**
 * A TCP session from the server to each member (test/lab/traffic.ts: 50 kB/s each way, every
 * byte verified), all connected; killed in teardown if still running.
 */
export async function sessions(t: Teardown, lab: ClusterLab): Promise<TrafficPair[]> {
  const pairs: TrafficPair[] = [];
  t.teardown(() => pairs.forEach((p) => p.kill()));
  for (const n of HAS) {
    pairs.push(
      await startTrafficPair({
        serverSpawn: netnsSpawn(lab.mnNs[n - 1]!),
        clientSpawn: netnsSpawn(lab.home),
        listen: hoa(n),
        rate: 50_000,
        durationS: 200,
      }),
    );
  }
  return pairs;
}

/** The cluster as an HA's `mip6 status` shows it. */
export async function clusterOf(d: Daemon): Promise<HaStatus['cluster']> {
  return (await d.status<HaStatus>()).cluster;
}

/** "member:address:bindings" of each live HA, in the status's order. */
export function clusterView(c: HaStatus['cluster']): string | undefined {
  return c?.homeAgents.map((a) => `${a.member}:${a.address}:${a.bindings}`).join(' ');
}
