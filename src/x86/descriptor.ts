/**
 * Segment descriptor layout (SDM Vol. 3A 3.4.5, Figure 3-8) and the access-rights encoding the
 * CPU keeps in its hidden segment state. The hidden form is the VMX guest-state "access rights"
 * format (SDM Vol. 3C 24.4.1, Table 24-2), so the virtualization plugin can copy it unchanged:
 * bits 3:0 type, 4 S, 6:5 DPL, 7 P, 12 AVL, 13 L, 14 D/B, 15 G, 16 unusable.
 */
export const SegAttr = {
  TYPE_MASK: 0xf,
  /** Type bit 0 for data/code: accessed. */
  ACCESSED: 1 << 0,
  /** Data: writable; code: readable. */
  RW: 1 << 1,
  /** Data: expand-down; code: conforming. */
  DC: 1 << 2,
  /** Code (1) or data (0), when S=1. */
  CODE: 1 << 3,
  S: 1 << 4,
  DPL_SHIFT: 5,
  DPL_MASK: 3 << 5,
  P: 1 << 7,
  AVL: 1 << 12,
  L: 1 << 13,
  DB: 1 << 14,
  G: 1 << 15,
  UNUSABLE: 1 << 16,
} as const;

/** System-segment and gate types (S=0) (SDM Vol. 3A 3.5, Table 3-2). */
export const SysType = {
  TSS16_AVAIL: 1,
  LDT: 2,
  TSS16_BUSY: 3,
  CALL_GATE16: 4,
  TASK_GATE: 5,
  INT_GATE16: 6,
  TRAP_GATE16: 7,
  TSS_AVAIL: 9,
  TSS_BUSY: 11,
  CALL_GATE: 12,
  INT_GATE: 14,
  TRAP_GATE: 15,
} as const;

/** Access rights from a descriptor's high dword (bits 8..23 hold type..G). */
export function attrFromDescriptorHigh(hi: number): number {
  return (hi >>> 8) & 0xf0ff;
}

/** Base address from the two dwords of a segment descriptor. */
export function descriptorBase(lo: number, hi: number): number {
  return ((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff00_0000)) >>> 0;
}

/** Limit in bytes from the two dwords of a segment descriptor, scaled by G. */
export function descriptorLimit(lo: number, hi: number): number {
  const raw = (lo & 0xffff) | (hi & 0xf_0000);
  return hi & (1 << 23) ? ((raw << 12) | 0xfff) >>> 0 : raw;
}

/** Selector fields (SDM Vol. 3A 3.4.2). */
export const Selector = {
  RPL_MASK: 3,
  TI: 1 << 2,
  INDEX_MASK: 0xfff8,
} as const;
