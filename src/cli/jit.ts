/**
 * V8 tiering for a packet daemon (issue #16, the latency of a lone packet).
 *
 * V8 optimizes a function only after its "interrupt budget" of executed bytecode runs out and
 * at least `minimum-invocations-after-ic-update` calls have passed since its inline caches last
 * changed. A tunnel that carries an interactive session (a ping every 10 ms, keystrokes) calls
 * its per-packet functions a few hundred times a second, each time with a little bytecode, and
 * every new packet kind (a keepalive, an ICMPv6 error, a BU) changes some cache and restarts the
 * wait. In the lab (a ping every 5 ms through MN -> HA -> server, bench/lone-packet.ts) V8's
 * defaults left the packet path in the interpreter and Sparkplug for the first thousand or so
 * pings; with the budgets below it is optimized within the first 300, after which the two
 * daemons spend 130-171 us of CPU per round trip against 320-417 us
 * (bench/results/lone-packet-2026-12-05.md).
 *
 * Only the thresholds change: what gets optimized, and V8's own limits on re-optimizing after
 * a deoptimization, stay as they are. Set before the daemon builds its roles, so the packet
 * path's functions get their budgets from these values. `MIP6_V8_TIERING=default` keeps V8's
 * own values (for the side-by-side bench, bench/lone-packet.ts).
 */
import { setFlagsFromString } from 'node:v8';

/** Bytecode executed before a function is optimized (V8 11's default is 66 KiB). */
export const DAEMON_INTERRUPT_BUDGET = 8 * 1024;
/** Calls to wait after an inline cache changed before optimizing (V8's default is 500). */
export const DAEMON_CALLS_AFTER_IC_UPDATE = 20;

export function tuneJitForPackets(env: NodeJS.ProcessEnv = process.env): void {
  if (env.MIP6_V8_TIERING === 'default') return;
  setFlagsFromString(`--interrupt-budget=${DAEMON_INTERRUPT_BUDGET}`);
  setFlagsFromString(`--minimum-invocations-after-ic-update=${DAEMON_CALLS_AFTER_IC_UPDATE}`);
}
