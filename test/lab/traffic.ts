/**
 * Two-way TCP traffic generator and verifier for the netns lab and the demo. It measures how long a
 * TCP session through the tunnel is interrupted when the mobile node moves.
 *
 *   node --import tsx test/lab/traffic.ts server --listen ADDR [--port P] [--rate B/s] [--duration S]
 *   node --import tsx test/lab/traffic.ts client --connect ADDR --port P [--rate B/s] [--duration S]
 *                                                [--bind ADDR]
 *
 * Flow of one run (one TCP connection, both directions loaded):
 *   1. server: listen, print {"event":"listening","port":P}, accept ONE connection, stop listening.
 *      client: connect (from --bind when given). Both print {"event":"connected",...}.
 *   2. Every PACE_INTERVAL_MS the pacer writes DATA frames with the next bytes of this direction's
 *      deterministic stream (at most --rate bytes/s; a short burst cap so a stall is not followed by
 *      a flood; nothing is written while the socket pushes back).
 *   3. Each received byte is checked against the peer's stream (mismatches counted, first offset
 *      kept) and every arrival feeds the gap tracker: the longest interval without received data.
 *   4. stdin carries JSON-line commands: {"cmd":"mark","label":L} opens a new gap window (answered by
 *      {"event":"marked"}), {"cmd":"report"} prints {"event":"report",...}, {"cmd":"rate",
 *      "bytesPerSecond":N} changes our pace (0: idle, the connection stays up; {"event":"rated"}),
 *      {"cmd":"stop"} ends our stream. An optional numeric "id" is echoed. stdin EOF and --duration elapsing also end it.
 *   5. Ending a stream: an END frame carrying the total stream bytes sent, then FIN (half-close). A
 *      side that receives END ends its own stream too, so stopping one side stops both.
 *   6. When both directions are closed: a final report ({"final":true}) and exit 0 if every byte
 *      verified and the received total equals the peer's END total; exit 1 on any mismatch, reset,
 *      truncated stream or timeout; exit 2 on a usage error.
 *
 * Frames on the connection: `type(1) | length(2, big-endian) | payload`; DATA (1) carries stream
 * bytes, END (2) an 8-byte big-endian total. Stream byte i of a direction is byte (i mod 4) of
 * mix32(seed, floor(i / 4)): counter mode, so any offset is generated or verified without state.
 *
 * Sockets: TCP_NODELAY on, SO_KEEPALIVE off, and only a generous idle timeout: during a move the
 * tunnel may be down for seconds, TCP just retransmits, and a pause is measured, not failed.
 *
 * `--corrupt-at N` (for tests, not in the usage text) flips stream byte N before sending it.
 */
import { realpathSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Mip6Error, WireError } from '../../src/util/errors.js';

// ---- Constants -------------------------------------------------------------------------------

export const FRAME_DATA = 1;
export const FRAME_END = 2;
export const FRAME_TYPE_OFF = 0;
export const FRAME_LENGTH_OFF = 1;
export const FRAME_HEADER_LEN = 3;
export const FRAME_MAX_PAYLOAD = 0xffff;
export const END_PAYLOAD_LEN = 8;

/** Seeds of the two directions' streams (distinct, so a reflected stream does not verify). */
export const STREAM_SEED = { clientToServer: 0x6d697036, serverToClient: 0x7365727e } as const;

export const DEFAULT_RATE = 1_000_000; // bytes/s each way
export const MAX_RATE = 100_000_000;
export const DEFAULT_CLIENT_DURATION_S = 30;
export const MAX_DURATION_S = 600; // also the server's default: normally the client ends the run
export const MAX_TOTAL_BYTES = 4 * 2 ** 30; // per direction; keeps word indices below 2^30
export const PACE_INTERVAL_MS = 2; // gaps are measured at this resolution
export const BURST_MS = 10; // credit cap: at most this much of the rate is sent at once
export const DEFAULT_IDLE_TIMEOUT_S = 120; // no socket activity at all for this long: fail
export const DEFAULT_DRAIN_TIMEOUT_S = 60; // after our END, the peer must finish within this
export const DEFAULT_ACCEPT_TIMEOUT_S = 120; // server: the client must connect within this
export const DEFAULT_CONNECT_TIMEOUT_S = 30; // client: the handshake must finish within this

