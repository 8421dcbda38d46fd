/**
 * The walker against a reference model: random maps, replaces and unmaps through the builder, and
 * random accesses whose outcome (host address, or the violation's qualification) and A/D effects
 * the model predicts from the mappings alone. Seeded; the seed is in the test name (set EPT_SEED
 * to replay one).
 */
import { describe, expect, it } from 'vitest';
import { Bus } from '../../../src/core/bus.js';
import { VmmError } from '../../../src/core/errors.js';
import { Ept } from '../../../plugins/ept/ept.js';
import type { EptPageSize } from '../../../src/x86/ept.js';
import { FEATURES, req, rng } from './helpers.js';

const SIZES: Record<EptPageSize, number> = { '4K': 2 ** 12, '2M': 2 ** 21, '1G': 2 ** 30 };
const GPA_SPACE = 8 * 2 ** 30;
const MEMTYPES = [0, 1, 4, 5, 6] as const;

interface Leaf {
  gpa: number;
  hpa: number;
  size: EptPageSize;
  rwx: number;
  a: boolean;
  d: boolean;
}

class Model {
  /** Leaves by `${size}:${gpa}`. */
  leaves = new Map<string, Leaf>();
  /** Regions (by size and base) under which the builder has created a table, which stays. */
  tables = new Set<string>();

  leafAt(gpa: number): Leaf | undefined {
    for (const s of ['1G', '2M', '4K'] as const) {
      const base = gpa - (gpa % SIZES[s]);
      const l = this.leaves.get(`${s}:${base}`);
      if (l) return l;
    }
    return undefined;
  }

  /** Whether the builder accepts mapping one page of `size` at `gpa`. */
  canPlace(gpa: number, size: EptPageSize, replace: boolean): boolean {
    for (const s of ['1G', '2M'] as const) {
      if (SIZES[s] <= SIZES[size]) continue;
      if (this.leaves.has(`${s}:${gpa - (gpa % SIZES[s])}`)) return false; // inside a larger leaf
    }
    if (size !== '4K' && this.tables.has(`${size}:${gpa}`)) return false; // a table is there
    return !this.leaves.has(`${size}:${gpa}`) || replace;
  }

  place(gpa: number, hpa: number, size: EptPageSize, rwx: number): void {
    this.leaves.set(`${size}:${gpa}`, { gpa, hpa, size, rwx, a: false, d: false });
    if (size === '4K') this.tables.add(`2M:${gpa - (gpa % SIZES['2M'])}`);
    if (size !== '1G') this.tables.add(`1G:${gpa - (gpa % SIZES['1G'])}`);
  }
}

function runSeed(seed: number): void {
  const rand = rng(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const bus = new Bus('host');
  bus.addRam('ram', 0, 0x100_0000);
  const ept = new Ept(bus, { ...FEATURES, cacheEntries: 64 });
  const tables = ept.createTables(0x1000, 0xfff000);
  const model = new Model();
  const ad = rand() < 0.7;
  const eptp = tables.eptp({ accessDirty: ad });

  const checkAccess = () => {
    const leaves = [...model.leaves.values()];
    const mapped = leaves.length > 0 && rand() < 0.8;
    const l0 = mapped ? leaves[int(leaves.length)]! : undefined;
    const gpa = l0 ? l0.gpa + int(SIZES[l0.size]) : int(GPA_SPACE);
    const kind = int(4);
    const linear = rand() < 0.2 ? -1 : int(2 ** 47);
    const r = req(gpa, { write: kind === 1, fetch: kind === 2, walk: kind === 3, linear });
    const leaf = model.leafAt(gpa);
    const writeLike = kind === 1 || (kind === 3 && ad);
    const need = kind === 2 ? 4 : writeLike ? 2 : 1;
    const got = ept.translate(eptp, r);
    const where = `seed ${seed}: access ${kind} at ${gpa.toString(16)}`;
    if (leaf && leaf.rwx & need) {
      expect(got, where).toBe(leaf.hpa + (gpa - leaf.gpa));
      if (ad) {
        leaf.a = true;
        if (writeLike) leaf.d = true;
      }
    } else {
      expect(got, where).toBe(-1);
      const access = kind === 2 ? 4 : kind === 3 ? (ad ? 3 : 1) : kind === 1 ? 2 : 1;
      const lin = linear === -1 ? 0 : kind === 3 ? 0x80 : 0x180;
      expect(ept.lastViolation, where).toEqual({
        gpa,
        qualification: access | ((leaf?.rwx ?? 0) << 3) | lin,
        misconfig: false,
        linear,
      });
    }
  };

  for (let step = 0; step < 300; step++) {
    const op = rand();
    if (op < 0.5) {
      const size = (['4K', '4K', '4K', '2M', '2M', '1G'] as const)[int(6)]!;
      const bytes = SIZES[size];
      const pages = 1 + int(size === '4K' ? 4 : 2);
      const gpa = int(GPA_SPACE / bytes - pages) * bytes;
      const hpa = int(2 ** 40 / bytes - pages) * bytes;
      const rwx = [1, 3, 4, 5, 7][int(5)]!;
      const replace = rand() < 0.3;
      const ok = Array.from({ length: pages }, (_, k) =>
        model.canPlace(gpa + k * bytes, size, replace),
      ).every(Boolean);
      const call = () =>
        tables.map(gpa, hpa, pages * bytes, {
          read: (rwx & 1) !== 0,
          write: (rwx & 2) !== 0,
          execute: (rwx & 4) !== 0,
          memType: MEMTYPES[int(MEMTYPES.length)]!,
          pageSize: size,
          replace,
        });
      if (ok) {
        call();
        for (let k = 0; k < pages; k++) model.place(gpa + k * bytes, hpa + k * bytes, size, rwx);
      } else {
        expect(call, `seed ${seed}: map ${size} at ${gpa.toString(16)}`).toThrow(VmmError);
      }
      ept.invept(1, eptp);
    } else if (op < 0.6 && model.leaves.size > 0) {
      const leaves = [...model.leaves.values()];
      const l = leaves[int(leaves.length)]!;
      tables.unmap(l.gpa, SIZES[l.size]);
      model.leaves.delete(`${l.size}:${l.gpa}`);
      ept.invept(2, 0);
    } else {
      for (let k = 0; k < 10; k++) checkAccess();
    }
  }
  // The A and D flags of every leaf are what the accesses made them.
  for (const l of model.leaves.values()) {
    const e = tables.lookup(l.gpa)!;
    expect(e.hpa, `seed ${seed}: leaf ${l.gpa.toString(16)}`).toBe(l.hpa);
    expect(
      [(e.entry >> 8n) & 1n, (e.entry >> 9n) & 1n],
      `seed ${seed}: A/D of ${l.gpa.toString(16)}`,
    ).toEqual([l.a ? 1n : 0n, l.d ? 1n : 0n]);
  }
}

describe('EPT walker against a reference model', () => {
  const random = process.env.EPT_SEED ? Number(process.env.EPT_SEED) : Date.now() % 2 ** 31;
  it.each([1, 2, 3, 0x5eed, random])('seed %i', (seed) => runSeed(seed));
});
