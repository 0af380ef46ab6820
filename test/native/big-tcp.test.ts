// BIG TCP and reads over 64 KiB (issue #16). Can the kernel hand the addon a TUN read or a UDP
// GRO read longer than 64 KiB, and is anything lost if it does?
//
// TUN: the fixture asks the kernel to raise the TUN's gso_max_size / gso_ipv4_max_size to
// 185000 and sends TCP across the TUN from a local socket and (IPv4) forwarded from a veth with
// BIG TCP limits (super-packets over 64 KiB arrive at the router: its veth counts them). Linux
// 6.18 refuses the TUN's raise (EINVAL: a TUN's tso_max_size is 65536) and cuts what it
// forwards to below the TUN's limit, so no read is longer than 64 KiB; rxMaxRead, the addon's
// own record of its longest read, says so. Should a kernel take the raise, the reads over
// 64 KiB must be cut right (vnet.c; test/native/vnet.test.ts cuts such packets of each kind):
// the bytes must still all arrive.
//
// UDP: with the veths' limits raised too, the sender's kernel refuses a UDP GSO send over
// 64 KiB (EMSGSIZE: UDP has no jumbograms) and the longest train it takes (65507 / 65527
// bytes) reaches the addon's socket as ONE GRO read, cut into every datagram, none truncated.
//
// And a read longer than the buffer it lands in is never handed on cut short: a TUN whose MTU
// is raised after open (its slots sized for the old one) drops the longer packet and counts it
// (rxDropTooBig), with or without the virtio-net header.
import t from 'tap';
import { createHash } from 'node:crypto';
import {
  createNetns,
  linkedNetns,
  nativeSkipReason,
  noDad,
  runFixture,
  run,
  startFixture,
  uniqueName,
} from '../helpers/netns.js';

const skip = nativeSkipReason() ?? false;
const BIG = 185_000;

interface Limits {
  set: Record<string, string>;
  now: Record<string, number>;
}
interface TunResult {
  tunLimits: Limits;
  vethLimits: Limits[];
  transfers: {
    from: string;
    sent: { sent: number; hash: string };
    got: { got: number; hash: string };
  }[];
  vethAverage: number;
  wire: { packets: number; maxLen: number; tooLong: number; badChecksum: number };
  countersA: Record<string, number>;
  countersB: Record<string, number>;
}

for (const family of [4, 6] as const) {
  void t.test(`IPv${family}: TUN reads with BIG TCP around`, { skip }, async (t) => {
    const vx = uniqueName('bx');
    const [nsX, nsA] = await linkedNetns(t, ['btx', 'bta'], [vx, `${vx}a`]);
    const nsB = await createNetns(t, 'btb');
    await noDad(nsB);
    const r = await runFixture(nsA, 'big-tcp-child.ts', [String(family), nsX, vx, `${vx}a`, nsB], {
      timeoutMs: 90_000,
    });
    t.equal(r.code, 0, r.stderr);
    const res = r.result as TunResult;
    for (const v of res.vethLimits)
      t.same(
        v.now,
        { ...v.now, gso_max_size: BIG, gro_max_size: BIG, gso_ipv4_max_size: BIG },
        'BIG TCP limits set on the veth (the kernel has BIG TCP)',
      );
    const raised = res.tunLimits.set[family === 4 ? 'gso_ipv4_max_size' : 'gso_max_size'] === 'ok';
    t.comment(`TUN limits: ${JSON.stringify(res.tunLimits)}`);
    t.equal(res.transfers.length, family === 4 ? 2 : 1);
    if (family === 4)
      t.ok(
        res.vethAverage > 65535,
        `X's BIG TCP super-packets reached A (${res.vethAverage} bytes a packet on its veth)`,
      );
    for (const x of res.transfers) {
      t.equal(x.got.got, x.sent.sent, `from ${x.from}: every byte arrived`);
      t.equal(x.got.hash, x.sent.hash, `from ${x.from}: the right ones`);
    }
    t.equal(res.wire.tooLong, 0, `no packet above the MTU (max ${res.wire.maxLen})`);
    t.equal(res.wire.badChecksum, 0, 'every checksum right');
    for (const c of [res.countersA, res.countersB]) {
      t.equal(c.rxTruncated, 0, 'no read cut short');
      for (const k of Object.keys(c).filter((n) => n.startsWith('rxDrop')))
        t.equal(c[k], 0, `${k} 0`);
    }
    const longest = res.countersA.rxMaxRead!;
    t.ok(
      res.countersA.rxGsoPackets! > 0,
      `tunA read super-packets (${res.countersA.rxGsoPackets})`,
    );
    t.ok(longest > 1400, `tunA's longest read ${longest} bytes: above the MTU`);
    if (!raised) {
      t.equal(
        res.tunLimits.set.gso_max_size,
        'EINVAL',
        'the kernel refuses a TUN gso_max_size over 64 KiB',
      );
      t.ok(
        res.tunLimits.now.tso_max_size! <= 65536,
        `tso_max_size ${res.tunLimits.now.tso_max_size}`,
      );
      t.ok(longest <= 65535, `so no read over 64 KiB here (longest ${longest})`);
    } else {
      t.comment('this kernel let the TUN limit above 64 KiB: reads over 64 KiB were cut');
      t.ok(longest > 65535, `reads over 64 KiB (longest ${longest}) and nothing lost`);
    }
  });
}

