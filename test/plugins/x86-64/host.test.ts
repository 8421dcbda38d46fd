/**
 * Instruction forms the generated differential suite does not cover yet, checked against the host
 * CPU with the same native runner: BCD adjustments and friends (32-bit mode only), and string
 * instructions with REP prefixes, both directions and both address sizes. Fixed seeds.
 */
import { describe, expect, it } from 'vitest';
import { blankCase } from '../../cpu/diff/case-util.js';
import { compareResults } from '../../cpu/diff/compare.js';
import { emulate } from '../../cpu/diff/emulator-impl.js';
import { NativeRunner } from '../../cpu/diff/native.js';
import { toDiffResult } from '../../cpu/diff/protocol.js';

function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

const ARITH = 0x8d5;

describe('x86-64 vs host CPU: forms outside the generator', () => {
  it('BCD, AAM/AAD, SALC, PUSHA/POPA, XLAT, RCL/RCR (32-bit mode)', { timeout: 120_000 }, () => {
    const runner = NativeRunner.create(32);
    const rnd = prng(7);
    // [name, bytes, compared flags: the SDM-defined ones]
    const forms: [string, number[], number][] = [
      ['daa', [0x27], 0x0d5],
      ['das', [0x2f], 0x0d5],
      ['aaa', [0x37], 0x011],
      ['aas', [0x3f], 0x011],
      ['aam 10', [0xd4, 0x0a], 0x0c4],
      ['aam 7', [0xd4, 0x07], 0x0c4],
      ['aad 10', [0xd5, 0x0a], 0x0c4],
      ['salc', [0xd6], 0],
      ['pusha; popa', [0x60, 0x61], ARITH],
      ['xlat', [0xd7], 0],
      ['rcl al, cl', [0xd2, 0xd0], 0x001],
      ['rcr ax, cl', [0x66, 0xd3, 0xd8], 0x001],
    ];
    const bad: string[] = [];
    for (const [name, code, flags] of forms) {
      for (let k = 0; k < 150; k++) {
        const c = blankCase(32, code);
        c.regs[0] = BigInt(rnd());
        c.regs[1] = BigInt(rnd());
        c.regs[3] = BigInt(0x20000000 + (rnd() % 4000));
        c.rflags = 0x202 | (rnd() & 0xcd5);
        const d = compareResults(
          c,
          { compareFlags: flags, regUndef: new Map() },
          toDiffResult(runner.runOne(c)),
          emulate(c),
        );
        if (d.length > 0) bad.push(`${name} eax=${c.regs[0]!.toString(16)}: ${JSON.stringify(d)}`);
      }
    }
    expect(bad.slice(0, 5)).toEqual([]);
  });

  for (const mode of [64, 32] as const) {
    it(`string instructions with REP, ${mode}-bit mode`, { timeout: 120_000 }, () => {
      const runner = NativeRunner.create(mode);
      const rnd = prng(mode);
      const forms: [string, number[]][] = [
        ['rep movsb', [0xf3, 0xa4]],
        ['rep movsd', [0xf3, 0xa5]],
        ['rep stosb', [0xf3, 0xaa]],
        ['rep stosw', [0xf3, 0x66, 0xab]],
        ['repne scasb', [0xf2, 0xae]],
        ['repe cmpsb', [0xf3, 0xa6]],
        ['repe cmpsd', [0xf3, 0xa7]],
        ['repne scasw', [0x66, 0xf2, 0xaf]],
        ['lodsd', [0xad]],
        ['movsw', [0x66, 0xa5]],
        ['addr32/16 rep movsb', [0x67, 0xf3, 0xa4]],
      ];
      if (mode === 64) forms.push(['rep movsq', [0xf3, 0x48, 0xa5]], ['rep stosq', [0xf3, 0x48, 0xab]]);
      const bad: string[] = [];
      for (const [name, code] of forms) {
        for (let k = 0; k < 80; k++) {
          const c = blankCase(mode, code);
          for (let i = 0; i < c.data.length; i++) c.data[i] = rnd() & 1 ? 0x41 : rnd() & 0xff;
          c.regs[0] = BigInt(rnd() & 1 ? 0x41414141 : rnd());
          c.regs[1] = BigInt(rnd() % 40);
          c.regs[6] = BigInt(c.dataAddr + 1000 + (rnd() % 2000));
          c.regs[7] = BigInt(c.dataAddr + 1000 + (rnd() % 2000));
          c.rflags = 0x202 | (rnd() & 0xcd5);
          const d = compareResults(
            c,
            { compareFlags: 0xcd5, regUndef: new Map() },
            toDiffResult(runner.runOne(c)),
            emulate(c),
          );
          if (d.length > 0) bad.push(`${name}: ${JSON.stringify(d)}`);
        }
      }
      expect(bad.slice(0, 5)).toEqual([]);
    });
  }
});
