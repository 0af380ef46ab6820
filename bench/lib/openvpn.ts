/**
 * OpenVPN 2.6 as a peer in the netns lab (bench/compare.ts, bench/hop-latency.ts): client-server
 * mode over UDP, as OpenVPN users run it, between the lab's HA and MN namespaces, each end with a
 * self-signed EC certificate pinned by fingerprint on the other (peer-fingerprint), and the
 * source route in the MN that sends the client's inner address into the tunnel.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LAB_ADDR, type Lab } from '../../test/lab/lab.js';
import { waitFor } from '../../test/helpers/wait.js';

export interface OpenVpnOptions {
  /** The server's inner address (the first of its /prefix pool, e.g. 2001:db8:201::1). */
  serverAddress: string;
  prefix: number;
  port: number;
  /** The MN's routing table for traffic from the client's inner address. */
  table: number;
  /** Receives each end's process as it starts (its output, for logs). */
  onStart?: (end: 'ha' | 'mn', child: ChildProcess) => void;
  /** How long the client may take to come up (default 30 s). */
  timeoutMs?: number;
}

export interface OpenVpnPeer {
  ha: ChildProcess;
  mn: ChildProcess;
  /** The client's inner address, handed out by the server. */
  address: string;
}

export const OPENVPN_DEV = 'ovpnb';

function sh(cmd: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

/** In the MN: packets from `src` use their own table whose default route is `dev`. */
export async function sourceRoute(
  lab: Lab,
  src: string,
  dev: string,
  table: number,
): Promise<void> {
  await lab.exec('mn', 'ip', ['-6', 'route', 'replace', '::/0', 'dev', dev, 'table', `${table}`]);
  await lab.exec('mn', 'ip', [
    '-6',
    'rule',
    'add',
    'from',
    src,
    'lookup',
    `${table}`,
    'pref',
    `${table}`,
  ]);
}

/** A self-signed EC certificate for one end; returns its SHA-256 fingerprint. */
async function certificate(dir: string, name: string): Promise<string> {
  const key = join(dir, `ovpn-${name}.key`);
  const crt = join(dir, `ovpn-${name}.crt`);
  await sh('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    key,
    '-out',
    crt,
    '-days',
    '2',
    '-subj',
    `/CN=mip6-bench-${name}`,
  ]);
  const fp = await sh('openssl', ['x509', '-in', crt, '-noout', '-fingerprint', '-sha256']);
  return fp.trim().replace(/^.*=/, '');
}

/**
 * Starts the server in the HA namespace and the client in the MN namespace, waits until the
 * client has its address, and routes that address into the tunnel in the MN.
 */
export async function startOpenVpn(
  lab: Lab,
  dir: string,
  opts: OpenVpnOptions,
): Promise<OpenVpnPeer> {
  const fpHa = await certificate(dir, 'ha');
  const fpMn = await certificate(dir, 'mn');
  // The server tells clients apart by the peer-id of DATA_V2 packets, so a client that shows
  // up from a new address floats at once.
  const common = (name: string, peerFp: string): string[] => [
    `dev ${OPENVPN_DEV}`,
    'dev-type tun',
    'float',
    `cert ${join(dir, `ovpn-${name}.crt`)}`,
    `key ${join(dir, `ovpn-${name}.key`)}`,
    `peer-fingerprint ${peerFp}`,
    'persist-tun',
    'persist-key',
    'verb 3',
    'script-security 0',
  ];
  const haConf = [
    ...common('ha', fpMn),
    'mode server',
    'tls-server',
    'proto udp6',
    'dh none',
    `port ${opts.port}`,
    `server-ipv6 ${opts.serverAddress.replace(/1$/, '')}/${opts.prefix}`,
    'topology subnet',
    // ping every second, restart after 4 s of silence (pushed to the client; the server doubles it)
    'keepalive 1 4',
  ];
  const mnConf = [
    ...common('mn', fpHa),
    'client',
    'nobind',
    `remote ${LAB_ADDR.ha.v4} ${opts.port} udp4`,
    `remote ${LAB_ADDR.ha.v6} ${opts.port} udp6`,
    'connect-retry 1 1',
  ];
  writeFileSync(join(dir, 'ovpn-ha.conf'), `${haConf.join('\n')}\n`);
  writeFileSync(join(dir, 'ovpn-mn.conf'), `${mnConf.join('\n')}\n`);
  const ha = lab.spawn('ha', 'openvpn', ['--config', join(dir, 'ovpn-ha.conf')]);
  const mn = lab.spawn('mn', 'openvpn', ['--config', join(dir, 'ovpn-mn.conf')]);
  opts.onStart?.('ha', ha);
  opts.onStart?.('mn', mn);
  let clientLog = '';
  mn.stdout?.on('data', (d: Buffer) => {
    clientLog = (clientLog + d.toString()).slice(-4096);
  });
  await waitFor(
    'OpenVPN tunnel up',
    async () => clientLog.includes('Initialization Sequence Completed'),
    opts.timeoutMs ?? 30_000,
    50,
  );
  // The server handed the client the first address of its pool: find it.
  const r = await lab.exec('mn', 'ip', [
    '-j',
    '-6',
    'addr',
    'show',
    'dev',
    OPENVPN_DEV,
    'scope',
    'global',
  ]);
  const addr = (JSON.parse(r.stdout) as { addr_info?: { local?: string }[] }[])[0]?.addr_info?.[0]
    ?.local;
  if (addr === undefined) throw new Error('OpenVPN client got no IPv6 address');
  await sourceRoute(lab, addr, OPENVPN_DEV, opts.table);
  return { ha, mn, address: addr };
}
