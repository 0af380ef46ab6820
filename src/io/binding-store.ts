/**
 * Where a home agent keeps its bindings across restarts (issue 20): one small interface, so the
 * embedded SQLite file (sqlite-binding-store.ts) and a shared cluster store (an etcd one, issue
 * 18) are interchangeable. The home agent never waits on it per packet: it collects the changes
 * of one burst (a receive batch, a timer run) and hands them over in one `write`.
 *
 * A stored binding is what a restarted home agent needs to serve the member again without its
 * help: the home address, the owner (its static key and certificate), where it was last seen,
 * the sequence number, NAT state and expiry. Never channel keys: a restart makes new ones with a
 * fresh handshake, so forward secrecy holds across it.
 */
import type { BindingUpdateFlags } from '../wire/types.js';

/** One binding as stored (one per home address). */
export interface StoredBinding {
  /** The home address (RFC 5952 text): the key. */
  homeAddress: string;
  /** The owner's static public key (X25519, 32 bytes): the channel whose BU created it. */
  ownerKey: Uint8Array;
  /** The owner's member certificate as it came in the handshake (its `raw` bytes). */
  certificate: Uint8Array;
  /** The member's name from that certificate (for logs and status). */
  peerName: string;
  /** Registered care-of address: IPv6, or IPv4-mapped for an IPv4 CoA. */
  careOfAddress: string;
  /** The outer address and port the last BU came from. */
  locator: { address: string; port: number };
  /** Last accepted Sequence # (RFC 6275 §9.5.1). */
  sequence: number;
  /** Granted lifetime (s). */
  lifetimeSeconds: number;
  /** Absolute expiry, Unix milliseconds. */
  expiresAt: number;
  flags: Readonly<BindingUpdateFlags>;
  natDetected: boolean;
  udpEncapsulationRequired: boolean;
  refreshTime: number;
  refreshAdviceSeconds: number;
}

/** One burst of changes: bindings created or updated (by home address), bindings removed. */
export interface BindingStoreChanges {
  put: StoredBinding[];
  delete: string[];
}

export interface BindingStore {
  /** Where the bindings live (a file name, a cluster address), for log lines. */
  readonly location: string;
  /** Every stored binding, expired ones included (the home agent drops those). */
  load(): Promise<StoredBinding[]>;
  /**
   * Applies one burst atomically: every `put` replaces the binding of its home address, every
   * `delete` removes one. Resolves once it is stored (a local file: at once, synchronously).
   */
  write(changes: BindingStoreChanges): Promise<void>;
  /** Releases the store; writes nothing more. */
  close(): Promise<void>;
}
