/** io/address-bytes: the addon's address slots go through wire/address.ts's codec. */
import t from 'tap';
import fc from 'fast-check';
import { addressBytes, readAddress, writeAddress } from '../../src/io/address-bytes.js';
import { formatIpv6, parseIpv6 } from '../../src/wire/address.js';

void t.test('IPv6 slots are the wire codec', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (b) => {
      const text = readAddress(6, b, 0);
      return text === formatIpv6(b) && Buffer.from(addressBytes(6, text)).equals(Buffer.from(b));
    }),
  );
  t.end();
});

void t.test('spellings, zones, families', (t) => {
  t.same(addressBytes(6, 'FE80:0:0:0:0:0:0:1%3'), parseIpv6('fe80::1'), 'zone left out');
  t.same(addressBytes(6, '::ffff:192.0.2.1'), parseIpv6('::ffff:c000:201'));
  t.equal(readAddress(6, parseIpv6('::ffff:c000:201'), 0), '::ffff:192.0.2.1');
  const slot = addressBytes(4, '192.0.2.1');
  t.same([...slot], [192, 0, 2, 1, ...new Array<number>(12).fill(0)], 'IPv4 in the first 4 bytes');
  t.equal(readAddress(4, slot, 0), '192.0.2.1');
  const out = new Uint8Array(32).fill(0xee);
  writeAddress(4, '10.0.0.1', out, 16);
  t.same([...out.subarray(16)], [10, 0, 0, 1, ...new Array<number>(12).fill(0)], 'slot cleared');
  t.equal(out[15], 0xee, 'only the slot written');
  for (const [f, bad] of [
    [4, '2001:db8::1'],
    [6, '192.0.2.1'],
    [4, '01.2.3.4'],
    [6, '::g'],
    [6, '1:2:3:4:5:6:7:8:9'],
  ] as const) {
    t.throws(() => addressBytes(f, bad), TypeError, `${bad} as IPv${f}`);
  }
  t.end();
});
