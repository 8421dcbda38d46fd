import { describe, expect, it } from 'vitest';
import { EptMemType } from '../../../src/x86/ept.js';
import { TABLES, entryAt, req, setup } from './helpers.js';

const PML4 = TABLES;
const PDPT = TABLES + 0x1000;
const PD = TABLES + 0x2000;
const PT = TABLES + 0x3000;
// Exit-qualification bits as SDM Table 28-7 numbers them.
const Q_READ = 1 << 0;
const Q_WRITE = 1 << 1;
const Q_FETCH = 1 << 2;
const Q_PERM = (rwx: number) => rwx << 3;
const Q_LINEAR_VALID = 1 << 7;
const Q_TRANSLATION = 1 << 8;
const A = 1n << 8n;
const D = 1n << 9n;

/** Set bits in the low dword of the 64-bit entry at `addr`. */
function setBits(
  bus: ReturnType<typeof setup>['bus'],
  addr: number,
  orLo: number,
  orHi = 0,
  andLo = -1,
): void {
  bus.write(addr, 4, ((bus.read(addr, 4) & andLo) | orLo) >>> 0);
  bus.write(addr + 4, 4, (bus.read(addr + 4, 4) | orHi) >>> 0);
}

describe('EPT walk: translations', () => {
  it('translates 4K, 2M and 1G pages with the page offset, above 4 GiB too', () => {
    const { ept, tables } = setup();
    tables.map(0x7000, 0x3_0000_5000, 0x1000, { memType: EptMemType.UC, ignorePat: true });
    tables.map(0x40_0000, 0x5_0060_0000, 0x20_0000, { pageSize: '2M' });
    tables.map(0x8000_0000, 0x40_0000_0000 - 0x4000_0000, 0x4000_0000, {
      pageSize: '1G',
      memType: EptMemType.WT,
    });
    const eptp = tables.eptp();
    expect(ept.translate(eptp, req(0x7abc))).toBe(0x3_0000_5abc);
    expect(ept.last).toEqual({ memType: 0, ignorePat: true, perms: 7, pageBytes: 0x1000 });
    expect(ept.translate(eptp, req(0x5f_fffe, { write: true }))).toBe(0x5_007f_fffe);
    expect(ept.last).toMatchObject({ memType: 6, ignorePat: false, pageBytes: 0x20_0000 });
    expect(ept.translate(eptp, req(0xbfff_f001, { fetch: true }))).toBe(0x3f_ffff_f001);
    expect(ept.last).toMatchObject({ memType: 4, pageBytes: 0x4000_0000 });
    // The same answers from the cache, and with the cache off.
    expect(ept.translate(eptp, req(0x7abd))).toBe(0x3_0000_5abd);
    expect(ept.stats.cacheHits).toBe(1);
    const off = setup({ cacheEntries: 0 });
    off.tables.map(0x40_0000, 0x5_0060_0000, 0x20_0000, { pageSize: '2M' });
    expect(off.ept.translate(off.tables.eptp(), req(0x5f_fffe))).toBe(0x5_007f_fffe);
    expect(off.ept.translate(off.tables.eptp(), req(0x5f_fffe))).toBe(0x5_007f_fffe);
    expect(off.ept.stats.walks).toBe(2);
  });

  it('walks 5-level tables where supported, and not otherwise', () => {
    const s = setup({ walkLength5: true });
    const t5 = s.ept.createTables(TABLES + 0x8_0000, 0x8_0000, { walkLength: 5 });
    const gpa = 3 * 2 ** 48 + 0x1234_5000;
    t5.map(gpa, 0x77_0000, 0x1000);
    const eptp = t5.eptp();
    expect(eptp).toBe(TABLES + 0x8_0000 + (4 << 3) + 6 + 0x40);
    expect(s.ept.translate(eptp, req(gpa + 0x10, { write: true }))).toBe(0x77_0010);
    // PML5E index 3 -> PML4E index 0 -> ... -> PTE.
    expect(entryAt(s.bus, TABLES + 0x8_0000 + 3 * 8) & 0xfff_ffff_f000n).toBe(BigInt(TABLES + 0x8_1000));
    expect(entryAt(s.bus, TABLES + 0x8_0000 + 3 * 8) & (A | D)).toBe(A);
    expect(s.ept.translate(eptp, req(0x1234_5000))).toBe(-1);
    const four = setup();
    expect(four.ept.translate(eptp, req(gpa))).toBe(-1);
    expect(four.ept.lastViolation.misconfig).toBe(true);
  });

  it('ignores PTE bit 7 and the ignored high bits, but not the address bits', () => {
    const { bus, ept, tables } = setup();
    tables.map(0x1000, 0x9000, 0x1000);
    setBits(bus, PT + 8, (1 << 7) | (1 << 11), 0xfff0_0000); // bits 7, 11, 63:52
    expect(ept.translate(tables.eptp(), req(0x1010))).toBe(0x9010);
  });
});

