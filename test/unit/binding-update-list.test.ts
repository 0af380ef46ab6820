import t from 'tap';
import {
  BindingUpdateList,
  UpdateRateLimiter,
  type BindingUpdateListEntry,
} from '../../src/protocol/binding-update-list.js';

void t.test('binding update list: one entry per (destination, home address)', async (t) => {
  const bul = new BindingUpdateList();
  const e: BindingUpdateListEntry = {
    destination: '2001:db8:100::1',
    homeAddress: '2001:db8:100::5',
    careOfAddress: '::ffff:192.0.2.10',
    requestedLifetimeSeconds: 600,
    grantedLifetimeSeconds: 600,
    expiresAt: 600_000,
    lastSequenceSent: 7,
    lastSentAt: 0,
    retransmissions: 0,
    stopSending: false,
  };
  bul.set(e);
  bul.set({ ...e, destination: '2001:db8:200::9', lastSequenceSent: 3 });
  t.equal(bul.get('2001:db8:100::1', '2001:db8:100::5')?.lastSequenceSent, 7);
  t.equal(bul.get('2001:db8:200::9', '2001:db8:100::5')?.lastSequenceSent, 3);
  t.equal([...bul.entries()].length, 2);
  t.equal(bul.delete('2001:db8:100::1', '2001:db8:100::5'), true);
  t.equal(bul.delete('2001:db8:100::1', '2001:db8:100::5'), false);
  t.equal(bul.get('2001:db8:100::1', '2001:db8:100::5'), undefined);
});

void t.test('MAX_UPDATE_RATE limiter: 3 per second', async (t) => {
  const r = new UpdateRateLimiter();
  t.equal(r.nextAllowedAt(), 0);
  r.record(100);
  r.record(200);
  t.equal(r.allows(250), true);
  r.record(300);
  t.equal(r.allows(1099), false);
  t.equal(r.nextAllowedAt(), 1100);
  t.equal(r.allows(1100), true);
  r.record(1100);
  t.equal(r.nextAllowedAt(), 1200, 'sliding window');
});
