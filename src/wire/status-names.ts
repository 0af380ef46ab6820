/**
 * Names of the status and code values mobility messages carry, for `mip6 decode`, logs and
 * `mip6 status`: Binding Acknowledgement (RFC 6275 §6.1.8 and the IANA "Status Codes"
 * registry), Binding Error (RFC 6275 §6.1.9), IPv4 Address Acknowledgement (RFC 5555 §3.1.2)
 * and ICMPv6 Parameter Problem (RFC 4443 §3.4).
 */
import { BA_STATUS, BE_STATUS } from './types.js';

/** Binding Acknowledgement status names (RFC 6275 §6.1.8, IANA). */
export const BA_STATUS_NAMES: Readonly<Record<number, string>> = {
  [BA_STATUS.ACCEPTED]: 'Binding Update accepted',
  [BA_STATUS.ACCEPTED_PREFIX_DISCOVERY]: 'Accepted but prefix discovery necessary',
  2: 'GRE key option not required',
  3: 'GRE tunneling but TLV-header not supported',
  4: 'MCoA not complete',
  5: 'MCoA return home without NDP',
  6: 'PBU accepted, TB ignored, settings mismatch',
  [BA_STATUS.REASON_UNSPECIFIED]: 'Reason unspecified',
  [BA_STATUS.ADMIN_PROHIBITED]: 'Administratively prohibited',
  [BA_STATUS.INSUFFICIENT_RESOURCES]: 'Insufficient resources',
  [BA_STATUS.HOME_REGISTRATION_NOT_SUPPORTED]: 'Home registration not supported',
  [BA_STATUS.NOT_HOME_SUBNET]: 'Not home subnet',
  [BA_STATUS.NOT_HOME_AGENT_FOR_MN]: 'Not home agent for this mobile node',
  [BA_STATUS.DAD_FAILED]: 'Duplicate Address Detection failed',
  [BA_STATUS.SEQUENCE_OUT_OF_WINDOW]: 'Sequence number out of window',
  [BA_STATUS.EXPIRED_HOME_NONCE_INDEX]: 'Expired home nonce index',
  [BA_STATUS.EXPIRED_CARE_OF_NONCE_INDEX]: 'Expired care-of nonce index',
  [BA_STATUS.EXPIRED_NONCES]: 'Expired nonces',
  [BA_STATUS.REGISTRATION_TYPE_CHANGE_DISALLOWED]: 'Registration type change disallowed',
  140: 'Mobile Router operation not permitted',
  141: 'Invalid prefix',
  142: 'Not authorized for prefix',
  143: 'Forwarding setup failed',
  144: 'MIPV6-ID-MISMATCH',
  145: 'MIPV6-MESG-ID-REQD',
  146: 'MIPV6-AUTH-FAIL',
  147: 'Permanent home keygen token unavailable',
  148: 'CGA and signature verification failed',
  149: 'Permanent home keygen token exists',
  150: 'Non-null home nonce index expected',
  151: 'Service authorization failed',
  152: 'Proxy registration not enabled',
  153: 'Not LMA for this mobile node',
  154: 'MAG not authorized for proxy registration',
  155: 'Not authorized for home network prefix',
  156: 'Timestamp mismatch',
  157: 'Timestamp lower than previous accepted',
  158: 'Missing home network prefix option',
  159: 'Missing MN identifier option',
  160: 'Missing handoff indicator option',
  161: 'Missing access technology type option',
  162: 'BCE PBU prefix set does not match',
  163: 'GRE key option required',
  164: 'MCoA malformed',
  165: 'MCoA non-MCoA binding exists',
  166: 'MCoA prohibited',
  167: 'MCoA unknown CoA',
  168: 'MCoA bulk registration prohibited',
  169: 'MCoA simultaneous home and foreign prohibited',
  170: 'Not authorized for IPv4 mobility service',
  171: 'Not authorized for IPv4 home address',
  172: 'Not authorized for IPv6 mobility service',
  173: 'Multiple IPv4 home address assignment not supported',
  [BA_STATUS.INVALID_CARE_OF_ADDRESS]: 'Invalid care-of address',
  175: 'Invalid mobile node group identifier',
  176: 'Re-initialise SA with HAC',
};

/** Binding Error status names (RFC 6275 §6.1.9). */
export const BE_STATUS_NAMES: Readonly<Record<number, string>> = {
  [BE_STATUS.UNKNOWN_BINDING_FOR_HAO]: 'Unknown binding for Home Address destination option',
  [BE_STATUS.UNRECOGNIZED_MH_TYPE]: 'Unrecognized MH Type value',
};

/** IPv4 Address Acknowledgement option status names (RFC 5555 §3.1.2). */
export const IPV4_ADDRESS_ACK_STATUS_NAMES: Readonly<Record<number, string>> = {
  0: 'Success',
  128: 'Failure, reason unspecified',
  129: 'Administratively prohibited',
  130: 'Incorrect IPv4 home address',
  131: 'Invalid IPv4 address',
  132: 'Dynamic IPv4 home address assignment not available',
  133: 'Prefix allocation unauthorized',
};

/** ICMPv6 Parameter Problem code names (RFC 4443 §3.4). */
export const PARAMETER_PROBLEM_CODE_NAMES: Readonly<Record<number, string>> = {
  0: 'Erroneous header field encountered',
  1: 'Unrecognized Next Header type encountered',
  2: 'Unrecognized IPv6 option encountered',
};

/** `name`, or "unknown (N)" for a value the table lacks. */
export function statusText(names: Readonly<Record<number, string>>, value: number): string {
  return names[value] ?? `unknown (${value})`;
}
