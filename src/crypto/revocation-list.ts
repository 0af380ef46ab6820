/**
 * The revocation list (issue 19): member public keys a home agent refuses although their
 * certificates are still valid. `mip6 member remove` writes it next to the authority; the home
 * agent reads it at start (`[identity] revocation_list`) and again on SIGHUP, then refuses
 * those keys in every handshake (EndpointOptions.isRevoked) and ends their channels and
 * bindings. Pure text codec; the file is read by the caller.
 *
 * Format (UTF-8 text): `#` comment lines and blank lines are ignored; every other line is
 *
 *   mip6-revoked-v1 BASE64-PUBLIC-KEY [NAME [WHEN]]
 *
 * BASE64-PUBLIC-KEY is the member's 32-byte X25519 key (standard padded base64, as in its
 * `.pub` file); NAME and WHEN (an ISO 8601 time) only tell a human who and since when.
 */
import { CryptoError } from '../util/errors.js';
import { toHex } from '../wire/hex.js';
import { lib } from './sodium.js';

export const REVOKED_TAG = 'mip6-revoked-v1';

export interface RevokedMember {
  publicKey: Uint8Array;
  name: string | undefined;
  since: string | undefined;
}

/** A set of revoked member keys. */
export class RevocationList {
  readonly entries: readonly RevokedMember[];
  readonly #keys: Set<string>;

  constructor(entries: readonly RevokedMember[] = []) {
    this.entries = entries;
    this.#keys = new Set(entries.map((e) => toHex(e.publicKey)));
  }

  get size(): number {
    return this.#keys.size;
  }

  has(publicKey: Uint8Array): boolean {
    return this.#keys.has(toHex(publicKey));
  }
}

/** Parses a revocation list; `source` (a file name) goes into the one-line error. */
export function parseRevocationList(text: string, source: string): RevocationList {
  const s = lib();
  const entries: RevokedMember[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fail = (why: string): CryptoError =>
      new CryptoError('ERR_REVOCATION_LIST', `${source}: line ${i + 1}: ${why}`);
    const [tag, b64, name, since] = line.split(/\s+/);
    if (tag !== REVOKED_TAG) throw fail(`expected "${REVOKED_TAG} BASE64-KEY [NAME]"`);
    let key: Uint8Array;
    try {
      key = s.from_base64(b64 ?? '', s.base64_variants.ORIGINAL);
    } catch {
      throw fail('the public key is not valid base64');
    }
    if (key.length !== 32) throw fail(`a public key is 32 bytes, got ${key.length}`);
    entries.push({ publicKey: key, name, since });
  }
  return new RevocationList(entries);
}

/** One line of the list for `publicKey` (name and time are informative). */
export function revocationLine(publicKey: Uint8Array, name: string, since: Date): string {
  const s = lib();
  const b64 = s.to_base64(publicKey, s.base64_variants.ORIGINAL);
  return `${REVOKED_TAG} ${b64} ${name} ${since.toISOString()}`;
}

/** The comment lines a new revocation list starts with. */
export const REVOCATION_LIST_HEADER =
  '# mip6 revocation list: members the home agent refuses although their certificates are valid.\n' +
  '# Written by `mip6 member remove`; the home agent re-reads it on SIGHUP.\n' +
  `# One line per member: ${REVOKED_TAG} BASE64-PUBLIC-KEY NAME SINCE\n`;
