/**
 * machines/q35-vmx-multiboot.yaml: a Multiboot kernel as the guest of the rvm-tutorial policy.
 * guests/cputests/echo.elf prints the magic and its command line back (every OUT is a VM exit)
 * and ends through isa-debug-exit with the status from its command line.
 */
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryConsole, MemoryLog, loadMachine, resolveMachine } from '../../src/index.js';
import type { VmxEngine } from '../../plugins/vmx/engine.js';

const ROOT = resolve(import.meta.dirname, '../..');
const MACHINE = resolve(ROOT, 'machines/q35-vmx-multiboot.yaml');
const ECHO = resolve(ROOT, 'guests/cputests/echo.elf');

describe('machines/q35-vmx-multiboot.yaml', () => {
  it('declares --kernel and --append for the policy', async () => {
    const m = await resolveMachine(MACHINE, { shorthands: { kernel: ECHO }, noUserConfig: true });
    expect(m.shorthands).toEqual({ kernel: 'vmm.policy.kernel', append: 'vmm.policy.cmdline' });
    const policy = m.plugins.find((p) => p.path === 'vmm.policy');
    expect(policy?.plugin).toBe('rvm-tutorial');
    expect(policy?.settings.kernel).toBe(ECHO);
  });

  it('runs the kernel in the guest with the Multiboot magic and command line; every OUT exits', async () => {
    const console = new MemoryConsole();
    const log = new MemoryLog();
    const m = await loadMachine(MACHINE, {
      shorthands: { kernel: ECHO, append: 'console=ttyS0 exit=5' },
      console,
      logSink: log.sink,
      noUserConfig: true,
    });
    try {
      const stop = await m.run({ virtualTimeoutNs: 5_000_000_000, wallTimeoutMs: 60_000 });
      expect(stop).toMatchObject({ kind: 'poweroff', code: 5 * 2 + 1, source: 'isa-debug-exit' });
      const text = console.text().replace(/\r/g, '');
      expect(text).toContain(
        'echo: magic=0x2badb002\ncmdline: [echo.elf console=ttyS0 exit=5]\nmodules: 0\n',
      );
      const vmx = m.machine.plugins.find((p) => p.instanceName === 'vmx')!.instance as VmxEngine;
      const io = vmx.exitStats().find((e) => e.name === 'IoInstruction')!.count;
      // Each character is at least one OUT (polled transmit: an IN of LSR and an OUT of THR).
      expect(io).toBeGreaterThanOrEqual(text.length);
      expect(m.stats().com1).toMatchObject({ txBytes: console.text().length });
      expect(log.text()).toContain('guest powered off:');
    } finally {
      await m.dispose();
    }
  });

  it('without --kernel: a clear error naming the setting and the flag', async () => {
    const m = await loadMachine(MACHINE, { noUserConfig: true });
    try {
      await expect(m.run({ wallTimeoutMs: 10_000 })).rejects.toThrow(/setting kernel: .*--kernel FILE/);
    } finally {
      await m.dispose();
    }
  });
});
