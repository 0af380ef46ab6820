/**
 * `mip6 ha -c ha.toml` and `mip6 mn -c mn.toml`: the composition root of the daemons. Reads
 * and checks the configuration and the key files, opens the TUN and the UDP sockets, builds the
 * role on top of them, serves the control socket, and on SIGINT/SIGTERM shuts down in order
 * (the MN deregisters first), removing the TUN and the control socket.
 */
import { lookup } from 'node:dns/promises';
import { constants as osConstants } from 'node:os';
import type { Command } from 'commander';
import {
  loadCnConfig,
  loadHaConfig,
  loadMnConfig,
  PORTAL_LOGIN_S,
  type CnConfig,
  type CommonConfig,
  type HaConfig,
  type MnConfig,
} from '../config/index.js';
import {
  formatAllowedPrefix,
  verifyCertificate,
  type MemberCertificate,
  type Role,
} from '../crypto/certificate.js';
import { SecureEndpoint } from '../crypto/endpoint.js';
import {
  readAuthorityPublic,
  readCertificate,
  readMemberPrivate,
  readMemberPublic,
} from './key-files.js';
import { initCrypto } from '../crypto/sodium.js';
import { RouteCareOfSource } from '../io/care-of.js';
import { SystemClock } from '../io/clock.js';
import { startControlServer, type ControlServer } from '../io/control-socket.js';
import { KernelHomeAddress, pinHomePrefix } from '../io/home-address.js';
import { KernelHomeLink } from '../io/home-link.js';
import { interfaceIndex } from '../io/iproute.js';
import { createNativeBatchAead } from '../io/native-aead.js';
import { PcapSink } from '../io/pcap-sink.js';
import { offloadNames } from '../roles/offloads.js';
import { openTun } from '../io/tun.js';
import type { ExpressLane, TunDevice, UdpEndpoint } from '../io/types.js';
import { openUdp } from '../io/udp.js';
import { EXPRESS_HOME_AGENT, EXPRESS_MOBILE_NODE, NativeExpressLane } from '../io/express.js';
import { loadAddon, type NativeHandle } from '../io/addon.js';
import { TunnelRoutes } from '../io/tunnel-routes.js';
import { KillSwitch, removeStaleKillSwitch } from '../io/kill-switch.js';
import { TunnelDns } from '../io/tunnel-dns.js';
import { probeCaptivePortal } from '../io/portal-probe.js';
import { KernelIpv4HomeNetwork } from '../io/ipv4-home-network.js';
import { KernelListenPorts } from '../io/listen-ports.js';
import { addAddress, deleteAddress } from '../io/iproute.js';
import { certificateAllowsIpv4, Ipv4HomeAddresses } from '../protocol/ipv4-home-addresses.js';
import type { NodeEnvironment } from '../roles/common.js';
import { certificateAllows, HomeAgent } from '../roles/ha/home-agent.js';
import type { BindingStore, StoredBinding } from '../io/binding-store.js';
import { clusterStatus, joinCluster, openClusterStore } from './ha-cluster.js';
import { openSqliteBindingStore } from '../io/sqlite-binding-store.js';
import { haDiscovery, readRevocationList, reloadHomeAgent, Revocations } from './ha-reload.js';
import { tuneJitForPackets } from './jit.js';
import { MobileNode } from '../roles/mn/mobile-node.js';
import type { MnHomeLinkControl } from '../roles/mn/mobile-node-options.js';
import { RouteOptimization } from '../roles/mn/route-optimization.js';
import { ConfigError, CryptoError, IoError } from '../util/errors.js';
import { isLogLevel, Logger, type LogFormat } from '../util/log.js';
import { systemWallClock } from '../util/wall-clock.js';
import { isIpv4, parseIpv6, prefixContains } from '../wire/address.js';
import type { CapabilityName } from '../io/capabilities.js';
import { dropPrivileges, resolveGroup, resolveUser, type TargetUser } from './privileges.js';

interface DaemonFlags {
  config: string;
  pcap?: string;
  logFormat?: string;
  logLevel?: string;
  user?: string;
}

function makeLogger(cfg: CommonConfig, flags: DaemonFlags, role: Role): Logger {
  const format = (flags.logFormat ?? cfg.log.format) as LogFormat;
  if (format !== 'text' && format !== 'json') {
    throw new ConfigError(
      '--log-format',
      'log-format',
      `must be "text" or "json", got "${format}"`,
    );
  }
  const level = flags.logLevel ?? cfg.log.level;
  if (!isLogLevel(level)) {
    throw new ConfigError(
      '--log-level',
      'log-level',
      `must be debug, info, warn or error, got "${level}"`,
    );
  }
  return new Logger({ sink: process.stderr, format, level, fields: { role } });
}

