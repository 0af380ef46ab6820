/**
 * Mobility options codec (RFC 6275 §6.2, RFC 5555 §3.1), for mobility.ts's messages.
 *
 * Encode: the meaningful options in the caller's order with Binding Authorization Data moved
 * last, each preceded by Pad1/PadN so its Type byte meets the option's alignment (xn+y from the
 * start of the MH). Decode: Type/Length checked against the bytes, known options against their
 * fixed length, unknown ones kept as `unknown`, Binding Authorization Data only last;
 * malformed -> WireError with offset.
 */
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from './address.js';
import { checkUint, fail, need, u16, u32, u8 } from './bytes.js';
import { MH_OPT, type MobilityOption } from './types.js';

export const BAD_AUTHENTICATOR_LEN = 12; // RFC 6275 §6.2.7
export const ACOA_LEN = 16; // RFC 6275 §6.2.5
export const NONCE_INDICES_LEN = 4; // RFC 6275 §6.2.6
export const BRA_LEN = 2; // RFC 6275 §6.2.4
export const DSMIP_OPT_LEN = 6; // RFC 5555 §3.1.1-§3.1.5

/** Alignment xn+y of each option's Type byte (RFC 6275 §6.2, RFC 5555 §3.1). */
function alignment(o: MobilityOption): [number, number] {
  switch (o.type) {
    case 'bindingRefreshAdvice':
    case 'nonceIndices':
      return [2, 0]; // RFC 6275 §6.2.4, §6.2.6: 2n
    case 'alternateCareOfAddress':
      return [8, 6]; // RFC 6275 §6.2.5: 8n+6
    case 'bindingAuthorizationData':
      return [8, 2]; // RFC 6275 §6.2.7: 8n+2
    case 'ipv4HomeAddress':
    case 'ipv4AddressAcknowledgement':
    case 'natDetection':
    case 'ipv4CareOfAddress':
      return [4, 0]; // RFC 5555 §3.1: 4n
    case 'pad1':
    case 'padN':
    case 'unknown':
      return [1, 0];
  }
}

/** Pad1 (n = 1) or PadN (n >= 2) of `n` bytes (RFC 6275 §6.2.1, §6.2.2). */
export function pushPad(out: number[], n: number): void {
  if (n === 1) out.push(MH_OPT.PAD1);
  else if (n >= 2) out.push(MH_OPT.PADN, n - 2, ...new Array<number>(n - 2).fill(0));
}

function encodeOption(out: number[], o: MobilityOption): void {
  switch (o.type) {
    case 'pad1':
    case 'padN':
      return;
    case 'bindingRefreshAdvice':
      out.push(MH_OPT.BINDING_REFRESH_ADVICE, BRA_LEN);
      push16(out, checkUint(o.refreshInterval, 16, 'refreshInterval'));
      return;
    case 'alternateCareOfAddress':
      out.push(MH_OPT.ALTERNATE_COA, ACOA_LEN, ...parseIpv6(o.address));
      return;
    case 'nonceIndices':
      out.push(MH_OPT.NONCE_INDICES, NONCE_INDICES_LEN);
      push16(out, checkUint(o.homeNonceIndex, 16, 'homeNonceIndex'));
      push16(out, checkUint(o.careOfNonceIndex, 16, 'careOfNonceIndex'));
      return;
    case 'bindingAuthorizationData':
      if (o.authenticator.length !== BAD_AUTHENTICATOR_LEN) {
        fail('ERR_BAD_VALUE', 'authenticator must be 12 bytes', -1);
      }
      out.push(MH_OPT.BINDING_AUTH_DATA, BAD_AUTHENTICATOR_LEN, ...o.authenticator);
      return;
    case 'ipv4HomeAddress':
      out.push(MH_OPT.IPV4_HOME_ADDRESS, DSMIP_OPT_LEN);
      push16(
        out,
        (checkUint(o.prefixLength, 6, 'prefixLength') << 10) | (o.requestPrefix ? 0x200 : 0),
      );
      out.push(...parseIpv4(o.address));
      return;
    case 'ipv4AddressAcknowledgement':
      out.push(MH_OPT.IPV4_ADDRESS_ACK, DSMIP_OPT_LEN, checkUint(o.status, 8, 'status'));
      out.push(checkUint(o.prefixLength, 6, 'prefixLength') << 2, ...parseIpv4(o.address));
      return;
    case 'natDetection':
      out.push(MH_OPT.NAT_DETECTION, DSMIP_OPT_LEN, o.udpEncapsulationRequired ? 0x80 : 0, 0);
      push32(out, checkUint(o.refreshTime, 32, 'refreshTime'));
      return;
    case 'ipv4CareOfAddress':
      out.push(MH_OPT.IPV4_COA, DSMIP_OPT_LEN, 0, 0, ...parseIpv4(o.address));
      return;
    case 'unknown':
      out.push(
        checkUint(o.optionType, 8, 'optionType'),
        checkUint(o.data.length, 8, 'option length'),
      );
      out.push(...o.data);
      return;
  }
}

