// The addon's UDP endpoints inside a fresh netns whose loopback holds two addresses per
// family: batched round trips with per-datagram remote/local addresses and chosen source
// addresses, the poll surviving an ICMP port unreachable, and close during traffic.
import t from 'tap';
import {
  createNetns,
  linkedNetns,
  nativeSkipReason,
  run,
  runFixture,
  scapySkipReason,
} from '../helpers/netns.js';

const skip = nativeSkipReason() ?? false;
const noScapy = scapySkipReason(skip);

interface Seen {
  i: number;
  local: string;
  remote: string;
  rport: number;
}

async function twoAddressNetns(t: Parameters<typeof createNetns>[0]): Promise<string> {
  const ns = await createNetns(t, 'u');
  for (const a of ['192.0.2.1/32', '192.0.2.2/32'])
    await run('ip', ['-n', ns, 'addr', 'add', a, 'dev', 'lo']);
  for (const a of ['2001:db8::1/128', '2001:db8::2/128'])
    await run('ip', ['-n', ns, 'addr', 'add', a, 'dev', 'lo', 'nodad']);
  return ns;
}

for (const family of [4, 6] as const) {
  const A = family === 4 ? '192.0.2.1' : '2001:db8::1';
  const B = family === 4 ? '192.0.2.2' : '2001:db8::2';

  void t.test(`IPv${family}: batched round trip with source selection`, { skip }, async (t) => {
    const ns = await twoAddressNetns(t);
    const r = await runFixture(ns, 'udp-child.ts', ['roundtrip', String(family)]);
    t.equal(r.code, 0, r.stderr);
    const res = r.result as {
      sent: number;
      serverPort: number;
      clientPort: number;
      serverLocal: string;
      serverSeen: Seen[];
      clientSeen: Seen[];
      serverBatches: number[];
    };
    t.equal(res.sent, 40);
    t.ok(res.serverPort > 0 && res.clientPort > 0, 'ephemeral ports reported');
    t.equal(res.serverLocal, family === 4 ? '0.0.0.0' : '::');
    t.equal(res.serverSeen.length, 40, 'server got every datagram');
    for (const s of res.serverSeen) {
      // Even i: sent to A from B; odd i: sent to B from A.
      const wantLocal = s.i % 2 === 0 ? A : B;
      const wantRemote = s.i % 2 === 0 ? B : A;
      if (s.local !== wantLocal || s.remote !== wantRemote || s.rport !== res.clientPort) {
        t.fail(`server datagram ${s.i}: local ${s.local} remote ${s.remote}:${s.rport}`);
      }
    }
    t.pass('server saw the chosen source and the local address of every datagram');
    t.equal(res.clientSeen.length, 40, 'client got every reply');
    for (const c of res.clientSeen) {
      // The reply comes from the address the request was sent to, to the request's source.
      const wantRemote = c.i % 2 === 0 ? A : B;
      const wantLocal = c.i % 2 === 0 ? B : A;
      if (c.remote !== wantRemote || c.local !== wantLocal || c.rport !== res.serverPort) {
        t.fail(`reply ${c.i}: from ${c.remote}:${c.rport} to ${c.local}`);
      }
    }
    t.pass('every reply came from the address its request was sent to');
    t.ok(
      Math.max(...res.serverBatches) > 1,
      `server received batches (${res.serverBatches.join(',')})`,
    );
  });

  for (const gso of [true, false]) {
    void t.test(
      `IPv${family}: chosen sources in runs${gso ? ' (GSO)' : ', GSO off'}, a vanished one falls back`,
      { skip },
      async (t) => {
        const ns = await twoAddressNetns(t);
        const prefix = gso ? [] : ['env', 'MIP6_OFFLOAD_OFF=udp-gso'];
        const r = await runFixture(ns, 'udp-child.ts', ['sources', String(family)], { prefix });
        t.equal(r.code, 0, `${r.stderr}${r.stdout}`);
        const res = r.result as {
          sent: number;
          plan: string[];
          seen: { i: number; remote: string; len: number }[];
          counters: Record<string, number>;
          offloads: { gso: boolean };
        };
        t.equal(res.sent, res.plan.length, 'every datagram was sent');
        t.equal(res.seen.length, res.plan.length, 'and received');
        const C = family === 4 ? '192.0.2.3' : '2001:db8::3';
        for (const s of res.seen) {
          // From B where B was chosen; from the kernel's choice (A, the destination itself on
          // loopback) where the chosen C is no address of this host.
          const want = res.plan[s.i] === C ? A : B;
          if (s.remote !== want) t.fail(`datagram ${s.i} came from ${s.remote}, not ${want}`);
        }
        t.same(
          res.seen.map((s) => s.i).sort((a, b) => a - b),
          res.plan.map((_, i) => i),
          'each datagram once',
        );
        const fromC = res.plan.filter((p) => p === C).length;
        t.equal(
          res.counters['txSourceFallbacks'],
          fromC,
          'each datagram from C counted as fallback',
        );
        t.equal(res.counters['txErrors'], 0, 'none counted as an error');
        t.equal(res.offloads.gso, gso, `GSO ${gso ? 'on' : 'off'}`);
        if (gso) {
          // The three runs of 8 (B, C, B) each left as one segmented send.
          t.equal(res.counters['txGsoSends'], 3, 'one segmented send per run');
          t.equal(res.counters['txGsoDatagrams'], 24);
        } else t.equal(res.counters['txGsoSends'], 0);
      },
    );
  }

  void t.test(
    `IPv${family}: a chosen source still here whose send says ENETUNREACH keeps it`,
    { skip },
    async (t) => {
      // ENETUNREACH is also what a forged ICMP "net unreachable" leaves pending (IP_RECVERR);
      // here a policy rule makes every send from B to A say it, deterministically. B is still
      // an address of the host, so nothing falls back to the kernel's choice: the datagrams
      // are lost as errors (what one forged ICMP error costs), none leaves from A.
      const ns = await twoAddressNetns(t);
      const v = family === 4 ? '-4' : '-6';
      await run('ip', [
        '-n',
        ns,
        v,
        'rule',
        'add',
        'pref',
        '10',
        'from',
        B,
        'to',
        A,
        'unreachable',
      ]);
      await run('ip', ['-n', ns, v, 'rule', 'del', 'pref', '0']);
      await run('ip', ['-n', ns, v, 'rule', 'add', 'pref', '100', 'lookup', 'local']);
      for (const gso of [true, false]) {
        const prefix = gso ? [] : ['env', 'MIP6_OFFLOAD_OFF=udp-gso'];
        const r = await runFixture(ns, 'udp-child.ts', ['refused', String(family)], { prefix });
        t.equal(r.code, 0, `${r.stderr}${r.stdout}`);
        const res = r.result as {
          sent: number;
          markerSent: number;
          seen: { i: number; remote: string }[];
          counters: Record<string, number>;
        };
        t.equal(res.sent, 0, `GSO ${gso ? 'on' : 'off'}: none of the 12 from B was sent`);
        t.equal(res.markerSent, 1, 'the marker was');
        t.same(res.seen, [{ i: 255, remote: A }], 'only the marker arrived');
        t.equal(res.counters['txSourceFallbacks'], 0, 'no fallback to the kernel choice');
        t.equal(res.counters['txErrors'], 12, 'each counted as an error');
      }
    },
  );

  void t.test(
    `IPv${family}: one forged ICMP net unreachable moves no datagram off its source`,
    { skip: noScapy },
    async (t) => {
      const ns = await twoAddressNetns(t);
      const r = await runFixture(ns, 'udp-child.ts', ['forged', String(family)]);
      t.equal(r.code, 0, `${r.stderr}${r.stdout}`);
      const res = r.result as {
        sent: number;
        seen: { i: number; remote: string }[];
        counters: Record<string, number>;
      };
      t.ok(res.counters['icmpErrors']! >= 1, 'the forged error reached the socket');
      t.equal(res.sent, 12, 'every datagram was sent');
      t.equal(res.seen.length, 13, 'and arrived, then the marker');
      t.same(
        res.seen.filter((s) => s.i !== 255 && s.remote !== B),
        [],
        'all of them from the chosen source B',
      );
      t.equal(res.counters['txSourceFallbacks'], 0, 'no fallback');
      t.equal(res.counters['txErrors'], 0, 'the pending error cost no datagram (tried again)');
    },
  );

  void t.test(`IPv${family}: receiving survives an ICMP port unreachable`, { skip }, async (t) => {
    const ns = await twoAddressNetns(t);
    const r = await runFixture(ns, 'udp-child.ts', ['icmp', String(family)]);
    t.equal(r.code, 0, `${r.stderr}${r.stdout}`);
    const res = r.result as {
      received: number;
      sawError: boolean;
      counters: { pollErrors: number; icmpErrors: number; txErrors: number; txDatagrams: number };
    };
    t.ok(res.sawError, 'the ICMP error reached the socket');
    t.ok(res.counters.pollErrors >= 1, 'the poll reported an error and was restarted');
    t.ok(res.counters.icmpErrors >= 1, 'ICMP errors counted');
    t.equal(res.counters.txDatagrams, 3, 'no send was lost to the pending error');
    t.equal(res.received, 10, 'all datagrams received after the error');
  });

  void t.test(`IPv${family}: close during traffic is clean`, { skip }, async (t) => {
    const ns = await twoAddressNetns(t);
    const r = await runFixture(ns, 'udp-child.ts', ['close', String(family)]);
    t.equal(r.code, 0, r.stderr);
    const res = r.result as { seen: number; afterClose: number; sendAfterClose: string };
    t.ok(res.seen >= 100);
    t.equal(res.afterClose, 0, 'no batch after close() inside the callback');
    t.equal(res.sendAfterClose, 'ERR_CLOSED');
  });
}

