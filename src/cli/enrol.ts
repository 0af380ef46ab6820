/**
 * Enrolment in three commands (issue 19):
 *
 *   on the home agent:  mip6 init ha --address HOST --prefix PREFIX
 *                       mip6 member add NAME [--role mn|cn] [--pub FILE]   -> NAME.join
 *   on the device:      mip6 join NAME.join
 *
 * and `mip6 member list`, `mip6 member remove NAME` (revocation list + SIGHUP to the running
 * home agent). Two directories, each overridable:
 *
 *   the authority (--ca, else $MIP6_CA_DIR, else ~/.mip6-ca; root's, mode 0700):
 *       authority.key (0600)  authority.pub  members.json (0600)  members/NAME.join (0600)
 *   the configuration (--dir, else $MIP6_CONFIG_DIR, else /etc/mip6; mode 0700):
 *       home agent:  authority.pub  NAME.key (0600)  NAME.pub  NAME.cert  ha.toml  revoked.txt
 *       device:      authority.pub  AGENT.pub  NAME.key (0600)  NAME.cert  mn.toml (cn.toml)
 *
 * The daemons read only the configuration directory, which the systemd units hand to their
 * service user; the authority's key and the enrolment files (members' private keys) stay out
 * of it (README, "Keys and certificates"). Nothing is overwritten without --force, and every
 * refusal is one line.
 */
import { existsSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { loadHaConfig, parseHaConfig, DSMIPV6_PORT, type Ipv6Prefix } from '../config/index.js';
import { addressInPrefix, ipv6InPrefix, prefixOf } from '../config/reader.js';
import {
  certificateToText,
  parseAllowedPrefix,
  signCertificate,
  type MemberCertificate,
  type Role,
} from '../crypto/certificate.js';
import { readAuthorityPrivate, readMemberPrivate, readMemberPublic } from './key-files.js';
import {
  encodeKey,
  generateMember,
  KeyTag,
  type AuthorityKeyPair,
  type KeyPair,
} from '../crypto/keys.js';
import {
  parseRevocationList,
  REVOCATION_LIST_HEADER,
  revocationLine,
} from '../crypto/revocation-list.js';
import { initCrypto, lib } from '../crypto/sodium.js';
import { controlRequest } from '../io/control-socket.js';
import { sqliteAvailable } from '../io/sqlite-binding-store.js';
import { ConfigError, IoError } from '../util/errors.js';
import { canonicalIpv6, isIpv4 } from '../wire/address.js';
import {
  authorityDir,
  configDir,
  ensureDir,
  readText,
  reason,
  refuseExisting,
  tomlString,
  writeAtomic,
  writePlan,
  type PlannedFile,
  DEFAULT_CONFIG_DIR,
} from './enrol-files.js';
import { encodeEnrolment, type Enrolment } from './enrolment-file.js';
import { AUTHORITY_PRIVATE_FILE, AUTHORITY_PUBLIC_FILE, caInit, describe } from './keys.js';
import {
  activeMember,
  loadRegistry,
  nextHomeAddress,
  registryPath,
  requireHome,
  saveRegistry,
  type Registry,
  type RegistryMember,
} from './member-registry.js';
import { formatTable } from './status.js';

const ARGS = 'command line';
/** The certificate's member-name rule (src/crypto/certificate.ts), checked before any work. */
const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;
/** Same rule as the hostnames mn.toml accepts for `home.agent`. */
const HOSTNAME_RE =
  /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;
const DEFAULT_MEMBER_DAYS = 365;
const DEFAULT_HA_DAYS = 3650;
export const HA_CONFIG_FILE = 'ha.toml';
export const REVOCATION_FILE = 'revoked.txt';
export const MEMBERS_DIR = 'members';

function b64(key: Uint8Array): string {
  const s = lib();
  return s.to_base64(key, s.base64_variants.ORIGINAL);
}

function memberName(name: string, flag: string): string {
  if (!NAME_RE.test(name)) {
    throw new ConfigError(
      ARGS,
      flag,
      `"${name}" is not a member name: 1-63 of a-z 0-9 . _ -, starting with a letter or digit`,
    );
  }
  return name;
}

function wholeNumber(v: string | number, flag: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(ARGS, flag, `must be a whole number ${min}..${max}, got "${v}"`);
  }
  return n;
}

