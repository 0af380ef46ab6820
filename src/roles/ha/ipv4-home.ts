/**
 * The home agent's answer to a BU's RFC 5555 IPv4 Home Address option, run by the driver
 * (home-agent.ts) after processHomeBindingUpdate: the decision is Ipv4HomeAddresses'
 * (protocol/ipv4-home-addresses.ts), this adds the IPv4 Address Acknowledgement to the BA.
 *
 * Authority: the driver calls it only for a BU that arrived as SIGNALING on the member's own
 * channel; it acts only when that BU created or updated the binding (so certificate, binding
 * owner and sequence number were all checked), and the member's certificate is the only source
 * of a fixed address besides the pool. A rejected BU, a deregistration or a silent (A = 0) BU
 * changes no IPv4 address except that an accepted BU without the option gives its address up.
 */
import type { MemberCertificate } from '../../crypto/certificate.js';
import {
  certificateAllowsIpv4,
  ipv4AckStatusName,
  type Ipv4HomeAddresses,
} from '../../protocol/ipv4-home-addresses.js';
import type { HomeRegistrationResult } from '../../protocol/home-agent-registration.js';
import type { BindingUpdate } from '../../wire/types.js';

/** Log fields of a granted or refused IPv4 home address. */
export type Ipv4HomeAddressReport = {
  hoa: string;
  member: string;
  requested: string;
  status: number;
  statusName: string;
  address?: string;
};

export function answerIpv4HomeAddress(
  pool: Ipv4HomeAddresses,
  result: HomeRegistrationResult,
  bu: BindingUpdate,
  cert: MemberCertificate,
): Ipv4HomeAddressReport | undefined {
  const entry = result.entry;
  if (entry === undefined || (result.change !== 'created' && result.change !== 'updated')) {
    return undefined;
  }
  const option = bu.options.find((o) => o.type === 'ipv4HomeAddress');
  if (option === undefined) {
    pool.release(entry.key);
    return undefined;
  }
  const answer = pool.request(entry.key, option, (v4) => certificateAllowsIpv4(cert.addresses, v4));
  result.ack?.options.push({ type: 'ipv4AddressAcknowledgement', ...answer });
  return {
    hoa: entry.homeAddress,
    member: cert.name,
    requested: option.address,
    status: answer.status,
    statusName: ipv4AckStatusName(answer.status),
    ...(answer.status < 128 ? { address: answer.address } : {}),
  };
}
