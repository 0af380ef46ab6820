/**
 * Sections every daemon shares: [identity], [tun], [log], control_socket, control_group, pcap. The role files
 * (ha.ts, mn.ts) read these first, then their own sections, then call finish() on each table.
 */
import type { TableReader } from './reader.js';

export type Role = 'ha' | 'mn' | 'cn';
export const LOG_LEVEL_NAMES = ['debug', 'info', 'warn', 'error'] as const;
export type ConfigLogLevel = (typeof LOG_LEVEL_NAMES)[number];
export const LOG_FORMAT_NAMES = ['text', 'json'] as const;
export type ConfigLogFormat = (typeof LOG_FORMAT_NAMES)[number];

/** Minimum link MTU for IPv6 (RFC 8200 §5): the overlay never goes below it. */
export const IPV6_MIN_MTU = 1280;
/** Underlay overhead per tunneled packet over IPv6: IPv6 header 40 (RFC 8200 §3) + UDP 8
 * (RFC 768) + channel data header 16 + AEAD tag 16 (RFC 8439 §2.8). */
export const TUNNEL_OVERHEAD_IPV6 = 80;
/** Same over IPv4: IPv4 header 20 (RFC 791 §3.1) + UDP 8 + channel 16 + tag 16. */
export const TUNNEL_OVERHEAD_IPV4 = 60;
/** Room for the one extension header route optimization adds to an inner packet: a type 2
 * routing header (RFC 6275 §6.4) or a Destination Options header with the Home Address option
 * (RFC 6275 §6.3), 24 bytes each. Reserved so rewritten packets still fit the underlay. */
export const RO_HEADER_ALLOWANCE = 24;
/** Default underlay (physical) MTU assumed when computing the overlay MTU: Ethernet. */
export const DEFAULT_UNDERLAY_MTU = 1500;
/** The largest MTU a Linux TUN accepts (IP_MAX_MTU). */
export const MAX_TUN_MTU = 65535;
/** Default daemon UDP port: IANA "dsmipv6" (RFC 5555 §3.1). */
export const DSMIPV6_PORT = 4191;

/** Overlay MTU that fits the worst (IPv6) underlay with room for one RO extension header. */
export function defaultOverlayMtu(underlayMtu: number): number {
  return Math.max(IPV6_MIN_MTU, underlayMtu - TUNNEL_OVERHEAD_IPV6 - RO_HEADER_ALLOWANCE);
}

export interface IdentityConfig {
  /** Path of this node's X25519 private key file (mode 0600; checked when loaded). */
  privateKey: string;
  /** Path of this node's member certificate. */
  certificate: string;
  /** Path of the overlay authority's Ed25519 public key. */
  authority: string;
  /**
   * Home agent only: path of the revocation list (`mip6 member remove` writes it), re-read on
   * SIGHUP; members whose key is on it are refused. Undefined: no revocation list.
   */
  revocationList: string | undefined;
}

export interface TunConfig {
  /** Interface name or template ("mip6%d"); undefined lets the kernel choose. */
  name: string | undefined;
  /** Overlay (TUN) MTU in bytes. */
  mtu: number;
  /** Underlay MTU in bytes the overlay MTU was checked against. */
  underlayMtu: number;
}

export interface LogConfig {
  level: ConfigLogLevel;
  format: ConfigLogFormat;
}

export interface CommonConfig {
  role: Role;
  /** The file the config was read from (for messages). */
  file: string;
  identity: IdentityConfig;
  tun: TunConfig;
  log: LogConfig;
  /** Unix socket of the control server. */
  controlSocket: string;
  /** Group (name or numeric gid) whose members may use the control socket; unset: root only. */
  controlGroup: string | undefined;
  /** Write decrypted inner packets to this pcap file, if set. */
  pcap: string | undefined;
}

/** Default control socket path for a role. */
export function defaultControlSocket(role: Role): string {
  return `/run/mip6/${role}.sock`;
}

/** Resolves `p` against the directory of the config file `file` (POSIX paths). */
export function resolveAgainst(file: string, p: string): string {
  if (p.startsWith('/')) return p;
  const slash = file.lastIndexOf('/');
  if (slash < 0) return p;
  return `${file.slice(0, slash + 1)}${p}`;
}

