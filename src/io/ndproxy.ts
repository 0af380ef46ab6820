/**
 * The home agent's Neighbor Discovery proxy on a real home link, through the addon
 * (native/ndproxy_linux.c): a set of addresses it answers Neighbor Solicitations for, in C on
 * node's loop, with no JS per solicitation. Inserts and deletes are synchronous and take
 * microseconds, so a binding's defence is in place before its BA goes out. src/io/home-link.ts
 * uses it instead of the kernel's proxy entries when it opens. The addon also reports the
 * set's solicited-node groups to MLD-snooping switches (MLDv2, native/mld.c): nothing to drive
 * from here, its counters are the `mld*` ones.
 */
import type { NativeAddon, NativeHandle } from './addon.js';
import { writeAddress } from './address-bytes.js';

/** MLD Queries dropped, by reason (native/mld.h, the last of its counters but one). */
const MLD_BAD_QUERY = [
  'mldBadQueryLength',
  'mldBadQueryHopLimit',
  'mldBadQuerySource',
  'mldNoRouterAlert',
  'mldBadQueryChecksum',
  'mldBadQueryHeader',
  'mldBadQueryGroup',
] as const;

/** The addon's counters, in the order ndproxyCounters writes them. */
export const NDPROXY_COUNTER_NAMES = [
  'frames',
  'solicitations',
  'answered',
  'answeredDad',
  'notOurs',
  'badLength',
  'badHopLimit',
  'badCode',
  'badChecksum',
  'badOption',
  'multicastTarget',
  'badDad',
  'notSolicitation',
  'sendErrors',
  'badSource',
  'addresses',
  'adverts',
  'badAdvert',
  'probesSent',
  'probeSendErrors',
  'duplicateByAdvert',
  'duplicateBySolicitation',
  'ownProbe',
  'probing',
  'rxDropped',
  'probesDeferred',
  'duplicateDefended',
  // The MLDv2 listener for the defended addresses' solicited-node groups (native/mld.c).
  'mldGroups',
  'mldReportsSent',
  'mldRecordsSent',
  'mldReportSendErrors',
  'mldReportRetries',
  'mldQueries',
  'mldQueriesAnswered',
  'mldQueriesCoalesced',
  'mldQueryNotOurs',
  ...MLD_BAD_QUERY,
  'mldV1ModeEntered',
] as const;

/** Flags ndproxyProbeEnd reports per address (native/ndproxy_linux.c PROBE_*). */
export const PROBE_OPEN = 1;
export const PROBE_DUPLICATE = 2;
export const PROBE_SEND_FAILED = 4;
/** What ndproxyProbeStart reports per address: sent, failed for good, or deferred (the link's
 *  queue was full: not sent, to be started again). */
export const PROBE_OUT_SENT = 0;
export const PROBE_OUT_FAILED = 1;
export const PROBE_OUT_DEFERRED = 2;

/** The counters that are frames dropped, by reason (the rest count work done; `mip6 status`
 *  lists these as drops). */
export const NDPROXY_DROP_REASONS: ReadonlySet<string> = new Set<
  (typeof NDPROXY_COUNTER_NAMES)[number]
>([
  'badLength',
  'badHopLimit',
  'badCode',
  'badChecksum',
  'badOption',
  'multicastTarget',
  'badDad',
  'notSolicitation',
  'badSource',
  'badAdvert',
  'rxDropped',
  ...MLD_BAD_QUERY,
]);

export type NdProxyCounters = Record<(typeof NDPROXY_COUNTER_NAMES)[number], number>;

type NdProxyAddon = Required<
  Pick<
    NativeAddon,
    'ndproxyOpen' | 'ndproxyAdd' | 'ndproxyDelete' | 'ndproxyCounters' | 'ndproxyClose'
  >
> & {
  ndproxyProbeStart: NativeAddon['ndproxyProbeStart'] | undefined;
  ndproxyProbeEnd: NativeAddon['ndproxyProbeEnd'] | undefined;
};

function packed(addresses: readonly string[]): Uint8Array {
  const buf = new Uint8Array(addresses.length * 16);
  addresses.forEach((a, i) => writeAddress(6, a, buf, i * 16));
  return buf;
}

