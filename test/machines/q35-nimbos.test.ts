/**
 * machines/q35-nimbos.yaml: the tutorial machine. Our own BIOS and sample OS (guests/bios/bios.bin,
 * guests/sample/sample.bin) stand in for rvm-bios.bin and nimbos.bin on a FAT disk made in
 * test/.tmp, loaded through ahci + fat-loader and booted in real mode at 0000:8000 under the
 * rvm-tutorial policy. The real NimbOS images run only when VMM_NIMBOS_DIR names a directory
 * holding them (they are never part of the repository).
 */
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryConsole, MemoryLog, loadMachine } from '../../src/index.js';
import { addFiles, createDisk } from '../../src/disk/index.js';

const ROOT = resolve(import.meta.dirname, '../..');
const MACHINE = resolve(ROOT, 'machines/q35-nimbos.yaml');
const TMP = resolve(ROOT, 'test/.tmp/q35-nimbos');

/** A FAT32 disk holding `files` (host path -> name on the volume). */
async function makeDisk(name: string, files: Record<string, string>): Promise<string> {
  const dir = join(TMP, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const paths: string[] = [];
  for (const [src, as] of Object.entries(files)) {
    copyFileSync(src, join(dir, as));
    paths.push(join(dir, as));
  }
  const image = join(dir, 'disk.img');
  await createDisk(image, { size: '64M', fat: 32 });
  await addFiles(image, paths);
  return image;
}

/** Boot, type `input` at the first prompt, run to the stop (or until `until` appears). */
async function boot(disk: string, input: string, prompt: string, timeoutMs: number, until?: string) {
  const console = new MemoryConsole();
  const log = new MemoryLog();
  const m = await loadMachine(MACHINE, {
    shorthands: { disk },
    console,
    logSink: log.sink,
    noUserConfig: true,
  });
  try {
    void console.waitFor(prompt).then(() => console.type(input));
    if (until) void console.waitFor(until).then(() => m.machine.stop({ kind: 'quit' }));
    const stop = await m.run({ wallTimeoutMs: timeoutMs });
    return { stop, text: console.text(), log: log.text(), stats: m.stats() };
  } finally {
    await m.dispose();
  }
}

describe('machines/q35-nimbos.yaml', () => {
  it('boots the stand-in BIOS and OS from disk.img to the prompt; the guest asks for the exit count and powers off', async () => {
    const disk = await makeDisk('sample', {
      [resolve(ROOT, 'guests/bios/bios.bin')]: 'rvm-bios.bin',
      [resolve(ROOT, 'guests/sample/sample.bin')]: 'nimbos.bin',
    });
    const r = await boot(disk, 'exits\rpoweroff\r', '>> ', 120_000);
    expect(r.stop).toMatchObject({ kind: 'poweroff', code: 0, source: 'acpi-pm' });
    expect(r.log).toMatch(/Starting virtualization\.\.\.[\s\S]*Running guest\.\.\./);
    expect(r.log).toContain('loaded nimbos.bin (');
    expect(r.text).toContain('boot = vmm BIOS (EAX=0x1BADB002, no information structure)');
    expect(r.text).toContain('hypervisor = "RVMRVMRVMRVM"');
    expect(r.text).toContain('Local APIC: x2APIC mode');
    expect(r.text).toMatch(/exits: hypervisor "RVMRVMRVMRVM" reports \d+ VM exits/);
    expect(r.log).toMatch(/guest powered off: \d+ VM exits \(IoInstruction/);
    expect(r.stats['guest-bus']).toMatchObject({ unmappedPortReads: 0, unmappedPortWrites: 0 });
  }, 150_000);

  it('a missing disk image: says what to make and how', async () => {
    const missing = join(TMP, 'no-such-disk.img');
    const err = await loadMachine(MACHINE, { shorthands: { disk: missing }, noUserConfig: true }).then(
      () => undefined,
      (e: unknown) => e,
    );
    const text = err instanceof Error ? err.message : String(err);
    expect(text).toContain(`the disk image ${missing} does not exist`);
    expect(text).toContain('holding rvm-bios.bin and nimbos.bin');
    expect(text).toContain(`vmm disk create ${missing} --size 64M --fat 32`);
    expect(text).toContain(`vmm disk add ${missing} rvm-bios.bin nimbos.bin`);
  });

  it('a disk without nimbos.bin: the loader names the file', async () => {
    const disk = await makeDisk('bios-only', { [resolve(ROOT, 'guests/bios/bios.bin')]: 'rvm-bios.bin' });
    const m = await loadMachine(MACHINE, { shorthands: { disk }, noUserConfig: true });
    try {
      await expect(m.run({ wallTimeoutMs: 30_000 })).rejects.toThrow(/nimbos\.bin/);
    } finally {
      await m.dispose();
    }
  });

  const nimbos = process.env.VMM_NIMBOS_DIR;
  const haveNimbos =
    nimbos !== undefined &&
    existsSync(join(nimbos, 'nimbos.bin')) &&
    existsSync(join(nimbos, 'rvm-bios.bin'));
  it.skipIf(!haveNimbos)(
    'NimbOS (VMM_NIMBOS_DIR): boots to the shell and passes usertests',
    async () => {
      const disk = await makeDisk('nimbos', {
        [join(nimbos!, 'rvm-bios.bin')]: 'rvm-bios.bin',
        [join(nimbos!, 'nimbos.bin')]: 'nimbos.bin',
      });
      const r = await boot(disk, 'usertests\r', '>> ', 1_800_000, 'usertests passed!');
      expect(r.text).toContain('platform = rvm-guest-x86_64');
      expect(r.text).toContain('Rust user shell');
      expect(r.text).toContain('usertests passed!');
    },
    1_900_000,
  );
});