// ---- Deterministic stream (pure) -------------------------------------------------------------

/** 32-bit word `index` of the stream with `seed` (murmur3 finalizer over a Weyl sequence). */
export function streamWord(seed: number, index: number): number {
  let h = (Math.imul(index, 0x9e3779b1) ^ seed) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Writes stream bytes [offset, offset + len) into out[start ..]. */
export function fillStream(
  seed: number,
  offset: number,
  out: Uint8Array,
  start = 0,
  len = out.length - start,
): void {
  let word = streamWord(seed, Math.floor(offset / 4));
  for (let i = 0; i < len; i++) {
    const pos = offset + i;
    const lane = pos % 4;
    if (lane === 0 && i > 0) word = streamWord(seed, pos / 4);
    out[start + i] = (word >>> (8 * lane)) & 0xff;
  }
}

export interface VerifyResult {
  mismatches: number;
  firstMismatchOffset: number | null;
}

/** Compares `data` with stream bytes [offset, offset + data.length). */
export function verifyStream(seed: number, offset: number, data: Uint8Array): VerifyResult {
  let mismatches = 0;
  let firstMismatchOffset: number | null = null;
  let word = streamWord(seed, Math.floor(offset / 4));
  for (let i = 0; i < data.length; i++) {
    const pos = offset + i;
    const lane = pos % 4;
    if (lane === 0 && i > 0) word = streamWord(seed, pos / 4);
    if (data[i] !== ((word >>> (8 * lane)) & 0xff)) {
      mismatches++;
      firstMismatchOffset ??= pos;
    }
  }
  return { mismatches, firstMismatchOffset };
}

// ---- Framing (pure) --------------------------------------------------------------------------

/** A DATA frame with room for `len` stream bytes at FRAME_HEADER_LEN (filled in place). */
export function dataFrame(len: number): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_LEN + len);
  frame[FRAME_TYPE_OFF] = FRAME_DATA;
  frame.writeUInt16BE(len, FRAME_LENGTH_OFF);
  return frame;
}

export function endFrame(total: number): Buffer {
  const frame = Buffer.alloc(FRAME_HEADER_LEN + END_PAYLOAD_LEN);
  frame[FRAME_TYPE_OFF] = FRAME_END;
  frame.writeUInt16BE(END_PAYLOAD_LEN, FRAME_LENGTH_OFF);
  frame.writeBigUInt64BE(BigInt(total), FRAME_HEADER_LEN);
  return frame;
}

export type FrameEvent = { type: 'data'; bytes: Uint8Array } | { type: 'end'; total: number };

/**
 * Byte-driven frame parser: DATA payloads are handed out as they arrive (no reassembly), only
 * the 3 header bytes and the 8 END bytes are buffered. Throws WireError on a malformed frame.
 */
export class FrameReader {
  private readonly header = Buffer.alloc(FRAME_HEADER_LEN);
  private headerFill = 0;
  private readonly endPayload = Buffer.alloc(END_PAYLOAD_LEN);
  private endFill = 0;
  private type = 0;
  private payloadLeft = 0;
  private consumed = 0;

  push(chunk: Uint8Array): FrameEvent[] {
    const events: FrameEvent[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      if (this.headerFill < FRAME_HEADER_LEN) {
        const n = Math.min(FRAME_HEADER_LEN - this.headerFill, chunk.length - pos);
        this.header.set(chunk.subarray(pos, pos + n), this.headerFill);
        this.headerFill += n;
        pos += n;
        if (this.headerFill < FRAME_HEADER_LEN) break;
        this.startFrame(this.consumed + pos - FRAME_HEADER_LEN);
        if (this.payloadLeft === 0) this.headerFill = 0;
        continue;
      }
      const n = Math.min(this.payloadLeft, chunk.length - pos);
      const piece = chunk.subarray(pos, pos + n);
      pos += n;
      this.payloadLeft -= n;
      if (this.type === FRAME_DATA) {
        events.push({ type: 'data', bytes: piece });
      } else {
        this.endPayload.set(piece, this.endFill);
        this.endFill += n;
        if (this.payloadLeft === 0) {
          events.push({ type: 'end', total: Number(this.endPayload.readBigUInt64BE(0)) });
        }
      }
      if (this.payloadLeft === 0) this.headerFill = 0;
    }
    this.consumed += chunk.length;
    return events;
  }

