/**
 * The embedded binding store (`[home] state = "/var/lib/mip6/ha.db"`, issue 20): one SQLite
 * file through better-sqlite3, an optional dependency loaded only when a state file is
 * configured, so `npm install -g mip6` works without a compiler and a home agent without
 * `[home] state` never touches it.
 *
 * The file:
 *   - mode 0600 (created so with O_EXCL | O_NOFOLLOW; an existing one is forced to 0600, its
 *     -wal file too); a symbolic link or anything but a regular file is refused;
 *   - marked as ours by SQLite's application_id ("mip6") and user_version (the schema), so a
 *     foreign database is one clear error, never overwritten; a file SQLite cannot read, or
 *     whose quick_check fails, is the same one-line error naming the file;
 *   - locked for one process (locking_mode EXCLUSIVE): a second home agent on the same file
 *     fails at start instead of both writing;
 *   - written in WAL mode with synchronous = NORMAL: a commit is one write() into the WAL, no
 *     fsync, so a burst costs tens of microseconds; a killed process loses nothing committed
 *     (the kernel has it), a power loss at most the commits since the last checkpoint.
 * One transaction per `write` (a burst of changes); statements are prepared once.
 */
import {
  chmodSync,
  closeSync,
  constants,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { IoError } from '../util/errors.js';
import type { BindingUpdateFlags } from '../wire/types.js';
import type { BindingStore, BindingStoreChanges, StoredBinding } from './binding-store.js';

/** SQLite application_id of a mip6 binding store: "mip6" in ASCII. */
export const STATE_APPLICATION_ID = 0x6d697036;
/** user_version: the schema below. */
export const STATE_SCHEMA_VERSION = 1;
/** The better-sqlite3 release package.json pins (13.x needs Node 22). */
export const BETTER_SQLITE3_VERSION = '12.9.0';

const SCHEMA = `
CREATE TABLE bindings (
  home_address TEXT PRIMARY KEY NOT NULL,
  owner_key BLOB NOT NULL,
  certificate BLOB NOT NULL,
  peer_name TEXT NOT NULL,
  care_of_address TEXT NOT NULL,
  locator_address TEXT NOT NULL,
  locator_port INTEGER NOT NULL,
  sequence INTEGER NOT NULL,
  lifetime_s INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL,
  flags TEXT NOT NULL,
  nat_detected INTEGER NOT NULL,
  udp_encapsulation INTEGER NOT NULL,
  refresh_time_s INTEGER NOT NULL,
  refresh_advice_s INTEGER NOT NULL
) WITHOUT ROWID;
`;

const COLUMNS = [
  'home_address',
  'owner_key',
  'certificate',
  'peer_name',
  'care_of_address',
  'locator_address',
  'locator_port',
  'sequence',
  'lifetime_s',
  'expires_at_ms',
  'flags',
  'nat_detected',
  'udp_encapsulation',
  'refresh_time_s',
  'refresh_advice_s',
] as const;

/** The part of better-sqlite3's API used here (it ships no types; @types is not a dependency). */
interface SqliteStatement {
  run(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}
interface SqliteDatabase {
  pragma(source: string, options?: { simple?: boolean }): unknown;
  prepare(sql: string): SqliteStatement;
  exec(sql: string): void;
  transaction<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void;
  close(): void;
}
type SqliteConstructor = new (
  file: string,
  options?: { fileMustExist?: boolean; timeout?: number },
) => SqliteDatabase;

export interface SqliteStoreOptions {
  /** The module to load (default better-sqlite3; tests name a missing one). */
  moduleName?: string;
  /** How `[home] state` is named in the error for a module that does not load. */
  configKey?: string;
}

function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return oneLine(text.split('\n')[0] ?? text);
}

/** SQLite's multi-line reports as one short line. */
function oneLine(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 160 ? `${flat.slice(0, 157)}...` : flat;
}

function stateError(code: string, file: string, problem: string, errno?: number): IoError {
  return new IoError(code, `${file}: ${problem}`, errno);
}

/**
 * better-sqlite3, loaded on first use: the require and a first in-memory database (its native
 * part loads only then). Throws IoError ERR_STATE_MODULE saying what to install.
 */
function loadSqlite(file: string, opts: SqliteStoreOptions): SqliteConstructor {
  const name = opts.moduleName ?? 'better-sqlite3';
  const key = opts.configKey ?? '[home] state';
  try {
    const Database = createRequire(import.meta.url)(name) as SqliteConstructor;
    new Database(':memory:').close();
    return Database;
  } catch (err) {
    throw stateError(
      'ERR_STATE_MODULE',
      file,
      `${key} needs the SQLite module ${name} ${BETTER_SQLITE3_VERSION} (an optional ` +
        `dependency of mip6, compiled at install time where no prebuilt binary fits), which ` +
        `did not load (${firstLine(err)}); install a C++ toolchain (e.g. apt-get install g++ ` +
        `make python3) and run "npm install -g mip6" again, or remove ${key} to keep the ` +
        `bindings in memory only`,
    );
  }
}

/** True when better-sqlite3 loads here (`mip6 init ha` turns [home] state on only then). */
export function sqliteAvailable(moduleName = 'better-sqlite3'): boolean {
  try {
    loadSqlite('', { moduleName });
    return true;
  } catch {
    return false;
  }
}

/**
 * Creates the file 0600 if missing (and its directory 0700, e.g. /var/lib/mip6 outside systemd's
 * StateDirectory); refuses links and non-files; tightens a looser mode.
 */
function prepareFile(file: string): void {
  let st;
  try {
    st = lstatSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw stateError('ERR_STATE_FILE', file, `cannot be read (${firstLine(err)})`);
    }
    if (!existsSync(dirname(file))) {
      try {
        mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      } catch (e) {
        throw stateError(
          'ERR_STATE_FILE',
          file,
          `its directory ${dirname(file)} does not exist and cannot be created (${firstLine(e)})`,
        );
      }
    }
    try {
      const fd = openSync(
        file,
        constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW,
        0o600,
      );
      closeSync(fd);
    } catch (e) {
      throw stateError('ERR_STATE_FILE', file, `cannot be created (${firstLine(e)})`);
    }
    return;
  }
  if (st.isSymbolicLink()) {
    throw stateError('ERR_STATE_FILE', file, 'is a symbolic link (refused; name the file itself)');
  }
  if (!st.isFile()) throw stateError('ERR_STATE_FILE', file, 'is not a regular file');
  for (const f of [file, `${file}-wal`]) {
    try {
      const s = lstatSync(f);
      if (s.isFile() && (s.mode & 0o077) !== 0) chmodSync(f, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw stateError('ERR_STATE_FILE', f, `cannot be made mode 0600 (${firstLine(err)})`);
      }
    }
  }
}

