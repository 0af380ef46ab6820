/**
 * The key CLI end to end in a temp directory, through buildProgram() (the same commander
 * program bin/mip6 runs), plus the file rules: 0600 private keys, refusal of looser modes.
 */
import t from 'tap';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildProgram } from '../../src/cli/program.js';
import { certIssue } from '../../src/cli/keys.js';
import { formatAllowedPrefix, verifyCertificate } from '../../src/crypto/certificate.js';
import {
  readAuthorityPublic,
  readCertificate,
  readMemberPrivate,
  readMemberPublic,
} from '../../src/cli/key-files.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { BindingCache } from '../../src/protocol/binding-cache.js';
import {
  processHomeBindingUpdate,
  type RegistrationPeer,
} from '../../src/protocol/home-agent-registration.js';
import { certificateAllows } from '../../src/roles/ha/home-agent.js';
import { CryptoError } from '../../src/util/errors.js';
import { bindingUpdateFlags } from '../../src/wire/types.js';

await initCrypto();

async function run(...args: string[]): Promise<string> {
  const program = buildProgram();
  program.exitOverride();
  const chunks: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((s: string) => {
    chunks.push(String(s));
    return true;
  }) as typeof process.stdout.write;
  try {
    await program.parseAsync(['node', 'mip6', ...args]);
  } finally {
    process.stdout.write = write;
  }
  return chunks.join('');
}

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), `mip6-keys-${process.pid}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

void t.test('ca init, keygen, cert issue/show/verify end to end', async (t) => {
  const dir = tempDir(t);
  const caDir = join(dir, 'ca');
  await run('ca', 'init', '--out', caDir);
  t.equal(statSync(join(caDir, 'authority.key')).mode & 0o777, 0o600);
  t.match(readFileSync(join(caDir, 'authority.pub'), 'utf8'), /^mip6-authority-public-v1 \S{44}$/m);

  await run('keygen', '--out', join(dir, 'laptop'));
  t.equal(statSync(join(dir, 'laptop.key')).mode & 0o777, 0o600);
  const kp = readMemberPrivate(join(dir, 'laptop.key'));
  t.same(kp.publicKey, readMemberPublic(join(dir, 'laptop.pub')), 'public matches private');

  const certFile = join(dir, 'laptop.cert');
  const printed = await run(
    'cert',
    'issue',
    '--ca',
    caDir,
    '--pub',
    join(dir, 'laptop.pub'),
    '--name',
    'laptop',
    '--address',
    '2001:db8:1::10',
    '--address',
    'fd00:1:2::/64',
    '--role',
    'mn',
    '--days',
    '30',
    '--out',
    certFile,
  );
  t.match(printed, /role:\s+mn/);
  const cert = readCertificate(certFile);
  t.equal(cert.name, 'laptop');
  t.equal(cert.role, 'mn');
  t.same(cert.publicKey, kp.publicKey);
  t.same(cert.addresses.map(formatAllowedPrefix), ['2001:db8:1::10', 'fd00:1:2::/64']);
  t.equal(cert.notAfter - cert.notBefore, 30 * 86_400 + 300);
  t.equal(
    verifyCertificate(cert, readAuthorityPublic(join(caDir, 'authority.pub')), Date.now()),
    'ok',
  );

  const shown = await run('cert', 'show', certFile);
  t.match(shown, /name:\s+laptop/);
  t.match(shown, /addresses:\s+2001:db8:1::10, fd00:1:2::\/64/);

  t.match(await run('cert', 'verify', '--ca', join(caDir, 'authority.pub'), certFile), /: ok/);
  t.match(await run('cert', 'verify', '--ca', caDir, certFile), /: ok/, 'CA directory accepted');

  // Another authority: verify fails with a one-line error naming the file.
  const otherCa = join(dir, 'other');
  await run('ca', 'init', '--out', otherCa);
  await t.rejects(run('cert', 'verify', '--ca', otherCa, certFile), {
    code: 'ERR_CERT_INVALID',
    message: `${certFile}: bad-certificate`,
  });
  // Expired (issued in the past with 1 day of validity).
  const old = join(dir, 'old.cert');
  await certIssue({
    ca: caDir,
    pub: join(dir, 'laptop.pub'),
    name: 'laptop',
    address: ['2001:db8:1::10'],
    role: 'mn',
    days: 1,
    out: old,
    now: Date.now() - 3 * 86_400_000,
  });
  await t.rejects(run('cert', 'verify', '--ca', caDir, old), {
    code: 'ERR_CERT_INVALID',
    message: `${old}: expired-certificate`,
  });
  // Tampered certificate file.
  const text = readFileSync(certFile, 'utf8');
  const line = text.split('\n').find((l) => l.startsWith('mip6-certificate-v1'))!;
  const raw = Buffer.from(line.split(' ')[1]!, 'base64');
  raw[60] = raw[60]! ^ 1; // a byte of the name
  const tampered = join(dir, 'tampered.cert');
  writeFileSync(tampered, `mip6-certificate-v1 ${raw.toString('base64')}\n`);
  await t.rejects(run('cert', 'verify', '--ca', caDir, tampered), { code: 'ERR_CERT_INVALID' });
});

void t.test('private key files readable by group/others are refused', async (t) => {
  const dir = tempDir(t);
  await run('keygen', '--out', join(dir, 'ha'));
  const key = join(dir, 'ha.key');
  chmodSync(key, 0o644);
  t.throws(() => readMemberPrivate(key), {
    name: 'CryptoError',
    code: 'ERR_KEY_PERMISSIONS',
    message: `${key}: private key is accessible by group/others (mode 0644); run: chmod 600 ${key}`,
  });
  await run('ca', 'init', '--out', join(dir, 'ca'));
  chmodSync(join(dir, 'ca', 'authority.key'), 0o640);
  await t.rejects(
    run(
      'cert',
      'issue',
      '--ca',
      join(dir, 'ca'),
      '--pub',
      join(dir, 'ha.pub'),
      '--name',
      'ha',
      '--address',
      '2001:db8:1::1',
      '--role',
      'ha',
      '--out',
      join(dir, 'ha.cert'),
    ),
    { code: 'ERR_KEY_PERMISSIONS', message: /chmod 600 .*authority\.key$/ },
  );
  chmodSync(key, 0o600);
  t.ok(readMemberPrivate(key), 'accepted after chmod 600');
});

void t.test('bad input gives one-line coded errors naming the file or option', async (t) => {
  const dir = tempDir(t);
  await run('ca', 'init', '--out', join(dir, 'ca'));
  await run('keygen', '--out', join(dir, 'm'));
  const issue = (...extra: string[]) =>
    run(
      'cert',
      'issue',
      '--ca',
      join(dir, 'ca'),
      '--pub',
      join(dir, 'm.pub'),
      '--name',
      'm',
      '--out',
      join(dir, `m-${extra.join('')}.cert`),
      ...extra,
    );
  await t.rejects(issue('--address', '2001:db8::1', '--role', 'xx'), {
    code: 'ERR_CONFIG',
    message: 'command line: --role: must be one of ha, mn, cn, got "xx"',
  });
  await t.rejects(issue('--address', '2001:db8::1/32', '--role', 'mn'), {
    code: 'ERR_CONFIG',
    message: /--address: not an IPv6 address or prefix/,
  });
  await t.rejects(issue('--address', '2001:db8::1', '--role', 'mn', '--days', '0'), {
    code: 'ERR_CONFIG',
  });
  await t.rejects(run('ca', 'init', '--out', join(dir, 'ca')), {
    code: 'ERR_KEY_FILE',
    message: /authority\.key: already exists/,
  });
  writeFileSync(join(dir, 'garbage.pub'), 'hello\n');
  t.throws(() => readMemberPublic(join(dir, 'garbage.pub')), {
    code: 'ERR_BAD_KEY',
    message: `${join(dir, 'garbage.pub')}: expected "mip6-member-public-v1 <base64>", found "hello"`,
  });
  t.throws(
    () => readMemberPublic(join(dir, 'ca', 'authority.pub')),
    CryptoError,
    'wrong kind of key',
  );
  t.throws(() => readCertificate(join(dir, 'missing.cert')), {
    code: 'ERR_KEY_FILE',
    message: `${join(dir, 'missing.cert')}: cannot read (ENOENT)`,
  });
});

/** `mip6 cert issue` of NAME.pub in `dir` (with its ca/) to `dir/out`. */
function issueFor(dir: string, name: string, out: string, ...extra: string[]): Promise<string> {
  return run(
    'cert',
    'issue',
    '--ca',
    join(dir, 'ca'),
    '--pub',
    join(dir, `${name}.pub`),
    '--name',
    name,
    '--out',
    join(dir, out),
    ...extra,
  );
}

void t.test('an mn/cn certificate wider than /64 needs --allow-prefix (issue #13)', async (t) => {
  const dir = tempDir(t);
  await run('ca', 'init', '--out', join(dir, 'ca'));
  await run('keygen', '--out', join(dir, 'm'));
  await t.rejects(issueFor(dir, 'm', 'm.cert', '--role', 'mn', '--address', '::/0'), {
    code: 'ERR_CONFIG',
    message:
      'command line: --address: ::/0 is wider than /64: an mn certificate for it lets its ' +
      "holder register any home address in it; give the member's own address (or its /64), " +
      'or add --allow-prefix if that is really meant',
  });
  t.notOk(existsSync(join(dir, 'm.cert')), 'nothing written');
  await t.rejects(
    issueFor(
      dir,
      'm',
      'm.cert',
      '--role',
      'cn',
      '--address',
      '2001:db8::10',
      '--address',
      '2001:db8::/48',
    ),
    { code: 'ERR_CONFIG', message: /^command line: --address: 2001:db8::\/48 is wider .* a cn / },
    'one wide prefix among several is enough to refuse',
  );
  await issueFor(dir, 'm', 'm.cert', '--role', 'mn', '--address', '2001:db8:1::/64');
  t.same(readCertificate(join(dir, 'm.cert')).addresses.map(formatAllowedPrefix), [
    '2001:db8:1::/64',
  ]);
  await issueFor(dir, 'm', 'ha.cert', '--role', 'ha', '--address', '2001:db8::/48');
  t.equal(readCertificate(join(dir, 'ha.cert')).role, 'ha', 'a home agent may hold a wide prefix');
});

void t.test(
  'a ::/0 mn certificate issued with --allow-prefix verifies, and the HA still bounds it',
  async (t) => {
    // The issuance check is hygiene; the home agent must not depend on it.
    const dir = tempDir(t);
    await run('ca', 'init', '--out', join(dir, 'ca'));
    await run('keygen', '--out', join(dir, 'wide'));
    await issueFor(dir, 'wide', 'wide.cert', '--role', 'mn', '--address', '::/0', '--allow-prefix');
    const cert = readCertificate(join(dir, 'wide.cert'));
    const authority = readAuthorityPublic(join(dir, 'ca', 'authority.pub'));
    t.equal(verifyCertificate(cert, authority, Date.now(), ['mn', 'cn']), 'ok');

    const cache = new BindingCache();
    const config = {
      homePrefix: '2001:db8:100::/64',
      homeAgentAddress: '2001:db8:100::1',
      maxLifetimeSeconds: 600,
      natKeepaliveSeconds: 25,
      maxBindings: 10,
    };
    const register = (hoa: string, peer: RegistrationPeer, sequence: number) =>
      processHomeBindingUpdate(
        cache,
        {
          bu: {
            kind: 'bindingUpdate',
            sequence,
            lifetimeUnits: 150,
            options: [{ type: 'ipv4CareOfAddress', address: '198.51.100.7' }],
            flags: bindingUpdateFlags({ A: true, H: true }),
          },
          innerSource: hoa,
          innerDestination: config.homeAgentAddress,
          locator: { address: '198.51.100.7', port: 4191 },
          peer,
          config,
        },
        0,
      );
    const wide: RegistrationPeer = {
      name: cert.name,
      publicKey: cert.publicKey,
      allowsHomeAddress: (h) => certificateAllows(cert, h),
    };
    const owner: RegistrationPeer = {
      name: 'laptop',
      publicKey: new Uint8Array(32).fill(0x11),
      allowsHomeAddress: (h) => h === '2001:db8:100::10',
    };
    t.equal(register('2001:db8:100::10', owner, 1).status, 0, "the laptop's own binding");
    t.match(
      register('2001:db8:999::1', wide, 1),
      { status: 132, code: 'notHomeSubnet' },
      'outside the home prefix: 132 whatever the certificate holds',
    );
    t.match(
      register('2001:db8:100::10', wide, 2),
      { status: 129, code: 'bindingOwnerMismatch' },
      "another key's binding is not taken over",
    );
    t.same(cache.get('2001:db8:100::10')?.ownerKey, owner.publicKey, 'the binding is unchanged');
  },
);
