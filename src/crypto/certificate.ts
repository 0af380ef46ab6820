/**
 * Member certificates (DESIGN.md §4): the overlay authority (Ed25519) binds a member name, its
 * X25519 public key, the home address(es) or prefixes it may use as inner source, its role and
 * a validity period. Pure codecs: bytes <-> MemberCertificate, text <-> bytes, sign, verify.
 *
 * Binary layout, version 1 (all integers big-endian):
 *
 *   0   magic "M6CT"            4
 *   4   version = 1             1
 *   5   role (1 ha, 2 mn, 3 cn) 1
 *   6   reserved = 0            2
 *   8   notBefore (Unix s)      8
 *   16  notAfter (Unix s)       8
 *   24  member public key       32   (X25519, the Noise static key)
 *   56  name length N (1..63)   1, then N bytes of [a-z0-9._-]
 *       address count A (1..16) 1, then A x (prefix length 1 | IPv6 address 16)
 *       signature               64   Ed25519 over "mip6-certificate-v1\0" | all bytes above
 *
 * The text form (keys/README.md) is one line `mip6-certificate-v1 <base64>`; lines starting with
 * '#' are comments (the CLI writes a human summary there) and are ignored by the parser.
 */
import {
  formatIpv6 as formatIpv6Text,
  maskPrefix,
  parseIpv6 as parseIpv6Bytes,
  prefixMatches,
} from '../wire/address.js';
import { byteString, bytesEqual, bytesOfString } from '../util/bytes.js';
import { CryptoError } from '../util/errors.js';
import { concat } from './noise.js';
import { lib } from './sodium.js';

export const ROLES = ['ha', 'mn', 'cn'] as const;
export type Role = (typeof ROLES)[number];
const ROLE_CODE: Record<Role, number> = { ha: 1, mn: 2, cn: 3 };

export const CERT_MAGIC = 'M6CT';
export const CERT_VERSION = 1;
const CERT_PUBKEY_OFF = 24;
const CERT_NAME_OFF = 56;
export const CERT_SIGNATURE_LEN = 64;
export const CERT_MAX_NAME_LEN = 63;
export const CERT_MAX_ADDRESSES = 16;
export const CERT_TEXT_TAG = 'mip6-certificate-v1';
const SIGNING_CONTEXT = new TextEncoder().encode('mip6-certificate-v1\0');
const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** An address or prefix the member may use as inner source (a HoA is a /128). */
export interface AllowedPrefix {
  address: Uint8Array; // 16 bytes, host bits zero for prefixes
  prefixLength: number; // 0..128
}

export interface MemberCertificate {
  name: string;
  role: Role;
  publicKey: Uint8Array; // X25519, 32 bytes
  addresses: AllowedPrefix[];
  notBefore: number; // Unix seconds
  notAfter: number; // Unix seconds
  /** The exact encoded bytes (what travels in the handshake), the signature last (64 bytes:
   *  certificateSignature); set by decode/sign. */
  raw: Uint8Array;
}

/** The authority's Ed25519 signature: the last 64 bytes of the certificate (a view; not a field
 *  of its own, which would cost a view per member at a home agent, issue 17). */
export function certificateSignature(cert: MemberCertificate): Uint8Array {
  return cert.raw.subarray(cert.raw.length - CERT_SIGNATURE_LEN);
}

export type CertificateVerdict =
  'ok' | 'bad-certificate' | 'expired-certificate' | 'certificate-not-yet-valid' | 'wrong-role';

function bad(message: string): CryptoError {
  return new CryptoError('ERR_BAD_CERTIFICATE', message);
}

