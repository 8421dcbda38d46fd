/**
 * The shipped tutorial machines as files: q35-sample.yaml is q35-nimbos.yaml with only the disk
 * and the loader's file names changed (the boot itself is in test/e2e), `vmm up` without a file
 * runs it, and q35-nimbos.yaml without its disk says what is missing and how to make it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultMachineFile } from '../../src/cli-lib/paths.js';
import { addFiles, createDisk } from '../../src/disk/index.js';
import { loadMachine, resolveMachine } from '../../src/index.js';
import { tmpDir } from '../plugins/ahci/support.js';

const ROOT = resolve(import.meta.dirname, '../..');
const SAMPLE = resolve(ROOT, 'machines/q35-sample.yaml');
const NIMBOS = resolve(ROOT, 'machines/q35-nimbos.yaml');

const errorText = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => '',
    (e: unknown) => (e instanceof Error ? e.message : String(e)),
  );

describe('machines/q35-sample.yaml', () => {
  it('is what `vmm up` runs with no file, and names the schema on its first line', () => {
    expect(defaultMachineFile()).toBe(SAMPLE);
    expect(readFileSync(SAMPLE, 'utf8').split('\n')[0]).toBe(
      '# yaml-language-server: $schema=../schema/machine.schema.json',
    );
  });

  it('differs from q35-nimbos.yaml only in its disk and the files the loader takes from it', async () => {
    const opts = { noUserConfig: true };
    const sample = await resolveMachine(SAMPLE, opts);
    const nimbos = await resolveMachine(NIMBOS, opts);
    const strip = (ps: typeof sample.plugins) =>
      ps.map((p) => ({ ...p, settings: { ...p.settings, disks: undefined, files: undefined } }));
    expect(strip(sample.plugins)).toEqual(strip(nimbos.plugins));
    const ahci = sample.plugins.find((p) => p.plugin === 'ahci')!;
    expect(ahci.settings.disks).toEqual([
      {
        create: {
          size: 64 * 1024 * 1024,
          fat: 32,
          files: {
            'bios.bin': resolve(ROOT, 'guests/bios/bios.bin'),
            'sample.bin': resolve(ROOT, 'guests/sample/sample.bin'),
          },
        },
        persist: false,
        model: 'VMM HARDDISK',
        firmware: '1.0',
      },
    ]);
    expect(sample.plugins.find((p) => p.plugin === 'fat-loader')!.settings.files).toEqual({
      'bios.bin': 0x8000,
      'sample.bin': 0x200000,
    });
    // The nimbos machine's --disk shorthand still names the disk's image.
    expect(sample.shorthands.disk).toBe('host.devices[4].disks[0].image');
  });
});

describe('machines/q35-nimbos.yaml without its disk', () => {
  it('says which image is missing and the vmm disk commands that make it', async () => {
    const text = await errorText(loadMachine(NIMBOS, { noUserConfig: true }));
    expect(text).toContain('disk.img does not exist');
    expect(text).toContain('vmm disk create');
    expect(text).toContain('--size 64M --fat 32');
    expect(text).toMatch(/vmm disk add \S*disk\.img rvm-bios\.bin nimbos\.bin/);
    expect(text).toContain('NimbOS');
  });

  it('names the file the disk lacks and what the volume holds', async () => {
    const dir = tmpDir('q35-nimbos-');
    const img = join(dir, 'disk.img');
    const bios = join(dir, 'rvm-bios.bin');
    writeFileSync(bios, readFileSync(resolve(ROOT, 'guests/bios/bios.bin')));
    await createDisk(img, { size: '64M', fat: 32 });
    await addFiles(img, [bios]);
    const lm = await loadMachine(NIMBOS, {
      noUserConfig: true,
      set: [`host.devices[4].disks[0].image=${img}`],
    });
    const text = await errorText(lm.run());
    await lm.dispose();
    expect(text).toContain(`no file "nimbos.bin" in ${img}; the root directory holds: rvm-bios.bin`);
  });
});
