/**
 * `vmm up --trace exits[+insn][=FILE]`: one line per VM exit (virtual time, reason, qualification,
 * guest RIP, then the exit-information fields valid for that exit, SDM Vol. 3C 27.2: len=
 * instruction length, info= instruction information, gla= guest-linear and gpa= guest-physical
 * address, intr= and err= interruption information and error code, idt= and idterr= IDT-vectoring
 * information and error code), buffered and written to FILE or stderr. With +insn, the instruction
 * at the guest RIP too, read through the guest's paging and EPT and disassembled (iced-x86, loaded
 * only then). Costs nothing when not asked for: the vmx plugin calls a trace function only when one
 * is set.
 */
import * as fs from 'node:fs';
import type { LoadedMachine } from '../api-types.js';
import type { ExitTraceRecord, Vmx } from '../../plugins/vmx/api.js';
import type { Bus } from '../core/bus.js';
import { Tokens } from '../core/tokens.js';
import { GuestView } from '../x86/guest-view.js';
import { EXIT_REASON_ENTRY_FAILURE, EXIT_REASON_NAMES, VmcsField as F } from '../x86/vmx.js';

export type TraceOutput = { kind: 'exits'; file?: string; insn?: boolean };

/** Parse `--trace exits`, `--trace exits+insn`, either with `=FILE`. */
export function parseTraceFlag(v: string | undefined): TraceOutput | undefined {
  if (v === undefined) return undefined;
  const m = /^exits(\+insn)?(?:=(.+))?$/.exec(v);
  if (m === null) throw new Error(`--trace takes 'exits', 'exits+insn', either with '=FILE' (got '${v}')`);
  const t: TraceOutput = { kind: 'exits' };
  if (m[1] !== undefined) t.insn = true;
  if (m[2] !== undefined) t.file = m[2];
  return t;
}

/** The longest x86 instruction (SDM Vol. 2A 2.3.11). */
const MAX_INSN = 15;

/**
 * The instruction at the guest's CS:RIP, disassembled (Intel syntax), for the exit being traced:
 * ` insn="out 80h,al"`, or ` insn=? (why)` when its bytes cannot be read or decoded.
 */
async function instructionReader(vmx: Vmx, hostBus: Bus): Promise<(rip: number) => string> {
  const iced = await import('iced-x86');
  const view = new GuestView(vmx, hostBus);
  const formatter = new iced.Formatter(iced.FormatterSyntax.Intel);
  const bytes = new Uint8Array(MAX_INSN);
  return (rip) => {
    view.refresh();
    const bits = view.codeSize();
    // CS:RIP as two dwords (the CS base is 0 in 64-bit mode, SDM Vol. 3A 3.4.4).
    const r = BigInt.asUintN(64, BigInt(rip));
    let lo = Number(r & 0xffff_ffffn);
    let hi = Number(r >> 32n);
    if (bits !== 64) {
      lo = (vmx.vmread32(F.GuestCsBase) + lo) % 2 ** 32;
      hi = 0;
    }
    const n = view.readLinear(lo, hi, bytes, MAX_INSN);
    if (n === 0) return ` insn=? (${view.describeFailure()})`;
    const decoder = new iced.Decoder(bits, bytes.subarray(0, n), iced.DecoderOptions.None);
    try {
      decoder.ip = r;
      const insn = decoder.decode();
      try {
        if (insn.isInvalid) return ` insn=? (no valid instruction in ${n} bytes)`;
        return ` insn="${formatter.format(insn)}"`;
      } finally {
        insn.free();
      }
    } finally {
      decoder.free();
    }
  };
}

const FLUSH_AT = 1 << 16;

/**
 * Start tracing on a loaded machine. Returns a function that flushes and closes the trace, or an
 * error message when the machine has nothing to trace.
 */
export async function startTrace(
  loaded: LoadedMachine,
  t: TraceOutput,
  stderr: { write(s: string): unknown },
): Promise<{ close: () => void } | string> {
  const vmx = loaded.provided(Tokens.Virtualization);
  if (!vmx)
    return '--trace exits: this machine has no virtualization plugin, so there are no VM exits to trace';
  let fd: number | undefined;
  if (t.file) {
    try {
      fd = fs.openSync(t.file, 'w');
    } catch (e) {
      return `--trace exits: cannot write ${t.file}: ${(e as Error).message}`;
    }
  }
  const insn = t.insn ? await instructionReader(vmx, loaded.machine.hostBus) : undefined;
  const clock = loaded.machine.clock;
  let buf: string[] = [];
  let size = 0;
  let n = 0;
  const flush = () => {
    if (buf.length === 0) return;
    const text = buf.join('');
    buf = [];
    size = 0;
    if (fd !== undefined) fs.writeSync(fd, text);
    else stderr.write(text);
  };
  vmx.setTrace((r) => {
    const line = `exit ${++n} t=${clock.now}ns ${formatExit(r)}${insn === undefined ? '' : insn(r.rip)}\n`;
    buf.push(line);
    size += line.length;
    if (size >= FLUSH_AT) flush();
  });
  return {
    close() {
      vmx.setTrace(null);
      flush();
      if (fd !== undefined) fs.closeSync(fd);
    },
  };
}

/** Hex of a 64-bit field held as a number: negative values (sign-extended) print as 64-bit two's complement. */
const hex = (n: number): string => `0x${(n < 0 ? BigInt.asUintN(64, BigInt(n)) : n).toString(16)}`;

/**
 * One exit as text: reason name, qual=, rip=, then only the fields valid for it. A record without
 * the exit-information fields (an older or stand-in vmx plugin) prints the first three.
 */
export function formatExit(
  r: Partial<ExitTraceRecord> & Pick<ExitTraceRecord, 'reason' | 'qualification' | 'rip'>,
): string {
  const basic = r.reason & 0xffff;
  const failed = (r.reason & EXIT_REASON_ENTRY_FAILURE) !== 0;
  const name = (EXIT_REASON_NAMES[basic] ?? `reason${basic}`) + (failed ? ' (entry failure)' : '');
  let s = `${name} qual=${hex(r.qualification)} rip=${hex(r.rip)}`;
  if (r.instructionLength !== undefined && r.instructionLength > 0) s += ` len=${r.instructionLength}`;
  if (r.instructionInfo !== undefined && r.instructionInfo >= 0) s += ` info=${hex(r.instructionInfo)}`;
  if (r.guestLinear !== undefined && r.guestLinear !== -1) s += ` gla=${hex(r.guestLinear)}`;
  if (r.guestPhysical !== undefined && r.guestPhysical >= 0) s += ` gpa=${hex(r.guestPhysical)}`;
  if (r.interruptionInfo) {
    s += ` intr=${hex(r.interruptionInfo)}`;
    if (r.interruptionErrorCode !== undefined && r.interruptionErrorCode >= 0)
      s += ` err=${hex(r.interruptionErrorCode)}`;
  }
  if (r.idtVectoringInfo) {
    s += ` idt=${hex(r.idtVectoringInfo)}`;
    if (r.idtVectoringErrorCode !== undefined && r.idtVectoringErrorCode >= 0)
      s += ` idterr=${hex(r.idtVectoringErrorCode)}`;
  }
  return s;
}

/** `--stats` asks the vmx plugin for host time per exit reason (two clock reads per exit). */
export function enableExitTiming(loaded: LoadedMachine): void {
  loaded.provided(Tokens.Virtualization)?.setTiming(true);
}