/** Loads our identity and checks that our own certificate is valid, ours, and of our role. */
function loadIdentity(
  cfg: CommonConfig,
  role: Role,
  allowedPeers: readonly Role[],
  isRevoked?: (publicKey: Uint8Array) => boolean,
): SecureEndpoint {
  const staticKey = readMemberPrivate(cfg.identity.privateKey);
  const certificate = readCertificate(cfg.identity.certificate);
  const authorityPublicKey = readAuthorityPublic(cfg.identity.authority);
  const verdict = verifyCertificate(certificate, authorityPublicKey, Date.now(), [role]);
  if (verdict !== 'ok') {
    throw new CryptoError(
      'ERR_OWN_CERTIFICATE',
      `${cfg.identity.certificate}: our certificate is not usable: ${verdict} ` +
        `(checked against the authority ${cfg.identity.authority}, role ${role})`,
    );
  }
  const endpoint = new SecureEndpoint({
    staticKey,
    certificate,
    authorityPublicKey,
    allowedPeerRoles: allowedPeers,
    ...(isRevoked !== undefined ? { isRevoked } : {}),
    // Read at each handshake: an NTP step after start is seen (the roles' `now` keeps the
    // wall-clock offset taken at start, for steady timers).
    wallClock: systemWallClock,
  });
  return endpoint;
}

/** What our own certificate allows, for error messages: "2001:db8:100::/64, ...". */
function allowedText(cert: MemberCertificate): string {
  return cert.addresses.map((p) => formatAllowedPrefix(p)).join(', ');
}

/** The home prefix must lie inside a prefix our own (HA) certificate holds. */
function checkHaCertificateScope(cfg: HaConfig): void {
  const cert = readCertificate(cfg.identity.certificate);
  const net = parseIpv6(cfg.home.prefix.address);
  const covered = cert.addresses.some(
    (p) =>
      p.prefixLength <= cfg.home.prefix.length &&
      prefixContains({ address: p.address, length: p.prefixLength }, net, 0),
  );
  if (!covered) {
    throw new ConfigError(
      cfg.file,
      'home.prefix',
      `${cfg.home.prefix.text} is not within our certificate ${cfg.identity.certificate} ` +
        `(it allows ${allowedText(cert)})`,
    );
  }
}

/** The home address must be one our own (MN) certificate allows; so must a fixed IPv4 one. */
function checkMnCertificateScope(cfg: MnConfig | CnConfig): void {
  const cert = readCertificate(cfg.identity.certificate);
  const v4 = cfg.home.ipv4Address;
  if (v4 !== undefined && v4 !== 'auto' && !certificateAllowsIpv4(cert.addresses, v4)) {
    throw new ConfigError(
      cfg.file,
      'home.ipv4_address',
      `${v4} is not allowed by our certificate ${cfg.identity.certificate} (it would hold ` +
        `::ffff:${v4}; it allows ${allowedText(cert)}); use "auto" for an address from the pool`,
    );
  }
  if (!certificateAllows(cert, cfg.home.address)) {
    throw new ConfigError(
      cfg.file,
      'home.address',
      `${cfg.home.address} is not allowed by our certificate ${cfg.identity.certificate} ` +
        `(it allows ${allowedText(cert)})`,
    );
  }
}

/** `--user NAME`, resolved before anything is opened. */
function targetUser(flags: DaemonFlags): TargetUser | undefined {
  return flags.user === undefined ? undefined : resolveUser(flags.user);
}

/** `control_group`, resolved before anything is opened: the control socket's options. */
function controlOptions(cfg: CommonConfig): { group?: number } {
  return cfg.controlGroup === undefined ? {} : { group: resolveGroup(cfg.controlGroup, cfg.file) };
}

/**
 * Gives up root for `--user` (see src/cli/privileges.ts for why each role keeps what it
 * keeps); on failure the control socket is closed and the error propagates (exit 1).
 */
async function switchUser(
  user: TargetUser | undefined,
  keep: readonly CapabilityName[],
  control: ControlServer,
  log: Logger,
): Promise<void> {
  if (user === undefined) return;
  try {
    dropPrivileges(user, keep);
  } catch (err) {
    await control.close();
    throw err;
  }
  log.info('privileges', {
    user: user.name,
    uid: user.uid,
    gid: user.gid,
    capabilities: keep.length > 0 ? keep.join(',') : 'none',
  });
}