  private startFrame(at: number): void {
    this.type = this.header[FRAME_TYPE_OFF] ?? 0;
    this.payloadLeft = this.header.readUInt16BE(FRAME_LENGTH_OFF);
    if (this.type === FRAME_END) {
      if (this.payloadLeft !== END_PAYLOAD_LEN)
        throw new WireError('ERR_BAD_LENGTH', `END frame of ${this.payloadLeft} bytes`, at);
      this.endFill = 0;
    } else if (this.type !== FRAME_DATA) {
      throw new WireError('ERR_BAD_VALUE', `unknown frame type ${this.type}`, at);
    }
  }
}

// ---- Gap tracking (pure; times in ms from any monotonic origin) ------------------------------

export interface MarkGap {
  label: string;
  /** When the mark was recorded, ms since the tool started. */
  atMs: number;
  /** Longest interval without received data that ended after this mark and before the next. */
  gapMs: number;
}

export interface GapSnapshot {
  maxGapMs: number;
  maxGapMsSinceLastMark: number;
  gapsAfterMarks: MarkGap[];
}

/**
 * The longest data-free interval per mark window. A gap belongs to the window in which it ends
 * (data resumes), so an outage that starts just before a mark is counted whole after it; the
 * still-open gap counts into the current window until the peer's stream ends.
 */
export class GapTracker {
  private last: number | undefined;
  private ended = false;
  private maxGap = 0;
  private currentMax = 0; // the current window's max (before the first mark: the initial window)
  private readonly marks: MarkGap[] = [];

  /** Starts measuring (the connection is up). */
  begin(now: number): void {
    this.last ??= now;
  }

  onData(now: number): void {
    if (this.last === undefined || this.ended) return;
    this.note(now - this.last);
    this.last = now;
  }

  mark(label: string, now: number): MarkGap {
    const window: MarkGap = { label, atMs: now, gapMs: 0 };
    this.marks.push(window);
    this.currentMax = 0;
    return window;
  }

  /** The peer's stream is complete: no further gap can open. */
  end(now: number): void {
    this.onData(now);
    this.ended = true;
  }

  snapshot(now: number): GapSnapshot {
    const open = this.last === undefined || this.ended ? 0 : Math.max(0, now - this.last);
    const current = this.marks.at(-1);
    return {
      maxGapMs: Math.max(this.maxGap, open),
      maxGapMsSinceLastMark: Math.max(this.currentMax, open),
      gapsAfterMarks: this.marks.map((m) => ({
        ...m,
        gapMs: m === current ? Math.max(m.gapMs, open) : m.gapMs,
      })),
    };
  }

  private note(gap: number): void {
    this.maxGap = Math.max(this.maxGap, gap);
    this.currentMax = Math.max(this.currentMax, gap);
    const current = this.marks.at(-1);
    if (current) current.gapMs = Math.max(current.gapMs, gap);
  }
}

// ---- The endpoint (I/O driver) ---------------------------------------------------------------

export type TrafficRole = 'server' | 'client';

export interface TrafficOptions {
  role: TrafficRole;
  /** server: the address to listen on; client: the address to connect to. */
  address: string;
  port: number;
  bind?: string;
  rate: number;
  durationS: number;
  maxBytes: number;
  idleTimeoutS: number;
  drainTimeoutS: number;
  acceptTimeoutS: number;
  connectTimeoutS: number;
  corruptAt?: number;
}

