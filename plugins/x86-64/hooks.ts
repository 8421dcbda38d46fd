/**
 * Intercept points a virtualization plugin configures on the CPU (ARCHITECTURE.md "Roles").
 *
 * Every field is null by default and the CPU tests it with one comparison, so a bare guest pays
 * nothing. A hook receives a reusable event object (never allocated per event: copy what you keep)
 * and returns true when it has taken the event over: the CPU then does nothing more for that
 * instruction or event and continues from whatever state it finds (a hook that emulates the
 * instruction advances RIP by `length` itself; a hook that performs a VM exit loads the host
 * state). Returning false lets the CPU execute the instruction as bare hardware would.
 */
import type { EventType } from '../../src/x86/exceptions.js';

/** IN/OUT/INS/OUTS (SDM Vol. 3C 27.2.1, exit qualification for I/O instructions). */
export interface IoEvent {
  port: number;
  size: 1 | 2 | 4;
  /** True for IN/INS. */
  input: boolean;
  /** INS/OUTS. */
  string: boolean;
  /** REP prefix present. */
  rep: boolean;
  /** IN/OUT with an immediate port operand. */
  immediate: boolean;
  /** Instruction length in bytes. */
  length: number;
}

export interface MsrEvent {
  msr: number;
  write: boolean;
  /** For WRMSR: EDX:EAX. */
  valueLo: number;
  valueHi: number;
  length: number;
}

export interface CpuidEvent {
  leaf: number;
  subleaf: number;
  length: number;
}

export interface CrAccessEvent {
  /** 0, 2, 3, 4, 8 for MOV CR; 0 for CLTS/LMSW/SMSW too (see `kind`). */
  cr: number;
  kind: 'mov-to' | 'mov-from' | 'clts' | 'lmsw' | 'smsw';
  /** General-purpose register number for MOV (0-15). */
  gpr: number;
  /** Value to be written (MOV to CR, LMSW), as two 32-bit halves. */
  valueLo: number;
  valueHi: number;
  length: number;
}

export interface DrAccessEvent {
  dr: number;
  write: boolean;
  gpr: number;
  length: number;
}

export interface InvlpgEvent {
  /** Linear address, as a number (canonical, 48 significant bits in long mode). */
  address: number;
  length: number;
}

/**
 * LGDT/LIDT/SGDT/SIDT and LLDT/LTR/SLDT/STR (SDM Vol. 3C 25.1.3 "descriptor-table exiting"), after
 * the #UD and privilege checks and before the memory operand is accessed. The operand as decoded,
 * which the VM-exit instruction information (27.2.5, Tables 27-10 and 27-11) describes.
 */
export interface DescriptorTableEvent {
  /** 0 SGDT/SLDT, 1 SIDT/STR, 2 LGDT/LLDT, 3 LIDT/LTR (the instruction-identity encoding). */
  identity: number;
  /** LLDT/LTR/SLDT/STR (exit reason 47) rather than the GDTR/IDTR group (46). */
  ldtrTr: boolean;
  /** A register operand (LDTR/TR group, mod = 3): its number; -1 for a memory operand. */
  reg: number;
  /** Base and index register numbers (-1: none), scale (0-3), segment register (ES=0 ... GS=5). */
  base: number;
  index: number;
  scale: number;
  segment: number;
  /** Address size and operand size in bytes (2, 4, 8). */
  addressSize: number;
  operandSize: number;
  /** The displacement, sign-extended (0 for a register operand). */
  displacement: number;
  length: number;
}

/** An exception about to be delivered (after double-fault promotion). */
export interface ExceptionEvent {
  vector: number;
  type: EventType;
  /** -1 when the exception pushes no error code. */
  errorCode: number;
  /** For #PF: the faulting linear address (CR2 is not yet written, as with a VMX exit). */
  address: number;
  /** Instruction length for software exceptions (INT3, INTO, INT1, INT n); 0 otherwise. */
  length: number;
}