/** --prefix: an IPv6 prefix /16../120 with its host bits zero, as ha.toml takes it. */
function homePrefix(text: string): Ipv6Prefix {
  const p = parseAllowedPrefix(text);
  if (p === null || !text.includes('/')) {
    throw new ConfigError(
      ARGS,
      '--prefix',
      `not an IPv6 prefix with its host bits zero: "${text}" (e.g. 2001:db8:100::/64)`,
    );
  }
  if (p.prefixLength < 16 || p.prefixLength > 120) {
    throw new ConfigError(ARGS, '--prefix', `the length must be /16../120, got /${p.prefixLength}`);
  }
  const net = text.slice(0, text.indexOf('/'));
  return prefixOf(canonicalIpv6(net), p.prefixLength);
}

/** --address: where members reach the home agent: IPv4, IPv6 or a DNS name. */
function agentAddress(v: string): string {
  if (isIpv4(v)) return v;
  if (v.includes(':')) {
    try {
      return canonicalIpv6(v);
    } catch {
      throw new ConfigError(ARGS, '--address', `"${v}" is not a valid IPv6 address`);
    }
  }
  if (/^[\d.]+$/.test(v) || !HOSTNAME_RE.test(v)) {
    throw new ConfigError(
      ARGS,
      '--address',
      `"${v}" is neither an IPv4 address, an IPv6 address nor a host name`,
    );
  }
  return v.toLowerCase();
}

/** The authority of `caDir`: created when missing and `create`, else one line saying why not. */
async function openAuthority(
  caDir: string,
  create: boolean,
): Promise<{ keyPair: AuthorityKeyPair; publicText: string; created: boolean }> {
  const keyFile = join(caDir, AUTHORITY_PRIVATE_FILE);
  let created = false;
  try {
    statSync(keyFile);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' || !create) {
      const why =
        code === 'ENOENT'
          ? `no overlay authority here (${AUTHORITY_PRIVATE_FILE} missing): run \`mip6 init ha\` first, or give --ca DIR`
          : `cannot reach the authority: ${reason(err)}`;
      throw new IoError('ERR_AUTHORITY', `${caDir}: ${why}`);
    }
    ensureDir(caDir, 0o700);
    await caInit(caDir);
    created = true;
  }
  return {
    keyPair: readAuthorityPrivate(keyFile),
    publicText: readText(join(caDir, AUTHORITY_PUBLIC_FILE), 'authority public key'),
    created,
  };
}

function wipeAuthority(a: AuthorityKeyPair): void {
  lib().memzero(a.secretKey);
  lib().memzero(a.seed);
}

function issue(
  ca: AuthorityKeyPair,
  m: { name: string; role: Role; publicKey: Uint8Array; address: string; days: number },
): MemberCertificate {
  const now = Math.floor(Date.now() / 1000);
  return signCertificate(
    {
      name: m.name,
      role: m.role,
      publicKey: m.publicKey,
      addresses: [parseAllowedPrefix(m.address)!],
      notBefore: now - 300, // tolerate 5 minutes of clock skew between members
      notAfter: now + m.days * 86_400,
    },
    ca.secretKey,
  );
}

function registryEntry(
  m: { name: string; role: Role; address: string; publicKey: Uint8Array },
  cert: MemberCertificate,
  enrolment?: string,
): RegistryMember {
  return {
    name: m.name,
    role: m.role,
    address: m.address,
    publicKey: b64(m.publicKey),
    issued: new Date().toISOString(),
    notAfter: new Date(cert.notAfter * 1000).toISOString(),
    ...(enrolment !== undefined ? { enrolment } : {}),
  };
}

// ---- mip6 init ha ----------------------------------------------------------------------

