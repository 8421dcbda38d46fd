/**
 * Extended page tables: entry bits, memory types, EPTP fields, EPT-violation exit qualification
 * and the IA32_VMX_EPT_VPID_CAP bits (Intel SDM Vol. 3C 28.3 "The Extended Page Table Mechanism",
 * 28.3.3 "EPT-induced VM exits", 28.4 "Caching translation information", 24.6.11 "Extended-Page-
 * Table Pointer (EPTP)", 27.2.1 Table 28-7 "Exit Qualification for EPT Violations", appendix A.10).
 * One definition of each bit, shared by the ept, vmx and policy plugins.
 */

/**
 * Bits of an EPT paging-structure entry, low dword (SDM 28.3.2, Tables 28-1 to 28-6). Bits 51:12
 * hold the physical address of the next table or of the page; 63:52 are ignored except bit 63.
 */
export const EPTE = {
  /** Bit 0: reads allowed from the region this entry controls. */
  READ: 1 << 0,
  /** Bit 1: writes allowed. */
  WRITE: 1 << 1,
  /** Bit 2: instruction fetches allowed (supervisor-mode fetches with mode-based execute control). */
  EXECUTE: 1 << 2,
  /** Bits 5:3 of a leaf entry: the EPT memory type (EptMemType). Reserved in non-leaf entries. */
  MEMTYPE: 7 << 3,
  /** Bit 6 of a leaf entry: ignore the guest PAT memory type (28.3.7). */
  IGNORE_PAT: 1 << 6,
  /** Bit 7 of a PDPTE/PDE: the entry maps a 1 GiB / 2 MiB page. Reserved in a PML4E/PML5E, ignored in a PTE. */
  PAGE_SIZE: 1 << 7,
  /** Bit 8: accessed (28.3.5), set by the processor when EPTP bit 6 is 1. */
  ACCESSED: 1 << 8,
  /** Bit 9 of a leaf entry: dirty (28.3.5). */
  DIRTY: 1 << 9,
  /** Bit 10: execute access for user-mode linear addresses (mode-based execute control only). */
  USER_EXECUTE: 1 << 10,
} as const;

export const EPTE_MEMTYPE_SHIFT = 3;
/** The read/write/execute bits 2:0; an entry is present when any is set (28.3.2). */
export const EPTE_RWX = EPTE.READ | EPTE.WRITE | EPTE.EXECUTE;
/** Bit 63 (bit 31 of the high dword): suppress #VE in a leaf entry (ignored without EPT-violation #VE). */
export const EPTE_HI_SUPPRESS_VE = 1 << 31;
/** Bits 51:32 of an entry (the high dword's address part). Bits above MAXPHYADDR among them are reserved. */
export const EPTE_HI_ADDRESS = 0x000f_ffff;
/**
 * Reserved bits of the low dword by kind of entry (28.3.2; a set bit is an EPT misconfiguration,
 * 28.3.3.1). Physical-address bits at or above MAXPHYADDR are reserved in every entry, too.
 */
export const EPTE_RESERVED = {
  /** PML5E/PML4E: bits 7:3. */
  PML4E: 0x0000_00f8,
  /** A PDPTE or PDE that references a table: bits 6:3 (bit 7 is 0). */
  TABLE: 0x0000_0078,
  /** A PDPTE mapping a 1 GiB page: bits 29:12. */
  PAGE_1G: 0x3fff_f000,
  /** A PDE mapping a 2 MiB page: bits 20:12. */
  PAGE_2M: 0x001f_f000,
  /** A PTE: none below bit 12. */
  PAGE_4K: 0,
} as const;

/** EPT memory types (SDM 28.3.7, Vol. 3A 12.3 Table 12-2); 2, 3 and 7 are reserved. */
export const EptMemType = {
  UC: 0,
  WC: 1,
  WT: 4,
  WP: 5,
  WB: 6,
} as const;
export type EptMemType = (typeof EptMemType)[keyof typeof EptMemType];

/** True for the memory types a leaf entry may hold (28.3.3.1: 2, 3 and 7 are misconfigurations). */
export const isEptMemType = (t: number): t is EptMemType =>
  t === 0 || t === 1 || t === 4 || t === 5 || t === 6;

/** EPTP fields (SDM 24.6.11, Table 25-9 in recent editions). */
export const EPTP = {
  /** Bits 2:0: memory type for accesses to the EPT paging structures (UC or WB, per the capability MSR). */
  MEMTYPE: 7,
  /** Bits 5:3: page-walk length minus 1. */
  WALK_LENGTH: 7 << 3,
  /** Bit 6: enable accessed and dirty flags for EPT (28.3.5). */
  ACCESS_DIRTY: 1 << 6,
  /** Bit 7: enable enforcement of access rights for supervisor shadow-stack pages. */
  SUPERVISOR_SHADOW_STACK: 1 << 7,
  /** Bits 11:8: reserved (must be 0). */
  RESERVED: 0xf << 8,
} as const;
export const EPTP_WALK_LENGTH_SHIFT = 3;

/**
 * Exit qualification for EPT violations (SDM 27.2.1, Table 28-7). Bits 3-5 are the AND of the
 * entries' bits 0-2 over the entries used by the translation (0 when one of them is not present).
 */
