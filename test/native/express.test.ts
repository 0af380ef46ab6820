// The express lane (native/express.c, issue #16) on the real TUN and real UDP sockets inside a
// fresh netns, with keys from a real handshake of two SecureEndpoints: what it takes, and that
// everything it must not take (a replay, another locator, an unarmed source or destination,
// signaling, wrong lengths, a SYN, multicast, too big, after a clear, after the keys are wiped)
// goes to JS or is dropped and counted, never to the TUN or the peer. The fixture
// (fixtures/express-child.ts) runs each step and waits for the event that shows where it went.
import t, { type Test } from 'tap';
import type { ExpressReport } from '../../src/io/types.js';
import {
  createNetns,
  nativeSkipReason,
  noDad,
  nsSysctl,
  run,
  runFixture,
  uniqueName,
} from '../helpers/netns.js';

const skip = nativeSkipReason() ?? false;

interface Step {
  name: string;
  at: number;
  timedOut?: boolean;
  kernel?: Record<string, number>;
  delta: Record<string, number>;
  jsKinds: string[];
  sink: string[];
  jsTun: string[];
}

const HOA_HEX = 'fd000099000000000000000000000010';
const TUN_HEX = 'fd000077000000000000000000000001';

/** A netns with the fixture's loopback addresses; no router solicitations or link-local
 *  address on the TUN (the kernel's own packets would stand in front of the test's). */
async function laneNetns(t: Parameters<typeof createNetns>[0]): Promise<string> {
  const ns = await createNetns(t, 'x');
  await noDad(ns);
  await nsSysctl(ns, [
    'net.ipv6.conf.default.router_solicitations=0',
    'net.ipv6.conf.default.addr_gen_mode=1',
  ]);
  for (const a of ['fd00:88::1', 'fd00:88::2', 'fd00:88::3', 'fd00:88::4'])
    await run('ip', ['-n', ns, 'addr', 'add', `${a}/128`, 'dev', 'lo', 'nodad']);
  return ns;
}

/** The steps by name; each one got to the state it waited for. */
function byName(t: Test, steps: Step[]): Map<string, Step> {
  t.same(
    steps
      .filter((s) => s.timedOut === true)
      .map(
        (s) =>
          `${s.name} ${JSON.stringify(moved(s))} sink ${JSON.stringify(s.sink)} kernel ${JSON.stringify(s.kernel)}`,
      ),
    [],
    'every step saw where its packets went',
  );
  return new Map(steps.map((s) => [s.name, s]));
}

/** The counters of `s` that moved (zeros left out), for t.same. */
function moved(s: Step | undefined): Record<string, number> {
  return Object.fromEntries(Object.entries(s?.delta ?? {}).filter(([, v]) => v !== 0));
}

