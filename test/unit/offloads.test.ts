// Offload reporting (issue #16): the addon's bit masks decoded, the short names the status and
// the startup log show, and the status line.
import t from 'tap';
import { formatStatus } from '../../src/cli/status.js';
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