export interface TrafficReport extends GapSnapshot {
  event: 'report';
  id?: number;
  role: TrafficRole;
  /** true on the last report, printed just before the process exits. */
  final: boolean;
  /** No error and no mismatch (so far); on the final report also: totals matched. */
  ok: boolean;
  error: string | null;
  /** ms since this process started (marks' atMs use the same origin). */
  elapsedMs: number;
  connected: boolean;
  /** When the connection came up, same origin; null before. */
  connectedAtMs: number | null;
  /** Stream bytes written to the socket / received from the peer (frame headers excluded). */
  bytesSent: number;
  bytesReceived: number;
  verified: number;
  mismatches: number;
  firstMismatchOffset: number | null;
  /** The total from the peer's END frame, once it arrived. */
  peerDeclaredSent: number | null;
  sendDone: boolean;
  receiveDone: boolean;
}

type Emit = (event: Record<string, unknown>) => void;

const round = (ms: number): number => Math.round(ms * 10) / 10;

export class TrafficEndpoint {
  private readonly t0 = performance.now();
  private readonly gaps = new GapTracker();
  private readonly reader = new FrameReader();
  private readonly sendSeed: number;
  private readonly recvSeed: number;
  private server: Server | undefined;
  private socket: Socket | undefined;
  private connected = false;
  private connectedAt: number | null = null;
  private sent = 0;
  private received = 0;
  private verified = 0;
  private mismatches = 0;
  private firstMismatchOffset: number | null = null;
  private peerTotal: number | null = null;
  private sendDone = false;
  private peerFin = false;
  private credit = 0;
  private lastTick = 0;
  private deadline = Infinity;
  private blocked = false;
  private pacer: NodeJS.Timeout | undefined;
  private timer: NodeJS.Timeout | undefined; // accept, connect or drain deadline
  private error: string | null = null;
  private finished = false;
  private readonly opts: TrafficOptions;
  private readonly emit: Emit;
  private readonly onFinal: (report: TrafficReport, exitCode: number) => void;

  constructor(
    opts: TrafficOptions,
    emit: Emit,
    onFinal: (report: TrafficReport, exitCode: number) => void,
  ) {
    this.opts = opts;
    this.emit = emit;
    this.onFinal = onFinal;
    const c2s = STREAM_SEED.clientToServer;
    const s2c = STREAM_SEED.serverToClient;
    this.sendSeed = opts.role === 'client' ? c2s : s2c;
    this.recvSeed = opts.role === 'client' ? s2c : c2s;
  }

  start(): void {
    if (this.opts.role === 'server') this.listen();
    else this.dial();
  }

  /** One JSON-line command from stdin (already parsed). Unknown commands are reported, ignored. */
  command(cmd: Record<string, unknown>): void {
    const id = typeof cmd.id === 'number' ? { id: cmd.id } : {};
    switch (cmd.cmd) {
      case 'mark': {
        const label = typeof cmd.label === 'string' ? cmd.label : `mark-${this.markCount() + 1}`;
        const m = this.gaps.mark(label, this.now());
        this.emit({ event: 'marked', ...id, label, atMs: round(m.atMs) });
        return;
      }
      case 'report':
        this.emit({ ...this.report(false), ...id });
        return;
      case 'rate': {
        // A new pace each way from now on; 0 makes this side idle (the connection stays up).
        const r = cmd.bytesPerSecond;
        if (typeof r !== 'number' || !Number.isFinite(r) || r < 0 || r > MAX_RATE) {
          this.emit({ event: 'warning', ...id, message: `bad rate ${JSON.stringify(r)}` });
          return;
        }
        this.opts.rate = r;
        this.credit = Math.min(this.credit, Math.max(1, (r * BURST_MS) / 1000));
        this.emit({ event: 'rated', ...id, bytesPerSecond: r });
        return;
      }
      case 'stop':
        this.stop();
        return;
      default:
        this.emit({ event: 'warning', ...id, message: `unknown command ${JSON.stringify(cmd)}` });
    }
  }

  /** Ends our stream (stop command, stdin EOF): the peer answers with its END and FIN. */
  stop(): void {
    if (this.finished) return;
    if (!this.connected) this.fail('stopped before a connection was established');
    else this.finishSending();
  }

