/**
 * The per-daemon control socket (DESIGN §7): a unix stream socket, mode 0600 in a 0700
 * directory (root only), or with a control group: socket owner:group 0660 in a 0750 directory
 * of that group; speaking newline-delimited JSON (see control-protocol.ts).
 *
 * Server flow: startControlServer(path, handler, { group? })
 *   1. create the parent directory (0700, or 0750 of the group) if missing. Nobody but us and
 *      root may be able to replace the socket in it (issue #13): a directory of another user is
 *      refused; a sticky one (/tmp) is accepted and never changed (others cannot remove or
 *      rename our entry); one of ours loses group/other write and, with a group, gets the group
 *      and g+rx; one of root that others can write is refused. Checked and changed through one
 *      open fd (fstat, fchown, fchmod), so a directory swapped meanwhile is not the one changed;
 *   2. an existing socket file that nobody answers on is stale: remove it; one that answers
 *      means another daemon runs: refuse; a non-socket file (a symlink too) is never removed;
 *   3. listen with the umask that gives the socket exactly `mode` (0600, 0660 with a group), so
 *      no chmod is needed; lstat: the path must still be a socket of ours, or start() fails
 *      and nothing is changed through it; lchown to the group (never follows a link). A chmod
 *      happens only where the umask cannot be set (worker threads), after that lstat;
 *   4. per connection: split lines, parse, run the handler (requests answered in order),
 *      write `{"ok":true,"result":...}` or `{"ok":false,"error":{code,message}}`;
 *   5. close(): stop listening, drop clients, remove the socket file if it is still ours.
 * Client: controlRequest(path, request) -> result (one connection per request).
 */
import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  openSync,
  unlinkSync,
} from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { IoError, Mip6Error } from '../util/errors.js';
import type { ControlRequest, ControlResponse } from './control-protocol.js';

export type { ControlRequest, ControlResponse } from './control-protocol.js';

/** Handles one request; the returned value (or promise) is sent as `result`. Throwing a
 * Mip6Error sends its code; other errors are sent as ERR_INTERNAL. */
export type ControlHandler = (request: ControlRequest) => unknown;
/** A table of commands: `{ status: () => ..., 'set-log-level': (req) => ... }`. */
export type ControlCommands = Record<string, ControlHandler>;

export interface ControlServerOptions {
  /** Permission bits of the socket file; default 0o600 (root-only when the daemon is root),
   * 0o660 with `group`. */
  mode?: number;
  /** Group id whose members may connect (socket and directory get this group). */
  group?: number;
  /** Longest accepted request line in bytes; default 65536. */
  maxLineBytes?: number;
  /** How long to wait when probing an existing socket file, ms; default 500. */
  probeTimeoutMs?: number;
}

const DEFAULT_MAX_LINE = 65536;

/** Error for a request naming a command the daemon does not have. */
export function unknownCommand(cmd: string, known: readonly string[]): Mip6Error {
  return new Mip6Error(
    'ERR_UNKNOWN_COMMAND',
    `unknown command "${cmd}"; known: ${known.join(', ')}`,
  );
}

function toHandler(h: ControlHandler | ControlCommands): ControlHandler {
  if (typeof h === 'function') return h;
  return (req) => {
    const fn = Object.prototype.hasOwnProperty.call(h, req.cmd) ? h[req.cmd] : undefined;
    if (fn === undefined) throw unknownCommand(req.cmd, Object.keys(h));
    return fn(req);
  };
}

/** Tries to connect: true when a live server answers, false when nothing listens (stale). */
function probe(path: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ path });
    const timer = setTimeout(() => {
      s.destroy();
      resolve(true); // something accepted the path but is slow: treat as alive, never steal it
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve(true);
    });
    s.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

export class ControlServer {
  readonly path: string;
  private readonly server: Server;
  private readonly clients = new Set<Socket>();
  private readonly ino: number;
  private closed = false;

  private constructor(path: string, server: Server, ino: number) {
    this.path = path;
    this.server = server;
    this.ino = ino;
    server.on('connection', (s) => this.clients.add(s));
  }

  /** Starts listening at `path`; see the file comment for the stale-socket rules. */
  static async start(
    path: string,
    handler: ControlHandler | ControlCommands,
    opts: ControlServerOptions = {},
  ): Promise<ControlServer> {
    const group = opts.group;
    const mode = opts.mode ?? (group === undefined ? 0o600 : 0o660);
    const maxLine = opts.maxLineBytes ?? DEFAULT_MAX_LINE;
    const dir = dirname(path);
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw ioError('ERR_CONTROL_SOCKET', `cannot create ${dir}`, err);
    }
    secureDirectory(dir, group);
    let existing: ReturnType<typeof lstatSync> | undefined;
    try {
      existing = lstatSync(path);
    } catch {
      existing = undefined;
    }
    if (existing !== undefined) {
      if (!existing.isSocket()) {
        throw new IoError(
          'ERR_CONTROL_SOCKET',
          `${path} exists and is not a socket; refusing to replace it`,
        );
      }
      if (await probe(path, opts.probeTimeoutMs ?? 500)) {
        throw new IoError(
          'ERR_CONTROL_SOCKET_IN_USE',
          `another daemon is already listening on ${path}`,
        );
      }
      unlinkSync(path);
    }

