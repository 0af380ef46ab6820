/**
 * Interface configuration through iproute2's `ip` (execFile, never a shell): addresses, MTU,
 * link state and routes. Errors name the exact command and what `ip` said.
 * Linux only; the macOS utun path will get its own file (ifconfig/route) with these names.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { IoError } from '../util/errors.js';

/** Path or name of the iproute2 binary (found on PATH). */
export const IP_BIN = 'ip';

/** An interface name that is safe to put into a /sys/class/net path. */
function sysfsName(name: string): boolean {
  return /^[^/\s]{1,15}$/.test(name) && name !== '.' && name !== '..';
}

/**
 * The interface index of `name` (sysfs, no process: cheap enough to ask per datagram that
 * needs it); 0 when there is no such interface. A link that is re-created gets a new index.
 */
export function interfaceIndex(name: string): number {
  if (!sysfsName(name)) return 0;
  try {
    return Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
}

/**
 * Whether the kernel has finished bringing `name` up (RFC 2863 operational state, sysfs): `up`,
 * or `unknown` for devices that do not track it (TUN, many virtual links). Until the kernel's
 * link watcher has run after a link came up, the device still drops what is sent (its queue is
 * not active yet), so a first packet sent then (an ARP request, a Binding Update) is lost and
 * the next try comes only after the neighbour's retransmit time (1 s). False for `down`,
 * `lowerlayerdown`, `dormant` (e.g. Wi-Fi still authenticating), `notpresent`, `testing`. True
 * when sysfs cannot say (no such file): nothing is held back on a guess.
 */
export function linkOperational(name: string): boolean {
  if (!sysfsName(name)) return true;
  let state: string;
  try {
    state = readFileSync(`/sys/class/net/${name}/operstate`, 'utf8').trim();
  } catch {
    return true;
  }
  return state === 'up' || state === 'unknown' || state === '';
}

/** Runs `ip ...args` and resolves with stdout. Rejects with IoError ERR_IPROUTE. */
export function ip(args: readonly string[], options: { netns?: string } = {}): Promise<string> {
  const argv = options.netns === undefined ? [...args] : ['-n', options.netns, ...args];
  const shown = `${IP_BIN} ${argv.join(' ')}`;
  return new Promise((resolve, reject) => {
    execFile(IP_BIN, argv, { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err === null) {
        resolve(stdout);
        return;
      }
      const e = err as NodeJS.ErrnoException & { killed?: boolean };
      let why: string;
      if (e.code === 'ENOENT') why = 'iproute2 is not installed (apt-get install iproute2)';
      else if (e.killed === true) why = 'timed out after 10 s';
      else why = stderr.trim() || e.message;
      if (/Operation not permitted/i.test(why)) {
        why += ' (needs root or CAP_NET_ADMIN)';
      }
      reject(new IoError('ERR_IPROUTE', `\`${shown}\` failed: ${why}`));
    });
  });
}

/** Adds an address with prefix length, e.g. addAddress('mip6-0', 'fd00::1/64'). */
export async function addAddress(dev: string, cidr: string, netns?: string): Promise<void> {
  const family = cidr.includes(':') ? '-6' : '-4';
  await ip(
    [family, 'addr', 'add', cidr, 'dev', dev, ...(cidr.includes(':') ? ['nodad'] : [])],
    opt(netns),
  );
}

/** Removes an address. */
export async function deleteAddress(dev: string, cidr: string, netns?: string): Promise<void> {
  await ip(['addr', 'del', cidr, 'dev', dev], opt(netns));
}

/** Sets the MTU. */
export async function setMtu(dev: string, mtu: number, netns?: string): Promise<void> {
  await ip(['link', 'set', 'dev', dev, 'mtu', String(mtu)], opt(netns));
}

/** Sets the length of the device's transmit queue (for a TUN: packets waiting for the reader). */
export async function setTxQueueLength(
  dev: string,
  packets: number,
  netns?: string,
): Promise<void> {
  await ip(['link', 'set', 'dev', dev, 'txqueuelen', String(packets)], opt(netns));
}

/** Brings the link up or down. */
export async function setLinkUp(dev: string, up: boolean, netns?: string): Promise<void> {
  await ip(['link', 'set', 'dev', dev, up ? 'up' : 'down'], opt(netns));
}

/** Adds (or replaces) a route to `prefix` through the device, optionally via a gateway. */
export async function replaceRoute(
  prefix: string,
  dev: string,
  options: { via?: string; metric?: number; netns?: string } = {},
): Promise<void> {
  const family = prefix.includes(':') ? '-6' : '-4';
  const args = [family, 'route', 'replace', prefix, 'dev', dev];
  if (options.via !== undefined) args.push('via', options.via);
  if (options.metric !== undefined) args.push('metric', String(options.metric));
  await ip(args, opt(options.netns));
}

/** Deletes a route. */
export async function deleteRoute(prefix: string, dev: string, netns?: string): Promise<void> {
  const family = prefix.includes(':') ? '-6' : '-4';
  await ip([family, 'route', 'del', prefix, 'dev', dev], opt(netns));
}

function opt(netns: string | undefined): { netns?: string } {
  return netns === undefined ? {} : { netns };
}
