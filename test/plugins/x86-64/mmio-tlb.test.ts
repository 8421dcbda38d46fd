/**
 * Cached translations to device pages (core.ts mmioTagR/mmioTagW): a polled device register must
 * not cost a page walk per access, and the cache must follow the rules of the RAM TLB: dropped by
 * INVLPG and CR3 loads, never used for a user access or a write the mapping does not allow.
 */
import { describe, expect, it } from 'vitest';
import { Bus } from '../../../src/core/bus.js';
import { VirtualClock } from '../../../src/core/clock.js';
import { CR0 } from '../../../src/x86/regs.js';
import { FAULT } from '../../../plugins/x86-64/core.js';
import { X86_64 } from '../../../plugins/x86-64/cpu.js';

const DEV_A = 0xfed00000;
const DEV_B = 0xfee00000;
const LIN = 0x400000;

function machine() {
  const bus = new Bus('mmio-tlb');
  const region = bus.addRam('ram', 0, 0x100000);
  const accesses: string[] = [];
  for (const [name, base] of [
    ['a', DEV_A],
    ['b', DEV_B],
  ] as const) {
    bus.addMmio(name, base, 0x1000, {
      mmioRead: (off, size) => {
        accesses.push(`${name} r${size} ${off.toString(16)}`);
        return name === 'a' ? 0xaaaa0000 + off : 0xbbbb0000 + off;
      },
      mmioWrite: (off, size, v) =>
        void accesses.push(`${name} w${size} ${off.toString(16)}=${v.toString(16)}`),
    });
  }
  const cpu = new X86_64(bus, new VirtualClock());
  cpu.reset();
  cpu.enterFlat32(0);
  // 32-bit paging: page directory at 0x1000, one table at 0x2000 for 0x400000..0x7fffff.
  const pte = (lin: number, v: number) =>
    new DataView(region.data.buffer).setUint32(0x2000 + ((lin >>> 12) & 0x3ff) * 4, v, true);
  new DataView(region.data.buffer).setUint32(0x1000 + (LIN >>> 22) * 4, 0x2000 | 0x7, true);
  pte(LIN, DEV_A | 0x1); // present, read-only, supervisor
  pte(LIN + 0x1000, DEV_B | 0x3 | 0x40); // present, writable, supervisor, dirty
  cpu.cr3 = 0x1000;
  cpu.cr0 |= CR0.PG | CR0.WP;
  cpu.updateMode();
  cpu.flushTlb();
  return { bus, cpu, accesses, pte };
}

function pageFault(fn: () => void): number {
  try {
    fn();
  } catch (e) {
    if (e !== FAULT) throw e;
    return 14;
  }
  return -1;
}

describe('x86-64 translations to device pages', () => {
  it('a polled register walks the page tables once; INVLPG and CR3 loads drop the entry', () => {
    const { cpu, accesses, pte } = machine();
    const misses = () => cpu.counters.tlbMisses;
    expect(cpu.readN(LIN + 0xf0, 4) >>> 0).toBe(0xaaaa00f0);
    const after = misses();
    for (let k = 0; k < 10; k++) expect(cpu.readN(LIN + 0xf0, 4) >>> 0).toBe(0xaaaa00f0);
    expect(misses()).toBe(after);
    expect(accesses).toHaveLength(11); // every read reaches the device
    pte(LIN, DEV_B | 0x1);
    expect(cpu.readN(LIN + 0xf0, 4) >>> 0).toBe(0xaaaa00f0); // stale until invalidated, as on hardware
    cpu.flushTlbPage(LIN);
    expect(cpu.readN(LIN + 0xf0, 4) >>> 0).toBe(0xbbbb00f0);
    pte(LIN, DEV_A | 0x1);
    cpu.flushTlb(); // MOV to CR3
    expect(cpu.readN(LIN + 0xf0, 4) >>> 0).toBe(0xaaaa00f0);
  });

  it('a read entry never lets a write through a read-only mapping (CR0.WP) nor a user access in', () => {
    const { cpu, accesses } = machine();
    cpu.readN(LIN, 4);
    cpu.readN(LIN, 4);
    expect(pageFault(() => cpu.writeN(LIN, 4, 1, 0))).toBe(14);
    expect(cpu.fErr & 0x3).toBe(0x3); // present, write
    expect(accesses.filter((a) => a.includes(' w'))).toEqual([]);
    cpu.setCpl(3);
    expect(pageFault(() => cpu.readN(LIN, 4))).toBe(14);
    expect(cpu.fErr & 0x5).toBe(0x5); // present, user
  });

  it('writes to a writable, dirty device page are cached and reach the device, 8 bytes as two dwords', () => {
    const { cpu, accesses } = machine();
    cpu.writeN(LIN + 0x1000 + 0x10, 4, 0x1234, 0);
    const after = cpu.counters.tlbMisses;
    cpu.writeN(LIN + 0x1000 + 0x10, 8, 0x5678, 0x9abc);
    expect(cpu.counters.tlbMisses).toBe(after);
    expect(accesses).toEqual(['b w4 10=1234', 'b w4 10=5678', 'b w4 14=9abc']);
  });
});
