/**
 * Local APIC register offsets and fields (Intel SDM Vol. 3A, Table 11-1 "Local APIC Register
 * Address Map" and Table 11-6 "Local APIC Register Address Map Supported by x2APIC"). An x2APIC
 * register's MSR is 0x800 + (xAPIC offset >> 4) (§11.12.1.2).
 */

export const APIC_ID = 0x020;
export const APIC_VERSION = 0x030;
export const APIC_TPR = 0x080;
export const APIC_APR = 0x090;
export const APIC_PPR = 0x0a0;
export const APIC_EOI = 0x0b0;
export const APIC_RRD = 0x0c0;
export const APIC_LDR = 0x0d0;
export const APIC_DFR = 0x0e0;
export const APIC_SVR = 0x0f0;
/** ISR, TMR, IRR: 8 registers each, 16 bytes apart (vectors 32*i .. 32*i+31). */
export const APIC_ISR = 0x100;
export const APIC_TMR = 0x180;
export const APIC_IRR = 0x200;
export const APIC_ESR = 0x280;
export const APIC_LVT_CMCI = 0x2f0;
export const APIC_ICR_LOW = 0x300;
export const APIC_ICR_HIGH = 0x310;
export const APIC_LVT_TIMER = 0x320;
export const APIC_LVT_THERMAL = 0x330;
export const APIC_LVT_PERF = 0x340;
export const APIC_LVT_LINT0 = 0x350;
export const APIC_LVT_LINT1 = 0x360;
export const APIC_LVT_ERROR = 0x370;
export const APIC_TIMER_INITIAL_COUNT = 0x380;
export const APIC_TIMER_CURRENT_COUNT = 0x390;
export const APIC_TIMER_DIVIDE_CONFIG = 0x3e0;
/** x2APIC only (MSR 0x83F). */
export const APIC_SELF_IPI = 0x3f0;
export const APIC_PAGE_SIZE = 0x1000;

/** The x2APIC MSR of an xAPIC register offset, and back. */
export const x2apicMsr = (offset: number): number => 0x800 + (offset >>> 4);
export const x2apicOffset = (msr: number): number => (msr - 0x800) << 4;

/**
 * Version register: version 0x14 (an integrated APIC, SDM §11.4.8), Max LVT Entry = number of LVT
 * entries - 1 (timer, thermal, performance, LINT0, LINT1, error = 6; no CMCI), no EOI-broadcast
 * suppression (bit 24 clear).
 */
export const APIC_VERSION_VALUE = 0x14;
export const APIC_MAX_LVT = 5;
export const DEFAULT_APIC_VERSION = (APIC_MAX_LVT << 16) | APIC_VERSION_VALUE;

/** SVR fields (§11.9). */
export const SVR_VECTOR = 0xff;
export const SVR_APIC_ENABLE = 1 << 8;
export const SVR_FOCUS_DISABLE = 1 << 9;
export const DEFAULT_SVR = 0xff;

/** LVT fields (§11.5.1, Figure 11-8). */
export const LVT_VECTOR = 0xff;
export const LVT_DELIVERY_MODE_SHIFT = 8;
export const LVT_DELIVERY_MODE = 0b111 << LVT_DELIVERY_MODE_SHIFT;
export const LVT_DELIVERY_STATUS = 1 << 12;
export const LVT_PIN_POLARITY = 1 << 13;
export const LVT_REMOTE_IRR = 1 << 14;
export const LVT_TRIGGER_MODE = 1 << 15;
export const LVT_MASK = 1 << 16;
export const LVT_TIMER_MODE_SHIFT = 17;
export const LVT_TIMER_MODE = 0b11 << LVT_TIMER_MODE_SHIFT;
/** Every LVT entry is masked at reset (§11.5.1: 0x00010000). */
export const DEFAULT_LVT = LVT_MASK;

/** LVT timer modes (bits 18:17). */
export const TimerMode = { OneShot: 0b00, Periodic: 0b01, TscDeadline: 0b10 } as const;

/** Writable bits per LVT entry. */
export const LVT_TIMER_WRITABLE = LVT_VECTOR | LVT_MASK | LVT_TIMER_MODE;
export const LVT_LINT_WRITABLE =
  LVT_VECTOR | LVT_DELIVERY_MODE | LVT_PIN_POLARITY | LVT_TRIGGER_MODE | LVT_MASK;
export const LVT_ERROR_WRITABLE = LVT_VECTOR | LVT_MASK;
export const LVT_OTHER_WRITABLE = LVT_VECTOR | LVT_DELIVERY_MODE | LVT_MASK;

/** ESR bits (§11.5.3). */
export const ESR_SEND_CHECKSUM = 1 << 0;
export const ESR_RECEIVE_CHECKSUM = 1 << 1;
export const ESR_SEND_ACCEPT = 1 << 2;
export const ESR_RECEIVE_ACCEPT = 1 << 3;
export const ESR_REDIRECTABLE_IPI = 1 << 4;
export const ESR_SEND_ILLEGAL_VECTOR = 1 << 5;
export const ESR_RECEIVE_ILLEGAL_VECTOR = 1 << 6;
export const ESR_ILLEGAL_REGISTER_ADDRESS = 1 << 7;

/** ICR fields (§11.6.1, Figure 11-12). */
export const ICR_VECTOR = 0xff;
export const ICR_DELIVERY_MODE_SHIFT = 8;
export const ICR_DEST_MODE_LOGICAL = 1 << 11;
export const ICR_DELIVERY_STATUS = 1 << 12;
export const ICR_LEVEL_ASSERT = 1 << 14;
export const ICR_TRIGGER_LEVEL = 1 << 15;
export const ICR_SHORTHAND_SHIFT = 18;
export const Shorthand = { None: 0, Self: 1, AllIncludingSelf: 2, AllExcludingSelf: 3 } as const;
export const ICR_LOW_WRITABLE = 0x000c_cfff;

/** Divide configuration register: bits 0, 1 and 3 (§11.5.4, Figure 11-10). */
export const DCR_WRITABLE = 0b1011;
/** The divisor for a DCR value: 0b0000 -> 2, ... 0b1010 -> 128, 0b1011 -> 1. */
export const dcrDivisor = (dcr: number): number => {
  const v = ((dcr & 0b1000) >>> 1) | (dcr & 0b11);
  return v === 0b111 ? 1 : 2 << v;
};

/** IA32_APIC_BASE fields (§11.4.4, Figure 11-5). */
export const APIC_BASE_BSP = 1 << 8;
export const APIC_BASE_EXTD = 1 << 10;
export const APIC_BASE_EN = 1 << 11;
export const DEFAULT_APIC_BASE_ADDRESS = 0xfee0_0000;
