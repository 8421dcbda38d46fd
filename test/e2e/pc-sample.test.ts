/**
 * machines/pc-sample.yaml: the sample guest with no hypervisor (pc-multiboot booting sample.bin
 * through its Multiboot header). It takes the xAPIC path and says it runs on bare hardware, and its
 * transcript matches QEMU's `-M q35 -m 16M -kernel sample.bin` (masked as guests/README.md says),
 * when QEMU is installed. One boot: about 17 million instructions (roughly 10 s).
 */
import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  SAMPLE_COMMANDS,
  commandAnswer,
  maskPlatformLines,
  qemuAvailable,
  runQemu,
} from '../guests/qemu-oracle.js';
import type { QemuTranscript } from '../guests/qemu-oracle.js';
import { ROOT, machineFile, runSample } from './sample-session.js';
import type { SampleRun } from './sample-session.js';

const haveQemu = qemuAvailable();

let bare: SampleRun;
let qemu: Promise<QemuTranscript> | undefined;

beforeAll(async () => {
  qemu = haveQemu
    ? runQemu({
        kernel: resolve(ROOT, 'guests/sample/sample.bin'),
        input: SAMPLE_COMMANDS,
        timeoutMs: 90_000,
      })
    : undefined;
  bare = await runSample(machineFile('pc-sample.yaml'), SAMPLE_COMMANDS);
}, 180_000);

describe('machines/pc-sample.yaml', () => {
  it('boots bare through Multiboot, on the xAPIC page, and powers off with status 0', () => {
    expect(bare.text).toMatch(/\nboot = multiboot information at 0x[0-9a-f]+, flags 0x[0-9a-f]+\n/);
    expect(bare.text).toContain('memory = 16 MiB,');
    expect(bare.text).toContain('hypervisor = none\n');
    expect(bare.text).toContain('Local APIC: xAPIC mode (MMIO at 0xfee00000)\n');
    expect(commandAnswer(bare.text, 'exits')).toBe('exits: not running under a hypervisor\n');
    expect(commandAnswer(bare.text, 'fault')).toContain('[2] killed: page fault at 0xdead0000\n');
    expect(bare.stop).toMatchObject({ kind: 'poweroff', code: 0, source: 'acpi-pm' });
    expect(bare.exitCode).toBe(0);
    expect(bare.stats.vmx).toBeUndefined();
  });

  it.skipIf(!haveQemu)(
    'matches the transcript of QEMU -kernel (masked)',
    async () => {
      const q = await qemu!;
      expect(q.timedOut, q.stderr).toBe(false);
      // SeaBIOS programs the ICH9 PM base, so the ACPI power-off ends QEMU with status 0.
      expect(q.exitCode).toBe(0);
      expect(maskPlatformLines(bare.text)).toBe(maskPlatformLines(q.text));
    },
    120_000,
  );
});