void t.test(
  'receive: the lane takes only armed data from the armed locator',
  { skip },
  async (t) => {
    const ns = await laneNetns(t);
    const r = await runFixture(ns, 'express-child.ts', ['rx', uniqueName('xr')]);
    t.equal(r.code, 0, r.stderr);
    const res = r.result as {
      steps: Step[];
      clearReport: { reports: ExpressReport[]; innerBytes: number[]; clearAt: number };
      finalReports: ExpressReport[];
      localSpi: number;
    };
    const steps = byName(t, res.steps);

    // Taken: written to the TUN (its rx_packets), never seen by JS.
    for (const name of ['udp', 'once', 'udp-after', 'rearmed']) {
      t.same(moved(steps.get(name)), { rxTaken: 1, tunRx: 1 }, `${name}: taken by the lane`);
      t.equal(steps.get(name)?.sink.length, 1, `${name}: reached the socket behind the TUN`);
    }
    const echo = steps.get('echo');
    t.same(moved(echo), { rxTaken: 1, tunRx: 1, jsTun: 1, txToJs: 1 }, 'echo request taken');
    // The kernel answered it; the reply's destination is not armed to send: JS reads it.
    t.same(echo?.jsTun, [`icmp6-129:${HOA_HEX}:88`], 'the echo reply read by JS');

    // Handed to JS (the lane's rxToJs), never to the TUN; what JS made of each.
    const toJs: [string, string][] = [
      ['replay', 'drop:replay'],
      ['other-port', 'data'],
      ['other-address', 'data'],
      ['other-local', 'data'],
      ['replay-of-js', 'drop:replay'],
      ['unarmed-source', 'data'],
      ['signaling', 'signaling'],
      ['udp-length-long', 'data'],
      ['udp-length-short', 'data'],
      ['tcp-length', 'data'],
      ['wiped', 'drop:unknown-spi'],
      ['wiped-bad-tag', 'drop:unknown-spi'],
    ];
    for (const [name, kind] of toJs) {
      const s = steps.get(name);
      t.same(moved(s), { rxToJs: 1, js: 1 }, `${name}: to JS, nothing to the TUN`);
      t.same(s?.jsKinds, [kind], `${name}: JS saw ${kind}`);
      t.same(s?.sink, [], `${name}: nothing behind the TUN`);
    }
    // Bad tags under armed keys from the armed locator: dropped and counted, JS sees nothing.
    for (const name of ['bad-tag-body', 'bad-tag-tag']) {
      t.same(moved(steps.get(name)), { rxBadTag: 1 }, `${name}: dropped and counted`);
    }
    // A cleared lane looks at nothing (not even counting it as handed on).
    t.same(moved(steps.get('after-clear')), { js: 1 }, 'after the clear: JS only');
    t.same(steps.get('after-clear')?.jsKinds, ['data']);

    // The clear's report: what the lane did since it was armed.
    const c = res.clearReport;
    t.equal(c.reports.length, 1, 'one channel reported');
    const rep = c.reports[0]!;
    t.equal(rep.spi, res.localSpi, 'by the local SPI');
    t.equal(rep.rxPackets, 4, 'udp, echo, once, udp-after');
    t.equal(
      rep.rxBytes,
      c.innerBytes.reduce((a, b) => a + b, 0),
      'inner bytes written',
    );
    t.equal(rep.badTags, 2, 'the two bad tags');
    t.same([rep.txPackets, rep.txBytes, rep.txAgoMs, rep.sendErrors], [0, 0, -1, 0], 'no sends');
    const last = steps.get('udp-after')!.at;
    t.ok(
      rep.rxAgoMs >= 0 && rep.rxAgoMs <= Math.ceil(c.clearAt - last) + 1,
      `last receive ${rep.rxAgoMs} ms before the clear (at most ${Math.ceil(c.clearAt - last) + 1})`,
    );
    t.equal(res.finalReports.length, 1);
    t.same(
      [res.finalReports[0]!.rxPackets, res.finalReports[0]!.badTags],
      [1, 0],
      'after re-arming: the one taken before the wipe, no bad tags counted after it',
    );
  },
);

