/**
 * Status of route optimization for the control socket (`mip6 status`): the MN half's binding
 * update list entries (kind 'correspondent') and the CN half's correspondent bindings. Pure
 * rendering of the halves' state at `now`.
 */
import type { BindingStatus, BindingUpdateListStatus } from '../../io/control-protocol.js';
import { formatLocator } from '../../protocol/locator.js';
import type { Correspondent } from './correspondent-client.js';
import type { CorrespondentServer } from './correspondent-server.js';

/** Binding update list entries for the correspondents (kind 'correspondent'). */
export function correspondentStatus(
  correspondents: Iterable<Correspondent>,
  now: number,
): BindingUpdateListStatus[] {
  const out: BindingUpdateListStatus[] = [];
  for (const p of correspondents) {
    const s = p.reg.status(now);
    const rr: Record<string, string> = {};
    const stamps: [string, number][] = [
      ['homeTestInit', s.lastHomeTestInit],
      ['homeTest', s.lastHomeTest],
      ['careOfTestInit', s.lastCareOfTestInit],
      ['careOfTest', s.lastCareOfTest],
      ['bindingUpdate', s.lastBindingUpdate],
      ['bindingAck', s.lastBindingAck],
    ];
    for (const [name, ms] of stamps) if (ms !== 0) rr[name] = new Date(ms).toISOString();
    out.push({
      peer: p.config.address,
      kind: 'correspondent',
      careOfAddress: s.careOfAddress ?? '',
      ...(p.locator ? { locator: formatLocator(p.locator) } : {}),
      state: s.state,
      lifetimeRemaining: s.lifetimeRemainingSeconds,
      sequence: s.sequence,
      ...(s.lastStatus !== null ? { lastStatus: s.lastStatus } : {}),
      routeOptimization: s.routeOptimized ? 'direct' : 'tunnel',
      returnRoutability: rr,
      packets: { ...p.packets },
    });
  }
  return out;
}

/** Correspondent bindings held by the CN half (none without it). */
export function correspondentBindingStatus(
  server: CorrespondentServer | undefined,
  now: number,
): BindingStatus[] {
  const out: BindingStatus[] = [];
  if (!server) return out;
  for (const b of server.bindings.bindings()) {
    const ch = server.boundTo(b.homeAddress);
    out.push({
      homeAddress: b.homeAddress,
      ...(ch?.session.peerName ? { member: ch.session.peerName } : {}),
      locator: ch ? formatLocator(ch.locator) : '',
      careOfAddress: b.careOfAddress,
      lifetimeRemaining: Math.max(0, Math.round((b.expiresAt - now) / 1000)),
      sequence: b.sequence,
      packetsIn: b.packetsIn,
      packetsOut: b.packetsOut,
    });
  }
  return out;
}
