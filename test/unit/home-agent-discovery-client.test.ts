/**
 * The MN's DHAAD / MPS client on a fake clock (RFC 6275 §11.4): Identifiers from the injected
 * random source, retransmission INITIAL_DHAAD_TIMEOUT doubling DHAAD_RETRIES times with the same
 * Identifiers, the trust rules (a Reply only for the outstanding Identifier; an MPA with another
 * Identifier is unsolicited, recorded and acknowledged), learned home agents with expiry, the
 * failover list and the failover decision.
 */
import t from 'tap';
import {
  HomeAgentDiscoveryClient,
  type HomeAgentDiscoveryAction,
} from '../../src/protocol/home-agent-discovery-client.js';
import { mobilePrefixAdvertisement } from '../../src/protocol/home-agent-discovery.js';
import { decodePacket, encodeIcmpv6Packet } from '../../src/wire/packet.js';
import {
  DHAAD_RETRIES,
  INITIAL_DHAAD_TIMEOUT_MS,
  MAX_MOBPFX_SOLICIT_TIMEOUT_MS,
} from '../../src/protocol/constants.js';

const HOA = '2001:db8:100::1000';
const HA1 = '2001:db8:100::1';
const HA2 = '2001:db8:100::2';
const KEY1 = new Uint8Array(32).fill(1);
const KEY2 = new Uint8Array(32).fill(2);

function client(draws: number[] = [0.25, 0.5, 0.75]): HomeAgentDiscoveryClient {
  let i = 0;
  return new HomeAgentDiscoveryClient({
    homeAddress: HOA,
    homePrefixLength: 64,
    configured: { address: HA1, agent4: '192.0.2.1', port: 4192, publicKey: KEY1 },
    random: () => draws[i++ % draws.length]!,
  });
}

/** The sends of a batch of actions, decoded. */
function sent(actions: HomeAgentDiscoveryAction[]): { kind: string; id: number; dst: string }[] {
  return actions.flatMap((a) => {
    if (a.kind !== 'send') return [];
    const p = decodePacket(a.packet);
    const m = p.icmpv6 as unknown as { kind: string; identifier: number };
    return [{ kind: m.kind, id: m.identifier, dst: p.pseudoDestination }];
  });
}

function mpa(identifier: number, agents = [HA2]) {
  return mobilePrefixAdvertisement(identifier, {
    homeAgents: agents.map((address, i) => ({
      address,
      preference: 10 - i,
      lifetime: 600,
      underlay4: `198.51.100.${i + 2}`,
      port: 5000 + i,
      publicKey: KEY2,
    })),
    prefixes: [
      { address: '2001:db8:100::', length: 64, validLifetime: 3600, preferredLifetime: 1800 },
    ],
  });
}

void t.test(
  'discover: identifiers from the random source, anycast and HA destinations',
  async (t) => {
    const c = client();
    const out = sent(c.discover(0));
    t.same(out, [
      { kind: 'haadRequest', id: 0x4000, dst: '2001:db8:100:0:fdff:ffff:ffff:fffe' },
      { kind: 'mobilePrefixSolicitation', id: 0x8000, dst: HA1 },
    ]);
    t.equal(c.nextDeadline(), INITIAL_DHAAD_TIMEOUT_MS);
  },
);

