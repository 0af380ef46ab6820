/**
 * Return-routability packets as a member (or an attacker holding valid tokens) builds them by
 * hand, and deterministic RR crypto, for the tests of the correspondent's checks: HoTI/CoTI padded to the answer's size,
 * and a Binding Update signed with Kbm (RFC 6275 §5.2.5, §6.1.7) with or without a HAO.
 */
import { nodeRrCrypto, type RrCrypto } from '../../src/crypto/rr-crypto.js';
import { RR_INIT_PADDING } from '../../src/protocol/correspondent-registration.js';
import { bindingManagementKey, signMobilityHeader } from '../../src/protocol/return-routability.js';
import { encodeMobilityHeader } from '../../src/wire/mobility.js';
import { encodePacket } from '../../src/wire/packet.js';
import {
  IPPROTO,
  bindingUpdateFlags,
  type CareOfTest,
  type HomeTest,
  type MobilityOption,
} from '../../src/wire/types.js';

/** Real hashes, deterministic "random" bytes (Kcn, cookies, nonces, sequence numbers). */
export function testRrCrypto(seed = 7): RrCrypto {
  let x = seed;
  return {
    hmacSha1: nodeRrCrypto.hmacSha1,
    sha1: nodeRrCrypto.sha1,
    random(n) {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        out[i] = x >>> 24;
      }
      return out;
    },
  };
}

/** The keygen tokens and nonce indices of one HoT and one CoT. */
export interface RrTokens {
  homeToken: Uint8Array;
  homeIndex: number;
  careOfToken: Uint8Array;
  careOfIndex: number;
}

export function rrTokens(hot: HomeTest, cot: CareOfTest): RrTokens {
  return {
    homeToken: hot.homeKeygenToken,
    homeIndex: hot.homeNonceIndex,
    careOfToken: cot.careOfKeygenToken,
    careOfIndex: cot.careOfNonceIndex,
  };
}

/** A HoTI (from the home address) or CoTI (from the care-of address) to `correspondent`. */
export function rrInit(
  kind: 'homeTestInit' | 'careOfTestInit',
  source: string,
  correspondent: string,
  cookie: Uint8Array = new Uint8Array(8).fill(kind === 'homeTestInit' ? 1 : 2),
): Uint8Array {
  return encodePacket({ source, destination: correspondent }, IPPROTO.MH, (ps) =>
    encodeMobilityHeader(
      kind === 'homeTestInit'
        ? { kind, homeInitCookie: cookie, options: [RR_INIT_PADDING] }
        : { kind, careOfInitCookie: cookie, options: [RR_INIT_PADDING] },
      ps,
    ),
  );
}

/**
 * A correspondent BU authorised by `tokens`: from `source`, with a HAO when `hao` is given
 * and an Alternate CoA option when `altCareOf` is; a deregistration (lifetime 0, or CoA ==
 * HoA) is signed with the home token alone.
 */
export function signedCorrespondentBu(
  tokens: RrTokens,
  correspondent: string,
  sequence: number,
  opts: { source: string; hao?: string; altCareOf?: string; lifetimeUnits?: number },
): Uint8Array {
  const careOf = opts.altCareOf ?? opts.source;
  const dereg = opts.lifetimeUnits === 0 || careOf === (opts.hao ?? opts.source);
  const kbm = bindingManagementKey(
    nodeRrCrypto,
    tokens.homeToken,
    dereg ? undefined : tokens.careOfToken,
  );
  const options: MobilityOption[] = [];
  if (opts.altCareOf !== undefined) {
    options.push({ type: 'alternateCareOfAddress', address: opts.altCareOf });
  }
  options.push(
    {
      type: 'nonceIndices',
      homeNonceIndex: tokens.homeIndex,
      careOfNonceIndex: tokens.careOfIndex,
    },
    { type: 'bindingAuthorizationData', authenticator: new Uint8Array(12) },
  );
  return encodePacket(
    {
      source: opts.source,
      destination: correspondent,
      ...(opts.hao !== undefined ? { homeAddress: opts.hao } : {}),
    },
    IPPROTO.MH,
    (pseudo) => {
      const mh = encodeMobilityHeader(
        {
          kind: 'bindingUpdate',
          sequence,
          flags: bindingUpdateFlags({ A: true, H: false }),
          lifetimeUnits: opts.lifetimeUnits ?? 100,
          options,
        },
        pseudo,
      );
      signMobilityHeader(nodeRrCrypto, kbm, mh, careOf, correspondent, pseudo);
      return mh;
    },
  );
}
