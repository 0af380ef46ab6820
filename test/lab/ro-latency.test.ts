/**
 * Route optimization's RTT claim in the netns lab (issue 7: "the MN-CN RTT is within 10% of the
 * direct underlay RTT while the tunneled path's is the triangle"). The lab's underlay RTT is
 * ~0.1 ms and this kernel has no sch_netem, so the userspace impairment element
 * (test/lab/impair.ts) adds a constant one-way delay D to every packet the router forwards.
 *   underlay  MN -> router -> CN -> router -> MN                          2 D
 *   RO        the same path, carried by the MN-CN channel                 2 D
 *   via HA    MN -> HA -> CN -> HA -> MN, every leg through the router   4 D (the triangle)
 * Measured with ping (medians of PINGS echoes each): the underlay between the MN's LTE address
 * and the CN's; the overlay MN-HoA <-> CN-HoA with RO established (the HA's counters prove the
 * echoes went direct); the same with RO off (MN restarted without it; the HA counts them).
 */
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HaStatus, MemberStatus } from '../../src/io/control-protocol.js';
import { median } from '../../bench/lib/stats.js';
import { LAB_ADDR, labUnavailableReason, type Lab } from './lab.js';
import { cnToml, correspondentSection, Daemon, LabSession, mnToml } from './mip6-lab.js';
import { startImpairment } from './impairment.js';

const MN_HOA = LAB_ADDR.mn.homeAddress;
const CN_HOA = '2001:db8:100::20';
/**
 * One-way delay the router adds to every forwarded packet, ms: a 60 ms underlay RTT, a usual
 * WAN figure. Each daemon a packet crosses adds its userspace hop (TUN, seal/open, UDP): about
 * 0.1 ms on a quiet box, but on this shared 2-core CI box at load 8 the four crossings of an
 * RO round trip measured +2 to +4.7 ms (median), which 10% of a 20 or 40 ms RTT would not
 * always absorb; 10% of 60 ms does, so no absolute allowance is needed.
 */
const DELAY_MS = 30;
const PINGS = 30;
/** Measurement windows at most (see measure()). */
const WINDOWS = 3;
const skip: string | false =
  labUnavailableReason() ?? (existsSync('/dev/net/tun') ? false : 'needs /dev/net/tun');

