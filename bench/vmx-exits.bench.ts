/**
 * VM exits per second under the rvm-tutorial policy (issue 5's target: 5,000,000/s): a tiny
 * Multiboot guest, made here byte by byte, runs a counted loop of `out 0x80, al` (every one an I/O
 * exit) or of `xor eax,eax; cpuid` (every one a CPUID exit) on machines/q35-vmx-multiboot.yaml:
 * first WARM_UP iterations (the JIT settles), then a marker byte on COM1, N iterations, a second
 * marker, and an exit through isa-debug-exit. The markers are exits too (COM1 is emulated by the
 * policy), and the console backend notes the process CPU time and wall time as each arrives: the
 * rate is N exits over the CPU time between them (steadier than wall time on a shared machine; the
 * note gives the wall-time rate as well). Median of RUNS machines per kind. The kit in
 * ../shared/bench measures the same loops (its pio and cpuid phases) next to the peers.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadMachine, type ConsoleBackend } from '../src/index.js';
import { ROOT, type BenchResult } from './run.js';

const MACHINE = path.join(ROOT, 'machines/q35-vmx-multiboot.yaml');
const WARM_UP = 300_000;
const N = 3_000_000;
const RUNS = 5;
const LOAD = 0x100000;
const COM1 = 0x3f8;

const u32 = (v: number): number[] => [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];

/** `mov esi, n; again: body; dec esi; jnz again` */
function loop(body: number[], n: number): number[] {
  const back = body.length + 1 + 2; // body, dec esi, jnz rel8
  return [0xbe, ...u32(n), ...body, 0x4e, 0x75, (0x100 - back) & 0xff];
}

/** `mov dx, COM1; mov al, byte; out dx, al` */
const marker = (byte: number): number[] => [0x66, 0xba, COM1 & 0xff, COM1 >> 8, 0xb0, byte, 0xee];

/** The guest: warm-up loop, 'S', the measured loop, 'E', isa-debug-exit, hlt. */
function kernel(body: number[]): Uint8Array {
  const code = [
    ...loop(body, WARM_UP),
    ...marker(0x53),
    ...loop(body, N),
    ...marker(0x45),
    0xb0,
    0x00, // mov al, 0
    0xe6,
    0xf4, // out 0xf4, al: isa-debug-exit
    0xf4, // hlt
  ];
  // Multiboot header with the a.out kludge (flags bit 16): load the file at 1 MiB, enter after the header.
  const magic = 0x1badb002;
  const flags = 0x00010000;
  const header = [magic, flags, -(magic + flags) >>> 0, LOAD, LOAD, 0, 0, LOAD + 32];
  const out = new Uint8Array(32 + code.length);
  const dv = new DataView(out.buffer);
  header.forEach((w, i) => dv.setUint32(i * 4, w >>> 0, true));
  out.set(code, 32);
  return out;
}

const PHASES: { name: string; body: number[]; reason: string }[] = [
  { name: 'pio', body: [0xe6, 0x80], reason: 'IoInstruction' }, // out 0x80, al
  { name: 'cpuid', body: [0x31, 0xc0, 0x0f, 0xa2], reason: 'Cpuid' }, // xor eax,eax; cpuid
];

/** Notes the process CPU time and wall time (ms) when each guest byte arrives. */
class MarkerConsole implements ConsoleBackend {
  readonly inputEnded = true;
  readonly marks = new Map<number, { cpuMs: number; wallMs: number }>();
  write(data: Uint8Array): void {
    const c = process.cpuUsage();
    const wallMs = performance.now();
    for (const b of data) this.marks.set(b, { cpuMs: (c.user + c.system) / 1000, wallMs });
  }
  setInputHandler(): void {}
}

interface Sample {
  cpuRate: number;
  wallRate: number;
  exits: number;
  ok: boolean;
  stop: string;
}

async function once(file: string, reason: string): Promise<Sample> {
  const con = new MarkerConsole();
  const m = await loadMachine(MACHINE, {
    shorthands: { kernel: file },
    console: con,
    noUserConfig: true,
    logLevel: 'error',
  });
  const stop = await m.run({ wallTimeoutMs: 120_000 });
  const exits = Object.values(m.stats())
    .flatMap((s) => Object.entries(s))
    .filter(([k]) => k === `exits.${reason}`)
    .reduce((a, [, v]) => a + Number(v), 0);
  await m.dispose();
  const s = con.marks.get(0x53);
  const e = con.marks.get(0x45);
  const ok = stop.kind === 'poweroff' && s !== undefined && e !== undefined && exits >= WARM_UP + N;
  return {
    cpuRate: ok ? N / ((e.cpuMs - s.cpuMs) / 1000) : NaN,
    wallRate: ok ? N / ((e.wallMs - s.wallMs) / 1000) : NaN,
    exits,
    ok,
    stop: stop.kind,
  };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
};
const fmt = (v: number): string => Math.round(v).toLocaleString('en-US');

export async function run(): Promise<BenchResult[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-vmx-bench-'));
  const results: BenchResult[] = [];
  try {
    for (const p of PHASES) {
      const file = path.join(dir, `${p.name}.bin`);
      fs.writeFileSync(file, kernel(p.body));
      const samples: Sample[] = [];
      for (let i = 0; i < RUNS; i++) samples.push(await once(file, p.reason));
      const bad = samples.find((x) => !x.ok);
      const cpu = samples.map((x) => x.cpuRate);
      results.push({
        name: `${p.name}: ${p.reason} exits`,
        value: bad ? NaN : Math.round(median(cpu)),
        unit: 'exits/s',
        note: bad
          ? `did not complete: ${bad.stop}, ${bad.exits} exits`
          : `${N.toLocaleString('en-US')} exits by CPU time, median of ${RUNS} (${fmt(Math.min(...cpu))}-${fmt(Math.max(...cpu))}); ` +
            `by wall time ${fmt(median(samples.map((x) => x.wallRate)))}; target 5,000,000/s`,
      });
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return results;
}
