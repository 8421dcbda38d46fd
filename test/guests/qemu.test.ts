// The sample guest booted bare under QEMU, the oracle for vmm: through QEMU's Multiboot loader and
// through the project's own BIOS (the tutorial's boot path). Skipped when QEMU is not installed
// (Debian: apt-get install qemu-system-x86).
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

import {
  DEBUG_EXIT_STATUS,
  SAMPLE_COMMANDS,
  commandAnswer,
  maskPlatformLines,
  maskTimingLines,
  qemuArgs,
  qemuAvailable,
  runQemu,
} from './qemu-oracle.js';
import type { QemuTranscript } from './qemu-oracle.js';

const GUESTS = resolve(import.meta.dirname, '../../guests');
const KERNEL = resolve(GUESTS, 'sample/sample.bin');
const BIOS = resolve(GUESTS, 'bios/bios.bin');
const BIOS_MBI = resolve(GUESTS, 'bios/bios-mbi.bin');
const COMMANDS = SAMPLE_COMMANDS;

const haveQemu = qemuAvailable();
if (!haveQemu) console.warn('[guests] qemu-system-x86_64 not found: skipping the QEMU oracle tests');

const answerTo = (text: string, command: string): string => commandAnswer(text, command);

function explain(t: QemuTranscript): string {
  return `exit ${t.exitCode}, timed out ${t.timedOut}, typed ${t.linesTyped}\n${t.text}\n${t.stderr}`;
}

describe('maskTimingLines', () => {
  it('masks only the numbers of calibration and tick lines', () => {
    const text = [
      'HPET: 100.000000 MHz, 64-bit, 3 timers',
      'Calibrated TSC frequency: 2467 MHz (HPET)',
      'Calibrated LAPIC frequency: 1021 MHz',
      '>> ticks',
      'ticks: 451 timer interrupts (vector 0xf0, 100 Hz)',
      '[1] exited with code 0',
    ].join('\r\n');
    expect(maskTimingLines(text).split('\r\n')).toEqual([
      'HPET: 100.000000 MHz, 64-bit, 3 timers',
      'Calibrated TSC frequency: # MHz (HPET)',
      'Calibrated LAPIC frequency: # MHz',
      '>> ticks',
      'ticks: # timer interrupts (vector 0xf0, 100 Hz)',
      '[1] exited with code 0',
    ]);
  });
});

describe('maskPlatformLines', () => {
  it('reduces platform-dependent lines to their prefix and keeps the rest', () => {
    const text = [
      'boot = vmm BIOS (EAX=0x1BADB002, no information structure)',
      'memory = 16 MiB, kernel image 0x200000-0x206534, bss up to 0x226000',
      'Local APIC: x2APIC mode (MSRs 0x800-0x8FF)',
      'Calibrated TSC frequency: 2467 MHz (CPUID 0x16)',
      'Calibrated LAPIC frequency: 1000 MHz',
      'exits: hypervisor "RVMRVMRVMRVM" reports 1234 VM exits',
      '[2] killed: page fault at 0xdead0000',
    ].join('\n');
    expect(maskPlatformLines(text).split('\n')).toEqual([
      'boot = …',
      'memory = …',
      'Local APIC: …',
      'Calibrated TSC frequency: …',
      'Calibrated LAPIC frequency: # MHz',
      'exits: …',
      '[2] killed: page fault at 0xdead0000',
    ]);
  });
});

