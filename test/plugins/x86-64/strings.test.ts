/**
 * REP MOVS/STOS: the page-chunked fast path must give the element-by-element result, including
 * the pattern an overlapping forward MOVSB produces, across page boundaries and at the end.
 */
import { describe, expect, it } from 'vitest';
import { assemble, load, testMachine } from './helpers.js';

function run(src: string) {
  const m = testMachine();
  load(m, 0x100000, assemble('.code32\n' + src + '\n out 0xeb, al\n', 0x100000));
  m.cpu.setEntry({ mode: 'protected', ip: 0x100000 });
  m.run(100_000_000);
  expect(m.done).toBe(true);
  return m;
}

describe('x86-64 REP string instructions', () => {
  it('REP STOSD fills across pages and updates EDI and ECX', () => {
    const m = run('cld\n mov edi, 0x200ffe\n mov eax, 0x11223344\n mov ecx, 3000\n rep stosd');
    expect(m.cpu.rl[7] >>> 0).toBe(0x200ffe + 12000);
    expect(m.cpu.rl[1]).toBe(0);
    expect([...m.ram.subarray(0x200ffe, 0x201006)]).toEqual([0x44, 0x33, 0x22, 0x11, 0x44, 0x33, 0x22, 0x11]);
    expect([...m.ram.subarray(0x200ffe + 11996, 0x200ffe + 12001)]).toEqual([0x44, 0x33, 0x22, 0x11, 0]);
  });

  it('REP MOVSB copies 10000 bytes across pages', () => {
    const m = testMachine();
    for (let i = 0; i < 10000; i++) m.ram[0x300100 + i] = (i * 7) & 0xff;
    load(
      m,
      0x100000,
      assemble(
        '.code32\n cld\n mov esi, 0x300100\n mov edi, 0x310ff0\n mov ecx, 10000\n rep movsb\n out 0xeb, al\n',
        0x100000,
      ),
    );
    m.cpu.setEntry({ mode: 'protected', ip: 0x100000 });
    m.run(100_000_000);
    expect(m.ram.subarray(0x310ff0, 0x310ff0 + 10000)).toEqual(m.ram.subarray(0x300100, 0x300100 + 10000));
    expect(m.cpu.rl[6] >>> 0).toBe(0x300100 + 10000);
  });

  it('an overlapping forward REP MOVSB replicates its first bytes', () => {
    const m = testMachine();
    m.ram.set([1, 2, 3], 0x300000);
    load(
      m,
      0x100000,
      assemble(
        '.code32\n cld\n mov esi, 0x300000\n mov edi, 0x300003\n mov ecx, 9\n rep movsb\n out 0xeb, al\n',
        0x100000,
      ),
    );
    m.cpu.setEntry({ mode: 'protected', ip: 0x100000 });
    m.run(100_000_000);
    expect([...m.ram.subarray(0x300000, 0x30000c)]).toEqual([1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]);
  });

  it('REP STOSB backwards (DF=1) fills downwards', () => {
    const m = run('std\n mov edi, 0x200010\n mov al, 0xab\n mov ecx, 0x20\n rep stosb\n cld');
    expect(m.cpu.rl[7] >>> 0).toBe(0x200010 - 0x20);
    expect(m.ram[0x1ffff1]).toBe(0xab);
    expect(m.ram[0x1ffff0]).toBe(0);
    expect(m.ram[0x200010]).toBe(0xab);
  });
});
