/**
 * What a virtualization plugin (vmx) knows of a nested-paging plugin (ept; later npt): second-stage
 * translation from tables in host memory, the violation the last failed translation caused, and
 * invalidation of cached translations. The CPU's second-stage hook (TranslateRequest) feeds it.
 */
import type { TranslateRequest } from '../../plugins/x86-64/hooks.js';

/** Details of the last failed translation (one reused object: copy what you keep). */
export interface NestedPagingViolation {
  /** The guest-physical address whose translation failed. */
  gpa: number;
  /** EPT-violation exit qualification (SDM Table 28-7), without NMI unblocking; 0 for a misconfiguration. */
  qualification: number;
  /** True for an EPT misconfiguration (SDM 28.3.3.1), false for an EPT violation. */
  misconfig: boolean;
  /** The guest-linear address when qualification bit 7 is set, else -1. */
  linear: number;
}

export interface NestedPaging {
  /**
   * Translate `r.gpa` through the tables `eptp` points to. Returns the host-physical address, or -1
   * with `lastViolation` filled in.
   */
  translate(eptp: number, r: TranslateRequest): number;
  readonly lastViolation: NestedPagingViolation;
  /** The last successful translation: its permissions (bit 0 read, 1 write, 2 execute). */
  readonly last?: { readonly perms: number };
  /** INVEPT: 1 single-context (the EP4TA of `eptp`), 2 all-context. Also drops the CPU's composed translations. */
  invept(type: 1 | 2, eptp: number): void;
}
