/**
 * Protocol constants and defaults for home registration. Times are in milliseconds (suffix
 * _MS) or seconds (suffix _S), as the name says; each cites where it comes from. Values that are
 * mip6 choices rather than RFC constants say so.
 */
import { BA_STATUS_NAMES } from '../wire/status-names.js';

/** First BU retransmission timeout for non-first home registrations (RFC 6275 §12). */
export const INITIAL_BINDACK_TIMEOUT_MS = 1000;
/**
 * InitialBindackTimeoutFirstReg default: 1.5 s, so the HA's DAD for a new binding can finish
 * before the first retransmission (RFC 6275 §13, §11.7.1).
 */
export const INITIAL_BINDACK_TIMEOUT_FIRST_REG_MS = 1500;
/** Cap of the doubling BU retransmission timeout (RFC 6275 §12). */
export const MAX_BINDACK_TIMEOUT_MS = 32_000;
/** At most this many BUs per second to one destination (RFC 6275 §12, §11.8). */
export const MAX_UPDATE_RATE = 3;
/** Window in which MAX_UPDATE_RATE is counted (RFC 6275 §12: "per second"). */
export const UPDATE_RATE_WINDOW_MS = 1000;
/** Maximum lifetime of a correspondent (RR-authorised) binding (RFC 6275 §12). */
export const MAX_RR_BINDING_LIFETIME_S = 420;
/** A CN accepts a nonce index at most this long after generating the nonce (RFC 6275 §12). */
export const MAX_NONCE_LIFETIME_S = 240;
/** The MN may use a received keygen token at most this long (RFC 6275 §12). */
export const MAX_TOKEN_LIFETIME_S = 210;
/** Bound on a deleted binding's grace period (RFC 6275 §12). */
export const MAX_DELETE_BCE_TIMEOUT_S = 10;
/** DHAAD retransmissions (RFC 6275 §12). */
export const DHAAD_RETRIES = 4;
/** First DHAAD retransmission timeout (RFC 6275 §12). */
export const INITIAL_DHAAD_TIMEOUT_MS = 3000;
/** First Mobile Prefix Solicitation retransmission timeout (RFC 6275 §12). */
export const INITIAL_SOLICIT_TIMER_MS = 3000;
/** Cap of the Mobile Prefix Solicitation back-off (RFC 6275 §12). */
export const MAX_MOBPFX_SOLICIT_TIMEOUT_MS = 3_600_000;
/** Unsolicited MPA retransmissions (RFC 6275 §12). */
export const PREFIX_ADV_RETRIES = 3;
/** First unsolicited MPA retransmission timeout (RFC 6275 §12). */
export const PREFIX_ADV_TIMEOUT_MS = 3000;
/** Shortest interval between MPAs to one mobile node, default (RFC 6275 §13: 600 s). */
export const MIN_MOBPFX_ADV_INTERVAL_S = 600;
/** Longest interval between MPAs to one mobile node, default (RFC 6275 §13: 86 400 s). */
export const MAX_MOBPFX_ADV_INTERVAL_S = 86_400;
/** Largest lifetime the 16-bit field can carry: 0xffff * 4 s (RFC 6275 §6.1.7). */
export const MAX_BINDING_LIFETIME_S = 0xffff * 4;
/** Default NAT keepalive interval (RFC 5555 §3.1.3 / UMIP NATKATIMEOUT). */
export const NATKATIMEOUT_S = 110;
/** NAT Detection option Refresh time 0 = "use the default" (RFC 5555 §3.1.3). */
export const NAT_REFRESH_TIME_DEFAULT = 0;
/** NAT Detection option Refresh time all-ones = "no keepalives needed" (RFC 5555 §3.1.3). */
export const NAT_REFRESH_TIME_NONE = 0xffff_ffff;
/** UDP port for DSMIPv6 / the mip6 underlay (RFC 5555 §3.3, IANA "dsmipv6"). */
export const DSMIPV6_UDP_PORT = 4191;

/** mip6 choice: the HA sends a BRR for an entry whose lifetime is 90% spent (RFC 6275 §10.3.1 leaves it open). */
export const BRR_LIFETIME_FRACTION = 0.9;
/** Only for entries used this recently (UMIP CN_BRR_TIME_THRESH, 60 s; RFC 6275 §9.5.5 "active use"). */
export const BRR_USAGE_WINDOW_MS = 60_000;
/** mip6 choice: the MN refreshes at this fraction of the granted lifetime when no advice came. */
export const MN_REFRESH_FRACTION = 0.85;
/** mip6 choice: tries of a deregistration BU before the MN gives up and reports it done. */
export const MAX_DEREGISTRATION_ATTEMPTS = 3;
/**
 * mip6 choice: the HA remembers the last accepted sequence of a deleted binding this long, so a
 * replayed older BU cannot resurrect it (UMIP's "nonce block" idea applied to home bindings).
 */
export const BINDING_TOMBSTONE_MS = 600_000;

/**
 * Readable name of a Binding Acknowledgement status (RFC 6275 §6.1.8 and the IANA registry),
 * for logs and `mip6 status`. Unknown codes read "unknown status N (accepted|rejected)".
 */
export function baStatusName(code: number): string {
  const name = BA_STATUS_NAMES[code];
  if (name !== undefined) return name;
  return `unknown status ${code} (${code < 128 ? 'accepted' : 'rejected'})`;
}

/** True for statuses that accept the BU (RFC 6275 §6.1.8: values below 128). */
export function baStatusAccepted(code: number): boolean {
  return code < 128;
}
