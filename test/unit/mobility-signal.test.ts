/**
 * Which forwarded packets count as mobility signaling (src/wire/mobility-signal.ts), including
 * behind a Home Address option and a type 2 routing header.
 */
import t from 'tap';
import { mobilitySignal } from '../../src/wire/mobility-signal.js';
import { encodeIcmpv6Packet, encodeMobilityPacket, encodePacket } from '../../src/wire/packet.js';
import { addHomeAddressOption } from '../../src/wire/rewrite.js';
import { IPPROTO } from '../../src/wire/types.js';
import { parseIpv6 } from '../../src/wire/address.js';

const A = '2001:db8:100::10';
const B = '2001:db8:100::1';
const cls = (p: Uint8Array) => mobilitySignal(p, 0, p.length);

void t.test('Mobility Header types: HoTI/HoT are rr, everything else mh', (t) => {
  t.equal(
    cls(
      encodeMobilityPacket({
        source: A,
        destination: B,
        message: { kind: 'bindingRefreshRequest', options: [] },
      }),
    ),
    'mh',
  );
  t.equal(
    cls(
      encodeMobilityPacket({
        source: A,
        destination: B,
        message: { kind: 'homeTestInit', homeInitCookie: new Uint8Array(8), options: [] },
      }),
    ),
    'rr',
  );
  const unknown = encodeMobilityPacket({
    source: A,
    destination: B,
    message: { kind: 'bindingRefreshRequest', options: [] },
  });
  unknown[40 + 2] = 200;
  t.equal(cls(unknown), 'mh', 'an unknown MH type is signaling too');
  t.end();
});

void t.test('ICMPv6 144-147 are discovery, 137 a redirect, echo nothing', (t) => {
  t.equal(
    cls(
      encodeIcmpv6Packet({
        source: A,
        destination: B,
        message: { kind: 'haadReply', identifier: 1, mobileRouter: false, homeAgentAddresses: [] },
      }),
    ),
    'discovery',
  );
  t.equal(
    cls(
      encodeIcmpv6Packet({
        source: A,
        destination: B,
        message: { kind: 'mobilePrefixSolicitation', identifier: 1 },
      }),
    ),
    'discovery',
  );
  const redirect = encodeIcmpv6Packet({
    source: A,
    destination: B,
    message: { kind: 'echoRequest', identifier: 1, sequence: 1, data: new Uint8Array(40) },
  });
  redirect[40] = 137;
  t.equal(cls(redirect), 'redirect');
  t.equal(
    cls(
      encodeIcmpv6Packet({
        source: A,
        destination: B,
        message: { kind: 'echoRequest', identifier: 1, sequence: 1, data: new Uint8Array(8) },
      }),
    ),
    undefined,
  );
  t.end();
});

void t.test('found behind a Home Address option; TCP/UDP and garbage are not signaling', (t) => {
  const brr = encodeMobilityPacket({
    source: A,
    destination: B,
    message: { kind: 'bindingRefreshRequest', options: [] },
  });
  const buf = new Uint8Array(brr.length + 64);
  buf.set(brr, 24); // headroom for the Destination Options header
  const start = addHomeAddressOption(buf, 24, brr.length, parseIpv6('2001:db8:3::10'));
  t.ok(start >= 0 && start < 24, 'HAO inserted');
  t.equal(buf[start + 6], IPPROTO.DSTOPTS);
  t.equal(mobilitySignal(buf, start, brr.length + (24 - start)), 'mh');
  const tcp = encodePacket({ source: A, destination: B }, IPPROTO.TCP, () => new Uint8Array(20));
  t.equal(cls(tcp), undefined);
  t.equal(mobilitySignal(new Uint8Array(10), 0, 10), undefined, 'too short for IPv6');
  t.end();
});
