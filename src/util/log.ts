/**
 * A tiny structured logger: one line per event, four levels, two formats.
 *   text: `2026-11-29T12:00:00.000Z info registration hoa=2001:db8:100::10 status=accepted`
 *   json: `{"time":"2026-11-29T12:00:00.000Z","level":"info","event":"registration",...}`
 * It writes to any `{ write(string) }` sink given at construction and reads time from an
 * injectable clock, so tests see exact lines. No node:* imports (util is below everything).
 */
import { systemWallClock } from './wall-clock.js';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFormat = 'text' | 'json';

/** Field values a log line can carry; Errors print as `code: message`. */
export type LogValue = string | number | boolean | bigint | null | undefined | Error;
export type LogFields = Record<string, LogValue>;

/** Where lines go: process.stderr, a file stream, or an array in tests. */
export interface LogSink {
  write(line: string): unknown;
}

export interface LoggerOptions {
  sink: LogSink;
  level?: LogLevel;
  format?: LogFormat;
  /** Milliseconds since the epoch; defaults to the system wall clock (util/wall-clock.ts). */
  clock?: () => number;
  /** Fields added to every line (e.g. `{ role: 'ha' }`). */
  fields?: LogFields;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** True when `s` names a log level. */
export function isLogLevel(s: string): s is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(s);
}

function valueText(v: LogValue): string | number | boolean | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Error) {
    const code = (v as Error & { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${v.message}` : v.message;
  }
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  return v;
}

function hasControlChar(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

/** Quotes a text-format value when it would otherwise be ambiguous. */
function textValue(v: string | number | boolean | null): string {
  if (v === null) return '-';
  const s = String(v);
  if (s === '' || /[\s"=\\]/.test(s) || hasControlChar(s)) return JSON.stringify(s);
  return s;
}

const KEY_RE = /^[A-Za-z0-9_.-]+$/;

export class Logger {
  private readonly sink: LogSink;
  private readonly format: LogFormat;
  private readonly clock: () => number;
  private readonly fields: LogFields;
  private minRank: number;

  constructor(opts: LoggerOptions) {
    this.sink = opts.sink;
    this.format = opts.format ?? 'text';
    this.clock = opts.clock ?? systemWallClock;
    this.fields = opts.fields ?? {};
    this.minRank = RANK[opts.level ?? 'info'];
  }

  /** A logger that writes nowhere (default for engines in tests). */
  static silent(): Logger {
    return new Logger({ sink: { write: () => undefined }, level: 'error' }).muted();
  }

  private muted(): this {
    this.minRank = Infinity;
    return this;
  }

  /** Changes the threshold at run time (e.g. from the control socket). */
  setLevel(level: LogLevel): void {
    this.minRank = RANK[level];
  }

  enabled(level: LogLevel): boolean {
    return RANK[level] >= this.minRank;
  }

  /** A logger with extra fixed fields, sharing sink, format, clock and level. */
  child(fields: LogFields): Logger {
    const c = new Logger({
      sink: this.sink,
      format: this.format,
      clock: this.clock,
      fields: { ...this.fields, ...fields },
    });
    c.minRank = this.minRank;
    return c;
  }

  debug(event: string, fields?: LogFields): void {
    this.log('debug', event, fields);
  }
  info(event: string, fields?: LogFields): void {
    this.log('info', event, fields);
  }
  warn(event: string, fields?: LogFields): void {
    this.log('warn', event, fields);
  }
  error(event: string, fields?: LogFields): void {
    this.log('error', event, fields);
  }

  log(level: LogLevel, event: string, fields?: LogFields): void {
    if (RANK[level] < this.minRank) return;
    this.sink.write(this.line(level, event, fields) + '\n');
  }

  /** The formatted line for an event, without the trailing newline. */
  line(level: LogLevel, event: string, fields?: LogFields): string {
    const time = new Date(this.clock()).toISOString();
    const all: LogFields = fields === undefined ? this.fields : { ...this.fields, ...fields };
    if (this.format === 'json') {
      const obj: Record<string, string | number | boolean | null> = { time, level, event };
      for (const [k, v] of Object.entries(all)) {
        if (v === undefined || k === 'time' || k === 'level' || k === 'event') continue;
        obj[k] = valueText(v);
      }
      return JSON.stringify(obj);
    }
    let out = `${time} ${level} ${textValue(event)}`;
    for (const [k, v] of Object.entries(all)) {
      if (v === undefined) continue;
      const key = KEY_RE.test(k) ? k : JSON.stringify(k);
      out += ` ${key}=${textValue(valueText(v))}`;
    }
    return out;
  }
}
