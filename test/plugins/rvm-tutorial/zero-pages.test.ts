import { describe, expect, it } from 'vitest';
import { zeroPages } from '../../../plugins/rvm-tutorial/index.js';

describe('zeroPages (guest RAM cleared at start)', () => {
  it('zeroes exactly the pages that hold a non-zero byte and reports each', () => {
    const data = new Uint8Array(0x10000);
    data[0x1000 + 5] = 1; // page 1 of the range (offset 0x1000 below)
    data[0x4fff] = 0xff; // last byte of page 4
    data[0x0fff] = 7; // before the range: untouched
    const written: [number, number][] = [];
    zeroPages(data, 0x1000, 0x8000, (off, len) => written.push([off, len]));
    expect(written).toEqual([
      [0x1000, 0x1000],
      [0x4000, 0x1000],
    ]);
    expect(data.subarray(0x1000, 0x9000).every((b) => b === 0)).toBe(true);
    expect(data[0x0fff]).toBe(7);
  });
});
