/**
 * Where a component keeps its state per owner: a Map by default; a home agent of 100 000
 * members gives fields of the record it already has per member instead, so each kind of state
 * costs no Map entry of its own (issue 17). A Map<Owner, State> is one.
 */
export interface OwnerStore<Owner, State> {
  get(owner: Owner): State | undefined;
  set(owner: Owner, state: State): unknown;
  delete(owner: Owner): unknown;
}

/** An OwnerStore that says how many owners it holds (about: a bound, for compaction). */
export interface SizedOwnerStore<Owner, State> extends OwnerStore<Owner, State> {
  readonly size: number;
}
