/**
 * Driving the sample guest's shell (guests/README.md) on a vmm machine through a MemoryConsole, the
 * way test/guests/qemu-oracle.ts drives it under QEMU: each line is typed, ending in CR, once the
 * shell's prompt has appeared after the previous one. The transcript is what the guest wrote to
 * COM1, byte for byte.
 *
 * The line is typed from inside the console's write (the guest's THR write that completes the
 * prompt), not after an await: the run loop hands Node's event loop a turn only every few wall
 * milliseconds, so input typed from a promise reaches the guest at a virtual time that depends on
 * the host's speed, and the guest's idle loop (polling LSR, one VM exit per poll) makes the `exits`
 * answer count that wait. Typed at the prompt, the input's virtual time is part of the run, and
 * two runs must match byte for byte.
 */
import { resolve } from 'node:path';
import { MemoryConsole, exitCodeFor, loadMachine } from '../../src/index.js';
import type { StopReason } from '../../src/index.js';
import { SAMPLE_PROMPT } from '../guests/qemu-oracle.js';

export const ROOT = resolve(import.meta.dirname, '../..');
export const machineFile = (name: string): string => resolve(ROOT, 'machines', name);

export interface SampleRun {
  /** The guest's COM1 output, unmodified (latin1, CR LF line ends). */
  raw: string;
  /** `raw` with CR LF turned into LF. */
  text: string;
  stop: StopReason;
  exitCode: number;
  /** How many of the lines were typed before the run ended. */
  typed: number;
  stats: Record<string, Record<string, number | string>>;
  log: string;
}

export interface SampleRunOptions {
  set?: readonly string[];
  /** Safety net in virtual nanoseconds (the guest powers off long before). */
  timeoutNs?: number;
}

/** A MemoryConsole that types the next line as soon as the guest has printed a prompt no line answered. */
export class PromptTypist extends MemoryConsole {
  typed = 0;
  private prompts = 0;
  private tail = '';

  constructor(
    private readonly lines: readonly string[],
    private readonly prompt: string = SAMPLE_PROMPT,
  ) {
    super();
  }

  override write(data: Uint8Array): void {
    super.write(data);
    // Count prompts incrementally (a prompt may arrive split over several writes).
    this.tail += Buffer.from(data).toString('latin1');
    let at: number;
    while ((at = this.tail.indexOf(this.prompt)) >= 0) {
      this.prompts++;
      this.tail = this.tail.slice(at + this.prompt.length);
    }
    this.tail = this.tail.slice(Math.max(0, this.tail.length - (this.prompt.length - 1)));
    while (this.typed < this.lines.length && this.prompts > this.typed) {
      this.type(`${this.lines[this.typed]!}\r`);
      this.typed++;
    }
  }
}

/** Boots `file`, types `lines` at successive prompts, and runs until the machine stops. */
export async function runSample(
  file: string,
  lines: readonly string[],
  opts: SampleRunOptions = {},
): Promise<SampleRun> {
  const con = new PromptTypist(lines);
  const log: string[] = [];
  const m = await loadMachine(file, {
    console: con,
    noUserConfig: true,
    set: opts.set ?? [],
    logSink: (level, source, message) => log.push(`${level} ${source}: ${message}`),
  });
  try {
    const stop = await m.run(opts.timeoutNs === undefined ? {} : { virtualTimeoutNs: opts.timeoutNs });
    const raw = con.text();
    return {
      raw,
      text: raw.replace(/\r\n/g, '\n'),
      stop,
      exitCode: exitCodeFor(stop),
      typed: con.typed,
      stats: m.stats(),
      log: log.join('\n'),
    };
  } finally {
    await m.dispose();
  }
}
