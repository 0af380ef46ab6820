/**
 * Fuzz targets: every decoder that sees hostile bytes (issue 9, STYLE.md "Malformed input:
 * dropped and counted, or a WireError/clear error, never a crash").
 *
 *   wire          decodePacket (+ dissectors), decodeMobilityHeader, decodeIcmpv6, decodePcap,
 *                 walkExtensionHeaders: only WireError may escape.
 *   channel       SecureEndpoint.receive / openBatch on initiations (raw, with MAC1 recomputed
 *                 so the bytes reach Noise, and under load so they reach the cookie path),
 *                 responses to a pending handshake (MAC1 recomputed), cookie replies, data
 *                 messages under live keys, and certificates carried inside a correctly
 *                 encrypted initiation: never a throw, every drop counted, a handshake succeeds
 *                 only with the genuine certificate, a cookie reply is never larger than the
 *                 initiation it answers (no amplification).
 *   certificate   decodeCertificate, certificateFromText: only CryptoError; verifyCertificate
 *                 never throws and accepts only the genuine bytes.
 *   config        parseHaConfig, parseMnConfig, parseCnConfig: only ConfigError.
 *
 * Every fixture is deterministic (fixed keys, ephemeral keys, SPIs and times), so the corpus
 * files in test/fuzz/corpus/ stay valid inputs across runs.
 */
import { DataKind } from '../../src/crypto/aead.js';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  certificateFromText,
  certificateToText,
  decodeCertificate,
  verifyCertificate,
} from '../../src/crypto/certificate.js';
import {
  CHANNEL_PROLOGUE,
  OpenResult,
  SecureEndpoint,
  type PeerSession,
  type ReceiveResult,
} from '../../src/crypto/endpoint.js';
import { MACS_LEN, mac1Key, tai64n, writeMacs } from '../../src/crypto/handshake.js';
import { IkInitiator, x25519FromPrivate } from '../../src/crypto/noise.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { parseCnConfig, parseHaConfig, parseMnConfig } from '../../src/config/index.js';
import { ConfigError, CryptoError, WireError } from '../../src/util/errors.js';
import { parseIpv6 } from '../../src/wire/address.js';
import { dissectToJson, dissectToText } from '../../src/wire/dissect.js';
import { walkExtensionHeaders } from '../../src/wire/ext-headers.js';
import { buildDestinationUnreachable, decodeIcmpv6, encodeIcmpv6 } from '../../src/wire/icmpv6.js';
import { encodeMobilityHeader } from '../../src/wire/mobility.js';
import { decodeMobilityHeader } from '../../src/wire/mobility.js';
import { decodePacket, encodeIcmpv6Packet, encodeMobilityPacket } from '../../src/wire/packet.js';
import { decodePcap, encodePcapHeader, encodePcapRecord } from '../../src/wire/pcap.js';
import type { BindingUpdateFlags, MobilityMessage } from '../../src/wire/types.js';
import { authority, cert, fixedBytes, ipv6Packet, memberKey, T0 } from '../helpers/crypto.js';
import type { FuzzTarget } from './engine.js';

export const CORPUS_DIR = fileURLToPath(new URL('./corpus/', import.meta.url));
export const CRASHERS_DIR = fileURLToPath(new URL('./crashers/', import.meta.url));

/** Thrown by a target when its contract is violated. */
export class ContractViolation extends Error {
  override name = 'ContractViolation';
}

function only(allowed: (new (...a: never[]) => Error)[], fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    if (allowed.some((c) => err instanceof c)) return;
    throw err;
  }
}

/** Corpus entries stored on disk for a target, or the generated ones when none are stored. */
export function storedCorpus(name: string, generate: () => Uint8Array[]): Uint8Array[] {
  const dir = join(CORPUS_DIR, name);
  if (existsSync(dir)) {
    const files = readdirSync(dir).filter((f) => f.endsWith('.bin'));
    if (files.length > 0) return files.sort().map((f) => new Uint8Array(readFileSync(join(dir, f))));
  }
  return generate();
}

