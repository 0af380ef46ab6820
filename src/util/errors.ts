/**
 * Error classes with stable codes (STYLE.md §6). Peer misbehaviour never throws to the event
 * loop: codecs throw WireError, which callers turn into a counted drop or a protocol action.
 */

/** Base class: every mip6 error carries a stable, grep-able `code`. */
export class Mip6Error extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Malformed or hostile bytes. `offset` is the byte where decoding failed, when known. */
export class WireError extends Mip6Error {
  readonly offset: number;
  constructor(code: WireErrorCode, message: string, offset = -1) {
    super(code, message);
    this.offset = offset;
  }
}

export const WIRE_ERROR_CODES = [
  'ERR_TRUNCATED',
  'ERR_BAD_LENGTH',
  'ERR_BAD_ALIGNMENT',
  'ERR_TOO_MANY_HEADERS',
  'ERR_BAD_CHECKSUM',
  'ERR_BAD_VERSION',
  'ERR_BAD_VALUE',
  'ERR_UNSUPPORTED',
] as const;
export type WireErrorCode = (typeof WIRE_ERROR_CODES)[number];

/** A state machine was driven into something the protocol forbids (programmer error or peer). */
export class ProtocolError extends Mip6Error {}

/** Configuration problem: always names the file, the key and what is wrong. */
export class ConfigError extends Mip6Error {
  readonly file: string;
  readonly key: string;
  constructor(file: string, key: string, problem: string) {
    super('ERR_CONFIG', `${file}: ${key}: ${problem}`);
    this.file = file;
    this.key = key;
  }
}

/** Key, certificate or channel failure. */
export class CryptoError extends Mip6Error {}

/** Operating-system level failure (TUN, sockets, iproute2) with a human explanation. */
export class IoError extends Mip6Error {
  readonly errno: number | undefined;
  constructor(code: string, message: string, errno?: number) {
    super(code, message);
    this.errno = errno;
  }
}
