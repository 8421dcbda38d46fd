/**
 * A disk's `create:` recipe: the image it makes equals the one `vmm disk create` + `vmm disk add`
 * make from the same files (so the FAT code paths are the same ones users run), it is written to
 * `image:` when that is named and absent and left alone when present, it lives in memory when no
 * `image:` is named, and bad recipes are errors naming the setting.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildImage } from '../../../plugins/ahci/create-image.js';
import { NodeHost } from '../../../src/host/node-host.js';
import { addFiles, createDisk, listDisk } from '../../../src/disk/index.js';
import { Tokens, loadMachine } from '../../../src/index.js';
import { tmpDir } from './support.js';

function machine(dir: string, disk: string): string {
  const f = join(dir, 'm.yaml');
  writeFileSync(
    f,
    `host:\n  memory: 32MiB\n  devices:\n    - { plugin: pci-host }\n    - { plugin: ahci, disks: [${disk}] }\n`,
  );
  return f;
}

function hostFiles(dir: string): { a: string; b: string } {
  const a = join(dir, 'alpha.bin');
  const b = join(dir, 'beta.txt');
  writeFileSync(
    a,
    Uint8Array.from({ length: 3000 }, (_, i) => (i * 7) & 0xff),
  );
  writeFileSync(b, 'second file\n');
  return { a, b };
}

describe('ahci disk create: recipe', () => {
  it('builds the same bytes as vmm disk create + add', async () => {
    const dir = tmpDir('ahci-create-');
    const { a, b } = hostFiles(dir);
    const img = join(dir, 'ref.img');
    await createDisk(img, { size: '40M', fat: 32 });
    await addFiles(img, [a, b]);
    const built = await buildImage(new NodeHost(), {
      size: 40 * 1024 * 1024,
      fat: 32,
      files: { 'alpha.bin': a, 'beta.txt': b },
    });
    expect(Buffer.from(built).equals(readFileSync(img))).toBe(true);
  });

  it('writes the image to `image` when it is absent, and uses an existing one as it is', async () => {
    const dir = tmpDir('ahci-create-');
    const { a } = hostFiles(dir);
    const disk = `{ image: made.img, create: { size: 2M, files: { boot/alpha.bin: alpha.bin } } }`;
    const lm = await loadMachine(machine(dir, disk), { noUserConfig: true });
    await lm.dispose();
    const made = join(dir, 'made.img');
    expect(existsSync(made)).toBe(true);
    expect((await listDisk(made, '/boot')).map((e) => e.name)).toEqual(['alpha.bin']);
    // Present: not rebuilt (a changed host file does not reach it).
    writeFileSync(a, 'changed');
    const before = readFileSync(made);
    const again = await loadMachine(machine(dir, disk), { noUserConfig: true });
    expect(again.provided(Tokens.BlockController)?.disks[0]?.sectors).toBe(4096);
    await again.dispose();
    expect(readFileSync(made).equals(before)).toBe(true);
  });

  it('keeps the image in memory when no `image` is named', async () => {
    const dir = tmpDir('ahci-create-');
    hostFiles(dir);
    const lm = await loadMachine(
      machine(dir, `{ create: { size: 1M, files: { alpha.bin: alpha.bin, beta.txt: beta.txt } } }`),
      { noUserConfig: true },
    );
    const disk = lm.provided(Tokens.BlockController)?.disks[0];
    expect(disk?.sectors).toBe(2048);
    expect(disk?.image).toBe('(in memory: alpha.bin, beta.txt)');
    await lm.dispose();
  });

  it('names the setting when a host file is missing, or the disk has neither image nor create', async () => {
    const dir = tmpDir('ahci-create-');
    const missing = await loadMachine(
      machine(dir, `{ create: { size: 1M, files: { x.bin: nowhere.bin } } }`),
      { noUserConfig: true },
    ).then(
      () => '',
      (e: unknown) => String(e),
    );
    expect(missing).toContain('disks[0].create');
    expect(missing).toContain(`${join(dir, 'nowhere.bin')} (for x.bin on the volume) not found`);
    const neither = await loadMachine(machine(dir, `{ persist: false }`), { noUserConfig: true }).then(
      () => '',
      (e: unknown) => String(e),
    );
    expect(neither).toContain('a disk needs `image` (a file) or `create` (a recipe)');
  });
});