// ---- wire -------------------------------------------------------------------------------

const HOA = '2001:db8:1::10';
const HA_ADDR = '2001:db8:1::1';
const COA = '2001:db8:ffff::5';
const CN = '2001:db8:2::20';

function flags(over: Partial<BindingUpdateFlags>): BindingUpdateFlags {
  const f = { A: false, H: false, L: false, K: false, M: false, R: false, P: false };
  return { ...f, F: false, T: false, B: false, S: false, D: false, ...over };
}

function sampleMessages(): MobilityMessage[] {
  return [
    {
      kind: 'bindingUpdate',
      sequence: 7,
      flags: flags({ A: true, H: true }),
      lifetimeUnits: 150,
      options: [
        { type: 'alternateCareOfAddress', address: COA },
        { type: 'ipv4CareOfAddress', address: '198.51.100.7' },
      ],
    },
    {
      kind: 'bindingAcknowledgement',
      status: 0,
      flags: { K: false, R: false, P: false, T: false, B: false, S: false, D: false },
      sequence: 7,
      lifetimeUnits: 150,
      options: [
        { type: 'bindingRefreshAdvice', refreshInterval: 120 },
        { type: 'natDetection', udpEncapsulationRequired: false, refreshTime: 110 },
      ],
    },
    {
      kind: 'bindingUpdate',
      sequence: 1,
      flags: flags({}),
      lifetimeUnits: 10,
      options: [
        { type: 'nonceIndices', homeNonceIndex: 3, careOfNonceIndex: 4 },
        { type: 'bindingAuthorizationData', authenticator: fixedBytes(0x5a, 12) },
      ],
    },
    { kind: 'homeTestInit', homeInitCookie: fixedBytes(1, 8), options: [] },
    { kind: 'bindingRefreshRequest', options: [] },
    { kind: 'bindingError', status: 1, homeAddress: HOA, options: [] },
  ];
}

function samplePackets(): Uint8Array[] {
  const msgs = sampleMessages();
  const echo = encodeIcmpv6Packet({
    source: CN,
    destination: HOA,
    message: { kind: 'echoRequest', identifier: 1, sequence: 2, data: fixedBytes(0x61, 16) },
  });
  return [
    encodeMobilityPacket({ source: COA, destination: HA_ADDR, homeAddress: HOA, message: msgs[0]! }),
    encodeMobilityPacket({
      source: HA_ADDR,
      destination: COA,
      routingHomeAddress: HOA,
      message: msgs[1]!,
    }),
    encodeMobilityPacket({ source: HOA, destination: CN, message: msgs[2]! }),
    echo,
    encodeIcmpv6Packet({
      source: COA,
      destination: HA_ADDR,
      homeAddress: HOA,
      message: { kind: 'mobilePrefixSolicitation', identifier: 9 },
    }),
    buildDestinationUnreachable(echo, 3, HA_ADDR)!,
    ipv6Packet(parseIpv6(HOA), 24),
  ];
}

