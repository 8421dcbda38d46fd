/**
 * The comparator and minimizer, exercised with "emulators" built from the host CPU's own results
 * (exact, or deliberately wrong), so these checks run before the real emulator exists.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { blankCase, Reg } from './case-util.js';
import { check, compareResults, minimize, report } from './compare.js';
import type { DiffCase, DiffResult, Emulate } from './emulator-adapter.js';
import { FORMS } from './forms.js';
import { buildCase } from './generator.js';
import { NativeRunner } from './native.js';
import { ARITH_FLAGS, Flag, toDiffResult } from './protocol.js';

describe('comparator and minimizer', () => {
  let runner: NativeRunner;
  let exact: Emulate;
  beforeAll(() => {
    runner = NativeRunner.create(64);
    exact = (c: DiffCase): DiffResult => toDiffResult(runner.runOne(c));
  });
  const all = { compareFlags: ARITH_FLAGS, regUndef: new Map<number, bigint>() };

  it('finds no difference against the host itself, and one for a flipped flag, register or byte', () => {
    const c = blankCase(64, [0x01, 0xd8, 0x89, 0x43, 0x08]); // add eax, ebx ; mov [rbx+8], eax
    c.regs[Reg.AX] = 0x7fff_ffffn;
    c.regs[Reg.BX] = 0x2000_0100n;
    expect(check(runner, exact, c, all)).toEqual([]);
    const n = exact(c);
    const flipped = { ...n, rflags: n.rflags ^ Flag.OF };
    expect(compareResults(c, all, n, flipped).map((d) => d.field)).toEqual([
      expect.stringContaining('RFLAGS'),
    ]);
    const badReg = { ...n, regs: n.regs.map((v, i) => (i === Reg.AX ? v ^ 1n : v)) };
    expect(compareResults(c, all, n, badReg).map((d) => d.field)).toEqual(['RAX']);
    const data = n.data.slice();
    data[0x108] ^= 0xff;
    expect(compareResults(c, all, n, { ...n, data }).map((d) => d.field)).toEqual(['data[0x20000108]']);
    const fault = { ...n, fault: { kind: 'PF' as const, rip: 0x1000_0002n } };
    expect(compareResults(c, all, n, fault).map((d) => d.field)).toEqual(['exception']);
  });

  it('masks exactly the flags the form table leaves undefined (MUL: SF ZF AF PF)', () => {
    const mul = FORMS.find((f) => f.name === 'mul r/m')!;
    const g = buildCase(64, mul, 32, 7, 0);
    const n = toDiffResult(runner.runOne(g.case));
    const undefFlipped = { ...n, rflags: n.rflags ^ (Flag.SF | Flag.ZF | Flag.AF | Flag.PF) };
    expect(compareResults(g.case, g, n, undefFlipped)).toEqual([]);
    expect(compareResults(g.case, g, n, { ...n, rflags: n.rflags ^ Flag.CF })).toHaveLength(1);
  });

  it('shrinks a failing case toward zeros and ones and reports it readably', () => {
    // A fake CPU whose ADD gets bit 0 wrong when EBX is odd.
    const buggy: Emulate = (c) => {
      const r = exact(c);
      if ((c.regs[Reg.BX]! & 1n) === 1n) r.regs[Reg.AX] = r.regs[Reg.AX]! ^ 1n;
      return r;
    };
    const c = blankCase(64, [0x01, 0xd8]);
    c.regs = c.regs.map((v, i) => (i === Reg.SP ? v : 0x1234_5678_9abc_def1n + BigInt(i) * 2n));
    c.rflags |= Flag.CF | Flag.SF;
    c.data.fill(0x5a, 0x100, 0x200);
    const small = minimize(runner, buggy, c, all);
    small.regs.forEach((v, i) => {
      if (i !== Reg.SP) expect(v <= 1n, `reg ${i} = ${v}`).toBe(true);
    });
    expect(small.regs[Reg.BX]).toBe(1n);
    expect(small.data.every((x) => x === 0)).toBe(true);
    expect(small.rflags & ARITH_FLAGS).toBe(0);
    const diffs = check(runner, buggy, small, all);
    const g = buildCase(64, FORMS[0]!, 32, 1, 0);
    const text = report(g, small, exact(small), buggy(small), diffs, 1234);
    expect(text).toContain('VMM_DIFF_SEED=1234');
    expect(text).toMatch(/add\s+eax,\s*ebx/);
    expect(text).toContain('>> RAX');
  });
});