/** The error code for an SQLite failure at open: a lock held elsewhere, or a bad file. */
function openCode(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED'
    ? 'ERR_STATE_LOCKED'
    : 'ERR_STATE_CORRUPT';
}

/** What an SQLite error means for the operator, in a few words. */
function explain(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  if (code === 'SQLITE_NOTADB') return 'not a mip6 binding store (not an SQLite database)';
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') {
    return 'is in use by another process (another home agent on the same [home] state?)';
  }
  if (typeof code === 'string' && code.startsWith('SQLITE_CORRUPT')) {
    return `is corrupt (${firstLine(err)}); move it away to start with no stored bindings`;
  }
  return `cannot be used (${firstLine(err)})`;
}

function int(v: unknown): number {
  if (typeof v === 'bigint') return Number(v);
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new TypeError('not a number');
  return v;
}

function text(v: unknown): string {
  if (typeof v !== 'string') throw new TypeError('not text');
  return v;
}

function blob(v: unknown): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new TypeError('not a blob');
  return new Uint8Array(v);
}

function rowToBinding(row: Record<string, unknown>): StoredBinding {
  const flags = JSON.parse(text(row['flags'])) as BindingUpdateFlags;
  if (typeof flags !== 'object' || flags === null) throw new TypeError('flags');
  const ownerKey = blob(row['owner_key']);
  if (ownerKey.length !== 32) throw new TypeError('owner key is not 32 bytes');
  return {
    homeAddress: text(row['home_address']),
    ownerKey,
    certificate: blob(row['certificate']),
    peerName: text(row['peer_name']),
    careOfAddress: text(row['care_of_address']),
    locator: { address: text(row['locator_address']), port: int(row['locator_port']) },
    sequence: int(row['sequence']),
    lifetimeSeconds: int(row['lifetime_s']),
    expiresAt: int(row['expires_at_ms']),
    flags,
    natDetected: int(row['nat_detected']) !== 0,
    udpEncapsulationRequired: int(row['udp_encapsulation']) !== 0,
    refreshTime: int(row['refresh_time_s']),
    refreshAdviceSeconds: int(row['refresh_advice_s']),
  };
}

function bindingToRow(b: StoredBinding): unknown[] {
  return [
    b.homeAddress,
    b.ownerKey,
    b.certificate,
    b.peerName,
    b.careOfAddress,
    b.locator.address,
    b.locator.port,
    b.sequence,
    b.lifetimeSeconds,
    Math.round(b.expiresAt),
    JSON.stringify(b.flags),
    b.natDetected ? 1 : 0,
    b.udpEncapsulationRequired ? 1 : 0,
    b.refreshTime,
    b.refreshAdviceSeconds,
  ];
}

export class SqliteBindingStore implements BindingStore {
  readonly location: string;
  readonly #db: SqliteDatabase;
  readonly #put: SqliteStatement;
  readonly #delete: SqliteStatement;
  readonly #apply: (changes: BindingStoreChanges) => void;
  #closed = false;

