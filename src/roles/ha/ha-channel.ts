/**
 * The home agent's state per member channel, in one record on the channel's session
 * (PeerSession.driverState) instead of five Maps keyed by session (issue 17: each Map entry
 * cost ~46 B per member at 100 000): where the channel was last heard from, the binding its path
 * MTU state is about, that state, the path validation state and the channel's binding keys.
 * The path MTU table and the path validator keep their state here through an OwnerStore.
 */
import type { PeerSession } from '../../crypto/endpoint.js';
import type { Locator } from '../../protocol/locator.js';
import type { StoredPath } from '../../protocol/path-mtu.js';
import type { PathValidationState } from '../../protocol/path-validation.js';
import type { OwnerStore } from '../../util/owner-store.js';
import type { BoundPath } from './binding-paths.js';

export class HaChannel implements PathValidationState {
  /** The last locator the channel was heard from (handshake replies, rekeys). */
  locator: Locator | undefined = undefined;
  /** The binding whose locator the channel's path MTU state is about (probes go there). */
  mtuBound: BoundPath | undefined = undefined;
  /** Path MTU towards the channel at that locator (TunnelMtu's table): the state, or only its
   *  size (a small integer) while the path is idle and its search done (parked). */
  mtu: StoredPath | undefined = undefined;
  /** Path validation of the channel's locators (BindingPaths' validator): its state is these
   *  two fields of the record itself (validationStore), not an object of its own (issue 17). */
  validated: PathValidationState['validated'] = undefined;
  pending: PathValidationState['pending'] = undefined;
  /** The channel's binding keys: one (the usual member), or a Set for several home addresses. */
  keys: string | Set<string> | undefined = undefined;
}

/** The channel's record, made on first use. */
export function haChannel(session: PeerSession): HaChannel {
  const c = session.driverState;
  if (c instanceof HaChannel) return c;
  const made = new HaChannel();
  session.driverState = made;
  return made;
}

/** The channel's record if it has one. */
export function haChannelIfAny(session: PeerSession): HaChannel | undefined {
  const c = session.driverState;
  return c instanceof HaChannel ? c : undefined;
}

/**
 * The path validator's store: a channel's state is its record (its `validated` and `pending`
 * fields; an empty state is the same as none). `set` copies a new state's fields in (the
 * validator goes on with what `get` returns).
 */
export const validationStore: OwnerStore<PeerSession, PathValidationState> = {
  get: (s) => haChannelIfAny(s),
  set: (s, v) => {
    const c = haChannel(s);
    c.validated = v.validated;
    c.pending = v.pending;
  },
  delete: (s) => {
    const c = haChannelIfAny(s);
    if (c !== undefined) {
      c.validated = undefined;
      c.pending = undefined;
    }
  },
};

/** An OwnerStore over one field of the channels' records. */
export function channelField<K extends 'mtu'>(
  field: K,
): OwnerStore<PeerSession, NonNullable<HaChannel[K]>> {
  return {
    get: (s) => haChannelIfAny(s)?.[field] ?? undefined,
    set: (s, v) => {
      haChannel(s)[field] = v;
    },
    delete: (s) => {
      const c = haChannelIfAny(s);
      if (c !== undefined) c[field] = undefined;
    },
  };
}