/** Encodes everything but the signature (the signed body). */
function encodeBody(c: Omit<MemberCertificate, 'raw'>): Uint8Array {
  if (!NAME_RE.test(c.name)) {
    throw bad(`invalid member name "${c.name}" (1-63 of a-z 0-9 . _ -, starting alphanumeric)`);
  }
  if (c.publicKey.length !== 32) throw bad('member public key must be 32 bytes');
  if (c.addresses.length < 1 || c.addresses.length > CERT_MAX_ADDRESSES) {
    throw bad(`a certificate holds 1 to ${CERT_MAX_ADDRESSES} addresses`);
  }
  if (!Number.isSafeInteger(c.notBefore) || !Number.isSafeInteger(c.notAfter)) {
    throw bad('validity must be whole seconds');
  }
  const name = new TextEncoder().encode(c.name);
  const out = new Uint8Array(CERT_NAME_OFF + 1 + name.length + 1 + 17 * c.addresses.length);
  const dv = new DataView(out.buffer);
  out.set(new TextEncoder().encode(CERT_MAGIC), 0);
  out[4] = CERT_VERSION;
  out[5] = ROLE_CODE[c.role];
  dv.setBigUint64(8, BigInt(c.notBefore));
  dv.setBigUint64(16, BigInt(c.notAfter));
  out.set(c.publicKey, CERT_PUBKEY_OFF);
  let o = CERT_NAME_OFF;
  out[o++] = name.length;
  out.set(name, o);
  o += name.length;
  out[o++] = c.addresses.length;
  for (const a of c.addresses) {
    if (a.address.length !== 16 || a.prefixLength < 0 || a.prefixLength > 128) {
      throw bad('invalid allowed address');
    }
    out[o++] = a.prefixLength;
    out.set(a.address, o);
    o += 16;
  }
  return out;
}

/** Signs a certificate with the authority's Ed25519 secret key (64-byte libsodium form). */
export function signCertificate(
  body: Omit<MemberCertificate, 'raw'>,
  authoritySecretKey: Uint8Array,
): MemberCertificate {
  const bytes = encodeBody(body);
  const signature = lib().crypto_sign_detached(concat(SIGNING_CONTEXT, bytes), authoritySecretKey);
  return { ...body, raw: concat(bytes, signature) };
}

/** Decodes a certificate's bytes. Throws CryptoError('ERR_BAD_CERTIFICATE') when malformed;
 *  does not check the signature (see verifyCertificate). */
export function decodeCertificate(bytes: Uint8Array): MemberCertificate {
  if (bytes.length < CERT_NAME_OFF + 2 + 17 + CERT_SIGNATURE_LEN)
    throw bad('certificate too short');
  if (new TextDecoder().decode(bytes.subarray(0, 4)) !== CERT_MAGIC) throw bad('not a certificate');
  if (bytes[4] !== CERT_VERSION) throw bad(`unsupported certificate version ${bytes[4]}`);
  const role = ROLES.find((r) => ROLE_CODE[r] === bytes[5]);
  if (role === undefined) throw bad(`unknown role code ${bytes[5]}`);
  if (bytes[6] !== 0 || bytes[7] !== 0) throw bad('reserved bytes not zero');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const notBefore = dv.getBigUint64(8);
  const notAfter = dv.getBigUint64(16);
  if (notBefore > BigInt(Number.MAX_SAFE_INTEGER) || notAfter > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw bad('validity out of range');
  }
  let o = CERT_NAME_OFF;
  const nameLen = bytes[o++]!;
  if (nameLen < 1 || nameLen > CERT_MAX_NAME_LEN || o + nameLen + 1 > bytes.length) {
    throw bad('bad name length');
  }
  const name = new TextDecoder('utf-8', { fatal: false }).decode(bytes.subarray(o, o + nameLen));
  if (!NAME_RE.test(name)) throw bad('bad member name');
  o += nameLen;
  const count = bytes[o++]!;
  if (count < 1 || count > CERT_MAX_ADDRESSES) throw bad('bad address count');
  if (o + count * 17 + CERT_SIGNATURE_LEN !== bytes.length) throw bad('bad certificate length');
  for (let i = 0; i < count; i++) {
    if (bytes[o + i * 17]! > 128) throw bad('bad prefix length');
  }
  return new DecodedCertificate(name, role, bytes, Number(notBefore), Number(notAfter));
}

