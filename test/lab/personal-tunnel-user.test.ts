/**
 * The personal tunnel under least privilege (issue #15): a mobile node started with
 * `--user nobody` and [tun] routes + block_outside sets its sockets' firewall mark and installs
 * the policy rules and the kill switch while still root, then runs as nobody with CAP_NET_ADMIN
 * and CAP_NET_RAW only (as before the personal tunnel), registers, carries traffic, and at exit
 * removes the rules and the nftables table with what it kept.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LAB_ADDR, labUnavailableReason } from './lab.js';
import { LabSession, mnToml } from './mip6-lab.js';

function reason(): string | false {
  const lab = labUnavailableReason();
  if (lab !== undefined) return lab;
  if (spawnSync('sh', ['-c', 'command -v nft'], { stdio: 'ignore' }).status !== 0)
    return 'needs nft (nftables) for the kill switch';
  if (spawnSync('id', ['nobody'], { stdio: 'ignore' }).status !== 0) return 'needs user nobody';
  return false;
}
const skip = reason();

void t.test('full tunnel and kill switch as nobody', { skip, timeout: 120_000 }, async (t) => {
  const s = await LabSession.open(t, 'personal-tunnel-user');
  const lab = s.lab;
  await s.homeAgent();
  const files = await s.prov.member('laptop', 'mn', [LAB_ADDR.mn.homeAddress]);
  const config = mnToml(s.prov, 'laptop', files, s.ha.files);
  writeFileSync(
    config,
    readFileSync(config, 'utf8').replace(
      'name = "mip6mn"',
      'name = "mip6mn"\nroutes = ["::/0", "0.0.0.0/0"]\nblock_outside = true',
    ),
  );
  lab.routeMark = 4191;
  const mn = s.start('mn', 'mn', config, join(s.prov.dir, 'laptop.sock'), ['--user', 'nobody']);
  await mn.waitLog((l) => l.event === 'registered', 30_000);
  const priv = mn.lines.find((l) => l.event === 'privileges');
  t.equal(priv?.['user'], 'nobody');
  t.equal(priv?.['capabilities'], 'NET_ADMIN,NET_RAW', 'the same capabilities as before');
  const status = readFileSync(`/proc/${mn.child.pid}/status`, 'utf8');
  t.match(status, /^Uid:\s+65534\s/m, 'running as nobody');
  t.match(status, /^CapEff:\s+0000000000003000$/m);
  const state = async (): Promise<string> =>
    (await lab.exec('mn', 'ip', ['-4', 'rule'])).stdout +
    (await lab.exec('mn', 'ip', ['-6', 'rule'])).stdout +
    (await lab.exec('mn', 'nft', ['list', 'tables'])).stdout;
  t.match(await state(), /not from all fwmark 0x105f lookup 4191[\s\S]*mip6_4191/);
  const ping = await lab.exec('mn', 'ping', ['-6', '-c', '1', '-W', '2', LAB_ADDR.server.v6], {
    check: false,
  });
  t.equal(ping.code, 0, 'traffic through the tunnel with the kill switch on');
  t.equal((await mn.stop(10_000)).code, 0, 'clean exit');
  t.notMatch(
    await state(),
    /4191|suppress_prefixlength|mip6_/,
    'rules and table removed as nobody',
  );
});