describe('EPT walk: violations and their exit qualification', () => {
  const run = (
    access: Parameters<typeof req>[1],
    rights: { read?: boolean; write?: boolean; execute?: boolean },
  ) => {
    const s = setup();
    s.tables.map(0x2000, 0x6000, 0x1000, rights);
    const hpa = s.ept.translate(s.tables.eptp(), req(0x2345, { linear: 0x8000_1234_5345, ...access }));
    return { hpa, v: { ...s.ept.lastViolation }, s };
  };

  it.each([
    ['read of execute-only', {}, { read: false, write: false }, Q_READ | Q_PERM(4)],
    ['write to read-only', { write: true }, { write: false, execute: false }, Q_WRITE | Q_PERM(1)],
    ['write to read+execute', { write: true }, { write: false }, Q_WRITE | Q_PERM(5)],
    ['fetch from read+write', { fetch: true }, { execute: false }, Q_FETCH | Q_PERM(3)],
    ['fetch from read-only', { fetch: true }, { write: false, execute: false }, Q_FETCH | Q_PERM(1)],
  ])('%s', (_n, access, rights, q) => {
    const { hpa, v } = run(access, rights);
    expect(hpa).toBe(-1);
    expect(v).toEqual({
      gpa: 0x2345,
      qualification: q | Q_LINEAR_VALID | Q_TRANSLATION,
      misconfig: false,
      linear: 0x8000_1234_5345,
    });
  });

  it('not present at the PT, the PD and the PML4: no permissions', () => {
    const { ept, tables } = setup();
    tables.map(0x2000, 0x6000, 0x1000);
    const eptp = tables.eptp();
    for (const gpa of [0x3000, 0x40_0000, 0x80_0000_0000]) {
      expect(ept.translate(eptp, req(gpa, { write: true }))).toBe(-1);
      expect(ept.lastViolation.qualification).toBe(Q_WRITE | Q_LINEAR_VALID | Q_TRANSLATION);
      expect(ept.lastViolation.gpa).toBe(gpa);
    }
    expect(ept.stats.violations).toBe(3);
  });

  it('not present means bits 2:0 clear, whatever else the entry holds', () => {
    const { bus, ept, tables } = setup();
    tables.map(0x2000, 0x6000, 0x1000);
    bus.write(PT + 3 * 8, 4, 0xffff_fff8); // reserved and memory-type junk, but not present
    expect(ept.translate(tables.eptp(), req(0x3000))).toBe(-1);
    expect(ept.lastViolation.misconfig).toBe(false);
  });

  it('permissions are the AND over all levels', () => {
    const { bus, ept, tables } = setup();
    tables.map(0x2000, 0x6000, 0x1000);
    setBits(bus, PD, 0, 0, ~0b010); // PDE: R and X only
    setBits(bus, PDPT, 0, 0, ~0b100); // PDPTE: R and W only
    const eptp = tables.eptp();
    expect(ept.translate(eptp, req(0x2000))).toBe(0x6000);
    expect(ept.translate(eptp, req(0x2000, { write: true }))).toBe(-1);
    expect(ept.lastViolation.qualification).toBe(Q_WRITE | Q_PERM(1) | Q_LINEAR_VALID | Q_TRANSLATION);
    expect(ept.translate(eptp, req(0x2000, { fetch: true }))).toBe(-1);
    expect(ept.lastViolation.qualification).toBe(Q_FETCH | Q_PERM(1) | Q_LINEAR_VALID | Q_TRANSLATION);
  });

  it('guest paging-structure accesses: bit 8 clear; reads without A/D, writes (bits 0 and 1) with it', () => {
    const { ept, tables } = setup();
    tables.map(0x2000, 0x6000, 0x1000, { write: false });
    // A/D off: a walk is a read; allowed on a read-only page; a violation where not present.
    const noAd = tables.eptp({ accessDirty: false });
    expect(ept.translate(noAd, req(0x2008, { walk: true, linear: 0x40_0000 }))).toBe(0x6008);
    expect(ept.translate(noAd, req(0x9008, { walk: true, linear: 0x40_0000 }))).toBe(-1);
    expect(ept.lastViolation).toEqual({
      gpa: 0x9008,
      qualification: Q_READ | Q_LINEAR_VALID,
      misconfig: false,
      linear: 0x40_0000,
    });
    // A/D on: the same walk is a write, which the read-only page refuses.
    expect(ept.translate(tables.eptp(), req(0x2010, { walk: true, linear: 0x40_0000 }))).toBe(-1);
    expect(ept.lastViolation.qualification).toBe(Q_READ | Q_WRITE | Q_PERM(5) | Q_LINEAR_VALID);
  });

  it('no guest-linear address: bits 7 and 8 clear, linear -1', () => {
    const { ept, tables } = setup();
    expect(ept.translate(tables.eptp(), req(0x5000, { linear: -1 }))).toBe(-1);
    expect(ept.lastViolation).toEqual({ gpa: 0x5000, qualification: Q_READ, misconfig: false, linear: -1 });
  });
});