const wireTargets: FuzzTarget[] = [
  {
    name: 'packet',
    description: 'decodePacket (checksums verified and rejected), dissectToText/Json',
    corpus: () => storedCorpus('packet', samplePackets),
    run(input) {
      only([WireError], () => decodePacket(input));
      only([WireError], () => decodePacket(input, { rejectBadChecksum: true }));
      only([WireError], () => dissectToText(input));
      only([WireError], () => dissectToJson(input));
    },
  },
  {
    name: 'mobility',
    description: 'decodeMobilityHeader with and without pseudo-header',
    corpus: () =>
      storedCorpus('mobility', () =>
        sampleMessages().map((m) => encodeMobilityHeader(m, { source: HOA, destination: HA_ADDR })),
      ),
    run(input) {
      only([WireError], () => decodeMobilityHeader(input, { source: HOA, destination: HA_ADDR }));
      only([WireError], () => decodeMobilityHeader(input));
    },
  },
  {
    name: 'icmpv6',
    description: 'decodeIcmpv6 (echo, errors, DHAAD, MPS/MPA with ND options)',
    corpus: () =>
      storedCorpus('icmpv6', () => {
        const pseudo = { source: HA_ADDR, destination: HOA };
        return [
          encodeIcmpv6({ kind: 'echoReply', identifier: 5, sequence: 6, data: fixedBytes(7, 9) }, pseudo),
          encodeIcmpv6({ kind: 'haadReply', identifier: 3, mobileRouter: false, homeAgentAddresses: [HA_ADDR] }, pseudo),
          encodeIcmpv6(
            {
              kind: 'mobilePrefixAdvertisement',
              identifier: 4,
              managed: false,
              other: true,
              options: [
                {
                  type: 'prefixInformation',
                  prefixLength: 64,
                  onLink: true,
                  autonomous: true,
                  routerAddress: true,
                  validLifetime: 3600,
                  preferredLifetime: 1800,
                  prefix: HA_ADDR,
                },
              ],
            },
            pseudo,
          ),
          encodeIcmpv6({ kind: 'packetTooBig', mtu: 1280, invoking: samplePackets()[0]! }, pseudo),
        ];
      }),
    run(input) {
      only([WireError], () => decodeIcmpv6(input, { source: HA_ADDR, destination: HOA }));
      only([WireError], () => decodeIcmpv6(input));
    },
  },
  {
    name: 'pcap',
    description: 'decodePcap (both byte orders, µs and ns magic)',
    corpus: () =>
      storedCorpus('pcap', () => {
        const recs = samplePackets().map((p, i) => encodePcapRecord(p, 1_700_000_000_000_000 + i));
        const whole = new Uint8Array(24 + recs.reduce((n, r) => n + r.length, 0));
        whole.set(encodePcapHeader());
        let o = 24;
        for (const r of recs) {
          whole.set(r, o);
          o += r.length;
        }
        return [whole, encodePcapHeader()];
      }),
    run(input) {
      only([WireError], () => decodePcap(input));
    },
  },
  {
    name: 'ext-headers',
    description: 'walkExtensionHeaders (first byte = next header, rest = the chain)',
    corpus: () =>
      storedCorpus('ext-headers', () =>
        samplePackets()
          .filter((p) => p[6] === 43 || p[6] === 60)
          .map((p) => {
            const b = new Uint8Array(p.length - 39);
            b[0] = p[6]!;
            b.set(p.subarray(40), 1);
            return b;
          }),
      ),
    run(input) {
      if (input.length === 0) return;
      only([WireError], () => walkExtensionHeaders(input, 1, input[0]!, input.length));
    },
  },
];

// ---- channel ----------------------------------------------------------------------------

interface Fixture {
  haPub: Uint8Array;
  mnPub: Uint8Array;
  mnCertRaw: Uint8Array;
  freshHa(): SecureEndpoint;
  freshMn(): SecureEndpoint;
}

function makeFixture(): Fixture {
  const ca = authority(0xa0);
  const haKey = memberKey(0x11);
  const mnKey = memberKey(0x22);
  const haCert = cert(ca, { name: 'ha', role: 'ha', key: haKey, addresses: ['2001:db8:1::/64'] });
  const mnCert = cert(ca, { name: 'laptop', role: 'mn', key: mnKey, addresses: [HOA] });
  const hooks = (ephemeralByte: number, spiBase: number) => {
    let spi = spiBase;
    return {
      ephemeral: () => x25519FromPrivate(fixedBytes(ephemeralByte)),
      spi: () => spi++,
      wallClock: () => T0, // the certificates' time; the initiation's timestamp
    };
  };
  return {
    haPub: haKey.publicKey,
    mnPub: mnKey.publicKey,
    mnCertRaw: mnCert.raw,
    freshHa: () =>
      new SecureEndpoint({
        staticKey: haKey,
        certificate: haCert,
        authorityPublicKey: ca.publicKey,
        allowedPeerRoles: ['mn', 'cn'],
        ...hooks(0x33, 0x1000),
      }),
    freshMn: () =>
      new SecureEndpoint({
        staticKey: mnKey,
        certificate: mnCert,
        authorityPublicKey: ca.publicKey,
        allowedPeerRoles: ['ha'],
        ...hooks(0x44, 0x2000),
      }),
  };
}

