// `mip6 decode`: text and JSON dissection of hex and pcap input, WireError code + offset on
// malformed input, non-zero exit, never a stack trace.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runDecode } from '../../src/cli/decode.js';
import { encodePcapHeader, encodePcapRecord } from '../../src/wire/pcap.js';
import { fromHex } from '../../src/wire/hex.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
// Scapy 2.5.0: raw(IPv6(src='2001:db8:2::100', dst='2001:db8:1::1')/IPv6ExtHdrDestOpt(options=[HAO(hoa='2001:db8:1::100')])
//   /MIP6MH_BU(seq=7, flags=0b1101000, mhtime=150, options=[MIP6OptAltCoA(acoa='2001:db8:2::100')])).hex()
const BU =
  '6000000000383c4020010db800020000000000000000010020010db8000100000000000000000001870201020000c91020010db80001000000000000000001003b0305005f770007d00000960100031020010db8000200000000000000000100';
// raw(IPv6(src='2001:db8:1::100', dst='2001:db8:3::1')/MIP6MH_HoTI(cookie=b'\x01\x02\x03\x04\x05\x06\x07\x08')).hex()
const HOTI =
  '600000000010874020010db800010000000000000000010020010db80003000000000000000000013b01010056dc00000102030405060708';

async function capture(
  fn: () => Promise<number>,
): Promise<{ out: string; err: string; failures: number }> {
  let out = '';
  let err = '';
  const o = process.stdout.write.bind(process.stdout);
  const e = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    const failures = await fn();
    return { out, err, failures };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
}

void t.test('text output for hex arguments', async (t) => {
  const r = await capture(() => runDecode([BU, HOTI], {}));
  t.equal(r.failures, 0);
  t.match(r.out, /packet 1 \(96 bytes\)/);
  t.match(r.out, /Internet Protocol Version 6, Src: 2001:db8:2::100, Dst: 2001:db8:1::1/);
  t.match(r.out, /Mobile IPv6, Binding Update \(MH Type 5\)/);
  t.match(r.out, /Sequence: 7/);
  t.match(r.out, /Lifetime: 600/);
  t.match(r.out, /Home Init Cookie: 0102030405060708/);
  t.match(r.out, /Checksum Status: Good/);
});

void t.test('--json: one object per packet with RFC field names', async (t) => {
  const r = await capture(() => runDecode([BU], { json: true }));
  const j = JSON.parse(r.out) as Record<string, Record<string, unknown>>;
  t.equal(j['homeAddress'] as unknown, '2001:db8:1::100');
  t.equal(j['checksumValid'] as unknown, true);
  t.equal(j['mobility']?.['sequence'], 7);
  t.equal(j['mobility']?.['lifetime'], 600);
  t.equal(j['mobility']?.['careOfAddress'], '2001:db8:2::100');
  t.same(j['mobility']?.['options'], [
    { type: 'padN', length: 0 },
    { type: 'alternateCareOfAddress', address: '2001:db8:2::100' },
  ]);
});

