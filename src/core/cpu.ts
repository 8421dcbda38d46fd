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
  /**
   * Optional: the CPU hands itself over in its attach hook (`intc.connectCpu?.(cpu)`), so that the
   * controller can wake it from HLT (interruptRequested) and deliver NMIs. This way the controller
   * need not declare the CPU as a dependency (which would make a wiring cycle with the CPU's own).
   */
  connectCpu?(cpu: Pick<CpuCore, 'interruptRequested' | 'nmi'>): void;
}

/**
 * Where and how a boot loader or firmware plugin starts the CPU (after reset).
 * - real: real mode at CS:IP (CS defaults to 0), as the tutorial's vCPU starts at 0000:8000;
 * - protected: flat 32-bit protected mode, paging off, interrupts off — the state the Multiboot
 *   specification (3.2, "Machine state") promises the kernel; CS/DS/ES/FS/GS/SS are flat 4 GiB
 *   segments (selectors 0x08 code, 0x10 data);
 * - long: 64-bit mode with the given CR3 (identity-mapped tables the loader built).
 */
export interface BootEntry {
  mode: 'real' | 'protected' | 'long';
  ip: number;
  cs?: number;
  regs?: Partial<Record<'eax' | 'ebx' | 'ecx' | 'edx' | 'esi' | 'edi' | 'esp' | 'ebp', number>>;
  cr3?: number;
}

export interface CpuCore {
  /** Put the CPU in a boot state (after reset, before the run). Optional for CPUs used only by tests. */
  setEntry?(entry: BootEntry): void;
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
