/**
 * Loads the native addon and types its functions. Only files in src/io call it. In a git
 * checkout node-gyp builds it from binding.gyp (`npm ci` runs it as "prepare"): build/Release;
 * the npm package ships it prebuilt per platform and CPU (prebuilds/<platform>-<arch>/, made by
 * `npm pack`), so installing it needs no compiler and runs no install script.
 */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IoError } from '../util/errors.js';

/** Opaque handle owned by the addon. */
export type NativeHandle = { readonly __native: unique symbol };

/** Batch callback: (count, offsets, lengths); the JS side already holds the slab. */
export type NativeBatchCallback = (
  count: number,
  offsets: Uint32Array,
  lengths: Uint32Array,
) => void;

export interface NativeAddon {
  tunOpen(
    name: string,
    slab: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    counters: Float64Array,
    maxBatch: number,
    slotSize: number,
    headroom: number,
    tailroom: number,
    cb: NativeBatchCallback,
  ): [NativeHandle, string];
  tunSetReading(h: NativeHandle, on: boolean): void;
  tunWrite(
    h: NativeHandle,
    buf: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
  ): number;
  tunClose(h: NativeHandle): void;
  /** Offloads accepted (native/tun_linux.c: 1 vnet header, 2 CSUM, 4/8 TSO4/6, 16/32 USO4/6, 64 env). */
  tunOffloads?(h: NativeHandle): number;
  /**
   * Test surface of native/vnet.c: a virtio-net header + packet in, the packets it becomes at
   * out[i * slotSize]; returns their count, or minus the drop reason (1 type, 2 checksum,
   * 3 headers, 4 gso size, 5 too big).
   */
  vnetSplit?(
    input: Uint8Array,
    out: Uint8Array,
    slotSize: number,
    offsets: Uint32Array,
    lengths: Uint32Array,
  ): number;
  /**
   * Test surface of native/vnet.c's write coalescing: how many of the packets, from the first,
   * form one TCP run (1 = none); for >= 2, `out` gets the GSO header then the merged headers.
   * families: 1 IPv4, 2 IPv6.
   */
  vnetCoalesce?(
    buf: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    families: number,
    out: Uint8Array,
  ): number;
  udpOpen(
    family: 4 | 6,
    bindAddr: Uint8Array,
    port: number,
    slab: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    remoteAddrs: Uint8Array,
    remotePorts: Uint16Array,
    localAddrs: Uint8Array,
    counters: Float64Array,
    maxBatch: number,
    slotSize: number,
    headroom: number,
    rcvBuf: number,
    sndBuf: number,
    cb: NativeBatchCallback,
    /** Per slot: the interface each datagram arrived on; and its IPv6 hop limit (0 unknown). */
    ifindexes?: Uint32Array,
    hopLimits?: Uint8Array,
  ): [NativeHandle, number];
  udpSetReading(h: NativeHandle, on: boolean): void;
  udpSend(
    h: NativeHandle,
    buf: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    dstAddrs: Uint8Array,
    dstPorts: Uint16Array,
    srcAddrs: Uint8Array | null,
    /** IPv6: non-zero = out of that interface only, hop limit 255 (native/udp.c). */
    ifindexes?: Uint32Array | null,
  ): number;
  /** SO_MARK on the socket (CAP_NET_ADMIN); optional: an addon built before it lacks it. */
  udpSetMark?(h: NativeHandle, mark: number): void;
  /** Moves up to out.length / 40 queued MTU reports into `out` (native/udp.c layout). */
  udpTakeMtuReports?(h: NativeHandle, out: Uint8Array): number;
  /** Offloads in use (native/udp.c: 1 GSO, 2 GRO, 4 GSO refused, errno << 8, 8 env). */
  udpOffloads?(h: NativeHandle): number;
  udpClose(h: NativeHandle): void;
  /** The express lane (native/express.c); optional: an addon built before it lacks it. */
  expressOpen?(
    mode: number,
    tun: NativeHandle,
    udp4: NativeHandle | null,
    udp6: NativeHandle | null,
    capacity: number,
    homeAddress: Uint8Array | null,
  ): NativeHandle;
  expressArm?(
    h: NativeHandle,
    spi: number,
    remoteSpi: number,
    keyChunk: Uint8Array,
    keyBase: number,
    replayChunk: Uint32Array,
    replayBase: number,
    replayWords: number,
    family: number,
    peer: Uint8Array,
    port: number,
    local: Uint8Array | null,
    rx: number,
    rxForMs: number,
    rxLimit: number,
    sources: Uint8Array | null,
    tx: number,
    txForMs: number,
    txLimit: number,
    maxInner: number,
    destinations: Uint8Array | null,
  ): number;
  expressClear?(h: NativeHandle, out: Float64Array): number;
  expressHarvest?(h: NativeHandle, out: Float64Array): number;
  expressCounters?(h: NativeHandle, out: Float64Array): void;
  expressClose?(h: NativeHandle): void;
  aeadSealBatch(
    key: Uint8Array,
    buf: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
  ): void;
  aeadOpenBatch(
    key: Uint8Array,
    buf: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    results: Uint8Array,
  ): void;
  /**
   * `ip route get` over rtnetlink (native/netlink_linux.c): [route type, output interface,
   * preferred source address], or null when there is no route. Linux only.
   */
  routeGet?(family: 4 | 6, dst: Uint8Array, mark?: number): [number, string, string] | null;
  /**
   * Host routes and proxy-neighbour entries over rtnetlink, `count` ops of 24 bytes in `ops`
   * (native/netlink_linux.c: kind, family, ifindex, address), every one acknowledged: sets
   * results[i] to 0 or -errno and resolves with the microseconds the batch took on its own
   * thread. count 0 only checks that the netlink socket opens (throws otherwise). Linux only.
   */
  rtnlBatch?(ops: Uint8Array, count: number, results: Int32Array): Promise<number>;
  /** Unsolicited Neighbor Advertisement (Override) for `target` out of `ifname` (Linux). */
  ndpAdvertise?(ifname: string, target: Uint8Array): void;
  /**
   * Neighbor Solicitations for `target` out of `ifname` every 100 ms until a Neighbor
   * Advertisement for it arrives there (true) or timeoutMs passes (false); on a thread of its own
   * (native/ndisc_linux.c).
   */
  ndpSolicit?(ifname: string, target: Uint8Array, timeoutMs: number): Promise<boolean>;
  /**
   * The home agent's userspace ND proxy on `ifname` (native/ndproxy_linux.c): answers Neighbor
   * Solicitations for the addresses in its set in C on node's loop; `cb` is never called (the
   * poller's batch slot). Throws (code = errno name) when the link or socket does not allow it.
   */
  ndproxyOpen?(ifname: string, cb: () => void): NativeHandle;
  /** Adds `count` 16-byte addresses from `addrs`; returns how many were not there yet. */
  ndproxyAdd?(h: NativeHandle, addrs: Uint8Array, count: number): number;
  /** Deletes `count` 16-byte addresses; returns how many were there. */
  ndproxyDelete?(h: NativeHandle, addrs: Uint8Array, count: number): number;
  /** Fills `out` with the counters, in NDPROXY_COUNTER_NAMES order (src/io/ndproxy.ts). */
  ndproxyCounters?(h: NativeHandle, out: Float64Array): void;
  /**
   * Duplicate Address Detection on the proxy's socket (RFC 4862 §5.4.2): each of the `count`
   * addresses joins the set under DAD and one probe (NS from ::) is sent for it; out[i] = 1
   * where that send failed. Returns the number of failed sends.
   */
  ndproxyProbeStart?(h: NativeHandle, addrs: Uint8Array, count: number, out: Uint8Array): number;
  /**
   * Ends DAD for `count` addresses after reading what has arrived: out[i] = flags (1 probed,
   * 2 duplicate seen, 4 send failed; 0 not under DAD). Returns the number of duplicates.
   */
  ndproxyProbeEnd?(h: NativeHandle, addrs: Uint8Array, count: number, out: Uint8Array): number;
  ndproxyClose?(h: NativeHandle): void;
  /**
   * Switches to uid/gid keeping only the capabilities in `keep` (effective, permitted,
   * inheritable, ambient and bounding sets), then sets no_new_privs (native/privileges_linux.c).
   */
  privDrop?(uid: number, gid: number, keep: number[]): void;
}