export class NdProxy {
  readonly #addon: NdProxyAddon;
  readonly #handle: NativeHandle;
  readonly #out = new Float64Array(NDPROXY_COUNTER_NAMES.length);
  #closed = false;

  private constructor(addon: NdProxyAddon, handle: NativeHandle) {
    this.#addon = addon;
    this.#handle = handle;
  }

  /**
   * Opens the responder on `link`, or returns a sentence saying why it cannot (an addon
   * without it, a link that is not Ethernet or has no link-local address, no CAP_NET_RAW).
   */
  static open(addon: NativeAddon, link: string): NdProxy | string {
    const { ndproxyOpen, ndproxyAdd, ndproxyDelete, ndproxyCounters, ndproxyClose } = addon;
    if (
      ndproxyOpen === undefined ||
      ndproxyAdd === undefined ||
      ndproxyDelete === undefined ||
      ndproxyCounters === undefined ||
      ndproxyClose === undefined
    ) {
      return 'the native addon has no ndproxy (rebuild it)';
    }
    const bound = {
      ndproxyOpen: ndproxyOpen.bind(addon),
      ndproxyAdd: ndproxyAdd.bind(addon),
      ndproxyDelete: ndproxyDelete.bind(addon),
      ndproxyCounters: ndproxyCounters.bind(addon),
      ndproxyClose: ndproxyClose.bind(addon),
      ndproxyProbeStart: addon.ndproxyProbeStart?.bind(addon),
      ndproxyProbeEnd: addon.ndproxyProbeEnd?.bind(addon),
    };
    try {
      return new NdProxy(
        bound,
        bound.ndproxyOpen(link, () => undefined),
      );
    } catch (err) {
      return `the ND proxy socket does not open on ${link}: ${(err as Error).message}`;
    }
  }

  /** Adds IPv6 addresses (text); returns how many were new (0 once closed). */
  add(addresses: readonly string[]): number {
    if (this.#closed) return 0;
    return this.#addon.ndproxyAdd(this.#handle, packed(addresses), addresses.length);
  }

  /** Deletes IPv6 addresses (text); returns how many were there (0 once closed). */
  delete(addresses: readonly string[]): number {
    if (this.#closed) return 0;
    return this.#addon.ndproxyDelete(this.#handle, packed(addresses), addresses.length);
  }

  /** Whether this addon can run Duplicate Address Detection on the proxy's socket. */
  get canProbe(): boolean {
    return this.#addon.ndproxyProbeStart !== undefined && this.#addon.ndproxyProbeEnd !== undefined;
  }

  /**
   * Starts DAD for `addresses` (one probe each, sent now); returns per address 1 where the
   * send failed. Throws once closed, or when the addon has no probe.
   */
  probeStart(addresses: readonly string[]): Uint8Array {
    const out = new Uint8Array(addresses.length);
    this.#probe('ndproxyProbeStart')(this.#handle, packed(addresses), addresses.length, out);
    return out;
  }

  /** Ends DAD for `addresses`: per address the PROBE_* flags (0: it was not under DAD). */
  probeEnd(addresses: readonly string[]): Uint8Array {
    const out = new Uint8Array(addresses.length);
    this.#probe('ndproxyProbeEnd')(this.#handle, packed(addresses), addresses.length, out);
    return out;
  }

  #probe(name: 'ndproxyProbeStart' | 'ndproxyProbeEnd'): NonNullable<NativeAddon[typeof name]> {
    const f = this.#addon[name];
    if (f === undefined) throw new Error(`the native addon has no ${name} (rebuild it)`);
    return f;
  }

  counters(): NdProxyCounters {
    this.#addon.ndproxyCounters(this.#handle, this.#out);
    const out = {} as NdProxyCounters;
    NDPROXY_COUNTER_NAMES.forEach((name, i) => (out[name] = this.#out[i] ?? 0));
    return out;
  }

  /** Stops answering; the counters stay readable. */
  close(): void {
    this.#closed = true;
    this.#addon.ndproxyClose(this.#handle);
  }
}
