import { bindingUpdateFlags } from '../../src/wire/types.js';
import t from 'tap';
import {
  BindingCache,
  keyOf,
  keyOfText,
  type NewBindingCacheEntry,
} from '../../src/protocol/binding-cache.js';
import { parseIpv6 } from '../../src/wire/address.js';
import { limitToHomePrefixLifetime } from '../../src/protocol/home-agent-registration.js';

const FLAGS = bindingUpdateFlags({ A: true, H: true });
const LAPTOP_KEY = new Uint8Array(32).fill(0x11);

function fields(
  hoa: string,
  lifetimeSeconds: number,
  now: number,
  sequence = 1,
): NewBindingCacheEntry {
  return {
    homeAddress: hoa,
    careOfAddress: '::ffff:198.51.100.7',
    locator: { address: '198.51.100.7', port: 4191 },
    lifetimeSeconds,
    expiresAt: now + lifetimeSeconds * 1000,
    sequence,
    flags: { ...FLAGS },
    homeRegistration: true,
    peerName: 'laptop',
    ownerKey: LAPTOP_KEY,
    natDetected: false,
    udpEncapsulationRequired: false,
    refreshTime: 0,
    refreshAdviceSeconds: 0,
  };
}

/** The texts an object keeps as its own fields. */
const own = (e: object): string[] => Object.values(e).filter((v) => typeof v === 'string');

void t.test('keyOf reads 16 bytes at an offset without formatting', async (t) => {
  const packet = new Uint8Array(40);
  packet.set(parseIpv6('2001:db8:100::5'), 24); // IPv6 destination field
  const k = keyOf(packet, 24);
  t.equal(k.length, 16);
  t.equal(k, keyOfText('2001:DB8:100:0::5'), 'same key from any spelling of the text');
  t.not(k, keyOfText('2001:db8:100::6'));
});

void t.test('set / get / getByKey / delete', async (t) => {
  const c = new BindingCache();
  const e = c.set(fields('2001:db8:100::5', 60, 0), 0);
  t.equal(c.size, 1);
  t.equal(c.get('2001:db8:100:0:0:0:0:5'), e);
  t.equal(c.getByKey(keyOfText('2001:db8:100::5')), e);
  t.equal(c.get('not an address'), undefined);
  c.recordIn(e, 100, 5);
  c.recordOut(e, 50, 6);
  t.same(e.counters, { packetsIn: 1, packetsOut: 1, bytesIn: 100, bytesOut: 50 });
  t.equal(e.lastUsedAt, 6);
  const e2 = c.set({ ...fields('2001:db8:100::5', 60, 10, 2) }, 10);
  t.equal(e2.counters.bytesIn, 100, 'counters survive an update');
  t.equal(e2.createdAt, 0);
  t.equal(e2.updatedAt, 10);
  t.equal(c.delete('2001:db8:100::5', 20), e2);
  t.equal(c.size, 0);
  t.equal(c.tombstoneSequence('2001:db8:100::5', 21), 2, 'tombstone keeps the sequence');
  t.equal(c.tombstoneSequence('2001:db8:100::5', 21, LAPTOP_KEY), 2, "for the owner's key");
  t.equal(
    c.tombstoneSequence('2001:db8:100::5', 21, new Uint8Array(32).fill(0x22)),
    undefined,
    'another key is not held to it',
  );
  t.equal(c.tombstoneSequence('2001:db8:100::5', 20 + 600_000), undefined, 'tombstone expires');
  t.equal(c.delete('2001:db8:100::5', 30), undefined);
});

void t.test('expiry: poll removes and reports exactly at expiresAt', async (t) => {
  const c = new BindingCache();
  c.set(fields('2001:db8:100::5', 100, 0), 0);
  t.equal(c.nextDeadline(), 90_000, 'first deadline is the BRR check at 90%');
  t.same(c.poll(89_999), []);
  t.same(c.poll(90_000), [], 'unused entry: no BRR');
  t.equal(c.nextDeadline(), 100_000);
  t.same(c.poll(99_999), []);
  const a = c.poll(100_000);
  t.equal(a.length, 1);
  t.equal(a[0]?.kind, 'expired');
  t.equal(c.size, 0);
  t.equal(c.nextDeadline(), Infinity);
});