void t.test(
  'send: the lane seals armed plain data with the shared counter',
  { skip },
  async (t) => {
    const ns = await laneNetns(t);
    const r = await runFixture(ns, 'express-child.ts', ['tx', uniqueName('xt')]);
    t.equal(r.code, 0, r.stderr);
    const res = r.result as {
      steps: Step[];
      clearReport: { reports: ExpressReport[]; clearAt: number };
      finalReports: ExpressReport[];
      opened: {
        counter: number;
        kind: string;
        from: string;
        port: number;
        len?: number;
        source?: string;
        destination?: string;
        proto?: number;
        icmpType?: number;
        inner?: string;
        l4ok?: boolean;
      }[];
      memberAtClear: number;
      haPort: number;
      localSpi: number;
      mnDrops: Record<string, number>;
    };
    const steps = byName(t, res.steps);
    const taken: [string, number][] = [
      ['udp', 1],
      ['udp-burst', 5],
      ['echo', 1],
      ['at-max-inner', 1],
      ['above-max-inner-fence', 1],
      ['tcp-syn-fence', 1],
      ['multicast-fence', 1],
      ['unarmed-destination-fence', 1],
      ['rearmed', 1],
    ];
    for (const [name, n] of taken) {
      t.same(moved(steps.get(name)), { txTaken: n, member: n }, `${name}: ${n} sent by the lane`);
    }
    const toJs: [string, string][] = [
      ['above-max-inner', `udp:${HOA_HEX}:601`],
      ['tcp-syn', `tcp-syn:${HOA_HEX}:`],
      ['multicast', 'udp:ff0e0000000000000000000000000010:'],
      ['unarmed-destination', 'udp:fd000099000000000000000000000011:'],
      ['wiped', `udp:${HOA_HEX}:`],
    ];
    for (const [name, label] of toJs) {
      const s = steps.get(name);
      t.same(moved(s), { txToJs: 1, jsTun: 1 }, `${name}: to JS, nothing sent`);
      t.ok(s?.jsTun[0]?.startsWith(label), `${name}: JS read ${s?.jsTun[0]}`);
    }
    t.same(moved(steps.get('after-clear')), { jsTun: 1 }, 'after the clear: JS only');
    for (const name of ['after-clear-fence', 'wiped-fence']) {
      t.same(moved(steps.get(name)), { member: 1 }, `${name}: the plain fence, nothing before it`);
    }

    // The member opens every message; counters strictly increase across JS and the lane.
    const sealed = res.opened.filter((o) => o.kind !== 'plain');
    t.same(
      res.opened.filter((o) => o.kind === 'plain').map((o) => o.inner),
      ['fence', 'fence'],
    );
    t.ok(
      sealed.every((o) => o.kind === 'data'),
      'every message opens as payload',
    );
    t.same(res.mnDrops, {}, 'the member dropped nothing (no replay, no bad tag)');
    const counters = sealed.map((o) => o.counter);
    t.ok(
      counters.every((c, i) => i === 0 || c > counters[i - 1]!),
      `counters strictly increase: ${counters.join(',')}`,
    );
    t.equal(sealed[0]!.inner, 'js-before');
    t.equal(sealed[1 + res.memberAtClear]!.inner, 'js-after', 'JS sealed after the lane');
    const lane = sealed.filter((o) => o.from !== 'js');
    t.ok(
      lane.every((o) => o.from === 'fd00:88::1' && o.port === res.haPort),
      'the lane sent from the armed local address and the home agent socket',
    );
    t.ok(
      lane.every((o) => o.source === TUN_HEX && o.destination === HOA_HEX),
      'the packets the kernel routed into the TUN',
    );
    t.ok(
      lane.every((o) => o.proto !== 17 || o.l4ok === true),
      'UDP checksums verify after the trip',
    );
    t.same(
      lane.map((o) => (o.proto === 58 ? `icmp6-${o.icmpType}` : o.inner!.replace(/\.+$/, ''))),
      [
        'tx-udp',
        'tx-burst-0',
        'tx-burst-1',
        'tx-burst-2',
        'tx-burst-3',
        'tx-burst-4',
        'icmp6-128',
        'tx-max',
        'tx-fence-1',
        'tx-fence-2',
        'tx-fence-3',
        'tx-fence-4',
        'tx-rearmed',
      ],
      'what the lane carried, in order, and nothing else',
    );
    const atMax = lane.find((o) => o.inner?.startsWith('tx-max'));
    t.equal(atMax?.len, 600, 'a packet of exactly maxInner is taken');

    const c = res.clearReport;
    t.equal(c.reports.length, 1);
    const rep = c.reports[0]!;
    const before = lane.slice(0, -1);
    t.equal(rep.spi, res.localSpi);
    t.equal(rep.txPackets, before.length, 'sends until the clear');
    t.equal(
      rep.txBytes,
      before.reduce((a, o) => a + (o.len ?? 0), 0),
      'their inner bytes',
    );
    t.same(
      [rep.rxPackets, rep.rxBytes, rep.rxAgoMs, rep.badTags, rep.sendErrors],
      [0, 0, -1, 0, 0],
    );
    const last = steps.get('unarmed-destination-fence')!.at;
    t.ok(
      rep.txAgoMs >= 0 && rep.txAgoMs <= Math.ceil(c.clearAt - last) + 1,
      `last send ${rep.txAgoMs} ms before the clear (at most ${Math.ceil(c.clearAt - last) + 1})`,
    );
    t.same(
      res.finalReports.map((f) => [f.txPackets, f.txBytes]),
      [[1, lane.at(-1)!.len]],
      'after re-arming: the one sent before the wipe',
    );
  },
);

