/**
 * The interpreter's fast path (X86Cpu.fastStep: common register forms decoded straight from the
 * fetch window) against the general decoder: random loops of those forms, mixed with forms the fast
 * path must leave alone (operand-size and REX.W prefixes, memory operands), run once with the fast
 * path and once without, in 32-bit protected mode and 64-bit mode; registers, flags, RIP and the
 * instruction count must agree. Seeded: a failure prints its seed.
 */
import { describe, expect, it } from 'vitest';
import { Bus } from '../../../src/core/bus.js';
import { VirtualClock } from '../../../src/core/clock.js';
import { SegAttr } from '../../../src/x86/descriptor.js';
import { CR0, CR4, EFER } from '../../../src/x86/regs.js';
import { X86_64 } from '../../../plugins/x86-64/cpu.js';

/** Code starts a little below a page boundary, so runs cross it and meet the fetch window's end. */
const codeAt = (seed: number): number => 0x100000 - (seed % 97);
const DATA = 0x200000;

function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

const imm32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];

/** One random instruction (bytes); ECX (the loop counter) and ESP are never written. */
function insn(rnd: () => number, m64: boolean): number[] {
  const dst = [0, 2, 3, 5, 6, 7][rnd() % 6]!;
  const src = rnd() % 8;
  const mr = (reg: number, rm: number): number => 0xc0 | (reg << 3) | rm;
  const op = rnd() % 8;
  switch (rnd() % 23) {
    case 0:
      return [op * 8 + 1, mr(src, dst)];
    case 1:
      return [op * 8 + 3, mr(dst, src)];
    case 2:
      return dst === 0 ? [op * 8 + 5, ...imm32(rnd())] : [0x90];
    case 3:
      return [0x83, mr(op, dst), rnd() & 0xff];
    case 4:
      return [0x81, mr(op, dst), ...imm32(rnd())];
    case 5:
      return [0x85, mr(src, dst)];
    case 6:
      return rnd() & 1 ? [0x89, mr(src, dst)] : [0x8b, mr(dst, src)];
    case 7:
      return [0xb8 + dst, ...imm32(rnd() & 1 ? rnd() : rnd() & 0x1f)];
    case 8:
      return [0xc1, mr(op, dst), rnd() % 3 === 0 ? 0 : rnd() & 0x3f];
    case 9:
      return [0xd1, mr(op, dst)];
    case 10:
      return [0xd3, mr(op, dst)];
    case 11:
      return [0xff, mr(rnd() & 1, dst)];
    case 12:
      return m64 ? [0xff, mr(rnd() & 1, dst)] : [0x40 + (rnd() & 8) + dst];
    case 13:
      return [0x0f, 0x40 + (rnd() % 16), mr(dst, src)];
    case 14:
      return [0x0f, [0xb6, 0xb7, 0xbe, 0xbf][rnd() % 4]!, mr(dst, src)];
    case 15:
      return [0x90];
    // Forms the fast path must not take.
    case 16:
      return [0x66, op * 8 + 1, mr(src, dst)];
    case 17:
      // Byte form: r/m 5 would be CH (the loop counter's byte), so DH instead.
      return m64 ? [0x48, op * 8 + 1, mr(src, dst)] : [op * 8, mr(src, dst === 5 ? 6 : dst)];
    case 18:
      // op [disp32], reg (SIB, no base: absolute in both modes): memory forms go through the general path.
      return [op * 8 + 1, 0x04 | (src << 3), 0x25, ...imm32(DATA + (rnd() & 0x3c))];
    case 19:
      return [0x8b, 0x04 | (dst << 3), 0x25, ...imm32(DATA + (rnd() & 0x3c))];
    case 20:
      return m64 ? [0x48, 0xc1, mr(op, dst), rnd() & 0x3f] : [0x66, 0xd1, mr(op, dst)];
    case 21: {
      // mov base,addr; then a load or store through [base] or [base+disp8] (rarely unmapped: a fault).
      // A byte load into CH (r/m 5 without REX) would change the loop counter: DH/SIL instead.
      const base = [0, 2, 3, 5, 6, 7][rnd() % 6]!;
      const addr = rnd() % 64 === 0 ? 0x800000 : DATA + 0x80 + (rnd() & 0x3f);
      const opc = [0x88, 0x89, 0x8a, 0x8b, 0xb6][rnd() % 5]!;
      const mod = base === 5 || rnd() & 1 ? 1 : 0;
      const disp = mod === 1 ? [rnd() & 0xff] : [];
      const reg = opc === 0x88 || opc === 0x89 ? src : dst === 5 && opc === 0x8a ? 6 : dst;
      const modrm = (mod << 6) | (reg << 3) | base;
      const mem = opc === 0xb6 ? [0x0f, 0xb6, modrm] : [opc, modrm];
      if (!m64 || rnd() & 1) return [0xb8 + base, ...imm32(addr), ...mem, ...disp];
      // With a REX: B moves the base to R8-R15 (set by a MOV with the same REX.B), R the register.
      const rex = 0x40 | (rnd() & 15);
      return [0x40 | (rex & 1), 0xb8 + base, ...imm32(addr), rex, ...mem, ...disp];
    }
    default:
      return [0xf5]; // CMC
  }
}

