/**
 * `vmm up --trace exits[=FILE]`: one line per VM exit (virtual time, reason, qualification, guest
 * RIP), buffered and written to FILE or stderr. Costs nothing when not asked for: the vmx plugin
 * calls a trace function only when one is set.
 */
import * as fs from 'node:fs';
import type { LoadedMachine } from '../api-types.js';
import { Tokens } from '../core/tokens.js';
import { EXIT_REASON_ENTRY_FAILURE, EXIT_REASON_NAMES } from '../x86/vmx.js';

export type TraceOutput = { kind: 'exits'; file?: string };

/** Parse `--trace exits` or `--trace exits=FILE`. */
export function parseTraceFlag(v: string | undefined): TraceOutput | undefined {
  if (v === undefined) return undefined;
  if (v === 'exits') return { kind: 'exits' };
  if (v.startsWith('exits=') && v.length > 6) return { kind: 'exits', file: v.slice(6) };
  throw new Error(`--trace takes 'exits' or 'exits=FILE' (got '${v}')`);
}

const FLUSH_AT = 1 << 16;

/**
 * Start tracing on a loaded machine. Returns a function that flushes and closes the trace, or an
 * error message when the machine has nothing to trace.
 */
export function startTrace(
  loaded: LoadedMachine,
  t: TraceOutput,
  stderr: { write(s: string): unknown },
): { close: () => void } | string {
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
    const basic = r.reason & 0xffff;
    const failed = (r.reason & EXIT_REASON_ENTRY_FAILURE) !== 0;
    const name = (EXIT_REASON_NAMES[basic] ?? `reason${basic}`) + (failed ? ' (entry failure)' : '');
    const line = `exit ${++n} t=${clock.now}ns ${name} qual=0x${r.qualification.toString(16)} rip=0x${r.rip.toString(16)}\n`;
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

/** `--stats` asks the vmx plugin for host time per exit reason (two clock reads per exit). */
export function enableExitTiming(loaded: LoadedMachine): void {
  loaded.provided(Tokens.Virtualization)?.setTiming(true);
}