void t.test(
  'a mobile node lane: to its home address from any source, sends to any unicast',
  { skip },
  async (t) => {
    const ns = await laneNetns(t);
    const r = await runFixture(ns, 'express-child.ts', ['mn', uniqueName('xm')]);
    t.equal(r.code, 0, r.stderr);
    const res = r.result as { steps: Step[]; reports: ExpressReport[]; opened: string[] };
    const steps = byName(t, res.steps);
    for (const name of ['rx-home', 'rx-any-source']) {
      t.same(moved(steps.get(name)), { rxTaken: 1, tunRx: 1 }, `${name}: taken`);
    }
    t.same(moved(steps.get('rx-not-home')), { rxToJs: 1, js: 1 }, 'not to the home address: JS');
    t.same(steps.get('rx-not-home')?.jsKinds, ['data']);
    for (const name of ['tx-a', 'tx-b']) {
      t.same(moved(steps.get(name)), { txTaken: 1, member: 1 }, `${name}: sent`);
    }
    t.same(moved(steps.get('tx-multicast')), { txToJs: 1, jsTun: 1 }, 'multicast: JS');
    t.same(
      res.opened,
      ['fd000099000000000000000000000005:mn-tx-a', 'fd000099000000000000000000000006:mn-tx-b'],
      'the home agent opens both, one per destination',
    );
    t.same(
      res.reports.map((x) => [x.rxPackets, x.txPackets]),
      [[2, 2]],
    );
  },
);

void t.test(
  'the armed limits hold at their edges; harvest; a refused send stops the lane',
  { skip },
  async (t) => {
    const ns = await laneNetns(t);
    const r = await runFixture(ns, 'express-child.ts', ['limits', uniqueName('xl')]);
    t.equal(r.code, 0, r.stderr);
    const res = r.result as {
      steps: Step[];
      harvests: ExpressReport[][];
      afterHarvest: ExpressReport[];
      reports: ExpressReport[];
    };
    const steps = byName(t, res.steps);
    // Keys past the time they were armed for, or a counter at the limit: JS's.
    t.same(moved(steps.get('rx-time-spent')), { rxToJs: 1, js: 1 }, 'receive time spent: JS');
    t.same(moved(steps.get('rx-at-limit')), { rxToJs: 1, js: 1 }, 'counter at the limit: JS');
    t.same(moved(steps.get('rx-under-limit')), { rxTaken: 1, tunRx: 1 }, 'just under: taken');
    t.same(moved(steps.get('tx-time-spent')), { txToJs: 1, jsTun: 1 }, 'send time spent: JS');
    t.same(moved(steps.get('tx-below-limit')), { txTaken: 1, member: 1 }, 'last counter: sent');
    t.same(moved(steps.get('tx-at-limit')), { txToJs: 1, jsTun: 1 }, 'counter at the limit: JS');
    // Harvest reports and zeroes; the channel stays armed.
    t.same(
      res.harvests.map((h) => h.map((x) => [x.rxPackets, x.rxBytes])),
      [[[2, 108]], [[1, 54]], []],
      'each harvest: what came since the last one',
    );
    t.same(moved(steps.get('harvest-2')), { rxTaken: 1, tunRx: 1 }, 'armed after a harvest');
    t.same(res.afterHarvest, [], 'nothing left for the clear');
    // A send the socket refuses is counted and suspends the lane until the clear.
    t.same(moved(steps.get('tx-refused')), { txTaken: 1, txSendErrors: 1 }, 'refused: counted');
    t.same(moved(steps.get('tx-suspended')), { jsTun: 1 }, 'then JS takes everything');
    t.same(res.reports.at(-2)?.sendErrors, 1, 'in the clear report');
    t.same(moved(steps.get('tx-after-clear')), { txTaken: 1, member: 1 }, 'armed again: sent');
  },
);

void t.test(
  'the TUN and the socket closed under an armed lane: counted, suspended, no crash',
  { skip },
  async (t) => {
    const ns = await laneNetns(t);
    const r = await runFixture(ns, 'express-child.ts', ['teardown', uniqueName('xd')]);
    t.equal(r.code, 0, `the process survived closing and collecting in that order: ${r.stderr}`);
    const res = r.result as { steps: Step[]; reports: ExpressReport[] };
    const steps = byName(t, res.steps);
    t.same(moved(steps.get('taken')), { rxTaken: 1, tunRx: 1 }, 'taken while the TUN is open');
    t.same(
      moved(steps.get('tun-closed')),
      { rxTaken: 1, rxTunErrors: 1 },
      'opened, then lost at the closed TUN and counted',
    );
    t.same(moved(steps.get('suspended')), { js: 1 }, 'then JS gets everything until the clear');
    t.same(
      res.reports.map((x) => [x.rxPackets, x.tunErrors]),
      [[2, 1]],
      'the clear reports the lost packet as a TUN error',
    );
  },
);