function totalDrops(e: SecureEndpoint): number {
  let n = 0;
  for (const v of Object.values(e.drops)) n += v;
  return n;
}

/** receive() must not throw; a drop must be counted exactly once. */
function receiveChecked(
  e: SecureEndpoint,
  datagram: Uint8Array,
  now: number,
  underLoad?: boolean,
): ReceiveResult {
  const before = totalDrops(e);
  const r = e.receive(datagram, now, underLoad, '198.51.100.7:4191');
  const counted = totalDrops(e) - before;
  if (r.kind === 'drop' && counted !== 1) {
    throw new ContractViolation(`drop ${r.reason} counted ${counted} times`);
  }
  if (r.kind !== 'drop' && r.kind !== 'reply' && counted !== 0) {
    throw new ContractViolation(`${r.kind} result but ${counted} drops counted`);
  }
  return r;
}

function withMac1(input: Uint8Array, receiverPub: Uint8Array): Uint8Array | null {
  if (input.length < 8 + MACS_LEN) return null;
  const b = input.slice();
  writeMacs(b, mac1Key(receiverPub), null);
  return b;
}

function channelTargets(): FuzzTarget[] {
  const fx = makeFixture();
  // The genuine exchange every corpus entry comes from.
  const mn = fx.freshMn();
  const ha = fx.freshHa();
  const initiation = mn.connect(fx.haPub, T0);
  const est = ha.receive(initiation.slice(), T0, false, 'x');
  if (est.kind !== 'established' || est.reply === undefined) throw new Error('fixture handshake');
  const response = est.reply;
  const cookieReply = fx.freshHa().receive(initiation.slice(), T0, true, 'x');
  if (cookieReply.kind !== 'reply') throw new Error('fixture cookie');
  const mnDone = mn.receive(response.slice(), T0);
  if (mnDone.kind !== 'established') throw new Error('fixture response');
  const mnSession: PeerSession = mnDone.session;
  const dataMessages: Uint8Array[] = [];
  for (const len of [0, 8, 64, 200]) {
    const sealed = mn.seal(mnSession, ipv6Packet(parseIpv6(HOA), len), T0, DataKind.PAYLOAD);
    if (sealed === null) throw new Error('fixture seal');
    dataMessages.push(sealed);
  }
  // The HA keeps this live session for the data target (the first message confirms its keys);
  // every genuine message is delivered once, so any later copy is a replay.
  for (const m of dataMessages) {
    if (ha.receive(m.slice(), T0).kind !== 'data') throw new Error('fixture data');
  }
  let now = T0 + 1;

  return [
    {
      name: 'channel-initiation',
      description: 'initiations: raw, MAC1 recomputed (reaches Noise), under load (cookie path)',
      corpus: () => storedCorpus('channel-initiation', () => [initiation]),
      run(input) {
        receiveChecked(fx.freshHa(), input.slice(), T0);
        const fixed = withMac1(input, fx.haPub);
        if (fixed === null) return;
        const r = receiveChecked(fx.freshHa(), fixed.slice(), T0);
        if (r.kind === 'established' && fixed.length !== initiation.length) {
          throw new ContractViolation('a resized initiation established a session');
        }
        const loaded = receiveChecked(fx.freshHa(), fixed.slice(), T0, true);
        if (loaded.kind === 'reply' && loaded.data.length > fixed.length) {
          throw new ContractViolation(
            `cookie reply of ${loaded.data.length} bytes to a ${fixed.length}-byte initiation`,
          );
        }
        if (loaded.kind === 'established') {
          throw new ContractViolation('handshake completed under load without MAC2');
        }
      },
    },
    {
      name: 'channel-response',
      description: 'responses to a pending handshake (MAC1 recomputed)',
      corpus: () => storedCorpus('channel-response', () => [response]),
      run(input) {
        const m = fx.freshMn();
        m.connect(fx.haPub, T0);
        receiveChecked(m, input.slice(), T0);
        const fixed = withMac1(input, fx.mnPub);
        if (fixed === null) return;
        const m2 = fx.freshMn();
        m2.connect(fx.haPub, T0);
        receiveChecked(m2, fixed, T0);
      },
    },
    {
      name: 'channel-cookie',
      description: 'cookie replies to a pending handshake',
      corpus: () => storedCorpus('channel-cookie', () => [cookieReply.data]),
      run(input) {
        const m = fx.freshMn();
        m.connect(fx.haPub, T0);
        receiveChecked(m, input.slice(), T0);
        m.poll(T0 + 1); // a retransmission with whatever cookie was accepted must not throw
      },
    },
    {
      name: 'channel-data',
      description: 'data messages under live keys: receive() and openBatch()',
      corpus: () => storedCorpus('channel-data', () => dataMessages),
      run(input) {
        now++;
        receiveChecked(ha, input.slice(), now);
        // openBatch: the input between two genuine (replayed) messages, decrypted in place.
        const parts = [dataMessages[1]!, input, dataMessages[2]!];
        const total = parts.reduce((n, p) => n + p.length, 0);
        const buf = new Uint8Array(total);
        const offsets = new Uint32Array(3);
        const lengths = new Uint32Array(3);
        let o = 0;
        parts.forEach((p, i) => {
          buf.set(p, o);
          offsets[i] = o;
          lengths[i] = p.length;
          o += p.length;
        });
        const out = { results: new Uint8Array(3), sessions: [] as (PeerSession | undefined)[] };
        const before = totalDrops(ha);
        ha.openBatch(buf, offsets, lengths, 3, now, out);
        const dropped = [...out.results].filter((r) => r === OpenResult.DROPPED).length;
        if (totalDrops(ha) - before !== dropped) {
          throw new ContractViolation(`${dropped} dropped but ${totalDrops(ha) - before} counted`);
        }
        if (out.results[0] !== OpenResult.DROPPED || out.results[2] !== OpenResult.DROPPED) {
          throw new ContractViolation('a replayed data message was accepted');
        }
      },
    },
    {
      name: 'channel-certificate',
      description: 'certificates inside a correctly encrypted initiation',
      corpus: () => storedCorpus('channel-certificate', () => [fx.mnCertRaw]),
      run(input) {
        const init = new IkInitiator(memberKey(0x22), fx.haPub, CHANNEL_PROLOGUE);
        const payload = new Uint8Array(12 + input.length);
        payload.set(tai64n(T0));
        payload.set(input, 12);
        const noise = init.writeMessageA(payload);
        const msg = new Uint8Array(8 + noise.length + MACS_LEN);
        msg[0] = 1;
        msg[7] = 9;
        msg.set(noise, 8);
        writeMacs(msg, mac1Key(fx.haPub), null);
        const r = receiveChecked(fx.freshHa(), msg, T0, false);
        init.wipe();
        const genuine = Buffer.from(input).equals(Buffer.from(fx.mnCertRaw));
        if ((r.kind === 'established') !== genuine) {
          throw new ContractViolation(
            `certificate ${genuine ? 'genuine' : 'forged'} but result ${r.kind}`,
          );
        }
      },
    },
  ];
}