export const EptViolation = {
  /** Bit 0: the access was a data read (also set for guest paging-structure accesses, see below). */
  DATA_READ: 1 << 0,
  /**
   * Bit 1: the access was a data write. With EPT A/D enabled, guest paging-structure accesses are
   * treated as writes and set both bit 0 and bit 1 (28.3.3.2).
   */
  DATA_WRITE: 1 << 1,
  /** Bit 2: the access was an instruction fetch. */
  INSTRUCTION_FETCH: 1 << 2,
  /** Bit 3: the guest-physical address was readable. */
  READABLE: 1 << 3,
  /** Bit 4: the guest-physical address was writable. */
  WRITABLE: 1 << 4,
  /** Bit 5: the guest-physical address was executable (supervisor-mode with mode-based execute control). */
  EXECUTABLE: 1 << 5,
  /** Bit 6: user-mode executable (only with mode-based execute control). */
  USER_EXECUTABLE: 1 << 6,
  /** Bit 7: the guest linear-address field is valid. */
  LINEAR_VALID: 1 << 7,
  /** Bit 8 (when bit 7 is set): the access was to the translation of a linear address, not a paging-structure entry. */
  LINEAR_TRANSLATION: 1 << 8,
  /** Bit 9: advanced VM-exit information only: the linear address was user-mode. */
  USER_LINEAR: 1 << 9,
  /** Bit 10: advanced information only: the linear address was read/write in the guest's paging. */
  RW_LINEAR: 1 << 10,
  /** Bit 11: advanced information only: the linear address was execute-disabled. */
  XD_LINEAR: 1 << 11,
  /** Bit 12: NMI unblocking due to IRET (set by the VMX model, not by the walk). */
  NMI_UNBLOCKING: 1 << 12,
} as const;
/** Shift from an entry's R/W/X bits 2:0 to the qualification's permission bits 5:3. */
export const EPT_VIOLATION_PERM_SHIFT = 3;

/** INVEPT types (SDM Vol. 3C 30.3 "INVEPT", 28.4.3.1). */
export const InveptType = {
  /** Invalidate the mappings associated with the EP4TA of the descriptor's EPTP. */
  SingleContext: 1,
  /** Invalidate the mappings associated with all EP4TAs. */
  AllContext: 2,
} as const;
export type InveptType = (typeof InveptType)[keyof typeof InveptType];

/**
 * IA32_VMX_EPT_VPID_CAP (MSR 0x48C, SDM appendix A.10). The EPT bits are in the low dword, the
 * VPID bits in the high dword (given here as bits of that dword).
 */
export const IA32_VMX_EPT_VPID_CAP = 0x48c;
export const EPT_VPID_CAP = {
  /** Bit 0: execute-only translations (bits 2:0 = 100b) are supported. */
  EXECUTE_ONLY: 1 << 0,
  /** Bit 6: a page-walk length of 4 is supported. */
  WALK_LENGTH_4: 1 << 6,
  /** Bit 7: a page-walk length of 5 is supported. */
  WALK_LENGTH_5: 1 << 7,
  /** Bit 8: the EPTP may select UC for the paging structures. */
  MEMTYPE_UC: 1 << 8,
  /** Bit 14: the EPTP may select WB for the paging structures. */
  MEMTYPE_WB: 1 << 14,
  /** Bit 16: 2 MiB pages (PDE bit 7) are supported. */
  PAGE_2M: 1 << 16,
  /** Bit 17: 1 GiB pages (PDPTE bit 7) are supported. */
  PAGE_1G: 1 << 17,
  /** Bit 20: INVEPT is supported. */
  INVEPT: 1 << 20,
  /** Bit 21: accessed and dirty flags for EPT are supported. */
  ACCESS_DIRTY: 1 << 21,
  /** Bit 22: advanced VM-exit information for EPT violations (qualification bits 9-11). */
  ADVANCED_EXIT_INFO: 1 << 22,
  /** Bit 23: supervisor shadow-stack control. */
  SUPERVISOR_SHADOW_STACK: 1 << 23,
  /** Bit 25: single-context INVEPT. */
  INVEPT_SINGLE_CONTEXT: 1 << 25,
  /** Bit 26: all-context INVEPT. */
  INVEPT_ALL_CONTEXT: 1 << 26,
} as const;
export const EPT_VPID_CAP_HI = {
  /** Bit 32: INVVPID is supported. */
  INVVPID: 1 << 0,
  /** Bit 40: individual-address INVVPID. */
  INVVPID_INDIVIDUAL_ADDRESS: 1 << 8,
  /** Bit 41: single-context INVVPID. */
  INVVPID_SINGLE_CONTEXT: 1 << 9,
  /** Bit 42: all-context INVVPID. */
  INVVPID_ALL_CONTEXT: 1 << 10,
  /** Bit 43: single-context-retaining-globals INVVPID. */
  INVVPID_SINGLE_CONTEXT_RETAINING_GLOBALS: 1 << 11,
} as const;

/** Page sizes an EPT leaf can map. */
export type EptPageSize = '4K' | '2M' | '1G';
export const EPT_PAGE_BYTES: Readonly<Record<EptPageSize, number>> = {
  '4K': 0x1000,
  '2M': 0x20_0000,
  '1G': 0x4000_0000,
};
/** The level (0 = PT, 1 = PD, 2 = PDPT, 3 = PML4, 4 = PML5) whose entry maps a page of this size. */
export const EPT_PAGE_LEVEL: Readonly<Record<EptPageSize, number>> = { '4K': 0, '2M': 1, '1G': 2 };
/** Entries per EPT paging structure (a 4 KiB page of 8-byte entries). */
export const EPT_ENTRIES = 512;