/**
 * A decoded certificate. Its bytes are kept as a string of one char per byte (issue 17: a home
 * agent keeps one decoded certificate per member, and a Uint8Array of its own costs a view, an
 * ArrayBuffer and a separate backing store, ~330 B for 146 bytes, where the string is ~165 B;
 * the public key as a view into it cost another 96 B). `raw`, `publicKey` and `addresses` are
 * made from it on each read (copies); the checks on every packet or BU read the string in place
 * (certificateHoldsAt), and a rekey compares the bytes it carries in place (certificateIs).
 */
class DecodedCertificate implements MemberCertificate {
  readonly name: string;
  readonly role: Role;
  readonly notBefore: number;
  readonly notAfter: number;
  /** The certificate's bytes, one char per byte. */
  readonly bytes: string;

  constructor(name: string, role: Role, raw: Uint8Array, notBefore: number, notAfter: number) {
    this.name = name;
    this.role = role;
    this.notBefore = notBefore;
    this.notAfter = notAfter;
    this.bytes = byteString(raw);
  }

  /** A copy of the certificate's bytes. */
  get raw(): Uint8Array {
    return bytesOfString(this.bytes);
  }

  /** A copy of the member's public key. */
  get publicKey(): Uint8Array {
    return bytesOfString(this.bytes, CERT_PUBKEY_OFF, CERT_PUBKEY_OFF + 32);
  }

  get addresses(): AllowedPrefix[] {
    const raw = this.raw;
    let o = addressListOffset(raw);
    const out = new Array<AllowedPrefix>(raw[o++]!);
    for (let i = 0; i < out.length; i++, o += 17) {
      out[i] = { prefixLength: raw[o]!, address: raw.subarray(o + 1, o + 17) };
    }
    return out;
  }
}

/**
 * True when `bytes` are exactly `cert`'s bytes (a rekey presenting the certificate its session
 * holds): compared in place, with no copy of a decoded certificate's bytes.
 */
export function certificateIs(cert: MemberCertificate, bytes: Uint8Array): boolean {
  if (!(cert instanceof DecodedCertificate)) return bytesEqual(bytes, cert.raw);
  const s = cert.bytes;
  if (s.length !== bytes.length) return false;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) !== bytes[i]) return false;
  return true;
}

/** Where a certificate's address count byte is (its prefixes follow, 17 bytes each). */
function addressListOffset(raw: Uint8Array): number {
  return CERT_NAME_OFF + 1 + raw[CERT_NAME_OFF]!;
}

/**
 * True iff one of `cert`'s allowed prefixes holds the 16-byte IPv6 address at
 * `bytes[offset..]`. Reads the certificate's bytes in place: no allocation (the selector on
 * every packet, the home address of every BU).
 */
export function certificateHoldsAt(
  cert: MemberCertificate,
  bytes: Uint8Array,
  offset: number,
): boolean {
  if (cert instanceof DecodedCertificate) return holdsInString(cert.bytes, bytes, offset);
  const raw = cert.raw;
  const list = addressListOffset(raw);
  const count = raw[list] ?? 0;
  for (let i = 0, o = list + 1; i < count; i++, o += 17) {
    if (prefixMatches(raw, raw[o]!, bytes, offset, o + 1)) return true;
  }
  return false;
}

/** certificateHoldsAt over a decoded certificate's bytes (one char per byte). */
function holdsInString(s: string, bytes: Uint8Array, offset: number): boolean {
  if (offset < 0) return false;
  const list = CERT_NAME_OFF + 1 + s.charCodeAt(CERT_NAME_OFF);
  const count = s.charCodeAt(list);
  for (let i = 0, o = list + 1; i < count; i++, o += 17) {
    const length = s.charCodeAt(o);
    const whole = length >> 3;
    const rem = length & 7;
    if (offset + whole + (rem === 0 ? 0 : 1) > bytes.length) continue;
    let j = 0;
    while (j < whole && s.charCodeAt(o + 1 + j) === bytes[offset + j]) j++;
    if (j < whole) continue;
    if (rem === 0) return true;
    const mask = (0xff << (8 - rem)) & 0xff;
    if (((s.charCodeAt(o + 1 + whole) ^ bytes[offset + whole]!) & mask) === 0) return true;
  }
  return false;
}