  report(final: boolean): TrafficReport {
    const now = this.now();
    const totalsOk = !final || (this.peerTotal === this.received && this.sendDone);
    return {
      event: 'report',
      role: this.opts.role,
      final,
      ok: this.error === null && this.mismatches === 0 && totalsOk,
      error: this.error,
      elapsedMs: round(now),
      connected: this.connected,
      connectedAtMs: this.connectedAt === null ? null : round(this.connectedAt),
      bytesSent: this.sent,
      bytesReceived: this.received,
      verified: this.verified,
      mismatches: this.mismatches,
      firstMismatchOffset: this.firstMismatchOffset,
      peerDeclaredSent: this.peerTotal,
      sendDone: this.sendDone,
      receiveDone: this.peerFin,
      ...this.roundedGaps(now),
    };
  }

  private roundedGaps(now: number): GapSnapshot {
    const s = this.gaps.snapshot(now);
    return {
      maxGapMs: round(s.maxGapMs),
      maxGapMsSinceLastMark: round(s.maxGapMsSinceLastMark),
      gapsAfterMarks: s.gapsAfterMarks.map((m) => ({
        label: m.label,
        atMs: round(m.atMs),
        gapMs: round(m.gapMs),
      })),
    };
  }

  private markCount(): number {
    return this.gaps.snapshot(this.now()).gapsAfterMarks.length;
  }

  private now(): number {
    return performance.now() - this.t0;
  }

  private listen(): void {
    const server = createServer({ allowHalfOpen: true }, (sock) => {
      if (this.socket || this.finished) {
        sock.destroy(); // one connection per run
        return;
      }
      server.close();
      sock.on('error', (err) => this.fail(describe(err)));
      this.attach(sock);
    });
    this.server = server;
    server.on('error', (err) => this.fail(`listen: ${describe(err)}`));
    server.listen({ host: this.opts.address, port: this.opts.port }, () => {
      const addr = server.address();
      if (addr === null || typeof addr === 'string') return;
      this.emit({ event: 'listening', address: addr.address, port: addr.port });
    });
    this.arm(this.opts.acceptTimeoutS, 'no connection accepted');
  }

  private dial(): void {
    const sock = connect({
      host: this.opts.address,
      port: this.opts.port,
      allowHalfOpen: true,
      ...(this.opts.bind !== undefined ? { localAddress: this.opts.bind } : {}),
    });
    this.socket = sock;
    sock.on('error', (err) => this.fail(describe(err)));
    sock.once('connect', () => this.attach(sock));
    this.arm(this.opts.connectTimeoutS, 'connect did not complete');
  }

  private attach(sock: Socket): void {
    this.socket = sock;
    this.connected = true;
    this.disarm();
    sock.setNoDelay(true);
    sock.setKeepAlive(false);
    sock.setTimeout(this.opts.idleTimeoutS * 1000);
    sock.on('timeout', () => this.fail(`no socket activity for ${this.opts.idleTimeoutS} s`));
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('end', () => this.onPeerFin());
    sock.on('close', () => this.onClose());
    this.emit({
      event: 'connected',
      localAddress: sock.localAddress,
      localPort: sock.localPort,
      remoteAddress: sock.remoteAddress,
      remotePort: sock.remotePort,
    });
    const now = this.now();
    this.connectedAt = now;
    this.gaps.begin(now);
    this.lastTick = now;
    this.deadline = now + this.opts.durationS * 1000;
    this.pacer = setInterval(() => this.tick(), PACE_INTERVAL_MS);
  }

  private tick(): void {
    const sock = this.socket;
    if (this.sendDone || !sock) return;
    const now = this.now();
    if (now >= this.deadline || this.sent >= this.opts.maxBytes) {
      this.finishSending();
      return;
    }
    const burst = Math.max(1, (this.opts.rate * BURST_MS) / 1000);
    this.credit = Math.min(burst, this.credit + ((now - this.lastTick) * this.opts.rate) / 1000);
    this.lastTick = now;
    while (!this.blocked && this.credit >= 1 && this.sent < this.opts.maxBytes) {
      const n = Math.min(
        Math.floor(this.credit),
        FRAME_MAX_PAYLOAD,
        this.opts.maxBytes - this.sent,
      );
      const frame = dataFrame(n);
      fillStream(this.sendSeed, this.sent, frame, FRAME_HEADER_LEN, n);
      const corrupt = this.opts.corruptAt;
      if (corrupt !== undefined && corrupt >= this.sent && corrupt < this.sent + n) {
        const at = FRAME_HEADER_LEN + corrupt - this.sent;
        frame[at] = (frame[at] ?? 0) ^ 0xff;
      }
      this.sent += n;
      this.credit -= n;
      if (!sock.write(frame)) {
        this.blocked = true;
        sock.once('drain', () => {
          this.blocked = false;
        });
      }
    }
  }