// ---- certificates and configuration ------------------------------------------------------

function certificateTargets(): FuzzTarget[] {
  const ca = authority(0xa0);
  const mnCert = cert(ca, {
    name: 'laptop',
    role: 'mn',
    key: memberKey(0x22),
    addresses: [HOA, '2001:db8:1:2::/64'],
  });
  const haCert = cert(ca, {
    name: 'ha',
    role: 'ha',
    key: memberKey(0x11),
    addresses: ['2001:db8:1::/64'],
  });
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const genuine = [mnCert.raw, haCert.raw].map((b) => Buffer.from(b));
  return [
    {
      name: 'certificate',
      description: 'decodeCertificate + verifyCertificate (only the genuine bytes verify)',
      corpus: () => storedCorpus('certificate', () => [mnCert.raw, haCert.raw]),
      run(input) {
        let c;
        try {
          c = decodeCertificate(input);
        } catch (err) {
          if (err instanceof CryptoError) return;
          throw err;
        }
        const v = verifyCertificate(c, ca.publicKey, T0);
        const isGenuine = genuine.some((g) => g.equals(Buffer.from(input)));
        if ((v === 'ok') !== isGenuine) {
          throw new ContractViolation(`verdict ${v} for ${isGenuine ? 'genuine' : 'forged'} bytes`);
        }
      },
    },
    {
      name: 'certificate-text',
      description: 'certificateFromText (comments, tag, base64)',
      corpus: () =>
        storedCorpus('certificate-text', () => [
          enc.encode(certificateToText(mnCert, ['member laptop', 'issued by the test authority'])),
          enc.encode(certificateToText(haCert)),
        ]),
      run(input) {
        only([CryptoError], () => certificateFromText(dec.decode(input)));
      },
    },
  ];
}

