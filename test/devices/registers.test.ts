import { describe, expect, it } from 'vitest';
import { RegisterBank, type RegisterSpec } from '../../src/devices/registers.js';

function bank(extra: RegisterSpec[] = []) {
  const warnings: string[] = [];
  const writes: [number, number][] = [];
  let counter = 0x1234_5678;
  const specs: RegisterSpec[] = [
    { name: 'CTRL', offset: 0x0, width: 4, access: 'rw', reset: 0x8000_0001 },
    {
      name: 'STS',
      offset: 0x4,
      width: 4,
      access: 'w1c',
      reset: 0xf0,
    },
    { name: 'ID', offset: 0x8, width: 4, access: 'ro', reset: 0xabcd_0001 },
    { name: 'CNT', offset: 0xc, width: 4, access: 'ro', onRead: () => counter },
    { name: 'EVT', offset: 0x10, width: 2, access: 'rc', reset: 0x5 },
    { name: 'CMD', offset: 0x14, width: 4, access: 'wo', onWrite: (v, p) => writes.push([v, p]) },
    {
      name: 'MIX',
      offset: 0x18,
      width: 4,
      access: 'rw',
      fields: [
        { name: 'STAT', lsb: 0, width: 4, access: 'w1c' },
        { name: 'VER', lsb: 28, width: 4, access: 'ro' },
      ],
      reset: 0x2000_000f,
    },
    { name: 'MASKED', offset: 0x1c, width: 1, access: 'rw', writeMask: 0x0f },
    { name: 'TODO', offset: 0x20, width: 4, access: 'rw', unimplemented: 'power gating' },
    ...extra,
  ];
  const b = new RegisterBank('dev', 0x40, specs, (m) => warnings.push(m));
  return { b, warnings, writes, setCounter: (v: number) => (counter = v) };
}

describe('RegisterBank', () => {
  it('resets every register to its declared value', () => {
    const { b } = bank();
    b.write(0, 4, 0);
    expect(b.read(0, 4)).toBe(0);
    b.reset();
    expect(b.read(0x0, 4)).toBe(0x8000_0001);
    expect(b.read(0x4, 4)).toBe(0xf0);
    expect(b.read(0x8, 4)).toBe(0xabcd_0001);
  });

  it('reads and merges narrow accesses at their byte lane', () => {
    const { b } = bank();
    b.write(0, 4, 0x1122_3344);
    expect(b.read(1, 1)).toBe(0x33);
    expect(b.read(2, 2)).toBe(0x1122);
    b.write(3, 1, 0xaa);
    expect(b.read(0, 4)).toBe(0xaa22_3344);
    b.write(0, 2, 0xbeef);
    expect(b.read(0, 4)).toBe(0xaa22_beef);
  });

  it('applies the access kinds', () => {
    const { b, writes } = bank();
    b.write(0x8, 4, 0); // ro
    expect(b.read(0x8, 4)).toBe(0xabcd_0001);
    b.write(0x4, 4, 0x30); // w1c
    expect(b.read(0x4, 4)).toBe(0xc0);
    expect(b.read(0x10, 2)).toBe(5); // rc
    expect(b.read(0x10, 2)).toBe(0);
    b.write(0x14, 4, 0x77); // wo: the hook sees the value, reads give 0
    expect(writes).toEqual([[0x77, 0]]);
    expect(b.read(0x14, 4)).toBe(0);
    b.write(0x1c, 1, 0xff);
    expect(b.read(0x1c, 1)).toBe(0x0f);
  });

  it('honours field access kinds inside a rw register', () => {
    const { b } = bank();
    b.write(0x18, 4, 0xf000_0305); // VER is ro, STAT bits 0 and 2 cleared, bits 8-9 set
    expect(b.read(0x18, 4)).toBe(0x2000_030a);
  });

  it('returns computed values from onRead', () => {
    const { b, setCounter } = bank();
    expect(b.read(0xc, 4)).toBe(0x1234_5678);
    setCounter(7);
    expect(b.read(0xc, 4)).toBe(7);
    expect(b.read(0xd, 1)).toBe(0);
  });

  it('logs unimplemented and undefined accesses once and counts them', () => {
    const { b, warnings } = bank();
    b.write(0x20, 4, 1);
    b.read(0x20, 4);
    expect(b.stats.unimplementedAccesses).toBe(2);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('TODO');
    expect(warnings[0]).toContain('power gating');
    expect(b.read(0x30, 4)).toBe(0xffff_ffff);
    expect(b.read(0x30, 1)).toBe(0xff);
    b.write(0x30, 4, 1);
    expect(b.stats.undefinedAccesses).toBe(3);
    expect(warnings).toHaveLength(2);
    // straddling two registers is undefined too
    expect(b.read(0x12, 4)).toBe(0xffff_ffff);
  });

  it('rejects overlapping or misaligned declarations', () => {
    expect(() => bank([{ name: 'BAD', offset: 0x2, width: 2, access: 'rw' }])).toThrow(/overlaps CTRL/);
    expect(() => bank([{ name: 'ODD', offset: 0x25, width: 2, access: 'rw' }])).toThrow(/misaligned/);
  });
});
