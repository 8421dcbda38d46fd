/**
 * The walker behind the real CPU's second-stage hook, the way the vmx plugin connects it: a 32-bit
 * paged guest whose page tables, code and data all go through EPT. Checks what the guest computes,
 * the EPT A/D flags its accesses leave (guest paging-structure accesses count as writes), and the
 * violations a store and a guest page walk cause.
 */
import { describe, expect, it } from 'vitest';
import { Bus } from '../../../src/core/bus.js';
import { VirtualClock } from '../../../src/core/clock.js';
import type { NestedPagingViolation } from '../../../src/core/nested-paging.js';
import { Ept } from '../../../plugins/ept/ept.js';
import { X86_64 } from '../../../plugins/x86-64/index.js';
import { FEATURES } from './helpers.js';

const GUEST_RAM = 0x40_0000; // GPA x is HPA GUEST_RAM + x
const CODE = 0x1000;
const DATA = 0x2000;
const PDIR = 0x3000;
const PTAB = 0x4000;

function machine() {
  const bus = new Bus('host');
  bus.addRam('ram', 0, 0x100_0000);
  const ept = new Ept(bus, FEATURES);
  const tables = ept.createTables(0x10_0000, 0x1_0000);
  tables.map(0, GUEST_RAM, 0x1_0000);
  const eptp = tables.eptp();
  const cpu = new X86_64(bus, new VirtualClock());
  ept.connectTlb(() => cpu.flushTlb());
  const violations: NestedPagingViolation[] = [];
  cpu.hooks.translate = (r) => {
    const h = ept.translate(eptp, r);
    if (h < 0) {
      violations.push({ ...ept.lastViolation });
      cpu.requestExit(); // where vmx would perform the VM exit
    }
    return h;
  };
  const host = (gpa: number) => GUEST_RAM + gpa;
  // Guest 32-bit paging: one page table, linear = guest-physical for the first 16 pages.
  bus.write(host(PDIR), 4, PTAB | 3);
  for (let i = 0; i < 16; i++) bus.write(host(PTAB + i * 4), 4, (i << 12) | 3);
  // mov eax, [DATA]; mov [DATA+4], eax; hlt
  bus.writeBytes(host(CODE), Uint8Array.of(0xa1, 0x00, 0x20, 0, 0, 0xa3, 0x04, 0x20, 0, 0, 0xf4));
  bus.write(host(DATA), 4, 0x1234_5678);
  const start = () => {
    cpu.reset();
    cpu.enterFlat32(CODE);
    const st = cpu.getState();
    st.cr0 |= 0x8000_0000n;
    st.cr3 = BigInt(PDIR);
    cpu.setState(st);
    cpu.run(1_000_000);
  };
  const ad = (gpa: number) => {
    const e = tables.lookup(gpa)!.entry;
    return `${e & 0x100n ? 'A' : '-'}${e & 0x200n ? 'D' : '-'}`;
  };
  return { bus, ept, tables, eptp, cpu, violations, host, start, ad };
}

describe('EPT under the x86-64 CPU', () => {
  it('runs a paged guest through EPT and leaves the A/D flags its accesses imply', () => {
    const m = machine();
    m.start();
    expect(m.violations).toEqual([]);
    expect(m.cpu.halted).toBe(true);
    expect(m.cpu.getState().gpr[0]).toBe(0x1234_5678n);
    expect(m.bus.read(m.host(DATA + 4), 4)).toBe(0x1234_5678);
    // The guest's own A/D bits landed in host memory through EPT.
    expect(m.bus.read(m.host(PTAB + 2 * 4), 4)).toBe(DATA | 0x63);
    expect(m.ad(CODE)).toBe('A-');
    expect(m.ad(DATA)).toBe('AD');
    expect(m.ad(PDIR)).toBe('AD');
    expect(m.ad(PTAB)).toBe('AD');
    expect(m.ad(0x5000)).toBe('--');
  });

  it('a store to a read-only page: an EPT violation on the store, nothing written', () => {
    const m = machine();
    m.tables.map(DATA, m.host(DATA), 0x1000, { write: false, replace: true });
    m.ept.invept(1, m.eptp);
    m.start();
    expect(m.violations).toEqual([
      {
        gpa: DATA + 4,
        qualification: 0b10 | (0b101 << 3) | (1 << 7) | (1 << 8),
        misconfig: false,
        linear: DATA + 4,
      },
    ]);
    expect(m.cpu.halted).toBe(false);
    expect(m.cpu.getState().rip).toBe(BigInt(CODE + 5));
    expect(m.bus.read(m.host(DATA + 4), 4)).toBe(0);
  });

  it('a guest page-table page not mapped: a violation on the walk (bits 0, 1, 7; not 8)', () => {
    const m = machine();
    m.tables.unmap(PTAB, 0x1000);
    m.ept.invept(2, 0);
    m.start();
    expect(m.violations[0]).toEqual({
      gpa: PTAB + (CODE >> 12) * 4,
      qualification: 0b11 | (1 << 7),
      misconfig: false,
      linear: CODE,
    });
  });
});
