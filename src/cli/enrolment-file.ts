/**
 * The enrolment file `mip6 member add` writes and `mip6 join` reads (issue 19): everything a
 * device needs to join the overlay, in one TOML file: its name, role and home address, how to
 * reach its home agent (underlay addresses, port, home-prefix address, public key), the
 * authority's public key, its certificate, and its private key unless the device kept that
 * itself (`member add --pub`). Keys and the certificate are carried as the one-line
 * `TAG BASE64` text of their own files (keys/README.md), so join writes them unchanged.
 */
import { certificateFromText, type MemberCertificate } from '../crypto/certificate.js';
import { decodeKey, KeyTag } from '../crypto/keys.js';
import { parseToml } from '../config/index.js';
import { IoError, Mip6Error } from '../util/errors.js';
import { tomlString } from './enrol-files.js';

export const ENROLMENT_FORMAT = 'mip6-enrolment-v1';

export interface Enrolment {
  name: string;
  role: 'mn' | 'cn';
  homeAddress: string;
  prefixLength: number;
  agent: string[];
  agentPort: number;
  agentAddress: string;
  agentName: string;
  /** `mip6-member-public-v1 BASE64` */
  agentPublicKey: string;
  /** `mip6-authority-public-v1 BASE64` */
  authority: string;
  /** `mip6-certificate-v1 BASE64` */
  certificate: string;
  /** `mip6-member-private-v1 BASE64`, absent when the device holds its own key. */
  privateKey: string | undefined;
}

/** The file's text (mode 0600 when it carries a private key). */
export function encodeEnrolment(e: Enrolment): string {
  const secret = e.privateKey !== undefined;
  const lines = [
    `# mip6 enrolment of member "${e.name}" (role ${e.role}, home address ${e.homeAddress}).`,
    secret
      ? '# It holds the PRIVATE KEY of the member: copy it to the device only, then delete it.'
      : '# The private key stays on the device (member add --pub).',
    `# On the device, as root:  mip6 join ${e.name}.join`,
    `format = ${tomlString(ENROLMENT_FORMAT)}`,
    `name = ${tomlString(e.name)}`,
    `role = ${tomlString(e.role)}`,
    `home_address = ${tomlString(e.homeAddress)}`,
    `prefix_length = ${e.prefixLength}`,
    `agent = [${e.agent.map(tomlString).join(', ')}]`,
    `agent_port = ${e.agentPort}`,
    `agent_address = ${tomlString(e.agentAddress)}`,
    `agent_name = ${tomlString(e.agentName)}`,
    `agent_public_key = ${tomlString(e.agentPublicKey)}`,
    `authority = ${tomlString(e.authority)}`,
    `certificate = ${tomlString(e.certificate)}`,
  ];
  if (e.privateKey !== undefined) lines.push(`private_key = ${tomlString(e.privateKey)}`);
  return lines.join('\n') + '\n';
}

export interface ParsedEnrolment extends Enrolment {
  cert: MemberCertificate;
  agentKey: Uint8Array;
  authorityKey: Uint8Array;
  privateKeyBytes: Uint8Array | undefined;
}

/** Parses and checks an enrolment file; any problem is one line naming the file. */
export function parseEnrolment(text: string, file: string): ParsedEnrolment {
  const bad = (why: string): IoError => new IoError('ERR_ENROLMENT', `${file}: ${why}`);
  let t: Record<string, unknown>;
  try {
    t = parseToml(text, file);
  } catch (err) {
    throw bad(`not a mip6 enrolment file (${(err as Error).message.replace(`${file}: `, '')})`);
  }
  if (t.format !== ENROLMENT_FORMAT) {
    throw bad(`not a mip6 enrolment file (expected format = "${ENROLMENT_FORMAT}")`);
  }
  const str = (k: string): string => {
    const v = t[k];
    if (typeof v !== 'string' || v === '') throw bad(`${k}: missing or not a string`);
    return v;
  };
  const int = (k: string): number => {
    const v = t[k];
    if (typeof v !== 'number' && typeof v !== 'bigint') throw bad(`${k}: missing or not a number`);
    return Number(v);
  };
  const agent = t.agent;
  if (!Array.isArray(agent) || agent.length === 0 || agent.some((a) => typeof a !== 'string')) {
    throw bad('agent: missing or not a list of addresses');
  }
  const role = str('role');
  if (role !== 'mn' && role !== 'cn') throw bad(`role: must be "mn" or "cn", got "${role}"`);
  const e: Enrolment = {
    name: str('name'),
    role,
    homeAddress: str('home_address'),
    prefixLength: int('prefix_length'),
    agent: agent as string[],
    agentPort: int('agent_port'),
    agentAddress: str('agent_address'),
    agentName: str('agent_name'),
    agentPublicKey: str('agent_public_key'),
    authority: str('authority'),
    certificate: str('certificate'),
    privateKey: t.private_key === undefined ? undefined : str('private_key'),
  };
  const decode = <T>(k: string, f: () => T): T => {
    try {
      return f();
    } catch (err) {
      const m = err instanceof Mip6Error ? err.message.replace(/^[^:]*: /, '') : String(err);
      throw bad(`${k}: ${m}`);
    }
  };
  return {
    ...e,
    cert: decode('certificate', () => certificateFromText(e.certificate)),
    agentKey: decode('agent_public_key', () =>
      decodeKey(e.agentPublicKey, KeyTag.MEMBER_PUBLIC, file),
    ),
    authorityKey: decode('authority', () => decodeKey(e.authority, KeyTag.AUTHORITY_PUBLIC, file)),
    privateKeyBytes:
      e.privateKey === undefined
        ? undefined
        : decode('private_key', () => decodeKey(e.privateKey!, KeyTag.MEMBER_PRIVATE, file)),
  };
}