void t.test('--pcap file; malformed records report code and offset', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), `mip6-decode-${process.pid}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'x.pcap');
  const bad = fromHex(BU).slice(0, 60);
  writeFileSync(
    file,
    Buffer.concat([
      encodePcapHeader(),
      encodePcapRecord(fromHex(HOTI), 1),
      encodePcapRecord(bad, 2),
    ]),
  );
  const r = await capture(() => runDecode([], { pcap: file, json: true }));
  t.equal(r.failures, 1);
  const lines = r.out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, Record<string, unknown>>);
  t.equal(lines[0]?.['mobility']?.['kind'], 'homeTestInit');
  t.same(lines[1]?.['error'], {
    code: 'ERR_TRUNCATED',
    offset: 60,
    message: lines[1]?.['error']?.['message'],
  });
  t.match(r.err, /packet 2: ERR_TRUNCATED at byte offset 60/);
  const eth = join(dir, 'eth.pcap');
  writeFileSync(eth, Buffer.concat([encodePcapHeader(1)]));
  await t.rejects(runDecode([], { pcap: eth }), { code: 'ERR_UNSUPPORTED' });
  await t.rejects(runDecode([], { pcap: join(dir, 'missing.pcap') }), { code: 'ERR_READ' });
  const hexBad = await capture(() => runDecode(['60zz'], {}));
  t.equal(hexBad.failures, 1);
  t.match(hexBad.err, /ERR_BAD_VALUE at byte offset 1/);
});

void t.test('the real CLI: stdin input, exit status, no stack trace', async (t) => {
  const tsx = join(root, 'node_modules', '.bin', 'tsx');
  const main = join(root, 'src', 'cli', 'main.ts');
  const ok = spawnSync(tsx, [main, 'decode', '--json'], {
    input: `# comment\n${HOTI}\n\n`,
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.equal(ok.status, 0, ok.stderr);
  t.match(ok.stdout, /"kind":"homeTestInit"/);
  const bad = spawnSync(tsx, [main, 'decode', `${BU.slice(0, 100)}ff`], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.equal(bad.status, 1);
  t.match(bad.stderr, /ERR_TRUNCATED at byte offset \d+/);
  t.notMatch(bad.stderr, /\n\s+at /, 'no stack trace');
});

void t.test('every ICMPv6 message shows its Type and Code numbers, text and JSON', async (t) => {
  const { encodeIcmpv6Packet } = await import('../../src/wire/packet.js');
  const { dissectToJson, dissectToText } = await import('../../src/wire/dissect.js');
  const ip = { source: '2001:db8:1::1', destination: '2001:db8:1::2' };
  const invoking = new Uint8Array(48);
  invoking[0] = 0x60;
  const cases: [Parameters<typeof encodeIcmpv6Packet>[0]['message'], number, number][] = [
    [{ kind: 'echoRequest', identifier: 1, sequence: 2, data: new Uint8Array(4) }, 128, 0],
    [{ kind: 'echoReply', identifier: 1, sequence: 2, data: new Uint8Array(4) }, 129, 0],
    [{ kind: 'destinationUnreachable', code: 3, invoking }, 1, 3],
    [{ kind: 'packetTooBig', mtu: 1280, invoking }, 2, 0],
    [{ kind: 'parameterProblem', code: 2, pointer: 40, invoking }, 4, 2],
    [{ kind: 'haadRequest', identifier: 9, mobileRouter: false }, 144, 0],
    [{ kind: 'haadReply', identifier: 9, mobileRouter: false, homeAgentAddresses: [] }, 145, 0],
    [{ kind: 'mobilePrefixSolicitation', identifier: 9 }, 146, 0],
    [
      {
        kind: 'mobilePrefixAdvertisement',
        identifier: 9,
        managed: false,
        other: false,
        options: [],
      },
      147,
      0,
    ],
  ];
  for (const [message, type, code] of cases) {
    const p = encodeIcmpv6Packet({ ...ip, message });
    const icmp = dissectToJson(p)['icmpv6'] as Record<string, unknown>;
    t.equal(icmp['type'], type, `${message.kind}: JSON type`);
    t.equal(icmp['code'], code, `${message.kind}: JSON code`);
    const text = dissectToText(p);
    t.match(
      text,
      new RegExp(`\\n    Type: ${type}\\n    Code: ${code}\\n`),
      `${message.kind}: text`,
    );
  }
  // A code the decoder does not keep (an Echo Request with Code 5) is shown as on the wire.
  const odd = encodeIcmpv6Packet({
    ...ip,
    message: { kind: 'echoRequest', identifier: 1, sequence: 1, data: new Uint8Array(4) },
  });
  odd[41] = 5;
  t.equal((dissectToJson(odd)['icmpv6'] as Record<string, unknown>)['code'], 5);
});
