/**
 * `--pcap FILE` (src/io/pcap-sink.ts) against the issue #13 attacks: the daemon opens the file
 * as root and writes decrypted traffic to it, so a symbolic link, a hard link, a FIFO or a
 * world-readable file planted at the path must neither redirect nor expose the capture.
 */
import t, { type Test } from 'tap';
import {
  chmodSync,
  chownSync,
  existsSync,
  linkSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PcapSink } from '../../src/io/pcap-sink.js';
import { encodePcapHeader } from '../../src/wire/pcap.js';

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), `mip6-pcap-${process.pid}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const noError = (err: Error): never => {
  throw err;
};

/** A file with `content`, mode 0644: what an attack must leave as it was. */
function plant(path: string, content: string): string {
  writeFileSync(path, content);
  chmodSync(path, 0o644);
  return path;
}

function untouched(t: Test, path: string, content: string): void {
  t.equal(readFileSync(path, 'utf8'), content, `${path}: content untouched`);
  t.equal(statSync(path).mode & 0o777, 0o644, `${path}: mode untouched`);
}

void t.test('a symlink at the path is refused and its target untouched', async (t) => {
  const dir = tempDir(t);
  const victim = plant(join(dir, 'victim'), 'precious');
  const path = join(dir, 'capture.pcap');
  symlinkSync(victim, path);
  t.throws(() => new PcapSink(path, noError), {
    code: 'ERR_PCAP_UNSAFE',
    message: `refusing pcap file ${path}: it is a symbolic link (never followed for decrypted traffic)`,
  });
  untouched(t, victim, 'precious');

  const dangling = join(dir, 'dangling.pcap');
  const absent = join(dir, 'would-be-created');
  symlinkSync(absent, dangling);
  t.throws(() => new PcapSink(dangling, noError), { code: 'ERR_PCAP_UNSAFE' });
  t.notOk(existsSync(absent), 'a dangling link does not create its target');
});

void t.test('an existing 0644 file becomes 0600 before anything is written', async (t) => {
  const dir = tempDir(t);
  const path = plant(join(dir, 'old.pcap'), 'old capture, longer than a pcap header');
  const sink = new PcapSink(path, noError);
  t.equal(statSync(path).mode & 0o777, 0o600, 'mode forced to 0600');
  sink.write(new Uint8Array(40), 1_000_000);
  sink.close();
  const bytes = readFileSync(path);
  t.same(bytes.subarray(0, 24), Buffer.from(encodePcapHeader()), 'truncated, then the header');
  t.equal(bytes.length, 24 + 16 + 40, 'header and one record, nothing of the old content');
});

void t.test('a new file is 0600 whatever the umask', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'new.pcap');
  const old = process.umask(0);
  let sink: PcapSink;
  try {
    sink = new PcapSink(path, noError);
  } finally {
    process.umask(old);
  }
  sink.close();
  t.equal(statSync(path).mode & 0o777, 0o600);
});

void t.test('hard links, FIFOs and directories are refused', async (t) => {
  const dir = tempDir(t);
  const other = plant(join(dir, 'other'), 'other data');
  const hard = join(dir, 'hard.pcap');
  linkSync(other, hard);
  t.throws(() => new PcapSink(hard, noError), {
    code: 'ERR_PCAP_UNSAFE',
    message: `refusing pcap file ${hard}: it has 2 hard links`,
  });
  untouched(t, other, 'other data');

  t.throws(() => new PcapSink(dir, noError), { code: 'ERR_PCAP_OPEN', message: /EISDIR/ });

  const fifo = join(dir, 'fifo.pcap');
  if (spawnSync('mkfifo', [fifo]).status !== 0) {
    t.comment('mkfifo not available: FIFO case not run');
    return;
  }
  // Without a reader a blocking open would hang the daemon; it fails at once instead.
  t.throws(() => new PcapSink(fifo, noError), { code: 'ERR_PCAP_OPEN', message: /ENXIO/ });
});

void t.test(
  "someone else's file is refused and left as it was",
  { skip: process.getuid?.() === 0 ? false : 'needs root (chown)' },
  async (t) => {
    const dir = tempDir(t);
    const path = plant(join(dir, 'theirs.pcap'), 'theirs');
    chownSync(path, 65534, 65534);
    t.throws(() => new PcapSink(path, noError), {
      code: 'ERR_PCAP_UNSAFE',
      message: `refusing pcap file ${path}: it belongs to uid 65534, not to this process (uid 0)`,
    });
    untouched(t, path, 'theirs');
  },
);
