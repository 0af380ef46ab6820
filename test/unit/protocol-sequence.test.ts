import t from 'tap';
import {
  lifetimeUnitsToSeconds,
  secondsToLifetimeUnits,
  seqAdd,
  seqDistance,
  seqNewer,
  seqNext,
} from '../../src/protocol/sequence.js';
import {
  INITIAL_BINDACK_TIMEOUT_FIRST_REG_MS,
  INITIAL_BINDACK_TIMEOUT_MS,
  MAX_BINDACK_TIMEOUT_MS,
  MAX_RR_BINDING_LIFETIME_S,
  MAX_UPDATE_RATE,
  NATKATIMEOUT_S,
  baStatusAccepted,
  baStatusName,
} from '../../src/protocol/constants.js';
import { BA_STATUS } from '../../src/wire/types.js';

void t.test('seqNewer: the 1..32767 window (RFC 6275 §9.5.1)', async (t) => {
  t.equal(seqNewer(1, 0), true);
  t.equal(seqNewer(0, 0), false, 'equal is old');
  t.equal(seqNewer(32767, 0), true, 'last value of the window');
  t.equal(seqNewer(32768, 0), false, 'opposite point is old');
  t.equal(seqNewer(65535, 0), false, 'one behind is old');
  t.equal(seqNewer(0, 65535), true, 'wraps 65535 -> 0');
  t.equal(seqNewer(5, 65530), true, 'across the wrap');
  t.equal(seqNewer(65530, 5), false);
  t.equal(seqNewer(32766, 65535), true, '(32766 - 65535) mod 65536 = 32767');
  t.equal(seqNewer(32767, 65535), false, '= 32768');
  t.throws(() => seqNewer(65536, 0), RangeError);
  t.throws(() => seqNewer(-1, 0), RangeError);
  t.throws(() => seqNewer(1.5, 0), RangeError);
});

void t.test('seqNext / seqAdd / seqDistance wrap', async (t) => {
  t.equal(seqNext(65535), 0);
  t.equal(seqNext(7), 8);
  t.equal(seqAdd(0, -1), 65535);
  t.equal(seqAdd(65535, 2), 1);
  t.equal(seqDistance(0, 65535), 1);
  t.equal(seqDistance(65535, 0), 65535);
});

void t.test('lifetime units are 4 s (RFC 6275 §6.1.7)', async (t) => {
  t.equal(secondsToLifetimeUnits(0), 0);
  t.equal(secondsToLifetimeUnits(-3), 0);
  t.equal(secondsToLifetimeUnits(3), 1, 'a positive lifetime never becomes a deregistration');
  t.equal(secondsToLifetimeUnits(4), 1);
  t.equal(secondsToLifetimeUnits(7), 1, 'rounds down');
  t.equal(secondsToLifetimeUnits(3600), 900);
  t.equal(secondsToLifetimeUnits(1e9), 0xffff, 'clamped to the field');
  t.equal(lifetimeUnitsToSeconds(900), 3600);
  t.equal(lifetimeUnitsToSeconds(0xffff), 262140);
  t.throws(() => lifetimeUnitsToSeconds(0x10000), RangeError);
});

void t.test('constants match RFC 6275 §12/§13 and RFC 5555', async (t) => {
  t.equal(INITIAL_BINDACK_TIMEOUT_MS, 1000);
  t.equal(INITIAL_BINDACK_TIMEOUT_FIRST_REG_MS, 1500);
  t.equal(MAX_BINDACK_TIMEOUT_MS, 32000);
  t.equal(MAX_UPDATE_RATE, 3);
  t.equal(MAX_RR_BINDING_LIFETIME_S, 420);
  t.equal(NATKATIMEOUT_S, 110);
});

void t.test('baStatusName names every status of the digest table', async (t) => {
  const codes = [0, 1, 2, 3, 4, 5, 6, ...Array.from({ length: 176 - 128 + 1 }, (_, i) => 128 + i)];
  for (const c of codes) t.notMatch(baStatusName(c), /^unknown/, `status ${c} has a name`);
  t.equal(baStatusName(BA_STATUS.SEQUENCE_OUT_OF_WINDOW), 'Sequence number out of window');
  t.equal(baStatusName(BA_STATUS.NOT_HOME_AGENT_FOR_MN), 'Not home agent for this mobile node');
  t.equal(baStatusName(174), 'Invalid care-of address');
  t.equal(baStatusName(200), 'unknown status 200 (rejected)');
  t.equal(baStatusName(77), 'unknown status 77 (accepted)');
  t.equal(baStatusAccepted(1), true);
  t.equal(baStatusAccepted(128), false);
});