/** Checks signature, validity at `nowMs` and (optionally) the role. Never throws. */
export function verifyCertificate(
  cert: MemberCertificate,
  authorityPublicKey: Uint8Array,
  nowMs: number,
  allowedRoles?: readonly Role[],
): CertificateVerdict {
  const raw = cert.raw;
  const body = raw.subarray(0, raw.length - CERT_SIGNATURE_LEN);
  let ok = false;
  try {
    ok = lib().crypto_sign_verify_detached(
      raw.subarray(raw.length - CERT_SIGNATURE_LEN),
      concat(SIGNING_CONTEXT, body),
      authorityPublicKey,
    );
  } catch {
    ok = false;
  }
  if (!ok) return 'bad-certificate';
  return checkValidityAndRole(cert, nowMs, allowedRoles);
}

/** The checks of verifyCertificate after the signature: validity at `nowMs` and the role. For a
 *  certificate whose signature was verified before (the same bytes). */
export function checkValidityAndRole(
  cert: MemberCertificate,
  nowMs: number,
  allowedRoles?: readonly Role[],
): CertificateVerdict {
  const now = Math.floor(nowMs / 1000);
  if (now < cert.notBefore) return 'certificate-not-yet-valid';
  if (now >= cert.notAfter) return 'expired-certificate';
  if (allowedRoles !== undefined && !allowedRoles.includes(cert.role)) return 'wrong-role';
  return 'ok';
}

/** `mip6-certificate-v1 <base64>` with optional '#' comment lines. */
export function certificateToText(cert: MemberCertificate, comments: string[] = []): string {
  const s = lib();
  const lines = comments.map((c) => `# ${c}`);
  lines.push(`${CERT_TEXT_TAG} ${s.to_base64(cert.raw, s.base64_variants.ORIGINAL)}`);
  return lines.join('\n') + '\n';
}

/** Parses the text form (throws CryptoError ERR_BAD_CERTIFICATE). */
export function certificateFromText(text: string): MemberCertificate {
  return decodeCertificate(decodeTaggedBase64(text, CERT_TEXT_TAG, bad));
}

/** Shared by key and certificate files: finds the one `TAG base64` line, skipping comments. */
export function decodeTaggedBase64(
  text: string,
  tag: string,
  fail: (message: string) => Error,
): Uint8Array {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.length !== 1) throw fail(`expected one "${tag} <base64>" line`);
  const [found, b64, ...rest] = lines[0]!.split(/\s+/);
  if (found !== tag || b64 === undefined || rest.length > 0) {
    throw fail(`expected "${tag} <base64>", found "${found ?? ''}"`);
  }
  try {
    const s = lib();
    return s.from_base64(b64, s.base64_variants.ORIGINAL);
  } catch {
    throw fail('invalid base64');
  }
}

// ---- IPv6 text <-> bytes (for the CLI and `cert show`) -------------------------------------

/** Parses an IPv6 address (RFC 4291 §2.2 text forms); null when it is not one. */
export function parseIpv6(text: string): Uint8Array | null {
  try {
    return parseIpv6Bytes(text);
  } catch {
    return null;
  }
}

/** RFC 5952 canonical text form. */
export function formatIpv6(addr: Uint8Array): string {
  return formatIpv6Text(addr);
}

/** Parses "HOA" (a /128) or "PREFIX/LEN"; host bits must be zero for a prefix. */
export function parseAllowedPrefix(text: string): AllowedPrefix | null {
  const [a, len, extra] = text.split('/');
  if (extra !== undefined || a === undefined) return null;
  const address = parseIpv6(a);
  if (address === null) return null;
  const prefixLength = len === undefined ? 128 : /^\d{1,3}$/.test(len) ? Number(len) : -1;
  if (prefixLength < 0 || prefixLength > 128) return null;
  if (!bytesEqual(maskPrefix(address, prefixLength), address)) return null;
  return { address, prefixLength };
}

export function formatAllowedPrefix(p: AllowedPrefix): string {
  return p.prefixLength === 128
    ? formatIpv6(p.address)
    : `${formatIpv6(p.address)}/${p.prefixLength}`;
}