  private onData(chunk: Buffer): void {
    const now = this.now();
    this.gaps.onData(now);
    let events: FrameEvent[];
    try {
      events = this.reader.push(chunk);
    } catch (err) {
      this.fail(`malformed frame from peer: ${describe(err)}`);
      return;
    }
    for (const ev of events) {
      if (this.peerTotal !== null) {
        this.fail('data after the peer END frame');
        return;
      }
      if (ev.type === 'end') {
        this.peerTotal = ev.total;
        this.gaps.end(now);
        this.finishSending(); // mirror the close: stopping one side stops both
        continue;
      }
      const v = verifyStream(this.recvSeed, this.received, ev.bytes);
      if (v.mismatches > 0 && this.firstMismatchOffset === null) {
        process.stderr.write(
          `traffic ${this.opts.role}: mismatch at offset ${v.firstMismatchOffset}\n`,
        );
      }
      this.received += ev.bytes.length;
      this.verified += ev.bytes.length - v.mismatches;
      this.mismatches += v.mismatches;
      this.firstMismatchOffset ??= v.firstMismatchOffset;
    }
  }

  private finishSending(): void {
    const sock = this.socket;
    if (this.sendDone || !sock) return;
    this.sendDone = true;
    clearInterval(this.pacer);
    sock.end(endFrame(this.sent));
    this.arm(this.opts.drainTimeoutS, 'the peer did not finish after our END');
  }

  private onPeerFin(): void {
    this.peerFin = true;
    if (this.peerTotal === null) {
      this.fail('the peer closed without an END frame (truncated stream)');
      return;
    }
    this.finishSending();
  }

  private onClose(): void {
    if (!this.sendDone || !this.peerFin) this.fail('connection closed before both streams ended');
    else this.finish();
  }

  private fail(message: string): void {
    if (this.finished) return;
    this.error ??= message;
    this.socket?.destroy();
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    if (this.error === null && this.peerTotal !== this.received) {
      this.error = `the peer declared ${this.peerTotal} bytes sent, ${this.received} received`;
    }
    this.finished = true;
    clearInterval(this.pacer);
    this.disarm();
    this.server?.close();
    const report = this.report(true);
    this.onFinal(report, report.ok ? 0 : 1);
  }

  private arm(seconds: number, what: string): void {
    this.disarm();
    this.timer = setTimeout(() => this.fail(`${what} within ${seconds} s`), seconds * 1000);
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code !== undefined && !err.message.includes(code)
      ? `${code}: ${err.message}`
      : err.message;
  }
  return String(err);
}

// ---- Command line ----------------------------------------------------------------------------

/** A bad command line (exit status 2). */
export class UsageError extends Mip6Error {
  constructor(message: string) {
    super('ERR_USAGE', message);
  }
}

const USAGE = `usage:
  traffic.ts server --listen ADDR [--port P] [--rate BYTES_PER_S] [--duration S]
  traffic.ts client --connect ADDR --port P [--rate BYTES_PER_S] [--duration S] [--bind ADDR]
options: --max-bytes N, --idle-timeout S, --drain-timeout S, --accept-timeout S, --connect-timeout S
stdin: JSON lines {"cmd":"mark","label":L} | {"cmd":"report"} | {"cmd":"rate","bytesPerSecond":N}
  | {"cmd":"stop"} (EOF = stop);
stdout: JSON events; exit 0 = every byte verified and totals matched`;