describe.skipIf(!haveQemu)('sample guest under QEMU (q35, TCG)', () => {
  it('boots via Multiboot, answers every shell command, and powers off', async () => {
    const t = await runQemu({ kernel: KERNEL, input: COMMANDS });
    const why = `${qemuArgs({ kernel: KERNEL })}\n${explain(t)}`;
    expect(t.timedOut, why).toBe(false);
    expect(t.linesTyped, why).toBe(COMMANDS.length);
    // ACPI S5 through the q35 PM1a control port that SeaBIOS set up: a clean exit.
    expect(t.exitCode, why).toBe(0);
    const text = t.text;

    expect(text).toContain('arch = x86_64\nplatform = vmm-sample-x86_64\n');
    expect(text).toMatch(/^boot = multiboot information at 0x[0-9a-f]+, flags 0x[0-9a-f]+$/m);
    expect(text).toContain('kernel base = 0xffffff8000200000 (higher half)\n');
    expect(text).toContain('hypervisor = none\n');
    expect(text).toContain('Initializing HPET...\nHPET: 100.000000 MHz, 64-bit, 3 timers\n');
    expect(text).toContain('Local APIC: xAPIC mode (MMIO at 0xfee00000)\n');
    expect(text).toMatch(/^Calibrated TSC frequency: [1-9]\d* MHz \((HPET|CPUID 0x16)\)$/m);
    const lapic = /^Calibrated LAPIC frequency: (\d+) MHz$/m.exec(text);
    expect(Number(lapic?.[1])).toBeGreaterThan(0);
    expect(text).toContain('Running tasks...\nvmm sample shell: type help\n>> ');

    const help = answerTo(text, 'help');
    for (const command of [...COMMANDS, 'crash']) expect(help).toMatch(new RegExp(`^  ${command} `, 'm'));

    expect(answerTo(text, 'hello')).toBe(
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

    const ticks = /^ticks: (\d+) timer interrupts \(vector 0xf0, 100 Hz\)\n$/.exec(answerTo(text, 'ticks'));
    expect(ticks, why).not.toBeNull();
    // `hello` waited for two ticks, so at least that many were counted.
    expect(Number(ticks?.[1])).toBeGreaterThanOrEqual(2);

    expect(answerTo(text, 'mem')).toBe(
      [
        'mem: mapped a fresh frame at 0xffffff0000000000',
        'mem: wrote 0x5eed5eed12345678, read 0x5eed5eed12345678: ok',
        'mem: unmapped it; reading again page-faults, and the kernel caught it: ok',
        'mem: the frame went back to the allocator: ok',
        '',
      ].join('\n'),
    );

    expect(answerTo(text, 'fault')).toBe(
      [
        '[2] started fault',
        'About to write to 0xdead0000, which is not mapped...',
        '[2] killed: page fault at 0xdead0000',
        '',
      ].join('\n'),
    );

    expect(answerTo(text, 'priv')).toMatch(
      /^\[3\] started priv\nAbout to execute CLI at CPL 3\.\.\.\n\[3\] killed: general protection at rip 0x4[0-9a-f]{5}\n$/,
    );
    expect(answerTo(text, 'exits')).toBe('exits: not running under a hypervisor\n');
    expect(answerTo(text, 'poweroff')).toBe('Powering off.\n');
  });

  it('prints the same transcript on every run once the timing lines are masked', async () => {
    const runs = [];
    for (let i = 0; i < 2; i++) runs.push(await runQemu({ kernel: KERNEL, input: COMMANDS }));
    for (const t of runs) expect(t.exitCode, explain(t)).toBe(0);
    const [a, b] = runs.map((t) => maskTimingLines(t.text));
    expect(a).toContain('Calibrated LAPIC frequency: # MHz\n');
    expect(a).toMatch(/^ticks: # timer interrupts/m);
    expect(b).toBe(a);
  });

  it('gives the same transcript through bios-mbi.bin as through SeaBIOS, platform lines masked', async () => {
    const viaQemu = await runQemu({ kernel: KERNEL, input: COMMANDS });
    const viaBios = await runQemu({
      kernel: KERNEL,
      boot: { kind: 'bios', bios: BIOS_MBI },
      input: COMMANDS,
    });
    expect(viaQemu.exitCode, explain(viaQemu)).toBe(0);
    expect(viaBios.exitCode, explain(viaBios)).toBe(DEBUG_EXIT_STATUS);
    expect(viaBios.text).not.toBe(viaQemu.text);
    expect(maskPlatformLines(viaBios.text)).toBe(maskPlatformLines(viaQemu.text));
  });

  it('boots through the vmm BIOS at 0000:8000 with EAX=0x1BADB002 and no information structure', async () => {
    const boot = { kind: 'bios', bios: BIOS } as const;
    const t = await runQemu({ kernel: KERNEL, boot, input: ['hello', 'poweroff'] });
    const why = explain(t);
    expect(t.timedOut, why).toBe(false);
    // No SeaBIOS, so no PM base: the guest's isa-debug-exit fallback ends the run.
    expect(t.exitCode, why).toBe(DEBUG_EXIT_STATUS);
    expect(t.text).toContain('boot = vmm BIOS (EAX=0x1BADB002, no information structure)\n');
    expect(t.text).toContain('memory = 16 MiB,');
    expect(answerTo(t.text, 'hello')).toContain('[1] exited with code 0\n');
    expect(t.text).toContain('>> poweroff\nPowering off.\n');
  });

  it('boots through bios-mbi.bin with a Multiboot information structure built by the BIOS', async () => {
    const boot = { kind: 'bios', bios: BIOS_MBI } as const;
    // Also the line editor: DEL erases (echoing BS, space, BS), an empty line prompts again.
    const input = ['mem', 'helx\x7fp', '', 'frobnicate', 'poweroff'];
    const t = await runQemu({ kernel: KERNEL, boot, input });
    const why = explain(t);
    expect(t.timedOut, why).toBe(false);
    expect(t.exitCode, why).toBe(DEBUG_EXIT_STATUS);
    // flags 0x45 = mem_lower/mem_upper, cmdline, mmap; the structure sits in the BIOS image.
    expect(t.text).toMatch(/^boot = multiboot information at 0x8[0-9a-f]{3}, flags 0x45$/m);
    expect(t.text).toContain('mem_lower = 640 KiB, mem_upper = 15360 KiB\nmemory = 16 MiB,');
    expect(answerTo(t.text, 'mem')).toContain(': ok\n');
    expect(t.raw).toContain('>> helx\b \bp\r\ncommands:\r\n');
    expect(t.text).toContain('  poweroff switch the machine off\n');
    expect(t.text).toContain('>> \n>> frobnicate\nunknown command: frobnicate (try help)\n>> poweroff\n');
  });

  it('survives VMCALL raising #UD when CPUID claims a hypervisor that does not take it (TCG)', async () => {
    // Default qemu64 under TCG sets CPUID.1:ECX[31] and answers leaf 0x40000000 with "TCGTCGTCGTCG".
    const t = await runQemu({ kernel: KERNEL, cpu: 'qemu64', input: ['exits', 'crash'] });
    const why = explain(t);
    expect(t.timedOut, why).toBe(false);
    expect(t.text).toMatch(/^hypervisor = "TCGTCGTCGTCG" \(CPUID 0x40000000, max leaf 0x[0-9a-f]+\)$/m);
    expect(answerTo(t.text, 'exits')).toBe(
      'exits: hypervisor "TCGTCGTCGTCG" does not implement VMCALL (#UD)\n',
    );
    // `crash`: a kernel page fault is reported (vector, error code, RIP, CR2) and the machine stops.
    expect(t.exitCode, why).toBe(0);
    expect(answerTo(t.text, 'crash')).toMatch(
      new RegExp(
        [
          '^crash: the kernel reads 0xffffff7000000000, which is not mapped',
          '',
          'unhandled page fault \\(vector 14\\) in kernel, error code 0x0',
          'RIP=0xffffff80002[0-9a-f]{5} CS=0x8 RFLAGS=0x[0-9a-f]+ RSP=0xffffff80002[0-9a-f]{5} CR2=0xffffff7000000000',
          '',
          '\\*\\*\\* kernel panic: unrecoverable exception',
          'Powering off\\.',
          '$',
        ].join('\n'),
      ),
    );
  });
});
