/**
 * What the machine core knows of a CPU, and what a CPU knows of an interrupt controller. The
 * x86-64 plugin implements CpuCore; the local APIC (or, bare, the PIC) implements
 * InterruptController. Intercept points for virtualization are the CPU plugin's own API.
 */
export interface InterruptController {
  /** True when an interrupt is pending for the CPU's INTR input (cheap: called at instruction boundaries). */
  hasPendingInterrupt(): boolean;
  /** The INTA cycle: the vector of the highest-priority pending interrupt, which is now in service. */
  acknowledgeInterrupt(): number;
}

export interface CpuCore {
  /** Architectural reset (power-on state). */
  reset(): void;
  /**
   * Execute until the virtual clock reaches `deadlineNs`, `requestExit()` is called, or the CPU
   * halts (HLT with no interrupt deliverable). The CPU advances `clock.now` as it executes and
   * brings it up to date before every device access. On return because of a halt, `halted` is
   * true and the run loop moves time forward.
   */
  run(deadlineNs: number): void;
  /** Make `run` return at the next instruction boundary. */
  requestExit(): void;
  /** An interrupt controller's INTR output may have changed: check at the next boundary. */
  interruptRequested(): void;
  /** Non-maskable interrupt (edge). */
  nmi(): void;
  /** In HLT, waiting for an interrupt. */
  readonly halted: boolean;
  /** Instructions retired since reset. */
  readonly instructionsRetired: number;
  /** Registers and key state, formatted for a stop report. */
  dumpState(): string;
}