export interface InitHaOptions {
  address: string[];
  prefix: string;
  dir?: string;
  ca?: string;
  name?: string;
  homeAddress?: string;
  port?: string | number;
  days?: string | number;
  controlSocket?: string;
  force?: boolean;
}

export interface InitHaResult {
  dir: string;
  caDir: string;
  authorityCreated: boolean;
  keptKey: boolean;
  config: string;
  name: string;
  prefix: string;
  homeAddress: string;
  agent: string[];
  notAfter: Date;
}

/** Where a system home agent keeps its bindings (systemd's StateDirectory=mip6). */
export const DEFAULT_HA_STATE = '/var/lib/mip6/ha.db';

/**
 * The [home] state line of a new ha.toml (issue 20): on for the system configuration
 * (/etc/mip6, run by contrib/mip6-ha.service, whose StateDirectory is /var/lib/mip6) when
 * better-sqlite3 loads here; else a comment saying how to turn it on (bindings in memory).
 */
function stateLine(dir: string): string[] {
  const on = dir === DEFAULT_CONFIG_DIR && sqliteAvailable();
  return on
    ? [
        '# bindings survive a restart of the home agent (README: [home] state)',
        `state = ${tomlString(DEFAULT_HA_STATE)}`,
      ]
    : [
        '# bindings in memory only; to keep them across restarts (needs the optional better-sqlite3):',
        `# state = ${tomlString(DEFAULT_HA_STATE)}`,
      ];
}

function haToml(
  o: { name: string; prefix: Ipv6Prefix; homeAddress: string; port: number; dir: string },
  controlSocket: string | undefined,
): string {
  return [
    `# mip6 home agent "${o.name}", written by \`mip6 init ha\` (README: Configuration).`,
    ...(controlSocket !== undefined ? [`control_socket = ${tomlString(controlSocket)}`] : []),
    '',
    '[identity]',
    `private_key = ${tomlString(`${o.name}.key`)}`,
    `certificate = ${tomlString(`${o.name}.cert`)}`,
    `authority = ${tomlString(AUTHORITY_PUBLIC_FILE)}`,
    `# members removed with \`mip6 member remove\`; re-read on SIGHUP`,
    `revocation_list = ${tomlString(REVOCATION_FILE)}`,
    '',
    '[listen]',
    `port = ${o.port}`,
    '',
    '[home]',
    `prefix = ${tomlString(o.prefix.text)}`,
    `address = ${tomlString(o.homeAddress)}`,
    ...stateLine(o.dir),
    '',
  ].join('\n');
}

