// Don't Fragment on the addon's UDP sockets (issue #21): client -> router -> server, the
// router's link to the server 1300 bytes. A 1400-byte datagram is never fragmented (the server
// never sees it, IPv4 or IPv6, however often it is sent), the router's Fragmentation Needed /
// Packet Too Big comes back as an MTU report naming the destination, the MTU and the first
// bytes of the datagram; a datagram larger than the client's own interface is refused
// (EMSGSIZE, counted as txTooBig) without stopping the rest of its batch.
import t from 'tap';
import { spawn } from 'node:child_process';
import {
  createNetns,
  nativeSkipReason,
  noDad,
  run,
  runFixture,
  uniqueName,
} from '../helpers/netns.js';

const skip = nativeSkipReason() ?? false;

const SINK = `
import json, socket, sys
fam = socket.AF_INET if sys.argv[1] == '4' else socket.AF_INET6
s = socket.socket(fam, socket.SOCK_DGRAM)
s.bind(('0.0.0.0' if fam == socket.AF_INET else '::', 0))
s.settimeout(20)
print(s.getsockname()[1], flush=True)
sizes = []
try:
    while len(sizes) < 50:
        d = s.recv(4096)
        sizes.append([len(d), d[8]])
        if len(d) == 100:
            break
except socket.timeout:
    pass
print(json.dumps(sizes), flush=True)
`;

interface Report {
  address: string;
  port: number;
  mtu: number;
  quote: number[];
  quotedLength: number;
  local: boolean;
}

for (const family of [4, 6] as const) {
  void t.test(
    `IPv${family}: DF set, MTU reports from the router, EMSGSIZE counted`,
    { skip },
    async (t) => {
      const c = await createNetns(t, 'pc');
      const r = await createNetns(t, 'pr');
      const s = await createNetns(t, 'ps');
      for (const ns of [c, r, s]) await noDad(ns);
      const cr = uniqueName('pc');
      const rs = uniqueName('ps');
      await run('ip', [
        '-n',
        c,
        'link',
        'add',
        cr,
        'type',
        'veth',
        'peer',
        'name',
        `${cr}r`,
        'netns',
        r,
      ]);
      await run('ip', [
        '-n',
        r,
        'link',
        'add',
        rs,
        'type',
        'veth',
        'peer',
        'name',
        `${rs}s`,
        'netns',
        s,
      ]);
      await run('ip', ['-n', r, 'link', 'set', rs, 'mtu', '1300']);
      await run('ip', ['-n', s, 'link', 'set', `${rs}s`, 'mtu', '1300']);
      const v4 = family === 4;
      const addr = v4
        ? { c: '192.0.2.1/24', rc: '192.0.2.2/24', rs: '198.51.100.1/24', s: '198.51.100.2/24' }
        : {
            c: '2001:db8:1::1/64',
            rc: '2001:db8:1::2/64',
            rs: '2001:db8:2::1/64',
            s: '2001:db8:2::2/64',
          };
      const ipf = v4 ? [] : ['-6'];
      await run('ip', ['-n', c, ...ipf, 'addr', 'add', addr.c, 'dev', cr]);
      await run('ip', ['-n', r, ...ipf, 'addr', 'add', addr.rc, 'dev', `${cr}r`]);
      await run('ip', ['-n', r, ...ipf, 'addr', 'add', addr.rs, 'dev', rs]);
      await run('ip', ['-n', s, ...ipf, 'addr', 'add', addr.s, 'dev', `${rs}s`]);
      for (const [ns, dev] of [
        [c, cr],
        [r, `${cr}r`],
        [r, rs],
        [s, `${rs}s`],
      ] as const)
        await run('ip', ['-n', ns, 'link', 'set', dev, 'up']);
      await run('ip', [
        'netns',
        'exec',
        r,
        'sysctl',
        '-qw',
        v4 ? 'net.ipv4.ip_forward=1' : 'net.ipv6.conf.all.forwarding=1',
      ]);
      await run('ip', ['-n', c, ...ipf, 'route', 'add', 'default', 'via', addr.rc.split('/')[0]!]);
      await run('ip', ['-n', s, ...ipf, 'route', 'add', 'default', 'via', addr.rs.split('/')[0]!]);
      const server = addr.s.split('/')[0]!;

      const sink = spawn('ip', ['netns', 'exec', s, 'python3', '-c', SINK, String(family)], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      t.teardown(() => sink.kill('SIGKILL'));
      let sinkOut = '';
      const port = await new Promise<number>((resolve, reject) => {
        sink.stdout.on('data', (d: Buffer) => {
          sinkOut += d.toString();
          const first = sinkOut.split('\n')[0];
          if (sinkOut.includes('\n') && first !== undefined) resolve(Number(first));
        });
        sink.on('close', () => reject(new Error('sink exited')));
      });
      const sinkDone = new Promise<[number, number][]>((resolve) => {
        sink.on('close', () => resolve(JSON.parse(sinkOut.trim().split('\n')[1] ?? '[]')));
      });

      const res = await runFixture(c, 'udp-pmtu-child.ts', [String(family), server, String(port)]);
      t.equal(res.code, 0, res.stderr);
      const out = res.result as {
        reports: Report[];
        batchSent: number;
        counters: Record<string, number>;
      };
      const seen = await sinkDone;
      t.same(
        seen.map(([len, tag]) => `${tag}:${len}`),
        ['1:1200', '5:1200', '6:100'],
        'the server got the datagrams that fit, never a 1400-byte one, nor fragments of it',
      );
      t.equal(out.reports.length, 3, 'one MTU report per 1400-byte datagram, one for 1600');
      const icmp = out.reports.slice(0, 2);
      for (const rep of icmp) {
        t.equal(rep.mtu, 1300, 'the MTU of the router link');
        t.equal(rep.local, false, 'from the network');
        t.equal(rep.address, server, 'the destination of the quoted datagram');
        t.equal(rep.port, port);
        t.ok(rep.quotedLength >= 16, `quote of ${rep.quotedLength} bytes`);
        t.same(rep.quote.slice(0, 9), [4, 0, 0, 0, 0xaa, 0, 0, 0, rep.quote[8]], 'our bytes');
      }
      t.same(
        icmp.map((x) => x.quote[8]),
        [2, 3],
        'which datagram each report is about',
      );
      const local = out.reports[2]!;
      // Only an upper bound: one byte below the refused IP datagram. Not the kernel's route MTU
      // (forged Fragmentation Needed lower that one too), so not the 1300 learnt from the router.
      t.equal(local.mtu, 1600 + (v4 ? 28 : 48) - 1, 'refused locally: one byte below its size');
      t.equal(local.address, server);
      t.equal(local.local, true, 'only an upper bound, not an exact MTU');
      t.equal(local.quote[8], 4, 'quoting the refused datagram');
      t.equal(out.counters.mtuReports, 3);
      t.equal(out.batchSent, 1, 'the 1600-byte datagram refused, the next one of the batch sent');
      t.equal(out.counters.txTooBig, 1, 'EMSGSIZE counted as txTooBig');
      t.equal(out.counters.txErrors, 0);
    },
  );
}
