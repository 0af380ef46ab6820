/**
 * What the daemons change on the host beyond their own devices, and how it is undone (issue #15
 * security review): the HA's extra listening ports redirect only datagrams addressed to the HA
 * host and not coming out of its TUN (members' decapsulated QUIC, forwarded home-link traffic
 * pass untouched), removed by the same selector; IPv4 forwarding goes back to what it was; a
 * kill-switch table a crashed MN left is deleted even with the kill switch off now.
 */
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KernelListenPorts, listenPortSpec } from '../../src/io/listen-ports.js';
import { FirewallRule } from '../../src/io/iptables.js';
import { enableIpForward, restoreIpForward } from '../../src/io/ipv4-home-network.js';
import { removeStaleKillSwitch, type NftRunner } from '../../src/io/kill-switch.js';

void t.test('listen ports: locally addressed, not from the TUN; removed alike', async (t) => {
  t.same(listenPortSpec('mip6ha', 443, 4191), [
    ...['-p', 'udp', '--dport', '443'],
    ...['-m', 'addrtype', '--dst-type', 'LOCAL', '!', '-i', 'mip6ha'],
    ...['-j', 'REDIRECT', '--to-ports', '4191'],
  ]);
  const p = new KernelListenPorts({
    tunName: 'mip6ha',
    port: 4191,
    ports: [4191, 443, 53],
    families: [4, 6],
  });
  t.ok(p.needed);
  t.same(
    p.rules.map((r) => [r.args('-A').family, r.args('-A').args.join(' ')]),
    [
      [
        4,
        '-t nat -A PREROUTING -p udp --dport 443 -m addrtype --dst-type LOCAL ! -i mip6ha -m comment --comment mip6 listen 443 -j REDIRECT --to-ports 4191',
      ],
      [
        6,
        '-t nat -A PREROUTING -p udp --dport 443 -m addrtype --dst-type LOCAL ! -i mip6ha -m comment --comment mip6 listen 443 -j REDIRECT --to-ports 4191',
      ],
      [
        4,
        '-t nat -A PREROUTING -p udp --dport 53 -m addrtype --dst-type LOCAL ! -i mip6ha -m comment --comment mip6 listen 53 -j REDIRECT --to-ports 4191',
      ],
      [
        6,
        '-t nat -A PREROUTING -p udp --dport 53 -m addrtype --dst-type LOCAL ! -i mip6ha -m comment --comment mip6 listen 53 -j REDIRECT --to-ports 4191',
      ],
    ],
  );
  for (const r of p.rules) {
    t.same(r.args('-D').args.slice(3), r.args('-A').args.slice(3), 'deleted by the same selector');
  }
  t.notOk(new KernelListenPorts({ tunName: 'x', port: 1, ports: [1], families: [4] }).needed);
  t.throws(
    () => new KernelListenPorts({ tunName: 'a b', port: 1, ports: [1, 2], families: [4] }),
    RangeError,
  );

  // install: stale copies deleted first, then one append; remove: the same arguments.
  const calls: string[] = [];
  let stale = 2;
  const rule = new FirewallRule(
    4,
    'nat',
    'PREROUTING',
    listenPortSpec('mip6ha', 443, 4191),
    'mip6 listen 443',
    async (_family, args) => {
      calls.push(args[2]!);
      if (args[2] === '-D' && stale-- <= 0) throw new Error('no such rule');
    },
  );
  await rule.install();
  await rule.remove();
  t.same(calls, ['-D', '-D', '-D', '-A', '-D']);
});

void t.test('ip_forward: turned on, the old value back at exit', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mip6-fwd-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const f = join(dir, 'ip_forward');
  writeFileSync(f, '0\n');
  const before = await enableIpForward(f);
  t.equal(readFileSync(f, 'utf8'), '1');
  t.equal(before, '0');
  await restoreIpForward(before, f);
  t.equal(readFileSync(f, 'utf8'), '0', 'restored');
  writeFileSync(f, '1\n');
  const already = await enableIpForward(f);
  t.equal(already, undefined, 'on already: nothing to restore');
  await restoreIpForward(already, f);
  t.equal(readFileSync(f, 'utf8'), '1\n', 'left alone');
  await restoreIpForward('0', join(dir, 'missing', 'x')); // best effort: never throws
});

void t.test('a stale kill-switch table is deleted (block_outside off now)', async (t) => {
  const scripts: [string, boolean][] = [];
  const run: NftRunner = async (script, ignore) => {
    scripts.push([script, ignore]);
  };
  await removeStaleKillSwitch(4191, run);
  t.same(scripts, [['table inet mip6_4191\ndelete table inet mip6_4191\n', true]]);
});
