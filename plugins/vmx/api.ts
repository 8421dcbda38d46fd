/**
 * What a VMM policy sees of the vmx plugin (Tokens.Virtualization): the VMX instructions as
 * methods. The policy is VMX-root software written in TypeScript; the CPU runs only the guest.
 *
 * - vmread/vmwrite follow the SDM's access rules and return the VM-instruction error (0 = success).
 * - launch()/resume() perform VM entry with the SDM's checks; the guest then runs when the machine
 *   runs. Every VM exit calls the exit handler synchronously (at the guest instruction that
 *   caused it); when the handler returns, the vCPU resumes (VM entry with checks) unless the
 *   handler called `stopGuest()` or the machine is stopping.
 * - Guest general-purpose registers are not VMCS fields: use getGpr/setGpr.
 */
export type { NestedPaging, NestedPagingViolation } from '../../src/core/nested-paging.js';
import type { VmxCaps } from './caps.js';

/** The outcome of VMLAUNCH/VMRESUME. */
export type EntryResult =
  | { kind: 'entered' }
  /** VMfailValid: the VM-instruction error (SDM 31.4); the guest did not run. */
  | { kind: 'vmfail'; error: number }
  /** VM-entry failure: a VM exit with bit 31 of the exit reason set (SDM 26.8), e.g. 33 invalid guest state. */
  | { kind: 'entry-failure'; exitReason: number; qualification: number };

/** Per exit reason: how many and how much host time (ms; 0 unless timing is on). */
export interface ExitStats {
  reason: number;
  name: string;
  count: number;
  hostMs: number;
}

export interface ExitTraceRecord {
  /** Full exit reason (bit 31 for entry failures). */
  reason: number;
  qualification: number;
  /** Guest RIP at the exit (of the instruction that caused it). */
  rip: number;
  /** VM-exit instruction length (SDM 27.2.5); 0 for exits that are not an instruction's. */
  instructionLength: number;
  /** VM-exit instruction information (27.2.5: INS/OUTS, descriptor-table exits); -1 when undefined. */
  instructionInfo: number;
  /** Guest-linear address (27.2.1: EPT violations with bit 7, INS/OUTS); -1 when not valid. */
  guestLinear: number;
  /** Guest-physical address (EPT violation, EPT misconfiguration); -1 when not valid. */
  guestPhysical: number;
  /** VM-exit interruption information (27.2.2; exception/NMI and external-interrupt exits), 0 when invalid. */
  interruptionInfo: number;
  /** VM-exit interruption error code; -1 when the information has no error code. */
  interruptionErrorCode: number;
  /** IDT-vectoring information (27.2.4): the event whose delivery the exit interrupted; 0 when invalid. */
  idtVectoringInfo: number;
  /** IDT-vectoring error code; -1 when the event has none. */
  idtVectoringErrorCode: number;
}

export type ExitHandler = (vmx: Vmx) => void;

export interface Vmx {
  readonly caps: VmxCaps;
  /** RDMSR of an IA32_VMX_* capability MSR (undefined for other MSRs). */
  readCapability(msr: number): bigint | undefined;

  /** VMREAD: the field's value, or undefined after VMfailValid (error 12 in VmInstructionError). */
  vmread(field: number): bigint | undefined;
  /** VMREAD, low 32 bits as an unsigned number; NaN for an unsupported field. No other check (fast). */
  vmread32(field: number): number;
  /**
   * VMWRITE: 0 on success, else the VM-instruction error (12 unsupported, 13 read-only). A number is
   * taken as a signed integer (sign-extended to 64 bits): write 32-bit masks as `x >>> 0`.
   */
  vmwrite(field: number, value: bigint | number): number;
  /** VMWRITE of a 64-bit field from two 32-bit halves. */
  vmwrite64(field: number, lo: number, hi: number): number;
  /** VMCLEAR: launch state "clear"; the guest state is copied out of the CPU. */
  vmclear(): void;
  /** VMLAUNCH (the VMCS must be clear). */
  launch(): EntryResult;
  /** VMRESUME (the VMCS must be launched). Called automatically after the exit handler returns. */
  resume(): EntryResult;
  /** Write a host-state area that passes the 26.2.2/26.2.3 checks (a flat 64-bit host). */
  setDefaultHostState(): void;

  setExitHandler(fn: ExitHandler): void;
  /** From the exit handler: do not resume; the vCPU stays out of the guest until resume()/launch(). */
  stopGuest(): void;
  /** True while the guest runs (between a successful entry and an exit the handler did not resume). */
  readonly inGuest: boolean;

  // ---- exit information of the current exit (fast fields, same values as the VMCS fields) ----
  readonly exitReason: number;
  readonly exitQualification: number;
  readonly exitInstructionLength: number;
  /**
   * Guest RIP += VM-exit instruction length (the usual end of an instruction exit). The skipped
   * instruction is done, so blocking by STI or MOV SS it was under ends too (as KVM does when it
   * skips an emulated instruction): it covered that instruction only.
   */
  advanceRip(): void;

  // ---- guest general-purpose registers (RAX=0 ... R15=15) ----
  getGpr(n: number): bigint;
  setGpr(n: number, v: bigint): void;
  /** Low 32 bits, unsigned. */
  getGpr32(n: number): number;
  /** Write the low 32 bits and clear the high 32, as a 32-bit MOV does (CPUID results, IN EAX). */
  setGpr32(n: number, v: number): void;
  /** Write the low `size` bytes (1, 2, 4: 4 zero-extends like a 32-bit MOV; 8 needs setGpr). */
  setGprPart(n: number, size: 1 | 2 | 4, v: number): void;

  /** Counters per exit reason. */
  exitStats(): ExitStats[];
  /** Measure host time per exit (costs two clock reads per exit). */
  setTiming(on: boolean): void;
  /** Record every exit (the CLI's --trace exits). */
  setTrace(fn: ((r: ExitTraceRecord) => void) | null): void;
}
