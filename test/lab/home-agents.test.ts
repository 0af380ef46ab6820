/**
 * Several home agents of one home prefix in the netns lab (issue 6), real daemons:
 *   HA1 (ns "ha", on the home link, preference 10) lists HA2 in ha.toml [[home.agents]];
 *   HA2 (ns "cn", a virtual home network on its TUN, preference 5, its own identity, UDP 4192).
 *   1. The MN registers at HA1 and `mip6 status` shows both HAs, in DHAAD order, HA2 with the
 *      underlay addresses, port and preference the MPA announced.
 *   2. ha.toml gains an advertised prefix; SIGHUP -> an unsolicited MPA -> the MN's status shows
 *      the new prefix; a ping through the tunnel running meanwhile loses nothing. A broken
 *      ha.toml on SIGHUP is one error line, and the HA keeps its configuration.
 *   3. HA1 stops: the MN notices the silence, fails over to HA2 (new channel with HA2's key,
 *      new registration) and pings HA2's home address through HA2's tunnel.
 */
import t from 'tap';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HaStatus, MemberStatus } from '../../src/io/control-protocol.js';
import { formatStatus } from '../../src/cli/status.js';
import { settled, waitFor } from '../helpers/wait.js';
import { LAB_ADDR, labUnavailableReason } from './lab.js';
import { haToml, LabSession } from './mip6-lab.js';

const HOA = LAB_ADDR.mn.homeAddress;
const HA2_HOME = '2001:db8:100::2';
const HA2_PORT = 4192;
const NEW_PREFIX = '2001:db8:200::/64';
const skip: string | false =
  labUnavailableReason() ?? (existsSync('/dev/net/tun') ? false : 'needs /dev/net/tun');

/** Transmitted / received counts from ping's summary line. */
function pingCounts(out: string): { sent: number; received: number } {
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  return { sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0) };
}

