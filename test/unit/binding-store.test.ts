/**
 * The home agent's binding store (issue 20): the SQLite file (src/io/sqlite-binding-store.ts)
 * and what a restarted HA takes from it (src/roles/ha/binding-persistence.ts). Real SQLite
 * (better-sqlite3) on files in a private temporary directory.
 */
import t, { type Test } from 'tap';
import {
  chmodSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StoredBinding } from '../../src/io/binding-store.js';
import { openSqliteBindingStore, STATE_APPLICATION_ID } from '../../src/io/sqlite-binding-store.js';
import {
  BindingJournal,
  restoredBinding,
  RestoreSchedule,
  type RestorePolicy,
  RESTORE_GIVE_UP_MS,
} from '../../src/roles/ha/binding-persistence.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { bindingUpdateFlags } from '../../src/wire/types.js';
import { parsePrefix } from '../../src/wire/address.js';
import { IoError } from '../../src/util/errors.js';
import { parseHaConfig } from '../../src/config/ha.js';
import { authority, cert, memberKey, T0 } from '../helpers/crypto.js';

await initCrypto();
const dir = mkdtempSync(join(tmpdir(), 'mip6-binding-store-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = (): string => join(dir, `ha-${n++}.db`);

const ca = authority();
const key = memberKey(0x41);
const certificate = cert(ca, {
  name: 'laptop',
  role: 'mn',
  key,
  addresses: ['2001:db8:100::10'],
});
const HOME = parsePrefix('2001:db8:100::/64');
const policy = (over: Partial<RestorePolicy> = {}): RestorePolicy => ({
  homePrefix: HOME,
  authorityPublicKey: ca.publicKey,
  maxLifetimeSeconds: 600,
  ...over,
});

function binding(hoa: string, over: Partial<StoredBinding> = {}): StoredBinding {
  return {
    homeAddress: hoa,
    ownerKey: key.publicKey,
    certificate: certificate.raw,
    peerName: 'laptop',
    careOfAddress: '::ffff:198.51.100.7',
    locator: { address: '203.0.113.9', port: 40123 },
    sequence: 4711,
    lifetimeSeconds: 600,
    expiresAt: T0 + 600_000,
    flags: bindingUpdateFlags({ A: true, H: true }),
    natDetected: true,
    udpEncapsulationRequired: true,
    refreshTime: 110,
    refreshAdviceSeconds: 0,
    ...over,
  };
}

function expectError(t: Test, fn: () => unknown, code: string, re: RegExp): void {
  try {
    fn();
    t.fail(`expected ${code}`);
  } catch (err) {
    t.ok(err instanceof IoError, 'an IoError');
    t.equal((err as IoError).code, code);
    t.match((err as Error).message, re);
    t.notMatch((err as Error).message, /\n/, 'one line');
  }
}

void t.test('bindings written in bursts come back after a reopen, 0600', async (t) => {
  const file = fresh();
  const store = openSqliteBindingStore(file);
  t.equal(statSync(file).mode & 0o777, 0o600, 'created 0600');
  t.same(await store.load(), [], 'a new store is empty');
  const a = binding('2001:db8:100::10');
  const b = binding('2001:db8:100::11', {
    sequence: 1,
    locator: { address: '2001:db8:3::5', port: 4191 },
  });
  await store.write({ put: [a, b], delete: [] });
  await store.write({ put: [{ ...a, sequence: 4712 }], delete: ['2001:db8:100::11'] });
  await store.close();
  const again = openSqliteBindingStore(file);
  const loaded = await again.load();
  t.same(loaded, [{ ...a, sequence: 4712 }], 'the last write of each home address wins');
  t.ok(loaded[0]!.ownerKey instanceof Uint8Array && loaded[0]!.certificate instanceof Uint8Array);
  t.equal(statSync(file).mode & 0o777, 0o600, 'still 0600');
  try {
    statSync(`${file}-wal`);
    t.equal(statSync(`${file}-wal`).mode & 0o777, 0o600, 'the WAL file too');
  } catch {
    t.pass('no WAL file left');
  }
  // No channel key can be in the file: its columns are the binding's, nothing else.
  const raw = readFileSync(file);
  t.ok(raw.includes(Buffer.from(key.publicKey)), 'the owner key is stored');
  t.notOk(raw.includes(Buffer.from(key.privateKey)), 'no secret key material');
  await again.close();
});

void t.test('a looser mode is tightened; a second process is refused', async (t) => {
  const file = fresh();
  (await openSqliteBindingStore(file).close()) as unknown;
  chmodSync(file, 0o644);
  const store = openSqliteBindingStore(file);
  t.equal(statSync(file).mode & 0o777, 0o600, 'forced back to 0600');
  // The same file opened again while in use (another home agent): refused, one line.
  expectError(t, () => openSqliteBindingStore(file), 'ERR_STATE_LOCKED', /in use by another/);
  await store.close();
});

void t.test('a corrupt file is one error line naming the file', async (t) => {
  const junk = fresh();
  writeFileSync(junk, Buffer.alloc(8192, 0x5a), { mode: 0o600 });
  expectError(
    t,
    () => openSqliteBindingStore(junk),
    'ERR_STATE_CORRUPT',
    new RegExp(`^${junk}: not a mip6 binding store \\(not an SQLite database\\)`),
  );
  // A real store whose pages were damaged after the header.
  const file = fresh();
  const store = openSqliteBindingStore(file);
  const many = Array.from({ length: 300 }, (_, i) =>
    binding(`2001:db8:100::${(i + 16).toString(16)}`),
  );
  await store.write({ put: many, delete: [] });
  await store.close();
  const bytes = readFileSync(file);
  t.ok(bytes.length > 8192, 'more than two pages');
  bytes.fill(0xa5, 4096, bytes.length); // every page after the first overwritten
  writeFileSync(file, bytes);
  rmSync(`${file}-wal`, { force: true });
  let err: unknown;
  try {
    const s = openSqliteBindingStore(file);
    await s.load().finally(() => s.close());
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof IoError, 'refused');
  t.equal((err as IoError).code, 'ERR_STATE_CORRUPT');
  t.match((err as Error).message, new RegExp(`^${file}: `), 'names the file');
  t.notMatch((err as Error).message, /\n/, 'one line');
});

void t.test('a foreign file is one error line and is left alone', async (t) => {
  const Database = createRequire(import.meta.url)('better-sqlite3') as new (f: string) => {
    exec(sql: string): void;
    pragma(s: string): unknown;
    close(): void;
  };
  const file = fresh();
  const db = new Database(file);
  db.exec(
    "CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO photos VALUES (1, 'cat')",
  );
  db.close();
  chmodSync(file, 0o600);
  const before = readFileSync(file);
  expectError(
    t,
    () => openSqliteBindingStore(file),
    'ERR_STATE_FOREIGN',
    new RegExp(
      `^${file}: not a mip6 binding store \\(an SQLite database of another application: application_id 0, tables photos\\)`,
    ),
  );
  t.same(readFileSync(file), before, 'not modified');
  // Ours, but a schema this version does not read.
  const other = fresh();
  const db2 = new Database(other);
  db2.exec('CREATE TABLE bindings (x)');
  db2.pragma(`application_id = ${STATE_APPLICATION_ID}`);
  db2.pragma('user_version = 9');
  db2.close();
  expectError(
    t,
    () => openSqliteBindingStore(other),
    'ERR_STATE_FOREIGN',
    /schema 9, this mip6 reads schema 1/,
  );
});

void t.test('paths that are refused, and a module that does not load', async (t) => {
  const target = fresh();
  const link = join(dir, 'link.db');
  symlinkSync(target, link);
  expectError(t, () => openSqliteBindingStore(link), 'ERR_STATE_FILE', /is a symbolic link/);
  expectError(t, () => openSqliteBindingStore(dir), 'ERR_STATE_FILE', /is not a regular file/);
  const nested = join(dir, 'var', 'lib', 'mip6', 'ha.db');
  await openSqliteBindingStore(nested).close();
  t.equal(
    statSync(join(dir, 'var', 'lib', 'mip6')).mode & 0o777,
    0o700,
    'a missing directory: created 0700',
  );
  writeFileSync(join(dir, 'plain'), 'x');
  expectError(
    t,
    () => openSqliteBindingStore(join(dir, 'plain', 'ha.db')),
    'ERR_STATE_FILE',
    /cannot be (created|read)/,
  );
  expectError(
    t,
    () =>
      openSqliteBindingStore(fresh(), {
        moduleName: 'better-sqlite3-not-installed',
        configKey: '[home] state of /etc/mip6/ha.toml',
      }),
    'ERR_STATE_MODULE',
    /\[home\] state of \/etc\/mip6\/ha\.toml needs the SQLite module better-sqlite3-not-installed 12\.9\.0 .*install a C\+\+ toolchain/,
  );
});

void t.test('what a restarted HA restores: expiry while down, certificate checks', (t) => {
  const now = T0 + 100_000;
  const ok = restoredBinding(binding('2001:db8:100::10'), now, now, policy());
  t.ok(ok.ok, 'a live binding comes back');
  if (ok.ok) {
    t.equal(ok.entry.sequence, 4711);
    t.equal(ok.entry.expiresAt, T0 + 600_000, 'with its expiry, not a new lifetime');
    t.same(ok.entry.locator, { address: '203.0.113.9', port: 40123 });
    t.equal(ok.entry.natDetected, true);
  }
  const expired = binding('2001:db8:100::10', { expiresAt: now - 1 });
  t.same(
    restoredBinding(expired, now, now, policy()),
    { ok: false, reason: 'expired' },
    'expired while down',
  );
  t.same(
    restoredBinding(binding('2001:db8:100::99'), now, now, policy()),
    { ok: false, reason: 'certificate' },
    'the certificate does not hold that home address',
  );
  t.same(
    restoredBinding(
      binding('2001:db8:100::10', { ownerKey: memberKey(0x42).publicKey }),
      now,
      now,
      policy(),
    ),
    { ok: false, reason: 'certificate' },
    'the certificate is not the owner key',
  );
  t.same(
    restoredBinding(binding('2001:db8:100::10'), now, now + 400 * 86_400_000, policy()),
    { ok: false, reason: 'certificate' },
    'the certificate expired while down',
  );
  t.same(
    restoredBinding(
      binding('2001:db8:100::10'),
      now,
      now,
      policy({ homePrefix: parsePrefix('2001:db8:200::/64') }),
    ),
    {
      ok: false,
      reason: 'not-our-prefix',
    },
  );
  t.same(
    restoredBinding(binding('2001:db8:100::10'), now, now, policy({ isRevoked: () => true })),
    { ok: false, reason: 'revoked' },
  );
  // The store is not trusted (an etcd writer, the SQLite file): a certificate of another
  // authority claiming the address, and a far-future expiry.
  const forged = cert(authority(0x55), {
    name: 'laptop',
    role: 'mn',
    key,
    addresses: ['2001:db8:100::10'],
  });
  t.same(
    restoredBinding(binding('2001:db8:100::10', { certificate: forged.raw }), now, now, policy()),
    { ok: false, reason: 'certificate' },
    'a certificate not signed by the overlay authority',
  );
  const far = restoredBinding(
    binding('2001:db8:100::10', { expiresAt: now + 10 * 365 * 86_400_000, lifetimeSeconds: 1e9 }),
    now,
    now,
    policy(),
  );
  t.ok(far.ok);
  if (far.ok) {
    t.equal(far.entry.expiresAt, now + 600_000, 'a far-future expiry cut to now + max lifetime');
    t.equal(far.entry.lifetimeSeconds, 600);
  }
  t.same(
    restoredBinding(binding('2001:db8:100::10', { expiresAt: Infinity }), now, now, policy()),
    { ok: false, reason: 'expired' },
    'a non-finite expiry',
  );
  t.end();
});

void t.test('journal coalesces a burst; the schedule paces and gives up', (t) => {
  const j = new BindingJournal();
  j.put(binding('2001:db8:100::10'));
  j.put(binding('2001:db8:100::10', { sequence: 5 }));
  j.put(binding('2001:db8:100::11'));
  j.delete('2001:db8:100::11');
  const c = j.take();
  t.same(
    c.put.map((b) => b.sequence),
    [5],
  );
  t.same(c.delete, ['2001:db8:100::11']);
  t.equal(j.size, 0, 'empty after take');

  const s = new RestoreSchedule(2, 10);
  for (let i = 0; i < 5; i++) {
    s.add(memberKey(0x50 + i).publicKey, `k${i}`, { address: '203.0.113.9', port: 1000 + i }, 0);
  }
  s.start(0);
  t.equal(s.poll(0).initiate.length, 2, 'two per tick');
  t.equal(s.nextDeadline(), 10);
  t.equal(s.poll(5).initiate.length, 0, 'not before the next tick');
  t.ok(s.take(memberKey(0x52).publicKey), 'a member whose channel came back by itself');
  t.same(
    s.poll(10).initiate.map((m) => m.locator.port),
    [1003, 1004],
    'is skipped',
  );
  t.equal(s.poll(20).initiate.length, 0, 'all initiated');
  t.equal(s.take(memberKey(0x50).publicKey)?.keys[0], 'k0', 'answered: taken');
  const late = s.poll(RESTORE_GIVE_UP_MS + 10);
  t.same(
    late.giveUp.map((m) => m.locator.port),
    [1001, 1003, 1004],
    'unanswered attempts given up',
  );
  t.equal(s.nextDeadline(), Infinity);
  t.equal(s.inFlight, 0, 'nothing in flight');

  // A window of 3 unanswered: the pace follows the answers.
  const w = new RestoreSchedule(10, 10, 3);
  for (let i = 0; i < 6; i++) {
    w.add(memberKey(0x60 + i).publicKey, `w${i}`, { address: '203.0.113.9', port: 2000 + i }, 0);
  }
  w.start(0);
  t.equal(w.poll(0).initiate.length, 3, 'a full window');
  t.equal(w.poll(10).initiate.length, 0, 'nothing more until an answer');
  w.take(memberKey(0x61).publicKey);
  t.same(
    w.poll(20).initiate.map((m) => m.locator.port),
    [2003],
    'one answered: one more',
  );
  const later = w.poll(RESTORE_GIVE_UP_MS + 5);
  t.same(
    later.giveUp.map((m) => m.locator.port),
    [2000, 2002],
    'the unanswered given up',
  );
  t.same(
    later.initiate.map((m) => m.locator.port),
    [2004, 2005],
    'which frees the window',
  );
  t.equal(w.inFlight, 3);
  t.end();
});

void t.test('[home] state in ha.toml: resolved against the file, bad values named', (t) => {
  const base = `[identity]
private_key = "ha.key"
certificate = "ha.cert"
authority = "authority.pub"
[home]
prefix = "2001:db8:100::/64"
`;
  t.equal(parseHaConfig(base, '/etc/mip6/ha.toml').home.state, undefined, 'unset: in memory');
  t.equal(
    parseHaConfig(`${base}state = "state/ha.db"\n`, '/etc/mip6/ha.toml').home.state,
    '/etc/mip6/state/ha.db',
  );
  t.equal(
    parseHaConfig(`${base}state = "/var/lib/mip6/ha.db"\n`, '/etc/mip6/ha.toml').home.state,
    '/var/lib/mip6/ha.db',
  );
  for (const [value, re] of [
    ['""', /home\.state: expected a file path, got an empty string/],
    ['"/var/lib/mip6/"', /home\.state: expected a file path \(e\.g\. "\/var\/lib\/mip6\/ha\.db"\)/],
    ['5', /home\.state: expected a string/],
  ] as const) {
    t.throws(
      () => parseHaConfig(`${base}state = ${value}\n`, '/etc/mip6/ha.toml'),
      { code: 'ERR_CONFIG', message: re },
      `state = ${value}`,
    );
  }
  t.end();
});
