/**
 * Guest-physical memory as a loader writes it. The VMM policy owns guest RAM (a block of host RAM
 * that nested paging maps) and provides this; without a policy (a bare machine) loaders write to the
 * host bus at the same address.
 */
import type { GuestPhysAddr } from './addresses.js';

export interface GuestMemory {
  /** Guest RAM size in bytes: loads must end at or below it. */
  readonly size: number;
  /** Copy `bytes` to guest-physical `addr` (code caches over the range are invalidated). */
  write(addr: GuestPhysAddr, bytes: Uint8Array): void;
}
