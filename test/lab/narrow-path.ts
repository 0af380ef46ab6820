/**
 * A narrow, fragment-hostile path in the netns lab (issue #21), for the path MTU lab test and
 * the bench's "small MTU, fragments dropped" row: the router <-> HA link carries fewer bytes
 * than the tunnel assumes, IP fragments are dropped on the way, and optionally the routers'
 * ICMP Fragmentation Needed / Packet Too Big too. Everything lives in the lab's namespaces and
 * goes with them.
 */
import type { Lab, LabNode } from './lab.js';

/** The narrow link's MTU: a PPPoE / LTE / hotel uplink. */
export const NARROW_MTU = 1400;

/** iptables and ip6tables in one namespace; each rule inserted first. */
async function both(lab: Lab, node: LabNode, v4: string[], v6: string[]): Promise<void> {
  await lab.exec(node, 'iptables', ['-w', '-I', ...v4]);
  await lab.exec(node, 'ip6tables', ['-w', '-I', ...v6]);
}

/** The router <-> HA link carries `mtu` bytes (both ends). */
export async function narrowCore(lab: Lab, mtu = NARROW_MTU): Promise<void> {
  await lab.exec('router', 'ip', ['link', 'set', 'ha', 'mtu', String(mtu)]);
  await lab.exec('ha', 'ip', ['link', 'set', 'uplink', 'mtu', String(mtu)]);
}

/**
 * Fragments die on the way: the router drops every IPv4 fragment (offset or More Fragments
 * set) and every IPv6 packet with a Fragment header as it arrives, in an nftables prerouting
 * chain ahead of the kernel's reassembly for conntrack (priority -450 < -400: an iptables
 * FORWARD rule would only ever see reassembled packets, the router's NAT tracks connections).
 * The HA's and the MN's input drop fragments too (those the router makes itself leave after
 * its own filter).
 */
export async function dropFragments(lab: Lab): Promise<void> {
  const table = 'mip6frag';
  for (const cmd of [
    ['add', 'table', 'inet', table],
    ['add', 'chain', 'inet', table, 'pre', '{ type filter hook prerouting priority -450 ; }'],
    ['add', 'rule', 'inet', table, 'pre', 'ip', 'frag-off', '&', '0x3fff', '!=', '0', 'drop'],
    ['add', 'rule', 'inet', table, 'pre', 'exthdr', 'frag', 'exists', 'drop'],
  ]) {
    await lab.exec('router', 'nft', cmd);
  }
  for (const node of ['ha', 'mn'] as const) {
    await both(lab, node, ['INPUT', '-f', '-j', 'DROP'], ['INPUT', '-m', 'frag', '-j', 'DROP']);
  }
}

/** The router sends no Fragmentation Needed / Packet Too Big, and forwards none. */
export async function dropTooBig(lab: Lab): Promise<void> {
  for (const chain of ['OUTPUT', 'FORWARD']) {
    await both(
      lab,
      'router',
      [chain, '-p', 'icmp', '--icmp-type', 'fragmentation-needed', '-j', 'DROP'],
      [chain, '-p', 'icmpv6', '--icmpv6-type', 'packet-too-big', '-j', 'DROP'],
    );
  }
}