/** The package (or repository) root: src/io and dist/io are two levels below it. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The platforms prebuilt addons exist for (`npm pack` builds them: scripts/prepack.mjs). */
const PREBUILDS = join(ROOT, 'prebuilds');

/**
 * Where the addon may be, in order: a build from source (node-gyp rebuild: build/Release, also
 * from an older dist/src/io layout), then the prebuilt one for this platform and CPU that the
 * npm package ships (prebuilds/<platform>-<arch>/mip6.node).
 */
export function addonCandidates(
  platform: string = process.platform,
  arch: string = process.arch,
): string[] {
  return [
    join(ROOT, 'build', 'Release', 'mip6.node'),
    fileURLToPath(new URL('../../../build/Release/mip6.node', import.meta.url)),
    join(PREBUILDS, `${platform}-${arch}`, 'mip6.node'),
  ];
}

/** One line saying which addon is missing for this platform and what to do about it. */
export function missingAddonMessage(
  platform: string = process.platform,
  arch: string = process.arch,
  shipped: readonly string[] = prebuiltTargets(),
): string {
  const target = `${platform}-${arch}`;
  const have = shipped.length > 0 ? shipped.join(', ') : 'none';
  if (platform !== 'linux') {
    return (
      `no native addon for ${target}: mip6 runs on Linux only (TUN, netlink); ` +
      `prebuilt addons in this package: ${have}`
    );
  }
  return (
    `no native addon for ${target}: this package ships prebuilt ones for ${have} ` +
    `(${PREBUILDS}); build one from source in ${ROOT} with \`npx node-gyp rebuild\` ` +
    '(needs python3, make and a C compiler)'
  );
}

