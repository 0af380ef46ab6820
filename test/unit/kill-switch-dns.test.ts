/**
 * The kill switch's nftables ruleset and its life (issue #15, [tun] block_outside), with a
 * recording runner; and [tun] dns by the file method on a scratch resolver file: the tunnel's
 * servers while up, the old file back at exit, and a backup a crashed run left put back first.
 */
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KillSwitch, type NftRunner } from '../../src/io/kill-switch.js';
import { TunnelDns } from '../../src/io/tunnel-dns.js';

void t.test('kill switch: one table per mark, replaced, suspended at home, removed', async (t) => {
  const scripts: { script: string; ignore: boolean }[] = [];
  const run: NftRunner = async (script, ignore) => {
    scripts.push({ script, ignore });
  };
  const k = new KillSwitch({ tunName: 'mip6mn', mark: 4191 }, run);
  t.equal(k.table, 'mip6_4191');
  const r = k.ruleset();
  t.match(r, /^table inet mip6_4191\ndelete table inet mip6_4191\n/, 'a stale table is replaced');
  t.match(r, /oifname "mip6mn" accept/);
  t.match(r, /meta mark 4191 accept/, "the daemon's own datagrams");
  t.match(r, /udp sport 68 udp dport 67 accept/, 'DHCPv4');
  t.match(r, /udp sport 546 udp dport 547 accept/, 'DHCPv6');
  t.match(r, /nd-neighbor-solicit/, 'neighbour discovery');
  t.match(r, /counter drop\n {2}}\n}\n$/, 'everything else dropped');
  await k.install();
  t.notMatch(k.ruleset(), /dport 53/, 'no portal exception by default');
  await k.openPortal();
  t.match(
    k.ruleset(),
    /udp dport 53 accept\n {4}tcp dport \{ 53, 80, 443 \} accept\n {4}counter drop/,
  );
  await k.closePortal();
  t.notMatch(k.ruleset(), /dport 53/, 'closed again');
  scripts.splice(1, 2); // the two reloads of open / close
  await k.suspend();
  await k.suspend();
  await k.resume();
  await k.remove();
  await k.resume();
  t.same(
    scripts.map((s) => [s.script.includes('chain output'), s.ignore]),
    [
      [true, false],
      [false, true],
      [true, false],
      [false, true],
    ],
    'install, suspend (once), resume, remove; nothing after remove',
  );
  t.throws(() => new KillSwitch({ tunName: 'bad name"', mark: 1 }, run), RangeError);
  const probe = new KillSwitch(
    {
      tunName: 'mip6mn',
      mark: 7,
      allowTcp: [
        { address: '203.0.113.80', port: 80 },
        { address: '2001:db8::80', port: 8080 },
      ],
    },
    run,
  ).ruleset();
  t.match(probe, /ip daddr 203\.0\.113\.80 tcp dport 80 accept\n/, 'the portal probe (IPv4)');
  t.match(probe, /ip6 daddr 2001:db8::80 tcp dport 8080 accept\n/, 'the portal probe (IPv6)');
  t.throws(
    () => new KillSwitch({ tunName: 'x', mark: 1, allowTcp: [{ address: 'a;b', port: 1 }] }, run),
    RangeError,
  );
});

void t.test('dns: the file method, restored at exit and after a crash', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mip6-dns-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const conf = join(dir, 'resolv.conf');
  const backup = join(dir, 'mn.sock.resolv-backup');
  writeFileSync(conf, 'nameserver 192.0.2.53\n');
  const opts = {
    tunName: 'mip6mn',
    servers: ['10.99.0.1', '2001:db8:100::1'],
    backupFile: backup,
    resolvConf: conf,
    methods: ['file'] as const,
  };
  const d = new TunnelDns(opts);
  t.equal(await d.apply(), 'file');
  t.match(readFileSync(conf, 'utf8'), /nameserver 10\.99\.0\.1\nnameserver 2001:db8:100::1\n$/);
  t.notMatch(readFileSync(conf, 'utf8'), /192\.0\.2\.53/);
  await d.restore();
  t.equal(readFileSync(conf, 'utf8'), 'nameserver 192.0.2.53\n', 'the old file back');
  t.notOk(existsSync(backup), 'no backup left');

  // A run that died with the tunnel's servers in place: the next one starts from the old file.
  await new TunnelDns(opts).apply();
  const next = new TunnelDns(opts);
  t.ok(await next.recover(), 'the backup of the dead run is put back');
  t.equal(readFileSync(conf, 'utf8'), 'nameserver 192.0.2.53\n');
  await next.apply();
  await next.restore();
  t.equal(readFileSync(conf, 'utf8'), 'nameserver 192.0.2.53\n', 'never the tunnel servers');
  await t.rejects(new TunnelDns({ ...opts, methods: [] }).apply(), /no way to set the resolvers/);
});
