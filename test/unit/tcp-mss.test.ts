/**
 * TCP MSS clamping (src/wire/tcp-mss.ts): SYNs over IPv6 and IPv4 with options before the MSS,
 * the checksum after the incremental update equal to a full recomputation, and everything
 * that must be left alone (not a SYN, MSS already small, no MSS option, truncated options).
 */
import t from 'tap';
import {
  fixUpperLayerChecksum,
  internetChecksum,
  onesComplementSum,
  verifyUpperLayerChecksum,
} from '../../src/wire/checksum.js';
import { parseIpv6 } from '../../src/wire/address.js';
import { clampTcpMss, MSS_OVERHEAD_IPV6 } from '../../src/wire/tcp-mss.js';

/** TCP header with options: NOP, NOP, SACK-permitted, MSS `mss`, window scale, padding. */
function tcpSyn(mss: number, flags = 0x02): Uint8Array {
  const opts = [1, 1, 4, 2, 2, 4, mss >> 8, mss & 0xff, 3, 3, 7, 0];
  const tcp = new Uint8Array(20 + opts.length);
  tcp.set([0xc0, 0x01, 0x00, 0x50, 1, 2, 3, 4, 0, 0, 0, 0]);
  tcp[12] = ((20 + opts.length) / 4) << 4;
  tcp[13] = flags;
  tcp[14] = 0xff;
  tcp[15] = 0xff;
  tcp.set(opts, 20);
  return tcp;
}

/** A SYN with exactly `opts` as options (padded with End of Option List to 32-bit words). */
function tcpSynWith(opts: number[]): Uint8Array {
  const optLen = Math.ceil(opts.length / 4) * 4;
  const tcp = tcpSyn(0).slice(0, 20);
  const out = new Uint8Array(20 + optLen);
  out.set(tcp);
  out[12] = ((20 + optLen) / 4) << 4;
  out.set(opts, 20);
  return out;
}

function ipv6Packet(tcp: Uint8Array): Uint8Array {
  const p = new Uint8Array(40 + tcp.length);
  p[0] = 0x60;
  p[4] = tcp.length >> 8;
  p[5] = tcp.length & 0xff;
  p[6] = 6;
  p[7] = 64;
  p.set(parseIpv6('2001:db8::1'), 8);
  p.set(parseIpv6('2001:db8:1::2'), 24);
  p.set(tcp, 40);
  fixUpperLayerChecksum(p);
  return p;
}

function ipv4Checksum(p: Uint8Array): number {
  const tcpLen = p.length - 20;
  const pseudo = new Uint8Array(12);
  pseudo.set(p.subarray(12, 20), 0);
  pseudo[9] = 6;
  pseudo[10] = tcpLen >> 8;
  pseudo[11] = tcpLen & 0xff;
  return internetChecksum(p, 20, tcpLen, onesComplementSum(pseudo));
}

function ipv4Packet(tcp: Uint8Array): Uint8Array {
  const p = new Uint8Array(20 + tcp.length);
  p.set([0x45, 0, 0, p.length, 0, 1, 0x40, 0, 64, 6, 0, 0, 192, 0, 2, 1, 198, 51, 100, 2]);
  p.set(tcp, 20);
  const c = ipv4Checksum(p);
  p[36] = c >> 8;
  p[37] = c & 0xff;
  return p;
}

function mssOf(p: Uint8Array, ipLen: number): number {
  return (p[ipLen + 26]! << 8) | p[ipLen + 27]!;
}

void t.test('IPv6 SYN: MSS lowered to the path, checksum still valid', (t) => {
  for (const mss of [1440, 65535, 1337, 1221]) {
    const p = ipv6Packet(tcpSyn(mss));
    t.equal(verifyUpperLayerChecksum(p), true);
    t.ok(clampTcpMss(p, 0, p.length, 1280), `MSS ${mss} clamped`);
    t.equal(mssOf(p, 40), 1280 - MSS_OVERHEAD_IPV6);
    t.equal(verifyUpperLayerChecksum(p), true, `checksum after clamping ${mss}`);
  }
  t.end();
});

void t.test('a SYN-ACK is clamped too; at an offset inside a larger buffer', (t) => {
  const p = ipv6Packet(tcpSyn(1440, 0x12));
  const buf = new Uint8Array(p.length + 64);
  buf.set(p, 16);
  t.ok(clampTcpMss(buf, 16, p.length, 1340));
  const q = buf.slice(16, 16 + p.length);
  t.equal(mssOf(q, 40), 1340 - 60);
  t.equal(verifyUpperLayerChecksum(q), true);
  t.end();
});