describe('EPT walk: misconfigurations (SDM 28.3.3.1)', () => {
  const expectMisconfig = (s: ReturnType<typeof setup>, gpa: number, eptp = s.tables.eptp()) => {
    expect(s.ept.translate(eptp, req(gpa, { write: true }))).toBe(-1);
    expect(s.ept.lastViolation).toEqual({ gpa, qualification: 0, misconfig: true, linear: -1 });
  };

  it('write without read, in a leaf and in a table entry', () => {
    let s = setup();
    s.tables.map(0x1000, 0x9000, 0x1000);
    setBits(s.bus, PT + 8, 0, 0, ~0b001); // -W X
    expectMisconfig(s, 0x1000);
    s = setup();
    s.tables.map(0x1000, 0x9000, 0x1000);
    setBits(s.bus, PDPT, 0, 0, ~0b101); // -W-
    expectMisconfig(s, 0x1000);
  });

  it('execute-only is a misconfiguration only where unsupported', () => {
    for (const executeOnly of [true, false]) {
      const s = setup({ executeOnly });
      s.tables.map(0x1000, 0x9000, 0x1000);
      setBits(s.bus, PT + 8, 0, 0, ~0b011); // --X
      expect(s.ept.translate(s.tables.eptp(), req(0x1000, { fetch: true }))).toBe(executeOnly ? 0x9000 : -1);
      expect(s.ept.lastViolation.misconfig).toBe(!executeOnly);
    }
  });

  it.each([
    ['PML4E bit 3', PML4, 1 << 3, 0],
    ['PML4E bit 7', PML4, 1 << 7, 0],
    ['PDPTE (table) bit 6', PDPT, 1 << 6, 0],
    ['PDE (table) bit 4', PD, 1 << 4, 0],
    ['PTE address bit 40 (MAXPHYADDR 40)', PT + 8, 0, 1 << 8],
    ['PML4E address bit 51', PML4, 0, 1 << 19],
  ])('reserved bit: %s', (_n, addr, lo, hi) => {
    const s = setup();
    s.tables.map(0x1000, 0x9000, 0x1000);
    s.ept.translate(s.tables.eptp(), req(0x1000)); // fill the cache: a misconfiguration needs a walk
    s.ept.invept(2, 0);
    setBits(s.bus, addr, lo, hi);
    expectMisconfig(s, 0x1000);
  });

  it('reserved bits of large pages: PDE 20:12, PDPTE 29:12', () => {
    for (const bit of [12, 16, 20]) {
      const s = setup();
      s.tables.map(0x20_0000, 0x20_0000, 0x20_0000, { pageSize: '2M' });
      setBits(s.bus, PD + 8, 1 << bit);
      expectMisconfig(s, 0x20_0000);
    }
    for (const bit of [12, 21, 29]) {
      const s = setup();
      s.tables.map(0x4000_0000, 0x4000_0000, 0x4000_0000, { pageSize: '1G' });
      setBits(s.bus, PDPT + 8, 1 << bit);
      expectMisconfig(s, 0x4000_0000);
    }
    // Bit 21 of a 2 MiB page's entry is an address bit, not reserved.
    const s = setup();
    s.tables.map(0x20_0000, 0x40_0000, 0x20_0000, { pageSize: '2M' });
    setBits(s.bus, PD + 8, 1 << 21);
    expect(s.ept.translate(s.tables.eptp(), req(0x20_0004))).toBe(0x60_0004);
  });

  it('bit 7 is reserved where the page size is not supported', () => {
    let s = setup({ page1G: false });
    s.tables.map(0x4000_0000, 0, 0x1000);
    setBits(s.bus, PDPT + 8, 1 << 7);
    expectMisconfig(s, 0x4000_0000);
    s = setup({ page2M: false });
    s.tables.map(0x20_0000, 0, 0x1000);
    setBits(s.bus, PD + 8, 1 << 7);
    expectMisconfig(s, 0x20_0000);
  });

  it('leaf memory types 2, 3 and 7 are misconfigurations; 0, 1, 4, 5, 6 are not', () => {
    for (let t = 0; t < 8; t++) {
      for (const pageSize of ['4K', '2M'] as const) {
        const s = setup();
        s.tables.map(0x20_0000, 0x20_0000, 0x20_0000, { pageSize });
        const leaf = pageSize === '4K' ? PT : PD + 8;
        setBits(s.bus, leaf, t << 3, 0, ~(7 << 3));
        const hpa = s.ept.translate(s.tables.eptp(), req(0x20_0000));
        const bad = t === 2 || t === 3 || t === 7;
        expect(hpa, `type ${t} ${pageSize}`).toBe(bad ? -1 : 0x20_0000);
        expect(s.ept.lastViolation.misconfig).toBe(bad);
        if (!bad) expect(s.ept.last.memType).toBe(t);
      }
    }
  });

  it('a table outside RAM reads as all ones: a misconfiguration', () => {
    const s = setup();
    s.tables.map(0x1000, 0x9000, 0x1000);
    setBits(s.bus, PML4, 0, 0x0f, 0xfff); // PDPT at 0xf_0000_0000 + ...: unmapped on the bus
    expectMisconfig(s, 0x1000);
  });

  it('an EPTP walk length VM entry would refuse is reported as a misconfiguration', () => {
    const s = setup();
    s.tables.map(0x1000, 0x9000, 0x1000);
    expectMisconfig(s, 0x1000, s.tables.root | (2 << 3) | 6);
  });
});

