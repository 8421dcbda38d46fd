/**
 * The differential suite: generated cases on the host CPU vs the emulator (emulator-impl.ts).
 * Skips, with a message, while emulator-impl.ts is the stub. Seed: VMM_DIFF_SEED; case count per
 * mode: VMM_DIFF_CASES (default 60,000 in 64-bit and 40,000 in 32-bit mode).
 */
import { describe, expect, it } from 'vitest';
import { blankCase, cloneCase } from './case-util.js';
import { check, compareResults, minimize, report } from './compare.js';
import type { Difference } from './compare.js';
import { NOT_IMPLEMENTED } from './emulator-adapter.js';
import type { Emulate } from './emulator-adapter.js';
import { emulate } from './emulator-impl.js';
import { generateBatch } from './generator.js';
import { NativeRunner } from './native.js';
import { diffCases, diffSeed } from './prng.js';
import { toDiffResult } from './protocol.js';

function implemented(e: Emulate): boolean {
  try {
    e(blankCase(64, [0x90]));
    return true;
  } catch (err) {
    return !(err instanceof Error && err.message === NOT_IMPLEMENTED);
  }
}

const ready = implemented(emulate);
if (!ready) {
  console.warn(
    '[cpu-diff] SKIPPED: test/cpu/diff/emulator-impl.ts is still the stub ("CPU not implemented yet"); ' +
      'only the native-runner and generator checks run.',
  );
}

const BATCH = 5000;
const MAX_REPORTS = 5;

describe.skipIf(!ready).each([
  [64, 60_000],
  [32, 40_000],
] as const)('CPU vs host, %i-bit mode', (mode, defaultCount) => {
  it(`matches the host CPU on generated cases`, () => {
    const seed = diffSeed();
    const count = diffCases(defaultCount);
    console.log(`[cpu-diff] ${mode}-bit: ${count} cases, VMM_DIFF_SEED=${seed}`);
    const runner = NativeRunner.create(mode);
    const reports: string[] = [];
    const perForm = new Map<string, number>();
    let failures = 0;
    for (let start = 0; start < count; start += BATCH) {
      const gen = generateBatch(mode, seed, start, Math.min(BATCH, count - start), runner.hello.features);
      const natives = runner.run(gen.map((g) => g.case));
      gen.forEach((g, i) => {
        const native = toDiffResult(natives[i]!);
        let diffs: Difference[];
        try {
          diffs = compareResults(g.case, g, native, emulate(cloneCase(g.case)));
        } catch (err) {
          diffs = [{ field: 'emulator threw', native: '-', emulated: String(err) }];
        }
        if (diffs.length === 0) return;
        failures++;
        const key = `${g.form.name} /${g.size}`;
        perForm.set(key, (perForm.get(key) ?? 0) + 1);
        if (reports.length < MAX_REPORTS && (perForm.get(key) ?? 0) === 1) {
          let small = g.case;
          try {
            small = minimize(runner, emulate, g.case, g);
          } catch {
            // keep the original case if the emulator throws on a simplification
          }
          let smallDiffs = diffs;
          let smallNative = native;
          let smallEmu;
          try {
            smallDiffs = check(runner, emulate, small, g);
            smallNative = toDiffResult(runner.runOne(small));
            smallEmu = emulate(cloneCase(small));
          } catch {
            small = g.case;
            smallEmu = { regs: [], rflags: 0, data: g.case.data, stack: g.case.stack };
          }
          reports.push(report(g, small, smallNative, smallEmu, smallDiffs.length ? smallDiffs : diffs, seed));
        }
      });
    }
    const sorted = [...perForm].sort((a, b) => b[1] - a[1]);
    const summary = sorted.slice(0, 25).map(([k, n]) => `  ${n}\t${k}`);
    if (sorted.length > 25) summary.push(`  ... and ${sorted.length - 25} more forms`);
    expect(
      failures === 0
        ? ''
        : `${failures} of ${count} cases differ (VMM_DIFF_SEED=${seed})\n\n${reports.join('\n\n')}\n\nby form:\n${summary.join('\n')}`,
    ).toBe('');
  }, 600_000); // 100,000 cases plus emulation exceed the default per-test timeout
});
