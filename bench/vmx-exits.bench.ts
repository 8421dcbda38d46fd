/**
 * VM exits per second under the rvm-tutorial policy (issue 5's target: 5,000,000/s): a tiny
 * Multiboot guest, made here byte by byte, runs N x `out 0x80, al` (every one an I/O exit) or
 * N x CPUID (every one a CPUID exit) on machines/q35-vmx-multiboot.yaml, then exits through
 * isa-debug-exit. Each kind runs with N = 1,000,000 and N = 3,000,000: the rate is the difference,
 * 2,000,000 exits over the difference in process CPU time (steadier than wall time on a shared
 * machine), so the machine's start (zeroing guest RAM) and the JIT's warm-up cancel out. The note
 * gives the plain rate of the 1,000,000 run, start included. For the peers, run the pio and cpuid
 * phases of ../shared/bench.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadMachine, NullConsole } from '../src/index.js';
import { ROOT, type BenchResult } from './run.js';

const MACHINE = path.join(ROOT, 'machines/q35-vmx-multiboot.yaml');
const N = 1_000_000;
const N_LONG = 3 * N;
const LOAD = 0x100000;

/** 32-bit code: `n` times `body` (a counted loop), then `mov al,0; out 0xf4,al; hlt`. */
function kernel(body: number[], N: number): Uint8Array {
  const n = [N & 0xff, (N >> 8) & 0xff, (N >> 16) & 0xff, (N >>> 24) & 0xff];
  const loopLen = body.length + 1 + 2; // body, dec esi, jnz
  const code = [
    0xbe,
    ...n, // mov esi, N
    ...body,
    0x4e, // dec esi
    0x75,
    (0x100 - loopLen) & 0xff, // jnz back to the body
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

interface Sample {
  exits: number;
  cpuMs: number;
  wallMs: number;
  ok: boolean;
  stop: string;
}

async function once(file: string, reason: string, n: number): Promise<Sample> {
  const m = await loadMachine(MACHINE, {
    shorthands: { kernel: file },
    console: new NullConsole(),
    noUserConfig: true,
    logLevel: 'error',
  });
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const stop = await m.run({ wallTimeoutMs: 120_000 });
  const wallMs = performance.now() - t0;
  const c = process.cpuUsage(c0);
  const exits = Object.entries(m.stats())
    .flatMap(([, s]) => Object.entries(s))
    .filter(([k]) => k === `exits.${reason}`)
    .reduce((a, [, v]) => a + Number(v), 0);
  await m.dispose();
  return {
    exits,
    cpuMs: (c.user + c.system) / 1000,
    wallMs,
    ok: stop.kind === 'poweroff' && exits >= n,
    stop: stop.kind,
  };
}

export async function run(): Promise<BenchResult[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-vmx-bench-'));
  const results: BenchResult[] = [];
  try {
    for (const p of PHASES) {
      const samples: Sample[] = [];
      for (const n of [N, N_LONG]) {
        const file = path.join(dir, `${p.name}-${n}.bin`);
        fs.writeFileSync(file, kernel(p.body, n));
        samples.push(await once(file, p.reason, n));
      }
      const [a, b] = samples as [Sample, Sample];
      const bad = samples.find((x) => !x.ok);
      results.push({
        name: `${p.name}: ${p.reason} exits`,
        value: bad ? NaN : Math.round((b.exits - a.exits) / ((b.cpuMs - a.cpuMs) / 1000)),
        unit: 'exits/s',
        note: bad
          ? `did not complete: ${bad.stop}, ${bad.exits} exits`
          : `${a.exits} exits in ${a.wallMs.toFixed(0)} ms wall with the start (${Math.round(a.exits / (a.wallMs / 1000)).toLocaleString('en-US')}/s); target 5,000,000/s`,
      });
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return results;
}