  /** Use openSqliteBindingStore. */
  private constructor(file: string, db: SqliteDatabase) {
    this.location = file;
    this.#db = db;
    this.#put = db.prepare(
      `INSERT OR REPLACE INTO bindings (${COLUMNS.join(', ')}) ` +
        `VALUES (${COLUMNS.map(() => '?').join(', ')})`,
    );
    this.#delete = db.prepare('DELETE FROM bindings WHERE home_address = ?');
    this.#apply = db.transaction((changes: BindingStoreChanges) => {
      for (const hoa of changes.delete) this.#delete.run(hoa);
      for (const b of changes.put) this.#put.run(...bindingToRow(b));
    });
  }

  /**
   * Opens (creating if missing) the store in `file`. Throws IoError with one line naming the
   * file: ERR_STATE_MODULE (better-sqlite3 did not load: what to install), ERR_STATE_FILE (a
   * link, not a file, no directory, not creatable), ERR_STATE_FOREIGN (another application's
   * database, or a newer schema), ERR_STATE_CORRUPT (not a database, or damaged),
   * ERR_STATE_LOCKED (another process has it open).
   */
  static open(file: string, opts: SqliteStoreOptions = {}): SqliteBindingStore {
    const Database = loadSqlite(file, opts);
    prepareFile(file);
    let db: SqliteDatabase;
    try {
      db = new Database(file, { fileMustExist: true, timeout: 200 });
    } catch (err) {
      throw stateError(openCode(err), file, explain(err));
    }
    try {
      db.pragma('locking_mode = EXCLUSIVE');
      const appId = int(db.pragma('application_id', { simple: true }));
      const version = int(db.pragma('user_version', { simple: true }));
      const tables = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .all()
        .map((r) => String((r as { name: unknown }).name));
      if (appId === 0 && tables.length === 0) {
        db.pragma('journal_mode = WAL');
        db.exec(SCHEMA);
        db.pragma(`application_id = ${STATE_APPLICATION_ID}`);
        db.pragma(`user_version = ${STATE_SCHEMA_VERSION}`);
      } else if (appId !== STATE_APPLICATION_ID) {
        throw stateError(
          'ERR_STATE_FOREIGN',
          file,
          `not a mip6 binding store (an SQLite database of another application: ` +
            `application_id ${appId}, tables ${tables.join(', ') || 'none'}); name another file ` +
            'in [home] state',
        );
      } else if (version !== STATE_SCHEMA_VERSION) {
        throw stateError(
          'ERR_STATE_FOREIGN',
          file,
          `a mip6 binding store of schema ${version}, this mip6 reads schema ` +
            `${STATE_SCHEMA_VERSION} (written by another version of mip6)`,
        );
      } else {
        const check = db.pragma('quick_check', { simple: true });
        if (check !== 'ok') {
          throw stateError(
            'ERR_STATE_CORRUPT',
            file,
            `is corrupt (quick_check: ${oneLine(String(check))}); move it away to start with ` +
              'no stored bindings',
          );
        }
        db.pragma('journal_mode = WAL');
      }
      db.pragma('synchronous = NORMAL');
      return new SqliteBindingStore(file, db);
    } catch (err) {
      db.close();
      if (err instanceof IoError) throw err;
      throw stateError(openCode(err), file, explain(err));
    }
  }

  load(): Promise<StoredBinding[]> {
    try {
      const rows = this.#db.prepare(`SELECT ${COLUMNS.join(', ')} FROM bindings`).all();
      const out: StoredBinding[] = [];
      for (const row of rows) {
        const r = row as Record<string, unknown>;
        try {
          out.push(rowToBinding(r));
        } catch (err) {
          throw stateError(
            'ERR_STATE_CORRUPT',
            this.location,
            `is corrupt: the binding of ${String(r['home_address'])} is unreadable ` +
              `(${firstLine(err)}); move the file away to start with no stored bindings`,
          );
        }
      }
      return Promise.resolve(out);
    } catch (err) {
      if (err instanceof IoError) return Promise.reject(err);
      return Promise.reject(stateError('ERR_STATE_CORRUPT', this.location, explain(err)));
    }
  }

  write(changes: BindingStoreChanges): Promise<void> {
    if (this.#closed) {
      return Promise.reject(stateError('ERR_STATE_CLOSED', this.location, 'store already closed'));
    }
    try {
      this.#apply(changes);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(stateError('ERR_STATE_WRITE', this.location, explain(err)));
    }
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#db.close();
    }
    return Promise.resolve();
  }
}

/** See SqliteBindingStore.open. */
export function openSqliteBindingStore(
  file: string,
  opts: SqliteStoreOptions = {},
): SqliteBindingStore {
  return SqliteBindingStore.open(file, opts);
}
