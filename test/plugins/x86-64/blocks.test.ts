/**
 * Translated blocks (plugins/x86-64/blocks.ts) against the general decoder where a code cache can
 * go wrong: stores into the code being run (same block, next block), code written by the bus after
 * a first run, an instruction straddling two pages whose second page changes, the same linear
 * address mapping other code after INVLPG or a CR3 load, and the same bytes run in another mode.
 * Each scenario runs once with the fast path (and its blocks) and once without; registers, flags,
 * RIP and the instruction count must agree, and the fast run must have translated blocks. A block
 * that loops onto its own start runs its passes in one call: it must still stop where the run
 * slice's instruction budget ends and see an idle spin as the general path does.
 */
import { describe, expect, it } from 'vitest';
import { Bus } from '../../../src/core/bus.js';
import type { RamRegion } from '../../../src/core/bus.js';
import { VirtualClock } from '../../../src/core/clock.js';
import { SegAttr } from '../../../src/x86/descriptor.js';
import { CR0, CR4, EFER } from '../../../src/x86/regs.js';
import { X86_64 } from '../../../plugins/x86-64/cpu.js';

const imm32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];

interface Env {
  bus: Bus;
  region: RamRegion;
  ram: Uint8Array;
  cpu: X86_64;
}

function env(fast: boolean): Env {
  const bus = new Bus('blocks');
  const region = bus.addRam('ram', 0, 0x800000);
  const cpu = new X86_64(bus, new VirtualClock());
  cpu.reset();
  cpu.fastPath = fast;
  return { bus, region, ram: region.data, cpu };
}

/** Run from `rip` until HLT. */
function runAt(cpu: X86_64, rip: number): void {
  cpu.halted = false;
  cpu.rip = rip;
  for (let k = 0; k < 100 && !cpu.halted; k++) cpu.run(cpu.clock.now + 1_000_000);
  expect(cpu.halted, 'halted').toBe(true);
}

function state(cpu: X86_64): string {
  const regs = Array.from(cpu.rl, (v, i) => `${(cpu.rh[i]! >>> 0).toString(16)}:${(v >>> 0).toString(16)}`);
  return `${regs.join(' ')} fl=${cpu.getFlags().toString(16)} rip=${cpu.rip.toString(16)} n=${cpu.instructionsRetired}`;
}

/** Long mode on identity-mapped 2 MiB pages (0..8 MiB), CS 64-bit. */
function enterLong(e: Env, rip: number): void {
  const w = (a: number, v: number): void => e.ram.set(imm32(v), a);
  w(0x10000, 0x11003);
  w(0x11000, 0x12003);
  for (let i = 0; i < 4; i++) w(0x12000 + 8 * i, 0x83 + i * 0x200000);
  const c = e.cpu;
  c.cr4 = CR4.PAE;
  c.cr3 = 0x10000;
  c.efer = EFER.LME | EFER.LMA;
  c.cr0 |= CR0.PG;
  c.setSeg(
    1,
    0x18,
    0,
    0xffffffff,
    SegAttr.P | SegAttr.S | SegAttr.CODE | SegAttr.RW | SegAttr.ACCESSED | SegAttr.L | SegAttr.G,
  );
  c.updateMode();
  c.flushTlb();
  c.rip = rip;
}

/** Run a scenario with and without the fast path; the results must agree. */
function compare(scenario: (e: Env) => void): void {
  const out: string[] = [];
  let compiled = 0;
  for (const fast of [true, false]) {
    const e = env(fast);
    scenario(e);
    out.push(state(e.cpu));
    if (fast) compiled = e.cpu.blockStats.compiled;
  }
  expect(compiled, 'blocks translated').toBeGreaterThan(0);
  expect(out[0]).toBe(out[1]);
}

const CODE = 0x100000;

/** mov ecx,n; L: body; dec ecx; jnz L; hlt */
function loop(n: number, body: number[], m64 = false): number[] {
  const dec = m64 ? [0xff, 0xc9] : [0x49];
  const rel = -(body.length + dec.length + 2);
  return [0xb9, ...imm32(n), ...body, ...dec, 0x75, rel & 0xff, 0xf4];
}