    const run = toHandler(handler);
    const server = createServer((sock) => serveConnection(sock, run, maxLine));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(ioError('ERR_CONTROL_SOCKET', `cannot listen on ${path}`, err)),
      );
      let oldMask: number | undefined;
      try {
        oldMask = process.umask(0o777 & ~mode);
      } catch {
        oldMask = undefined; // worker threads cannot change the umask: chmod after the lstat
      }
      try {
        server.listen(path, () => resolve()); // bind(2) runs here, synchronously
      } finally {
        if (oldMask !== undefined) process.umask(oldMask);
      }
    });
    try {
      return new ControlServer(path, server, ownSocket(path, mode, group));
    } catch (err) {
      server.close();
      throw err;
    }
  }

  /** Number of connected clients (for tests and status). */
  get connections(): number {
    return this.clients.size;
  }

  /** Stops listening, disconnects clients, removes the socket file if it is still ours. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.clients) c.destroy();
    this.clients.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    try {
      if (lstatSync(this.path).ino === this.ino) unlinkSync(this.path);
    } catch {
      // already gone (node removes it on close on some versions)
    }
  }
}

/**
 * Step 1 of the server flow: refuses a directory where someone other than us or root could
 * replace the socket; one of ours (we just created it, or systemd's RuntimeDirectory did) loses
 * group/other write and, with `group`, gets the group and g+rx. All through one fd.
 */
function secureDirectory(dir: string, group: number | undefined): void {
  let fd: number;
  try {
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (err) {
    throw ioError('ERR_CONTROL_SOCKET', `cannot open ${dir}`, err);
  }
  try {
    const st = fstatSync(fd);
    const uid = process.geteuid?.();
    const perms = st.mode & 0o7777;
    const refuse = (why: string): IoError =>
      new IoError(
        'ERR_CONTROL_SOCKET',
        `refusing the control socket directory ${dir}: ${why}, so another user could replace ` +
          'the socket; use a directory only root or this user can write, e.g. /run/mip6',
      );
    if (st.uid !== uid && st.uid !== 0) throw refuse(`it belongs to uid ${st.uid}`);
    if ((perms & 0o1000) !== 0) return; // sticky (/tmp): only we or root can remove our entry
    if (st.uid !== uid) {
      if ((perms & 0o022) !== 0)
        throw refuse(`it is writable by group or others (${octal(perms)})`);
      return;
    }
    if (group !== undefined && st.gid !== group) fchownSync(fd, -1, group);
    const want = (perms | (group === undefined ? 0 : 0o050)) & ~0o022;
    if (want !== perms) fchmodSync(fd, want);
  } catch (err) {
    if (err instanceof IoError) throw err;
    throw ioError('ERR_CONTROL_SOCKET', `cannot secure ${dir}`, err);
  } finally {
    closeSync(fd);
  }
}

/**
 * Step 3 after bind: the path must still be a socket of ours (never a link planted after the
 * bind); lchown to `group`; chmod only when the umask could not be set (the directory check
 * keeps anyone else from swapping the path between the lstat and the chmod). Returns its inode.
 */
function ownSocket(path: string, mode: number, group: number | undefined): number {
  try {
    const st = lstatSync(path);
    if (!st.isSocket() || st.uid !== process.geteuid?.()) {
      const now = st.isSymbolicLink() ? 'a symbolic link' : 'not our socket';
      throw new IoError(
        'ERR_CONTROL_SOCKET',
        `${path} was replaced right after it was bound (now ${now}); refusing, nothing was ` +
          'changed through it',
      );
    }
    if (group !== undefined && st.gid !== group) lchownSync(path, -1, group);
    if ((st.mode & 0o777) !== mode) chmodSync(path, mode);
    return st.ino;
  } catch (err) {
    if (err instanceof IoError) throw err;
    throw ioError('ERR_CONTROL_SOCKET', `cannot set the owner/mode of ${path}`, err);
  }
}

function octal(mode: number): string {
  return `mode ${mode.toString(8).padStart(4, '0')}`;
}

/** Shorthand for ControlServer.start. */
export function startControlServer(
  path: string,
  handler: ControlHandler | ControlCommands,
  opts: ControlServerOptions = {},
): Promise<ControlServer> {
  return ControlServer.start(path, handler, opts);
}

function ioError(code: string, what: string, err: unknown): IoError {
  const e = err as NodeJS.ErrnoException;
  return new IoError(code, `${what}: ${e.code ?? ''} ${e.message ?? String(err)}`.trim(), e.errno);
}

function errorResponse(err: unknown): ControlResponse {
  if (err instanceof Mip6Error)
    return { ok: false, error: { code: err.code, message: err.message } };
  const message = err instanceof Error ? err.message : String(err);
  return { ok: false, error: { code: 'ERR_INTERNAL', message } };
}

function serveConnection(sock: Socket, handler: ControlHandler, maxLine: number): void {
  sock.setEncoding('utf8');
  let buf = '';
  let chain: Promise<void> = Promise.resolve();
  const send = (r: ControlResponse): void => {
    if (!sock.destroyed) sock.write(JSON.stringify(r) + '\n');
  };
  const handleLine = async (line: string): Promise<void> => {
    let req: unknown;
    try {
      req = JSON.parse(line);
    } catch {
      send({ ok: false, error: { code: 'ERR_BAD_REQUEST', message: 'request is not valid JSON' } });
      return;
    }
    if (
      typeof req !== 'object' ||
      req === null ||
      Array.isArray(req) ||
      typeof (req as { cmd?: unknown }).cmd !== 'string'
    ) {
      send({
        ok: false,
        error: {
          code: 'ERR_BAD_REQUEST',
          message: 'request must be an object with a string "cmd"',
        },
      });
      return;
    }
    try {
      const result: unknown = await handler(req as ControlRequest);
      send({ ok: true, result: result ?? null });
    } catch (err) {
      send(errorResponse(err));
    }
  };
  sock.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line === '') continue;
      chain = chain.then(() => handleLine(line));
    }
    if (Buffer.byteLength(buf) > maxLine) {
      buf = '';
      send({
        ok: false,
        error: { code: 'ERR_BAD_REQUEST', message: `request line longer than ${maxLine} bytes` },
      });
      sock.end();
    }
  });
  sock.on('error', () => sock.destroy());
}

