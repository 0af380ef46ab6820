/** Certificate codec and checks, IPv6 text forms, and the inbound selector check. */
import t from 'tap';
import {
  certificateFromText,
  certificateToText,
  decodeCertificate,
  formatIpv6,
  parseAllowedPrefix,
  parseIpv6,
  verifyCertificate,
} from '../../src/crypto/certificate.js';
import { sourceAllowed } from '../../src/crypto/selector.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { CryptoError } from '../../src/util/errors.js';
import { authority, cert, ipv6Packet, memberKey, T0 } from '../helpers/crypto.js';

await initCrypto();
const ca = authority();
const SEC = Math.floor(T0 / 1000);
const spec = {
  name: 'laptop',
  role: 'mn' as const,
  key: memberKey(2),
  addresses: ['2001:db8:1::10', 'fd00:aa::/32', '2001:db8:ff::/63'],
};

void t.test('encode, decode and text round trip', async (t) => {
  const c = cert(ca, spec);
  const d = decodeCertificate(c.raw);
  t.equal(d.name, 'laptop');
  t.equal(d.role, 'mn');
  t.same(d.publicKey, spec.key.publicKey);
  t.equal(d.addresses.length, 3);
  t.equal(d.addresses[1]!.prefixLength, 32);
  const text = certificateToText(c, ['a comment']);
  t.match(text, /^# a comment\nmip6-certificate-v1 [A-Za-z0-9+/=]+\n$/);
  t.same(certificateFromText(text).raw, c.raw);
  t.equal(Buffer.from(c.raw.subarray(0, 4)).toString(), 'M6CT');
});

void t.test('verification verdicts', async (t) => {
  const c = cert(ca, { ...spec, notBefore: SEC, notAfter: SEC + 100 });
  t.equal(verifyCertificate(c, ca.publicKey, T0), 'ok');
  t.equal(verifyCertificate(c, ca.publicKey, T0 - 1000), 'certificate-not-yet-valid');
  t.equal(verifyCertificate(c, ca.publicKey, T0 + 100_000), 'expired-certificate');
  t.equal(verifyCertificate(c, authority(0xb1).publicKey, T0), 'bad-certificate');
  t.equal(verifyCertificate(c, ca.publicKey, T0, ['ha']), 'wrong-role');
  for (const pos of [5, 10, 30, 58, c.raw.length - 1]) {
    const raw = c.raw.slice();
    raw[pos] = raw[pos]! ^ 0x02;
    let verdict: string;
    try {
      verdict = verifyCertificate(decodeCertificate(raw), ca.publicKey, T0);
    } catch (err) {
      verdict = err instanceof CryptoError ? err.code : 'other';
    }
    t.ok(['bad-certificate', 'ERR_BAD_CERTIFICATE'].includes(verdict), `tampered byte ${pos}`);
  }
  t.throws(() => decodeCertificate(c.raw.subarray(0, 50)), { code: 'ERR_BAD_CERTIFICATE' });
  t.throws(() => certificateFromText('mip6-certificate-v1 !!!'), { code: 'ERR_BAD_CERTIFICATE' });
});

void t.test('IPv6 text forms', async (t) => {
  const cases: [string, string][] = [
    ['2001:db8::1', '2001:db8::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['fe80::', 'fe80::'],
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'], // RFC 5952 §5: IPv4-mapped in mixed notation
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
  ];
  for (const [input, canon] of cases) t.equal(formatIpv6(parseIpv6(input)!), canon, input);
  for (const bad of ['', ':::', '1::2::3', '12345::', '1:2:3:4:5:6:7', 'g::1', '::1.2.3.256']) {
    t.equal(parseIpv6(bad), null, `rejects "${bad}"`);
  }
  t.equal(parseAllowedPrefix('2001:db8::/32')?.prefixLength, 32);
  t.equal(parseAllowedPrefix('2001:db8::1/32'), null, 'host bits set');
  t.equal(parseAllowedPrefix('2001:db8::/129'), null);
});

void t.test('selector check: inner source must be allowed by the certificate', async (t) => {
  const signed = cert(ca, spec);
  // As issued, and as a peer's decoded copy (its prefixes read from its bytes): the same answers.
  const decoded = decodeCertificate(signed.raw.slice());
  const check = (src: string, off = 0) => {
    const p = ipv6Packet(parseIpv6(src)!);
    const buf = new Uint8Array(off + p.length);
    buf.set(p, off);
    const a = sourceAllowed(signed, buf, off, p.length);
    t.equal(sourceAllowed(decoded, buf, off, p.length), a, `decoded agrees for ${src}`);
    return a;
  };
  const c = signed;
  t.equal(check('2001:db8:1::10'), true, 'the HoA');
  t.equal(check('2001:db8:1::10', 16), true, 'at an offset');
  t.equal(check('2001:db8:1::11'), false, 'neighbour of the HoA');
  t.equal(check('fd00:aa:1234::1'), true, 'inside a /32');
  t.equal(check('fd00:ab::1'), false, 'outside the /32');
  t.equal(check('2001:db8:ff:1::1'), true, 'inside a /63');
  t.equal(check('2001:db8:ff:2::1'), false, 'outside the /63');
  const v4ish = ipv6Packet(parseIpv6('2001:db8:1::10')!);
  v4ish[0] = 0x45;
  t.equal(sourceAllowed(c, v4ish, 0), false, 'not IPv6');
  t.equal(sourceAllowed(c, v4ish.subarray(0, 39), 0), false, 'truncated');
});
