/**
 * The member registry (issue 19): a small JSON file next to the overlay authority
 * (`<ca>/members.json`, mode 0600) that remembers what `mip6 init ha` set up (home prefix, the
 * home agent's underlay addresses, port and key, where its ha.toml and revocation list are) and
 * every member `mip6 member add` enrolled: name, role, home address, public key, validity, and
 * whether it was removed. Home addresses are allocated from it and never handed out twice, not
 * even after a removal (a revoked member's address may still sit in caches and logs).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Role } from '../crypto/certificate.js';
import { IoError } from '../util/errors.js';
import { formatIpv6, parseIpv6 } from '../wire/address.js';
import { readText, writeAtomic } from './enrol-files.js';

export const REGISTRY_FILE = 'members.json';
const FORMAT = 'mip6-members-v1';
/** Members get addresses from <prefix>::10 upwards (::1 is the home agent's by default). */
export const FIRST_MEMBER_IID = 0x10n;

/** What `mip6 init ha` recorded about the home agent of this authority. */
export interface RegistryHome {
  prefix: string;
  /** The home agent's address on the home prefix. */
  agentAddress: string;
  /** Its public underlay addresses or names, as members reach it. */
  agent: string[];
  port: number;
  agentName: string;
  /** Its X25519 public key (base64). */
  agentPublicKey: string;
  /** Its ha.toml and revocation list (absolute paths). */
  config: string;
  revocationList: string;
}

export interface RegistryMember {
  name: string;
  role: Role;
  /** Home address (/128) of a member; the home prefix for the home agent. */
  address: string;
  /** X25519 public key (base64). */
  publicKey: string;
  issued: string;
  notAfter: string;
  /** The enrolment file `member add` wrote (removed with the member), when it wrote one. */
  enrolment?: string;
  /** Set when `mip6 member remove` revoked it. */
  removed?: string;
}

export interface Registry {
  format: typeof FORMAT;
  home: RegistryHome | undefined;
  members: RegistryMember[];
}

export function registryPath(caDir: string): string {
  return join(caDir, REGISTRY_FILE);
}

/** Reads the registry of `caDir`; an empty one when there is none yet. */
export function loadRegistry(caDir: string): Registry {
  const file = registryPath(caDir);
  if (!existsSync(file)) return { format: FORMAT, home: undefined, members: [] };
  let data: unknown;
  try {
    data = JSON.parse(readText(file, 'member registry'));
  } catch (err) {
    if (err instanceof IoError) throw err;
    throw new IoError('ERR_REGISTRY', `${file}: not valid JSON (${(err as Error).message})`);
  }
  const r = data as Partial<Registry> | null;
  if (r === null || typeof r !== 'object' || r.format !== FORMAT || !Array.isArray(r.members)) {
    throw new IoError('ERR_REGISTRY', `${file}: not a mip6 member registry (${FORMAT})`);
  }
  return { format: FORMAT, home: r.home ?? undefined, members: r.members };
}

export function saveRegistry(caDir: string, r: Registry): void {
  writeAtomic({ path: registryPath(caDir), text: JSON.stringify(r, null, 2) + '\n', mode: 0o600 });
}

/** The registry's home agent settings, or one line saying `mip6 init ha` comes first. */
export function requireHome(r: Registry, caDir: string): RegistryHome {
  if (r.home === undefined) {
    throw new IoError(
      'ERR_REGISTRY',
      `${registryPath(caDir)}: no home agent set up with this authority: run \`mip6 init ha\` first`,
    );
  }
  return r.home;
}

/** The active (not removed) member called `name`. */
export function activeMember(r: Registry, name: string): RegistryMember | undefined {
  return r.members.find((m) => m.name === name && m.removed === undefined);
}

function toBigInt(bytes: Uint8Array): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

function fromBigInt(v: bigint): Uint8Array {
  const out = new Uint8Array(16);
  for (let i = 15; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/**
 * The lowest address of `home.prefix` from <prefix>::10 up that no member, removed or not, and
 * not the home agent, ever had. Throws one line when the prefix is full.
 */
export function nextHomeAddress(r: Registry, home: RegistryHome): string {
  const [net, lenText] = home.prefix.split('/');
  const length = Number(lenText);
  const base = toBigInt(parseIpv6(net ?? ''));
  const size = 1n << BigInt(128 - length);
  const used = new Set(
    [home.agentAddress, ...r.members.map((m) => m.address)]
      .filter((a) => !a.includes('/'))
      .map((a) => toBigInt(parseIpv6(a))),
  );
  for (let iid = FIRST_MEMBER_IID; iid < size - 1n; iid++) {
    if (!used.has(base + iid)) return formatIpv6(fromBigInt(base + iid));
  }
  throw new IoError('ERR_PREFIX_FULL', `home prefix ${home.prefix} has no free home address left`);
}
