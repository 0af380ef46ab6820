/**
 * The home agent's MPA schedule (src/protocol/prefix-advertisement.ts, RFC 6275 §10.6.2) on a
 * fake clock: unsolicited MPAs after a change, their retransmission until a BU acknowledges them,
 * and the periodic schedule between MinMobPfxAdvInterval and MaxMobPfxAdvInterval.
 */
import t from 'tap';
import {
  PrefixAdvertiser,
  type PrefixAdvertisementAction,
} from '../../src/protocol/prefix-advertisement.js';
import {
  MAX_MOBPFX_ADV_INTERVAL_S,
  MIN_MOBPFX_ADV_INTERVAL_S,
  PREFIX_ADV_RETRIES,
  PREFIX_ADV_TIMEOUT_MS,
} from '../../src/protocol/constants.js';
import { BindingCache, keyOfText } from '../../src/protocol/binding-cache.js';
import { bindingUpdateFlags } from '../../src/wire/types.js';

const T0 = 1_000_000;

/** Polls at every deadline up to `until`; returns [time since T0, action]. */
function run(a: PrefixAdvertiser, until: number): [number, PrefixAdvertisementAction][] {
  const out: [number, PrefixAdvertisementAction][] = [];
  for (let now = a.nextDeadline(); now <= until; now = a.nextDeadline()) {
    for (const x of a.poll(now)) out.push([now - T0, x]);
  }
  return out;
}

void t.test('RFC 6275 §13 defaults', async (t) => {
  t.equal(MIN_MOBPFX_ADV_INTERVAL_S, 600);
  t.equal(MAX_MOBPFX_ADV_INTERVAL_S, 86_400);
});

void t.test(
  'a change: sent at once, retransmitted doubling PREFIX_ADV_RETRIES times',
  async (t) => {
    const a = new PrefixAdvertiser({ random: () => 0.5 });
    a.onRegistered('k', T0);
    const first = a.advertise(['k'], T0);
    t.same(
      first.map((x) => x.why),
      ['change'],
    );
    const id = first[0]!.identifier;
    t.ok(a.pending('k'));
    const later = run(a, T0 + 100_000).filter(([, x]) => x.why === 'retransmission');
    t.same(
      later.map(([at]) => at),
      [3000, 9000, 21000].map((ms) => (ms / 3000) * PREFIX_ADV_TIMEOUT_MS),
    );
    t.equal(later.length, PREFIX_ADV_RETRIES);
    t.ok(
      later.every(([, x]) => x.identifier === id),
      'same identifier',
    );
    t.notOk(a.pending('k'), 'given up after the last retry');
  },
);

void t.test('a BU acknowledges the outstanding MPA', async (t) => {
  const a = new PrefixAdvertiser({ random: () => 0 });
  a.advertise(['k'], T0);
  t.equal(a.onBindingUpdate('k', T0 + 100), true);
  t.equal(a.onBindingUpdate('k', T0 + 200), false, 'only once');
  t.same(run(a, T0 + 60_000), [], 'no retransmission');
});

void t.test('forget: a binding gone gets nothing more', async (t) => {
  const a = new PrefixAdvertiser();
  a.advertise(['k'], T0);
  a.forget('k');
  t.equal(a.nextDeadline(), Infinity);
});

void t.test('periodic: between Min and Max apart, jitter from the random source', async (t) => {
  const min = MIN_MOBPFX_ADV_INTERVAL_S * 1000;
  const max = MAX_MOBPFX_ADV_INTERVAL_S * 1000;
  for (const r of [0, 0.25, 0.999999]) {
    const a = new PrefixAdvertiser({ random: () => r });
    a.onRegistered('k', T0);
    const expected = min + Math.floor(r * (max - min));
    t.equal(a.nextDeadline(), T0 + expected, `random ${r}`);
    const sent = run(a, T0 + expected);
    t.same(
      sent.map(([at, x]) => [at, x.why]),
      [[expected, 'periodic']],
    );
    t.ok(expected >= min && expected <= max);
  }
});