void t.test('IPv4 SYN: MSS lowered, checksum still valid', (t) => {
  const p = ipv4Packet(tcpSyn(1460));
  t.equal(ipv4Checksum(p), 0);
  t.ok(clampTcpMss(p, 0, p.length, 1340));
  t.equal(mssOf(p, 20), 1300);
  t.equal(ipv4Checksum(p), 0, 'checksum after clamping');
  t.end();
});

void t.test('left alone: small MSS, not a SYN, no MSS, not TCP, truncated options', (t) => {
  const small = ipv6Packet(tcpSyn(1200));
  const before = small.slice();
  t.notOk(clampTcpMss(small, 0, small.length, 1280));
  t.same(small, before, 'an MSS that fits is untouched');
  const ack = ipv6Packet(tcpSyn(1440, 0x10));
  t.notOk(clampTcpMss(ack, 0, ack.length, 1280), 'not a SYN');
  const noMss = ipv6Packet(tcpSyn(1440));
  noMss.fill(1, 40 + 20 + 3, 40 + 20 + 8); // MSS option overwritten with NOPs
  t.notOk(clampTcpMss(noMss, 0, noMss.length, 1280), 'no MSS option');
  const udp = ipv6Packet(tcpSyn(1440));
  udp[6] = 17;
  t.notOk(clampTcpMss(udp, 0, udp.length, 1280), 'not TCP');
  const cut = ipv6Packet(tcpSyn(1440));
  t.notOk(clampTcpMss(cut, 0, 40 + 24, 1280), 'options beyond the packet');
  const bad = ipv6Packet(tcpSyn(1440));
  bad[40 + 20 + 5] = 0; // an option of length 0 before the MSS
  bad[40 + 20 + 2] = 9;
  bad[40 + 20 + 3] = 0;
  t.notOk(clampTcpMss(bad, 0, bad.length, 1280), 'malformed option list');
  const frag = ipv4Packet(tcpSyn(1460));
  frag[7] = 8; // a later fragment
  t.notOk(clampTcpMss(frag, 0, frag.length, 1280), 'IPv4 fragment');
  t.notOk(clampTcpMss(Uint8Array.of(0x20, 0, 0), 0, 3, 1280), 'neither IPv4 nor IPv6');
  t.end();
});

void t.test('MSS first or after one NOP (odd offset): checksum equal to a full recompute', (t) => {
  // [options, offset of the MSS value in the TCP header]
  const layouts: [string, number[], number][] = [
    ['MSS first', [2, 4, 0x05, 0xb4, 1, 3, 3, 7], 22],
    ['NOP, MSS', [1, 2, 4, 0x05, 0xb4, 1, 1, 0], 23],
    ['NOP, NOP, NOP, MSS', [1, 1, 1, 2, 4, 0xff, 0xff, 0], 25],
  ];
  for (const [name, opts, at] of layouts) {
    for (const mss of [0x05b4, 0xffff, 0x1401]) {
      const withMss = opts.slice();
      withMss[at - 20] = mss >> 8;
      withMss[at - 19] = mss & 0xff;
      for (const family of [6, 4] as const) {
        const ip = family === 6 ? 40 : 20;
        const max = family === 6 ? 1280 : 1340;
        const p = family === 6 ? ipv6Packet(tcpSynWith(withMss)) : ipv4Packet(tcpSynWith(withMss));
        const valid = (): boolean =>
          family === 6 ? verifyUpperLayerChecksum(p) === true : ipv4Checksum(p) === 0;
        t.ok(valid(), `IPv${family} ${name} ${mss}: valid before`);
        t.ok(clampTcpMss(p, 0, p.length, max), `IPv${family} ${name} ${mss}: clamped`);
        t.equal((p[ip + at]! << 8) | p[ip + at + 1]!, max - ip - 20);
        // Full recompute: the checksum field zeroed, the sum over everything written back.
        const stored = (p[ip + 16]! << 8) | p[ip + 17]!;
        const q = p.slice();
        q[ip + 16] = 0;
        q[ip + 17] = 0;
        let full: number;
        if (family === 6) {
          fixUpperLayerChecksum(q);
          full = (q[ip + 16]! << 8) | q[ip + 17]!;
        } else {
          full = ipv4Checksum(q);
        }
        t.equal(stored, full, `IPv${family} ${name} ${mss}: equal to a full recompute`);
        t.ok(valid(), `IPv${family} ${name} ${mss}: valid after`);
      }
    }
  }
  t.end();
});
