/**
 * Every configuration mistake a user can make produces ONE line on stderr naming the file, the
 * key or the flag and the cause, and exit status 1 (issue 9). Each case runs the real CLI
 * (`node --import tsx src/cli/main.ts ha|mn -c FILE`) as a child and compares the whole stderr
 * with the exact expected line. Cases that get as far as the TUN run in a fresh network
 * namespace; "missing /dev/net/tun" hides the device in a private mount namespace.
 * Also: `--user` drops root for good after start-up (uid, no capabilities left for an HA without
 * a home link) while the daemon keeps serving its control socket; the roles that keep
 * capabilities are checked in the lab (test/lab/least-privilege.test.ts).
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { controlRequest } from '../../src/io/control-socket.js';
import { createNetns, nativeSkipReason, REPO_ROOT, run, uniqueName } from '../helpers/netns.js';
import { waitFor } from '../helpers/wait.js';
import { MAIN, Provisioned, type MemberFiles } from '../lab/mip6-lab.js';

const skip = nativeSkipReason();
const PREFIX = '2001:db8:100::/64';
const HOA = '2001:db8:100::10';

interface Run {
  code: number | null;
  stderr: string;
}

/** Runs the CLI (optionally behind a command prefix such as `ip netns exec NS`), bounded. */
function cli(args: string[], prefix: string[] = [], timeoutMs = 20_000): Promise<Run> {
  const argv = [...prefix, process.execPath, '--import', 'tsx', MAIN, ...args];
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

if (skip) {
  void t.test(`daemon input errors`, { skip }, () => undefined);
} else {
  const prov = await Provisioned.create();
  t.teardown(() => prov.remove());
  const ha = await prov.member('ha', 'ha', [PREFIX]);
  const mn = await prov.member('laptop', 'mn', [HOA]);
  const other = await Provisioned.create();
  t.teardown(() => other.remove());

  const haConfig = (
    name: string,
    files: MemberFiles,
    opts: { prefix?: string; authority?: string; tun?: string; listen?: string } = {},
  ): string =>
    prov.write(
      name,
      `control_socket = "${join(prov.dir, `${name}.sock`)}"
[identity]
private_key = "${files.key}"
certificate = "${files.cert}"
authority = "${opts.authority ?? prov.authorityPub}"
[tun]
name = "${opts.tun ?? 'mip6in'}"
[listen]
address4 = "${opts.listen ?? '127.0.0.1'}"
address6 = "off"
[home]
prefix = "${opts.prefix ?? PREFIX}"
`,
    );
  const mnConfig = (name: string, address: string): string =>
    prov.write(
      name,
      `control_socket = "${join(prov.dir, `${name}.sock`)}"
[identity]
private_key = "${mn.key}"
certificate = "${mn.cert}"
authority = "${prov.authorityPub}"
[home]
address = "${address}"
agent = "127.0.0.1"
agent_public_key = "${ha.pub}"
`,
    );

  const expectLine = (name: string, args: string[], line: string, prefix: string[] = []): void => {
    void t.test(name, async (t) => {
      const r = await cli(args, prefix);
      t.equal(r.stderr, `${line}\n`, 'exactly one line, naming file/key and cause');
      t.equal(r.code, 1, 'exit status 1');
    });
  };

  // ---- configuration files ----
  const badAddr = mnConfig('bad-address.toml', '2001:db8:100::zz');
  expectLine(
    'bad address',
    ['mn', '-c', badAddr],
    `mip6: ERR_CONFIG: ${badAddr}: home.address: "2001:db8:100::zz" is not a valid IPv6 address`,
  );
  const badReturn = prov.write(
    'bad-return-home.toml',
    `${readFileSync(mnConfig('return-home.toml', HOA), 'utf8')}[movement]\nreturn_home = "no"\n`,
  );
  expectLine(
    'return_home not a boolean',
    ['mn', '-c', badReturn],
    `mip6: ERR_CONFIG: ${badReturn}: movement.return_home: expected true or false, got a string`,
  );
  const syntax = prov.write('syntax.toml', '[home\nprefix = 1\n');
  expectLine(
    'TOML syntax error',
    ['ha', '-c', syntax],
    `mip6: ERR_CONFIG: ${syntax}: line 1: TOML syntax error at column 6: illegal character in key`,
  );
  const missing = join(prov.dir, 'nope.toml');
  expectLine(
    'missing config file',
    ['ha', '-c', missing],
    `mip6: ERR_CONFIG: ${missing}: (file): cannot read the config file: no such file`,
  );

  // ---- [home] state (issue 20): a file that is not a binding store of ours ----
  const junk = prov.write(
    'junk.db',
    'not a database at all, but long enough to look like a file\n'.repeat(100),
  );
  const junkState = prov.write(
    'junk-state.toml',
    `${readFileSync(haConfig('junk-state-base.toml', ha), 'utf8')}state = "${junk}"\n`,
  );
  expectLine(
    'a corrupt [home] state file',
    ['ha', '-c', junkState],
    `mip6: ERR_STATE_CORRUPT: ${junk}: not a mip6 binding store (not an SQLite database)`,
  );
  const emptyState = prov.write(
    'empty-state.toml',
    `${readFileSync(haConfig('empty-state-base.toml', ha), 'utf8')}state = ""\n`,
  );
  expectLine(
    'an empty [home] state',
    ['ha', '-c', emptyState],
    `mip6: ERR_CONFIG: ${emptyState}: home.state: expected a file path, got an empty string`,
  );

  // ---- certificate scope ----
  const wrongPrefix = haConfig('wrong-prefix.toml', ha, { prefix: '2001:db8:200::/64' });
  expectLine(
    'HA prefix outside the HA certificate',
    ['ha', '-c', wrongPrefix],
    `mip6: ERR_CONFIG: ${wrongPrefix}: home.prefix: 2001:db8:200::/64 is not within our ` +
      `certificate ${ha.cert} (it allows ${PREFIX})`,
  );
  const widerPrefix = haConfig('wider-prefix.toml', ha, { prefix: '2001:db8::/48' });
  expectLine(
    'HA prefix wider than the HA certificate',
    ['ha', '-c', widerPrefix],
    `mip6: ERR_CONFIG: ${widerPrefix}: home.prefix: 2001:db8::/48 is not within our ` +
      `certificate ${ha.cert} (it allows ${PREFIX})`,
  );
  const wrongHoa = mnConfig('wrong-hoa.toml', '2001:db8:100::11');
  expectLine(
    'MN home address not in the MN certificate',
    ['mn', '-c', wrongHoa],
    `mip6: ERR_CONFIG: ${wrongHoa}: home.address: 2001:db8:100::11 is not allowed by our ` +
      `certificate ${mn.cert} (it allows ${HOA})`,
  );
  const wrongV4 = prov.write(
    'wrong-ipv4.toml',
    readFileSync(mnConfig('wrong-ipv4-base.toml', HOA), 'utf8').replace(
      '[home]',
      '[home]\nipv4_address = "10.99.0.7"',
    ),
  );
  expectLine(
    'MN fixed IPv4 home address not in the MN certificate (issue #15)',
    ['mn', '-c', wrongV4],
    `mip6: ERR_CONFIG: ${wrongV4}: home.ipv4_address: 10.99.0.7 is not allowed by our ` +
      `certificate ${mn.cert} (it would hold ::ffff:10.99.0.7; it allows ${HOA}); use "auto" ` +
      'for an address from the pool',
  );

  // ---- keys and authority ----
  const noKey = { ...ha, key: join(prov.dir, 'absent.key') };
  const noKeyConfig = haConfig('no-key.toml', noKey);
  expectLine(
    'unreadable private key',
    ['ha', '-c', noKeyConfig],
    `mip6: ERR_KEY_FILE: ${noKey.key}: cannot read (ENOENT)`,
  );
  const looseKey = join(prov.dir, 'loose.key');
  copyFileSync(ha.key, looseKey);
  chmodSync(looseKey, 0o644);
  const looseConfig = haConfig('loose-key.toml', { ...ha, key: looseKey });
  expectLine(
    'private key readable by others',
    ['ha', '-c', looseConfig],
    `mip6: ERR_KEY_PERMISSIONS: ${looseKey}: private key is accessible by group/others ` +
      `(mode 0644); run: chmod 600 ${looseKey}`,
  );
  const wrongCa = haConfig('wrong-ca.toml', ha, { authority: other.authorityPub });
  expectLine(
    'wrong authority',
    ['ha', '-c', wrongCa],
    `mip6: ERR_OWN_CERTIFICATE: ${ha.cert}: our certificate is not usable: bad-certificate ` +
      `(checked against the authority ${other.authorityPub}, role ha)`,
  );
  const wrongRole = haConfig('wrong-role.toml', mn);
  expectLine(
    'certificate of another role',
    ['ha', '-c', wrongRole],
    `mip6: ERR_OWN_CERTIFICATE: ${mn.cert}: our certificate is not usable: wrong-role ` +
      `(checked against the authority ${prov.authorityPub}, role ha)`,
  );

  // ---- privileges ----
  const plain = haConfig('plain.toml', ha);
  expectLine(
    'unknown --user',
    ['ha', '-c', plain, '--user', 'no-such-user-mip6'],
    'mip6: ERR_USER: --user no-such-user-mip6: no such user in /etc/passwd',
  );
  const noGroup = prov.write(
    'no-group.toml',
    'control_group = "no-such-group-mip6"\n' + readFileSync(plain, 'utf8'),
  );
  expectLine(
    'unknown control_group',
    ['ha', '-c', noGroup],
    `mip6: ERR_CONFIG: ${noGroup}: control_group: no such group "no-such-group-mip6" in /etc/group`,
  );
  const badGroup = prov.write(
    'bad-group.toml',
    'control_group = "wheel; rm"\n' + readFileSync(plain, 'utf8'),
  );
  expectLine(
    'malformed control_group',
    ['ha', '-c', badGroup],
    `mip6: ERR_CONFIG: ${badGroup}: control_group: "wheel; rm" is not a group name or a numeric gid`,
  );

  // ---- the operating system ----
  void t.test('port in use', async (t) => {
    const ns = await createNetns(t, 'ie');
    const blocker: ChildProcess = spawn(
      'ip',
      ['netns', 'exec', ns, 'socat', '-u', 'UDP4-RECV:4191,bind=127.0.0.1', 'OPEN:/dev/null'],
      { stdio: 'ignore' },
    );
    t.teardown(() => {
      blocker.kill('SIGKILL');
    });
    // socat is listening once the port shows up in the namespace.
    await waitFor(
      'socat bound to 127.0.0.1:4191',
      async () => (await run('ip', ['netns', 'exec', ns, 'ss', '-uln'])).includes('127.0.0.1:4191'),
      5000,
      25,
    );
    const cfg = haConfig('port.toml', ha, { tun: uniqueName('pi') });
    const r = await cli(['ha', '-c', cfg], ['ip', 'netns', 'exec', ns]);
    t.equal(
      r.stderr,
      'mip6: ERR_PORT_IN_USE: cannot listen on UDP 127.0.0.1:4191: the port is in use (another mip6?)\n',
    );
    t.equal(r.code, 1);
  });

  void t.test('missing /dev/net/tun', async (t) => {
    const cfg = haConfig('no-tun.toml', ha, { tun: 'mip6nt' });
    // A private mount namespace where /dev/net is an empty tmpfs: the host is untouched.
    const r = await cli(
      ['ha', '-c', cfg],
      [
        'unshare',
        '-m',
        '--propagation',
        'private',
        'sh',
        '-c',
        'mount -t tmpfs none /dev/net && exec "$@"',
        'sh',
      ],
    );
    t.equal(
      r.stderr,
      'mip6: ERR_TUN_UNAVAILABLE: cannot open TUN device mip6nt: /dev/net/tun is missing; load ' +
        'the tun module (`modprobe tun`) or, in a container, pass the device through ' +
        '(--device /dev/net/tun)\n',
    );
    t.equal(r.code, 1);
  });

  void t.test('an unwritable pcap path is reported, not fatal', async (t) => {
    const ns = await createNetns(t, 'ip');
    const cfg = haConfig('pcap.toml', ha, { tun: uniqueName('pp') });
    const pcap = join(prov.dir, 'no-such-dir', 'inner.pcap');
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns,
        process.execPath,
        '--import',
        'tsx',
        MAIN,
        'ha',
        '-c',
        cfg,
        '--log-format',
        'json',
        '--pcap',
        pcap,
      ],
      { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let exited: number | null | undefined;
    const exit = new Promise<number | null>((resolve) =>
      child.on('close', (code) => resolve((exited = code))),
    );
    t.teardown(() => {
      if (exited === undefined) child.kill('SIGKILL');
    });
    let log = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not started: ${log}`)), 20_000);
      child.stderr.on('data', (d: Buffer) => {
        log += d.toString();
        if (log.includes('"event":"started"')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    const line = log.split('\n').find((l) => l.includes('"event":"pcap"')) ?? '';
    const entry = JSON.parse(line || '{}') as Record<string, unknown>;
    t.equal(entry['level'], 'error', 'logged as an error');
    t.equal(entry['file'], pcap, 'naming the file');
    t.match(String(entry['error']), /ENOENT/, 'and the cause');
    t.equal(entry['note'], 'capture disabled');
    const st = (await controlRequest(join(prov.dir, 'pcap.toml.sock'), { cmd: 'status' })) as {
      role?: string;
    };
    t.equal(st.role, 'ha', 'the daemon runs on without capture');
    child.kill('SIGTERM');
    t.equal(await exit, 0, 'clean exit');
  });

  void t.test('--user drops root for good and the daemon keeps serving', async (t) => {
    const ns = await createNetns(t, 'iu');
    const cfg = haConfig('user.toml', ha, { tun: uniqueName('pu') });
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns,
        process.execPath,
        '--import',
        'tsx',
        MAIN,
        'ha',
        '-c',
        cfg,
        '--log-format',
        'json',
        '--user',
        'nobody',
      ],
      { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let exited: number | null | undefined;
    const exit = new Promise<number | null>((resolve) =>
      child.on('close', (code) => resolve((exited = code))),
    );
    t.teardown(() => {
      if (exited === undefined) child.kill('SIGKILL');
    });
    let log = '';
    const started = new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no privileges line: ${log}`)), 20_000);
      child.stderr.on('data', (d: Buffer) => {
        log += d.toString();
        for (const l of log.split('\n')) {
          if (l.includes('"event":"started"')) {
            clearTimeout(timer);
            resolve(JSON.parse(l) as Record<string, unknown>);
          }
        }
      });
    });
    await started;
    t.match(log, /"event":"privileges".*"user":"nobody".*"uid":65534/, 'logged the switch');
    // The daemon is `node` (ip netns exec execs it); read its credentials from /proc.
    const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
    t.match(
      status,
      /^Uid:\s+65534\s+65534\s+65534\s+65534$/m,
      'real, effective, saved uid: nobody',
    );
    t.match(status, /^Gid:\s+65534\s+65534\s+65534\s+65534$/m, 'gid: nogroup');
    t.match(status, /^CapEff:\s+0+$/m, 'no effective capabilities');
    t.match(status, /^CapPrm:\s+0+$/m, 'no permitted capabilities');
    t.match(status, /^CapAmb:\s+0+$/m, 'no ambient capabilities');
    t.match(status, /^CapBnd:\s+0+$/m, 'empty bounding set');
    t.match(status, /^NoNewPrivs:\s+1$/m, 'no_new_privs');
    const st = (await controlRequest(join(prov.dir, 'user.toml.sock'), { cmd: 'status' })) as {
      role?: string;
    };
    t.equal(st.role, 'ha', 'the control socket still answers');
    child.kill('SIGTERM');
    t.equal(await exit, 0, 'clean exit after SIGTERM');
  });
}
