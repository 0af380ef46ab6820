import t from 'tap';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { controlRequest, startControlServer, unknownCommand } from '../../src/io/control-socket.js';
import { Mip6Error } from '../../src/util/errors.js';

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), `mip6-ctl-${process.pid}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Sends raw bytes and collects `n` response lines. */
function rawExchange(path: string, data: string, n: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ path });
    let buf = '';
    s.setEncoding('utf8');
    s.on('connect', () => s.write(data));
    s.on('data', (c: string) => {
      buf += c;
      const lines = buf.split('\n').filter((l) => l !== '');
      if (lines.length >= n) {
        s.destroy();
        resolve(lines);
      }
    });
    s.on('error', reject);
    s.on('close', () => resolve(buf.split('\n').filter((l) => l !== '')));
  });
}

void t.test('round trip: status and commands table', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'run', 'ha.sock');
  let calls = 0;
  const server = await startControlServer(path, {
    status: () => ({ role: 'ha', calls: ++calls }),
    echo: async (req) => ({ back: req.arg }),
    fail: () => {
      throw new Mip6Error('ERR_NOPE', 'refused on purpose');
    },
    crash: () => {
      throw new Error('bug');
    },
  });
  t.teardown(() => server.close());
  t.same(await controlRequest(path, { cmd: 'status' }), { role: 'ha', calls: 1 });
  t.same(await controlRequest(path, { cmd: 'status' }), { role: 'ha', calls: 2 });
  t.same(await controlRequest(path, { cmd: 'echo', arg: [1, 'two'] }), { back: [1, 'two'] });
  await t.rejects(controlRequest(path, { cmd: 'fail' }), {
    code: 'ERR_NOPE',
    message: 'refused on purpose',
  });
  await t.rejects(controlRequest(path, { cmd: 'crash' }), { code: 'ERR_INTERNAL', message: 'bug' });
  await t.rejects(controlRequest(path, { cmd: 'nope' }), {
    code: 'ERR_UNKNOWN_COMMAND',
    message: /unknown command "nope"; known: status, echo, fail, crash/,
  });
  t.equal(unknownCommand('x', ['a']).code, 'ERR_UNKNOWN_COMMAND');
});

void t.test(
  'newline-delimited JSON: several requests on one connection, bad lines answered',
  async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'mn.sock');
    const server = await startControlServer(
      path,
      async (req) => {
        // The first request resolves last: answers must still come back in order.
        if (req.cmd === 'slow') await new Promise((r) => setTimeout(r, 30));
        return req.cmd;
      },
      { maxLineBytes: 1024 },
    );
    t.teardown(() => server.close());
    const lines = await rawExchange(
      path,
      '{"cmd":"slow"}\n\n{"cmd":"fast"}\nnot json\n[1]\n{"cmd":3}\n',
      5,
    );
    t.same(
      lines.map((l) => JSON.parse(l)),
      [
        { ok: true, result: 'slow' },
        { ok: true, result: 'fast' },
        { ok: false, error: { code: 'ERR_BAD_REQUEST', message: 'request is not valid JSON' } },
        {
          ok: false,
          error: {
            code: 'ERR_BAD_REQUEST',
            message: 'request must be an object with a string "cmd"',
          },
        },
        {
          ok: false,
          error: {
            code: 'ERR_BAD_REQUEST',
            message: 'request must be an object with a string "cmd"',
          },
        },
      ],
    );
    const long = await rawExchange(path, 'x'.repeat(5000), 1);
    t.match(JSON.parse(long[0] ?? '{}'), {
      ok: false,
      error: { code: 'ERR_BAD_REQUEST', message: /longer than 1024/ },
    });
    t.same(
      await controlRequest(path, { cmd: 'still-alive' }),
      'still-alive',
      'server survives abuse',
    );
  },
);

void t.test('permissions: socket 0600, new directory 0700', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'sub', 'cn.sock');
  const server = await startControlServer(path, () => null);
  t.teardown(() => server.close());
  t.ok(lstatSync(path).isSocket());
  t.equal(statSync(path).mode & 0o777, 0o600);
  t.equal(statSync(join(dir, 'sub')).mode & 0o777, 0o700);
  t.equal(await controlRequest(path, { cmd: 'x' }), null);
  if (process.getuid?.() === 0 && spawnSync('setpriv', ['--help']).status === 0) {
    // An unprivileged user cannot connect.
    const r = spawnSync(
      'setpriv',
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        process.execPath,
        '-e',
        `require('net').createConnection({path:${JSON.stringify(path)}}).on('error',e=>{console.log(e.code);process.exit(0)}).on('connect',()=>{console.log('CONNECTED');process.exit(0)})`,
      ],
      { encoding: 'utf8' },
    );
    t.equal(r.stdout.trim(), 'EACCES', 'nobody cannot connect');
  }
});

void t.test('stale socket file is removed; live one and non-sockets are refused', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'ha.sock');
  // A stale socket: a daemon killed hard leaves its socket file behind.
  const child = spawnSync(process.execPath, [
    '-e',
    `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
  ]);
  t.equal(child.signal, 'SIGKILL');
  t.ok(lstatSync(path).isSocket(), 'stale socket file present');
  await t.rejects(controlRequest(path, { cmd: 'status' }, { daemon: 'ha' }), {
    code: 'ERR_NO_DAEMON',
    message: `no mip6 ha daemon at ${path}: is it running?`,
  });
  const server = await startControlServer(path, () => 'fresh');
  t.equal(await controlRequest(path, { cmd: 'status' }), 'fresh', 'stale file replaced');
  await t.rejects(
    startControlServer(path, () => 'second'),
    { code: 'ERR_CONTROL_SOCKET_IN_USE' },
  );
  t.equal(
    await controlRequest(path, { cmd: 'status' }),
    'fresh',
    'the live daemon keeps its socket',
  );
  await server.close();
  t.notOk(existsSync(path), 'close removes the socket file');
  await server.close(); // idempotent

  const plain = join(dir, 'plain.sock');
  writeFileSync(plain, 'keep me');
  await t.rejects(
    startControlServer(plain, () => null),
    { code: 'ERR_CONTROL_SOCKET', message: /not a socket/ },
  );
  t.ok(existsSync(plain), 'a regular file is never removed');
});

