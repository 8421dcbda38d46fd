import { describe, expect, it } from 'vitest';
import { discover, formatTable } from '../../bench/run.js';

describe('bench harness', () => {
  it('finds the bench/*.bench.ts files, sorted, named by their stem', () => {
    const found = discover();
    expect(found.map((b) => b.id)).toContain('startup');
    expect(found.every((b) => b.file.endsWith(`/bench/${b.id}.bench.ts`))).toBe(true);
    expect(found.map((b) => b.id)).toEqual([...found.map((b) => b.id)].sort());
  });

  it('prints one aligned table, numbers right-aligned, failures as a dash', () => {
    expect(
      formatTable([
        { bench: 'startup', name: 'first byte', value: 212.34, unit: 'ms', note: 'median of 5' },
        { bench: 'cpu', name: 'alu', value: 71234567, unit: 'instr/s' },
        { bench: 'vmx', name: '(failed)', value: NaN, unit: '', note: 'no kernel' },
      ]).split('\n'),
    ).toEqual([
      'benchmark  measure          value  unit     note',
      'startup    first byte       212.3  ms       median of 5',
      'cpu        alu         71,234,567  instr/s',
      'vmx        (failed)             -           no kernel',
    ]);
  });
});
