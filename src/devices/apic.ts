/**
 * What interrupt sources see of a local APIC (the APIC bus messages of SDM Vol. 3A §11.6 and the
 * I/O APIC's delivery of §3.2.4 of the 82093AA datasheet), and the local APIC's MSR interface as
 * the CPU or a VMM policy calls it. The lapic-timer plugin implements it; the ioapic, hpet (through
 * the ioapic) and pic8259 plugins use it.
 */
import type { InterruptController } from '../core/cpu.js';

/** Delivery modes of an interrupt message (82093AA redirection entry bits 10:8; SDM ICR bits 10:8). */
export const DeliveryMode = {
  Fixed: 0b000,
  LowestPriority: 0b001,
  SMI: 0b010,
  NMI: 0b100,
  INIT: 0b101,
  StartUp: 0b110,
  ExtINT: 0b111,
} as const;
export type DeliveryMode = (typeof DeliveryMode)[keyof typeof DeliveryMode];

/** The result of an MSR read. One object is reused per APIC: copy the fields, do not keep it. */
export interface MsrRead {
  /** False when the access must raise #GP(0) (the caller's business: the CPU or the VMM policy). */
  ok: boolean;
  lo: number;
  hi: number;
}

/** The source of ExtINT vectors: an 8259A pair behind LINT0 in virtual-wire mode (SDM §11.5.1). */
export interface ExtIntSource {
  /** The INTA cycle of the 8259A: the vector now in service. */
  acknowledgeInterrupt(): number;
}

export interface LocalApic extends InterruptController {
  /** The APIC ID (x2APIC: 32 bits). */
  readonly apicId: number;
  /** Whether a message addressed to `destination` in physical (false) or logical (true) mode is for this APIC. */
  matchesDestination(destination: number, logical: boolean): boolean;
  /**
   * An interrupt message (I/O APIC, MSI, IPI). `levelTriggered` sets TMR so that the EOI for the
   * vector is broadcast to the I/O APICs (SDM §11.8.5).
   */
  acceptInterrupt(vector: number, levelTriggered: boolean, mode?: DeliveryMode): void;
  /** Called with the vector of every EOI of a level-triggered interrupt (the EOI message to the I/O APICs). */
  onEoi(listener: (vector: number) => void): void;
  /** The LINT0/LINT1 input pins (SDM §11.5.1); LINT0 is the 8259A's INTR in virtual-wire mode. */
  setLint(pin: 0 | 1, level: boolean): void;
  /** Where ExtINT vectors come from (the 8259A). */
  setExtIntSource(source: ExtIntSource | undefined): void;
  /** RDMSR of IA32_APIC_BASE, IA32_TSC_DEADLINE or an x2APIC register (0x800-0x8FF). */
  readMsr(msr: number): MsrRead;
  /** WRMSR; false means #GP(0). */
  writeMsr(msr: number, lo: number, hi: number): boolean;
  /** Whether this APIC handles `msr` at all (the CPU routes these MSRs here). */
  handlesMsr(msr: number): boolean;
}