void t.test(
  'retransmission: same identifiers, doubling, DHAAD_RETRIES times, then unanswered',
  async (t) => {
    const c = client();
    c.discover(0);
    t.same(c.poll(INITIAL_DHAAD_TIMEOUT_MS - 1), [], 'nothing before the deadline');
    let now = 0;
    let timeout = INITIAL_DHAAD_TIMEOUT_MS;
    for (let i = 0; i < DHAAD_RETRIES; i++) {
      now += timeout;
      t.equal(c.nextDeadline(), now);
      t.same(
        sent(c.poll(now)).map((s) => s.id),
        [0x4000, 0x8000],
      );
      timeout *= 2;
    }
    now += timeout;
    const last = c.poll(now);
    t.same(last[0], { kind: 'unanswered', dhaad: true, mps: true }, 'DHAAD gives up');
    t.same(
      sent(last).map((s) => s.id),
      [0x8000],
      'the MPS goes on',
    );
    // RFC 6275 §11.4.2: the MPS keeps going, each wait doubling up to MAX_MOBPFX_SOLICIT_TIMEOUT.
    timeout *= 2;
    const waits: number[] = [];
    for (let i = 0; i < 20; i++) {
      const next = c.nextDeadline();
      waits.push(next - now);
      now = next;
      t.same(
        sent(c.poll(now)).map((s) => s.id),
        [0x8000],
      );
    }
    t.equal(waits[0], timeout, 'doubling on');
    t.equal(Math.max(...waits), MAX_MOBPFX_SOLICIT_TIMEOUT_MS, 'capped');
    t.equal(waits.at(-1), MAX_MOBPFX_SOLICIT_TIMEOUT_MS, 'and stays at the cap');
    // An MPA with its identifier ends it.
    c.onMessage(mpa(0x8000), now);
    t.equal(c.nextDeadline(), Infinity, 'answered: nothing outstanding');
  },
);

void t.test('DHAAD answered, MPS not: the MPS goes on alone, reported once', async (t) => {
  const c = client();
  c.discover(0);
  c.onMessage(
    decodePacket(
      encodeIcmpv6Packet({
        source: HA1,
        destination: HOA,
        message: {
          kind: 'haadReply',
          identifier: 0x4000,
          mobileRouter: false,
          homeAgentAddresses: [HA1],
        },
      }),
    ).icmpv6!,
    1,
  );
  const kinds: string[] = [];
  let now = 0;
  for (let i = 0; i < 8; i++) {
    now = c.nextDeadline();
    for (const a of c.poll(now)) kinds.push(a.kind === 'send' ? 'mps' : a.kind);
  }
  t.same(kinds.filter((k) => k === 'unanswered').length, 1, 'one report');
  t.equal(kinds.filter((k) => k === 'mps').length, 8, 'one MPS per deadline, no DHAAD');
});

void t.test('a Reply counts only with the outstanding identifier', async (t) => {
  const c = client();
  c.discover(0);
  const wrong = c.onMessage(
    { kind: 'haadReply', identifier: 0x4001, mobileRouter: false, homeAgentAddresses: [HA2] },
    1,
  );
  t.same(wrong, [{ kind: 'drop', reason: 'dhaad-reply-unsolicited' }]);
  t.same(c.homeAgents, []);
  const right = c.onMessage(
    { kind: 'haadReply', identifier: 0x4000, mobileRouter: false, homeAgentAddresses: [HA2, HA1] },
    2,
  );
  t.same(right, [{ kind: 'homeAgents', list: [HA2, HA1] }]);
  const again = c.onMessage(
    { kind: 'haadReply', identifier: 0x4000, mobileRouter: false, homeAgentAddresses: [] },
    3,
  );
  t.same(again, [{ kind: 'drop', reason: 'dhaad-reply-unsolicited' }], 'answered once only');
  // The MPS is still outstanding: only it goes out again.
  t.same(
    sent(c.poll(INITIAL_DHAAD_TIMEOUT_MS)).map((s) => s.kind),
    ['mobilePrefixSolicitation'],
  );
});

void t.test('solicited MPA: recorded, no acknowledgement; unsolicited: acknowledged', async (t) => {
  const c = client();
  c.discover(0);
  const sol = c.onMessage(mpa(0x8000), 10);
  t.same(
    sol.map((a) => a.kind),
    ['homePrefixes'],
  );
  t.match(sol[0], { ours: true, prefixes: [{ prefix: '2001:db8:100::/64' }] });
  t.equal(c.learnedAgents.get(HA2)?.expiresAt, 10 + 600_000);
  // The same set again, unsolicited: acknowledged, no new DHAAD.
  const same = c.onMessage(mpa(0x1234), 20);
  t.same(
    same.map((a) => a.kind),
    ['acknowledge', 'homePrefixes'],
  );
  // A changed set, unsolicited: DHAAD again (new identifier), then acknowledged.
  const changed = c.onMessage(mpa(0x1234, [HA2, '2001:db8:100::3']), 30);
  t.same(
    changed.map((a) => a.kind),
    ['send', 'acknowledge', 'homePrefixes'],
  );
  t.same(sent(changed)[0]?.kind, 'haadRequest');
  const foreign = c.onMessage(
    mobilePrefixAdvertisement(7, {
      homeAgents: [],
      prefixes: [
        { address: '2001:db8:999::', length: 64, validLifetime: 3600, preferredLifetime: 0 },
      ],
    }),
    40,
  );
  t.match(foreign.at(-1), { kind: 'homePrefixes', ours: false }, 'a prefix without our HoA');
});