void t.test(
  'home agents list, SIGHUP prefix change, failover',
  { skip, timeout: 110_000 },
  async (t) => {
    const session = await LabSession.open(t, 'home-agents');
    const { lab, prov } = session;
    const ha2Files = await prov.member('ha2', 'ha', [LAB_ADDR.ha.homePrefix]);
    const peers = `preference = 10
[[home.agents]]
home_address = "${HA2_HOME}"
address = ["${LAB_ADDR.cn.v4}", "${LAB_ADDR.cn.v6}"]
port = ${HA2_PORT}
preference = 5
lifetime = 900
public_key = "${ha2Files.pub}"
`;
    const ha2Config = prov.write(
      'ha2.toml',
      `control_socket = "${join(prov.dir, 'ha2.sock')}"
[identity]
private_key = "${ha2Files.key}"
certificate = "${ha2Files.cert}"
authority = "${prov.authorityPub}"
[tun]
name = "mip6ha2"
[listen]
port = ${HA2_PORT}
[home]
prefix = "${LAB_ADDR.ha.homePrefix}"
address = "${HA2_HOME}"
preference = 5
`,
    );
    const ha2 = session.start('cn', 'ha', ha2Config, join(prov.dir, 'ha2.sock'));
    const {
      files: ha1Files,
      config: ha1Config,
      daemon: ha1,
    } = await session.homeAgent({
      extra: peers,
    });
    await ha2.waitLog((l) => l.event === 'started');
    const mn = (
      await session.mobileNode({
        name: 'roamer',
        lifetime: 60,
        extra: '[movement]\nprobe_interval = 1\nprobe_timeout = 0.5\nprobe_attempts = 3\n',
      })
    ).daemon;

    await t.test('status shows the home agents learned by DHAAD / MPA', async (t) => {
      // DHAAD lists both agents before the MPA has filled in HA2's preference, port and
      // underlay addresses: wait for the whole state asserted here, not for the two names.
      let st: MemberStatus | undefined;
      const shown = async () => {
        st = await mn.status<MemberStatus>();
        const agents = st.homeAgents ?? [];
        return {
          agents: agents.map((a) => [
            a.address,
            a.current,
            a.dhaad,
            a.usable,
            a.preference,
            a.port,
          ]),
          ha2Underlay: agents[1]?.underlay,
        };
      };
      const want = {
        agents: [
          [LAB_ADDR.ha.home, true, true, true, 10, undefined],
          [HA2_HOME, false, true, true, 5, HA2_PORT],
        ],
        ha2Underlay: `${LAB_ADDR.cn.v4} ${LAB_ADDR.cn.v6}`,
      };
      const since = Date.now();
      const got = await settled(shown, want);
      t.comment(`status settled ${Date.now() - since} ms after registration`);
      t.same(got?.agents, want.agents, 'DHAAD order by preference; HA2 reachable for failover');
      t.equal(got?.ha2Underlay, want.ha2Underlay, 'HA2 underlay addresses from the MPA');
      const text = st === undefined ? '' : formatStatus(st);
      t.match(text, /home agents \(2; DHAAD order\)/, '`mip6 status` prints the list');
      t.match(text, new RegExp(`${HA2_HOME.replace(/:/g, ':')}\\s+-\\s+yes\\s+5`));
    });

    await t.test('SIGHUP: a new advertised prefix reaches the MN, ping unaffected', async (t) => {
      const ping = lab.exec(
        'mn',
        'ping',
        ['-6', '-n', '-c', '40', '-i', '0.1', '-W', '2', LAB_ADDR.server.v6],
        { check: false, timeoutMs: 30_000 },
      );
      await new Promise((r) => setTimeout(r, 1000));
      // haToml rewrites the same ha.toml, now with one more advertised prefix.
      haToml(
        prov,
        ha1Files,
        `${peers}\n[[home.advertise]]\nprefix = "${NEW_PREFIX}"\nvalid_lifetime = 3600\npreferred_lifetime = 1800\n`,
      );
      const from = ha1.lines.length;
      const sent = Date.now();
      ha1.child.kill('SIGHUP');
      const reloaded = await ha1.waitLog((l) => l.event === 'reloaded', 10_000, from);
      t.equal(reloaded['advertised'], 'changed');
      const haSt = await ha1.status<HaStatus>();
      t.same(
        haSt.advertisedPrefixes?.map((p) => p.prefix),
        [LAB_ADDR.ha.homePrefix, NEW_PREFIX],
        'the HA status shows what it advertises now',
      );
      t.match(formatStatus(haSt), /advertised prefixes: .*2001:db8:200::\/64 \(valid 1h/);
      // Wait for the whole list asserted (with the lifetimes the MPA carries), not for the name.
      const prefixes = async () =>
        (await mn.status<MemberStatus>()).homePrefixes?.map((p) => [
          p.prefix,
          p.validLifetime,
          p.preferredLifetime,
        ]);
      const want = [
        [LAB_ADDR.ha.homePrefix, 0xffffffff, 0xffffffff],
        [NEW_PREFIX, 3600, 1800],
      ];
      t.same(
        await settled(prefixes, want),
        want,
        `the MN status shows ${NEW_PREFIX} (${Date.now() - sent} ms after SIGHUP)`,
      );
      await t.resolves(
        ha1.waitLog((l) => l.event === 'mobile-prefix-acknowledged', 10_000, from),
        'the MN acknowledged the MPA with a BU',
      );
      const r = pingCounts((await ping).stdout);
      t.equal(r.sent, 40);
      t.ok(r.received >= r.sent - 1, `ping through the tunnel: ${r.received}/${r.sent} answered`);

      // A broken file: one error line, the running configuration stays.
      writeFileSync(ha1Config, 'this is = not [valid toml\n');
      const bad = ha1.lines.length;
      ha1.child.kill('SIGHUP');
      const failed = await ha1.waitLog((l) => l.event === 'reload-failed', 10_000, bad);
      t.match(String(failed['error']), /line 1/, `one line: ${String(failed['error'])}`);
      t.equal(ha1.exited, undefined, 'HA still running');
      const again = await mn.status<MemberStatus>();
      t.ok(
        again.homePrefixes?.some((p) => p.prefix === NEW_PREFIX),
        'nothing changed at the MN',
      );
    });

    await t.test('HA1 stops: the MN fails over to HA2', async (t) => {
      const ping = lab.exec(
        'mn',
        'ping',
        ['-6', '-n', '-c', '80', '-i', '0.1', '-W', '1', LAB_ADDR.server.v6],
        { check: false, timeoutMs: 40_000 },
      );
      const stopped = Date.now();
      await ha1.stop();
      await waitFor(
        'registered at HA2',
        async () => {
          const s = await mn.status<MemberStatus>();
          return s.state === 'registered' && s.homeAgent === `${LAB_ADDR.cn.v4}:${HA2_PORT}`;
        },
        30_000,
      );
      t.comment(`registered at HA2 ${Date.now() - stopped} ms after HA1 stopped`);
      const sw = await mn.waitLog((l) => l.event === 'home-agent-switch', 1000);
      t.equal(sw['to'], HA2_HOME);
      const ha2st = await ha2.status<HaStatus>();
      t.ok(
        ha2st.bindings.some((b) => b.homeAddress === HOA),
        'HA2 holds the binding',
      );
      const r = await lab.exec(
        'mn',
        'ping',
        ['-6', '-n', '-c', '3', '-i', '0.2', '-W', '2', HA2_HOME],
        { check: false, timeoutMs: 15_000 },
      );
      t.ok(
        pingCounts(r.stdout).received >= 2,
        `ping to HA2 through its tunnel: ${r.stdout.split('\n').find((l) => l.includes('received')) ?? r.stdout}`,
      );
      await ping;
    });
  },
);