/** Channels the express lane carries at once (the first armed after each clear; more stay on
 *  the JS path). */
const EXPRESS_CAPACITY = 64;

/**
 * The native express lane over the TUN and the sockets (issue #16, native/express.c), unless
 * MIP6_EXPRESS=off (every packet through JS, as before: for comparisons and as a way out) or
 * the addon predates it.
 */
function openExpress(
  mode: typeof EXPRESS_HOME_AGENT | typeof EXPRESS_MOBILE_NODE,
  tun: TunDevice,
  udp4: UdpEndpoint | undefined,
  udp6: UdpEndpoint | undefined,
  log: Logger,
  homeAddress?: Uint8Array,
): ExpressLane | undefined {
  if (process.env.MIP6_EXPRESS === 'off') return undefined;
  const handle = (x: unknown): { nativeHandle: NativeHandle } | undefined =>
    x !== undefined && typeof x === 'object' && x !== null && 'nativeHandle' in x
      ? (x as { nativeHandle: NativeHandle })
      : undefined;
  const t = handle(tun);
  if (t === undefined) return undefined;
  try {
    return NativeExpressLane.open(loadAddon(), {
      mode,
      tun: t,
      udp4: handle(udp4),
      udp6: handle(udp6),
      capacity: EXPRESS_CAPACITY,
      homeAddress,
    });
  } catch (err) {
    log.warn('express-lane', { error: String(err) });
    return undefined;
  }
}

function openSocket(family: 4 | 6, address: string, port: number, mark?: number): UdpEndpoint {
  try {
    return openUdp({ family, address, port, ...(mark !== undefined ? { mark } : {}) });
  } catch (err) {
    if (err instanceof IoError && err.code === 'ERR_UDP_MARK') throw err;
    const e = err as NodeJS.ErrnoException;
    const where = family === 4 ? `${address}:${port}` : `[${address}]:${port}`;
    // The native socket reports IoError ERR_UDP_BIND with the errno; node:dgram the code.
    const errno = Math.abs(e.errno ?? 0);
    if (e.code === 'EADDRINUSE' || errno === osConstants.errno.EADDRINUSE) {
      throw new IoError(
        'ERR_PORT_IN_USE',
        `cannot listen on UDP ${where}: the port is in use (another mip6?)`,
      );
    }
    if (e.code === 'EADDRNOTAVAIL' || errno === osConstants.errno.EADDRNOTAVAIL) {
      throw new IoError('ERR_ADDRESS', `cannot listen on UDP ${where}: no such local address`);
    }
    throw new IoError('ERR_UDP', `cannot listen on UDP ${where}: ${e.code ?? ''} ${e.message}`);
  }
}

interface Running {
  env: NodeEnvironment;
  control: ControlServer;
  stop(): Promise<void>;
}

/** Runs until SIGINT/SIGTERM; resolves after a clean shutdown. */
/** How often the daemons look whether the kernel refused an offload after start. */
const OFFLOAD_CHECK_MS = 10_000;

/**
 * Says once, in a warn line, when the kernel refused an offload after start (a segmented UDP
 * send, a TCP super-packet written to the TUN): the addon turned it off for that socket or
 * device and goes on without it (native/udp.c, native/tun_linux.c).
 */