void t.test('onRegistered: once, on BA status 1, and before a learned agent expires', async (t) => {
  const c = client();
  t.equal(sent(c.onRegistered(0, 600, false)).length, 2, 'first registration');
  c.onMessage(mpa(0x8000), 0);
  t.same(c.onRegistered(1000, 60, false), [], 'nothing new');
  t.equal(sent(c.onRegistered(2000, 60, true)).length, 2, 'the HA asked');
  t.equal(sent(c.onRegistered(550_000, 60, false)).length, 2, 'HA2 expires within 60 s');
  c.switchHomeAgent(HA2);
  t.equal(c.nextDeadline(), Infinity, 'nothing outstanding after a switch');
  const again = sent(c.onRegistered(560_000, 600, false));
  t.equal(again[1]?.dst, HA2, 'the MPS goes to the new HA');
});

void t.test(
  'onRegistered: before the home prefix becomes invalid (RFC 6275 §11.4.2)',
  async (t) => {
    const c = client();
    c.onRegistered(0, 600, false);
    const advert = (validLifetime: number) =>
      mobilePrefixAdvertisement(0x8000, {
        homeAgents: [{ address: HA1, preference: 0, lifetime: 65_535 }],
        prefixes: [{ address: '2001:db8:100::', length: 64, validLifetime, preferredLifetime: 0 }],
      });
    c.onMessage(advert(0xffffffff), 0);
    t.same(c.onRegistered(1000, 600, false), [], 'an infinite prefix: nothing to ask');
    c.discover(2000);
    c.onMessage(advert(900), 2000);
    t.same(c.onRegistered(3000, 600, false), [], 'valid for 899 s more, registering for 600 s');
    t.same(
      sent(c.onRegistered(400_000, 600, false)).map((s) => s.kind),
      ['haadRequest', 'mobilePrefixSolicitation'],
      'the prefix runs out first: ask',
    );
  },
);

void t.test('failover list and decision', async (t) => {
  const c = client();
  t.same(
    c.failoverList(0).map((e) => e.address),
    [HA1],
    'only the configured HA',
  );
  t.equal(c.nextHomeAgent(HA1, 0), undefined, 'nothing to fail over to');
  c.onMessage(mpa(1, [HA2, '2001:db8:100::3']), 0);
  // No DHAAD order: by preference, the configured HA last.
  const list = c.failoverList(0);
  t.same(
    list.map((e) => [e.address, e.agent4, e.port]),
    [
      [HA2, '198.51.100.2', 5000],
      ['2001:db8:100::3', '198.51.100.3', 5001],
      [HA1, '192.0.2.1', 4192],
    ],
  );
  t.same(list[0]?.publicKey, KEY2, 'the key the MPA announced');
  c.homeAgents = [HA1, HA2];
  t.same(
    c.failoverList(0).map((e) => e.address),
    [HA1, HA2],
    'DHAAD order, learned agents not listed there left out',
  );
  t.equal(c.nextHomeAgent(HA1, 0)?.address, HA2);
  t.equal(c.nextHomeAgent(HA2, 0)?.address, HA1, 'wraps around');
  t.same(
    c.failoverList(600_000).map((e) => e.address),
    [HA1],
    'expired entries are left out',
  );
  c.setConfiguredAgents({ agent6: '2001:db8:ff::1' });
  t.match(c.failoverList(0)[0], { address: HA1, agent4: undefined, agent6: '2001:db8:ff::1' });
});
