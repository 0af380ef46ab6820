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
 * Fragments die on the way: in the router's forwarding path and at the HA's and the MN's input
 * (fragments a router makes itself leave after its own filter; the hosts' firewalls catch them).
 */
export async function dropFragments(lab: Lab): Promise<void> {
  const v4 = ['-f', '-j', 'DROP'];
  const v6 = ['-m', 'frag', '-j', 'DROP'];
  await both(lab, 'router', ['FORWARD', ...v4], ['FORWARD', ...v6]);
  for (const node of ['ha', 'mn'] as const) {
    await both(lab, node, ['INPUT', ...v4], ['INPUT', ...v6]);
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