describe('EPT walk: accessed and dirty flags (SDM 28.3.5)', () => {
  const levels = [PML4, PDPT, PD];

  it('a read sets A on every entry used; a write also sets D on the leaf', () => {
    const { bus, ept, tables } = setup();
    tables.map(0x1000, 0x9000, 0x2000);
    const before = entryAt(bus, PT + 8);
    expect(ept.translate(tables.eptp(), req(0x1000))).toBe(0x9000);
    for (const a of levels) expect(entryAt(bus, a) & (A | D)).toBe(A);
    expect(entryAt(bus, PT + 8)).toBe(before | A);
    // The write after a read is not hidden by the cached translation.
    expect(ept.translate(tables.eptp(), req(0x1004, { write: true }))).toBe(0x9004);
    expect(entryAt(bus, PT + 8)).toBe(before | A | D);
    for (const a of levels) expect(entryAt(bus, a) & D).toBe(0n);
    expect(entryAt(bus, PT + 16) & (A | D)).toBe(0n);
    expect(ept.stats).toMatchObject({ accessedSet: 4, dirtySet: 1 });
  });

  it('large pages: D on the PDE / PDPTE that maps the page', () => {
    const { bus, ept, tables } = setup();
    tables.map(0x20_0000, 0x20_0000, 0x20_0000, { pageSize: '2M' });
    tables.map(0x4000_0000, 0x4000_0000, 0x4000_0000, { pageSize: '1G' });
    ept.translate(tables.eptp(), req(0x20_0000, { write: true }));
    expect(entryAt(bus, PD + 8) & (A | D)).toBe(A | D);
    expect(entryAt(bus, PDPT) & (A | D)).toBe(A);
    ept.translate(tables.eptp(), req(0x4000_0000, { write: true }));
    expect(entryAt(bus, PDPT + 8) & (A | D)).toBe(A | D);
  });

  it('guest paging-structure reads count as writes: D set on the leaf', () => {
    const { bus, ept, tables } = setup();
    tables.map(0x1000, 0x9000, 0x1000);
    expect(ept.translate(tables.eptp(), req(0x1ff8, { walk: true }))).toBe(0x9ff8);
    expect(entryAt(bus, PT + 8) & (A | D)).toBe(A | D);
  });

  it('nothing changes when EPTP bit 6 is clear, when A/D is unsupported, or on a violation', () => {
    for (const [features, ad] of [
      [{}, false],
      [{ accessDirty: false }, true],
    ] as const) {
      const { bus, ept, tables } = setup(features);
      tables.map(0x1000, 0x9000, 0x1000, { write: false });
      const snapshot = [PML4, PDPT, PD, PT + 8].map((a) => entryAt(bus, a));
      const eptp = tables.eptp({ accessDirty: ad });
      expect(ept.translate(eptp, req(0x1000))).toBe(0x9000);
      // Without A/D in effect a walk is a read, which a read-only page allows.
      expect(ept.translate(eptp, req(0x1008, { walk: true }))).toBe(0x9008);
      expect([PML4, PDPT, PD, PT + 8].map((a) => entryAt(bus, a))).toEqual(snapshot);
    }
    const { bus, ept, tables } = setup();
    tables.map(0x1000, 0x9000, 0x1000, { write: false });
    expect(ept.translate(tables.eptp(), req(0x1000, { write: true }))).toBe(-1);
    for (const a of [PML4, PDPT, PD, PT + 8]) expect(entryAt(bus, a) & (A | D)).toBe(0n);
  });
});