describe('x86-64 translated blocks', () => {
  it('sees a store into the block it is running (the next instruction is decoded afresh)', () => {
    compare((e) => {
      // L: mov eax,imm32 (its low byte at L+1); add esi,eax; inc edx; mov [ebx],dl; ...
      const code = loop(60, [0xb8, ...imm32(0x11111111), 0x01, 0xc6, 0x42, 0x88, 0x13, 0x01, 0xc7]);
      e.ram.set(code, CODE);
      e.cpu.enterFlat32(CODE);
      e.cpu.rl[3] = CODE + 5 + 1;
      runAt(e.cpu, CODE);
    });
  });

  it('sees a store into the code of the next block', () => {
    compare((e) => {
      // Loop 1 patches the immediate of loop 2's MOV each iteration; loop 2 then runs with it.
      const l2 = loop(40, [0xb8, ...imm32(0x01010101), 0x01, 0xc6]);
      const l1 = loop(50, [0x42, 0x88, 0x13, 0x01, 0xd7]);
      const code = [...l1.slice(0, -1), ...l2];
      e.ram.set(code, CODE);
      e.cpu.enterFlat32(CODE);
      e.cpu.rl[3] = CODE + l1.length - 1 + 5 + 1;
      runAt(e.cpu, CODE);
      // Run both again: loop 2 is hot now and still must see loop 1's stores.
      runAt(e.cpu, CODE);
    });
  });

  it('sees code written by the bus (DMA, loaders) after a first run', () => {
    compare((e) => {
      e.ram.set(loop(50, [0x05, ...imm32(3), 0x01, 0xc6]), CODE);
      e.cpu.enterFlat32(CODE);
      runAt(e.cpu, CODE);
      e.bus.writeBytes(CODE, Uint8Array.from(loop(50, [0x2d, ...imm32(7), 0x31, 0xc6])));
      runAt(e.cpu, CODE);
      // A writer that stores into RAM itself and reports it.
      e.ram.set(loop(30, [0x35, ...imm32(0x55), 0x29, 0xc6]), CODE);
      e.bus.noteRamWrite(e.region, CODE, 64);
      runAt(e.cpu, CODE);
    });
  });

  it('sees a new second page under an instruction that straddles two pages', () => {
    compare((e) => {
      // The MOV's immediate ends on the next page.
      const start = CODE + 0x1000 - 8;
      const code = loop(40, [0x01, 0xc6, 0xb8, ...imm32(0x01020304), 0x01, 0xc7]);
      e.ram.set(code, start);
      e.cpu.enterFlat32(start);
      runAt(e.cpu, start);
      e.bus.writeBytes(CODE + 0x1000, Uint8Array.from([0x7f]));
      runAt(e.cpu, start);
    });
  });

  it('runs the code the linear address maps to after INVLPG and after a CR3 load', () => {
    compare((e) => {
      // 32-bit paging: identity map of 0..4 MiB, linear 0x300000 moved between two frames.
      const w = (a: number, v: number): void => e.ram.set(imm32(v), a);
      w(0x20000, 0x21003);
      w(0x30000, 0x31003);
      for (let i = 0; i < 1024; i++) {
        w(0x21000 + 4 * i, (i * 4096) | 3);
        w(0x31000 + 4 * i, (i * 4096) | 3);
      }
      w(0x21000 + 4 * 0x300, 0x301003);
      w(0x31000 + 4 * 0x300, 0x303003);
      e.ram.set(loop(40, [0x83, 0xc6, 0x01]), 0x301000);
      e.ram.set(loop(40, [0x83, 0xc6, 0x02]), 0x302000);
      e.ram.set(loop(40, [0x83, 0xc6, 0x05]), 0x303000);
      const c = e.cpu;
      c.enterFlat32(0x300000);
      c.cr3 = 0x20000;
      c.cr0 |= CR0.PG;
      c.updateMode();
      c.flushTlb();
      runAt(c, 0x300000);
      w(0x21000 + 4 * 0x300, 0x302003);
      c.flushTlbPage(0x300000); // INVLPG
      runAt(c, 0x300000);
      c.cr3 = 0x30000;
      c.flushTlb(); // MOV to CR3
      runAt(c, 0x300000);
    });
  });

  it('decodes the same bytes again after a switch from 32-bit to 64-bit code', () => {
    compare((e) => {
      // 48 is DEC EAX in 32-bit code and a REX.W prefix in 64-bit code.
      // DEC ECX as FF C9: the same instruction in both modes.
      e.ram.set(loop(40, [0x48, 0x01, 0xc6, 0x83, 0xc7, 0x03], true), CODE);
      e.cpu.enterFlat32(CODE);
      e.cpu.rl[0] = 0x12345678;
      runAt(e.cpu, CODE);
      enterLong(e, CODE);
      runAt(e.cpu, CODE);
    });
  });

  it('sees code rewritten by the guest with REP MOVSB and REP STOSB (the string fast path)', () => {
    compare((e) => {
      const SRC = 0x200000;
      const COPY = 0x300000;
      const fresh = loop(50, [0x2d, ...imm32(7), 0x31, 0xc6]);
      e.ram.set(loop(50, [0x05, ...imm32(3), 0x01, 0xc6]), CODE);
      e.ram.set(fresh, SRC);
      // mov esi,SRC; mov edi,CODE; mov ecx,len; cld; rep movsb; hlt
      e.ram.set(
        [0xbe, ...imm32(SRC), 0xbf, ...imm32(CODE), 0xb9, ...imm32(fresh.length), 0xfc, 0xf3, 0xa4, 0xf4],
        COPY,
      );
      // mov edi,CODE+1; mov ecx,4; mov al,0x11; rep stosb; hlt: the SUB's immediate becomes 0x11111111
      const STORE = COPY + 0x100;
      e.ram.set([0xbf, ...imm32(CODE + 6), 0xb9, ...imm32(4), 0xb0, 0x11, 0xf3, 0xaa, 0xf4], STORE);
      e.cpu.enterFlat32(CODE);
      runAt(e.cpu, CODE);
      runAt(e.cpu, COPY);
      runAt(e.cpu, CODE);
      runAt(e.cpu, STORE);
      runAt(e.cpu, CODE);
    });
  });

  it('stops a block that loops onto itself where each run slice ends, as the general path does', () => {
    const trace: string[][] = [];
    for (const fast of [true, false]) {
      const e = env(fast);
      // L: add esi,ecx; xor edi,esi; dec ecx; jnz L (4 instructions a pass); hlt
      e.ram.set(loop(500, [0x01, 0xce, 0x31, 0xf7]), CODE);
      e.cpu.enterFlat32(CODE);
      e.cpu.rip = CODE;
      const cpu = e.cpu;
      const seen: string[] = [];
      // Slices of 1 to 13 instructions: most end inside a pass, some exactly at its end.
      for (let k = 0; !cpu.halted && k < 2000; k++) {
        cpu.run(cpu.clock.now + ((k % 13) + 1) * cpu.nsPerInsn);
        seen.push(`${cpu.rip.toString(16)}/${cpu.instructionsRetired}`);
      }
      expect(cpu.halted, 'halted').toBe(true);
      if (fast) expect(cpu.blockStats.compiled, 'blocks translated').toBeGreaterThan(0);
      seen.push(state(cpu));
      trace.push(seen);
    }
    expect(trace[0]).toEqual(trace[1]);
  });

  it('skips the time of an idle spin in a block that loops onto itself, as the general path does', () => {
    const out: string[] = [];
    for (const fast of [true, false]) {
      const e = env(fast);
      // L: test eax,eax; jz L (EAX 0: nothing changes); hlt. Time jumps to the run's deadline.
      e.ram.set([0x85, 0xc0, 0x74, 0xfc, 0xf4], CODE);
      e.cpu.enterFlat32(CODE);
      e.cpu.rip = CODE;
      e.cpu.run(50_000_000);
      if (fast) expect(e.cpu.blockStats.compiled, 'blocks translated').toBeGreaterThan(0);
      expect(e.cpu.stats().idleSkips).toBeGreaterThan(0);
      expect(e.cpu.instructionsRetired).toBeLessThan(1000);
      out.push(`${state(e.cpu)} now=${e.cpu.clock.now}`);
    }
    expect(out[0]).toBe(out[1]);
  });

  it("under a second-stage hook, an access that exits sees the block's registers and keeps the handler's", () => {
    const seen: string[] = [];
    compare((e) => {
      // L: inc edx; mov [ebx],edx (exits: the handler records EDX); mov eax,[ebx] (exits: the
      // handler loads EAX); add esi,eax; dec ecx; jnz L; hlt. As a VMX policy emulating MMIO does.
      const DEV = 0x700000;
      e.ram.set(loop(40, [0x42, 0x89, 0x13, 0x8b, 0x03, 0x01, 0xc6]), CODE);
      e.cpu.enterFlat32(CODE);
      e.cpu.rl[3] = DEV;
      let n = 0;
      const log: string[] = [];
      e.cpu.hooks.translate = (r) => {
        if (r.gpa - (r.gpa % 4096) !== DEV) return r.gpa;
        const c = e.cpu;
        if (r.write) log.push(`w ${c.rl[2]}`);
        else c.rl[0] = 1000 + n++;
        c.rip = c.ip0 + 2;
        return -1;
      };
      runAt(e.cpu, CODE);
      seen.push(log.join(','));
    });
    expect(seen[0]).toBe(seen[1]);
  });
});
