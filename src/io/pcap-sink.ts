/**
 * `--pcap FILE`: appends every inner (decrypted) packet to a pcap file (LINKTYPE_RAW) so
 * `mip6 decode --pcap` and tshark can read a daemon's traffic. Writing is synchronous and
 * best-effort: a failure (unwritable path, disk full) is reported once through `onError` and
 * capturing stops; the daemon itself goes on.
 *
 * The file holds decrypted traffic and is opened as root, before privileges are dropped
 * (issue #13): a symbolic link is never followed (O_NOFOLLOW), a new file is 0600, an existing
 * one must be a regular file with one link, owned by us, and is forced to 0600 (fchmod on the
 * opened fd) before it is truncated, so nothing is destroyed or exposed through a file we refuse.
 */
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  ftruncateSync,
  openSync,
  writeSync,
} from 'node:fs';
import { IoError } from '../util/errors.js';
import { encodePcapHeader, encodePcapRecord } from '../wire/pcap.js';

export interface PacketSink {
  write(packet: Uint8Array, timeMicros: number): void;
  close(): void;
}

export class PcapSink implements PacketSink {
  #fd: number | null;
  readonly #onError: (err: Error) => void;
  readonly file: string;
  written = 0;

  /**
   * Opens (truncates) `file` as described in the file comment. Throws IoError ERR_PCAP_UNSAFE
   * (a symbolic link, not a regular file, hard-linked, someone else's) or ERR_PCAP_OPEN, each
   * one line naming the path.
   */
  constructor(file: string, onError: (err: Error) => void) {
    this.file = file;
    this.#onError = onError;
    this.#fd = openCaptureFile(file);
    this.#write(encodePcapHeader());
  }

  #write(bytes: Uint8Array): void {
    if (this.#fd === null) return;
    try {
      writeSync(this.#fd, bytes);
    } catch (err) {
      this.close();
      this.#onError(err as Error);
    }
  }

  write(packet: Uint8Array, timeMicros: number): void {
    if (this.#fd === null) return;
    this.#write(encodePcapRecord(packet, timeMicros));
    this.written++;
  }

  close(): void {
    if (this.#fd === null) return;
    const fd = this.#fd;
    this.#fd = null;
    try {
      closeSync(fd);
    } catch {
      // already reported or nothing to do: the capture is best-effort
    }
  }
}

/** Opens `file` for writing without following a link or trusting an existing file's mode. */
function openCaptureFile(file: string): number {
  // O_NONBLOCK: a FIFO planted at the path fails the open (ENXIO) instead of blocking the daemon.
  const flags =
    constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK;
  let fd: number;
  try {
    fd = openSync(file, flags, 0o600);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ELOOP')
      throw unsafe(file, 'it is a symbolic link (never followed for decrypted traffic)', e.errno);
    throw new IoError(
      'ERR_PCAP_OPEN',
      `cannot open pcap file ${file}: ${e.message.split(',')[0] ?? e.code}`,
      e.errno,
    );
  }
  try {
    const st = fstatSync(fd);
    const uid = process.geteuid?.();
    if (!st.isFile()) throw unsafe(file, 'it is not a regular file');
    if (uid !== undefined && st.uid !== uid)
      throw unsafe(file, `it belongs to uid ${st.uid}, not to this process (uid ${uid})`);
    if (st.nlink !== 1) throw unsafe(file, `it has ${st.nlink} hard links`);
    fchmodSync(fd, 0o600);
    ftruncateSync(fd, 0);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}

function unsafe(file: string, why: string, errno?: number): IoError {
  return new IoError('ERR_PCAP_UNSAFE', `refusing pcap file ${file}: ${why}`, errno);
}
