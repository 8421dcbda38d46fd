import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, runCli } from './cli-helpers.js';

beforeAll(ensureBuilt);

describe('vmm disk', () => {
  it('creates an image, adds files and a directory, lists and reads them back', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-disk-'));
    const img = path.join(dir, 'disk.img');
    fs.writeFileSync(
      path.join(dir, 'rvm-bios.bin'),
      Uint8Array.from({ length: 3000 }, (_, i) => i & 0xff),
    );
    fs.mkdirSync(path.join(dir, 'apps'));
    fs.writeFileSync(path.join(dir, 'apps', 'hello.txt'), 'hello, world\n');

    const create = await runCli(['disk', 'create', img, '--size', '40M', '--fat', '32']);
    expect(create.code).toBe(0);
    expect(create.stdout).toMatch(/^.*disk\.img: FAT32, 40 MiB, \d+ clusters of \d+ bytes, label "VMM DISK"/);
    expect(fs.statSync(img).size).toBe(40 * 1024 * 1024);

    const add = await runCli([
      'disk',
      'add',
      img,
      path.join(dir, 'rvm-bios.bin'),
      path.join(dir, 'apps'),
      '--to',
      '/boot',
    ]);
    expect(add.stderr).toBe('');
    expect(add.code).toBe(0);
    expect(add.stdout).toBe('/boot/rvm-bios.bin\n/boot/apps\n/boot/apps/hello.txt\n');

    const ls = await runCli(['disk', 'ls', img, '/boot']);
    expect(ls.code).toBe(0);
    expect(ls.stdout).toBe(' 3000  rvm-bios.bin\n<DIR>  apps/\n');

    const cat = await runCli(['disk', 'cat', img, '/boot/apps/hello.txt']);
    expect(cat.stdout).toBe('hello, world\n');
    const bin = await runCli(['disk', 'cat', img, '/boot/rvm-bios.bin'], { encoding: 'latin1' });
    expect(Buffer.from(bin.stdout, 'latin1').equals(fs.readFileSync(path.join(dir, 'rvm-bios.bin')))).toBe(
      true,
    );
  });

  it('reports bad input with exit code 2 and touches nothing', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-disk-'));
    const img = path.join(dir, 'disk.img');
    expect((await runCli(['disk', 'create', img, '--size', '1000'])).code).toBe(2);
    expect(fs.existsSync(img)).toBe(false);
    expect((await runCli(['disk', 'create', img, '--size', '2M'])).code).toBe(0);
    const again = await runCli(['disk', 'create', img, '--size', '2M']);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('disk.img');
    const missing = await runCli(['disk', 'add', img, path.join(dir, 'nope.bin')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('nope.bin');
    const cat = await runCli(['disk', 'cat', img, '/nope.bin']);
    expect(cat.code).toBe(2);
    expect(cat.stdout).toBe('');
    expect((await runCli(['disk', 'ls', path.join(dir, 'no.img')])).code).toBe(2);
  });
});