function num(
  value: string | undefined,
  name: string,
  min: number,
  max: number,
  def: number,
): number {
  if (value === undefined) return def;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < min || n > max)
    throw new UsageError(`--${name} must be a number in [${min}, ${max}], got ${value}`);
  return n;
}

/** Parses argv (without node and the script); throws UsageError. */
export function parseTrafficArgs(argv: readonly string[]): TrafficOptions {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      listen: { type: 'string' },
      connect: { type: 'string' },
      port: { type: 'string' },
      bind: { type: 'string' },
      rate: { type: 'string' },
      duration: { type: 'string' },
      'max-bytes': { type: 'string' },
      'idle-timeout': { type: 'string' },
      'drain-timeout': { type: 'string' },
      'accept-timeout': { type: 'string' },
      'connect-timeout': { type: 'string' },
      'corrupt-at': { type: 'string' },
    },
  });
  const role = positionals[0];
  if (positionals.length !== 1 || (role !== 'server' && role !== 'client'))
    throw new UsageError('expected exactly one of: server, client');
  const address = role === 'server' ? values.listen : values.connect;
  if (address === undefined)
    throw new UsageError(role === 'server' ? 'server needs --listen' : 'client needs --connect');
  if (role === 'client' && values.port === undefined) throw new UsageError('client needs --port');
  if (role === 'server' && values.bind !== undefined) throw new UsageError('--bind is client only');
  const defDuration = role === 'client' ? DEFAULT_CLIENT_DURATION_S : MAX_DURATION_S;
  const corrupt = values['corrupt-at'];
  return {
    role,
    address,
    port: num(values.port, 'port', role === 'client' ? 1 : 0, 65535, 0),
    ...(values.bind !== undefined ? { bind: values.bind } : {}),
    rate: num(values.rate, 'rate', 1, MAX_RATE, DEFAULT_RATE),
    durationS: num(values.duration, 'duration', 0, MAX_DURATION_S, defDuration),
    maxBytes: num(values['max-bytes'], 'max-bytes', 0, MAX_TOTAL_BYTES, MAX_TOTAL_BYTES),
    idleTimeoutS: num(values['idle-timeout'], 'idle-timeout', 1, 3600, DEFAULT_IDLE_TIMEOUT_S),
    drainTimeoutS: num(values['drain-timeout'], 'drain-timeout', 1, 600, DEFAULT_DRAIN_TIMEOUT_S),
    acceptTimeoutS: num(
      values['accept-timeout'],
      'accept-timeout',
      1,
      3600,
      DEFAULT_ACCEPT_TIMEOUT_S,
    ),
    connectTimeoutS: num(
      values['connect-timeout'],
      'connect-timeout',
      1,
      600,
      DEFAULT_CONNECT_TIMEOUT_S,
    ),
    ...(corrupt !== undefined
      ? { corruptAt: num(corrupt, 'corrupt-at', 0, MAX_TOTAL_BYTES, 0) }
      : {}),
  };
}

function main(argv: readonly string[]): void {
  let opts: TrafficOptions;
  try {
    opts = parseTrafficArgs(argv);
  } catch (err) {
    process.stderr.write(
      `traffic: ${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`,
    );
    process.exit(2);
  }
  const emit: Emit = (event) => {
    process.stdout.write(`${JSON.stringify(event)}\n`);
  };
  const endpoint = new TrafficEndpoint(opts, emit, (report, code) => {
    if (report.error !== null) process.stderr.write(`traffic ${opts.role}: ${report.error}\n`);
    process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(code));
  });
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  lines.on('line', (line) => {
    if (line.trim() === '') return;
    let cmd: unknown;
    try {
      cmd = JSON.parse(line);
    } catch {
      cmd = undefined;
    }
    if (typeof cmd !== 'object' || cmd === null || Array.isArray(cmd)) {
      emit({ event: 'warning', message: `ignored a malformed command line: ${line.slice(0, 80)}` });
      return;
    }
    endpoint.command(cmd as Record<string, unknown>);
  });
  lines.on('close', () => endpoint.stop()); // the parent went away: finish cleanly
  endpoint.start();
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(realpathSync(entry)).href) {
  main(process.argv.slice(2));
}
