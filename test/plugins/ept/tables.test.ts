import { describe, expect, it } from 'vitest';
import { Bus } from '../../../src/core/bus.js';
import { VmmError } from '../../../src/core/errors.js';
import { EptMemType } from '../../../src/x86/ept.js';
import { EptBuilder, createPageAllocator } from '../../../plugins/ept/tables.js';
import { RAM_SIZE, TABLES, entryAt, setup } from './helpers.js';

// Table pages are handed out in order from TABLES: PML4, then PDPT, PD, PT as a first 4K map needs.
const PML4 = TABLES;
const PDPT = TABLES + 0x1000;
const PD = TABLES + 0x2000;
const PT = TABLES + 0x3000;
// Bits written as the SDM numbers them (Tables 28-1..28-6), independently of src/x86/ept.ts.
const R = 1n << 0n;
const W = 1n << 1n;
const X = 1n << 2n;
const mt = (t: number) => BigInt(t) << 3n;
const IPAT = 1n << 6n;
const PS = 1n << 7n;
const A = 1n << 8n;
const D = 1n << 9n;

describe('EPT table builder: raw entries', () => {
  it('writes a 4 KiB mapping as PML4E -> PDPTE -> PDE -> PTE with full rights on the way', () => {
    const { bus, tables } = setup();
    expect(tables.root).toBe(PML4);
    tables.map(0x5000, 0x12_3456_7000, 0x1000, {
      read: true,
      write: false,
      execute: true,
      memType: EptMemType.UC,
    });
    expect(entryAt(bus, PML4)).toBe(BigInt(PDPT) | R | W | X);
    expect(entryAt(bus, PDPT)).toBe(BigInt(PD) | R | W | X);
    expect(entryAt(bus, PD)).toBe(BigInt(PT) | R | W | X);
    expect(entryAt(bus, PT + 5 * 8)).toBe(0x12_3456_7000n | R | X | mt(0));
    // Nothing else in the PT.
    for (let i = 0; i < 512; i++) if (i !== 5) expect(entryAt(bus, PT + i * 8)).toBe(0n);
    expect(tables.tablePages).toBe(4);
  });

  it('encodes memory type, ignore-PAT, A and D bits', () => {
    const { bus, tables } = setup();
    tables.map(0x1000, 0x7000, 0x1000, {
      memType: EptMemType.WT,
      ignorePat: true,
      accessed: true,
      dirty: true,
    });
    expect(entryAt(bus, PT + 8)).toBe(0x7000n | R | W | X | mt(4) | IPAT | A | D);
    tables.map(0x2000, 0x8000, 0x1000, { write: false, execute: false, memType: EptMemType.WP });
    expect(entryAt(bus, PT + 16)).toBe(0x8000n | R | mt(5));
    tables.map(0x3000, 0x9000, 0x1000, { read: false, write: false, execute: true, memType: EptMemType.WC });
    expect(entryAt(bus, PT + 24)).toBe(0x9000n | X | mt(1));
  });

  it('indexes every level with the right bits of the GPA', () => {
    const { bus, tables } = setup();
    // PML4 index 1, PDPT index 2, PD index 3, PT index 4.
    const gpa = 1 * 2 ** 39 + 2 * 2 ** 30 + 3 * 2 ** 21 + 4 * 2 ** 12;
    tables.map(gpa, 0xabc000, 0x1000);
    expect(entryAt(bus, PML4 + 8)).toBe(BigInt(PDPT) | R | W | X);
    expect(entryAt(bus, PDPT + 16)).toBe(BigInt(PD) | R | W | X);
    expect(entryAt(bus, PD + 24)).toBe(BigInt(PT) | R | W | X);
    expect(entryAt(bus, PT + 32)).toBe(0xabc000n | R | W | X | mt(6));
    expect(tables.lookup(gpa + 0x123)).toMatchObject({
      hpa: 0xabc123,
      pageSize: '4K',
      entryAddress: PT + 32,
    });
  });

  it('writes 2 MiB and 1 GiB leaves with bit 7 in the PDE / PDPTE', () => {
    const { bus, tables } = setup();
    tables.map(0x4000_0000, 0x80_0000_0000 - 0x4000_0000, 0x4000_0000, { pageSize: '1G' });
    expect(entryAt(bus, PDPT + 8)).toBe(0x7f_c000_0000n | R | W | X | mt(6) | PS);
    tables.map(0x60_0000, 0x1_0020_0000, 0x40_0000, { pageSize: '2M', write: false });
    expect(entryAt(bus, PDPT)).toBe(BigInt(TABLES + 0x2000) | R | W | X);
    expect(entryAt(bus, PD + 3 * 8)).toBe(0x1_0020_0000n | R | X | mt(6) | PS);
    expect(entryAt(bus, PD + 4 * 8)).toBe(0x1_0040_0000n | R | X | mt(6) | PS);
    expect(tables.lookup(0x7f_fff0)).toMatchObject({ hpa: 0x1_003f_fff0, pageSize: '2M' });
    expect(tables.lookup(0x80_0000)).toMatchObject({ hpa: 0x1_0040_0000 });
    expect(tables.lookup(0x5f_ffff)).toBeUndefined();
    expect(tables.lookup(0xa0_0000)).toBeUndefined();
  });

  it("'auto' uses the largest pages alignment allows", () => {
    const { tables } = setup();
    // 4K up to 2 MiB, two 2M pages, then 4K again.
    tables.map(0x1f_e000, 0x3f_e000, 0x40_0000 + 0x4000, { pageSize: 'auto' });
    expect(tables.lookup(0x1f_e000)?.pageSize).toBe('4K');
    expect(tables.lookup(0x1f_f000)?.pageSize).toBe('4K');
    expect(tables.lookup(0x20_0000)?.pageSize).toBe('2M');
    expect(tables.lookup(0x40_0000)?.pageSize).toBe('2M');
    expect(tables.lookup(0x60_0000)?.pageSize).toBe('4K');
    expect(tables.lookup(0x60_1000)?.hpa).toBe(0x80_1000);
    expect(tables.lookup(0x60_2000)).toBeUndefined();
    // Misaligned host side: 4K pages only.
    tables.map(0x4000_0000, 0x1000, 0x20_0000, { pageSize: 'auto' });
    expect(tables.lookup(0x4000_0000)?.pageSize).toBe('4K');
  });

  it('unmap clears leaves, skips holes and refuses a partial large page', () => {
    const { bus, tables } = setup();
    tables.map(0, 0x10_0000, 0x4000);
    tables.map(0x20_0000, 0x40_0000, 0x20_0000, { pageSize: '2M' });
    tables.unmap(0x1000, 0x2000);
    expect(entryAt(bus, PT + 8)).toBe(0n);
    expect(entryAt(bus, PT + 16)).toBe(0n);
    expect(entryAt(bus, PT)).not.toBe(0n);
    expect(entryAt(bus, PT + 24)).not.toBe(0n);
    expect(() => tables.unmap(0x20_0000, 0x1000)).toThrow(/2M page at 0x200000 is only partly inside/);
    expect(tables.lookup(0x20_0000)).toBeDefined();
    tables.unmap(0, 0x40_0000 + 0x1000_0000); // holes everywhere else
    expect(tables.lookup(0)).toBeUndefined();
    expect(tables.lookup(0x20_0000)).toBeUndefined();
    expect(entryAt(bus, PD + 8)).toBe(0n);
  });
});

