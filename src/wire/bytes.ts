/**
 * Bounds-checked big-endian field access shared by the codecs. Every read of hostile bytes
 * goes through `need`, so a short buffer becomes WireError ERR_TRUNCATED with the offset of
 * the first missing byte, never a RangeError or an undefined value.
 */
import { WireError, type WireErrorCode } from '../util/errors.js';

/** Throws ERR_TRUNCATED unless `len` bytes are available at `off` (before `end`). */
export function need(
  buf: Uint8Array,
  off: number,
  len: number,
  what: string,
  end = buf.length,
): void {
  if (off + len > end || off + len > buf.length) {
    throw new WireError(
      'ERR_TRUNCATED',
      `${what}: need ${len} bytes at offset ${off}`,
      Math.min(off, end),
    );
  }
}

export function fail(code: WireErrorCode, message: string, offset: number): never {
  throw new WireError(code, message, offset);
}

export function u8(buf: Uint8Array, off: number): number {
  return buf[off] ?? 0;
}

export function u16(buf: Uint8Array, off: number): number {
  return ((buf[off] ?? 0) << 8) | (buf[off + 1] ?? 0);
}

export function u32(buf: Uint8Array, off: number): number {
  return (
    (((buf[off] ?? 0) << 24) |
      ((buf[off + 1] ?? 0) << 16) |
      ((buf[off + 2] ?? 0) << 8) |
      (buf[off + 3] ?? 0)) >>>
    0
  );
}

export function put16(buf: Uint8Array, off: number, v: number): void {
  buf[off] = (v >>> 8) & 0xff;
  buf[off + 1] = v & 0xff;
}

export function put32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = (v >>> 24) & 0xff;
  buf[off + 1] = (v >>> 16) & 0xff;
  buf[off + 2] = (v >>> 8) & 0xff;
  buf[off + 3] = v & 0xff;
}

/** Little-endian 32-bit (pcap files written on little-endian hosts). */
export function u32le(buf: Uint8Array, off: number): number {
  return (
    ((buf[off] ?? 0) |
      ((buf[off + 1] ?? 0) << 8) |
      ((buf[off + 2] ?? 0) << 16) |
      ((buf[off + 3] ?? 0) << 24)) >>>
    0
  );
}

export function concatBytes(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Checks an integer field value before encoding (programmer error -> ERR_BAD_VALUE). */
export function checkUint(value: number, bits: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** bits) {
    throw new WireError(
      'ERR_BAD_VALUE',
      `${what} must be an integer in 0..${2 ** bits - 1}, got ${value}`,
    );
  }
  return value;
}