/** Register forms the fast path also takes with a REX prefix in 64-bit mode. */
const REX_FORMS = new Set([
  0x01, 0x09, 0x11, 0x19, 0x21, 0x29, 0x31, 0x39, 0x03, 0x0b, 0x13, 0x1b, 0x23, 0x2b, 0x33, 0x3b, 0x81, 0x83,
  0x85, 0x89, 0x8b, 0xc1, 0xd1, 0xd3, 0xff,
]);

/** An instruction, in 64-bit mode often with a random REX (R/B pick R8-R15, never RCX or RSP). */
function insnRex(rnd: () => number, m64: boolean): number[] {
  const i = insn(rnd, m64);
  if (m64 && rnd() % 2 === 0 && REX_FORMS.has(i[0]!) && i[1]! >= 0xc0) return [0x40 | (rnd() & 15), ...i];
  return i;
}

/** mov ecx,N; L: body with forward Jcc/JMP over single instructions; dec ecx; jnz L; hlt */
function program(rnd: () => number, m64: boolean): number[] {
  const body: number[] = [];
  const n = 5 + (rnd() % 30);
  for (let k = 0; k < n; k++) {
    const skip = insnRex(rnd, m64);
    switch (rnd() % 6) {
      case 0:
        body.push(0x70 + (rnd() % 16), skip.length);
        break;
      case 1:
        body.push(0x0f, 0x80 + (rnd() % 16), ...imm32(skip.length));
        break;
      case 2:
        body.push(0xeb, skip.length);
        break;
      case 3:
        body.push(0xe9, ...imm32(skip.length));
        break;
    }
    body.push(...skip);
  }
  body.push(0xff, 0xc9); // dec ecx
  const rel = -(body.length + 2);
  const loop = [0x75, rel & 0xff];
  if (rel < -128) loop.splice(0, 2, 0x0f, 0x85, ...imm32(rel - 4));
  return [0xb9, ...imm32(1 + (rnd() % 40)), ...body, ...loop, 0xf4];
}

function machine(m64: boolean, code: number[], seed: number): X86_64 {
  const bus = new Bus('fastpath');
  const ram = bus.addRam('ram', 0, 0x400000).data;
  const cpu = new X86_64(bus, new VirtualClock());
  cpu.reset();
  const at = codeAt(seed);
  ram.set(code, at);
  const rnd = prng(seed ^ 0x5a5a5a5a);
  for (let a = DATA; a < DATA + 0x200; a++) ram[a] = rnd() & 0xff;
  cpu.enterFlat32(at);
  if (m64) {
    const w = (a: number, v: number): void => ram.set(imm32(v), a);
    w(0x10000, 0x11003);
    w(0x11000, 0x12003);
    w(0x12000, 0x83);
    w(0x12008, 0x200083);
    cpu.cr4 = CR4.PAE;
    cpu.cr3 = 0x10000;
    cpu.efer = EFER.LME | EFER.LMA;
    cpu.cr0 |= CR0.PG;
    const code64 =
      SegAttr.P | SegAttr.S | SegAttr.CODE | SegAttr.RW | SegAttr.ACCESSED | SegAttr.L | SegAttr.G;
    cpu.setSeg(1, 0x18, 0, 0xffffffff, code64);
    cpu.updateMode();
    cpu.flushTlb();
    cpu.rip = at;
  }
  for (let i = 0; i < (m64 ? 16 : 8); i++) {
    if (i === 1 || i === 4) continue;
    cpu.rl[i] = rnd() | 0;
    cpu.rh[i] = m64 ? rnd() | 0 : 0;
  }
  cpu.fl = (rnd() & 0x8d5) | 2;
  cpu.lfOp = 0;
  return cpu;
}

function state(cpu: X86_64): string {
  const regs = Array.from(cpu.rl, (v, i) => `${(cpu.rh[i]! >>> 0).toString(16)}:${(v >>> 0).toString(16)}`);
  return `${regs.join(' ')} fl=${cpu.getFlags().toString(16)} rip=${cpu.rip.toString(16)} n=${cpu.instructionsRetired}`;
}

function runBoth(m64: boolean, seed: number): void {
  const code = program(prng(seed), m64);
  const out: string[] = [];
  for (const fast of [true, false]) {
    const cpu = machine(m64, code, seed);
    cpu.fastPath = fast;
    for (let k = 0; k < 100 && !cpu.halted; k++) cpu.run(cpu.clock.now + 1_000_000);
    expect(cpu.halted, `seed ${seed}: halted`).toBe(true);
    out.push(state(cpu));
  }
  expect(out[0], `seed ${seed} (${m64 ? 64 : 32}-bit): fast path vs general decoder`).toBe(out[1]);
}

describe('x86-64 fast path', () => {
  for (const m64 of [false, true]) {
    it(`agrees with the general decoder on random register code, ${m64 ? 64 : 32}-bit`, () => {
      for (let seed = 1; seed <= 300; seed++) runBoth(m64, seed * 7919 + (m64 ? 1 : 0));
    });
  }

  it('takes the fast path for straight register code (fewer general steps)', () => {
    const code = program(prng(42), false);
    const cpu = machine(false, code, 42);
    let general = 0;
    const step = cpu.step.bind(cpu);
    cpu.step = (): void => {
      general++;
      step();
    };
    while (!cpu.halted) cpu.run(cpu.clock.now + 1_000_000);
    expect(general).toBeLessThan(cpu.instructionsRetired / 2);
  });
});
