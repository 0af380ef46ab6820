/**
 * The control socket for a configured group (issue 9, `control_group`): socket owner:group
 * 0660; its directory gets the group and g+rx when it belongs to the daemon; one of someone
 * else is refused and never touched (issue #13: its owner could replace the socket). Group names resolve from /etc/group (a fixture
 * here) or are numeric; an unknown one is one ConfigError naming the file and key.
 * Needs root (chown to an arbitrary group). The lab test (test/lab/least-privilege.test.ts)
 * checks that a member of the group gets `mip6 status` and another user does not.
 */
import t from 'tap';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveGroup } from '../../src/cli/privileges.js';
import { controlRequest, startControlServer } from '../../src/io/control-socket.js';

const skip = process.getuid?.() === 0 ? false : 'needs root (chown to another group)';
const GID = 61_500 + (process.pid % 400);

void t.test('control socket with a group', { skip }, async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'mip6-cg-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));

  await t.test('directory created by the daemon: 0750 of the group', async (t) => {
    const path = join(base, 'run', 'ha.sock');
    const server = await startControlServer(
      path,
      { status: () => ({ role: 'ha' }) },
      { group: GID },
    );
    t.teardown(() => server.close());
    const s = statSync(path);
    t.equal(s.mode & 0o777, 0o660, 'socket 0660');
    t.equal(s.gid, GID, 'socket group');
    t.equal(s.uid, process.getuid!(), 'socket owner: the daemon');
    const d = statSync(join(base, 'run'));
    t.equal(d.mode & 0o777, 0o750, 'directory 0750');
    t.equal(d.gid, GID, 'directory group');
    t.same(await controlRequest(path, { cmd: 'status' }), { role: 'ha' }, 'still answers');
  });

  await t.test("someone else's directory is refused and left alone", async (t) => {
    // Its owner could replace the socket after the bind (issue #13).
    const dir = join(base, 'theirs');
    mkdirSync(dir);
    chownSync(dir, 12_345, 12_345);
    chmodSync(dir, 0o755);
    const path = join(dir, 'mn.sock');
    await t.rejects(startControlServer(path, { status: () => 1 }, { group: GID }), {
      code: 'ERR_CONTROL_SOCKET',
      message: `refusing the control socket directory ${dir}: it belongs to uid 12345, so another user could replace the socket; use a directory only root or this user can write, e.g. /run/mip6`,
    });
    const d = statSync(dir);
    t.equal(d.mode & 0o777, 0o755, 'mode unchanged');
    t.equal(d.gid, 12_345, 'group unchanged');
    t.notOk(existsSync(path), 'no socket created');
  });

  await t.test('our own world-writable directory loses group/other write', async (t) => {
    const dir = join(base, 'loose');
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    const path = join(dir, 'cn.sock');
    const server = await startControlServer(path, { status: () => 1 }, { group: GID });
    t.teardown(() => server.close());
    t.equal(statSync(dir).mode & 0o777, 0o755, '0777 -> 0755');
  });

  await t.test('without a group: 0600 in 0700, as before', async (t) => {
    const path = join(base, 'plain', 'ha.sock');
    const server = await startControlServer(path, { status: () => 1 });
    t.teardown(() => server.close());
    t.equal(statSync(path).mode & 0o777, 0o600);
    t.equal(statSync(join(base, 'plain')).mode & 0o777, 0o700);
  });
});

void t.test('resolveGroup', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mip6-grp-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'group');
  writeFileSync(file, 'root:x:0:\nmip6:x:998:alice,bob\nbroken:x\nwheel:x:10:\n');
  t.equal(resolveGroup('mip6', 'ha.toml', 'control_group', file), 998, 'by name');
  t.equal(resolveGroup('wheel', 'ha.toml', 'control_group', file), 10);
  t.equal(resolveGroup('4242', 'ha.toml', 'control_group', file), 4242, 'numeric gid as is');
  t.throws(
    () => resolveGroup('broken', 'ha.toml', 'control_group', file),
    { message: `ha.toml: control_group: no such group "broken" in ${file}` },
    'a malformed line is not a group',
  );
  t.throws(() => resolveGroup('nope', 'ha.toml', 'control_group', join(dir, 'absent')), {
    code: 'ERR_CONFIG',
    message: `ha.toml: control_group: cannot read ${join(dir, 'absent')} to look up "nope" (ENOENT)`,
  });
});
