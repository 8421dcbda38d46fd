import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT, discover, formatTable, staleness } from '../../bench/run.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A package tree: src/a.ts, plugins/p/b.ts and (when `built`) dist/src/cli-lib/fast-up.js. */
function tree(built: boolean): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-bench-test-'));
  dirs.push(d);
  const put = (rel: string, t: number) => {
    const f = path.join(d, rel);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, '');
    fs.utimesSync(f, t, t);
  };
  put('src/a.ts', 1000);
  put('plugins/p/b.ts', 1000);
  if (built) put('dist/src/cli-lib/fast-up.js', 2000);
  return d;
}

describe('bench harness', () => {
  it('finds the bench/*.bench.ts files, sorted, named by their stem', () => {
    const found = discover();
    expect(found.map((b) => b.id)).toContain('startup');
    expect(found.every((b) => b.file.endsWith(`/bench/${b.id}.bench.ts`))).toBe(true);
    expect(found.map((b) => b.id)).toEqual([...found.map((b) => b.id)].sort());
  });

  it('finds the transpiled *.bench.js files of dist/bench the same way', () => {
    const d = tree(false);
    for (const f of ['b.bench.js', 'a.bench.js', 'run.js']) fs.writeFileSync(path.join(d, f), '');
    expect(discover(d)).toEqual([
      { id: 'a', file: path.join(d, 'a.bench.js') },
      { id: 'b', file: path.join(d, 'b.bench.js') },
    ]);
  });

  it('finds the package root from bench/', () => {
    expect(fs.existsSync(path.join(ROOT, 'package.json'))).toBe(true);
    expect(fs.existsSync(path.join(ROOT, 'machines/q35-vmx-multiboot.yaml'))).toBe(true);
  });

  it('measures dist/ only when it is built and newer than every source under src/ and plugins/', () => {
    expect(staleness(tree(false))).toBe('dist/ is not built');
    const d = tree(true);
    expect(staleness(d)).toBeNull();
    fs.utimesSync(path.join(d, 'plugins/p/b.ts'), 3000, 3000);
    expect(staleness(d)).toBe(`dist/ is older than ${path.join('plugins', 'p', 'b.ts')}`);
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
