/**
 * The contract between the differential CPU tests and the emulator.
 *
 * The CPU engineer implements `Emulate` in test/cpu/diff/emulator-impl.ts. The suites run every
 * generated case on the real host CPU (test/cpu/native/runner.c) and through `emulate`, and compare.
 *
 * The machine a case runs on (what `emulate` must model):
 * - CPL 3, flat segments (base 0, limit 4 GiB; FS/GS never used). `mode: 64` is 64-bit mode (long
 *   mode, CS.L=1); `mode: 32` is 32-bit compatibility mode (long mode, CS.L=0, CS.D=1: 32-bit default
 *   operand and address size; 0x66/0x67 select 16-bit). No alignment checking (RFLAGS.AC=0).
 * - Exactly three 4 KiB windows are mapped: the code at `codeAddr` (read/write/execute), the data
 *   window at `dataAddr` and the stack window at `stackAddr` (read/write). Every other linear address
 *   is not present: an access there is a #PF (the pages next to each window are deliberately
 *   unmapped, and so is everything below 64 KiB).
 * - Execution starts at `codeAddr` with `regs` and `rflags`, and ends when RIP reaches
 *   `codeAddr + code.length` (on the real CPU a trailer sits there that saves the state; the emulator
 *   just stops) or when an exception happens (the first one ends the case; no handler runs).
 * - The code is short: straight-line, forward branches and loops of a few iterations.
 *
 * What is compared: all GPRs, the arithmetic flags CF PF AF ZF SF OF and DF (minus the flags the SDM
 * leaves undefined for the instruction, which the form table masks), both windows byte for byte and,
 * on an exception, its kind, the RIP it saved (for faults the faulting instruction, for traps such as
 * #BP the next one) and the registers at that point. `fault.addr` (CR2) is compared for #PF when the
 * emulator provides it.
 */

/** Register order is the ModRM order: RAX RCX RDX RBX RSP RBP RSI RDI R8..R15 (EAX..EDI in mode 32). */
export interface DiffCase {
  mode: 64 | 32;
  code: Uint8Array;
  codeAddr: number;
  /** 16 registers in mode 64, 8 in mode 32 (values below 2^32 there). */
  regs: bigint[];
  /** Full RFLAGS at entry: bit 1 and IF (0x202) set, plus any of CF PF AF ZF SF DF OF. */
  rflags: number;
  dataAddr: number;
  /** The whole data window (4 KiB); the emulator must not modify the case's arrays. */
  data: Uint8Array;
  stackAddr: number;
  /** The whole stack window (4 KiB); RSP initially points inside it (usually at its middle). */
  stack: Uint8Array;
}

/** Exception kinds by vector: #DE 0, #UD 6, #GP 13, #PF 14, #BP 3; anything else is 'other'. */
export type FaultKind = 'DE' | 'UD' | 'GP' | 'PF' | 'BP' | 'other';

export interface DiffFault {
  kind: FaultKind;
  /** The RIP the exception saved (the faulting instruction for faults, the next one for traps). */
  rip: bigint;
  /** The exception vector (optional for the emulator; always set by the native side). */
  vector?: number;
  /** The faulting linear address (CR2) for #PF; compared only when the emulator sets it. */
  addr?: bigint;
}

export interface DiffResult {
  /** Final registers, or the registers at the exception (same length as DiffCase.regs). */
  regs: bigint[];
  rflags: number;
  data: Uint8Array;
  stack: Uint8Array;
  fault?: DiffFault;
}

export type Emulate = (c: DiffCase) => DiffResult;

/** The message of the stub in emulator-impl.ts; the suites skip when they see it. */
export const NOT_IMPLEMENTED = 'CPU not implemented yet';