const HA_TOML = `# home agent
control_socket = "/run/mip6/ha.sock"
pcap = "inner.pcap"
[identity]
private_key = "keys/ha.key"
certificate = "keys/ha.cert"
authority = "/etc/mip6/authority.pub"
[tun]
name = "mip6%d"
underlay_mtu = 1500
mtu = 1400
[log]
level = "debug"
format = "json"
[listen]
address4 = "198.51.100.1"
address6 = "2001:db8:ff::1"
port = 4191
[home]
prefix = "2001:db8:100::/64"
address = "2001:db8:100::fe"
max_lifetime = 1000
refresh_advice = 300
nat_keepalive = 20
link = "br0"
`;

const MN_TOML = `control_socket = "/run/mip6/mn.sock"
[identity]
private_key = "keys/mn.key"
certificate = "keys/mn.cert"
authority = "/etc/mip6/authority.pub"
[tun]
mtu = 1400
[home]
address = "2001:db8:100::10"
prefix_length = 64
agent = ["198.51.100.1", "2001:db8:ff::1", "ha.example.net"]
agent_address = "2001:db8:100::fe"
agent_public_key = "keys/ha.pub"
agent_port = 4191
lifetime = 600
first_registration_timeout = 5
[underlay]
prefer = "ipv4"
port = 0
interfaces = ["eth0", "wlan0"]
[movement]
netlink = true
probe_interval = 10
`;

function configTargets(): FuzzTarget[] {
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  return [
    {
      name: 'config',
      description: 'parseHaConfig / parseMnConfig / parseCnConfig on mutated TOML',
      corpus: () => storedCorpus('config', () => [enc.encode(HA_TOML), enc.encode(MN_TOML)]),
      run(input) {
        const text = dec.decode(input);
        only([ConfigError], () => parseHaConfig(text, 'fuzz/ha.toml'));
        only([ConfigError], () => parseMnConfig(text, 'fuzz/mn.toml'));
        only([ConfigError], () => parseCnConfig(text, 'fuzz/cn.toml'));
      },
    },
  ];
}

/** Every target (libsodium initialised first). */
export async function loadTargets(): Promise<FuzzTarget[]> {
  await initCrypto();
  return [...wireTargets, ...channelTargets(), ...certificateTargets(), ...configTargets()];
}
