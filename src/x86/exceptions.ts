/** Exception and interrupt vectors (SDM Vol. 3A 6.3.1, Table 6-1). */
export const Vector = {
  DE: 0,
  DB: 1,
  NMI: 2,
  BP: 3,
  OF: 4,
  BR: 5,
  UD: 6,
  NM: 7,
  DF: 8,
  TS: 10,
  NP: 11,
  SS: 12,
  GP: 13,
  PF: 14,
  MF: 16,
  AC: 17,
  MC: 18,
  XM: 19,
  VE: 20,
  CP: 21,
} as const;

export const VECTOR_NAMES: Record<number, string> = {
  0: '#DE',
  1: '#DB',
  2: 'NMI',
  3: '#BP',
  4: '#OF',
  5: '#BR',
  6: '#UD',
  7: '#NM',
  8: '#DF',
  10: '#TS',
  11: '#NP',
  12: '#SS',
  13: '#GP',
  14: '#PF',
  16: '#MF',
  17: '#AC',
  18: '#MC',
  19: '#XM',
  20: '#VE',
  21: '#CP',
};

/** Exceptions that push an error code (SDM Vol. 3A Table 6-1): #DF #TS #NP #SS #GP #PF #AC #CP. */
export const HAS_ERROR_CODE_MASK =
  (1 << Vector.DF) |
  (1 << Vector.TS) |
  (1 << Vector.NP) |
  (1 << Vector.SS) |
  (1 << Vector.GP) |
  (1 << Vector.PF) |
  (1 << Vector.AC) |
  (1 << Vector.CP);

/**
 * Exception classes for double-fault detection (SDM Vol. 3A 6.15, Table 6-4/6-5): benign,
 * contributory (#DE #TS #NP #SS #GP) and page fault (#PF, #VE).
 */
export const CONTRIBUTORY_MASK =
  (1 << Vector.DE) | (1 << Vector.TS) | (1 << Vector.NP) | (1 << Vector.SS) | (1 << Vector.GP);

/** Page-fault error code bits (SDM Vol. 3A 4.7, Figure 4-12). */
export const PFEC = {
  P: 1 << 0,
  W: 1 << 1,
  U: 1 << 2,
  RSVD: 1 << 3,
  I: 1 << 4,
  PK: 1 << 5,
} as const;

/** Event types, as the VMX interruption-information field encodes them (SDM Vol. 3C 24.8.3). */
export const EventType = {
  External: 0,
  Nmi: 2,
  HardwareException: 3,
  SoftwareInterrupt: 4,
  PrivilegedSoftwareException: 5,
  SoftwareException: 6,
} as const;
export type EventType = (typeof EventType)[keyof typeof EventType];