export async function initHa(o: InitHaOptions): Promise<InitHaResult> {
  await initCrypto();
  const name = memberName(o.name ?? 'ha', '--name');
  const prefix = homePrefix(o.prefix);
  if (o.address.length === 0) {
    throw new ConfigError(ARGS, '--address', "required: the home agent's public address or name");
  }
  const agent = o.address.map(agentAddress);
  const port = wholeNumber(o.port ?? DSMIPV6_PORT, '--port', 1, 65535);
  const days = wholeNumber(o.days ?? DEFAULT_HA_DAYS, '--days', 1, 36_500);
  let homeAddress = addressInPrefix(prefix, 1);
  if (o.homeAddress !== undefined) {
    try {
      homeAddress = canonicalIpv6(o.homeAddress);
    } catch {
      throw new ConfigError(ARGS, '--home-address', `not an IPv6 address: "${o.homeAddress}"`);
    }
    if (!ipv6InPrefix(prefix, homeAddress) || homeAddress === prefix.address) {
      throw new ConfigError(
        ARGS,
        '--home-address',
        `${homeAddress} is not a host of ${prefix.text}`,
      );
    }
  }
  const dir = configDir(o.dir);
  const caDir = authorityDir(o.ca);
  const config = join(dir, HA_CONFIG_FILE);
  const force = o.force === true;
  ensureDir(dir, 0o700);

  const registryBefore = existsSync(registryPath(caDir)) ? loadRegistry(caDir) : undefined;
  const previous = registryBefore?.home;
  if (previous !== undefined && !force && previous.config !== config) {
    throw new IoError(
      'ERR_EXISTS',
      `${registryPath(caDir)}: this authority already has a home agent (${previous.config}, ` +
        `${previous.prefix}); add --force to replace it`,
    );
  }
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.cert`);
  const topAuthority = join(dir, AUTHORITY_PUBLIC_FILE);
  const keptKey = force && existsSync(keyFile);
  // Refuse before anything (the authority included) is created.
  refuseExisting(
    [keyFile, join(dir, `${name}.pub`), certFile, topAuthority, config].filter(
      (path) => !(keptKey && path === keyFile),
    ),
    force,
  );
  const key: KeyPair = keptKey ? readMemberPrivate(keyFile) : generateMember();
  const authority = await openAuthority(caDir, true);
  const cert = issue(authority.keyPair, {
    name,
    role: 'ha',
    publicKey: key.publicKey,
    address: prefix.text,
    days,
  });
  wipeAuthority(authority.keyPair);
  const haText = haToml({ name, prefix, homeAddress, port, dir }, o.controlSocket);
  parseHaConfig(haText, config); // the file the daemon reads must be one it accepts
  const files: PlannedFile[] = [
    {
      path: join(dir, `${name}.pub`),
      text: encodeKey(KeyTag.MEMBER_PUBLIC, key.publicKey, ['mip6 member public key']),
      mode: 0o644,
    },
    { path: certFile, text: certificateToText(cert, describe(cert)), mode: 0o644 },
    { path: topAuthority, text: authority.publicText, mode: 0o644 },
    { path: config, text: haText, mode: 0o644 },
  ];
  if (!keptKey) {
    const text = encodeKey(KeyTag.MEMBER_PRIVATE, key.privateKey, [
      'mip6 member private key: keep secret',
    ]);
    files.unshift({ path: keyFile, text, mode: 0o600 });
  }
  const revocationList = join(dir, REVOCATION_FILE);
  if (!existsSync(revocationList)) {
    files.push({ path: revocationList, text: REVOCATION_LIST_HEADER, mode: 0o644 });
  }
  writePlan(files, force);

  const registry: Registry = registryBefore ?? loadRegistry(caDir);
  registry.home = {
    prefix: prefix.text,
    agentAddress: homeAddress,
    agent,
    port,
    agentName: name,
    agentPublicKey: b64(key.publicKey),
    config,
    revocationList,
  };
  registry.members = registry.members.filter((m) => !(m.role === 'ha' && m.removed === undefined));
  registry.members.unshift(
    registryEntry({ name, role: 'ha', address: prefix.text, publicKey: key.publicKey }, cert),
  );
  saveRegistry(caDir, registry);
  lib().memzero(key.privateKey);
  return {
    dir,
    caDir,
    authorityCreated: authority.created,
    keptKey,
    config,
    name,
    prefix: prefix.text,
    homeAddress,
    agent,
    notAfter: new Date(cert.notAfter * 1000),
  };
}

// ---- mip6 member add / list / remove ---------------------------------------------------

export interface MemberAddOptions {
  ca?: string;
  role?: string;
  pub?: string;
  days?: string | number;
  out?: string;
  ipv4?: boolean;
  force?: boolean;
}

export interface MemberAddResult {
  name: string;
  role: 'mn' | 'cn';
  homeAddress: string;
  file: string;
  carriesPrivateKey: boolean;
  notAfter: Date;
}

export async function memberAdd(name: string, o: MemberAddOptions): Promise<MemberAddResult> {
  await initCrypto();
  memberName(name, 'NAME');
  const role = o.role ?? 'mn';
  if (role !== 'mn' && role !== 'cn') {
    throw new ConfigError(ARGS, '--role', `must be mn or cn, got "${role}"`);
  }
  if (o.ipv4 === true) {
    throw new IoError(
      'ERR_UNSUPPORTED',
      '--ipv4: an IPv4 home address (RFC 5555) is not part of the enrolment: the home agent ' +
        'assigns one from its [home] ipv4_pool to a member with [home] ipv4_address = "auto"',
    );
  }
  const days = wholeNumber(o.days ?? DEFAULT_MEMBER_DAYS, '--days', 1, 36_500);
  const caDir = authorityDir(o.ca);
  const authority = await openAuthority(caDir, false);
  const registry = loadRegistry(caDir);
  const home = requireHome(registry, caDir);
  const existing = activeMember(registry, name);
  if (existing !== undefined) {
    throw new IoError(
      'ERR_MEMBER',
      `${name}: already a member (${existing.role}, ${existing.address}); ` +
        `to enrol it again: mip6 member remove ${name}`,
    );
  }
  const key: KeyPair | { publicKey: Uint8Array; privateKey: undefined } =
    o.pub !== undefined
      ? { publicKey: readMemberPublic(resolve(o.pub)), privateKey: undefined }
      : generateMember();
  const sameKey = registry.members.find((m) => m.publicKey === b64(key.publicKey));
  if (sameKey !== undefined) {
    throw new IoError(
      'ERR_MEMBER',
      `${o.pub}: this key ${sameKey.removed !== undefined ? 'was revoked with' : 'belongs to'} ` +
        `member ${sameKey.name}; generate a new one (mip6 keygen)`,
    );
  }
  const homeAddress = nextHomeAddress(registry, home);
  const prefixLength = Number(home.prefix.split('/')[1]);
  const cert = issue(authority.keyPair, {
    name,
    role,
    publicKey: key.publicKey,
    address: homeAddress,
    days,
  });
  wipeAuthority(authority.keyPair);
  const enrolment: Enrolment = {
    name,
    role,
    homeAddress,
    prefixLength,
    agent: home.agent,
    agentPort: home.port,
    agentAddress: home.agentAddress,
    agentName: home.agentName,
    agentPublicKey: `${KeyTag.MEMBER_PUBLIC} ${home.agentPublicKey}`,
    authority: authority.publicText.split('\n').find((l) => l.startsWith('mip6-')) ?? '',
    certificate: certificateToText(cert).trim(),
    privateKey:
      key.privateKey === undefined
        ? undefined
        : encodeKey(KeyTag.MEMBER_PRIVATE, key.privateKey).trim(),
  };
  const file = o.out !== undefined ? resolve(o.out) : join(caDir, MEMBERS_DIR, `${name}.join`);
  ensureDir(dirname(file), 0o700);
  // Readable by root only, also without a private key in it (it tells who is where).
  writePlan([{ path: file, text: encodeEnrolment(enrolment), mode: 0o600 }], o.force === true);
  if (key.privateKey !== undefined) lib().memzero(key.privateKey);
  registry.members.push(
    registryEntry({ name, role, address: homeAddress, publicKey: key.publicKey }, cert, file),
  );
  try {
    saveRegistry(caDir, registry);
  } catch (err) {
    rmSync(file, { force: true });
    throw err;
  }
  return {
    name,
    role,
    homeAddress,
    file,
    carriesPrivateKey: enrolment.privateKey !== undefined,
    notAfter: new Date(cert.notAfter * 1000),
  };
}

export function memberList(o: { ca?: string }): RegistryMember[] {
  const caDir = authorityDir(o.ca);
  if (!existsSync(registryPath(caDir))) {
    throw new IoError(
      'ERR_REGISTRY',
      `${registryPath(caDir)}: no member registry here: run \`mip6 init ha\` first, or give --ca DIR`,
    );
  }
  return loadRegistry(caDir).members;
}

