/**
 * A multi-homed home agent (issue #16) in the netns lab: the HA's uplink holds a second address
 * per family (198.51.100.2, 2001:db8:ff::2; the kernel's own choice towards the MN stays the
 * first, 198.51.100.1 / 2001:db8:ff::1), the HA's sockets are bound to any, and the member is
 * configured with the second addresses only. The MN's namespace takes UDP from port 4191 only
 * as a reply to what it sent (nftables `ct state` like a NAT or a connected socket: an answer
 * from another address is a new flow and is dropped). Registration and pings both ways must
 * work from LTE (IPv4) and after a move to the IPv6-only network, and nftables counters in the
 * HA's output show that every datagram the HA sent to the member left from the contacted
 * address. Without pktinfo-chosen sources the handshake answer leaves from the first address
 * and the member never registers.
 */
import t from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HaStatus, MemberStatus } from '../../src/io/control-protocol.js';
import { waitFor } from '../helpers/wait.js';
import { LAB_ADDR, labUnavailableReason } from './lab.js';
import { LabSession, mnToml } from './mip6-lab.js';

const skip: string | false =
  labUnavailableReason() ?? (existsSync('/dev/net/tun') ? false : 'needs /dev/net/tun');
const HOA = LAB_ADDR.mn.homeAddress;
const SECOND4 = '198.51.100.2';
const SECOND6 = '2001:db8:ff::2';
const TABLE = 'mip6mh';

/** Packets counted by each named nftables counter of TABLE in the HA namespace. */
async function counters(s: LabSession): Promise<Record<string, number>> {
  const r = await s.lab.exec('ha', 'nft', ['-j', 'list', 'counters', 'table', 'inet', TABLE]);
  const out: Record<string, number> = {};
  const items = (
    JSON.parse(r.stdout) as { nftables: { counter?: { name: string; packets: number } }[] }
  ).nftables;
  for (const i of items) if (i.counter !== undefined) out[i.counter.name] = i.counter.packets;
  return out;
}

async function pings(s: LabSession): Promise<void> {
  const args = ['-6', '-c', '3', '-i', '0.2', '-W', '2'];
  const a = await s.lab.exec('server', 'ping', [...args, HOA]);
  if (!/3 received/.test(a.stdout)) throw new Error(`server -> HoA: ${a.stdout}`);
  const b = await s.lab.exec('mn', 'ping', [...args, LAB_ADDR.server.v6]);
  if (!/3 received/.test(b.stdout)) throw new Error(`HoA -> server: ${b.stdout}`);
}

void t.test(
  'a multi-homed HA answers a member only from the address it contacted',
  { skip, timeout: 180_000 },
  async (t) => {
    const s = await LabSession.open(t, 'multi-homed-ha', { timeoutMs: 20_000 });
    const { lab } = s;
    // The second addresses; the routes towards the MN keep the first as the kernel's choice.
    await lab.exec('ha', 'ip', ['addr', 'add', `${SECOND4}/24`, 'dev', 'uplink']);
    await lab.exec('ha', 'ip', ['addr', 'add', `${SECOND6}/64`, 'dev', 'uplink', 'nodad']);
    await lab.exec('ha', 'ip', [
      '-6',
      'route',
      'replace',
      '::/0',
      'via',
      LAB_ADDR.router.v6,
      'src',
      LAB_ADDR.ha.v6,
    ]);
    // The HA's output to the member's care-of addresses, counted by source.
    const mn4 = LAB_ADDR.mn.lte;
    const mn6 = LAB_ADDR.mn.v6only;
    const haRules = [
      `add table inet ${TABLE}`,
      `add counter inet ${TABLE} right4`,
      `add counter inet ${TABLE} wrong4`,
      `add counter inet ${TABLE} right6`,
      `add counter inet ${TABLE} wrong6`,
      `add chain inet ${TABLE} out { type filter hook output priority 0 ; }`,
      `add rule inet ${TABLE} out ip daddr ${mn4} udp sport 4191 ip saddr ${SECOND4} counter name right4`,
      `add rule inet ${TABLE} out ip daddr ${mn4} udp sport 4191 ip saddr != ${SECOND4} counter name wrong4`,
      `add rule inet ${TABLE} out ip6 daddr ${mn6} udp sport 4191 ip6 saddr ${SECOND6} counter name right6`,
      `add rule inet ${TABLE} out ip6 daddr ${mn6} udp sport 4191 ip6 saddr != ${SECOND6} counter name wrong6`,
    ];
    await lab.exec('ha', 'nft', ['-f', '-'], { input: haRules.join('\n') + '\n' });
    // The member's side: from the HA's port only what answers its own datagrams.
    await lab.exec('mn', 'nft', ['-f', '-'], {
      input:
        [
          `add table inet ${TABLE}`,
          `add counter inet ${TABLE} dropped`,
          `add chain inet ${TABLE} in { type filter hook input priority 0 ; }`,
          `add rule inet ${TABLE} in udp sport 4191 ct state != established counter name dropped drop`,
        ].join('\n') + '\n',
    });

    const ha = await s.homeAgent();
    const files = await s.prov.member('laptop', 'mn', [HOA]);
    const config = mnToml(s.prov, 'laptop', files, ha.files);
    writeFileSync(
      config,
      readFileSync(config, 'utf8').replace(/^agent = .*$/m, `agent = ["${SECOND4}", "${SECOND6}"]`),
    );
    const mn = s.start('mn', 'mn', config, join(s.prov.dir, 'laptop.sock'));
    await mn.waitLog((l) => l.event === 'registered', 20_000);
    t.pass('registered over IPv4 via the second address');
    await pings(s);
    t.pass('pings both ways through the tunnel');
    let c = await counters(s);
    t.ok((c['right4'] ?? 0) >= 4, `${c['right4']} datagrams from ${SECOND4} to the member`);
    t.equal(c['wrong4'], 0, `none from another address`);

    // A move to the IPv6-only network: the member reaches the HA at its second IPv6 address.
    const from = mn.lines.length;
    await lab.move('v6only');
    await mn.waitLog((l) => l.event === 'registered', 20_000, from);
    await waitFor('the HA binding at the IPv6 locator', async () => {
      const st = await ha.daemon.status<HaStatus>();
      return st.bindings.some((b) => b.homeAddress === HOA && b.locator.startsWith(`[${mn6}]`));
    });
    t.pass('registered over IPv6 via the second address');
    await pings(s);
    t.pass('pings both ways after the move');
    c = await counters(s);
    t.ok((c['right6'] ?? 0) >= 4, `${c['right6']} datagrams from ${SECOND6} to the member`);
    t.equal(c['wrong6'], 0, 'none from another address');
    t.equal(c['wrong4'], 0);

    const st = await ha.daemon.status<HaStatus>();
    t.equal(st.counters?.['udpSourceFallbacks'], 0, 'no source fell back to the kernel');
    const dropped = await lab.exec('mn', 'nft', ['list', 'counter', 'inet', TABLE, 'dropped']);
    t.match(dropped.stdout, /packets 0 /, 'the member dropped nothing from the HA port');
    const ms = await mn.status<MemberStatus>();
    t.equal(ms.state, 'registered', 'the member is registered');
  },
);