void t.test('BRR once per lifetime for an entry used in the last 60 s', async (t) => {
  const c = new BindingCache();
  const e = c.set(fields('2001:db8:100::5', 200, 0), 0);
  c.recordIn(e, 80, 150_000);
  const a = c.poll(180_000);
  t.same(
    a.map((x) => x.kind),
    ['refreshRequest'],
  );
  t.same(c.poll(190_000), [], 'only once');
  // Refreshed by the MN: a new lifetime re-arms one BRR.
  c.set(fields('2001:db8:100::5', 200, 190_000, 2), 190_000);
  c.recordOut(c.get('2001:db8:100::5')!, 80, 320_000);
  t.same(
    c.poll(370_000).map((x) => x.kind),
    ['refreshRequest'],
  );
  void t.test('used more than 60 s ago: no BRR', async (t) => {
    const c2 = new BindingCache();
    const e2 = c2.set(fields('2001:db8:100::6', 200, 0), 0);
    c2.recordIn(e2, 80, 119_999);
    t.same(c2.poll(180_000), []);
  });
});

void t.test('a refresh updates the entry in place; its old deadlines are stale', async (t) => {
  const c = new BindingCache();
  const first = c.set(fields('2001:db8:100::7', 100, 0), 0);
  first.counters.packetsIn = 5;
  let e = first;
  // 1000 refreshes, one per 50 ms: the same object, counters kept, one live deadline.
  for (let i = 1; i <= 1000; i++) e = c.set(fields('2001:db8:100::7', 100, i * 50, i + 1), i * 50);
  t.equal(e, first, 'the same entry object');
  t.equal(e.sequence, 1001);
  t.equal(e.counters.packetsIn, 5, 'counters kept');
  t.equal(e.createdAt, 0, 'createdAt kept');
  t.equal(c.nextDeadline(), 50_000 + 90_000, 'the BRR time of the last refresh');
  t.same(c.poll(50_000 + 99_999), [], 'unused: no BRR, and no expiry before its time');
  t.equal(c.nextDeadline(), 50_000 + 100_000, 'then its expiry');
  const due = c.poll(150_000);
  t.same(
    due.map((a) => a.kind),
    ['expired'],
    'one expiry, not one per refresh',
  );
  t.equal(c.size, 0);
  // A spread copy of an entry (as a lifetime cut makes) is a new entry with its own deadline.
  const a = c.set(fields('2001:db8:100::8', 100, 0), 0);
  const b = c.set(
    {
      ...a,
      homeAddress: a.homeAddress,
      careOfAddress: a.careOfAddress,
      lifetimeSeconds: 100,
      expiresAt: a.expiresAt,
    },
    0,
  );
  t.not(b, a, 'a copy with counters is a new entry');
  t.equal(c.nextDeadline(), 90_000, 'armed, though at the same time as the one it replaced');
  t.same(
    c.poll(100_000).map((x) => x.entry === b),
    [true],
    'only the new entry expires',
  );
});

