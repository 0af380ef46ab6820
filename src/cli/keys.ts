/**
 * Key and certificate commands (DESIGN.md §4, keys/README.md for the file formats):
 *
 *   mip6 ca init --out DIR            Ed25519 overlay authority: DIR/authority.key (0600), .pub
 *   mip6 keygen --out DIR/NAME        X25519 member key pair: NAME.key (0600), NAME.pub
 *   mip6 cert issue --ca DIR --pub FILE --name NAME --address HOA[/LEN]... --role ha|mn|cn
 *                   [--days N] [--allow-prefix] --out FILE
 *   mip6 cert show FILE
 *   mip6 cert verify --ca PUB FILE    exit 0 when valid now, 1 (one line saying why) otherwise
 *
 * Private key files are created with mode 0600 and refused when group/others can read them.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import {
  certificateToText,
  formatAllowedPrefix,
  parseAllowedPrefix,
  ROLES,
  signCertificate,
  verifyCertificate,
  type AllowedPrefix,
  type MemberCertificate,
  type Role,
} from '../crypto/certificate.js';
import {
  readAuthorityPrivate,
  readAuthorityPublic,
  readCertificate,
  readMemberPublic,
  writeKeyFile,
} from './key-files.js';
import { encodeKey, generateAuthority, generateMember, KeyTag } from '../crypto/keys.js';
import { initCrypto, lib } from '../crypto/sodium.js';
import { ConfigError, CryptoError } from '../util/errors.js';

export const AUTHORITY_PRIVATE_FILE = 'authority.key';
export const AUTHORITY_PUBLIC_FILE = 'authority.pub';
const DEFAULT_DAYS = 365;
const ARGS = 'command line';
/**
 * Shortest prefix an `mn`/`cn` certificate gets without `--allow-prefix` (issue #13): a member
 * needs its home address (/128) or at most one /64; `::/0` would let it register any address.
 * Issuance hygiene only: the home agent never relies on it (a certificate issued with the flag,
 * or by another tool, is verified and bounded like any other: home prefix, binding owner).
 */
const MEMBER_MIN_PREFIX_LEN = 64;

function b64(key: Uint8Array): string {
  const s = lib();
  return s.to_base64(key, s.base64_variants.ORIGINAL);
}

function out(line: string): void {
  process.stdout.write(line + '\n');
}

/** Creates the overlay authority key pair in `dir`. */
export async function caInit(dir: string): Promise<{ privateFile: string; publicFile: string }> {
  await initCrypto();
  const ca = generateAuthority();
  const privateFile = join(dir, AUTHORITY_PRIVATE_FILE);
  const publicFile = join(dir, AUTHORITY_PUBLIC_FILE);
  const created = `created ${new Date().toISOString()}`;
  writeKeyFile(
    privateFile,
    encodeKey(KeyTag.AUTHORITY_PRIVATE, ca.seed, [
      'mip6 overlay authority private key: keep secret',
      created,
    ]),
    true,
  );
  writeKeyFile(
    publicFile,
    encodeKey(KeyTag.AUTHORITY_PUBLIC, ca.publicKey, [
      'mip6 overlay authority public key',
      created,
    ]),
    false,
  );
  lib().memzero(ca.seed);
  lib().memzero(ca.secretKey);
  return { privateFile, publicFile };
}

/** Creates a member key pair `<base>.key` (0600) and `<base>.pub`. */
export async function keygen(base: string): Promise<{ privateFile: string; publicFile: string }> {
  await initCrypto();
  const kp = generateMember();
  const privateFile = `${base}.key`;
  const publicFile = `${base}.pub`;
  writeKeyFile(
    privateFile,
    encodeKey(KeyTag.MEMBER_PRIVATE, kp.privateKey, ['mip6 member private key: keep secret']),
    true,
  );
  writeKeyFile(
    publicFile,
    encodeKey(KeyTag.MEMBER_PUBLIC, kp.publicKey, ['mip6 member public key']),
    false,
  );
  lib().memzero(kp.privateKey);
  return { privateFile, publicFile };
}

export interface IssueOptions {
  ca: string;
  pub: string;
  name: string;
  address: string[];
  role: string;
  days?: number | string;
  /** Issue an mn/cn certificate for a prefix shorter than /64 anyway. */
  allowPrefix?: boolean;
  out: string;
  /** Unix ms; defaults to Date.now() (tests inject it). */
  now?: number;
}

