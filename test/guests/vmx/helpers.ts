/**
 * Run guests/vmxtests/exits.elf under machines/q35-vmx-multiboot.yaml with rvm-tutorial experiment
 * settings, collecting the console and the `--trace exits+insn` lines (src/cli-lib/trace.ts) parsed back
 * into their fields.
 */
import { resolve } from 'node:path';
import { MemoryConsole, MemoryLog, loadMachine, type StopReason } from '../../../src/index.js';
import { startTrace } from '../../../src/cli-lib/trace.js';

export const ROOT = resolve(import.meta.dirname, '../../..');
export const MACHINE = resolve(ROOT, 'machines/q35-vmx-multiboot.yaml');
export const KERNEL = resolve(ROOT, 'guests/vmxtests/exits.elf');
export const KERNEL64 = resolve(ROOT, 'guests/vmxtests/exits64.bin');
/** isa-debug-exit status of a program that ran to its end (guests/cputests/lib.h EXIT_PASS). */
export const PASS_STATUS = (0x10 << 1) | 1;

/** One trace line: the reason name and the fields (numbers; qual may exceed 2^53, kept as bigint). */
export interface Exit {
  n: number;
  name: string;
  qual: bigint;
  rip: number;
  len?: number;
  info?: number;
  gla?: number;
  gpa?: number;
  intr?: number;
  err?: number;
  idt?: number;
  idterr?: number;
  /** The instruction at RIP, disassembled (`--trace exits+insn`), or `?` with why not. */
  insn?: string;
}

export function parseExit(line: string): Exit {
  const m = /^exit (\d+) t=\d+ns (\S+)(?: \(entry failure\))? (.*?)(?: insn=(?:"([^"]*)"|(\? .*)))?$/.exec(
    line,
  );
  if (!m) throw new Error(`not a trace line: ${line}`);
  const e: Exit = { n: Number(m[1]), name: m[2]!, qual: 0n, rip: 0 };
  if (m[4] !== undefined || m[5] !== undefined) e.insn = m[4] ?? m[5];
  for (const kv of m[3]!.split(' ')) {
    const [k, v] = kv.split('=') as [string, string];
    if (k === 'qual') e.qual = BigInt(v);
    else (e as unknown as Record<string, number>)[k] = Number(v);
  }
  return e;
}

export interface VmxRun {
  stop: StopReason;
  console: string;
  log: string;
  exits: Exit[];
  policy: Record<string, number | string>;
}

/** Run a scenario; `set` are `--set` overrides (vmm.policy.* etc.). */
export async function runScenario(
  scenario: string,
  set: readonly string[] = [],
  kernel = KERNEL,
): Promise<VmxRun> {
  const console = new MemoryConsole();
  const log = new MemoryLog();
  const loaded = await loadMachine(MACHINE, {
    console,
    logSink: log.sink,
    noUserConfig: true,
    set: [`vmm.policy.kernel=${kernel}`, `vmm.policy.cmdline=${scenario}`, ...set],
  });
  let text = '';
  const t = await startTrace(loaded, { kind: 'exits', insn: true }, { write: (s: string) => (text += s) });
  if (typeof t === 'string') throw new Error(t);
  try {
    const stop = await loaded.run({ virtualTimeoutNs: 200_000_000, wallTimeoutMs: 60_000 });
    t.close();
    const stats = loaded.stats();
    return {
      stop,
      console: console.text().replace(/\r\n/g, '\n'),
      log: log.text(),
      exits: text
        .split('\n')
        .filter(Boolean)
        .map((l) => parseExit(l)),
      policy: stats['rvm-tutorial'] ?? {},
    };
  } finally {
    await loaded.dispose();
  }
}

/** The exits of one reason. */
export const named = (r: VmxRun, name: string): Exit[] => r.exits.filter((e) => e.name === name);