void t.test('many entries: deadlines come out in order (heap against a naive model)', async (t) => {
  const c = new BindingCache();
  let x = 12345;
  const rnd = () => (x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const expect = new Map<string, number>();
  for (let i = 0; i < 2000; i++) {
    const hoa = `2001:db8:100::${(i % 700).toString(16)}`;
    const now = i;
    const life = 4 * (1 + Math.floor(rnd() * 100));
    c.set(fields(hoa, life, now, i), now);
    expect.set(hoa, now + life * 1000);
  }
  t.equal(c.size, 700);
  const expired: [string, number][] = [];
  let now = 2000;
  while (c.nextDeadline() !== Infinity) {
    now = c.nextDeadline();
    for (const a of c.poll(now)) if (a.kind === 'expired') expired.push([a.entry.homeAddress, now]);
  }
  t.equal(expired.length, 700);
  t.ok(
    expired.every(([h, at]) => expect.get(h) === at),
    'each entry expires exactly at its time',
  );
});

void t.test(
  'an entry reads back the CoA a BU set, with no text of its own when its locator names it (issue 17)',
  async (t) => {
    const c = new BindingCache();
    // The CoA the locator names: read back the same, no text of its own kept.
    const a = c.set(fields('2001:db8:100::20', 100, 0.25), 0.25);
    t.equal(a.careOfAddress, '::ffff:198.51.100.7');
    t.notOk(own(a).includes('::ffff:198.51.100.7'), 'no care-of text of its own');
    // Another CoA (a NAT: the option says another address than the one observed): kept as is.
    const b = c.set(
      {
        ...fields('2001:db8:100::21', 100, 0),
        careOfAddress: '::ffff:192.0.2.9',
        natDetected: true,
      },
      0,
    );
    t.equal(b.careOfAddress, '::ffff:192.0.2.9');
    // An IPv6 locator with a zone: the CoA is its address without the zone.
    const z = c.set(
      {
        ...fields('2001:db8:100::22', 100, 0),
        careOfAddress: 'fe80::1',
        locator: { address: 'fe80::1%3', port: 4191 },
      },
      0,
    );
    t.equal(z.careOfAddress, 'fe80::1');
    // A refresh that changes the CoA changes what is read.
    c.set({ ...fields('2001:db8:100::20', 100, 1), careOfAddress: '::ffff:192.0.2.10' }, 1);
    t.equal(a.careOfAddress, '::ffff:192.0.2.10', 'the same entry, its new CoA');
  },
);

void t.test('a refreshed binding: its deadline moves later, due at the same times', async (t) => {
  const c = new BindingCache();
  const e = c.set(fields('2001:db8:100::30', 100, 0), 0);
  c.recordIn(e, 100, 0);
  t.equal(c.nextDeadline(), 90_000, 'BRR at 90 % of the lifetime');
  // Refreshes before the BRR: each moves it later; nextDeadline says the new time at once.
  for (const at of [10_000, 20_000, 50_000]) {
    c.set(fields('2001:db8:100::30', 100, at), at);
    t.equal(c.nextDeadline(), at + 90_000, `refreshed at ${at}`);
  }
  t.same(c.poll(90_000), [], 'nothing at the old BRR time');
  c.recordIn(e, 100, 139_000);
  t.same(
    c.poll(140_000).map((a) => a.kind),
    ['refreshRequest'],
    'the BRR of the last refresh, once',
  );
  t.equal(c.nextDeadline(), 150_000, 'then its expiry');
  // A refresh with a shorter lifetime moves it sooner.
  c.set(fields('2001:db8:100::30', 20, 141_000), 141_000);
  t.equal(c.nextDeadline(), 141_000 + 18_000);
  t.same(c.poll(158_999), []);
  t.same(
    c.poll(159_000).map((a) => a.kind),
    ['refreshRequest'],
    'its BRR (used 20 s before), then its expiry',
  );
  t.same(
    c.poll(161_000).map((a) => a.kind),
    ['expired'],
  );
  t.equal(c.size, 0);
  // A fractional time: deadlines in whole milliseconds, never sooner.
  c.set(fields('2001:db8:100::31', 100, 0.25), 0.25);
  t.equal(c.nextDeadline(), 90_001, '90 000.25 -> 90 001');
  t.same(c.poll(90_000.5), [], 'not before it');
  // An expiry that never comes reads back as such (and sets no base for the others).
  const never = c.set({ ...fields('2001:db8:100::32', 100, 0), expiresAt: Infinity }, 0);
  t.equal(never.expiresAt, Infinity);
  t.equal(c.set(fields('2001:db8:100::33', 100, 5), 5).expiresAt, 100_005);
});

void t.test(
  'an entry reads back the home address a BU set, with no text of its own for RFC 5952 text',
  async (t) => {
    const c = new BindingCache();
    const a = c.set(fields('2001:db8:100::40', 100, 0), 0);
    t.equal(a.homeAddress, '2001:db8:100::40');
    t.notOk(own(a).includes('2001:db8:100::40'), 'no home address text of its own');
    // Another spelling of the same address: the same binding, read back as it was given.
    const b = c.set(fields('2001:DB8:100:0::41', 100, 0), 0);
    t.equal(b.homeAddress, '2001:DB8:100:0::41');
    t.equal(c.get('2001:db8:100::41'), b, 'found by any spelling');
    c.set(fields('2001:db8:100::41', 100, 1), 1);
    t.equal(b.homeAddress, '2001:db8:100::41', 'a refresh spelled canonically');
  },
);

void t.test(
  'a binding cut to its home prefix ends no later than the prefix (RFC 6275 10.3.1), at a fractional now',
  async (t) => {
    // The HA's clock has fractions (performance.now() plus an offset): whole-ms expiry times
    // round down, so a binding never outlives the time it was given.
    const c = new BindingCache();
    const now = 1.8e12 + 0.25;
    const e = c.set(fields('2001:db8:100::9', 600, now - 5000), now - 5000);
    const r = limitToHomePrefixLifetime(c, 10, now);
    t.equal(r.shortened.length, 1, 'shortened');
    const prefixEnd = now + 10_000;
    t.ok(
      e.expiresAt <= prefixEnd,
      `ends ${(prefixEnd - e.expiresAt).toFixed(2)} ms before the prefix`,
    );
    t.ok(prefixEnd - e.expiresAt < 1, 'and less than 1 ms before it');
    const fresh = c.set(fields('2001:db8:100::a', 8, now), now);
    t.ok(fresh.expiresAt <= now + 8000 && now + 8000 - fresh.expiresAt < 1, 'a new binding too');
  },
);
