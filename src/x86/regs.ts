/**
 * Control, flags and extended-feature register bits (Intel SDM Vol. 3A 2.5 "Control Registers",
 * Vol. 1 3.4.3 "EFLAGS Register", Vol. 3A 2.2.1 "Extended Feature Enable Register").
 * One definition of each bit, shared by the CPU, the virtualization and the policy plugins.
 */

/** RFLAGS bits (SDM Vol. 1 3.4.3). */
export const RFLAGS = {
  CF: 1 << 0,
  /** Bit 1 is reserved and always reads as 1. */
  FIXED1: 1 << 1,
  PF: 1 << 2,
  AF: 1 << 4,
  ZF: 1 << 6,
  SF: 1 << 7,
  TF: 1 << 8,
  IF: 1 << 9,
  DF: 1 << 10,
  OF: 1 << 11,
  IOPL: 3 << 12,
  NT: 1 << 14,
  RF: 1 << 16,
  VM: 1 << 17,
  AC: 1 << 18,
  VIF: 1 << 19,
  VIP: 1 << 20,
  ID: 1 << 21,
} as const;
export const RFLAGS_IOPL_SHIFT = 12;
/** The six status flags set by arithmetic instructions. */
export const RFLAGS_ARITH = RFLAGS.CF | RFLAGS.PF | RFLAGS.AF | RFLAGS.ZF | RFLAGS.SF | RFLAGS.OF;

/** RFLAGS.PF per result low byte: set when it has an even number of 1 bits (SDM Vol. 1 3.4.3.1). */
export const PARITY = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  let b = i;
  b ^= b >> 4;
  b ^= b >> 2;
  b ^= b >> 1;
  PARITY[i] = b & 1 ? 0 : RFLAGS.PF;
}

/** CR0 bits (SDM Vol. 3A 2.5). */
export const CR0 = {
  PE: 1 << 0,
  MP: 1 << 1,
  EM: 1 << 2,
  TS: 1 << 3,
  ET: 1 << 4,
  NE: 1 << 5,
  WP: 1 << 16,
  AM: 1 << 18,
  NW: 1 << 29,
  CD: 1 << 30,
  PG: 1 << 31,
} as const;
/** CR0 after RESET/INIT (SDM Vol. 3A 9.1.1, Table 9-1): CD, NW and ET set. */
export const CR0_RESET = 0x6000_0010;

/** CR4 bits (SDM Vol. 3A 2.5). */
export const CR4 = {
  VME: 1 << 0,
  PVI: 1 << 1,
  TSD: 1 << 2,
  DE: 1 << 3,
  PSE: 1 << 4,
  PAE: 1 << 5,
  MCE: 1 << 6,
  PGE: 1 << 7,
  PCE: 1 << 8,
  OSFXSR: 1 << 9,
  OSXMMEXCPT: 1 << 10,
  UMIP: 1 << 11,
  LA57: 1 << 12,
  VMXE: 1 << 13,
  SMXE: 1 << 14,
  FSGSBASE: 1 << 16,
  PCIDE: 1 << 17,
  OSXSAVE: 1 << 18,
  SMEP: 1 << 20,
  SMAP: 1 << 21,
  PKE: 1 << 22,
} as const;

/** IA32_EFER bits (SDM Vol. 3A 2.2.1, Table 2-1). */
export const EFER = {
  SCE: 1 << 0,
  LME: 1 << 8,
  LMA: 1 << 10,
  NXE: 1 << 11,
} as const;

/** Segment register numbers as encoded in instructions (ModRM.reg of MOV Sreg; SDM Vol. 2 Table 3-?). */
export const Seg = { ES: 0, CS: 1, SS: 2, DS: 3, FS: 4, GS: 5 } as const;
export const SEG_NAMES = ['es', 'cs', 'ss', 'ds', 'fs', 'gs'] as const;

/** General-purpose register numbers (ModRM/REX encoding order). */
export const Reg = {
  RAX: 0,
  RCX: 1,
  RDX: 2,
  RBX: 3,
  RSP: 4,
  RBP: 5,
  RSI: 6,
  RDI: 7,
  R8: 8,
  R9: 9,
  R10: 10,
  R11: 11,
  R12: 12,
  R13: 13,
  R14: 14,
  R15: 15,
} as const;
export const REG_NAMES = [
  'rax',
  'rcx',
  'rdx',
  'rbx',
  'rsp',
  'rbp',
  'rsi',
  'rdi',
  'r8',
  'r9',
  'r10',
  'r11',
  'r12',
  'r13',
  'r14',
  'r15',
] as const;

/** DR6/DR7 fixed bits (SDM Vol. 3B 17.2). */
export const DR6_RESET = 0xffff0ff0;
export const DR7_RESET = 0x400;