function prebuiltTargets(): string[] {
  try {
    return readdirSync(PREBUILDS)
      .filter((d) => existsSync(join(PREBUILDS, d, 'mip6.node')))
      .sort();
  } catch {
    return [];
  }
}

let cached: NativeAddon | undefined;

/** The addon, loaded once. Throws IoError ERR_ADDON_MISSING (one line: what, for which
 *  platform, how to get it) when there is none for this platform. */
export function loadAddon(): NativeAddon {
  if (cached) return cached;
  const path = addonCandidates().find((p) => existsSync(p));
  if (path === undefined) throw new IoError('ERR_ADDON_MISSING', missingAddonMessage());
  const require = createRequire(import.meta.url);
  try {
    // The module object N-API fills is a dictionary-mode object in V8: every call through it
    // (a TUN write, a UDP send, an AEAD batch: several per packet) was a hash lookup in a
    // generic load stub. A copy made by spread has fast properties (issue #16).
    cached = { ...(require(path) as NativeAddon) };
  } catch (err) {
    const first = (err as Error).message.split('\n')[0] ?? '';
    throw new IoError(
      'ERR_ADDON_LOAD',
      `cannot load the native addon ${path}: ${first}; rebuild it from source with ` +
        `\`npx node-gyp rebuild\` in ${ROOT}`,
    );
  }
  return cached;
}

/** Errors thrown by the addon carry a Node-style code/errno/syscall. */
export interface NativeError extends Error {
  code?: string;
  errno?: number;
  syscall?: string;
}
