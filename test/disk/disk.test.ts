import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VmmError } from '../../src/core/errors.js';
import {
  FileDevice,
  addFiles,
  catDisk,
  createDisk,
  formatListing,
  listDisk,
  parseSize,
} from '../../src/disk/index.js';
import { HAVE_FAT_TOOLS, fsck, removeDir, tempDir, tool } from '../plugins/fat-loader/fat/helpers.js';

let dir = '';
beforeAll(() => {
  dir = tempDir('disk');
});
afterAll(() => removeDir(dir));

async function failure(p: Promise<unknown>): Promise<VmmError> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof VmmError)) throw e;
    return e;
  }
  throw new Error('expected a VmmError');
}

describe('parseSize', () => {
  it('reads binary and decimal units', () => {
    expect(parseSize('64M')).toBe(64 * 1024 * 1024);
    expect(parseSize('64MiB')).toBe(64 * 1024 * 1024);
    expect(parseSize('1440K')).toBe(1_474_560);
    expect(parseSize('1.5K')).toBe(1536);
    expect(parseSize('512KB')).toBe(512_000);
    expect(parseSize('2g')).toBe(2 * 1024 ** 3);
    expect(parseSize('1048576')).toBe(1048576);
  });

  it('refuses nonsense and sizes that are not whole sectors', () => {
    expect(() => parseSize('64Q')).toThrow(/bad size "64Q"/);
    expect(() => parseSize('1000')).toThrow(/1000 bytes is not a positive multiple of 512/);
    expect(() => parseSize('')).toThrow(VmmError);
  });
});

describe('vmm disk create / add / ls / cat', () => {
  it('creates an image, adds files and a directory tree, lists and reads them back', async () => {
    const img = join(dir, 'disk.img');
    const r = await createDisk(img, { size: '64M' });
    expect(r.fatType).toBe(16);
    expect(statSync(img).size).toBe(64 * 1024 * 1024);

    const host = join(dir, 'host');
    mkdirSync(join(host, 'tree', 'deeper'), { recursive: true });
    writeFileSync(
      join(host, 'rvm-bios.bin'),
      Uint8Array.from({ length: 5000 }, (_, i) => i & 0xff),
    );
    writeFileSync(join(host, 'A long name.txt'), 'long\n');
    writeFileSync(join(host, 'tree', 'one.txt'), '1');
    writeFileSync(join(host, 'tree', 'deeper', 'two.txt'), '22');

    const added = await addFiles(img, [join(host, 'rvm-bios.bin'), join(host, 'A long name.txt')]);
    expect(added).toEqual(['/rvm-bios.bin', '/A long name.txt']);
    expect(await addFiles(img, [join(host, 'tree')], { to: 'guest/files' })).toEqual([
      '/guest/files/tree',
      '/guest/files/tree/deeper',
      '/guest/files/tree/deeper/two.txt',
      '/guest/files/tree/one.txt',
    ]);

    const root = await listDisk(img);
    expect(root.map((e) => e.name)).toEqual(['rvm-bios.bin', 'A long name.txt', 'guest']);
    expect(formatListing(root)).toEqual([' 5000  rvm-bios.bin', '    5  A long name.txt', '<DIR>  guest/']);
    expect((await listDisk(img, '/GUEST/files/tree/deeper')).map((e) => [e.name, e.size])).toEqual([
      ['two.txt', 2],
    ]);
    expect((await listDisk(img, '/rvm-bios.bin')).map((e) => e.size)).toEqual([5000]);
    expect(await catDisk(img, '/RVM-BIOS.BIN')).toEqual(
      new Uint8Array(readFileSync(join(host, 'rvm-bios.bin'))),
    );
    expect(new TextDecoder().decode(await catDisk(img, 'guest/files/tree/deeper/two.txt'))).toBe('22');

    // Adding again replaces the file rather than adding a second entry.
    writeFileSync(join(host, 'rvm-bios.bin'), 'new');
    await addFiles(img, [join(host, 'rvm-bios.bin')]);
    expect((await listDisk(img)).filter((e) => e.name === 'rvm-bios.bin').map((e) => e.size)).toEqual([3]);

    if (HAVE_FAT_TOOLS) {
      const check = fsck(img);
      expect(check.status, check.output).toBe(0);
      expect(tool('mtype', ['-i', img, '::/guest/files/tree/one.txt'])).toBe('1');
      expect(tool('mdir', ['-i', img, '::'])).toMatch(/Volume in drive : is VMM DISK/);
    }
  });

  it('creates FAT12 and FAT32 on request, with a deterministic serial', async () => {
    const a = join(dir, 'a.img');
    const b = join(dir, 'b.img');
    const ra = await createDisk(a, { size: 40 * 1024 * 1024, fat: 32 });
    const rb = await createDisk(b, { size: 40 * 1024 * 1024, fat: 32 });
    expect(ra.fatType).toBe(32);
    expect(ra.serial).toBe(rb.serial);
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
    const c = join(dir, 'c.img');
    expect((await createDisk(c, { size: '1M', fat: 12, label: 'boot' })).label).toBe('BOOT');
    if (HAVE_FAT_TOOLS) {
      for (const img of [a, c]) expect(fsck(img).status).toBe(0);
      expect(tool('mdir', ['-i', c, '::'])).toMatch(/is BOOT/);
    }
  });

  it('names the image in errors and leaves it unchanged when a host file is missing', async () => {
    const img = join(dir, 'err.img');
    await createDisk(img, { size: '4M' });
    writeFileSync(join(dir, 'ok.bin'), 'ok');
    const before = readFileSync(img);
    expect((await failure(addFiles(img, [join(dir, 'ok.bin'), join(dir, 'missing.bin')]))).message).toBe(
      `cannot add ${join(dir, 'missing.bin')}: no such file or directory`,
    );
    expect(readFileSync(img).equals(before)).toBe(true);
    await addFiles(img, [join(dir, 'ok.bin')]);
    expect((await failure(catDisk(img, '/nimbos.bin'))).message).toBe(
      `no file "nimbos.bin" in ${img}; the root directory holds: ok.bin`,
    );
    expect((await failure(createDisk(img, { size: '4M' }))).message).toBe(
      `cannot create ${img}: the file already exists`,
    );
    expect((await createDisk(img, { size: '4M', overwrite: true })).fatType).toBe(12);
    expect((await failure(listDisk(join(dir, 'nope.img')))).message).toBe(
      `cannot open ${join(dir, 'nope.img')}: no such file`,
    );
    const junk = join(dir, 'junk.img');
    writeFileSync(junk, new Uint8Array(1024 * 1024));
    expect((await failure(listDisk(junk))).message).toBe(
      `${junk}: not a FAT volume: sector 0 holds neither a FAT boot sector nor an MBR partition table`,
    );
    expect((await failure(createDisk(join(dir, 'tiny.img'), { size: '4M', fat: 32 }))).message).toMatch(
      /tiny\.img: cannot format 4096 KiB as FAT32/,
    );
  });

  it('a read-only FileDevice refuses writes', async () => {
    const img = join(dir, 'ro.img');
    await createDisk(img, { size: '2M' });
    const dev = FileDevice.open(img);
    try {
      expect(dev.write).toBeUndefined();
      expect(dev.sectorCount).toBe(4096);
      expect(dev.read(0, 1)[510]).toBe(0x55);
      expect(() => dev.read(4095, 2)).toThrow(/ended 512 bytes early/);
    } finally {
      dev.close();
    }
  });
});
