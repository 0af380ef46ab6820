/**
 * Enrolment and service commands (issue 19) through buildProgram(), in temp directories only
 * (--dir / --ca / --unit-dir, a stand-in systemctl): `mip6 init ha`, `member add/list/remove`,
 * `join`, `service install/status`. Files and modes, the configs the daemons accept, address
 * allocation, the revocation list and the SIGHUP to a running home agent, and every refusal as
 * one line.
 */
import t from 'tap';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildProgram } from '../../src/cli/program.js';
import { resolveUser } from '../../src/cli/privileges.js';
import { loadCnConfig, loadHaConfig, loadMnConfig } from '../../src/config/index.js';
import { verifyCertificate } from '../../src/crypto/certificate.js';
import {
  readAuthorityPublic,
  readCertificate,
  readMemberPrivate,
} from '../../src/cli/key-files.js';
import { parseRevocationList } from '../../src/crypto/revocation-list.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { startControlServer } from '../../src/io/control-socket.js';
import { Mip6Error } from '../../src/util/errors.js';

await initCrypto();

interface Run {
  out: string;
  /** What `mip6` prints on stderr for a failure (reportError), '' on success. */
  err: string;
  code: number;
}

async function mip6(...args: string[]): Promise<Run> {
  const program = buildProgram();
  program.exitOverride();
  program.configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
  const chunks: string[] = [];
  const errs: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((s: string) => (chunks.push(String(s)), true)) as typeof write;
  let code = 0;
  try {
    await program.parseAsync(['node', 'mip6', ...args]);
  } catch (err) {
    if (!(err instanceof Mip6Error)) throw err; // src/cli/main.ts prints these as one line
    errs.push(`mip6: ${err.code}: ${err.message}\n`);
    code = 1;
  } finally {
    process.stdout.write = write;
  }
  return { out: chunks.join(''), err: errs.join(''), code };
}

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), `mip6-enrol-${process.pid}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function mode(path: string): string {
  return (statSync(path).mode & 0o777).toString(8);
}

/** A home agent set up in `root`: its config dir, its authority dir. */
async function homeAgent(root: string, ...extra: string[]) {
  const dir = join(root, 'etc');
  const ca = join(root, 'ca');
  const r = await mip6(
    'init',
    'ha',
    '--address',
    '198.51.100.1',
    '--address',
    'ha.example.net',
    '--prefix',
    '2001:db8:100::/64',
    '--dir',
    dir,
    '--ca',
    ca,
    ...extra,
  );
  return { dir, ca, r };
}

void t.test('init ha, member add, join: files, modes, configs the daemons accept', async (t) => {
  const root = tempDir(t);
  const { dir, ca, r } = await homeAgent(root);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /home agent "ha" for 2001:db8:100::\/64 \(home address 2001:db8:100::1\)/);
  t.equal(mode(dir), '700', 'config dir 0700');
  t.equal(mode(ca), '700', 'authority dir 0700');
  t.equal(mode(join(ca, 'authority.key')), '600');
  t.equal(mode(join(ca, 'members.json')), '600');
  t.equal(mode(join(dir, 'ha.key')), '600');
  t.notOk(existsSync(join(dir, 'authority.key')), 'the authority key stays out of the config dir');
  const ha = await loadHaConfig(join(dir, 'ha.toml'));
  t.equal(ha.home.prefix.text, '2001:db8:100::/64');
  t.equal(ha.home.address, '2001:db8:100::1');
  t.equal(ha.identity.revocationList, join(dir, 'revoked.txt'));
  t.equal(parseRevocationList(readFileSync(join(dir, 'revoked.txt'), 'utf8'), 'r').size, 0);
  const authority = readAuthorityPublic(join(dir, 'authority.pub'));
  const haCert = readCertificate(ha.identity.certificate);
  t.equal(verifyCertificate(haCert, authority, Date.now(), ['ha']), 'ok');
  t.same(
    haCert.publicKey,
    readMemberPrivate(ha.identity.privateKey).publicKey,
    'certificate of its key',
  );

  const laptop = await mip6('member', 'add', 'laptop', '--ca', ca);
  t.equal(laptop.code, 0, laptop.err);
  t.match(laptop.out, /added laptop \(mn\): home address 2001:db8:100::10/);
  const file = join(ca, 'members', 'laptop.join');
  t.equal(mode(file), '600', 'enrolment file root-only');
  t.equal(mode(join(ca, 'members')), '700');
  const phone = await mip6('member', 'add', 'phone', '--role', 'cn', '--ca', ca, '--days', '30');
  t.match(phone.out, /added phone \(cn\): home address 2001:db8:100::11/, 'next address');

  const device = join(root, 'laptop');
  const joined = await mip6('join', file, '--dir', device, '--control-socket', '/run/x.sock');
  t.equal(joined.code, 0, joined.err);
  t.match(joined.out, new RegExp(`start it: +mip6 mn -c ${join(device, 'mn.toml')}`));
  const mn = await loadMnConfig(join(device, 'mn.toml'));
  t.equal(mn.home.address, '2001:db8:100::10');
  t.same(mn.home.agents, ['198.51.100.1', 'ha.example.net']);
  t.equal(mn.home.agentAddress, '2001:db8:100::1');
  t.equal(mn.controlSocket, '/run/x.sock');
  t.equal(mode(join(device, 'laptop.key')), '600');
  t.equal(mode(device), '700');
  const cert = readCertificate(mn.identity.certificate);
  t.equal(verifyCertificate(cert, readAuthorityPublic(mn.identity.authority), Date.now()), 'ok');
  t.same(readMemberPrivate(mn.identity.privateKey).publicKey, cert.publicKey);
  t.same(
    readFileSync(mn.home.agentPublicKey!, 'utf8').split('\n').at(-2),
    readFileSync(join(dir, 'ha.pub'), 'utf8').split('\n').at(-2),
    "the home agent's key pinned",
  );

  const again = await mip6('join', file, '--dir', device, '--control-socket', '/run/x.sock');
  t.equal(again.code, 0, 'joining again with the same file changes nothing: fine');
  const cn = await mip6('join', join(ca, 'members', 'phone.join'), '--dir', join(root, 'phone'));
  t.equal(cn.code, 0, cn.err);
  const cnCfg = await loadCnConfig(join(root, 'phone', 'cn.toml'));
  t.equal(cnCfg.routeOptimization.enabled, true);
  t.equal(cnCfg.underlay.port, 4191);

  const list = await mip6('member', 'list', '--ca', ca);
  t.match(list.out, /^name +role +address +state +valid until\n/);
  t.match(list.out, /\nlaptop +mn +2001:db8:100::10 +active/);
  const json = JSON.parse((await mip6('member', 'list', '--ca', ca, '--json')).out) as unknown[];
  t.equal(json.length, 3);
});

void t.test('member add --pub: the private key never leaves the device', async (t) => {
  const root = tempDir(t);
  const { ca } = await homeAgent(root);
  const device = join(root, 'tablet');
  await mip6('keygen', '--out', join(device, 'tablet'));
  const r = await mip6('member', 'add', 'tablet', '--pub', join(device, 'tablet.pub'), '--ca', ca);
  t.equal(r.code, 0, r.err);
  t.notMatch(r.out, /private key/);
  const file = join(ca, 'members', 'tablet.join');
  t.notMatch(readFileSync(file, 'utf8'), /private_key/, 'no private key in the file');
  const other = join(root, 'elsewhere');
  const noKey = await mip6('join', file, '--dir', other);
  t.equal(noKey.code, 1);
  t.match(noKey.err, /^mip6: ERR_ENROLMENT: .*carries no private key .*--key FILE.*\n$/);
  const joined = await mip6('join', file, '--dir', device);
  t.equal(joined.code, 0, `its own DIR/NAME.key is found: ${joined.err}`);
  const withKey = await mip6('join', file, '--dir', other, '--key', join(device, 'tablet.key'));
  t.equal(withKey.code, 0, withKey.err);
  const dup = await mip6('member', 'add', 'tab2', '--pub', join(device, 'tablet.pub'), '--ca', ca);
  t.match(dup.err, /^mip6: ERR_MEMBER: .*this key belongs to member tablet/);
});

void t.test('member remove: revocation list, SIGHUP to the running home agent', async (t) => {
  const root = tempDir(t);
  const socket = join(root, 'ha.sock');
  const { dir, ca } = await homeAgent(root, '--control-socket', socket);
  await mip6('member', 'add', 'laptop', '--ca', ca);
  await mip6('member', 'add', 'phone', '--ca', ca);
  // A stand-in home agent: answers status with our pid and counts SIGHUPs.
  const server = await startControlServer(socket, { status: () => ({ pid: process.pid }) });
  t.teardown(() => server.close());
  let hangups = 0;
  const onHup = (): void => void hangups++;
  process.on('SIGHUP', onHup);
  t.teardown(() => process.off('SIGHUP', onHup));

  const r = await mip6('member', 'remove', 'laptop', '--ca', ca);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /revoked laptop \(2001:db8:100::10\)/);
  t.match(r.out, new RegExp(`home agent \\(pid ${process.pid}\\) reloads the list`));
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.equal(hangups, 1, 'SIGHUP sent');
  t.notOk(existsSync(join(ca, 'members', 'laptop.join')), 'its enrolment file is deleted');
  const list = parseRevocationList(readFileSync(join(dir, 'revoked.txt'), 'utf8'), 'r');
  t.equal(list.size, 1);
  t.equal(list.entries[0]?.name, 'laptop');
  t.match((await mip6('member', 'list', '--ca', ca)).out, /laptop +mn +2001:db8:100::10 +removed/);

  // Enrolled again: a new key and a new address; the old ones are never handed out again.
  const back = await mip6('member', 'add', 'laptop', '--ca', ca);
  t.match(back.out, /home address 2001:db8:100::12/);
  const quiet = await mip6('member', 'remove', 'phone', '--ca', ca, '--no-reload');
  t.match(quiet.out, /refuses it after its next reload/);
  t.equal(hangups, 1, 'no signal with --no-reload');
  await server.close();
  const gone = await mip6('member', 'remove', 'laptop', '--ca', ca);
  t.match(gone.out, /home agent not reached \(no answer on .*\): it refuses laptop when it/);
  t.equal(parseRevocationList(readFileSync(join(dir, 'revoked.txt'), 'utf8'), 'r').size, 3);
});

void t.test('every refusal is one line, and nothing is overwritten', async (t) => {
  const root = tempDir(t);
  const { dir, ca } = await homeAgent(root);
  await mip6('member', 'add', 'laptop', '--ca', ca);
  writeFileSync(join(root, 'junk.join'), 'format = "something else"\n');
  mkdirSync(join(root, 'taken'));
  writeFileSync(join(root, 'taken', 'mn.toml'), '# mine\n');
  const before = readFileSync(join(dir, 'ha.toml'), 'utf8');
  const cases: [string[], RegExp][] = [
    [
      [
        'init',
        'ha',
        '--address',
        '198.51.100.1',
        '--prefix',
        '2001:db8:100::/64',
        '--dir',
        dir,
        '--ca',
        ca,
      ],
      /^mip6: ERR_EXISTS: .*\/ha\.key \(and 4 more\): already exists; refusing to overwrite \(add --force to replace\)$/,
    ],
    [
      [
        'init',
        'ha',
        '--address',
        '198.51.100.1',
        '--prefix',
        '2001:db8:100::1/64',
        '--dir',
        join(root, 'x'),
      ],
      /^mip6: ERR_CONFIG: command line: --prefix: not an IPv6 prefix with its host bits zero: "2001:db8:100::1\/64"/,
    ],
    [
      [
        'init',
        'ha',
        '--address',
        'bad host!',
        '--prefix',
        '2001:db8:100::/64',
        '--dir',
        join(root, 'x'),
      ],
      /^mip6: ERR_CONFIG: command line: --address: "bad host!" is neither an IPv4 address, an IPv6 address nor a host name$/,
    ],
    [
      [
        'init',
        'ha',
        '--address',
        '192.0.2.1',
        '--prefix',
        '2001:db8::/64',
        '--dir',
        '/proc/mip6-test',
        '--ca',
        join(root, 'c2'),
      ],
      /^mip6: ERR_DIR: \/proc\/mip6-test: cannot create the directory: /,
    ],
    [
      ['member', 'add', 'Laptop!', '--ca', ca],
      /^mip6: ERR_CONFIG: command line: NAME: "Laptop!" is not a member name: 1-63 of a-z 0-9 \. _ -, starting with a letter or digit$/,
    ],
    [
      ['member', 'add', 'laptop', '--ca', ca],
      /^mip6: ERR_MEMBER: laptop: already a member \(mn, 2001:db8:100::10\)/,
    ],
    [
      ['member', 'add', 'tv', '--ipv4', '--ca', ca],
      /^mip6: ERR_UNSUPPORTED: --ipv4: an IPv4 home address \(RFC 5555\) is not part of the enrolment: the home agent assigns one from its \[home\] ipv4_pool/,
    ],
    [
      ['member', 'add', 'tv', '--role', 'ha', '--ca', ca],
      /^mip6: ERR_CONFIG: command line: --role: must be mn or cn, got "ha"$/,
    ],
    [
      ['member', 'add', 'tv', '--ca', join(root, 'nowhere')],
      /^mip6: ERR_AUTHORITY: .*\/nowhere: no overlay authority here \(authority.key missing\): run `mip6 init ha` first, or give --ca DIR$/,
    ],
    [
      ['member', 'add', 'tv', '--ca', '/etc/passwd'],
      /^mip6: ERR_AUTHORITY: \/etc\/passwd: cannot reach the authority: a part of the path is not a directory$/,
    ],
    [
      ['member', 'remove', 'tv', '--ca', ca],
      /^mip6: ERR_MEMBER: tv: no such member \(see: mip6 member list\)$/,
    ],
    [
      ['member', 'remove', 'ha', '--ca', ca],
      /^mip6: ERR_MEMBER: ha: is the home agent itself; it cannot be removed$/,
    ],
    [
      ['member', 'list', '--ca', join(root, 'nowhere')],
      /^mip6: ERR_REGISTRY: .*members\.json: no member registry here/,
    ],
    [
      ['join', join(root, 'junk.join'), '--dir', join(root, 'y')],
      /^mip6: ERR_ENROLMENT: .*junk\.join: not a mip6 enrolment file \(expected format = "mip6-enrolment-v1"\)$/,
    ],
    [
      ['join', join(root, 'none.join')],
      /^mip6: ERR_READ: .*none\.join: cannot read the enrolment file: no such file or directory$/,
    ],
    [
      ['join', join(ca, 'members', 'laptop.join'), '--dir', join(root, 'taken')],
      /^mip6: ERR_EXISTS: .*taken\/mn\.toml: already exists; refusing to overwrite \(add --force to replace\)$/,
    ],
    [
      ['service', 'install', 'mn', '--dir', dir, '--unit-dir', join(root, 'units'), '--no-enable'],
      /^mip6: ERR_SERVICE: .*\/mn\.toml: no such file: run `mip6 join FILE` first \(or give --dir\)$/,
    ],
  ];
  for (const [args, message] of cases) {
    const r = await mip6(...args);
    t.equal(r.code, 1, `exit 1: ${args.slice(0, 3).join(' ')}`);
    t.match(r.err.trimEnd(), message, args.slice(0, 3).join(' '));
    t.equal(r.err.split('\n').length, 2, 'one line');
  }
  t.equal(readFileSync(join(dir, 'ha.toml'), 'utf8'), before, 'ha.toml untouched');
  t.equal(readFileSync(join(root, 'taken', 'mn.toml'), 'utf8'), '# mine\n', 'mn.toml untouched');
  t.notOk(existsSync(join(root, 'taken', 'laptop.key')), 'nothing half written');

  // A certificate the enrolment's authority did not sign.
  const file = join(ca, 'members', 'laptop.join');
  const text = readFileSync(file, 'utf8');
  const forged = text.replace(
    /^authority = .*$/m,
    `authority = "${readFileSync(join(dir, 'ha.pub'), 'utf8').split('\n').at(-2)!.replace('member-public', 'authority-public')}"`,
  );
  writeFileSync(join(root, 'forged.join'), forged);
  const f = await mip6('join', join(root, 'forged.join'), '--dir', join(root, 'z'));
  t.match(
    f.err,
    /^mip6: ERR_ENROLMENT: .*forged\.join: its certificate does not verify under its authority \(bad-certificate\)\n$/,
  );

  // --force replaces, and keeps the home agent's key (members pin it).
  const key = readFileSync(join(dir, 'ha.key'), 'utf8');
  const forcedRun = (await homeAgent(root, '--force')).r;
  t.equal(forcedRun.code, 0, forcedRun.err);
  t.match(forcedRun.out, /mode 0600, kept/);
  t.equal(readFileSync(join(dir, 'ha.key'), 'utf8'), key, 'key kept');
  chmodSync(join(dir, 'ha.key'), 0o644);
  const loose = (await homeAgent(root, '--force')).r;
  t.match(
    loose.err,
    /^mip6: ERR_KEY_PERMISSIONS: .*ha\.key: private key is accessible by group\/others \(mode 0644\); run: chmod 600 /,
  );
});

void t.test('service install writes the unit of contrib/ for this installation', async (t) => {
  const root = tempDir(t);
  const { dir } = await homeAgent(root);
  const units = join(root, 'units');
  const log = join(root, 'systemctl.log');
  const fake = join(root, 'systemctl');
  writeFileSync(fake, `#!/bin/sh\necho "$@" >> ${log}\necho enabled\n`, { mode: 0o755 });
  const user = process.getuid?.() === 0 ? 'root' : String(process.getuid?.());
  const saved = process.env.MIP6_SYSTEMCTL;
  process.env.MIP6_SYSTEMCTL = fake;
  const install = (unitDir: string, ...extra: string[]) =>
    mip6('service', 'install', 'ha', '--dir', dir, '--unit-dir', unitDir, '--user', user, ...extra);
  t.teardown(() => {
    if (saved === undefined) delete process.env.MIP6_SYSTEMCTL;
    else process.env.MIP6_SYSTEMCTL = saved;
  });
  const r = await install(units);
  t.equal(r.code, 0, r.err);
  const unit = readFileSync(join(units, 'mip6-ha.service'), 'utf8');
  t.match(unit, /^# Written by `mip6 service install ha` from contrib\/mip6-ha\.service\.$/m);
  t.match(
    unit,
    new RegExp(
      `^ExecStart=${process.execPath} \\S+/bin/mip6 ha -c ${join(dir, 'ha.toml')} --log-format json$`,
      'm',
    ),
  );
  t.match(unit, new RegExp(`^ReadOnlyPaths=${dir}$`, 'm'));
  t.match(unit, new RegExp(`^User=${user}$`, 'm'));
  t.match(unit, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m, 'reload = SIGHUP (revocation list)');
  t.match(unit, /^CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW$/m, 'the least-privilege unit');
  t.equal(mode(join(units, 'mip6-ha.service')), '644');
  t.same(readFileSync(log, 'utf8').trim().split('\n'), [
    'daemon-reload',
    `enable --now ${join(units, 'mip6-ha.service')}`,
  ]);
  t.match(r.out, /gave 6 file\(s\) to /);
  t.match(r.out, /enabled and started mip6-ha\.service/);

  const twice = await install(units, '--no-enable');
  t.equal(twice.code, 0, 'the same unit again: fine');
  writeFileSync(join(units, 'mip6-ha.service'), '# edited\n');
  const edited = await install(units);
  t.match(
    edited.err,
    /^mip6: ERR_EXISTS: .*mip6-ha\.service: already exists; refusing to overwrite/,
  );

  const st = await mip6('service', 'status', '--dir', dir, '--unit-dir', units);
  t.equal(st.code, 0, st.err);
  t.match(
    st.out,
    /^mip6-ha\.service: installed \(.*\), enabled, enabled\n {2}daemon: not answering \(no mip6 daemon at \/run\/mip6\/ha\.sock/,
  );

  delete process.env.MIP6_SYSTEMCTL;
  const elsewhere = await install(join(root, 'u2'));
  t.match(
    elsewhere.out,
    /not enabled: .*u2\/mip6-ha\.service is outside \/etc\/systemd\/system/,
    'never links a test unit into systemd',
  );
});

void t.test(
  'service install gives the service user what the daemon reads, and nothing else',
  { skip: process.getuid?.() === 0 ? false : 'needs root (chown)' },
  async (t) => {
    const root = tempDir(t);
    const { dir, ca } = await homeAgent(root);
    const nobody = resolveUser('nobody');
    const r = await mip6(
      'service',
      'install',
      'ha',
      '--dir',
      dir,
      '--unit-dir',
      join(root, 'units'),
      '--user',
      'nobody',
      '--no-enable',
    );
    t.equal(r.code, 0, r.err);
    t.match(readFileSync(join(root, 'units', 'mip6-ha.service'), 'utf8'), /^User=nobody$/m);
    for (const f of ['', 'ha.toml', 'ha.key', 'ha.cert', 'authority.pub', 'revoked.txt']) {
      t.equal(statSync(join(dir, f)).uid, nobody.uid, `${f || 'the directory'}: nobody's`);
    }
    t.equal(statSync(join(dir, 'ha.key')).mode & 0o777, 0o600, 'the key keeps its mode');
    for (const f of [ca, join(ca, 'authority.key'), join(ca, 'members.json')]) {
      t.equal(statSync(f).uid, 0, `${f}: still root's`);
    }
  },
);
