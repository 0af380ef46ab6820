/**
 * What the home agent logs and counts for one processed home-registration BU
 * (protocol/home-agent-registration.ts's result): pure, so the driver only writes it out.
 * A deregistration is logged by the binding's removal, not here.
 */
import { baStatusName } from '../../protocol/constants.js';
import type { HomeRegistrationResult } from '../../protocol/home-agent-registration.js';
import { formatLocator, type Locator } from '../../protocol/locator.js';
import { lifetimeUnitsToSeconds } from '../../protocol/sequence.js';
import type { LogFields, LogLevel } from '../../util/log.js';
import type { BindingUpdate } from '../../wire/types.js';

export interface RegistrationReport {
  level: LogLevel;
  event: string;
  fields: LogFields;
  /** Drop counter to bump (visible in `mip6 status --json`), if any. */
  drop?: string;
}

/**
 * The log line and counter of one BU, or undefined when there is nothing to say. A plain
 * refresh (nothing changed but the lifetime: result.unchanged) is a debug line: at 100 000
 * members an info line each would be hundreds a second that tell nothing new (issue 17). An
 * update that changed the care-of address, NAT, encapsulation or the HA address it reached,
 * without moving the locator, is an info `update`. With `enabled` (the logger's), a line of a
 * level not logged and without a counter is not built at all.
 */
export function registrationReport(
  result: HomeRegistrationResult,
  bu: BindingUpdate,
  member: string,
  hoa: string,
  locator: Locator,
  enabled: (level: LogLevel) => boolean = () => true,
): RegistrationReport | undefined {
  const fields = (): LogFields => ({
    member,
    hoa: result.entry?.homeAddress ?? hoa,
    locator: formatLocator(locator),
    seq: bu.sequence,
    lifetime: lifetimeUnitsToSeconds(bu.lifetimeUnits),
  });
  if (result.action === 'drop') {
    return {
      level: 'warn',
      event: 'bu-dropped',
      fields: { ...fields(), reason: result.reason },
      drop: `bu-${result.code}`,
    };
  }
  if (result.change === 'created' || result.change === 'updated') {
    const moved = result.previousLocator;
    const event =
      result.change === 'created'
        ? 'registration'
        : moved
          ? 'move'
          : result.unchanged
            ? 'refresh'
            : 'update';
    const level = event === 'refresh' ? 'debug' : 'info';
    if (!enabled(level)) return undefined;
    return {
      level,
      event,
      fields: {
        ...fields(),
        nat: result.entry?.natDetected ?? false,
        granted: result.entry?.lifetimeSeconds ?? 0,
        careOf: result.entry?.careOfAddress ?? '',
        ...(moved ? { from: formatLocator(moved) } : {}),
        ...(result.previousCareOf !== undefined ? { fromCareOf: result.previousCareOf } : {}),
      },
    };
  }
  const status = result.status ?? 0;
  if (result.change !== 'none' || status < 128) return undefined;
  return {
    level: 'warn',
    event: 'bu-rejected',
    fields: { ...fields(), status, statusName: baStatusName(status), reason: result.reason },
    // Refusals an operator should see: a BU for a binding another key owns (an old
    // certificate still in use?), and "I am home" from anywhere but the home link itself (an
    // evil twin relaying it?).
    ...(result.code === 'bindingOwnerMismatch' ? { drop: 'binding-owner-mismatch' } : {}),
    ...(result.code === 'homeNotOnLink' ? { drop: 'home-not-on-link' } : {}),
    // A cluster whose etcd is unreachable refuses moves between its home agents.
    ...(result.code === 'clusterUnreachable' ? { drop: 'cluster-move-refused' } : {}),
  };
}
