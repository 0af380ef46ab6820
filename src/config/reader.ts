/**
 * A small typed reader over a parsed TOML table. Every accessor names the dotted key it reads,
 * so each problem becomes one ConfigError(file, key, problem). `finish()` rejects the keys
 * nobody asked for, with a "did you mean" suggestion taken from the keys that were asked for.
 *
 * Flow: parseToml(text, file) -> TableReader(root) -> section readers -> accessors -> finish().
 */
import { parse as parseTomlText, TomlError } from 'smol-toml';
import {
  canonicalIpv6,
  isIpv4,
  parseIpv6,
  maskPrefix,
  parsePrefix,
  prefixContains,
  formatIpv6,
} from '../wire/address.js';
import { ConfigError } from '../util/errors.js';

export type TomlTable = Record<string, unknown>;

/** Parses TOML text; syntax errors become ConfigError naming the line and column. */
export function parseToml(text: string, file: string): TomlTable {
  try {
    return parseTomlText(text) as TomlTable;
  } catch (err) {
    if (err instanceof TomlError) {
      const firstLine = err.message.split('\n')[0] ?? err.message;
      const why = firstLine.replace(/^Invalid TOML document:\s*/, '');
      throw new ConfigError(
        file,
        `line ${err.line}`,
        `TOML syntax error at column ${err.column}: ${why}`,
      );
    }
    throw new ConfigError(file, '(file)', `not valid TOML: ${String(err)}`);
  }
}

/** Levenshtein distance, for "did you mean" suggestions on unknown keys. */
export function editDistance(a: string, b: string): number {
  const prev = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0] ?? 0;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j] ?? 0;
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      prev[j] = Math.min(up + 1, (prev[j - 1] ?? 0) + 1, diag + cost);
      diag = up;
    }
  }
  return prev[b.length] ?? 0;
}

/** The closest known key, if it is close enough to be a plausible typo. */
export function suggestKey(unknown: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDist = Infinity;
  const norm = unknown.toLowerCase().replace(/-/g, '_');
  for (const k of known) {
    const d = editDistance(norm, k);
    if (d < bestDist) {
      best = k;
      bestDist = d;
    }
  }
  const limit = Math.max(2, Math.floor(unknown.length / 3));
  return bestDist <= limit ? best : undefined;
}

function typeName(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  if (typeof v === 'object') {
    return v instanceof Date || v.constructor?.name === 'TomlDate' ? 'a date' : 'a table';
  }
  if (typeof v === 'number') return Number.isInteger(v) ? 'an integer' : 'a float';
  if (typeof v === 'bigint') return 'an integer';
  return `a ${typeof v}`;
}

function isTable(v: unknown): v is TomlTable {
  return (
    typeof v === 'object' &&
    v !== null &&
    !Array.isArray(v) &&
    !(v instanceof Date) &&
    v.constructor?.name !== 'TomlDate'
  );
}

export interface IntOptions {
  min?: number;
  max?: number;
  unit?: string;
}

/** Reads one TOML table; tracks which keys were read so `finish()` can reject the rest. */
export class TableReader {
  readonly file: string;
  readonly path: string;
  private readonly table: TomlTable;
  private readonly known: string[] = [];

  constructor(file: string, table: TomlTable, path = '') {
    this.file = file;
    this.table = table;
    this.path = path;
  }

  /** The dotted key of `key` in this table (for error messages). */
  keyPath(key: string): string {
    return this.path === '' ? key : `${this.path}.${key}`;
  }

  error(key: string, problem: string): ConfigError {
    return new ConfigError(this.file, this.keyPath(key), problem);
  }

  private raw(key: string): unknown {
    this.known.push(key);
    return Object.prototype.hasOwnProperty.call(this.table, key) ? this.table[key] : undefined;
  }

