/**
 * ICMPv4 Fragmentation Needed (src/wire/icmpv4-too-big.ts) for an inner IPv4 packet too big
 * for the tunnel's path: header fields, both checksums, the quote (IP header + 8 bytes, RFC
 * 792), and no error about an ICMP error. Cross-checked with scapy where it is installed.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { internetChecksum } from '../../src/wire/checksum.js';
import { buildFragmentationNeeded, ipv4DontFragment } from '../../src/wire/icmpv4-too-big.js';

/** A 1400-byte IPv4 TCP packet 10.99.0.7 -> 192.0.2.80 with DF. */
function bigPacket(protocol = 6, firstPayloadByte = 0): Uint8Array {
  const p = new Uint8Array(1400);
  p.set([0x45, 0, 1400 >> 8, 1400 & 0xff, 0x12, 0x34, 0x40, 0, 64, protocol, 0, 0]);
  p.set([10, 99, 0, 7], 12);
  p.set([192, 0, 2, 80], 16);
  const c = internetChecksum(p, 0, 20);
  p[10] = c >> 8;
  p[11] = c & 0xff;
  p[20] = firstPayloadByte;
  for (let i = 21; i < 28; i++) p[i] = i;
  return p;
}

const SOURCE = Uint8Array.of(192, 0, 0, 8);

void t.test('Fragmentation Needed back to the source, with the MTU and a valid quote', (t) => {
  const orig = bigPacket();
  const e = buildFragmentationNeeded(orig, 1340, SOURCE);
  t.ok(e);
  const r = e!;
  t.equal(r.length, 20 + 8 + 28, 'IP header + ICMP header + IP header and 8 bytes quoted');
  t.equal(r[0], 0x45);
  t.equal((r[2]! << 8) | r[3]!, r.length, 'total length');
  t.equal(r[9], 1, 'ICMP');
  t.same([...r.subarray(12, 16)], [192, 0, 0, 8], 'from our source');
  t.same([...r.subarray(16, 20)], [10, 99, 0, 7], 'to the offending packet source');
  t.equal(internetChecksum(r, 0, 20), 0, 'IPv4 header checksum');
  t.equal(r[20], 3, 'Destination Unreachable');
  t.equal(r[21], 4, 'Fragmentation Needed and DF set');
  t.equal((r[26]! << 8) | r[27]!, 1340, 'Next-Hop MTU (RFC 1191 §4)');
  t.equal(internetChecksum(r, 20, r.length - 20), 0, 'ICMP checksum');
  t.same([...r.subarray(28)], [...orig.subarray(0, 28)], 'the quote');
  t.end();
});

void t.test('no error about an ICMP error, nor about a non-IPv4 packet', (t) => {
  t.equal(buildFragmentationNeeded(bigPacket(1, 3), 1340, SOURCE), null, 'ICMP error');
  t.ok(buildFragmentationNeeded(bigPacket(1, 8), 1340, SOURCE), 'an echo request gets one');
  const v6 = bigPacket();
  v6[0] = 0x60;
  t.equal(buildFragmentationNeeded(v6, 1340, SOURCE), null);
  t.equal(buildFragmentationNeeded(new Uint8Array(10), 1340, SOURCE), null, 'short');
  t.end();
});

void t.test("no Fragmentation Needed for a packet without Don't Fragment (RFC 1191 §3)", (t) => {
  const noDf = bigPacket();
  noDf[6] = 0; // flags: DF clear (header checksum not looked at here)
  t.notOk(ipv4DontFragment(noDf, 0));
  t.ok(ipv4DontFragment(bigPacket(), 0));
  t.equal(buildFragmentationNeeded(noDf, 1340, SOURCE), null, 'none without DF');
  t.end();
});

const scapy = existsSync('/usr/bin/python3') ? false : 'needs /usr/bin/python3 with scapy';
void t.test('scapy reads it as the same error', { skip: scapy }, (t) => {
  const e = buildFragmentationNeeded(bigPacket(), 1340, SOURCE)!;
  const py = [
    'import sys',
    'from scapy.layers.inet import IP, ICMP',
    'p = IP(bytes.fromhex(sys.argv[1]))',
    'c = p.copy(); del c[IP].chksum; del c[ICMP].chksum; c = IP(bytes(c))',
    'print(p[ICMP].type, p[ICMP].code, p[ICMP].nexthopmtu, p.chksum == c.chksum,' +
      ' p[ICMP].chksum == c[ICMP].chksum, p[ICMP].payload.src)',
  ].join('\n');
  let out: string;
  try {
    out = execFileSync('/usr/bin/python3', ['-c', py, Buffer.from(e).toString('hex')], {
      encoding: 'utf8',
      timeout: 30_000,
    }).trim();
  } catch (err) {
    t.comment(`scapy not usable: ${String(err).slice(0, 100)}`);
    t.end();
    return;
  }
  t.equal(out, '3 4 1340 True True 10.99.0.7');
  t.end();
});