interface RecvResult {
  seen: [number, string][];
  counters: Record<string, number>;
  offloads: { gro: boolean };
}

/** Datagram j of the train as the sender builds it (udp-offload-child's datagram()). */
function datagram(index: number, size: number): Uint8Array {
  const d = new Uint8Array(size);
  for (let i = 0; i < size; i++) d[i] = (index * 7 + i) & 0xff;
  d[0] = index;
  return d;
}

const PY_SEND = `
import errno, json, socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
dst, port, seg, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(fam, socket.SOCK_DGRAM)
s.setsockopt(17, 103, seg)  # UDP_SEGMENT
res = {}
for n in (total + 1, 70000, ${BIG}):  # to another port: nobody listens there
    try:
        s.sendto(bytes(n), (dst, port + 1)); res[n] = 'sent'
    except OSError as e:
        res[n] = errno.errorcode[e.errno]
def dgram(j, size):
    d = bytearray((j * 7 + i) & 0xff for i in range(size)); d[0] = j; return bytes(d)
k = (total + seg - 1) // seg
s.sendto(b''.join(dgram(j, min(seg, total - j * seg)) for j in range(k)), (dst, port))
print(json.dumps(res))
`;

for (const family of [4, 6] as const) {
  void t.test(`IPv${family}: the longest UDP GRO read`, { skip }, async (t) => {
    const v = uniqueName('bu');
    const [nsS, nsR] = await linkedNetns(t, ['bus', 'bur'], [v, `${v}r`]);
    const ipf = family === 4 ? [] : ['-6'];
    const addrs = family === 4 ? ['10.99.19.1', '10.99.19.2'] : ['fd00:17:3::1', 'fd00:17:3::2'];
    const plen = family === 4 ? 24 : 64;
    const sizes = new URL('fixtures/link-sizes.py', import.meta.url).pathname;
    for (const [ns, dev, addr] of [
      [nsS, v, addrs[0]!],
      [nsR, `${v}r`, addrs[1]!],
    ] as const) {
      await run('ip', ['netns', 'exec', ns, 'python3', sizes, dev, String(BIG)]);
      await run('ip', ['-n', ns, ...ipf, 'addr', 'add', `${addr}/${plen}`, 'dev', dev]);
      await run('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    }
    // The longest UDP payload one send may carry: 65535 less the UDP header, less the IPv4
    // header for IPv4 (its total length counts it; IPv6's payload length does not).
    const total = family === 4 ? 65507 : 65527;
    const seg = 1200;
    const n = Math.ceil(total / seg);
    const rx = startFixture(nsR, 'udp-offload-child.ts', ['recv', String(family), String(n), '-'], {
      t,
    });
    const port = Number(await rx.firstLine);
    const sent = await run('ip', [
      'netns',
      'exec',
      nsS,
      'python3',
      '-c',
      PY_SEND,
      addrs[1]!,
      String(port),
      String(seg),
      String(total),
    ]);
    const refused = JSON.parse(sent) as Record<string, string>;
    t.same(
      refused,
      { [total + 1]: 'EMSGSIZE', 70000: 'EMSGSIZE', [BIG]: 'EMSGSIZE' },
      'UDP GSO sends over the longest payload refused by the sender (BIG TCP limits or not)',
    );
    const got = (await rx.done).result as RecvResult;
    t.ok(got.offloads.gro, 'UDP_GRO on');
    const want = Array.from({ length: n }, (_, j) => {
      const d = datagram(j, Math.min(seg, total - j * seg));
      return [d.length, createHash('sha256').update(d).digest('hex').slice(0, 16)];
    });
    t.same(got.seen, want, `all ${n} datagrams (${total} bytes), in order, intact`);
    t.equal(got.counters.rxTruncated, 0, 'none truncated');
    t.equal(got.counters.rxGroReads, 1, `one GRO read of ${total} bytes held them`);
    t.equal(got.counters.rxGroDatagrams, n, 'cut into every datagram');
  });
}

interface LongReadResult {
  seen: number[];
  counters: Record<string, number>;
  offloads: { vnetHeader: boolean };
}

void t.test(
  'a TUN packet longer than its slot: dropped and counted, not cut',
  { skip },
  async (t) => {
    for (const off of ['-', 'tun']) {
      const ns = await createNetns(t, 'tlr');
      const r = await runFixture(ns, 'tun-long-read-child.ts', [off]);
      t.equal(r.code, 0, r.stderr);
      const res = r.result as LongReadResult;
      const label = off === 'tun' ? 'without the virtio-net header' : 'with it';
      t.equal(res.offloads.vnetHeader, off !== 'tun', label);
      t.same(
        res.seen,
        [1028, 1028],
        `${label}: the two that fit, whole; the longer one not at all`,
      );
      t.equal(res.counters.rxDropTooBig, 1, `${label}: the longer one counted as rxDropTooBig`);
    }
  },
);