  has(key: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.table, key);
  }

  /** A sub-table; absent means empty (all its keys take their defaults). */
  section(key: string): TableReader {
    const v = this.raw(key);
    if (v === undefined) return new TableReader(this.file, {}, this.keyPath(key));
    if (!isTable(v))
      throw this.error(key, `expected a table ([${this.keyPath(key)}]), got ${typeName(v)}`);
    return new TableReader(this.file, v, this.keyPath(key));
  }

  /** An array of tables ([[key]] in TOML); absent means none. */
  sectionList(key: string): TableReader[] {
    const v = this.raw(key);
    if (v === undefined) return [];
    if (!Array.isArray(v) || !v.every((x) => isTable(x))) {
      throw this.error(
        key,
        `expected an array of tables ([[${this.keyPath(key)}]]), got ${typeName(v)}`,
      );
    }
    return v.map(
      (x, i) => new TableReader(this.file, x as TomlTable, `${this.keyPath(key)}[${i}]`),
    );
  }

  /** Rejects keys that no accessor asked for, suggesting the nearest known key. */
  finish(): void {
    for (const key of Object.keys(this.table)) {
      if (this.known.includes(key)) continue;
      const hint = suggestKey(key, this.known);
      const where = this.path === '' ? 'at top level' : `in [${this.path}]`;
      throw this.error(
        key,
        `unknown key ${where}` +
          (hint !== undefined ? ` (did you mean "${this.keyPath(hint)}"?)` : '') +
          `; known keys: ${[...new Set(this.known)].join(', ')}`,
      );
    }
  }

  optString(key: string): string | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw this.error(key, `expected a string, got ${typeName(v)}`);
    return v;
  }

  string(key: string, dflt?: string): string {
    const v = this.optString(key);
    if (v !== undefined) return v;
    if (dflt !== undefined) return dflt;
    throw this.error(key, 'required key is missing');
  }

  /** A non-empty file path. */
  optPath(key: string): string | undefined {
    const v = this.optString(key);
    if (v === undefined) return undefined;
    if (v.trim() === '') throw this.error(key, 'expected a file path, got an empty string');
    return v;
  }

  requiredPath(key: string): string {
    const v = this.optPath(key);
    if (v === undefined) throw this.error(key, 'required key is missing (a file path)');
    return v;
  }

  bool(key: string, dflt: boolean): boolean {
    const v = this.raw(key);
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') throw this.error(key, `expected true or false, got ${typeName(v)}`);
    return v;
  }

  oneOf<T extends string>(key: string, choices: readonly T[], dflt: T): T {
    const v = this.optString(key);
    if (v === undefined) return dflt;
    if (!(choices as readonly string[]).includes(v)) {
      throw this.error(
        key,
        `expected one of ${choices.map((c) => `"${c}"`).join(', ')}, got "${v}"`,
      );
    }
    return v as T;
  }

  private checkRange(key: string, n: number, o: IntOptions): void {
    const unit = o.unit !== undefined ? ` ${o.unit}` : '';
    if (o.min !== undefined && n < o.min) {
      throw this.error(key, `${n}${unit} is out of range: minimum is ${o.min}${unit}`);
    }
    if (o.max !== undefined && n > o.max) {
      throw this.error(key, `${n}${unit} is out of range: maximum is ${o.max}${unit}`);
    }
  }

  optInt(key: string, o: IntOptions = {}): number | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      throw this.error(key, `expected an integer, got ${typeName(v)}`);
    }
    this.checkRange(key, v, o);
    return v;
  }

  /** An integer or a non-empty array of distinct integers (e.g. ports), as an array. */
  optIntList(key: string, o: IntOptions = {}): number[] | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    const list = Array.isArray(v) ? (v as unknown[]) : [v];
    if (list.length === 0) throw this.error(key, 'expected at least one integer, got []');
    return list.map((x, i) => {
      const k = Array.isArray(v) ? `${key}[${i}]` : key;
      if (typeof x !== 'number' || !Number.isInteger(x)) {
        throw this.error(k, `expected an integer, got ${typeName(x)}`);
      }
      this.checkRange(k, x, o);
      if (list.indexOf(x) !== i) throw this.error(k, `${x} is listed twice`);
      return x;
    });
  }

  int(key: string, dflt: number | undefined, o: IntOptions = {}): number {
    const v = this.optInt(key, o);
    if (v !== undefined) return v;
    if (dflt !== undefined) return dflt;
    throw this.error(key, 'required key is missing (an integer)');
  }

  /** A number (integer or float), e.g. seconds with a fraction. */
  optNumber(key: string, o: IntOptions = {}): number | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw this.error(key, `expected a number, got ${typeName(v)}`);
    }
    this.checkRange(key, v, o);
    return v;
  }

  number(key: string, dflt: number, o: IntOptions = {}): number {
    return this.optNumber(key, o) ?? dflt;
  }

  /** An IPv6 address, returned in RFC 5952 canonical text. */
  optIpv6(key: string): string | undefined {
    const v = this.optString(key);
    if (v === undefined) return undefined;
    if (isIpv4(v)) throw this.error(key, `expected an IPv6 address, got the IPv4 address "${v}"`);
    try {
      return canonicalIpv6(v);
    } catch {
      throw this.error(key, `"${v}" is not a valid IPv6 address`);
    }
  }

  ipv6(key: string, dflt?: string): string {
    const v = this.optIpv6(key);
    if (v !== undefined) return v;
    if (dflt !== undefined) return dflt;
    throw this.error(key, 'required key is missing (an IPv6 address)');
  }

  /** A dotted-quad IPv4 address. */
  optIpv4(key: string): string | undefined {
    const v = this.optString(key);
    if (v === undefined) return undefined;
    if (!isIpv4(v)) throw this.error(key, `"${v}" is not a valid dotted-quad IPv4 address`);
    return v;
  }

  /** An IPv6 prefix `addr/len`, returned canonical with host bits required to be zero. */
  optIpv6Prefix(
    key: string,
    o: { minLength?: number; maxLength?: number } = {},
  ): Ipv6Prefix | undefined {
    const v = this.optString(key);
    if (v === undefined) return undefined;
    let p: ReturnType<typeof parsePrefix>;
    try {
      p = parsePrefix(v);
    } catch {
      throw this.error(
        key,
        `"${v}" is not a valid IPv6 prefix (expected e.g. "2001:db8:100::/64")`,
      );
    }
    if (p.address.length !== 16) throw this.error(key, `"${v}" is an IPv4 prefix; expected IPv6`);
    const masked = maskPrefix(p.address, p.length);
    if (!masked.every((b, i) => b === p.address[i])) {
      throw this.error(
        key,
        `"${v}" has bits set after the /${p.length} boundary (did you mean "${formatIpv6(masked)}/${p.length}"?)`,
      );
    }
    if (o.minLength !== undefined && p.length < o.minLength) {
      throw this.error(key, `prefix length /${p.length} is too short: minimum is /${o.minLength}`);
    }
    if (o.maxLength !== undefined && p.length > o.maxLength) {
      throw this.error(key, `prefix length /${p.length} is too long: maximum is /${o.maxLength}`);
    }
    const address = formatIpv6(p.address);
    return { address, length: p.length, text: `${address}/${p.length}` };
  }

  /** A string or a number (e.g. a lifetime that may also be "infinity"), unvalidated. */
  optStringOrNumber(key: string): string | number | undefined {
    const v = this.raw(key);
    if (v === undefined || typeof v === 'string' || typeof v === 'number') return v;
    throw this.error(key, `expected a string or a number, got ${typeName(v)}`);
  }

  /** A string or an array of strings, as an array. */
  optStringOrArray(key: string): string[] | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (typeof v === 'string') return [v];
    if (!Array.isArray(v)) {
      throw this.error(key, `expected a string or an array of strings, got ${typeName(v)}`);
    }
    return this.optStringArray(key);
  }

  /** An array of strings. */
  optStringArray(key: string): string[] | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (!Array.isArray(v))
      throw this.error(key, `expected an array of strings, got ${typeName(v)}`);
    return v.map((item, i) => {
      if (typeof item !== 'string') {
        throw this.error(`${key}[${i}]`, `expected a string, got ${typeName(item)}`);
      }
      return item;
    });
  }
}