/** The steps of `steps` named `names` each went to JS as a datagram it opened as payload. */
function wentToJs(t: Test, steps: Map<string, Step>, names: string[]): void {
  for (const name of names) {
    const s = steps.get(name);
    t.same(moved(s), { rxToJs: 1, js: 1 }, `${name}: to JS, nothing to the TUN`);
    t.same(s?.jsKinds, ['data'], `${name}: JS opened it`);
    t.same(s?.sink, [], `${name}: nothing behind the TUN`);
  }
}

void t.test(
  'IPv4 inside (RFC 5555) at a home agent: the mapped home address armed both ways',
  { skip },
  async (t) => {
    const ns = await laneNetns(t);
    const r = await runFixture(ns, 'express-child.ts', ['v4', uniqueName('x4')]);
    t.equal(r.code, 0, r.stderr);
    const res = r.result as {
      steps: Step[];
      rxReports: ExpressReport[];
      reports: ExpressReport[];
      opened: string[];
    };
    const steps = byName(t, res.steps);
    // Receive: plain IPv4 from the armed ::ffff:10.99.99.10 (DF set or not), and IPv6 from the
    // IPv6 home address armed with it, written to the TUN and received behind it.
    for (const [name, text] of [
      ['rx4-udp', 'rx4-udp'],
      ['rx4-udp-empty', ''],
      ['rx4-df', 'rx4-df'],
      ['rx4-v6', 'rx4-v6'],
      ['rx4-after', 'rx4-after'],
    ] as const) {
      t.same(moved(steps.get(name)), { rxTaken: 1, tunRx: 1 }, `${name}: taken by the lane`);
      t.same(steps.get(name)?.sink, [text], `${name}: reached the socket behind the TUN`);
    }
    const echo = steps.get('rx4-echo');
    t.same(moved(echo), { rxTaken: 1, tunRx: 1, jsTun: 1, txToJs: 1 }, 'echo request taken');
    t.same(echo?.jsTun, ['v4-icmp-0:10.99.99.10:60'], "the kernel's echo reply, read by JS");
    t.same(moved(steps.get('rx4-syn')), { rxTaken: 1, tunRx: 1 }, 'a received SYN is taken');
    wentToJs(t, steps, [
      'rx4-unarmed-source',
      'rx4-options',
      'rx4-more-fragments',
      'rx4-offset',
      'rx4-length-long',
      'rx4-length-short',
      'rx4-padded',
      'rx4-multicast',
      'rx4-broadcast',
      'rx4-class-e',
      'rx4-icmp-unreachable',
      'rx4-gre',
      'rx4-udp-truncated',
      'rx4-v6-mapped-source',
    ]);
    t.same(
      res.rxReports.map((x) => [x.rxPackets, x.txPackets]),
      [[7, 0]],
      'the clear reports the seven packets the lane took',
    );

    // Send: to the mapped destination sealed by the lane; a SYN, an unarmed destination,
    // multicast (even armed) and a packet above maxInner to JS, each followed by a fence
    // the lane takes (nothing of the refused one went out before it).
    for (const name of [
      'tx4-udp',
      'tx4-echo',
      'tx4-v6',
      'tx4-syn-fence',
      'tx4-unarmed-fence',
      'tx4-multicast-fence',
      'tx4-too-big-fence',
      'tx4-raw',
      'tx4-raw-options-fence',
      'tx4-raw-fragment-fence',
      'tx4-raw-padded-fence',
      'tx6-mapped-destination-fence',
    ]) {
      t.same(moved(steps.get(name)), { txTaken: 1, member: 1 }, `${name}: sent by the lane`);
    }
    for (const [name, label] of [
      ['tx4-syn', 'v4-tcp-syn:10.99.99.10:'],
      ['tx4-unarmed', 'v4-udp:10.99.99.11:'],
      ['tx4-multicast', 'v4-udp:239.1.2.3:'],
      ['tx4-too-big', `v4-udp:10.99.99.10:${600 + 1}`],
      ['tx4-raw-options', 'v4-udp:10.99.99.10:'],
      ['tx4-raw-fragment', 'v4-udp:10.99.99.10:'],
      ['tx4-raw-padded', 'v4-udp:10.99.99.10:'],
      ['tx6-mapped-destination', 'udp:00000000000000000000ffff0a63630a:'],
    ] as const) {
      const s = steps.get(name);
      t.same(moved(s), { txToJs: 1, jsTun: 1 }, `${name}: to JS, nothing sent`);
      t.ok(s?.jsTun[0]?.startsWith(label), `${name}: JS read ${s?.jsTun[0]}`);
    }
    t.same(
      res.opened,
      [
        '10.99.77.1>10.99.99.10:len-ok:tx4-udp',
        '10.99.77.1>10.99.99.10:len-ok:1-8',
        'v6>tx4-v6',
        '10.99.77.1>10.99.99.10:len-ok:tx4-fence-1',
        '10.99.77.1>10.99.99.10:len-ok:tx4-fence-2',
        '10.99.77.1>10.99.99.10:len-ok:tx4-fence-3',
        '10.99.77.1>10.99.99.10:len-ok:tx4-fence-4',
        '10.99.77.1>10.99.99.10:len-ok:tx4-raw',
        '10.99.77.1>10.99.99.10:len-ok:tx4-fence-5',
        '10.99.77.1>10.99.99.10:len-ok:tx4-fence-6',
        '10.99.77.1>10.99.99.10:len-ok:tx4-fence-7',
        '10.99.77.1>10.99.99.10:len-ok:tx4-fence-8',
      ],
      'the member opens what the lane sealed, in order, and nothing else',
    );
    t.same(
      res.reports.map((x) => [x.rxPackets, x.txPackets]),
      [[0, 12]],
    );
  },
);

