/**
 * Checks the generator and the form table against the host CPU (runs without the emulator):
 * forms that must not fault do not, faulting forms raise what the table says, flags the SDM calls
 * "unaffected" are unchanged, results are deterministic and every form is exercised.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { hex } from './case-util.js';
import { disassemble } from './disasm.js';
import { formSizes, generateBatch } from './generator.js';
import type { GenCase } from './generator.js';
import { NativeRunner } from './native.js';
import { diffSeed } from './prng.js';
import { faultKind } from './protocol.js';
import type { NativeResult } from './protocol.js';

const PER_FORM = 16;

describe.each([64, 32] as const)('generator vs host CPU, %i-bit mode', (mode) => {
  let runner: NativeRunner;
  let gen: GenCase[];
  let res: NativeResult[];
  const seed = diffSeed();
  beforeAll(() => {
    runner = NativeRunner.create(mode);
    console.log(`[cpu-diff] generator check ${mode}-bit: VMM_DIFF_SEED=${seed}`);
    const n = formSizes(mode, runner.hello.features).length * PER_FORM;
    gen = generateBatch(mode, seed, 0, n, runner.hello.features);
    res = runner.run(gen.map((g) => g.case));
  });

  const describeCase = (g: GenCase, r: NativeResult): string =>
    `${g.form.name} /${g.size} #${g.index} (seed ${seed}): ${r.status} vector ${r.trapno} at ${hex(r.rip)}\n` +
    disassemble(g.case.code, mode, g.case.codeAddr);

  it('never times out and faults only where the table allows', () => {
    const bad: string[] = [];
    gen.forEach((g, i) => {
      const r = res[i]!;
      if (r.status === 'timeout') bad.push(describeCase(g, r));
      else if (r.status === 'signal') {
        const kind = faultKind(r.trapno);
        const ok = g.mayFault && (g.faults.includes(kind) || kind === 'PF');
        if (!ok) bad.push(describeCase(g, r));
      }
    });
    expect(bad.slice(0, 10).join('\n\n')).toBe('');
  });

  it('leaves the flags the SDM calls unaffected unchanged', () => {
    const bad: string[] = [];
    gen.forEach((g, i) => {
      const r = res[i]!;
      const keeps = g.form.keeps ?? 0;
      if (r.status !== 'done' || keeps === 0) return;
      if (((r.rflags ^ g.case.rflags) & keeps) !== 0) {
        bad.push(
          `${describeCase(g, r)}\n  flags ${hex(g.case.rflags)} -> ${hex(r.rflags)}, keeps ${hex(keeps)}`,
        );
      }
    });
    expect(bad.slice(0, 10).join('\n\n')).toBe('');
  });

  it('exercises every form without faulting at least once (fault-only forms excepted)', () => {
    const done = new Set<string>();
    gen.forEach((g, i) => {
      if (res[i]!.status === 'done') done.add(g.form.name);
    });
    const missing = formSizes(mode, runner.hello.features)
      .map(([f]) => f)
      .filter((f) => !(f.faults?.length && f.faults.length > 0) && !done.has(f.name));
    expect([...new Set(missing.map((f) => f.name))]).toEqual([]);
  });

  it('gives identical results for the same seed (generator and runner are deterministic)', () => {
    const again = generateBatch(mode, seed, 0, 500, runner.hello.features);
    expect(again.map((g) => Buffer.from(g.case.code).toString('hex'))).toEqual(
      gen.slice(0, 500).map((g) => Buffer.from(g.case.code).toString('hex')),
    );
    // Compare digests: deep equality of thousands of 4 KiB windows is slow in the matcher.
    const digest = (r: NativeResult): string =>
      JSON.stringify([r.status, r.trapno, r.rip, r.rflags, r.regs, r.addr], (_k, v: unknown) =>
        typeof v === 'bigint' ? v.toString(16) : v,
      ) +
      Buffer.from(r.data).toString('base64') +
      Buffer.from(r.stack).toString('base64');
    expect(runner.run(again.map((g) => g.case)).map(digest)).toEqual(res.slice(0, 500).map(digest));
  });
});