/** Second-stage translation (EPT/NPT): guest-physical to host-physical. */
export interface TranslateRequest {
  /** Guest-physical address. */
  gpa: number;
  /** The linear address that caused the access, or -1 for accesses without one. */
  linear: number;
  write: boolean;
  fetch: boolean;
  /** A paging-structure access done by the CPU's own page walk. */
  walk: boolean;
  /**
   * Output: whether the second stage also allows writes to this page (a read may not cache a
   * translation that a later write would use). The CPU sets it true before calling the hook.
   */
  writable?: boolean;
}

export interface CpuHooks {
  io: ((e: IoEvent) => boolean) | null;
  msr: ((e: MsrEvent) => boolean) | null;
  cpuid: ((e: CpuidEvent) => boolean) | null;
  hlt: ((length: number) => boolean) | null;
  crAccess: ((e: CrAccessEvent) => boolean) | null;
  drAccess: ((e: DrAccessEvent) => boolean) | null;
  invlpg: ((e: InvlpgEvent) => boolean) | null;
  /** RDTSC (`aux` false) and RDTSCP (true), after the CR4.TSD check. */
  rdtsc: ((aux: boolean, length: number) => boolean) | null;
  descriptorTable: ((e: DescriptorTableEvent) => boolean) | null;
  /** Called for vectors whose bit is set in `exceptionBitmap`. */
  exception: ((e: ExceptionEvent) => boolean) | null;
  exceptionBitmap: number;
  /**
   * An external interrupt is pending and deliverable, before INTA. Return true to take it over
   * (the interrupt controller is not acknowledged).
   */
  externalInterrupt: (() => boolean) | null;
  /** Interrupt window: IF=1 and no blocking, called at a boundary while `interruptWindow` is true. */
  interruptWindow: (() => boolean) | null;
  /**
   * Guest-physical to host-physical. Return the host-physical address, or -1 after arranging a
   * violation (the hook then performs its exit and the access is abandoned). The CPU caches
   * composed translations in its TLB: call `cpu.flushTlb()` when the second-stage tables change.
   */
  translate: ((r: TranslateRequest) => number) | null;
  /**
   * VMX instructions (VMCALL, VMLAUNCH, VMRESUME, VMXON, VMXOFF, VMPTRLD, VMPTRST, VMCLEAR,
   * VMREAD, VMWRITE, INVEPT, INVVPID, VMFUNC). `opcode` names it; unclaimed ones raise #UD.
   */
  vmxInstruction: ((opcode: VmxOpcode, length: number) => boolean) | null;
  /** Triple fault: return true to take it over (a VM exit) instead of stopping the machine. */
  tripleFault: (() => boolean) | null;
  /**
   * Every instruction boundary the CPU looks at events (when `eventCheck` is set), after a pending
   * injection is delivered and before interrupt shadows, NMIs and interrupts: VMX's monitor trap
   * flag, preemption timer, NMI exiting and NMI-window exits. Return true after performing an exit.
   * Set `eventCheck` again to be called at the next boundary.
   */
  boundary: (() => boolean) | null;
}

export type VmxOpcode =
  | 'vmcall'
  | 'vmlaunch'
  | 'vmresume'
  | 'vmxoff'
  | 'vmxon'
  | 'vmptrld'
  | 'vmptrst'
  | 'vmclear'
  | 'vmread'
  | 'vmwrite'
  | 'invept'
  | 'invvpid'
  | 'vmfunc';

export function emptyHooks(): CpuHooks {
  return {
    io: null,
    msr: null,
    cpuid: null,
    hlt: null,
    crAccess: null,
    drAccess: null,
    invlpg: null,
    rdtsc: null,
    descriptorTable: null,
    exception: null,
    exceptionBitmap: 0,
    externalInterrupt: null,
    interruptWindow: null,
    translate: null,
    vmxInstruction: null,
    tripleFault: null,
    boundary: null,
  };
}
