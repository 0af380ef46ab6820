// TUN offloads (issue #16): a wire of two addon TUN devices between two namespaces carries a
// real TCP connection both ways and a UDP GSO send. With IFF_VNET_HDR + TUNSETOFFLOAD the
// kernel hands the TUNs TCP super-packets (TSO) that the addon cuts into MTU-sized packets;
// every forwarded packet's IP and TCP/UDP checksums are checked by the fixture, the receiving
// kernels count no checksum error, and the bytes delivered are the same as with the offloads
// off (MIP6_OFFLOAD_OFF=tun, the TUN opened without a virtio-net header, as before).
import t from 'tap';
import { createNetns, nativeSkipReason, runFixture } from '../helpers/netns.js';

const skip = nativeSkipReason() ?? false;

interface WireResult {
  upHash: string;
  server: { got: number; hash: string; backHash: string; udp: [number, string][] };
  down: { n: number; hash: string };
  stats: {
    packets: number;
    maxLen: number;
    badIpChecksum: number;
    badL4Checksum: number;
    tooLong: number;
  };
  offloadsA: Record<string, boolean>;
  offloadsB: Record<string, boolean>;
  countersA: Record<string, number>;
  countersB: Record<string, number>;
  csumErrorsA: number;
  csumErrorsB: number;
}

for (const family of [4, 6] as const) {
  void t.test(
    `IPv${family}: TSO super-packets cut into checked packets; fallback`,
    { skip },
    async (t) => {
      const results: WireResult[] = [];
      for (const off of ['-', 'tun-gro', 'tun']) {
        const a = await createNetns(t, 'toa');
        const b = await createNetns(t, 'tob');
        const r = await runFixture(a, 'tun-offload-child.ts', [String(family), b, off], {
          timeoutMs: 60_000,
        });
        t.equal(r.code, 0, r.stderr);
        const res = r.result as WireResult;
        results.push(res);
        const label =
          off === '-' ? 'offloads on' : off === 'tun' ? 'offloads off' : 'no write coalescing';
        t.equal(res.server.got, 6 * 1024 * 1024, `${label}: the server got every byte`);
        t.equal(res.server.hash, res.upHash, `${label}: and the right ones`);
        t.equal(res.down.hash, res.server.backHash, `${label}: the reply arrived intact`);
        t.equal(res.server.udp.length, 12, `${label}: the UDP GSO send arrived as 12 datagrams`);
        t.same(
          res.server.udp.map(([n]) => n),
          [...Array<number>(11).fill(1000), 300],
        );
        t.equal(res.stats.badIpChecksum, 0, `${label}: every IPv4 header checksum right`);
        t.equal(res.stats.badL4Checksum, 0, `${label}: every TCP/UDP checksum right`);
        t.equal(
          res.stats.tooLong,
          0,
          `${label}: no packet above the MTU (max ${res.stats.maxLen})`,
        );
        t.equal(
          res.csumErrorsA + res.csumErrorsB,
          0,
          `${label}: no TCP checksum error in either kernel`,
        );
        for (const c of [res.countersA, res.countersB]) {
          for (const k of Object.keys(c).filter((n) => n.startsWith('rxDrop')))
            t.equal(c[k], 0, `${label}: ${k} 0`);
        }
        if (off !== 'tun') {
          for (const o of [res.offloadsA, res.offloadsB]) {
            t.ok(o.vnetHeader && o.checksum, 'virtio-net header and checksum offload accepted');
            t.ok(o.tso4 && o.tso6, 'TSO accepted (kernel 6.x)');
          }
          t.ok(
            res.countersA.rxGsoPackets! > 0,
            `A read super-packets (${res.countersA.rxGsoPackets})`,
          );
          t.ok(
            res.countersB.rxGsoPackets! > 0,
            `B read super-packets (${res.countersB.rxGsoPackets})`,
          );
          t.ok(
            res.countersA.rxGsoSegments! > 2 * res.countersA.rxGsoPackets!,
            'each cut into several packets',
          );
          const gso = res.countersA.txGsoPackets! + res.countersB.txGsoPackets!;
          if (off === '-') {
            t.ok(gso > 0, `TCP runs written as super-packets (${gso})`);
            t.ok(
              res.countersA.txGsoSegments! + res.countersB.txGsoSegments! > 2 * gso,
              'of several packets each',
            );
            t.equal(res.offloadsA.coalesceRefusedErrno, undefined, 'never refused');
          } else t.equal(gso, 0, `${label}: no super-packet written`);
        } else {
          t.equal(res.offloadsA.vnetHeader, false, 'no virtio-net header');
          t.equal(res.offloadsA.disabledByEnv, true);
          t.equal(res.countersA.rxGsoPackets, 0);
          t.equal(res.countersB.rxGsoPackets, 0);
        }
      }
      for (const r of results.slice(1)) {
        t.equal(r.server.hash, results[0]!.server.hash, 'same bytes up with and without');
        t.equal(r.down.hash, results[0]!.down.hash, 'same bytes down with and without');
        t.same(r.server.udp, results[0]!.server.udp, 'same UDP datagrams with and without');
      }
    },
  );
}

interface UdpRunResult {
  down: { written: number; errors: number; offloads: Record<string, unknown> };
  written: number;
  sent: number;
  got: [number, number, string][];
  want: [number, number, string][];
  csumErrors: number;
  offloads: Record<string, boolean>;
  counters: Record<string, number>;
}

for (const family of [4, 6] as const) {
  void t.test(
    `IPv${family}: a batch of UDP datagrams written as runs (USO); fallback`,
    { skip },
    async (t) => {
      for (const off of ['-', 'tun-gro', 'tun-gro-udp']) {
        const ns = await createNetns(t, 'tur');
        const r = await runFixture(ns, 'tun-udp-run-child.ts', [String(family), off], {
          timeoutMs: 30_000,
        });
        t.equal(r.code, 0, r.stderr);
        const res = r.result as UdpRunResult;
        const label = off === '-' ? 'runs on' : `MIP6_OFFLOAD_OFF=${off}`;
        t.equal(res.down.written, 0, `${label}: nothing written while the link is down`);
        t.equal(res.down.errors, 4, `${label}: each datagram counted as an error`);
        t.equal(
          res.down.offloads.coalesceUdpRefusedErrno,
          undefined,
          'a passing error is no refusal',
        );
        t.equal(res.written, res.sent, `${label}: the kernel took every datagram`);
        t.same(res.got, res.want, `${label}: every right datagram arrived, in order, intact`);
        t.equal(res.csumErrors, 1, `${label}: the wrong checksum was the kernel's to drop`);
        if (off === '-' && res.offloads[family === 4 ? 'uso4' : 'uso6']) {
          t.equal(res.counters.txGsoPackets, 2, 'two runs: before and after the wrong one');
          t.equal(res.counters.txGsoSegments, 41, 'holding the 41 right datagrams');
          t.equal(res.offloads.coalesceUdpRefusedErrno, undefined, 'never refused');
        } else if (off === '-') {
          t.comment('the kernel took no USO: the datagrams went one by one');
          t.equal(res.counters.txGsoPackets, 0);
        } else t.equal(res.counters.txGsoPackets, 0, `${label}: no super-packet written`);
      }
    },
  );
}