void t.test(
  'udpOpen refuses a headroom whose 32-bit sum would wrap (issue #13)',
  { skip },
  async (t) => {
    const ns = await twoAddressNetns(t);
    const r = await runFixture(ns, 'udp-child.ts', ['headroom', '6']);
    t.equal(r.signal, null, 'the child was not killed by a signal');
    t.equal(r.code, 0, `${r.stderr}${r.stdout}`);
    const { tries } = r.result as {
      tries: { headroom: number; error?: string; code?: string; received?: number }[];
    };
    const byHeadroom = new Map(tries.map((x) => [x.headroom, x]));
    for (const h of [0xffffffc0, 0xffffffff, 0xfffff800, 2048 - 63]) {
      t.match(
        byHeadroom.get(h),
        { error: 'RangeError', code: 'ERR_OUT_OF_RANGE' },
        `headroom ${h} with 2048-byte slots: RangeError, no socket, no datagram written`,
      );
    }
    t.match(
      byHeadroom.get(2048 - 64),
      { received: 1, rxErrors: 0 },
      'the largest valid headroom (slotSize - 64) still opens and receives',
    );
  },
);

void t.test(
  'IPv6 on-link sends: arrival interface and hop limit 255, zoned replies',
  { skip },
  async (t) => {
    // Two hosts on one link: the "HA" holds 2001:db8:100::1 (solicited-node group
    // ff02::1:ff00:1) and 2001:db8:7::1; the "MN" 2001:db8:7::2.
    const [mn, ha] = await linkedNetns(t, ['uo', 'uh'], ['onl', 'onl']);
    await run('ip', ['-n', mn, 'addr', 'add', '2001:db8:7::2/64', 'dev', 'onl', 'nodad']);
    await run('ip', ['-n', ha, 'addr', 'add', '2001:db8:7::1/64', 'dev', 'onl', 'nodad']);
    await run('ip', ['-n', ha, 'addr', 'add', '2001:db8:100::1/64', 'dev', 'onl', 'nodad']);
    await run('ip', ['-n', mn, 'link', 'set', 'onl', 'up']);
    await run('ip', ['-n', ha, 'link', 'set', 'onl', 'up']);
    const [server, client] = await Promise.all([
      runFixture(ha, 'udp-child.ts', ['onlink-server', '6']),
      new Promise((r) => setTimeout(r, 300)).then(() =>
        runFixture(mn, 'udp-child.ts', [
          'onlink-client',
          '6',
          'onl',
          'ff02::1:ff00:1',
          '2001:db8:7::1',
        ]),
      ),
    ]);
    t.equal(server.code, 0, `${server.stderr}${server.stdout}`);
    t.equal(client.code, 0, `${client.stderr}${client.stdout}`);
    type Seen = {
      payload: number;
      remote: string;
      local: string;
      ifindex: number;
      hopLimit: number;
    };
    const s = server.result as { got: Seen[]; ifindex: number };
    const c = client.result as { got: Seen[]; ifindex: number; badZone: string };
    const at = (list: Seen[], p: number): Seen | undefined => list.find((g) => g.payload === p);
    t.match(
      at(s.got, 1),
      {
        remote: new RegExp(`^fe80::[0-9a-f:]+%${s.ifindex}$`),
        local: 'ff02::1:ff00:1',
        ifindex: s.ifindex,
        hopLimit: 255,
      },
      'on-link datagram: from our link-local (zoned), on the link interface, hop limit 255',
    );
    t.match(
      at(s.got, 2),
      { remote: '2001:db8:7::2', local: '2001:db8:7::1', ifindex: s.ifindex, hopLimit: 64 },
      'an ordinary datagram: the default hop limit (64), no zone on a global source',
    );
    t.match(
      at(c.got, 1),
      { remote: new RegExp(`^fe80::[0-9a-f:]+%${c.ifindex}$`), ifindex: c.ifindex, hopLimit: 255 },
      'the reply to a zoned link-local source came back on the link with hop limit 255',
    );
    t.match(at(c.got, 2), { remote: '2001:db8:7::1', hopLimit: 64 });
    t.equal(c.badZone, 'TypeError', 'a zone that is not an interface index is refused');
  },
);