void t.test('client errors: missing daemon, timeout, malformed answers', async (t) => {
  const dir = tempDir(t);
  await t.rejects(controlRequest(join(dir, 'none.sock'), { cmd: 'status' }, { daemon: 'mn' }), {
    code: 'ERR_NO_DAEMON',
    message: /no mip6 mn daemon at .*none\.sock: is it running\?/,
  });
  const mute = join(dir, 'mute.sock');
  const silent = createServer((s) => s.resume());
  await new Promise<void>((r) => silent.listen(mute, r));
  t.teardown(() => new Promise<void>((r) => silent.close(() => r())));
  const t0 = Date.now();
  await t.rejects(controlRequest(mute, { cmd: 'status' }, { timeoutMs: 100 }), {
    code: 'ERR_CONTROL_TIMEOUT',
  });
  t.ok(Date.now() - t0 < 2000, 'bounded wait');
  for (const [name, answer, re] of [
    ['garbage', 'hello\n', /not JSON/],
    ['shape', '{"ok":"maybe"}\n', /malformed/],
    ['close', '', /closed without answering/],
  ] as const) {
    const p = join(dir, `${name}.sock`);
    const srv = createServer((s) => s.resume().end(answer));
    await new Promise<void>((r) => srv.listen(p, r));
    await t.rejects(controlRequest(p, { cmd: 'status' }), {
      code: 'ERR_CONTROL_PROTOCOL',
      message: re,
    });
    await new Promise<void>((r) => srv.close(() => r()));
  }
});

/** A file with mode 0644 that an attack on the control socket path must leave as it was. */
function victimFile(dir: string): string {
  const victim = join(dir, 'victim');
  writeFileSync(victim, 'precious');
  chmodSync(victim, 0o644);
  return victim;
}

void t.test(
  'a symlink swapped in for the socket right after bind is never followed (issue #13)',
  async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'ha.sock');
    const victim = victimFile(dir);
    const before = statSync(victim);
    // The attacker's move, at the earliest moment JS can see: the socket is bound (listening
    // is emitted), start() has not looked at the path again yet.
    const net = await import('node:net');
    const { startControlServer: start } = await t.mockImport<
      typeof import('../../src/io/control-socket.js')
    >('../../src/io/control-socket.js', {
      'node:net': {
        ...net,
        createServer: (...args: Parameters<typeof net.createServer>) => {
          const server = net.createServer(...args);
          server.once('listening', () => {
            unlinkSync(path);
            symlinkSync(victim, path);
          });
          return server;
        },
      },
    });
    const root = process.getuid?.() === 0;
    await t.rejects(
      start(path, () => null, root ? { group: 65534 } : {}),
      {
        code: 'ERR_CONTROL_SOCKET',
        message: `${path} was replaced right after it was bound (now a symbolic link); refusing, nothing was changed through it`,
      },
    );
    const after = statSync(victim);
    t.equal(after.mode & 0o7777, 0o644, 'the link target keeps its mode');
    t.equal(after.uid, before.uid, 'and its owner');
    t.equal(after.gid, before.gid, 'and its group');
    t.equal(readFileSync(victim, 'utf8'), 'precious', 'and its content');
    // libuv unlinks a listening pipe's path when it closes: that removes the planted link
    // itself (unlink never follows), not its target.
    t.throws(() => lstatSync(path), { code: 'ENOENT' }, 'the failed start leaves nothing there');
  },
);

void t.test('a symlink planted before start is refused; its target untouched', async (t) => {
  const dir = tempDir(t);
  const victim = victimFile(dir);
  const path = join(dir, 'mn.sock');
  symlinkSync(victim, path);
  await t.rejects(
    startControlServer(path, () => null),
    {
      code: 'ERR_CONTROL_SOCKET',
      message: /not a socket; refusing to replace it/,
    },
  );
  t.equal(statSync(victim).mode & 0o7777, 0o644);
  t.ok(lstatSync(path).isSymbolicLink(), 'the link is not removed');
});

void t.test('socket directory: ours loses group/other write, a sticky one is kept', async (t) => {
  const dir = tempDir(t);
  for (const [name, mode, want, why] of [
    ['loose', 0o777, 0o755, '0777 -> 0755: nobody else can swap the socket'],
    ['shared', 0o1777, 0o1777, 'a sticky (/tmp-like) directory is unchanged'],
  ] as const) {
    const sub = join(dir, name);
    mkdirSync(sub);
    chmodSync(sub, mode);
    const path = join(sub, 'ctl.sock');
    const server = await startControlServer(path, () => name);
    t.teardown(() => server.close());
    t.equal(statSync(sub).mode & 0o7777, want, why);
    t.equal(statSync(path).mode & 0o777, 0o600, `${name}: socket 0600 without a chmod`);
    t.equal(await controlRequest(path, { cmd: 'x' }), name);
  }
});
