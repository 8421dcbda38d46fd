/**
 * Self-checks of the native runner: hand-written cases whose results are known from the SDM, in
 * 64-bit mode and 32-bit compatibility mode. These run even while the emulator is a stub.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { blankCase, Reg, STACK_TOP } from './case-util.js';
import { NativeRunner } from './native.js';
import { Flag, Layout, RFLAGS_FIXED, toDiffResult } from './protocol.js';

const CODE = BigInt(Layout.codeAddr);
const DATA = BigInt(Layout.dataAddr);

describe.each([64, 32] as const)('native runner, %i-bit mode', (mode) => {
  let runner: NativeRunner;
  const mask = mode === 64 ? 0xffff_ffff_ffff_ffffn : 0xffff_ffffn;
  beforeAll(() => {
    runner = NativeRunner.create(mode);
  });

  it('reports its mode, layout and CPU vendor', () => {
    expect(runner.hello.mode).toBe(mode);
    expect(runner.hello.vendor).toHaveLength(12); // CPUID.0 vendor string, e.g. GenuineIntel
  });

  it('passes registers and arithmetic flags through empty code unchanged', () => {
    const c = blankCase(mode);
    c.regs = c.regs.map((_, i) =>
      i === Reg.SP ? BigInt(STACK_TOP) : (0x1111_2222_3333_4444n * BigInt(i + 1)) & mask,
    );
    c.rflags = RFLAGS_FIXED | Flag.CF | Flag.ZF | Flag.OF | Flag.DF;
    const r = runner.runOne(c);
    expect(r.status).toBe('done');
    expect(r.rip).toBe(CODE);
    expect(r.regs).toEqual(c.regs);
    expect(r.rflags & 0xcd5).toBe(Flag.CF | Flag.ZF | Flag.OF | Flag.DF);
  });

  it('executes add eax, ebx with the SDM result and flags', () => {
    const c = blankCase(mode, [0x01, 0xd8]); // add eax, ebx
    c.regs[Reg.AX] = mode === 64 ? 0xdead_beef_ffff_ffffn : 0xffff_ffffn;
    c.regs[Reg.BX] = 1n;
    const r = runner.runOne(c);
    expect(r.status).toBe('done');
    expect(r.regs[Reg.AX]).toBe(0n); // 32-bit result; in 64-bit mode the upper half is zeroed
    expect(r.rflags & (Flag.CF | Flag.ZF | Flag.SF | Flag.OF | Flag.AF | Flag.PF)).toBe(
      Flag.CF | Flag.ZF | Flag.AF | Flag.PF,
    );
    c.regs[Reg.AX] = 0x7fff_ffffn;
    const r2 = runner.runOne(c);
    expect(r2.regs[Reg.AX]).toBe(0x8000_0000n);
    expect(r2.rflags & (Flag.CF | Flag.ZF | Flag.SF | Flag.OF)).toBe(Flag.SF | Flag.OF);
  });

  it('decodes 0x40 as INC EAX only in 32-bit mode', () => {
    const c = blankCase(mode, mode === 64 ? [0x40, 0xff, 0xc0] : [0x40]); // 64: rex + inc eax
    c.regs[Reg.AX] = 41n;
    expect(runner.runOne(c).regs[Reg.AX]).toBe(42n);
  });

  it('reports #DE for DIV by zero with the RIP and registers at the fault', () => {
    const c = blankCase(mode, [0xff, 0xc3, 0x31, 0xd2, 0xf7, 0xf1]); // inc ebx; xor edx,edx; div ecx
    c.regs[Reg.AX] = 100n;
    c.regs[Reg.BX] = 7n;
    c.regs[Reg.DX] = 5n;
    const r = toDiffResult(runner.runOne(c));
    expect(r.fault).toMatchObject({ kind: 'DE', rip: CODE + 4n });
    expect(r.regs[Reg.BX]).toBe(8n);
    expect(r.regs[Reg.DX]).toBe(0n);
    expect(r.regs[Reg.AX]).toBe(100n);
  });

  it('reports #UD for UD2 and #BP (a trap: RIP after) for INT3', () => {
    expect(toDiffResult(runner.runOne(blankCase(mode, [0x90, 0x0f, 0x0b]))).fault).toMatchObject({
      kind: 'UD',
      rip: CODE + 1n,
    });
    expect(toDiffResult(runner.runOne(blankCase(mode, [0x90, 0xcc]))).fault).toMatchObject({
      kind: 'BP',
      rip: CODE + 2n,
    });
  });

  it('reports #PF with RIP and CR2 for a load just past the data window', () => {
    const c = blankCase(mode, [0x90, 0x8b, 0x03]); // nop; mov eax, [rbx]
    c.regs[Reg.BX] = DATA + BigInt(Layout.dataSize);
    const r = toDiffResult(runner.runOne(c));
    expect(r.fault).toMatchObject({ kind: 'PF', rip: CODE + 1n, addr: DATA + BigInt(Layout.dataSize) });
  });

  it('stores into the data window and pushes onto the stack window', () => {
    // mov [rbx+0x10], eax ; push rbx
    const c = blankCase(mode, [0x89, 0x43, 0x10, 0x53]);
    c.regs[Reg.AX] = 0x1234_5678n;
    c.regs[Reg.BX] = DATA + 0x100n;
    c.data[0x111] = 0xee;
    const r = runner.runOne(c);
    expect(r.status).toBe('done');
    expect(Array.from(r.data.subarray(0x110, 0x114))).toEqual([0x78, 0x56, 0x34, 0x12]);
    expect(r.data[0x100]).toBe(0);
    const w = mode / 8;
    expect(r.regs[Reg.SP]).toBe(BigInt(STACK_TOP - w));
    const off = STACK_TOP - Layout.stackAddr - w;
    expect(Buffer.from(r.stack.subarray(off, off + w)).readUIntLE(0, 4)).toBe(Number(DATA + 0x100n));
  });

  it('sets CF and DF with STC/STD and runs a batch in order', () => {
    const cases = [blankCase(mode, [0xf9]), blankCase(mode, [0xfd]), blankCase(mode, [0xf9, 0xf5])];
    const rs = runner.run(cases);
    expect(rs.map((r) => r.rflags & (Flag.CF | Flag.DF))).toEqual([Flag.CF, Flag.DF, 0]);
  });

  it('aborts a hanging case with the watchdog instead of hanging', () => {
    const rs = runner.run([blankCase(mode, [0xeb, 0xfe]), blankCase(mode, [0xf9])]); // jmp $
    expect(rs[0]?.status).toBe('timeout');
    expect(rs[1]?.status).toBe('done');
  });
});