describe('EPT table builder: argument checks', () => {
  const cases: [string, (t: EptBuilder) => void, RegExp][] = [
    ['unaligned gpa', (t) => t.map(0x1800, 0x1000, 0x1000), /gpa is not 4 KiB-aligned/],
    ['unaligned hpa', (t) => t.map(0x1000, 0x1001, 0x1000), /hpa is not 4 KiB-aligned/],
    ['zero size', (t) => t.map(0x1000, 0x1000, 0), /size is not a positive multiple of 4 KiB/],
    ['odd size', (t) => t.map(0x1000, 0x1000, 0x1800), /size is not a positive multiple of 4 KiB/],
    ['negative', (t) => t.map(-4096, 0x1000, 0x1000), /gpa is not a non-negative integer/],
    ['2M misaligned', (t) => t.map(0x1000, 0, 0x20_0000, { pageSize: '2M' }), /must be multiples of 2M/],
    ['1G size', (t) => t.map(0, 0, 0x20_0000, { pageSize: '1G' }), /must be multiples of 1G/],
    ['write without read', (t) => t.map(0, 0, 0x1000, { read: false }), /write without read/],
    ['no access', (t) => t.map(0, 0, 0x1000, { read: false, write: false, execute: false }), /use unmap/],
    [
      'bad memory type',
      (t) => t.map(0, 0, 0x1000, { memType: 2 as EptMemType }),
      /memory type 2 is reserved/,
    ],
    [
      'beyond GPA space',
      (t) => t.map(2 ** 48 - 0x1000, 0, 0x2000),
      /beyond the 4-level guest-physical space/,
    ],
    ['beyond MAXPHYADDR', (t) => t.map(0, 2 ** 40 - 0x1000, 0x2000), /physical-address width \(40 bits\)/],
  ];
  it.each(cases)('%s', (_name, call, message) => {
    const { tables, bus } = setup();
    let err: unknown;
    try {
      call(tables);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VmmError);
    expect((err as VmmError).message).toMatch(message);
    expect((err as VmmError).message).toMatch(/^ept: (map|unmap) 0x/);
    // A refused call writes nothing: the PML4 is still empty.
    for (let i = 0; i < 512; i++) expect(entryAt(bus, PML4 + i * 8)).toBe(0n);
  });

  it('refuses overlaps unless replacing a leaf of the same size, and writes nothing when refused', () => {
    const { bus, tables } = setup();
    tables.map(0x3000, 0x5000, 0x1000);
    expect(() => tables.map(0x2000, 0x9000, 0x3000)).toThrow(/0x3000 overlaps a 4K mapping already present/);
    expect(entryAt(bus, PT + 16)).toBe(0n); // 0x2000 was not written either
    tables.map(0x3000, 0x9000, 0x1000, { replace: true, write: false });
    expect(entryAt(bus, PT + 24)).toBe(0x9000n | R | X | mt(6));
    expect(() => tables.map(0, 0, 0x20_0000, { pageSize: '2M', replace: true })).toThrow(
      /overlaps smaller mappings already present/,
    );
    tables.map(0x20_0000, 0, 0x20_0000, { pageSize: '2M' });
    expect(() => tables.map(0x20_1000, 0, 0x1000)).toThrow(/lies inside a 2M mapping already present/);
  });

  it('refuses page sizes the builder was not given, and execute-only when unsupported', () => {
    const bus = new Bus('host');
    bus.addRam('ram', 0, RAM_SIZE);
    const t = new EptBuilder(bus, createPageAllocator(bus, TABLES, 0x4000), {
      pageSizes: ['4K', '2M'],
      executeOnly: false,
      owner: 'rvm-tutorial',
    });
    expect(() => t.map(0, 0, 0x4000_0000, { pageSize: '1G' })).toThrow(
      /^rvm-tutorial: map .*1G pages are not enabled/,
    );
    expect(() => t.map(0, 0, 0x1000, { read: false, write: false })).toThrow(/execute-only translations/);
  });

  it('page allocator: RAM-only region, zeroed pages, a clear error when full', () => {
    const bus = new Bus('host');
    bus.addRam('ram', 0, 0x10000);
    expect(() => createPageAllocator(bus, 0x8000, 0x10000)).toThrow(/not wholly in one RAM region of host/);
    expect(() => createPageAllocator(bus, 0x8100, 0x1000)).toThrow(/not a 4 KiB-aligned address/);
    expect(() => createPageAllocator(bus, 0x8000, 0x800)).toThrow(/not a positive multiple of 4 KiB/);
    bus.write(0x9008, 4, 0xdeadbeef);
    const a = createPageAllocator(bus, 0x8000, 0x2000);
    expect(a.alloc()).toBe(0x8000);
    expect(a.alloc()).toBe(0x9000);
    expect(bus.read(0x9008, 4)).toBe(0);
    expect(a.used).toBe(2);
    expect(() => a.alloc()).toThrow(/table region 0x8000\+0x2000 is full \(2 pages\)/);
    // A builder that runs out of table pages mid-map fails cleanly with the same message.
    const t = new EptBuilder(bus, createPageAllocator(bus, 0, 0x2000));
    expect(() => t.map(0, 0, 0x1000)).toThrow(/is full/);
  });

  it('EPTP: root, walk length, memory type and A/D bit', () => {
    const { tables } = setup();
    expect(tables.eptp()).toBe(PML4 | (3 << 3) | 6 | (1 << 6));
    expect(tables.eptp({ memType: EptMemType.UC, accessDirty: false })).toBe(PML4 | (3 << 3));
    expect(() => tables.eptp({ memType: EptMemType.WT as 0 })).toThrow(/neither UC \(0\) nor WB \(6\)/);
    expect(() => tables.eptp({ walkLength: 5 })).toThrow(/does not match the 4-level tables/);
  });
});
