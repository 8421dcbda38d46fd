/**
 * VM exits per second under the rvm-tutorial policy (issue 5's target: 5,000,000/s): a tiny
 * Multiboot guest, made here byte by byte, runs 1,000,000 `out 0x80, al` (every one an I/O exit)
 * or 1,000,000 CPUID (every one a CPUID exit) on machines/q35-vmx-multiboot.yaml, then exits
 * through isa-debug-exit. Wall time includes loading the machine (a few tens of ms), so the rate is
 * a slight underestimate. For the peers, run the pio and cpuid phases of ../shared/bench.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadMachine, NullConsole } from '../src/index.js';
import { ROOT, type BenchResult } from './run.js';

const MACHINE = path.join(ROOT, 'machines/q35-vmx-multiboot.yaml');
const N = 1_000_000;
const LOAD = 0x100000;

/** 32-bit code: a counted loop around `body`, then `mov al,0; out 0xf4,al; hlt`. */
function kernel(body: number[]): Uint8Array {
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

export async function run(): Promise<BenchResult[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-vmx-bench-'));
  const results: BenchResult[] = [];
  try {
    for (const p of PHASES) {
      const file = path.join(dir, `${p.name}.bin`);
      fs.writeFileSync(file, kernel(p.body));
      const m = await loadMachine(MACHINE, {
        shorthands: { kernel: file },
        console: new NullConsole(),
        noUserConfig: true,
        logLevel: 'error',
      });
      const t0 = performance.now();
      const reason = await m.run({ wallTimeoutMs: 120_000 });
      const ms = performance.now() - t0;
      const exits = Object.entries(m.stats())
        .flatMap(([, s]) => Object.entries(s))
        .filter(([k]) => k === `exits.${p.reason}`)
        .reduce((a, [, v]) => a + Number(v), 0);
      await m.dispose();
      const ok = reason.kind === 'poweroff' && exits >= N;
      results.push({
        name: `${p.name}: ${p.reason} exits`,
        value: Math.round(exits / (ms / 1000)),
        unit: 'exits/s',
        note: ok
          ? `${exits} exits in ${ms.toFixed(0)} ms; target 5,000,000/s`
          : `did not complete: ${reason.kind}, ${exits} exits`,
      });
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return results;
}
