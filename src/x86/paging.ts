/**
 * Guest paging-structure entry bits (Intel SDM Vol. 3A 4.3 "32-Bit Paging", 4.4 "PAE Paging", 4.5
 * "4-Level Paging", Tables 4-4 to 4-20), for software that walks a guest's tables (a VMM emulating
 * an access at a guest linear address).
 */
export const PTE = {
  /** Bit 0: present. */
  P: 1 << 0,
  /** Bit 1: read/write. */
  RW: 1 << 1,
  /** Bit 2: user/supervisor. */
  US: 1 << 2,
  /** Bit 7 of a PDE (32-bit, with CR4.PSE; PAE; 4-level) or PDPTE (4-level): maps a large page. */
  PS: 1 << 7,
} as const;

/** Bits 31:12 of an entry: the physical address of the next table or 4 KiB page. */
export const PTE_ADDR_LO = 0xffff_f000;
/** Bits 51:32 of a PAE/4-level entry (its high dword, bits 19:0). */
export const PTE_ADDR_HI = 0x000f_ffff;
/** CR3 bits 31:5 locate the PDPT under PAE paging (SDM 4.4.1). */
export const CR3_PAE_PDPT = 0xffff_ffe0;
