/**
 * `--pcap FILE`: appends every inner (decrypted) packet to a pcap file (LINKTYPE_RAW) so
 * `mip6 decode --pcap` and tshark can read a daemon's traffic. Writing is synchronous and
 * best-effort: a failure (unwritable path, disk full) is reported once through `onError` and
 * capturing stops; the daemon itself goes on.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
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

  /** Opens (truncates) `file`; throws an IoError-worthy Error if it cannot be created. */
  constructor(file: string, onError: (err: Error) => void) {
    this.file = file;
    this.#onError = onError;
    this.#fd = openSync(file, 'w', 0o600);
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
