// The per-source handshake limiter: burst then HANDSHAKES_PER_SECOND per IP address, sources
// independent, bounded table (full buckets swept, otherwise new sources refused).
import t from 'tap';
import {
  HANDSHAKE_BURST,
  HANDSHAKES_PER_SECOND,
  HandshakeRateLimiter,
} from '../../src/crypto/handshake-rate-limiter.js';

void t.test('burst, then the sustained rate, per source address', async (t) => {
  const l = new HandshakeRateLimiter();
  let ok = 0;
  for (let i = 0; i < 100; i++) if (l.allow('203.0.113.7', 0)) ok++;
  t.equal(ok, HANDSHAKE_BURST, 'a burst at one instant gets the burst allowance');
  t.ok(l.allow('203.0.113.8', 0), 'another source is not affected');
  let second = 0;
  for (let ms = 1; ms <= 1000; ms++) if (l.allow('203.0.113.7', ms)) second++;
  t.ok(
    second >= HANDSHAKES_PER_SECOND - 1 && second <= HANDSHAKES_PER_SECOND,
    `${second} in the next second (rate ${HANDSHAKES_PER_SECOND}/s)`,
  );
});

void t.test('the table is bounded: idle sources swept, else new ones refused', async (t) => {
  const l = new HandshakeRateLimiter(20, 2, 3);
  t.ok(l.allow('a', 0) && l.allow('b', 0) && l.allow('c', 0));
  t.equal(l.size, 3);
  t.notOk(l.allow('d', 0), 'full of busy sources: a new one waits');
  t.ok(l.allow('d', 1000), 'after a second the idle buckets are swept');
  t.equal(l.size, 1);
});
