/**
 * The personal tunnel and returning home (issue #15), real daemons in the netns lab: a mobile
 * node with everything routed into the tunnel, the kill switch on and an IPv4 home address
 * goes home (the lab's home link) and away again. At home there is no tunnel: the policy rules
 * and the kill switch are gone and the home link's server answers directly; away again both
 * are back, the MN is registered, and its IPv4 home address is the one it had before.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HaStatus, MemberStatus } from '../../src/io/control-protocol.js';
import { LAB_ADDR, labUnavailableReason } from './lab.js';
import { LabSession, mnToml } from './mip6-lab.js';

function reason(): string | false {
  const lab = labUnavailableReason();
  if (lab !== undefined) return lab;
  if (spawnSync('sh', ['-c', 'command -v nft'], { stdio: 'ignore' }).status !== 0)
    return 'needs nft (nftables) for the kill switch';
  return false;
}
const skip = reason();
const HOA = LAB_ADDR.mn.homeAddress;

void t.test('full tunnel: home and away again', { skip, timeout: 180_000 }, async (t) => {
  const s = await LabSession.open(t, 'personal-tunnel-home');
  const lab = s.lab;
  await s.homeAgent({ extra: 'ipv4_pool = "10.99.0.0/24"\n' });
  const files = await s.prov.member('laptop', 'mn', [HOA]);
  const config = mnToml(s.prov, 'laptop', files, s.ha.files, {
    extraHome: 'ipv4_address = "auto"',
  });
  writeFileSync(
    config,
    readFileSync(config, 'utf8').replace(
      'name = "mip6mn"',
      'name = "mip6mn"\nroutes = ["::/0", "0.0.0.0/0"]\nblock_outside = true',
    ),
  );
  lab.routeMark = 4191;
  const mn = s.start('mn', 'mn', config, join(s.prov.dir, 'laptop.sock'));
  await mn.waitLog((l) => l.event === 'ipv4-home-address', 30_000);
  const rules = async (): Promise<string> =>
    (await lab.exec('mn', 'ip', ['-6', 'rule'])).stdout +
    (await lab.exec('mn', 'ip', ['-4', 'rule'])).stdout;
  const tables = async (): Promise<string> =>
    (await lab.exec('mn', 'nft', ['list', 'tables'])).stdout;
  t.match(await rules(), /not from all fwmark 0x105f lookup 4191/, 'away: policy rules');
  t.match(await tables(), /mip6_4191/, 'away: kill switch');
  t.equal((await mn.status<MemberStatus>()).homeAddress4, '10.99.0.2');

  let from = mn.lines.length;
  await lab.move('home');
  await mn.waitLog((l) => l.event === 'home', 30_000, from);
  // The rules and the table go right after the address moved (enter() then suspend()).
  const end = Date.now() + 10_000;
  while (/lookup 4191|mip6_4191/.test((await rules()) + (await tables())) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50));
  }
  t.notMatch(await rules(), /lookup 4191|suppress_prefixlength/, 'home: no policy rule');
  t.notMatch(await tables(), /mip6_/, 'home: no kill switch');
  const ping = await lab.exec('mn', 'ping', ['-6', '-c', '1', '-W', '2', LAB_ADDR.server.v6], {
    check: false,
  });
  t.equal(ping.code, 0, 'home: the home link server answers directly');
  const haAtHome = await s.ha.daemon.status<HaStatus>();
  t.equal(haAtHome.bindings.length, 0, 'home: deregistered');

  from = mn.lines.length;
  await lab.move('lte');
  await mn.waitLog((l) => l.event === 'registered', 30_000, from);
  t.match(await rules(), /not from all fwmark 0x105f lookup 4191/, 'away again: policy rules');
  t.match(await tables(), /mip6_4191/, 'away again: kill switch');
  const st = await mn.status<MemberStatus>();
  t.equal(st.homeAddress4, '10.99.0.2', 'the same IPv4 home address after returning home');
  const ha = await s.ha.daemon.status<HaStatus>();
  t.equal(ha.bindings.find((b) => b.homeAddress === HOA)?.homeAddress4, '10.99.0.2');
  const ping6 = await lab.exec('mn', 'ping', ['-6', '-c', '1', '-W', '2', LAB_ADDR.server.v6], {
    check: false,
  });
  t.equal(ping6.code, 0, 'away again: the server answers through the tunnel');
  t.equal((await mn.stop(10_000)).code, 0);
});
