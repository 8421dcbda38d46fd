import { describe, expect, it } from 'vitest';
import { MemoryDevice } from '../../../../plugins/fat-loader/fat/device.js';
import { FatTable } from '../../../../plugins/fat-loader/fat/table.js';
import { VmmError } from '../../../../src/core/errors.js';

describe('FAT12 packing', () => {
  it('stores two 12-bit entries in three bytes without disturbing the neighbour', () => {
    const t = FatTable.empty(12, 100);
    t.set(2, 0xabc);
    t.set(3, 0x123);
    expect([t.get(2), t.get(3)]).toEqual([0xabc, 0x123]);
    t.set(2, 0x000);
    expect([t.get(2), t.get(3)]).toEqual([0, 0x123]);
    t.set(3, 0xfff);
    expect([t.get(2), t.get(3)]).toEqual([0, 0xfff]);
  });

  it('lays entries out as the spec says: cluster N at byte N + N/2, odd entries in the high nibbles', async () => {
    const t = FatTable.empty(12, 100);
    t.set(4, 0x345); // even: bytes 6 and low nibble of 7
    t.set(5, 0x678); // odd: high nibble of 7 and byte 8
    const dev = MemoryDevice.zeroed(4096);
    await t.flush(dev, [0]);
    expect([...dev.bytes.subarray(6, 9)]).toEqual([0x45, 0x83, 0x67]);
  });
});

describe('FAT32 entries', () => {
  it('keeps the reserved top four bits on writes and hides them on reads', async () => {
    const dev = MemoryDevice.zeroed(4096);
    dev.bytes.set([0, 0, 0, 0xf0], 4 * 7); // entry 7 with the reserved nibble set
    const t = await FatTable.load(dev, 0, 32, 500);
    expect(t.get(7)).toBe(0);
    t.set(7, 0x0fffffff);
    expect(t.get(7)).toBe(0x0fffffff);
    await t.flush(dev, [0]);
    expect(dev.bytes[4 * 7 + 3]).toBe(0xff);
    t.set(7, 9);
    await t.flush(dev, [0]);
    expect([...dev.bytes.subarray(28, 32)]).toEqual([9, 0, 0, 0xf0]);
  });
});

describe('chains', () => {
  const eoc = 0xffff;
  const table = (links: Record<number, number>): FatTable => {
    const t = FatTable.empty(16, 50, 'test.img');
    for (const [k, v] of Object.entries(links)) t.set(Number(k), v);
    return t;
  };
  const err = (f: () => unknown): VmmError => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(VmmError);
      return e as VmmError;
    }
    throw new Error('expected an error');
  };

  it('follows a fragmented chain', () => {
    expect(table({ 2: 9, 9: 3, 3: 40, 40: eoc }).chain(2, 'f')).toEqual([2, 9, 3, 40]);
  });

  it('reports loops, out-of-range, free and bad links, and short chains', () => {
    expect(err(() => table({ 2: 3, 3: 4, 4: 2 }).chain(2, 'file "/a"')).message).toBe(
      'test.img: corrupt FAT: the cluster chain of file "/a" loops (cluster 4 links back to cluster 2)',
    );
    expect(err(() => table({ 2: 3, 3: 3 }).chain(2, 'x')).message).toMatch(
      /loops \(cluster 3 links back to cluster 3\)/,
    );
    expect(err(() => table({ 2: 52 }).chain(2, 'x')).message).toMatch(
      /points out of range \(cluster 2 links to 52/,
    );
    expect(err(() => table({ 2: 1 }).chain(2, 'x')).message).toMatch(/out of range/);
    expect(err(() => table({ 2: 3 }).chain(2, 'x')).message).toMatch(/runs into free cluster/);
    expect(err(() => table({ 2: 0xfff7 }).chain(2, 'x')).message).toMatch(/bad cluster/);
    expect(err(() => table({ 2: eoc }).chain(2, 'x', 2)).message).toMatch(
      /ends early: 1 cluster\(s\) where the size needs 2/,
    );
    expect(err(() => table({}).chain(0, 'x')).message).toMatch(/starts at cluster 0/);
    expect(err(() => table({}).chain(60, 'x')).message).toMatch(/starts at cluster 60/);
  });

  it('allocates from the hint, skipping used clusters, and keeps the free count exact', () => {
    const t = table({ 2: eoc, 4: eoc });
    const before = t.freeCount;
    expect(before).toBe(48);
    const got = t.allocate(3);
    expect(got).toEqual([3, 5, 6]);
    expect(t.chain(3, 'new')).toEqual([3, 5, 6]);
    expect(t.freeCount).toBe(before - 3);
    t.free(got);
    expect(t.freeCount).toBe(before);
    expect(() => t.allocate(49)).toThrow(/the volume is full: 49 cluster\(s\) needed, 48 free/);
  });
});