/** PINGS echoes from the MN, 50 ms apart; the RTT of every reply, ms. */
async function pingRtts(lab: Lab, to: string): Promise<number[]> {
  const fam = to.includes(':') ? '-6' : '-4';
  const r = await lab.exec(
    'mn',
    'ping',
    [fam, '-n', '-c', String(PINGS), '-i', '0.05', '-W', '2', to],
    { check: false, timeoutMs: 30_000 },
  );
  return [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
}

async function haCounters(ha: Daemon): Promise<{ in: number; out: number }> {
  const c = (await ha.status<HaStatus>()).counters ?? {};
  return { in: c['tunnelPacketsIn'] ?? 0, out: c['tunnelPacketsOut'] ?? 0 };
}

interface Window {
  /** Medians of the underlay and the overlay echoes of one window, ms. */
  under: number;
  over: number;
  underlay: number[];
  overlay: number[];
}

/**
 * Pings the CN's underlay address and its home address AT THE SAME TIME, so both see the same
 * load on this shared box, up to WINDOWS times until `good` holds for the two medians. A real
 * overhead fails every window; a burst of load from other work on the box fails only one.
 */
async function measure(
  lab: Lab,
  good: (w: Window) => boolean,
  onWindow: (w: Window) => Promise<void>,
): Promise<Window> {
  let w: Window | undefined;
  for (let i = 0; i < WINDOWS; i++) {
    const [underlay, overlay] = await Promise.all([
      pingRtts(lab, LAB_ADDR.cn.v4),
      pingRtts(lab, CN_HOA),
    ]);
    w = { under: median(underlay), over: median(overlay), underlay, overlay };
    await onWindow(w);
    if (underlay.length !== PINGS || overlay.length !== PINGS || good(w)) break;
  }
  return w!;
}

void t.test(
  'RTT: route optimized vs underlay vs via the HA',
  { skip, timeout: 150_000 },
  async (t) => {
    const started = Date.now();
    const session = await LabSession.open(t, 'ro-latency');
    const { lab, prov } = session;
    const imp = await startImpairment(lab, {
      rules: [
        { name: 'v4', src: '0.0.0.0/0', delayMs: DELAY_MS },
        { name: 'v6', src: '::/0', delayMs: DELAY_MS },
      ],
    });
    t.teardown(() => imp.stop());

    const mnFiles = await prov.member('laptop', 'mn', [MN_HOA]);
    const cnFiles = await prov.member('server2', 'cn', [CN_HOA]);
    const { files: haFiles, daemon: ha } = await session.homeAgent();
    const cn = session.start('cn', 'cn', cnToml(prov, cnFiles, haFiles), join(prov.dir, 'cn.sock'));
    await cn.waitLog((l) => l.event === 'registered', 30_000);
    const base = readFileSync(mnToml(prov, 'laptop', mnFiles, haFiles), 'utf8');
    const sock = join(prov.dir, 'laptop.sock');
    const show = (label: string, w: Window): void => {
      t.comment(`${label}: underlay RTTs ${w.underlay.join(' ')}`);
      t.comment(`${label}: overlay RTTs ${w.overlay.join(' ')}`);
      t.comment(
        `${label}: median RTT underlay ${w.under.toFixed(2)} ms, MN-HoA <-> CN-HoA ` +
          `${w.over.toFixed(2)} ms (one-way delay ${DELAY_MS} ms)`,
      );
    };

    let mn = session.start(
      'mn',
      'mn',
      prov.write('ro.toml', base + correspondentSection(cnFiles.pub, true)),
      sock,
    );
    await mn.waitLog((l) => l.event === 'registered', 30_000);
    await mn.waitLog((l) => l.event === 'route-optimized', 30_000);
    // Issue 7: within 10% of the underlay. Both paths cross the element twice; RO adds only the
    // two daemons' userspace hops (TUN, seal/open, UDP) at each end.
    const roGood = (w: Window): boolean => Math.abs(w.over - w.under) <= 0.1 * w.under;
    let haDelta = { in: -1, out: -1 };
    let haBefore = await haCounters(ha);
    const ro = await measure(lab, roGood, async (w) => {
      show('route optimized', w);
      const before = await haCounters(ha);
      haDelta = { in: before.in - haBefore.in, out: before.out - haBefore.out };
      haBefore = before;
    });
    t.equal(ro.underlay.length, PINGS, 'every underlay echo answered');
    t.equal(ro.overlay.length, PINGS, 'every route-optimized echo answered');
    t.ok(ro.under >= 2 * DELAY_MS, 'the element delays both directions');
    t.equal(haDelta.in, 0, 'the HA decapsulated none of them (direct path)');
    t.equal(haDelta.out, 0, 'the HA tunneled none of them');
    const st = await mn.status<MemberStatus>();
    t.equal(
      st.bindingUpdateList.find((e) => e.kind === 'correspondent')?.routeOptimization,
      'direct',
    );
    t.ok(
      roGood(ro),
      `RO RTT ${ro.over.toFixed(2)} ms within 10% of the underlay's ${ro.under.toFixed(2)} ms ` +
        `(+${(ro.over - ro.under).toFixed(2)} ms)`,
    );

    await mn.stop();
    mn = session.start(
      'mn',
      'mn',
      prov.write('off.toml', base + correspondentSection(cnFiles.pub, false)),
      sock,
    );
    await mn.waitLog((l) => l.event === 'registered', 30_000);
    // The triangle crosses the element four times instead of twice: twice the underlay RTT,
    // plus eight daemon crossings instead of four; 20% either way.
    const viaGood = (w: Window): boolean => Math.abs(w.over - 2 * w.under) <= 0.2 * 2 * w.under;
    haBefore = await haCounters(ha);
    const via = await measure(lab, viaGood, async (w) => {
      show('via the HA', w);
      const before = await haCounters(ha);
      haDelta = { in: before.in - haBefore.in, out: before.out - haBefore.out };
      haBefore = before;
    });
    t.equal(via.overlay.length, PINGS, 'every tunneled echo answered');
    t.ok(haDelta.in >= 2 * PINGS, `the HA decapsulated ${haDelta.in} packets of one window`);
    t.ok(
      viaGood(via),
      `tunneled RTT ${via.over.toFixed(2)} ms close to the triangle 2 x ${via.under.toFixed(2)} ms`,
    );
    t.ok(via.over > ro.over * 1.5, `RO saves ${(via.over - ro.over).toFixed(2)} ms per round trip`);
    const s = await imp.stop();
    t.comment(
      `element: ${JSON.stringify(s.rules)}; test duration ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  },
);
