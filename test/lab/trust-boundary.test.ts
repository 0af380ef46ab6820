/**
 * The trust boundary against the real daemons (issue #13, DESIGN.md §4 "inner packets are not
 * signaling by address"). An ordinary host with no mip6 and no key, on the home link and on
 * the internet, sends forged home-agent signaling (scapy, test/lab/fixtures/forge-signaling.py)
 * to a registered mobile node's home address, which the home agent routes towards the MN's
 * tunnel: Binding Refresh Request, Binding Acknowledgements with status 135 and 129, a Binding
 * Error, a Mobile Prefix Advertisement for another prefix, a DHAAD Reply naming another home
 * agent. Before the fix each of these changed the MN (a BU per BRR, an
 * adopted sequence number, a failed registration, replaced prefixes, a rogue home agent).
 * Asserted: the HA counts every one as a drop by reason (`mip6 status`), and nothing the
 * attacker aimed at changed: the MN's state, BU sequence, home prefixes, home-agent list; the
 * HA's binding (locator, sequence); ping6 through the tunnel still works.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { HaStatus, MemberStatus } from '../../src/io/control-protocol.js';
import { waitFor } from '../helpers/wait.js';
import { LAB_ADDR, labUnavailableReason } from './lab.js';
import { LabSession } from './mip6-lab.js';

const HOA = LAB_ADDR.mn.homeAddress;
const FORGE = fileURLToPath(new URL('./fixtures/forge-signaling.py', import.meta.url));
const BURSTS = 3;
const skip: string | false =
  labUnavailableReason() ?? (existsSync('/dev/net/tun') ? false : 'needs /dev/net/tun');

/** What the attacker aims at, from both daemons' status. */
function aimedAt(mn: MemberStatus, ha: HaStatus) {
  const bul = mn.bindingUpdateList[0];
  const binding = ha.bindings.find((b) => b.homeAddress === HOA);
  return {
    state: mn.state,
    homeRegistration: bul?.state,
    sequence: bul?.sequence,
    homePrefixes: JSON.stringify(mn.homePrefixes ?? []),
    homeAgents: JSON.stringify((mn.homeAgents ?? []).map((a) => a.address)),
    bindingLocator: binding?.locator,
    bindingSequence: binding?.sequence,
  };
}

void t.test(
  'forged home-agent signaling from hosts without a key changes nothing',
  { skip, timeout: 120_000 },
  async (t) => {
    const session = await LabSession.open(t, 'trust-boundary');
    const { lab } = session;
    const ha = (await session.homeAgent()).daemon;
    const mn = (await session.mobileNode()).daemon;
    // Settled: the MPA answered our solicitation (prefixes known) and DHAAD listed the HA.
    await waitFor(
      'MPA and DHAAD answered',
      async () => {
        const s = await mn.status<MemberStatus>();
        return (s.homePrefixes?.length ?? 0) > 0 && (s.homeAgents?.length ?? 0) > 0;
      },
      15_000,
      20,
    );
    const before = aimedAt(await mn.status<MemberStatus>(), await ha.status<HaStatus>());
    t.ok(before.sequence !== undefined, `registered, BU sequence ${before.sequence}`);
    const haDrops0 = (await ha.status<HaStatus>()).drops ?? {};
    const mnLines0 = mn.lines.length;

    // The attack, from the plain server on the home link and from the CN host on the internet.
    let sent = 0;
    let perBurst = 0;
    for (const node of ['server', 'cn'] as const) {
      const r = await lab.exec(
        node,
        '/usr/bin/python3',
        [FORGE, HOA, LAB_ADDR.ha.home, String(before.sequence), String(BURSTS)],
        { timeoutMs: 30_000 },
      );
      const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as {
        sent: number;
        perBurst: number;
      };
      sent += out.sent;
      perBurst = out.perBurst;
    }
    t.equal(sent, 2 * BURSTS * perBurst, `${sent} forged packets sent`);

    // Every one reaches the HA's TUN and is refused there, before the MN's channel.
    const refused = async (): Promise<number> => {
      const d = (await ha.status<HaStatus>()).drops ?? {};
      return (d['signaling-to-member'] ?? 0) - (haDrops0['signaling-to-member'] ?? 0);
    };
    const expected = sent;
    await waitFor(
      'the HA to count every forged packet',
      async () => (await refused()) === expected,
      10_000,
      20,
    ).catch(() => undefined); // the assertion below shows what was counted
    t.equal(
      await refused(),
      expected,
      "every forged packet counted at the HA: 'signaling-to-member'",
    );

    // Nothing the attacker aimed at changed, and no BU or refresh was triggered.
    await new Promise((r) => setTimeout(r, 1000)); // time for a (wrongly) triggered BU and its BA
    const after = aimedAt(await mn.status<MemberStatus>(), await ha.status<HaStatus>());
    t.same(after, before, 'MN state, BU sequence, prefixes, HA list; HA binding: unchanged');
    const newEvents = mn.lines
      .slice(mnLines0)
      .map((l) => l.event)
      .filter((e) => e !== undefined);
    t.notOk(
      newEvents.some((e) =>
        [
          'refresh-request',
          'registration-failed',
          'home-prefix-changed',
          'home-agents',
          'home-agent-switch',
        ].includes(e),
      ),
      `no signaling event at the MN (${newEvents.join(',') || 'none'})`,
    );
    const ping = await lab.exec('server', 'ping', ['-6', '-c', '3', '-i', '0.2', '-W', '2', HOA], {
      check: false,
    });
    t.match(ping.stdout, /3 received/, 'ping6 through the tunnel afterwards');
    await mn.stop();
    await ha.stop();
  },
);
