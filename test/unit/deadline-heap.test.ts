/** util/deadline-heap: order against a sorted model, lazy deletion, compaction. */
import t from 'tap';
import fc from 'fast-check';
import { DeadlineHeap } from '../../src/util/deadline-heap.js';

void t.test('empty heap', (t) => {
  const h = new DeadlineHeap<string>();
  t.equal(h.size, 0);
  t.equal(h.peek(), Infinity);
  t.equal(h.peekItem(), undefined);
  t.equal(
    h.peekLive(() => true),
    Infinity,
  );
  t.end();
});

void t.test('pops in time order', (t) => {
  const h = new DeadlineHeap<string>();
  for (const [at, s] of [
    [30, 'c'],
    [10, 'a'],
    [50, 'e'],
    [20, 'b'],
    [40, 'd'],
  ] as const) {
    h.push(at, s);
  }
  t.equal(h.size, 5);
  t.equal(h.peek(), 10);
  t.equal(h.peekItem(), 'a');
  const out: string[] = [];
  while (h.size > 0) out.push(h.pop());
  t.same(out, ['a', 'b', 'c', 'd', 'e']);
  t.equal(h.peek(), Infinity);
  t.end();
});

void t.test('peekLive drops stale entries on top only', (t) => {
  // An item rescheduled later: its old entry is stale (its time is no longer the item's).
  const due = new Map<string, number>([
    ['a', 25],
    ['b', 20],
  ]);
  const live = (s: string, at: number): boolean => due.get(s) === at;
  const h = new DeadlineHeap<string>();
  h.push(10, 'a'); // stale: a is now due at 25
  h.push(20, 'b');
  h.push(25, 'a');
  t.equal(h.peek(), 10, 'peek sees the stale entry');
  t.equal(h.peekLive(live), 20, 'peekLive skips it');
  t.equal(h.size, 2, 'and dropped it');
  due.delete('b'); // b cancelled
  t.equal(h.peekLive(live), 25);
  t.equal(h.peekItem(), 'a');
  t.end();
});

void t.test('compact keeps only live entries, still ordered', (t) => {
  const h = new DeadlineHeap<number>();
  for (let i = 0; i < 100; i++) h.push((i * 37) % 101, i);
  h.compact((item) => item % 3 === 0);
  t.equal(h.size, 34);
  const times: number[] = [];
  let last = -Infinity;
  while (h.size > 0) {
    const at = h.peek();
    t.ok(h.pop() % 3 === 0);
    if (at < last) t.fail(`out of order: ${at} after ${last}`);
    last = at;
    times.push(at);
  }
  t.equal(times.length, 34);
  t.end();
});

void t.test('agrees with a sorted-array model', (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.constant(-1)), { maxLength: 300 }),
      (ops) => {
        const h = new DeadlineHeap<number>();
        const model: number[] = [];
        for (const op of ops) {
          if (op >= 0) {
            h.push(op, op);
            model.push(op);
            model.sort((a, b) => a - b);
          } else if (model.length > 0) {
            const want = model.shift()!;
            if (h.peek() !== want || h.pop() !== want) return false;
          }
          if (h.size !== model.length || h.peek() !== (model[0] ?? Infinity)) return false;
        }
        return true;
      },
    ),
  );
  t.end();
});
