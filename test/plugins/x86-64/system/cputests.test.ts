/**
 * System-level CPU tests: each guests/cputests program prints one line per check on COM1. The
 * committed QEMU transcript (expected/NAME.txt) is checked against a fresh QEMU run when QEMU is
 * installed, and vmm's transcript on machines/pc-multiboot.yaml must equal it line for line, apart
 * from the documented lines where QEMU departs from the SDM. VMM_UPDATE_EXPECTED=1 rewrites the
 * expected files from QEMU.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { qemuAvailable } from '../../../guests/qemu-oracle.js';
import {
  CPU_TESTS,
  PASS_STATUS,
  QEMU_DIVERGENCES,
  ROOT,
  expectation,
  expectedFile,
  firstDifference,
  normalize,
  readExpected,
  runUnderQemu,
  runUnderVmm,
} from './cputests.js';

const haveQemu = qemuAvailable();
if (!haveQemu)
  console.warn('[cputests] qemu-system-x86_64 not found: comparing with the committed transcripts');

describe.each(CPU_TESTS)('cputests/$name', (t) => {
  it('has its image and its QEMU transcript committed', () => {
    expect(existsSync(resolve(ROOT, t.image)), t.image).toBe(true);
    expect(existsSync(expectedFile(t)), expectedFile(t)).toBe(true);
    expect(readExpected(t)).toMatch(/\ndone\n$/);
  });

  it.skipIf(!haveQemu)('prints under QEMU what expected/ records', { timeout: 90_000 }, async () => {
    const q = await runUnderQemu(t);
    expect(q.timedOut, q.stderr).toBe(false);
    expect(q.exitCode, q.stderr).toBe(PASS_STATUS);
    const text = normalize(q.text);
    if (process.env.VMM_UPDATE_EXPECTED) writeFileSync(expectedFile(t), text);
    expect(firstDifference(readExpected(t), text)).toBe('');
  });

  it('every documented QEMU divergence names a line QEMU prints', () => {
    const lines = normalize(readExpected(t)).split('\n');
    for (const d of QEMU_DIVERGENCES[t.name] ?? []) {
      expect(lines, d.why).toContain(d.qemu);
      expect(d.sdm).not.toBe(d.qemu);
    }
  });

  it('prints under vmm what QEMU prints (SDM where QEMU departs)', { timeout: 180_000 }, async () => {
    const { text, stop } = await runUnderVmm(t);
    const diff = firstDifference(expectation(t, readExpected(t)), text);
    expect(diff, `${diff}\nstop: ${JSON.stringify(stop)}`).toBe('');
    expect(stop).toMatchObject({ kind: 'poweroff', code: PASS_STATUS, source: 'isa-debug-exit' });
  });
});
