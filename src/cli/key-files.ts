/**
 * Key and certificate files on disk (the composition root's file I/O; src/crypto stays pure). Private keys are written
 * with mode 0600 and refused when group or others may read them (like ssh), with a message that
 * says how to fix it.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { CryptoError } from '../util/errors.js';
import { certificateFromText, type MemberCertificate } from '../crypto/certificate.js';
import {
  authorityFromSeed,
  decodeKey,
  KeyTag,
  memberFromPrivate,
  type AuthorityKeyPair,
  type KeyPair,
} from '../crypto/keys.js';

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    throw new CryptoError('ERR_KEY_FILE', `${file}: cannot read (${code})`);
  }
}

/** Refuses a private key file that group or others can access. */
export function checkPrivateMode(file: string): void {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    throw new CryptoError('ERR_KEY_FILE', `${file}: cannot read (${code})`);
  }
  if ((mode & 0o077) !== 0) {
    const octal = (mode & 0o777).toString(8).padStart(4, '0');
    throw new CryptoError(
      'ERR_KEY_PERMISSIONS',
      `${file}: private key is accessible by group/others (mode ${octal}); run: chmod 600 ${file}`,
    );
  }
}

/** Writes a file, creating its directory; private files get 0600, refusing to overwrite. */
export function writeKeyFile(file: string, text: string, isPrivate: boolean): void {
  if (existsSync(file)) {
    throw new CryptoError('ERR_KEY_FILE', `${file}: already exists, refusing to overwrite`);
  }
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, text, { mode: isPrivate ? 0o600 : 0o644, flag: 'wx' });
  if (isPrivate) chmodSync(file, 0o600); // the umask could only have narrowed it; be explicit
}

export function readAuthorityPrivate(file: string): AuthorityKeyPair {
  checkPrivateMode(file);
  return authorityFromSeed(decodeKey(readText(file), KeyTag.AUTHORITY_PRIVATE, file));
}

export function readAuthorityPublic(file: string): Uint8Array {
  return decodeKey(readText(file), KeyTag.AUTHORITY_PUBLIC, file);
}

export function readMemberPrivate(file: string): KeyPair {
  checkPrivateMode(file);
  return memberFromPrivate(decodeKey(readText(file), KeyTag.MEMBER_PRIVATE, file));
}

export function readMemberPublic(file: string): Uint8Array {
  return decodeKey(readText(file), KeyTag.MEMBER_PUBLIC, file);
}

export function readCertificate(file: string): MemberCertificate {
  try {
    return certificateFromText(readText(file));
  } catch (err) {
    if (err instanceof CryptoError && err.code === 'ERR_BAD_CERTIFICATE') {
      throw new CryptoError(err.code, `${file}: ${err.message}`);
    }
    throw err;
  }
}
