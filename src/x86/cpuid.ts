/** CPUID leaves and feature bits (SDM Vol. 2A, CPUID instruction, Tables 3-8 .. 3-20). */
export const CpuidLeaf = {
  VendorMax: 0x0,
  Features: 0x1,
  ExtendedFeatures: 0x7,
  ExtMax: 0x8000_0000,
  ExtFeatures: 0x8000_0001,
  Brand0: 0x8000_0002,
  Brand1: 0x8000_0003,
  Brand2: 0x8000_0004,
  AddressSizes: 0x8000_0008,
} as const;

/** CPUID.01H:ECX (SDM Vol. 2A Table 3-10). */
export const CPUID1_ECX = {
  SSE3: 1 << 0,
  PCLMULQDQ: 1 << 1,
  MONITOR: 1 << 3,
  VMX: 1 << 5,
  SSSE3: 1 << 9,
  CX16: 1 << 13,
  PCID: 1 << 17,
  SSE41: 1 << 19,
  SSE42: 1 << 20,
  X2APIC: 1 << 21,
  MOVBE: 1 << 22,
  POPCNT: 1 << 23,
  TSC_DEADLINE: 1 << 24,
  XSAVE: 1 << 26,
  OSXSAVE: 1 << 27,
  AVX: 1 << 28,
  RDRAND: 1 << 30,
  HYPERVISOR: 1 << 31,
} as const;

/** CPUID.01H:EDX (SDM Vol. 2A Table 3-11). */
export const CPUID1_EDX = {
  FPU: 1 << 0,
  VME: 1 << 1,
  DE: 1 << 2,
  PSE: 1 << 3,
  TSC: 1 << 4,
  MSR: 1 << 5,
  PAE: 1 << 6,
  MCE: 1 << 7,
  CX8: 1 << 8,
  APIC: 1 << 9,
  SEP: 1 << 11,
  MTRR: 1 << 12,
  PGE: 1 << 13,
  MCA: 1 << 14,
  CMOV: 1 << 15,
  PAT: 1 << 16,
  PSE36: 1 << 17,
  CLFSH: 1 << 19,
  MMX: 1 << 23,
  FXSR: 1 << 24,
  SSE: 1 << 25,
  SSE2: 1 << 26,
  HTT: 1 << 28,
} as const;

/** CPUID.(EAX=07H,ECX=0):EBX (SDM Vol. 2A Table 3-8). */
export const CPUID7_EBX = {
  FSGSBASE: 1 << 0,
  TSC_ADJUST: 1 << 1,
  BMI1: 1 << 3,
  SMEP: 1 << 7,
  BMI2: 1 << 8,
  ERMS: 1 << 9,
  INVPCID: 1 << 10,
  SMAP: 1 << 20,
} as const;

/** CPUID.80000001H:ECX / EDX (SDM Vol. 2A Table 3-8). */
export const CPUID81_ECX = {
  LAHF_LM: 1 << 0,
  ABM: 1 << 5,
} as const;
export const CPUID81_EDX = {
  SYSCALL: 1 << 11,
  NX: 1 << 20,
  PAGE1GB: 1 << 26,
  RDTSCP: 1 << 27,
  LM: 1 << 29,
} as const;
