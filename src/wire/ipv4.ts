/**
 * IPv4 header offsets (RFC 791 §3.1) for the data path, which reads inner IPv4 packets in
 * place: an RFC 5555 IPv4 home address's packets travel in the same channel as IPv6 ones and
 * are told apart by the version nibble.
 */
export const IPV4_VERSION = 4; // RFC 791 §3.1
export const IPV4_HEADER_LEN = 20; // RFC 791 §3.1: the fixed part (IHL 5)
export const IPV4_SRC_OFF = 12; // RFC 791 §3.1
export const IPV4_DST_OFF = 16; // RFC 791 §3.1