export async function certIssue(o: IssueOptions): Promise<MemberCertificate> {
  await initCrypto();
  if (!(ROLES as readonly string[]).includes(o.role)) {
    throw new ConfigError(ARGS, '--role', `must be one of ${ROLES.join(', ')}, got "${o.role}"`);
  }
  const days = Number(o.days ?? DEFAULT_DAYS);
  if (!Number.isInteger(days) || days < 1 || days > 36_500) {
    throw new ConfigError(
      ARGS,
      '--days',
      `must be a whole number of days 1..36500, got "${o.days}"`,
    );
  }
  if (o.address.length === 0) throw new ConfigError(ARGS, '--address', 'at least one is required');
  const addresses: AllowedPrefix[] = o.address.map((a) => {
    const p = parseAllowedPrefix(a);
    if (p === null) {
      throw new ConfigError(
        ARGS,
        '--address',
        `not an IPv6 address or prefix (host bits zero): "${a}"`,
      );
    }
    if (o.role !== 'ha' && p.prefixLength < MEMBER_MIN_PREFIX_LEN && o.allowPrefix !== true) {
      throw new ConfigError(
        ARGS,
        '--address',
        `${formatAllowedPrefix(p)} is wider than /${MEMBER_MIN_PREFIX_LEN}: ` +
          `${o.role === 'mn' ? 'an' : 'a'} ${o.role} ` +
          'certificate for it lets its holder register any home address in it; give the ' +
          "member's own address (or its /64), or add --allow-prefix if that is really meant",
      );
    }
    return p;
  });
  const caDir = isDirectory(o.ca) ? o.ca : null;
  const caKeyFile = caDir ? join(caDir, AUTHORITY_PRIVATE_FILE) : o.ca;
  const ca = readAuthorityPrivate(caKeyFile);
  const publicKey = readMemberPublic(o.pub);
  const now = Math.floor((o.now ?? Date.now()) / 1000);
  const cert = signCertificate(
    {
      name: o.name,
      role: o.role as Role,
      publicKey,
      addresses,
      notBefore: now - 300, // tolerate 5 minutes of clock skew between members
      notAfter: now + days * 86_400,
    },
    ca.secretKey,
  );
  lib().memzero(ca.secretKey);
  lib().memzero(ca.seed);
  writeKeyFile(o.out, certificateToText(cert, describe(cert)), false);
  return cert;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Human summary lines of a certificate. */
export function describe(cert: MemberCertificate): string[] {
  return [
    `name:       ${cert.name}`,
    `role:       ${cert.role}`,
    `public key: ${b64(cert.publicKey)}`,
    `addresses:  ${cert.addresses.map(formatAllowedPrefix).join(', ')}`,
    `not before: ${new Date(cert.notBefore * 1000).toISOString()}`,
    `not after:  ${new Date(cert.notAfter * 1000).toISOString()}`,
  ];
}

export async function certShow(file: string): Promise<string[]> {
  await initCrypto();
  return describe(readCertificate(file));
}

/** Verifies `file` against the authority public key (file, or CA directory). Throws on failure. */
export async function certVerify(caPub: string, file: string, now = Date.now()): Promise<void> {
  await initCrypto();
  const pubFile = isDirectory(caPub) ? join(caPub, AUTHORITY_PUBLIC_FILE) : caPub;
  const authority = readAuthorityPublic(pubFile);
  const cert = readCertificate(file);
  const verdict = verifyCertificate(cert, authority, now);
  if (verdict !== 'ok') {
    throw new CryptoError('ERR_CERT_INVALID', `${file}: ${verdict}`);
  }
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function registerKeys(program: Command): void {
  const ca = program.command('ca').description('overlay authority (Ed25519) key management');
  ca.command('init')
    .description('create the overlay authority key pair (authority.key 0600, authority.pub)')
    .requiredOption('--out <dir>', 'directory for authority.key and authority.pub')
    .action(async (o: { out: string }) => {
      const r = await caInit(o.out);
      out(`wrote ${r.privateFile} (private, mode 0600) and ${r.publicFile}`);
    });

  program
    .command('keygen')
    .description('create a member X25519 key pair: NAME.key (0600) and NAME.pub')
    .requiredOption('--out <dir/name>', 'path prefix; .key and .pub are appended')
    .action(async (o: { out: string }) => {
      const r = await keygen(o.out);
      out(`wrote ${r.privateFile} (private, mode 0600) and ${r.publicFile}`);
    });

  const cert = program.command('cert').description('member certificates');
  cert
    .command('issue')
    .description('issue a member certificate signed by the overlay authority')
    .requiredOption('--ca <dir>', 'authority directory (or its authority.key file)')
    .requiredOption('--pub <file>', "the member's public key file (from keygen)")
    .requiredOption('--name <name>', 'member name (a-z 0-9 . _ -)')
    .requiredOption(
      '--address <hoa[/len]>',
      'allowed home address or prefix (repeatable)',
      collect,
      [],
    )
    .requiredOption('--role <role>', 'ha, mn or cn')
    .option('--days <n>', 'validity in days', String(DEFAULT_DAYS))
    .option(
      '--allow-prefix',
      `allow an mn/cn certificate for a prefix shorter than /${MEMBER_MIN_PREFIX_LEN}`,
    )
    .requiredOption('--out <file>', 'certificate file to write')
    .action(async (o: IssueOptions) => {
      const c = await certIssue(o);
      out(`wrote ${o.out}`);
      for (const l of describe(c)) out(`  ${l}`);
    });
  cert
    .command('show')
    .description('print a certificate')
    .argument('<file>')
    .action(async (file: string) => {
      for (const l of await certShow(file)) out(l);
    });
  cert
    .command('verify')
    .description('check a certificate against the authority public key (exit code says)')
    .requiredOption('--ca <pub>', 'authority public key file (or the authority directory)')
    .argument('<file>')
    .action(async (file: string, o: { ca: string }) => {
      await certVerify(o.ca, file);
      out(`${file}: ok`);
    });
}
