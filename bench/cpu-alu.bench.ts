/**
 * CPU interpreter throughput: a loop of integer ALU instructions (xorshift32 steps, an add, a
 * counter and a branch: 14 instructions per iteration, like the alu phase of ../shared/bench) run
 * in 32-bit protected mode (paging off) and in 64-bit long mode (2 MiB identity pages), and the inner
 * loops of the kit's alu (bytewise CRC32: MOVZX, SHR, SBB, AND, XOR) and mem_byte (byte copy) phases.
 * Reports
 * emulated MIPS = instructions retired / process CPU time (steadier than wall time on a shared
 * machine), best of 3 runs after a warm-up.
 */
import { Bus } from '../src/core/bus.js';
import { VirtualClock } from '../src/core/clock.js';
import { SegAttr } from '../src/x86/descriptor.js';
import { CR0, CR4, EFER } from '../src/x86/regs.js';
import { X86_64 } from '../plugins/x86-64/cpu.js';
import type { BenchResult } from './run.js';

const CODE = 0x100000;
const ITERATIONS = 2_000_000;

/** mov ecx,N; L: (mov edx,eax; shl edx,13; xor eax,edx; mov edx,eax; shr edx,17; xor eax,edx;
 *  mov edx,eax; shl edx,5; xor eax,edx; add ebx,eax; xor esi,ebx; sub edi,eax; dec ecx; jnz L); hlt */
function loop(n: number): number[] {
  const body = [
    0x89, 0xc2, 0xc1, 0xe2, 0x0d, 0x31, 0xd0, 0x89, 0xc2, 0xc1, 0xea, 0x11, 0x31, 0xd0, 0x89, 0xc2, 0xc1,
    0xe2, 0x05, 0x31, 0xd0, 0x01, 0xc3, 0x31, 0xde, 0x29, 0xc7, 0xff, 0xc9,
  ];
  const rel = -(body.length + 2);
  return [0xb9, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24, ...body, 0x75, rel & 0xff, 0xf4];
}

/** The kit's CRC32 inner loop over 1 MiB at 0x200000 (ECX bytes): 37 instructions per byte. */
function crc(m64: boolean): number[] {
  const bit = [0xd1, 0xe8, 0x19, 0xd2, 0x81, 0xe2, 0x20, 0x83, 0xb8, 0xed, 0x31, 0xd0];
  const body = [0x0f, 0xb6, 0x13, ...(m64 ? [0x48, 0xff, 0xc3] : [0x43]), 0x31, 0xd0];
  for (let i = 0; i < 8; i++) body.push(...bit);
  body.push(...(m64 ? [0xff, 0xc9] : [0x49]));
  const rel = -(body.length + 2);
  return [0xbb, 0, 0, 0x20, 0, 0xb9, 0, 0, 0x10, 0, ...body, 0x75, rel & 0xff, 0xf4];
}

/** The kit's mem_byte loop: 1 MiB from 0x200000 to 0x300000 a byte at a time, 6 instructions per byte. */
function byteCopy(m64: boolean): number[] {
  const inc = (r: number): number[] => (m64 ? [0x48, 0xff, 0xc0 | r] : [0x40 | r]);
  const body = [0x8a, 0x1a, 0x88, 0x19, ...inc(2), ...inc(1), ...(m64 ? [0xff, 0xc8] : [0x48])];
  const rel = -(body.length + 2);
  return [0xba, 0, 0, 0x20, 0, 0xb9, 0, 0, 0x30, 0, 0xb8, 0, 0, 0x10, 0, ...body, 0x75, rel & 0xff, 0xf4];
}

type Kind = 'alu' | 'crc' | 'byte';

function machine(mode: 32 | 64, kind: Kind = 'alu'): X86_64 {
  const bus = new Bus('bench');
  const ram = bus.addRam('ram', 0, 0x400000).data;
  const cpu = new X86_64(bus, new VirtualClock());
  cpu.reset();
  const m64 = mode === 64;
  ram.set(kind === 'alu' ? loop(ITERATIONS) : kind === 'crc' ? crc(m64) : byteCopy(m64), CODE);
  for (let i = 0; i < 0x100000; i++) ram[0x200000 + i] = (i * 2654435761) >>> 24;
  if (mode === 32) {
    cpu.enterFlat32(CODE);
    return cpu;
  }
  // Identity map 0..4 MiB with 2 MiB pages at 0x10000.
  const w = (a: number, v: number): void => {
    ram[a] = v;
    ram[a + 1] = v >>> 8;
    ram[a + 2] = v >>> 16;
    ram[a + 3] = v >>> 24;
  };
  w(0x10000, 0x11003);
  w(0x11000, 0x12003);
  w(0x12000, 0x83);
  w(0x12008, 0x200083);
  cpu.enterFlat32(CODE);
  cpu.cr4 = CR4.PAE;
  cpu.cr3 = 0x10000;
  cpu.efer = EFER.LME | EFER.LMA;
  cpu.cr0 |= CR0.PG;
  const code64 = SegAttr.P | SegAttr.S | SegAttr.CODE | SegAttr.RW | SegAttr.ACCESSED | SegAttr.L | SegAttr.G;
  cpu.setSeg(1, 0x18, 0, 0xffffffff, code64);
  cpu.updateMode();
  cpu.flushTlb();
  cpu.rip = CODE;
  return cpu;
}

function once(mode: 32 | 64, kind: Kind = 'alu'): number {
  const cpu = machine(mode, kind);
  const t0 = process.cpuUsage();
  while (!cpu.halted) cpu.run(cpu.clock.now + 10_000_000);
  const ms = process.cpuUsage(t0).user / 1000;
  return cpu.instructionsRetired / ms / 1000;
}

export async function run(): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  const names: Record<Kind, string> = { alu: 'cpu alu loop', crc: 'cpu crc32 loop', byte: 'cpu byte copy' };
  for (const kind of ['alu', 'crc', 'byte'] as const) {
    for (const mode of [32, 64] as const) {
      once(mode, kind);
      let best = 0;
      for (let i = 0; i < 3; i++) best = Math.max(best, once(mode, kind));
      out.push({ name: `${names[kind]}, ${mode}-bit`, value: Math.round(best * 10) / 10, unit: 'MIPS' });
    }
  }
  return out;
}
