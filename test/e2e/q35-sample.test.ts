/**
 * The README's main job, end to end: machines/q35-sample.yaml (VMX + EPT, the rvm-tutorial policy,
 * our BIOS and the sample guest from a disk made on the fly) boots to the sample shell, answers
 * every command, and powers off with exit status 0. Two runs give byte-identical transcripts, and
 * the transcript matches the one QEMU produces for the same guest booted bare through the same BIOS
 * (timing and platform lines masked, guests/README.md), when QEMU is installed.
 *
 * Each vmm boot is about 17 million guest instructions (roughly 10 s on one core); the QEMU run
 * overlaps the first vmm run.
 */
import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  DEBUG_EXIT_STATUS,
  SAMPLE_COMMANDS,
  commandAnswer,
  maskPlatformLines,
  qemuAvailable,
  runQemu,
} from '../guests/qemu-oracle.js';
import type { QemuTranscript } from '../guests/qemu-oracle.js';
import { ROOT, machineFile, runSample } from './sample-session.js';
import type { SampleRun } from './sample-session.js';

const MACHINE = machineFile('q35-sample.yaml');
const haveQemu = qemuAvailable();
if (!haveQemu) console.warn('[e2e] qemu-system-x86_64 not found: skipping the comparison with QEMU');

let first: SampleRun;
let qemu: Promise<QemuTranscript> | undefined;

beforeAll(async () => {
  qemu = haveQemu
    ? runQemu({
        kernel: resolve(ROOT, 'guests/sample/sample.bin'),
        boot: { kind: 'bios', bios: resolve(ROOT, 'guests/bios/bios.bin') },
        input: SAMPLE_COMMANDS,
        timeoutMs: 90_000,
      })
    : undefined;
  first = await runSample(MACHINE, SAMPLE_COMMANDS);
}, 180_000);

const answer = (command: string): string => commandAnswer(first.text, command);

describe('machines/q35-sample.yaml', () => {
  it('boots through our BIOS under the hypervisor, with x2APIC and the HPET passed through', () => {
    const t = first.text;
    expect(t).toContain('boot = vmm BIOS (EAX=0x1BADB002, no information structure)\n');
    expect(t).toContain('memory = 16 MiB,');
    expect(t).toContain('hypervisor = "RVMRVMRVMRVM" (CPUID 0x40000000');
    expect(t).toContain('HPET: 100.000000 MHz, 64-bit, 3 timers\n');
    expect(t).toContain('Local APIC: x2APIC mode (MSRs 0x800-0x8FF)\n');
    // The policy's CPUID hides leaf 0x16, so the guest counts the TSC against the HPET.
    expect(t).toMatch(/\nCalibrated TSC frequency: \d+ MHz \(HPET\)\n/);
    expect(t).toContain('APIC timer: periodic, vector 0xf0, 100 Hz\n');
    expect(t).toContain('vmm sample shell: type help\n>> ');
    expect(first.log).toContain('fat-loader: loaded bios.bin (102 bytes) at 0x8000');
  });

  it('answers help with every command and program', () => {
    const a = answer('help');
    for (const c of ['help', 'hello', 'ticks', 'mem', 'fault', 'priv', 'exits', 'crash', 'poweroff']) {
      expect(a).toMatch(new RegExp(`^  ${c} +\\S`, 'm'));
    }
    expect(a).toContain('programs:\n');
  });

  it('runs hello in ring 3 and waits for timer ticks', () => {
    expect(answer('hello')).toBe(
      [
        '[1] started hello',
        'Hello from ring 3! I am pid 1, running at CPL 3.',
        'The timer is ticking while user code runs.',
        'write() from an unmapped buffer returns -14 (EFAULT).',
        'Goodbye.',
        '[1] exited with code 0',
        '',
      ].join('\n'),
    );
    // hello yields until two timer interrupts have been seen: the injected APIC timer works.
    const ticks = /^ticks: (\d+) timer interrupts \(vector 0xf0, 100 Hz\)\n$/.exec(answer('ticks'));
    expect(ticks).not.toBeNull();
    expect(Number(ticks![1])).toBeGreaterThanOrEqual(2);
  });

  it('maps, unmaps and catches a kernel page fault (mem)', () => {
    expect(answer('mem')).toBe(
      [
        'mem: mapped a fresh frame at 0xffffff0000000000',
        'mem: wrote 0x5eed5eed12345678, read 0x5eed5eed12345678: ok',
        'mem: unmapped it; reading again page-faults, and the kernel caught it: ok',
        'mem: the frame went back to the allocator: ok',
        '',
      ].join('\n'),
    );
  });

  it('kills ring-3 programs that fault (fault, priv) and keeps the shell', () => {
    expect(answer('fault')).toBe(
      [
        '[2] started fault',
        'About to write to 0xdead0000, which is not mapped...',
        '[2] killed: page fault at 0xdead0000',
        '',
      ].join('\n'),
    );
    expect(answer('priv')).toMatch(
      /^\[3\] started priv\n(?:.*\n)*\[3\] killed: general protection at rip 0x4[0-9a-f]{5}\n$/,
    );
  });

  it('asks the hypervisor for its exit count by VMCALL (exits)', () => {
    const m = /^exits: hypervisor "RVMRVMRVMRVM" reports (\d+) VM exits\n$/.exec(answer('exits'));
    expect(m).not.toBeNull();
    const reported = Number(m![1]);
    const total = Number(first.stats.vmx!['exits']);
    // The count at the VMCALL: more than the boot's CPUID exits, fewer than the run's total.
    expect(reported).toBeGreaterThan(10);
    expect(reported).toBeLessThan(total);
    expect(Number(first.stats.vmx!['exits.Vmcall'])).toBe(1);
  });

  it('powers off through ACPI S5 with exit status 0', () => {
    expect(first.text.endsWith('>> poweroff\nPowering off.\n')).toBe(true);
    expect(first.typed).toBe(SAMPLE_COMMANDS.length);
    expect(first.stop).toMatchObject({ kind: 'poweroff', code: 0, source: 'acpi-pm' });
    expect(first.exitCode).toBe(0);
  });

  it('gives a byte-identical transcript on a second run (determinism)', async () => {
    const second = await runSample(MACHINE, SAMPLE_COMMANDS);
    expect(second.raw).toBe(first.raw);
    expect(second.stats.machine).toEqual({ ...first.stats.machine, wallMs: second.stats.machine!['wallMs'] });
    expect(second.exitCode).toBe(0);
  }, 120_000);

  it.skipIf(!haveQemu)(
    'matches the transcript of the guest booted bare under QEMU (masked)',
    async () => {
      const q = await qemu!;
      expect(q.timedOut, q.stderr).toBe(false);
      expect(q.exitCode).toBe(DEBUG_EXIT_STATUS);
      expect(maskPlatformLines(first.text)).toBe(maskPlatformLines(q.text));
    },
    120_000,
  );
});
