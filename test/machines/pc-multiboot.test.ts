/**
 * machines/pc-multiboot.yaml: the --kernel, --append and --initrd shorthands reach the multiboot
 * plugin (guests/cputests/echo.elf prints back its command line and modules), the kernel's
 * isa-debug-exit write ends the run with QEMU's status (value*2+1), and a machine started without
 * --kernel is a clear error.
 */
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryConsole, VmmErrors, loadMachine, resolveMachine } from '../../src/index.js';
import { MACHINE, ROOT, normalize, runUnderVmm } from '../plugins/x86-64/system/cputests.js';

const ECHO = resolve(ROOT, 'guests/cputests/echo.elf');
const TMP = resolve(ROOT, 'test/.tmp');

describe('machines/pc-multiboot.yaml', () => {
  it('declares the kernel, append and initrd shorthands for the multiboot plugin', async () => {
    const m = await resolveMachine(MACHINE, { shorthands: { kernel: ECHO }, noUserConfig: true });
    expect(m.shorthands).toEqual({
      kernel: 'host.boot.kernel',
      append: 'host.boot.cmdline',
      initrd: 'host.boot.modules',
    });
    const boot = m.plugins.find((p) => p.path === 'host.boot');
    expect(boot?.plugin).toBe('multiboot');
    expect(boot?.settings.kernel).toBe(ECHO);
    expect(m.plugins.find((p) => p.path === 'host.cpu')?.plugin).toBe('x86-64');
  });

  it('passes --append and --initrd to the kernel and ends with its isa-debug-exit status', async () => {
    mkdirSync(TMP, { recursive: true });
    const dir = mkdtempSync(join(TMP, 'pc-mb-'));
    writeFileSync(join(dir, 'first.txt'), 'first module\n');
    writeFileSync(join(dir, 'second.txt'), 'second\n');
    const { text, stop } = await runUnderVmm(
      { name: 'echo', image: ECHO },
      {
        append: 'console=ttyS0 exit=5',
        initrd: `${join(dir, 'first.txt')} arg=1,${join(dir, 'second.txt')}`,
      },
    );
    expect(normalize(text)).toBe(
      [
        'echo: magic=0x2badb002',
        'cmdline: [echo.elf console=ttyS0 exit=5]',
        'modules: 2',
        `module 0: [${join(dir, 'first.txt')} arg=1] 13 bytes, page aligned: yes, starts [first module]`,
        `module 1: [${join(dir, 'second.txt')}] 7 bytes, page aligned: yes, starts [second]`,
        '',
      ].join('\n'),
    );
    expect(stop).toMatchObject({ kind: 'poweroff', code: 5 * 2 + 1, source: 'isa-debug-exit' });
  });

  it('without --kernel: a clear error naming the setting and the flag', async () => {
    const err = await loadMachine(MACHINE, { noUserConfig: true }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(VmmErrors);
    const text = String((err as Error).message) + JSON.stringify(err);
    expect(text).toContain('missing setting "kernel" for multiboot (host.boot)');
    expect(text).toContain('--kernel FILE');
  });

  // The real NimbOS image booted bare as a Multiboot kernel (it carries an a.out-kludge header for
  // 0x200000), as `vmm up machines/pc-multiboot.yaml --kernel nimbos.bin` does. Only with
  // VMM_NIMBOS_DIR: the image is never part of the repository. 10 ns per instruction as in
  // q35-nimbos.yaml: NimbOS busy-waits, so guest time per instruction sets the wall time.
  const nimbos = process.env.VMM_NIMBOS_DIR;
  const kernel = nimbos === undefined ? '' : join(nimbos, 'nimbos.bin');
  it.skipIf(!existsSync(kernel))(
    'NimbOS bare (VMM_NIMBOS_DIR): boots to the shell and passes usertests',
    async () => {
      const console = new MemoryConsole();
      const m = await loadMachine(MACHINE, {
        shorthands: { kernel },
        set: ['host.cpu.ns-per-instruction=10'],
        console,
        noUserConfig: true,
      });
      try {
        void console.waitFor('>> ').then(() => console.type('usertests\r'));
        void console.waitFor('usertests passed!').then(() => m.machine.stop({ kind: 'quit' }));
        const stop = await m.run({ wallTimeoutMs: 1_800_000 });
        const text = console.text();
        expect(text).toContain('platform = rvm-guest-x86_64');
        expect(text).toContain('Rust user shell');
        expect(text).toContain('usertests passed!');
        expect(stop.kind).toBe('quit');
      } finally {
        await m.dispose();
      }
    },
    1_900_000,
  );
});