/** Big-endian 16-bit value. */
export function push16(out: number[], v: number): void {
  out.push((v >> 8) & 0xff, v & 0xff);
}

/** Big-endian 32-bit value. */
export function push32(out: number[], v: number): void {
  out.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
}

/** Exactly `len` bytes; ERR_BAD_VALUE naming `what` otherwise. */
export function pushBytes(out: number[], b: Uint8Array, len: number, what: string): void {
  if (b.length !== len) fail('ERR_BAD_VALUE', `${what} must be ${len} bytes`, -1);
  out.push(...b);
}

/**
 * Appends `options` to the MH bytes in `out` (whose length is the offset from the MH start):
 * Binding Authorization Data last, each option aligned with Pad1/PadN; the caller's own
 * Pad1/PadN entries are dropped (padding is recomputed).
 */
export function encodeOptions(out: number[], options: readonly MobilityOption[]): void {
  const bad = options.filter((o) => o.type === 'bindingAuthorizationData');
  const ordered = [...options.filter((o) => o.type !== 'bindingAuthorizationData'), ...bad];
  for (const o of ordered) {
    if (o.type === 'pad1' || o.type === 'padN') continue;
    const [x, y] = alignment(o);
    pushPad(out, (((y - out.length) % x) + x) % x);
    encodeOption(out, o);
  }
}

/** Decodes the options in buf[off, end) (see the file comment). */
export function decodeOptions(buf: Uint8Array, off: number, end: number): MobilityOption[] {
  const options: MobilityOption[] = [];
  let sawBad = false;
  while (off < end) {
    const type = u8(buf, off);
    if (type === MH_OPT.PAD1) {
      options.push({ type: 'pad1' });
      off += 1;
      continue;
    }
    need(buf, off, 2, 'mobility option header', end);
    const len = u8(buf, off + 1);
    need(buf, off + 2, len, 'mobility option data', end);
    if (type === MH_OPT.PADN) {
      options.push({ type: 'padN', length: len });
      off += 2 + len;
      continue;
    }
    if (sawBad) fail('ERR_BAD_VALUE', 'Binding Authorization Data is not the last option', off);
    const d = off + 2;
    const expect = (want: number): void => {
      if (len !== want)
        fail('ERR_BAD_LENGTH', `mobility option ${type} length ${len}, expected ${want}`, off + 1);
    };
    switch (type) {
      case MH_OPT.BINDING_REFRESH_ADVICE:
        expect(BRA_LEN);
        options.push({ type: 'bindingRefreshAdvice', refreshInterval: u16(buf, d) });
        break;
      case MH_OPT.ALTERNATE_COA:
        expect(ACOA_LEN);
        options.push({ type: 'alternateCareOfAddress', address: formatIpv6(buf, d) });
        break;
      case MH_OPT.NONCE_INDICES:
        expect(NONCE_INDICES_LEN);
        options.push({
          type: 'nonceIndices',
          homeNonceIndex: u16(buf, d),
          careOfNonceIndex: u16(buf, d + 2),
        });
        break;
      case MH_OPT.BINDING_AUTH_DATA:
        expect(BAD_AUTHENTICATOR_LEN);
        options.push({ type: 'bindingAuthorizationData', authenticator: buf.slice(d, d + len) });
        sawBad = true;
        break;
      case MH_OPT.IPV4_HOME_ADDRESS: {
        expect(DSMIP_OPT_LEN);
        const w = u16(buf, d);
        options.push({
          type: 'ipv4HomeAddress',
          prefixLength: w >> 10,
          requestPrefix: (w & 0x200) !== 0,
          address: formatIpv4(buf, d + 2),
        });
        break;
      }
      case MH_OPT.IPV4_ADDRESS_ACK:
        expect(DSMIP_OPT_LEN);
        options.push({
          type: 'ipv4AddressAcknowledgement',
          status: u8(buf, d),
          prefixLength: u8(buf, d + 1) >> 2,
          address: formatIpv4(buf, d + 2),
        });
        break;
      case MH_OPT.NAT_DETECTION:
        expect(DSMIP_OPT_LEN);
        options.push({
          type: 'natDetection',
          udpEncapsulationRequired: (u8(buf, d) & 0x80) !== 0,
          refreshTime: u32(buf, d + 2),
        });
        break;
      case MH_OPT.IPV4_COA:
        expect(DSMIP_OPT_LEN);
        options.push({ type: 'ipv4CareOfAddress', address: formatIpv4(buf, d + 2) });
        break;
      default:
        options.push({ type: 'unknown', optionType: type, data: buf.slice(d, d + len) });
    }
    off += 2 + len;
  }
  return options;
}
