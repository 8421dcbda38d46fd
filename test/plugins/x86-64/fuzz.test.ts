/**
 * Random bytes never make the CPU throw a host exception: every encoding either executes or
 * raises a guest exception (user mode, 64-bit and compatibility mode, through the differential
 * adapter's machine; kernel-mode real and protected mode on a bare machine). Fixed seed.
 */
import { describe, expect, it } from 'vitest';
import { blankCase } from '../../cpu/diff/case-util.js';
import { emulate } from '../../cpu/diff/emulator-impl.js';
import { testMachine } from './helpers.js';

function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

describe('x86-64 fuzz: random code', () => {
  for (const mode of [64, 32] as const) {
    it(`user mode, ${mode}-bit: no host exception`, () => {
      const rnd = prng(0x1234 + mode);
      for (let n = 0; n < 3000; n++) {
        const code = Array.from({ length: 24 }, () => rnd() & 0xff);
        const c = blankCase(mode, code);
        c.regs = c.regs.map((r, i) =>
          i === 4 ? r : BigInt(rnd() % 5 === 0 ? c.dataAddr + (rnd() & 0xfff) : rnd()),
        );
        expect(() => emulate(c)).not.toThrow();
      }
    });
  }

  it('supervisor real and protected mode: no host exception', () => {
    const rnd = prng(99);
    for (let n = 0; n < 300; n++) {
      const m = testMachine({ ramSize: 0x100000 });
      for (let i = 0x8000; i < 0x8100; i++) m.ram[i] = rnd() & 0xff;
      if (n & 1) m.cpu.setEntry({ mode: 'protected', ip: 0x8000 });
      else m.cpu.setEntry({ mode: 'real', ip: 0x8000 });
      for (let r = 0; r < 8; r++) if (r !== 4) m.cpu.rl[r] = rnd();
      expect(() => m.run(200)).not.toThrow();
    }
  });
});