export interface MemberRemoveResult {
  member: RegistryMember;
  revocationList: string;
  enrolmentRemoved: string | undefined;
  /** What happened to the running home agent. */
  reload: { pid: number } | { notRunning: string } | undefined;
}

/** Asks the home agent of `config` for its pid over its control socket and sends SIGHUP. */
export async function signalHomeAgent(
  config: string,
): Promise<{ pid: number } | { notRunning: string }> {
  let socket: string;
  try {
    socket = (await loadHaConfig(config)).controlSocket;
  } catch (err) {
    return { notRunning: (err as Error).message };
  }
  let pid: unknown;
  try {
    pid = (
      (await controlRequest(socket, { cmd: 'status' }, { timeoutMs: 2000 })) as { pid?: unknown }
    ).pid;
  } catch {
    return { notRunning: `no answer on ${socket}` };
  }
  if (typeof pid !== 'number') return { notRunning: `${socket} did not tell its pid` };
  try {
    process.kill(pid, 'SIGHUP');
  } catch (err) {
    return { notRunning: `cannot signal pid ${pid}: ${reason(err)}` };
  }
  return { pid };
}

export async function memberRemove(
  name: string,
  o: { ca?: string; reload?: boolean },
): Promise<MemberRemoveResult> {
  await initCrypto();
  memberName(name, 'NAME');
  const caDir = authorityDir(o.ca);
  const registry = memberListRegistry(caDir);
  const home = requireHome(registry, caDir);
  const member = activeMember(registry, name);
  if (member === undefined) {
    throw new IoError('ERR_MEMBER', `${name}: no such member (see: mip6 member list)`);
  }
  if (member.role === 'ha') {
    throw new IoError('ERR_MEMBER', `${name}: is the home agent itself; it cannot be removed`);
  }
  // The list gains one line; what else is in it (a hand-edited line) stays.
  const list = home.revocationList;
  const current = existsSync(list) ? readText(list, 'revocation list') : REVOCATION_LIST_HEADER;
  const publicKey = lib().from_base64(member.publicKey, lib().base64_variants.ORIGINAL);
  if (!parseRevocationList(current, list).has(publicKey)) {
    const sep = current === '' || current.endsWith('\n') ? '' : '\n';
    writeAtomic({
      path: list,
      text: `${current}${sep}${revocationLine(publicKey, name, new Date())}\n`,
      mode: 0o644,
    });
  }
  member.removed = new Date().toISOString();
  let enrolmentRemoved: string | undefined;
  if (member.enrolment !== undefined && existsSync(member.enrolment)) {
    rmSync(member.enrolment, { force: true });
    enrolmentRemoved = member.enrolment;
  }
  saveRegistry(caDir, registry);
  const reload = o.reload === false ? undefined : await signalHomeAgent(home.config);
  return { member, revocationList: list, enrolmentRemoved, reload };
}