export interface ControlRequestOptions {
  /** Give up after this many ms; default 3000. */
  timeoutMs?: number;
  /** Daemon name for messages ("ha", "mn", "cn"); default "". */
  daemon?: string;
}

/**
 * Sends one request and resolves with the daemon's `result`. Throws IoError ERR_NO_DAEMON when
 * nothing listens at `path`, ERR_CONTROL_ACCESS on a permission error, ERR_CONTROL_TIMEOUT,
 * ERR_CONTROL_PROTOCOL for a malformed answer, and a Mip6Error with the daemon's code when the
 * daemon answers `ok: false`.
 */
export function controlRequest(
  path: string,
  request: ControlRequest,
  opts: ControlRequestOptions = {},
): Promise<unknown> {
  const timeoutMs = opts.timeoutMs ?? 3000;
  const who = opts.daemon !== undefined && opts.daemon !== '' ? `mip6 ${opts.daemon}` : 'mip6';
  return new Promise((resolve, reject) => {
    const sock = createConnection({ path });
    let buf = '';
    let done = false;
    const finish = (err: Error | undefined, value?: unknown): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err !== undefined) reject(err);
      else resolve(value);
    };
    const timer = setTimeout(
      () =>
        finish(
          new IoError(
            'ERR_CONTROL_TIMEOUT',
            `${who} daemon at ${path} did not answer in ${timeoutMs} ms`,
          ),
        ),
      timeoutMs,
    );
    sock.setEncoding('utf8');
    sock.once('connect', () => sock.write(JSON.stringify(request) + '\n'));
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      let resp: unknown;
      try {
        resp = JSON.parse(buf.slice(0, nl));
      } catch {
        finish(
          new IoError('ERR_CONTROL_PROTOCOL', `${path} answered with something that is not JSON`),
        );
        return;
      }
      const r = resp as Partial<ControlResponse> | null;
      if (r !== null && typeof r === 'object' && r.ok === true && 'result' in r) {
        finish(undefined, r.result);
      } else if (
        r !== null &&
        typeof r === 'object' &&
        r.ok === false &&
        typeof r.error === 'object'
      ) {
        finish(new Mip6Error(String(r.error.code), String(r.error.message)));
      } else {
        finish(new IoError('ERR_CONTROL_PROTOCOL', `${path} answered with a malformed response`));
      }
    });
    sock.on('end', () =>
      finish(
        new IoError('ERR_CONTROL_PROTOCOL', `${who} daemon at ${path} closed without answering`),
      ),
    );
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'ENOTSOCK') {
        finish(
          new IoError('ERR_NO_DAEMON', `no ${who} daemon at ${path}: is it running?`, err.errno),
        );
      } else if (err.code === 'EACCES' || err.code === 'EPERM') {
        finish(
          new IoError(
            'ERR_CONTROL_ACCESS',
            `permission denied on ${path}: the control socket is for root or its control_group only (try sudo)`,
            err.errno,
          ),
        );
      } else {
        finish(ioError('ERR_CONTROL_SOCKET', `cannot talk to ${path}`, err));
      }
    });
  });
}
