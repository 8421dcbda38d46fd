/**
 * VM exits per second under the rvm-tutorial policy (issue 5's target: 5,000,000/s): a tiny
 * Multiboot guest, made here byte by byte, runs a counted loop of `out 0x80, al` (every one an I/O
 * exit) or of `xor eax,eax; cpuid` (every one a CPUID exit) on machines/q35-vmx-multiboot.yaml:
 * a warm-up loop (or none), a marker byte on COM1, 1,000,000 iterations, a second marker, and an
 * exit through isa-debug-exit. The markers are exits too (COM1 is emulated by the policy).
 * Each run is a fresh Node process with one machine (as `vmm up` runs it): this module, started
 * as a child, notes the wall time as each marker reaches the console backend (stdout timing would
 * add the event loop's output batching; process CPU time would add the JIT's and GC's background
 * threads). Median of RUNS processes.
 * - cold: no warm-up: the first 1,000,000 exits of the process, the JIT's warm-up included.
 * - warm: after 300,000 exits of warm-up.
 * (Many machines in one process run slower and more unevenly than one machine in a fresh one: the
 * JIT's call sites see every machine's closures.)
 * The kit in ../shared/bench measures the same loops (its pio and cpuid phases) next to the peers.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { ROOT, type BenchResult } from './run.js';

const MACHINE = path.join(ROOT, 'machines/q35-vmx-multiboot.yaml');
const WARM_UP = 300_000;
const N = 1_000_000;
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

/** The guest: warm-up loop (if any), 'S', the measured loop, 'E', isa-debug-exit, hlt. */
function kernel(body: number[], warmUp: number): Uint8Array {
  const code = [
    ...(warmUp > 0 ? loop(body, warmUp) : []),
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

/** A fresh process running one machine on `file`: exits per second between the markers. */
function rate(file: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), CHILD, file], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const v = Number(out.trim());
      if (code === 0 && Number.isFinite(v)) resolve(v);
      else reject(new Error(`run failed (exit ${code}): ${(err || out).trim().split('\n')[0] ?? ''}`));
    });
  });
}

/** In the child: run the machine, print the rate (exits per second between the markers). */
async function child(file: string): Promise<void> {
  const { loadMachine } = await import('../src/index.js');
  const marks = new Map<number, number>();
  const m = await loadMachine(MACHINE, {
    shorthands: { kernel: file },
    console: {
      inputEnded: true,
      setInputHandler() {},
      write(data: Uint8Array) {
        const t = performance.now();
        for (const b of data) if (!marks.has(b)) marks.set(b, t);
      },
    },
    noUserConfig: true,
    logLevel: 'error',
  });
  const stop = await m.run({ wallTimeoutMs: 120_000 });
  await m.dispose();
  const s = marks.get(0x53);
  const e = marks.get(0x45);
  if (stop.kind !== 'poweroff' || s === undefined || e === undefined) {
    process.stderr.write(`stopped: ${stop.kind}${'message' in stop ? `: ${String(stop.message)}` : ''}\n`);
    process.exitCode = 1;
    return;
  }
  process.stdout.write(`${N / ((e - s) / 1000)}\n`);
}

const CHILD = '--vmx-exits-child';
if (process.argv[2] === CHILD && process.argv[1] === fileURLToPath(import.meta.url))
  await child(process.argv[3]!);

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
};
const fmt = (v: number): string => Math.round(v).toLocaleString('en-US');

export async function run(): Promise<BenchResult[]> {
  if (!fs.existsSync(path.join(ROOT, 'dist/src/index.js')))
    return [{ name: 'exits', value: NaN, unit: 'exits/s', note: 'not built: run npm run build' }];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-vmx-bench-'));
  const results: BenchResult[] = [];
  try {
    for (const p of PHASES) {
      for (const [kind, warmUp] of [
        ['cold', 0],
        ['warm', WARM_UP],
      ] as const) {
        const file = path.join(dir, `${p.name}-${kind}.bin`);
        fs.writeFileSync(file, kernel(p.body, warmUp));
        const name = `${p.name}: ${p.reason} exits, ${kind}`;
        try {
          const rates: number[] = [];
          for (let i = 0; i < RUNS; i++) rates.push(await rate(file));
          results.push({
            name,
            value: Math.round(median(rates)),
            unit: 'exits/s',
            note:
              `1,000,000 exits ${warmUp ? `after ${warmUp.toLocaleString('en-US')}` : 'from the start'}, ` +
              `wall time, median of ${RUNS} processes (${fmt(Math.min(...rates))}-${fmt(Math.max(...rates))}); target 5,000,000/s`,
          });
        } catch (e) {
          results.push({ name, value: NaN, unit: 'exits/s', note: (e as Error).message });
        }
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return results;
}