export function watchOffloads(
  log: Logger,
  tun: Pick<TunDevice, 'offloads'>,
  sockets: readonly (Pick<UdpEndpoint, 'family' | 'offloads'> | undefined)[],
  everyMs = OFFLOAD_CHECK_MS,
): () => void {
  const said = new Set<string>();
  const timer = setInterval(() => {
    for (const name of offloadNames(tun, sockets)) {
      if (!name.includes('-refused-') || said.has(name)) continue;
      said.add(name);
      log.warn('offload-refused', { offload: name, effect: 'turned off, going on without it' });
    }
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

async function runUntilSignal(running: Running): Promise<void> {
  await new Promise<void>((resolve) => {
    let stopping = false;
    const onSignal = (sig: string): void => {
      if (stopping) return;
      stopping = true;
      running.env.log.info('shutdown', { signal: sig });
      running
        .stop()
        .catch((err: unknown) => running.env.log.error('shutdown', { error: String(err) }))
        .finally(resolve);
    };
    process.once('SIGINT', () => onSignal('SIGINT'));
    process.once('SIGTERM', () => onSignal('SIGTERM'));
  });
}

function baseEnv(
  cfg: CommonConfig,
  flags: DaemonFlags,
  log: Logger,
  endpoint: SecureEndpoint,
  tun: TunDevice,
): NodeEnvironment {
  const clock = new SystemClock();
  const pcapFile = flags.pcap ?? cfg.pcap;
  let capture: PcapSink | undefined;
  if (pcapFile !== undefined) {
    try {
      capture = new PcapSink(pcapFile, (err) =>
        log.error('pcap', { file: pcapFile, error: err.message }),
      );
    } catch (err) {
      log.error('pcap', {
        file: pcapFile,
        error: (err as Error).message,
        note: 'capture disabled',
      });
    }
  }
  return { endpoint, tun, clock, epochOffsetMs: Date.now() - clock.now(), log, capture };
}

export async function runHomeAgent(flags: DaemonFlags): Promise<void> {
  tuneJitForPackets();
  const cfg: HaConfig = await loadHaConfig(flags.config);
  await initCrypto();
  const log = makeLogger(cfg, flags, 'ha');
  // Members on the revocation list are refused in every handshake; SIGHUP re-reads it.
  const revocations = new Revocations();
  if (cfg.identity.revocationList !== undefined) {
    revocations.current = readRevocationList(cfg.identity.revocationList);
  }
  // A cluster on a virtual home network forwards between its home agents: their channels
  // (certificate role ha) are accepted too, and carry nothing but data for members served here.
  const forwardToPeers = cfg.cluster !== undefined && cfg.home.link === undefined;
  const endpoint = loadIdentity(
    cfg,
    'ha',
    forwardToPeers ? ['mn', 'cn', 'ha'] : ['mn', 'cn'],
    revocations.isRevoked,
  );
  checkHaCertificateScope(cfg);
  // Bindings that survive a restart ([home] state, issue 20), opened before anything is set up:
  // a missing module or a bad file is one error line with nothing to undo.
  // A cluster ([cluster], issue 18) keeps them in etcd, shared by the prefix's home agents.
  const cluster = await openClusterStore(cfg);
  const store: BindingStore | undefined =
    cluster ??
    (cfg.home.state === undefined
      ? undefined
      : openSqliteBindingStore(cfg.home.state, { configKey: `[home] state of ${cfg.file}` }));
  let stored: StoredBinding[] = [];
  try {
    if (store !== undefined) stored = await store.load();
  } catch (err) {
    await store?.close();
    throw err;
  }
  const user = targetUser(flags);
  const controlOpts = controlOptions(cfg);
  // On a real home link: a route and a proxy-ND entry (ip) and NAs (raw socket) per binding.
  const keep: CapabilityName[] = cfg.home.link === undefined ? [] : ['NET_ADMIN', 'NET_RAW'];
  endpoint.setAead(createNativeBatchAead());
  const prefixLen = cfg.home.prefix.length;
  const tun = await openTun({
    ...(cfg.tun.name !== undefined ? { name: cfg.tun.name } : {}),
    mtu: cfg.tun.mtu,
    // Without a physical home link the HA's home address lives on the TUN (virtual home network).
    addresses: cfg.home.link === undefined ? [`${cfg.home.address}/${prefixLen}`] : [],
  });
  const sockets: UdpEndpoint[] = [];
  const cleanup: (() => void)[] = [() => void store?.close(), () => tun.close()];
  try {
    const udp4 =
      cfg.listen.address4 !== undefined
        ? openSocket(4, cfg.listen.address4, cfg.listen.port)
        : undefined;
    if (udp4) sockets.push(udp4);
    const udp6 =
      cfg.listen.address6 !== undefined
        ? openSocket(6, cfg.listen.address6, cfg.listen.port)
        : undefined;
    if (udp6) sockets.push(udp6);
    for (const s of sockets) cleanup.push(() => s.close());
    // [listen] ports: the others are redirected by the kernel to the bound one.
    const listenPorts = new KernelListenPorts({
      tunName: tun.name,
      port: cfg.listen.port,
      ports: cfg.listen.ports,
      families: sockets.map((s) => s.family),
    });
    if (listenPorts.needed) {
      cleanup.push(() => void listenPorts.stop());
      await listenPorts.start();
    }
    const env: NodeEnvironment = {
      ...baseEnv(cfg, flags, log, endpoint, tun),
      udp4,
      udp6,
      express: openExpress(EXPRESS_HOME_AGENT, tun, udp4, udp6, log),
    };
    if (env.express !== undefined) cleanup.push(() => env.express?.close());
    const homeLink = new KernelHomeLink({
      tunName: tun.name,
      homePrefix: cfg.home.prefix.text,
      link: cfg.home.link,
      log,
    });
    await homeLink.start();
    cleanup.push(() => homeLink.stop());
    // RFC 5555 IPv4 home addresses: the pool into the TUN, optionally NAT44 out of an uplink.
    const pool = cfg.home.ipv4Pool;
    const ipv4Net =
      pool === undefined
        ? undefined
        : new KernelIpv4HomeNetwork({
            tunName: tun.name,
            pool,
            gateway: new Ipv4HomeAddresses(pool).gateway ?? '',
            masquerade: cfg.home.ipv4Masquerade,
          });
    if (ipv4Net !== undefined) {
      cleanup.push(() => void ipv4Net.stop());
      await ipv4Net.start();
    }
    const home = cfg.home.link;
    const ha = new HomeAgent(env, {
      homePrefix: cfg.home.prefix.text,
      homeAgentAddress: cfg.home.address,
      maxLifetimeSeconds: cfg.home.maxLifetime,
      ...(cfg.home.refreshAdvice !== undefined
        ? { refreshAdviceSeconds: cfg.home.refreshAdvice }
        : {}),
      natKeepaliveSeconds: cfg.home.natKeepalive,
      maxBindings: 100_000,
      homeLink,
      // Returning home is proven by a BU that arrives on this very link (looked up each time:
      // a re-created link gets a new index).
      ...(home !== undefined
        ? { isHomeLink: (ifindex: number) => ifindex !== 0 && ifindex === interfaceIndex(home) }
        : {}),
      discovery: haDiscovery(cfg),
      ipv4Pool: pool,
      store,
      cluster,
      forwardToPeers,
      isRevoked: revocations.isRevoked,
      underlayMtu: cfg.tun.underlayMtu,
    });
    if (store !== undefined) {
      const r = ha.restore(stored);
      log.info('bindings-restored', { state: store.location, ...r });
    }
    if (cluster !== undefined) await joinCluster(cfg, cluster, ha, log);
    if (home !== undefined && udp6?.localAddress !== '::') {
      // The returning-home BU comes to the HA's home address's solicited-node group.
      log.warn('return-home-unavailable', {
        link: home,
        why: 'members return home only to an IPv6 socket on :: ([listen] address6)',
      });
    }
    const control = await startControlServer(
      cfg.controlSocket,
      {
        status: () =>
          cluster === undefined
            ? ha.status()
            : { ...ha.status(), cluster: clusterStatus(cfg, cluster, ha.haChannels()) },
      },
      controlOpts,
    );
    await switchUser(user, keep, control, log);
    ha.start();
    log.info('started', {
      tun: tun.name,
      mtu: tun.mtu,
      prefix: cfg.home.prefix.text,
      ...(pool !== undefined ? { ipv4Pool: pool } : {}),
      listen: sockets.map((s) => `${s.localAddress}/${s.localPort}`).join(','),
      ...(cfg.listen.ports.length > 1 ? { ports: cfg.listen.ports.join(',') } : {}),
      control: cfg.controlSocket,
      revoked: revocations.current.size,
      offloads: offloadNames(tun, sockets).join(',') || 'none',
    });
    watchOffloads(log, tun, sockets);
    // SIGHUP: re-read ha.toml and the revocation list; new home agents / prefixes reach the
    // members, revoked ones are cut off (src/cli/ha-reload.ts).
    let running = cfg;
    let reloading = Promise.resolve();
    const onHangup = (): void => {
      reloading = reloading.then(async () => {
        running = await reloadHomeAgent(flags.config, running, ha, log, revocations);
      });
    };
    process.on('SIGHUP', onHangup);
    await runUntilSignal({
      env,
      control,
      stop: async () => {
        process.off('SIGHUP', onHangup);
        await ha.close(); // writes the pending binding changes
        await store?.close();
        await control.close();
        env.capture?.close();
        endpoint.close();
      },
    });
  } finally {
    for (const c of cleanup.reverse()) c();
  }
}

/** The HA's underlay addresses by family: literal addresses, or a name resolved through DNS. */
async function resolveAgent(
  cfg: MnConfig | CnConfig,
): Promise<{ agent4?: string; agent6?: string }> {
  const out: { agent4?: string; agent6?: string } = {};
  const add = (a: string): void => {
    if (isIpv4(a)) out.agent4 ??= a;
    else out.agent6 ??= a;
  };
  const names = cfg.home.agents;
  for (const name of names) {
    if (isIpv4(name) || name.includes(':')) {
      add(name);
      continue;
    }
    try {
      for (const r of await lookup(name, { all: true })) add(r.address);
    } catch (err) {
      throw new ConfigError(
        cfg.file,
        'home.agent',
        `cannot resolve "${name}": ${(err as Error).message}`,
      );
    }
  }
  return out;
}

export async function runMobileNode(flags: DaemonFlags): Promise<void> {
  await runMember(flags, 'mn');
}

/**
 * `mip6 cn`: a member with its own home address registered at its HA, like an MN, that also
 * answers return routability on its [underlay] port and keeps correspondent bindings.
 */
export async function runCorrespondentNode(flags: DaemonFlags): Promise<void> {
  await runMember(flags, 'cn');
}

async function runMember(flags: DaemonFlags, role: 'mn' | 'cn'): Promise<void> {
  tuneJitForPackets();
  const cfg: MnConfig | CnConfig =
    role === 'cn' ? await loadCnConfig(flags.config) : await loadMnConfig(flags.config);
  await initCrypto();
  const log = makeLogger(cfg, flags, role);
  if (cfg.home.agentPublicKey === undefined) {
    throw new ConfigError(
      cfg.file,
      'home.agent_public_key',
      "required key is missing (the home agent's public key file)",
    );
  }
  const agentPublicKey = readMemberPublic(cfg.home.agentPublicKey);
  // Direct channels with correspondents (and, for a CN, with the MNs that bind to it).
  const direct = role === 'cn' || cfg.correspondents.some((c) => c.routeOptimization);
  const endpoint = loadIdentity(cfg, role, direct ? ['ha', 'mn', 'cn'] : ['ha']);
  checkMnCertificateScope(cfg);
  const user = targetUser(flags);
  const controlOpts = controlOptions(cfg);
  endpoint.setAead(createNativeBatchAead());
  const agents = await resolveAgent(cfg);
  const tun = await openTun({
    ...(cfg.tun.name !== undefined ? { name: cfg.tun.name } : {}),
    mtu: cfg.tun.mtu,
    addresses: [`${cfg.home.address}/${cfg.home.prefixLength}`],
  });
  const cleanup: (() => void)[] = [() => tun.close()];
  try {
    // A family is opened when the HA or a correspondent (or, for a CN, any MN) may use it.
    const wants = (family: 4 | 6): boolean =>
      (family === 4 ? agents.agent4 : agents.agent6) !== undefined ||
      role === 'cn' ||
      cfg.correspondents.some((c) => c.underlay.some((u) => isIpv4(u) === (family === 4)));
    // [tun] routes beyond the home prefix: the sockets are marked and policy routing sends
    // everything else into the TUN (src/io/tunnel-routes.ts).
    const fullTunnel = cfg.tunnel.routes.length > 0;
    // The kill switch lets through only what carries the mark: the sockets need it then too.
    const mark = fullTunnel || cfg.tunnel.blockOutside ? cfg.tunnel.fwmark : undefined;
    const udp4 = wants(4) ? openSocket(4, '0.0.0.0', cfg.underlay.port, mark) : undefined;
    let udp6 = wants(6) ? openSocket(6, '::', cfg.underlay.port, mark) : undefined;
    let returnHome = cfg.movement.returnHome;
    if (udp6 === undefined && returnHome) {
      // The returning-home BU leaves through the home link over IPv6 even when the HA is
      // reached over IPv4 only; without IPv6 here we simply never go home.
      try {
        udp6 = openSocket(6, '::', cfg.underlay.port, mark);
      } catch (err) {
        returnHome = false;
        log.warn('return-home-unavailable', { why: `no IPv6 socket: ${String(err)}` });
      }
    }
    for (const s of [udp4, udp6]) if (s) cleanup.push(() => s.close());
    // The home prefix stays in the TUN even against a rogue RA's route (src/io/home-address.ts).
    await pinHomePrefix(tun.name, cfg.home.prefix.text).catch((err: unknown) =>
      log.warn('home-prefix-route', { error: String(err) }),
    );
    const tunnelRoutes = fullTunnel
      ? new TunnelRoutes({ tunName: tun.name, routes: cfg.tunnel.routes, mark: cfg.tunnel.fwmark })
      : undefined;
    if (tunnelRoutes !== undefined) {
      cleanup.push(() => void tunnelRoutes.remove());
      await tunnelRoutes.install();
      log.info('tunnel-routes', { routes: cfg.tunnel.routes.join(','), fwmark: tunnelRoutes.mark });
    }
    // The captive-portal probe gets through the kill switch (its host is an address: mn.ts).
    const probeUrl = cfg.movement.portalProbe;
    const probeHost = probeUrl === undefined ? undefined : new URL(probeUrl);
    const allowTcp =
      probeHost !== undefined
        ? [
            {
              address: probeHost.hostname.replace(/^\[|\]$/g, ''),
              port: Number(probeHost.port || 80),
            },
          ]
        : [];
    const killSwitch = cfg.tunnel.blockOutside
      ? new KillSwitch({ tunName: tun.name, mark: cfg.tunnel.fwmark, allowTcp })
      : undefined;
    // A table a crashed run left blocks everything, even with the kill switch off now.
    if (killSwitch === undefined) await removeStaleKillSwitch(cfg.tunnel.fwmark);
    if (killSwitch !== undefined) {
      cleanup.push(() => void killSwitch.remove());
      await killSwitch.install();
      log.info('kill-switch', { table: `inet ${killSwitch.table}` });
    }
    const env: NodeEnvironment = {
      ...baseEnv(cfg, flags, log, endpoint, tun),
      udp4,
      udp6,
      // Without route optimization only: its direct paths are chosen per destination in JS.
      express: direct
        ? undefined
        : openExpress(EXPRESS_MOBILE_NODE, tun, udp4, udp6, log, parseIpv6(cfg.home.address)),
    };
    if (env.express !== undefined) cleanup.push(() => env.express?.close());
    const careOf = new RouteCareOfSource({
      ...agents,
      mark,
      interfaces: cfg.underlay.interfaces,
      tunName: tun.name,
      events: cfg.movement.netlink,
      // return_home = false: no link is ever a home candidate, everything is tunneled.
      ...(returnHome
        ? {
            home: {
              homeAddress: cfg.home.address,
              prefixLength: cfg.home.prefixLength,
              homeAgentAddress: cfg.home.agentAddress,
            },
          }
        : {}),
    });
    const byName = cfg.home.agents.some((a) => !isIpv4(a) && !a.includes(':'));
    const ro = direct
      ? new RouteOptimization(env, {
          homeAddress: cfg.home.address,
          respond: cfg.role === 'cn' && cfg.routeOptimization.enabled,
          ...(cfg.role === 'cn'
            ? { maxBindingLifetimeSeconds: cfg.routeOptimization.bindingLifetime }
            : {}),
          correspondents: cfg.correspondents.map((c) => ({
            address: c.address,
            underlay4: c.underlay.find((u) => isIpv4(u)),
            underlay6: c.underlay.find((u) => !isIpv4(u)),
            port: c.port,
            publicKey: readMemberPublic(c.publicKey),
            enabled: c.routeOptimization,
            lifetimeSeconds: c.lifetime,
            requestAck: c.ack,
          })),
        })
      : undefined;
    const mn = new MobileNode(env, {
      role,
      ...(ro ? { routeOptimization: ro } : {}),
      homeAddress: cfg.home.address,
      homeAgentAddress: cfg.home.agentAddress,
      ...agents,
      agentPort: cfg.home.agentPort,
      agentPorts: cfg.home.agentPorts,
      ...(probeUrl !== undefined
        ? { portalProbe: (careOf: string) => probeCaptivePortal(probeUrl, careOf) }
        : {}),
      // [movement] portal_login (opt-in): DNS, HTTP and HTTPS by the visited network for a
      // browser's login, PORTAL_LOGIN_S at most; the MN closes it on move, home, registration.
      ...(cfg.movement.portalLogin && (tunnelRoutes !== undefined || killSwitch !== undefined)
        ? {
            portalLogin: {
              durationMs: PORTAL_LOGIN_S * 1000,
              open: async () => {
                await tunnelRoutes?.openPortal();
                await killSwitch?.openPortal();
              },
              close: async () => {
                await killSwitch?.closePortal();
                await tunnelRoutes?.closePortal();
              },
            },
          }
        : {}),
      agentPublicKey,
      lifetimeSeconds: cfg.home.lifetime,
      firstRegistrationTimeoutMs: cfg.home.firstRegistrationTimeout * 1000,
      prefer: cfg.underlay.prefer,
      careOf,
      recheckIntervalMs: cfg.movement.probeInterval * 1000,
      probeIntervalMs: cfg.movement.probeInterval * 1000,
      probeTimeoutMs: cfg.movement.probeTimeout * 1000,
      probeAttempts: cfg.movement.probeAttempts,
      homePrefixLength: cfg.home.prefixLength,
      ...(returnHome
        ? {
            homeLink: withTunnelRoutes(
              new KernelHomeAddress({
                tunName: tun.name,
                homeAddress: cfg.home.address,
                prefixLength: cfg.home.prefixLength,
                homePrefix: cfg.home.prefix.text,
                homeAgentAddress: cfg.home.agentAddress,
              }),
              [tunnelRoutes, killSwitch],
            ),
          }
        : {}),
      ...(byName ? { resolveAgents: () => resolveAgent(cfg) } : {}),
      ipv4HomeAddress: cfg.home.ipv4Address,
      underlayMtu: cfg.tun.underlayMtu,
      homeAddress4Control: {
        // The granted IPv4 home address on the TUN (a /32: the TUN is point to point).
        set: async (address, previous) => {
          if (previous !== null) await deleteAddress(tun.name, `${previous}/32`).catch(() => {});
          if (address !== null) await addAddress(tun.name, `${address}/32`);
        },
      },
    });
    const control = await startControlServer(
      cfg.controlSocket,
      { status: () => mn.status() },
      controlOpts,
    );
    // [tun] dns: the resolvers while the tunnel is up (the file method needs root: before the
    // switch; the old ones come back at exit, or at the next start after a crash).
    const dns =
      cfg.tunnel.dns.length > 0
        ? new TunnelDns({
            tunName: tun.name,
            servers: cfg.tunnel.dns,
            backupFile: `${cfg.controlSocket}.resolv-backup`,
          })
        : undefined;
    if (dns !== undefined) {
      cleanup.push(() => void dns.restore().catch(() => undefined));
      const method = await dns.apply();
      log.info('dns', { servers: cfg.tunnel.dns.join(','), method });
    }
    // Moving the HoA home and back, a default route at home (ip); the home probe (ping) and
    // the NAs announcing our return (raw sockets).
    await switchUser(user, ['NET_ADMIN', 'NET_RAW'], control, log);
    mn.start();
    log.info('started', {
      tun: tun.name,
      mtu: tun.mtu,
      hoa: cfg.home.address,
      agent4: agents.agent4 ?? '-',
      agent6: agents.agent6 ?? '-',
      control: cfg.controlSocket,
      offloads: offloadNames(tun, [udp4, udp6]).join(',') || 'none',
    });
    watchOffloads(log, tun, [udp4, udp6]);
    await runUntilSignal({
      env,
      control,
      stop: async () => {
        await mn.close();
        await tunnelRoutes?.remove();
        await killSwitch?.remove();
        await dns
          ?.restore()
          .catch((err: unknown) => log.warn('dns-restore', { error: String(err) }));
        await control.close();
        env.capture?.close();
        endpoint.close();
      },
    });
  } finally {
    for (const c of cleanup.reverse()) c();
  }
}

/**
 * At home there is no tunnel: the full tunnel's policy rules and the kill switch go away when
 * the home address moves onto the home link, and come back before it moves back onto the TUN.
 */
function withTunnelRoutes(
  home: KernelHomeAddress,
  parts: readonly ({ suspend(): Promise<void>; resume(): Promise<void> } | undefined)[],
): MnHomeLinkControl {
  const present = parts.filter((p) => p !== undefined);
  if (present.length === 0) return home;
  return {
    enter: async (link) => {
      await home.enter(link);
      for (const p of present) await p.suspend();
    },
    leave: async (link) => {
      for (const p of present) await p.resume();
      await home.leave(link);
    },
    announce: (link) => home.announce(link),
  };
}

function daemonCommand(
  program: Command,
  name: 'ha' | 'mn' | 'cn',
  description: string,
  run: (f: DaemonFlags) => Promise<void>,
): void {
  program
    .command(name)
    .description(description)
    .requiredOption('-c, --config <file>', `path to ${name}.toml`)
    .option('--pcap <file>', 'write every decrypted inner packet to this pcap file')
    .option('--log-format <format>', 'text or json (overrides [log] format)')
    .option('--log-level <level>', 'debug, info, warn or error (overrides [log] level)')
    .option(
      '--user <name>',
      'give up root after start-up: run as this user, keeping only CAP_NET_ADMIN and CAP_NET_RAW where still needed',
    )
    .action(async (opts: DaemonFlags) => {
      await run(opts);
    });
}

export function registerDaemons(program: Command): void {
  daemonCommand(program, 'ha', 'run the home agent', runHomeAgent);
  daemonCommand(program, 'mn', 'run the mobile node', runMobileNode);
  daemonCommand(
    program,
    'cn',
    'run a correspondent node (a member that answers return routability)',
    runCorrespondentNode,
  );
}