void t.test(
  'IPv4 inside (RFC 5555) at a mobile node: to its mapped IPv4 home address only',
  { skip },
  async (t) => {
    const ns = await laneNetns(t);
    const r = await runFixture(ns, 'express-child.ts', ['mn4', uniqueName('x5')]);
    t.equal(r.code, 0, r.stderr);
    const res = r.result as { steps: Step[]; reports: ExpressReport[]; opened: string[] };
    const steps = byName(t, res.steps);
    for (const [name, text] of [
      ['mn4-home', 'mn4-home'],
      ['mn4-any-source', 'mn4-any'],
      ['mn4-v6-home', 'mn4-v6'],
    ] as const) {
      t.same(moved(steps.get(name)), { rxTaken: 1, tunRx: 1 }, `${name}: taken`);
      t.same(steps.get(name)?.sink, [text], `${name}: reached the socket behind the TUN`);
    }
    wentToJs(t, steps, ['mn4-none-armed', 'mn4-not-home', 'mn4-fragment', 'mn4-options']);
    t.same(moved(steps.get('mn4-tx')), { txTaken: 1, member: 1 }, 'IPv4 sent by the lane');
    for (const [name, label] of [
      ['mn4-tx-multicast', 'v4-udp:239.1.2.3:'],
      ['mn4-tx-syn', 'v4-tcp-syn:10.99.99.5:'],
    ] as const) {
      const s = steps.get(name);
      t.same(moved(s), { txToJs: 1, jsTun: 1 }, `${name}: to JS, nothing sent`);
      t.ok(s?.jsTun[0]?.startsWith(label), `${name}: JS read ${s?.jsTun[0]}`);
    }
    t.same(res.opened, ['10.99.77.1>10.99.99.5:mn4-tx'], 'the home agent opens it');
    t.same(
      res.reports.map((x) => [x.rxPackets, x.txPackets]),
      [[3, 1]],
    );
  },
);

void t.test(
  "a home agent's lane leaves an IPv6 packet to a mapped IPv4 home address to JS",
  { skip },
  async (t) => {
    const ns = await laneNetns(t);
    const r = await runFixture(ns, 'express-child.ts', ['mapped-tx', uniqueName('xp')]);
    t.equal(r.code, 0, r.stderr);
    const steps = byName(t, (r.result as { steps: Step[] }).steps);
    // ::ffff:10.99.99.10 is armed as the member's IPv4 home address; JS has no binding for it
    // as an IPv6 destination (no ICMP, no send): the lane must not seal it to the member.
    t.same(moved(steps.get('v6-to-mapped')), { txToJs: 1, jsTun: 1 }, 'to JS, nothing sent');
    t.same(
      steps.get('v6-to-mapped')?.jsTun,
      ['udp:00000000000000000000ffff0a63630a:56'],
      'JS read it',
    );
    t.same(moved(steps.get('fence')), { txTaken: 1, member: 1 }, 'the next packet: sent alone');
  },
);
