/**
 * Which offloads the kernel accepted for a daemon's TUN device and UDP sockets (issue #16), as
 * short names for the status and the startup log: tun-csum, tun-tso4, tun-tso6, tun-uso4,
 * tun-uso6, tun-gro (TCP runs, and with USO UDP runs, written as super-packets;
 * native/tun_linux.c; tun-gro-refused-ERRNO / tun-gro-udp-refused-ERRNO when the kernel refused
 * one and that stopped), udp4-gso, udp4-gro, udp6-gso, udp6-gro (native/udp.c), and
 * udpN-gso-refused-ERRNO when the kernel refused a segmented send and GSO went off.
 */
import type { TunDevice, UdpEndpoint } from '../io/types.js';

export function offloadNames(
  tun: Pick<TunDevice, 'offloads'>,
  sockets: readonly (Pick<UdpEndpoint, 'family' | 'offloads'> | undefined)[],
): string[] {
  const out: string[] = [];
  const t = tun.offloads?.();
  if (t !== undefined) {
    for (const [on, name] of [
      [t.checksum, 'csum'],
      [t.tso4, 'tso4'],
      [t.tso6, 'tso6'],
      [t.uso4, 'uso4'],
      [t.uso6, 'uso6'],
      [t.coalesceWrites, 'gro'],
    ] as const)
      if (on) out.push(`tun-${name}`);
    if (t.coalesceRefusedErrno !== undefined)
      out.push(`tun-gro-refused-errno${t.coalesceRefusedErrno}`);
    if (t.coalesceUdpRefusedErrno !== undefined)
      out.push(`tun-gro-udp-refused-errno${t.coalesceUdpRefusedErrno}`);
  }
  for (const s of sockets) {
    const u = s?.offloads?.();
    if (s === undefined || u === undefined) continue;
    if (u.gso) out.push(`udp${s.family}-gso`);
    if (u.gro) out.push(`udp${s.family}-gro`);
    if (u.gsoRefusedErrno !== undefined)
      out.push(`udp${s.family}-gso-refused-errno${u.gsoRefusedErrno}`);
  }
  return out;
}