const IFNAME_MAX = 15; // IFNAMSIZ 16 including the NUL (linux/if.h)

/**
 * Reads the shared top-level keys and sections from the root table; `readTun`, when given,
 * reads a role's own keys of [tun] before the section is finished.
 */
export function readCommon(
  root: TableReader,
  role: Role,
  readTun?: (tun: TableReader) => void,
): CommonConfig {
  const file = root.file;
  const id = root.section('identity');
  const identity: IdentityConfig = {
    privateKey: resolveAgainst(file, id.requiredPath('private_key')),
    certificate: resolveAgainst(file, id.requiredPath('certificate')),
    authority: resolveAgainst(file, id.requiredPath('authority')),
    revocationList: undefined,
  };
  // Only a home agent refuses members by list; in mn.toml / cn.toml the key stays unknown.
  const revocationList = role === 'ha' ? id.optPath('revocation_list') : undefined;
  if (revocationList !== undefined) identity.revocationList = resolveAgainst(file, revocationList);
  id.finish();

  const tunT = root.section('tun');
  const name = tunT.optString('name');
  if (name !== undefined) {
    if (name.length === 0 || name.length > IFNAME_MAX) {
      throw tunT.error('name', `interface names are 1 to ${IFNAME_MAX} characters, got "${name}"`);
    }
    if (!/^[A-Za-z0-9_.%-]+$/.test(name) || (name.match(/%d/g) ?? []).length > 1) {
      throw tunT.error(
        'name',
        `"${name}" is not a valid interface name (letters, digits, "_", "-", ".", at most one "%d")`,
      );
    }
  }
  const underlayMtu = tunT.int('underlay_mtu', DEFAULT_UNDERLAY_MTU, {
    min: IPV6_MIN_MTU,
    max: MAX_TUN_MTU,
    unit: 'bytes',
  });
  const maxMtu = defaultOverlayMtu(underlayMtu);
  const mtu = tunT.optInt('mtu', { unit: 'bytes' });
  if (mtu !== undefined && mtu < IPV6_MIN_MTU) {
    throw tunT.error('mtu', `${mtu} bytes is below the IPv6 minimum link MTU ${IPV6_MIN_MTU}`);
  }
  if (mtu !== undefined && mtu > maxMtu) {
    throw tunT.error(
      'mtu',
      `${mtu} bytes does not fit the underlay: maximum is ${maxMtu} (underlay_mtu ${underlayMtu} - ` +
        `${TUNNEL_OVERHEAD_IPV6} tunnel overhead - ${RO_HEADER_ALLOWANCE} route-optimization header); ` +
        'raise tun.underlay_mtu if the path really carries larger packets',
    );
  }
  const tun: TunConfig = { name, mtu: mtu ?? maxMtu, underlayMtu };
  readTun?.(tunT);
  tunT.finish();

  const logT = root.section('log');
  const log: LogConfig = {
    level: logT.oneOf('level', LOG_LEVEL_NAMES, 'info'),
    format: logT.oneOf('format', LOG_FORMAT_NAMES, 'text'),
  };
  logT.finish();

  const controlSocket = resolveAgainst(
    file,
    root.optPath('control_socket') ?? defaultControlSocket(role),
  );
  const controlGroup = root.optString('control_group');
  if (
    controlGroup !== undefined &&
    !/^(\d+|[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?)$/.test(controlGroup)
  ) {
    throw root.error('control_group', `"${controlGroup}" is not a group name or a numeric gid`);
  }
  const pcapRaw = root.optPath('pcap');
  const pcap = pcapRaw === undefined ? undefined : resolveAgainst(file, pcapRaw);
  return { role, file, identity, tun, log, controlSocket, controlGroup, pcap };
}

/** Validates a UDP port; `allowZero` permits 0 = "kernel picks an ephemeral port". */
export function readPort(t: TableReader, key: string, dflt: number, allowZero = false): number {
  return t.int(key, dflt, { min: allowZero ? 0 : 1, max: 65535 });
}
