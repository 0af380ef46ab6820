/**
 * Path validation (src/protocol/path-validation.ts) on a fake clock: challenges, responses,
 * retransmission bounds, and what a forged or stale response does (nothing).
 */
import t from 'tap';
import {
  decodePathMessage,
  encodePathMessage,
  PATH_CHALLENGE,
  PATH_CHALLENGE_MAX_SENDS,
  PATH_CHALLENGE_RETRY_MS,
  PATH_RESPONSE,
  PathValidator,
  VALIDATED_PER_OWNER,
} from '../../src/protocol/path-validation.js';

function counter(): (n: number) => Uint8Array {
  let next = 1;
  return (n) => new Uint8Array(n).fill(next++);
}

void t.test(
  'codec: challenge and response round-trip; anything else is not a path message',
  (t) => {
    const token = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
    const c = encodePathMessage(PATH_CHALLENGE, token);
    t.same([...c], [0x10, 1, 2, 3, 4, 5, 6, 7, 8]);
    t.same(decodePathMessage(c, 0, c.length), { type: PATH_CHALLENGE, token });
    const r = encodePathMessage(PATH_RESPONSE, token);
    t.equal(decodePathMessage(r, 0, r.length)?.type, PATH_RESPONSE);
    t.equal(decodePathMessage(r, 0, 8), undefined, 'short');
    t.equal(decodePathMessage(Uint8Array.of(0x60, ...token), 0, 9), undefined, 'IPv6-like');
    t.throws(() => encodePathMessage(PATH_CHALLENGE, new Uint8Array(7)), RangeError);
    t.end();
  },
);

void t.test('a new locator is validated only by the response carrying its token', (t) => {
  const v = new PathValidator<string>(counter());
  const c = v.onBindingUpdate('mn', 'A', 0)!;
  t.equal(c.locator, 'A');
  t.equal(v.isValidated('mn', 'A'), false);
  t.equal(v.onResponse('mn', new Uint8Array(8).fill(9)), undefined, 'wrong token');
  t.equal(v.onResponse('other', c.token), undefined, 'right token, other owner');
  t.equal(v.isValidated('mn', 'A'), false);
  t.equal(v.onResponse('mn', c.token), 'A');
  t.equal(v.isValidated('mn', 'A'), true);
  t.equal(v.onResponse('mn', c.token), undefined, 'a replayed response validates nothing');
  t.equal(v.onBindingUpdate('mn', 'A', 10), undefined, 'known locator: no challenge');
  t.end();
});

void t.test('retransmissions double and stop after PATH_CHALLENGE_MAX_SENDS', (t) => {
  const v = new PathValidator<string>(counter());
  const first = v.onBindingUpdate('mn', 'V', 0)!;
  let sends = 1;
  let now = 0;
  const at: number[] = [];
  while (now < 60_000) {
    const next = v.nextDeadline();
    if (next === Infinity) break;
    now = Math.max(now + 1, next);
    for (const c of v.poll(now)) {
      t.same(c.token, first.token, 'the same token again');
      sends++;
      at.push(now);
    }
  }
  t.equal(sends, PATH_CHALLENGE_MAX_SENDS);
  t.same(at, [PATH_CHALLENGE_RETRY_MS, 3 * PATH_CHALLENGE_RETRY_MS]);
  t.equal(v.nextDeadline(), Infinity, 'abandoned');
  t.equal(v.onResponse('mn', first.token), undefined, 'too late');
  // A BU within the retry interval sends nothing more; a new BU after abandonment starts again.
  const again = v.onBindingUpdate('mn', 'V', now + 1)!;
  t.not(Buffer.from(again.token).toString('hex'), Buffer.from(first.token).toString('hex'));
  t.equal(v.onBindingUpdate('mn', 'V', now + 2), undefined);
  t.end();
});

void t.test('back on a validated locator: the pending challenge is dropped', (t) => {
  const v = new PathValidator<string>(counter());
  v.markValidated('mn', 'A');
  const c = v.onBindingUpdate('mn', 'B', 0)!;
  t.equal(v.pendingLocator('mn'), 'B');
  t.equal(v.onBindingUpdate('mn', 'A', 5), undefined);
  t.equal(v.pendingLocator('mn'), undefined);
  t.equal(v.onResponse('mn', c.token), undefined, 'the old challenge no longer validates B');
  t.end();
});

void t.test('remembers the last VALIDATED_PER_OWNER locators; forget() drops everything', (t) => {
  const v = new PathValidator<string>(counter());
  for (let i = 0; i <= VALIDATED_PER_OWNER; i++) v.markValidated('mn', `L${i}`);
  t.equal(v.isValidated('mn', 'L0'), false, 'oldest forgotten');
  for (let i = 1; i <= VALIDATED_PER_OWNER; i++) t.equal(v.isValidated('mn', `L${i}`), true);
  // Validated again, L1 is the most recent: the next new one pushes L2 out, not L1.
  v.markValidated('mn', 'L1');
  v.markValidated('mn', 'new');
  t.equal(v.isValidated('mn', 'L1'), true, 'a re-validated locator moves to the front');
  t.equal(v.isValidated('mn', 'L2'), false, 'the oldest other one goes');
  t.equal(v.isValidated('mn', 'new'), true);
  const one = new PathValidator<string>(counter());
  one.markValidated('mn', 'A');
  one.markValidated('mn', 'A');
  t.equal(one.isValidated('mn', 'A'), true, 'one locator, validated twice');
  one.markValidated('mn', 'B');
  t.ok(one.isValidated('mn', 'A') && one.isValidated('mn', 'B'), 'then two');
  v.forget('mn');
  t.equal(v.isValidated('mn', `L${VALIDATED_PER_OWNER}`), false);
  t.end();
});
