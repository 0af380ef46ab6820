/** util/bytes: equality (plain and constant-time) and lexicographic order of byte strings. */
import t from 'tap';
import fc from 'fast-check';
import { bytesEqual, compareBytes, constantTimeEqual } from '../../src/util/bytes.js';

const b = (...x: number[]): Uint8Array => Uint8Array.from(x);

void t.test('bytesEqual and constantTimeEqual', (t) => {
  for (const eq of [bytesEqual, constantTimeEqual]) {
    t.ok(eq(b(), b()), `${eq.name}: empty`);
    t.ok(eq(b(1, 2, 3), b(1, 2, 3)), `${eq.name}: same`);
    t.notOk(eq(b(1, 2, 3), b(1, 2, 4)), `${eq.name}: last byte differs`);
    t.notOk(eq(b(0, 2, 3), b(1, 2, 3)), `${eq.name}: first byte differs`);
    t.notOk(eq(b(1, 2), b(1, 2, 0)), `${eq.name}: length differs`);
    t.ok(eq(b(9, 1, 2, 9).subarray(1, 3), b(1, 2)), `${eq.name}: views compare by content`);
  }
  t.end();
});

void t.test('compareBytes orders lexicographically, shorter prefix first', (t) => {
  t.equal(compareBytes(b(1, 2), b(1, 2)), 0);
  t.ok(compareBytes(b(1, 2), b(1, 3)) < 0);
  t.ok(compareBytes(b(2), b(1, 255)) > 0);
  t.ok(compareBytes(b(1), b(1, 0)) < 0);
  t.ok(compareBytes(b(), b(0)) < 0);
  t.end();
});

void t.test('agree with Buffer.compare / Buffer.equals', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 8 }), fc.uint8Array({ maxLength: 8 }), (x, y) => {
      const want = Buffer.compare(Buffer.from(x), Buffer.from(y));
      const eq = want === 0;
      return (
        Math.sign(compareBytes(x, y)) === want &&
        bytesEqual(x, y) === eq &&
        constantTimeEqual(x, y) === eq
      );
    }),
  );
  t.end();
});
