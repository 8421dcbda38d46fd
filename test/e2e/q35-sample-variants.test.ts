/**
 * The q35-sample variants that move a device from passthrough to MMIO emulation by the policy:
 * machines/q35-sample-xapic.yaml (the guest's local APIC as an xAPIC page) and
 * machines/q35-sample-hpet-emulated.yaml (a guest HPET instead of the host's page). Each boots to
 * the sample shell, sees timer interrupts, powers off with status 0, and its statistics show the
 * EPT-violation exits the emulated device adds (the base machine has none). The xAPIC variant also
 * runs through the CLI with --stats=json.
 *
 * Each boot is a few seconds; the CLI run needs dist/ (rebuilt first when stale).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, runCli } from '../commands/cli-helpers.js';
import { commandAnswer } from '../guests/qemu-oracle.js';
import { ROOT, machineFile, runSample } from './sample-session.js';
import type { SampleRun } from './sample-session.js';

const COMMANDS = ['hello', 'ticks', 'poweroff'];

function ticks(run: SampleRun): number {
  const m = /^ticks: (\d+) timer interrupts \(vector 0xf0, 100 Hz\)\n$/.exec(
    commandAnswer(run.text, 'ticks'),
  );
  expect(m, run.text.slice(-600)).not.toBeNull();
  return Number(m![1]);
}

function expectPoweredOff(run: SampleRun): void {
  expect(run.text.endsWith('>> poweroff\nPowering off.\n')).toBe(true);
  expect(run.stop).toMatchObject({ kind: 'poweroff', code: 0, source: 'acpi-pm' });
  expect(run.exitCode).toBe(0);
}

describe('machines/q35-sample-xapic.yaml', () => {
  let run: SampleRun;
  beforeAll(async () => {
    run = await runSample(machineFile('q35-sample-xapic.yaml'), COMMANDS);
  }, 120_000);

  it('boots with an xAPIC (CPUID without x2APIC) whose page the policy emulates', () => {
    expect(run.text).toContain('Local APIC: xAPIC mode (MMIO at 0xfee00000)\n');
    expect(run.text).toContain('APIC timer: periodic, vector 0xf0, 100 Hz\n');
    expect(run.text).toContain('vmm sample shell: type help\n>> ');
  });

  it('takes timer interrupts (each EOI an emulated MMIO write) and powers off', () => {
    const n = ticks(run);
    expect(n).toBeGreaterThanOrEqual(2);
    expectPoweredOff(run);
    const pol = run.stats['rvm-tutorial']!;
    const mmio = Number(pol['mmio.guest-lapic']);
    // Set-up and calibration registers, plus one EOI per tick at least.
    expect(mmio).toBeGreaterThanOrEqual(8 + n);
    expect(Number(pol['mmioExits'])).toBe(mmio);
    expect(Number(run.stats.vmx!['exits.EptViolation'])).toBe(mmio);
    // No x2APIC MSR traffic: the guest uses the page.
    expect(Number(run.stats.vmx!['exits.Wrmsr'] ?? 0)).toBeLessThanOrEqual(1);
    expect(Number(run.stats['guest-lapic']!['eois'])).toBeGreaterThanOrEqual(n);
  });

  it('shows the MMIO exits in vmm up --stats=json', async () => {
    await ensureBuilt();
    mkdirSync(join(ROOT, 'test/.tmp'), { recursive: true });
    const cwd = mkdtempSync(join(ROOT, 'test/.tmp/e2e-xapic-'));
    const r = await runCli(['up', machineFile('q35-sample-xapic.yaml'), '--stats=json'], {
      cwd,
      input: 'poweroff\n',
      encoding: 'latin1',
      killAfterMs: 150_000,
    }).finally(() => rmSync(cwd, { recursive: true, force: true }));
    expect(r.code, r.stderr).toBe(0);
    const json = r.stdout.slice(r.stdout.indexOf('\n{') + 1);
    const out = JSON.parse(json) as { exitCode: number; stats: Record<string, Record<string, number>> };
    expect(out.exitCode).toBe(0);
    const stats = out.stats;
    expect(stats['rvm-tutorial']!['mmio.guest-lapic']).toBeGreaterThan(0);
    expect(stats.vmx!['exits.EptViolation']).toBe(stats['rvm-tutorial']!['mmioExits']);
  }, 300_000);
});

describe('machines/q35-sample-hpet-emulated.yaml', () => {
  let run: SampleRun;
  beforeAll(async () => {
    run = await runSample(machineFile('q35-sample-hpet-emulated.yaml'), COMMANDS);
  }, 120_000);

  it('calibrates against the emulated HPET, takes timer interrupts and powers off', () => {
    expect(run.text).toContain('HPET: 100.000000 MHz, 64-bit, 3 timers\n');
    expect(run.text).toMatch(/\nCalibrated TSC frequency: \d+ MHz \(HPET\)\n/);
    expect(run.text).toContain('Local APIC: x2APIC mode (MSRs 0x800-0x8FF)\n');
    expect(ticks(run)).toBeGreaterThanOrEqual(2);
    expectPoweredOff(run);
  });

  it('counts the guest HPET accesses as MMIO exits (the calibration loops read the counter)', () => {
    const pol = run.stats['rvm-tutorial']!;
    const mmio = Number(pol['mmio.guest-hpet']);
    expect(mmio).toBeGreaterThan(100);
    expect(Number(pol['mmioExits'])).toBe(mmio);
    expect(Number(run.stats.vmx!['exits.EptViolation'])).toBe(mmio);
    // The host's HPET is no longer touched by the guest: its page is not mapped.
    expect(run.stats['guest-hpet']).toBeDefined();
  });
});
