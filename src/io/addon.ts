/**
 * Loads the native addon (build/Release/mip6.node, built by node-gyp from binding.gyp during
 * `npm install` / `npm ci`) and types its functions. Only files in src/io call it.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
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
  udpClose(h: NativeHandle): void;
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
  routeGet?(family: 4 | 6, dst: Uint8Array): [number, string, string] | null;
  /** Unsolicited Neighbor Advertisement (Override) for `target` out of `ifname` (Linux). */
  ndpAdvertise?(ifname: string, target: Uint8Array): void;
  /**
   * Neighbor Solicitations for `target` out of `ifname` every 100 ms until a Neighbor
   * Advertisement for it arrives there (true) or timeoutMs passes (false); on a worker thread
   * (native/ndisc_linux.c).
   */
  ndpSolicit?(ifname: string, target: Uint8Array, timeoutMs: number): Promise<boolean>;
  /**
   * Switches to uid/gid keeping only the capabilities in `keep` (effective, permitted,
   * inheritable, ambient and bounding sets), then sets no_new_privs (native/privileges_linux.c).
   */
  privDrop?(uid: number, gid: number, keep: number[]): void;
}

/** Path of the built addon, relative to this file in src/io or dist/src/io. */
function candidates(): string[] {
  return ['../../build/Release/mip6.node', '../../../build/Release/mip6.node'].map((p) =>
    fileURLToPath(new URL(p, import.meta.url)),
  );
}

let cached: NativeAddon | undefined;

/** The addon, loaded once. Throws IoError ERR_ADDON_MISSING with the fix when not built. */
export function loadAddon(): NativeAddon {
  if (cached) return cached;
  const path = candidates().find((p) => existsSync(p));
  if (path === undefined) {
    throw new IoError(
      'ERR_ADDON_MISSING',
      `the native addon is not built (looked for ${candidates()[0]}): run \`npm install\` ` +
        '(or `npx node-gyp rebuild`) in the mip6 directory; it needs python3, make and a C compiler',
    );
  }
  const require = createRequire(import.meta.url);
  try {
    cached = require(path) as NativeAddon;
  } catch (err) {
    throw new IoError(
      'ERR_ADDON_LOAD',
      `cannot load the native addon ${path}: ${(err as Error).message}; rebuild it with \`npx node-gyp rebuild\``,
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