function memberListRegistry(caDir: string): Registry {
  if (!existsSync(registryPath(caDir))) {
    throw new IoError(
      'ERR_REGISTRY',
      `${registryPath(caDir)}: no member registry here: run \`mip6 init ha\` first, or give --ca DIR`,
    );
  }
  return loadRegistry(caDir);
}

// ---- commander ---------------------------------------------------------------------------

function out(line: string): void {
  process.stdout.write(line + '\n');
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function registerEnrol(program: Command): void {
  const init = program.command('init').description('set up this host for mip6');
  init
    .command('ha')
    .description(
      'make this host a home agent: the overlay authority (created unless it exists), its key, ' +
        'certificate and ha.toml in the configuration directory',
    )
    .requiredOption(
      '--address <host>',
      'public IPv4/IPv6 address or DNS name members reach this host at (repeatable)',
      collect,
      [],
    )
    .requiredOption('--prefix <prefix>', 'the home prefix, e.g. 2001:db8:100::/64')
    .option('--dir <dir>', 'configuration directory (default $MIP6_CONFIG_DIR or /etc/mip6)')
    .option('--ca <dir>', 'the overlay authority directory (default $MIP6_CA_DIR or ~/.mip6-ca)')
    .option('--name <name>', "the home agent's member name", 'ha')
    .option('--home-address <addr>', "the home agent's address in the prefix (default <prefix>::1)")
    .option('--port <port>', 'UDP port', String(DSMIPV6_PORT))
    .option('--days <n>', 'validity of its certificate in days', String(DEFAULT_HA_DAYS))
    .option('--control-socket <path>', 'control socket of the daemon (default /run/mip6/ha.sock)')
    .option('--force', 'replace an existing ha.toml and certificate (an existing key is kept)')
    .action(async (o: InitHaOptions) => {
      const r = await initHa(o);
      out(
        `home agent "${r.name}" for ${r.prefix} (home address ${r.homeAddress}) at ${r.agent.join(', ')}`,
      );
      out(`  authority    ${r.caDir} (${r.authorityCreated ? 'created' : 'existing'})`);
      out(`  key          ${join(r.dir, `${r.name}.key`)} (mode 0600${r.keptKey ? ', kept' : ''})`);
      out(
        `  certificate  ${join(r.dir, `${r.name}.cert`)} (valid until ${r.notAfter.toISOString()})`,
      );
      out(`  config       ${r.config}`);
      out(`start it:     mip6 service install ha   (or: mip6 ha -c ${r.config})`);
      out(`add a device: mip6 member add NAME`);
    });

  const member = program
    .command('member')
    .description('members of the overlay (on the home agent)');
  member
    .command('add')
    .description(
      'enrol a device: allocate its home address, issue its certificate, write its enrolment file',
    )
    .argument('<name>', 'member name (a-z 0-9 . _ -)')
    .option('--role <role>', 'mn (mobile node) or cn (correspondent node)', 'mn')
    .option(
      '--pub <file>',
      "the device's public key (mip6 keygen there): its private key never leaves it",
    )
    .option('--ipv4', "refused: IPv4 home addresses come from the HA's [home] ipv4_pool")
    .option('--days <n>', 'validity of its certificate in days', String(DEFAULT_MEMBER_DAYS))
    .option('--out <file>', 'enrolment file to write (default CA/members/NAME.join)')
    .option('--ca <dir>', 'the overlay authority directory (default $MIP6_CA_DIR or ~/.mip6-ca)')
    .option('--force', 'overwrite an existing enrolment file')
    .action(async (name: string, o: MemberAddOptions) => {
      const r = await memberAdd(name, o);
      out(
        `added ${r.name} (${r.role}): home address ${r.homeAddress}, certificate valid until ${r.notAfter.toISOString()}`,
      );
      out(
        `wrote ${r.file} (mode 0600${r.carriesPrivateKey ? `; it holds the private key of ${r.name}: copy it to the device only, then delete it here` : ''})`,
      );
      out(`on the device, as root: mip6 join ${r.name}.join`);
    });
  member
    .command('list')
    .description('the members of this authority')
    .option('--json', 'print the registry entries as JSON')
    .option('--ca <dir>', 'the overlay authority directory (default $MIP6_CA_DIR or ~/.mip6-ca)')
    .action((o: { ca?: string; json?: boolean }) => {
      const members = memberList(o);
      if (o.json === true) {
        out(JSON.stringify(members, null, 2));
        return;
      }
      out(
        formatTable(
          ['name', 'role', 'address', 'state', 'valid until'],
          members.map((m) => [
            m.name,
            m.role,
            m.address,
            m.removed !== undefined ? `removed ${m.removed.slice(0, 10)}` : 'active',
            m.notAfter.slice(0, 10),
          ]),
        ),
      );
    });
  member
    .command('remove')
    .description('revoke a member: onto the revocation list, and the running home agent reloads it')
    .argument('<name>', 'member name')
    .option('--no-reload', 'do not signal the running home agent (SIGHUP)')
    .option('--ca <dir>', 'the overlay authority directory (default $MIP6_CA_DIR or ~/.mip6-ca)')
    .action(async (name: string, o: { ca?: string; reload?: boolean }) => {
      const r = await memberRemove(name, o);
      out(`revoked ${r.member.name} (${r.member.address}): added to ${r.revocationList}`);
      if (r.enrolmentRemoved !== undefined) out(`deleted its enrolment file ${r.enrolmentRemoved}`);
      if (r.reload === undefined) out('the home agent refuses it after its next reload (SIGHUP)');
      else if ('pid' in r.reload)
        out(`home agent (pid ${r.reload.pid}) reloads the list: ${r.member.name} is cut off`);
      else
        out(
          `home agent not reached (${r.reload.notRunning}): it refuses ${r.member.name} when it (re)starts`,
        );
    });
}
