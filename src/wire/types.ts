/**
 * Decoded forms of everything mip6 speaks. This file is the contract between the codecs
 * (src/wire) and the state machines (src/protocol, src/roles): engines produce and consume
 * these objects, the codecs turn them into bytes. Addresses are canonical RFC 5952 text
 * ("2001:db8::1"); IPv4 addresses in RFC 5555 options are dotted quads.
 *
 * Field names follow RFC 6275 / RFC 5555 in camelCase. Lifetimes on the wire are in units of
 * 4 seconds (RFC 6275 §6.1.7); the decoded objects carry the raw `lifetimeUnits`.
 */

/** Mobility Header type numbers (RFC 6275 §6.1, IANA "Mobility Header Types"). */
export const MH_TYPE = {
  BRR: 0,
  HOTI: 1,
  COTI: 2,
  HOT: 3,
  COT: 4,
  BU: 5,
  BA: 6,
  BE: 7,
} as const;

/** Mobility option type numbers (RFC 6275 §6.2, RFC 5555 §3.1). */
export const MH_OPT = {
  PAD1: 0,
  PADN: 1,
  BINDING_REFRESH_ADVICE: 2,
  ALTERNATE_COA: 3,
  NONCE_INDICES: 4,
  BINDING_AUTH_DATA: 5,
  IPV4_HOME_ADDRESS: 29,
  IPV4_ADDRESS_ACK: 30,
  NAT_DETECTION: 31,
  IPV4_COA: 32,
} as const;

/** IPv6 next-header values mip6 handles (IANA "Assigned Internet Protocol Numbers"). */
export const IPPROTO = {
  HOPOPTS: 0,
  TCP: 6,
  UDP: 17,
  IPV6: 41,
  ROUTING: 43,
  FRAGMENT: 44,
  ESP: 50,
  AH: 51,
  ICMPV6: 58,
  NONE: 59,
  DSTOPTS: 60,
  MH: 135,
} as const;

export type MobilityOption =
  | { type: 'pad1' }
  | { type: 'padN'; length: number }
  /** Refresh interval in units of 4 s (RFC 6275 §6.2.4). */
  | { type: 'bindingRefreshAdvice'; refreshInterval: number }
  | { type: 'alternateCareOfAddress'; address: string }
  | { type: 'nonceIndices'; homeNonceIndex: number; careOfNonceIndex: number }
  /** 12-byte authenticator (RFC 6275 §6.2.7); must be the last option. */
  | { type: 'bindingAuthorizationData'; authenticator: Uint8Array }
  | { type: 'ipv4HomeAddress'; prefixLength: number; requestPrefix: boolean; address: string }
  | { type: 'ipv4AddressAcknowledgement'; status: number; prefixLength: number; address: string }
  /** F flag = UDP encapsulation required; refreshTime in seconds (RFC 5555 §3.1.3). */
  | { type: 'natDetection'; udpEncapsulationRequired: boolean; refreshTime: number }
  | { type: 'ipv4CareOfAddress'; address: string }
  | { type: 'unknown'; optionType: number; data: Uint8Array };

/** BU flags (RFC 6275 §6.1.7 and the IANA registry); bit names as the RFCs write them. */
export interface BindingUpdateFlags {
  A: boolean;
  H: boolean;
  L: boolean;
  K: boolean;
  M: boolean;
  R: boolean;
  P: boolean;
  F: boolean;
  T: boolean;
  B: boolean;
  S: boolean;
  D: boolean;
}

/** BU flags with every bit clear except those given, e.g. `bindingUpdateFlags({ A: true, H: true })`. */
export function bindingUpdateFlags(set: Partial<BindingUpdateFlags> = {}): BindingUpdateFlags {
  return {
    A: false,
    H: false,
    L: false,
    K: false,
    M: false,
    R: false,
    P: false,
    F: false,
    T: false,
    B: false,
    S: false,
    D: false,
    ...set,
  };
}

/** BA flags (RFC 6275 §6.1.8 and later RFCs). */
export interface BindingAckFlags {
  K: boolean;
  R: boolean;
  P: boolean;
  T: boolean;
  B: boolean;
  S: boolean;
  D: boolean;
}

interface MhCommon {
  /** Mobility options in wire order (Pad1/PadN kept on decode, added by the encoder). */
  options: MobilityOption[];
}

export interface BindingRefreshRequest extends MhCommon {
  kind: 'bindingRefreshRequest';
}
export interface HomeTestInit extends MhCommon {
  kind: 'homeTestInit';
  homeInitCookie: Uint8Array; // 8 bytes
}
export interface CareOfTestInit extends MhCommon {
  kind: 'careOfTestInit';
  careOfInitCookie: Uint8Array; // 8 bytes
}
export interface HomeTest extends MhCommon {
  kind: 'homeTest';
  homeNonceIndex: number;
  homeInitCookie: Uint8Array; // 8 bytes
  homeKeygenToken: Uint8Array; // 8 bytes
}
export interface CareOfTest extends MhCommon {
  kind: 'careOfTest';
  careOfNonceIndex: number;
  careOfInitCookie: Uint8Array; // 8 bytes
  careOfKeygenToken: Uint8Array; // 8 bytes
}
export interface BindingUpdate extends MhCommon {
  kind: 'bindingUpdate';
  sequence: number;
  flags: BindingUpdateFlags;
  /** Units of 4 seconds; 0 = deregistration. */
  lifetimeUnits: number;
}
export interface BindingAcknowledgement extends MhCommon {
  kind: 'bindingAcknowledgement';
  status: number;
  flags: BindingAckFlags;
  sequence: number;
  lifetimeUnits: number;
}
export interface BindingError extends MhCommon {
  kind: 'bindingError';
  status: number;
  homeAddress: string;
}
/** An MH type this codec does not know: kept so the receiver can answer with BE status 2. */
export interface UnknownMobilityMessage extends MhCommon {
  kind: 'unknown';
  mhType: number;
  data: Uint8Array;
}

export type MobilityMessage =
  | BindingRefreshRequest
  | HomeTestInit
  | CareOfTestInit
  | HomeTest
  | CareOfTest
  | BindingUpdate
  | BindingAcknowledgement
  | BindingError
  | UnknownMobilityMessage;

/** Binding Acknowledgement status codes (RFC 6275 §6.1.8, RFC 5555). */
export const BA_STATUS = {
  ACCEPTED: 0,
  ACCEPTED_PREFIX_DISCOVERY: 1,
  REASON_UNSPECIFIED: 128,
  ADMIN_PROHIBITED: 129,
  INSUFFICIENT_RESOURCES: 130,
  HOME_REGISTRATION_NOT_SUPPORTED: 131,
  NOT_HOME_SUBNET: 132,
  NOT_HOME_AGENT_FOR_MN: 133,
  DAD_FAILED: 134,
  SEQUENCE_OUT_OF_WINDOW: 135,
  EXPIRED_HOME_NONCE_INDEX: 136,
  EXPIRED_CARE_OF_NONCE_INDEX: 137,
  EXPIRED_NONCES: 138,
  REGISTRATION_TYPE_CHANGE_DISALLOWED: 139,
  INVALID_CARE_OF_ADDRESS: 174,
} as const;

/** Binding Error status codes (RFC 6275 §6.1.9). */
export const BE_STATUS = {
  UNKNOWN_BINDING_FOR_HAO: 1,
  UNRECOGNIZED_MH_TYPE: 2,
} as const;