describe('INVEPT and cached translations (SDM 28.4)', () => {
  it('single-context drops one EP4TA, all-context all, and both flush the CPU TLB', () => {
    const s = setup();
    const other = s.ept.createTables(TABLES + 0x8_0000, 0x8_0000);
    s.tables.map(0x1000, 0x9000, 0x1000);
    other.map(0x5000, 0xa000, 0x1000);
    const e1 = s.tables.eptp();
    const e2 = other.eptp();
    let flushes = 0;
    s.ept.connectTlb(() => flushes++);
    expect(s.ept.translate(e1, req(0x1000))).toBe(0x9000);
    expect(s.ept.translate(e2, req(0x5000))).toBe(0xa000);
    // Remap both behind the CPU's back: the cached translations stay in use until INVEPT.
    s.tables.map(0x1000, 0xb000, 0x1000, { replace: true });
    other.map(0x5000, 0xc000, 0x1000, { replace: true });
    expect(s.ept.translate(e1, req(0x1000))).toBe(0x9000);
    expect(s.ept.translate(e2, req(0x5000))).toBe(0xa000);
    // Single-context for e1 (its EP4TA; the other EPTP bits do not matter).
    s.ept.invept(1, s.tables.root | 0x18);
    expect(flushes).toBe(1);
    expect(s.ept.translate(e1, req(0x1000))).toBe(0xb000);
    expect(s.ept.translate(e2, req(0x5000))).toBe(0xa000);
    s.ept.invept(2, 0);
    expect(flushes).toBe(2);
    expect(s.ept.translate(e2, req(0x5000))).toBe(0xc000);
    expect(s.ept.stats).toMatchObject({ inveptSingle: 1, inveptAll: 1 });
  });

  it('failed translations are never cached, and more rights are seen at once', () => {
    const { ept, tables } = setup();
    const eptp = tables.eptp();
    expect(ept.translate(eptp, req(0x1000))).toBe(-1);
    tables.map(0x1000, 0x9000, 0x1000, { write: false });
    expect(ept.translate(eptp, req(0x1000))).toBe(0x9000);
    tables.map(0x1000, 0x9000, 0x1000, { replace: true });
    expect(ept.translate(eptp, req(0x1000, { write: true }))).toBe(0x9000);
  });
});