void t.test('periodic MPAs are retransmitted until acknowledged, then rescheduled', async (t) => {
  const a = new PrefixAdvertiser({ random: () => 0 });
  a.onRegistered('k', T0);
  const min = MIN_MOBPFX_ADV_INTERVAL_S * 1000;
  t.same(
    run(a, T0 + min).map(([, x]) => x.why),
    ['periodic'],
  );
  t.ok(a.pending('k'));
  t.same(
    run(a, T0 + min + PREFIX_ADV_TIMEOUT_MS).map(([at, x]) => [at, x.why]),
    [[min + PREFIX_ADV_TIMEOUT_MS, 'retransmission']],
  );
  a.onBindingUpdate('k', T0 + min + 4000);
  t.equal(a.nextDeadline(), T0 + 2 * min, 'next periodic Min after the last one');
});

void t.test('the home prefix preferred lifetime caps the periodic interval', async (t) => {
  const a = new PrefixAdvertiser({ random: () => 0.999 });
  a.setPreferredLifetime(3600);
  const d = a.randomDelay();
  t.ok(d >= 600_000 && d < 3_600_000, `${d}`);
  a.setPreferredLifetime(0xffff_ffff);
  t.ok(a.randomDelay() > 3_600_000, 'infinite: MaxMobPfxAdvInterval');
});

void t.test('a solicited MPA reschedules the periodic one', async (t) => {
  const a = new PrefixAdvertiser({ random: () => 0 });
  a.onRegistered('k', T0);
  a.onSolicitedSent('k', T0 + 500_000);
  t.equal(a.nextDeadline(), T0 + 500_000 + 600_000);
});

void t.test('configurable intervals and 16-bit identifiers', async (t) => {
  const a = new PrefixAdvertiser({
    random: () => 0.5,
    minIntervalSeconds: 10,
    maxIntervalSeconds: 30,
  });
  t.equal(a.randomDelay(), 20_000);
  t.equal(a.identifier(), 0x8000);
});

void t.test(
  "the schedule kept on the binding cache's entries (the home agent's store, issue 17)",
  async (t) => {
    const cache = new BindingCache();
    const a = new PrefixAdvertiser({ random: () => 0.5, store: cache.prefixAdvertisements });
    const fields = (hoa: string) => ({
      homeAddress: hoa,
      careOfAddress: '::ffff:198.51.100.7',
      locator: { address: '198.51.100.7', port: 4191 },
      lifetimeSeconds: 3600,
      expiresAt: T0 + 3_600_000,
      sequence: 1,
      flags: bindingUpdateFlags({ A: true, H: true }),
      homeRegistration: true,
      peerName: 'laptop',
      ownerKey: new Uint8Array(32),
      natDetected: false,
      udpEncapsulationRequired: false,
      refreshTime: 0,
      refreshAdviceSeconds: 0,
    });
    const e = cache.set(fields('2001:db8:100::5'), T0);
    a.onRegistered(e.key, T0);
    t.ok(e.mpaAt !== undefined, 'on the entry');
    t.equal(cache.prefixAdvertisements.get(e.key), e, 'the entry itself: no object of its own');
    t.equal(cache.prefixAdvertisements.size, 1);
    // A key with no binding keeps nothing, and a change advertises only to bindings.
    a.onRegistered(keyOfText('2001:db8:100::6'), T0);
    t.same(
      a.advertise([e.key, keyOfText('2001:db8:100::6')], T0).map((x) => x.key),
      [e.key],
    );
    t.equal(a.pending(e.key), true, 'outstanding until a BU');
    t.equal(a.onBindingUpdate(e.key, T0 + 1), true, 'acknowledged');
    // The periodic MPA comes between MinMobPfxAdvInterval and MaxMobPfxAdvInterval.
    const periodic = run(a, T0 + MAX_MOBPFX_ADV_INTERVAL_S * 1000).filter(
      ([, x]) => x.why === 'periodic',
    );
    t.equal(periodic.length, 1, 'one periodic MPA in the first interval');
    t.ok(periodic[0]![0] >= MIN_MOBPFX_ADV_INTERVAL_S * 1000);
    cache.delete(e.homeAddress, T0 + 2);
    t.equal(cache.prefixAdvertisements.get(e.key), undefined, 'gone with its binding');
  },
);