/** An IPv6 prefix in canonical text form. */
export interface Ipv6Prefix {
  /** Canonical network address, e.g. "2001:db8:100::". */
  address: string;
  /** Prefix length in bits. */
  length: number;
  /** "2001:db8:100::/64". */
  text: string;
}

/** The prefix of length `length` that contains the IPv6 `address` (host bits cleared). */
export function prefixOf(address: string, length: number): Ipv6Prefix {
  const net = formatIpv6(maskPrefix(parseIpv6(address), length));
  return { address: net, length, text: `${net}/${length}` };
}

/** True when the canonical IPv6 `address` lies inside `prefix`. */
export function ipv6InPrefix(prefix: Ipv6Prefix, address: string): boolean {
  return prefixContains(
    { address: parseIpv6(prefix.address), length: prefix.length },
    parseIpv6(address),
  );
}

/** `prefix` with its last 64 bits replaced by `::1`-style interface id `iid` (small integer). */
export function addressInPrefix(prefix: Ipv6Prefix, iid: number): string {
  const bytes = parseIpv6(prefix.address);
  bytes[15] = iid & 0xff;
  bytes[14] = (iid >> 8) & 0xff;
  return formatIpv6(bytes);
}

/** A route or pool prefix of either family, canonical: "0.0.0.0/0", "2001:db8::/32". */
export interface AnyPrefix {
  family: 4 | 6;
  /** Network bytes (4 or 16). */
  address: Uint8Array;
  length: number;
  text: string;
}

/**
 * Parses "network/length" of either family; returns the problem as text (for the caller's
 * ConfigError) when it is not a prefix or has bits set past its length.
 */
export function parseAnyPrefix(text: string): AnyPrefix | string {
  let p: ReturnType<typeof parsePrefix>;
  try {
    p = parsePrefix(text);
  } catch {
    return `"${text}" is not an IPv4 or IPv6 prefix (network/length)`;
  }
  const family = p.address.length === 4 ? 4 : 6;
  const net = maskPrefix(p.address, p.length);
  const netText = family === 4 ? Array.from(net).join('.') : formatIpv6(net);
  if (net.some((b, i) => b !== p.address[i])) {
    return `"${text}" has host bits set (did you mean ${netText}/${p.length}?)`;
  }
  return { family, address: net, length: p.length, text: `${netText}/${p.length}` };
}
