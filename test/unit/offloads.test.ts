// Offload reporting (issue #16): the addon's bit masks decoded, the short names the status and
// the startup log show, and the status line.
import t from 'tap';
import { watchOffloads } from '../../src/cli/daemons.js';
import { formatStatus } from '../../src/cli/status.js';
import { Logger } from '../../src/util/log.js';
import { waitFor } from '../helpers/wait.js';
import { decodeTunOffloads } from '../../src/io/tun.js';
import { decodeUdpOffloads } from '../../src/io/udp.js';
import { offloadNames } from '../../src/roles/offloads.js';

void t.test('addon masks decoded', async (t) => {
  t.same(decodeTunOffloads(1 | 2 | 4 | 8), {
    vnetHeader: true,
    checksum: true,
    tso4: true,
    tso6: true,
    uso4: false,
    uso6: false,
    disabledByEnv: false,
    coalesceWrites: false,
  });
  t.equal(decodeTunOffloads(64).disabledByEnv, true);
  t.same(
    decodeTunOffloads(1 | 256 | (22 << 16)).coalesceRefusedErrno,
    22,
    'write coalescing refused with EINVAL',
  );
  const udpRefused = decodeTunOffloads(1 | 16 | 128 | 512 | (22 << 16));
  t.equal(udpRefused.coalesceUdpRefusedErrno, 22, 'UDP runs refused with EINVAL');
  t.equal(udpRefused.coalesceRefusedErrno, undefined, 'TCP runs not refused');
  t.equal(udpRefused.coalesceWrites, true, 'TCP runs go on');
  t.same(offloadNames({ offloads: () => udpRefused }, []), [
    'tun-uso4',
    'tun-gro',
    'tun-gro-udp-refused-errno22',
  ]);
  t.same(decodeUdpOffloads(3), { gso: true, gro: true, disabledByEnv: false });
  t.same(
    decodeUdpOffloads(2 | 4 | (5 << 8)),
    { gso: false, gro: true, gsoRefusedErrno: 5, disabledByEnv: false },
    'GSO refused with EIO',
  );
});

void t.test('names of what the kernel accepted', async (t) => {
  const tun = { offloads: () => decodeTunOffloads(1 | 2 | 4 | 8 | 16 | 32 | 128) };
  const udp4 = { family: 4 as const, offloads: () => decodeUdpOffloads(3) };
  const udp6 = { family: 6 as const, offloads: () => decodeUdpOffloads(2 | 4 | (5 << 8)) };
  t.same(offloadNames(tun, [udp4, undefined, udp6]), [
    'tun-csum',
    'tun-tso4',
    'tun-tso6',
    'tun-uso4',
    'tun-uso6',
    'tun-gro',
    'udp4-gso',
    'udp4-gro',
    'udp6-gro',
    'udp6-gso-refused-errno5',
  ]);
  t.same(offloadNames({}, [{ family: 4 }]), [], 'devices without offloads (fakes): none');
  const text = formatStatus({ role: 'ha', pid: 1, offloads: ['tun-tso4', 'udp4-gso'] });
  t.match(text, /^offloads tun-tso4 udp4-gso$/m);
  t.match(formatStatus({ role: 'mn', offloads: [] }), /^offloads none$/m);
});

void t.test('a refusal after start is said once in a warn line', async (t) => {
  const lines: string[] = [];
  const log = new Logger({ sink: { write: (l: string) => lines.push(l) }, level: 'info' });
  let mask = 3; // GSO and GRO
  const udp4 = { family: 4 as const, offloads: () => decodeUdpOffloads(mask) };
  const tun = { offloads: () => decodeTunOffloads(1 | 2 | 4 | 8 | 128) };
  const stop = watchOffloads(log, tun, [udp4], 5);
  t.teardown(stop);
  await new Promise((r) => setTimeout(r, 30));
  t.same(lines, [], 'nothing while everything is accepted');
  mask = 2 | 4 | (5 << 8); // the kernel refused a segmented send with EIO
  await waitFor('the warn line', () => lines.length > 0, 2000, 5);
  await new Promise((r) => setTimeout(r, 30));
  t.equal(lines.length, 1, 'once');
  t.match(lines[0], /offload-refused/);
  t.match(lines[0], /udp4-gso-refused-errno5/);
});
