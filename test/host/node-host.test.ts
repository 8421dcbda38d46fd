import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { VmmError } from '../../src/core/errors.js';
import { NodeHost } from '../../src/host/node-host.js';

let dir: string;
const host = new NodeHost();

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-host-'));
});

function thrown(f: () => unknown): VmmError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(VmmError);
    return e as VmmError;
  }
  throw new Error('expected a VmmError');
}

describe('NodeHost', () => {
  it('resolves paths against the base directory, and ~ against HOME', () => {
    expect(host.resolve('disk.img', '/a/b')).toBe('/a/b/disk.img');
    expect(host.resolve('../x.bin', '/a/b')).toBe('/a/x.bin');
    expect(host.resolve('/abs/y', '/a/b')).toBe('/abs/y');
    expect(host.resolve('~/z', '/a')).toBe(path.join(process.env.HOME ?? '', 'z'));
  });

  it('reads whole files and says which file is missing', () => {
    const f = path.join(dir, 'image.bin');
    fs.writeFileSync(f, Uint8Array.of(1, 2, 3));
    expect(host.exists(f)).toBe(true);
    expect([...host.readFile(f)]).toEqual([1, 2, 3]);
    const missing = path.join(dir, 'nimbos.bin');
    expect(host.exists(missing)).toBe(false);
    const e = thrown(() => host.readFile(missing));
    expect(e.code).toBe('image');
    expect(e.format()).toBe(`${missing}: cannot read ${missing}: no such file or directory`);
  });

  it('refuses a directory as an image', () => {
    const e = thrown(() => host.readFile(dir));
    expect(e.code).toBe('image');
    expect(e.message).toBe(`cannot read ${dir}: is a directory, not a file`);
  });

  it('writes files, and names the file when it cannot', () => {
    const f = path.join(dir, 'out.bin');
    host.writeFile(f, Uint8Array.of(9, 8));
    expect([...fs.readFileSync(f)]).toEqual([9, 8]);
    const bad = path.join(dir, 'no-dir', 'out.bin');
    const e = thrown(() => host.writeFile(bad, Uint8Array.of(1)));
    expect(e.code).toBe('disk');
    expect(e.message).toBe(`cannot write ${bad}: no such file or directory`);
  });
});

describe('NodeHostFile', () => {
  it('reads at offsets, with zeros past the end of the file', () => {
    const f = path.join(dir, 'disk.img');
    fs.writeFileSync(
      f,
      Uint8Array.from({ length: 10 }, (_, i) => i + 1),
    );
    const h = host.open(f, 'r');
    expect(h.size).toBe(10);
    expect([...h.read(2, 3)]).toEqual([3, 4, 5]);
    expect([...h.read(8, 4)]).toEqual([9, 10, 0, 0]);
    expect([...h.read(20, 2)]).toEqual([0, 0]);
    h.close();
  });

  it('writes in r+ mode, growing the file; refuses writes in r mode', () => {
    const f = path.join(dir, 'disk.img');
    fs.writeFileSync(f, new Uint8Array(4));
    const ro = host.open(f, 'r');
    const e = thrown(() => ro.write(0, Uint8Array.of(1)));
    expect(e.code).toBe('disk');
    expect(e.message).toContain('read-only');
    ro.close();
    const rw = host.open(f, 'r+');
    rw.write(2, Uint8Array.of(7, 7, 7, 7));
    expect(rw.size).toBe(6);
    rw.flush();
    rw.close();
    expect([...fs.readFileSync(f)]).toEqual([0, 0, 7, 7, 7, 7]);
  });

  it('names a missing disk image, and a closed file', () => {
    const missing = path.join(dir, 'disk.img');
    const e = thrown(() => host.open(missing, 'r+'));
    expect(e.code).toBe('disk');
    expect(e.message).toBe(`cannot open for writing ${missing}: no such file or directory`);
    const f = path.join(dir, 'x.img');
    fs.writeFileSync(f, new Uint8Array(1));
    const h = host.open(f, 'r');
    h.close();
    h.close(); // idempotent
    expect(thrown(() => h.read(0, 1)).message).toBe(`${f} is closed`);
  });

  it('wallMs moves forward', () => {
    const a = host.wallMs();
    let b = host.wallMs();
    while (b === a) b = host.wallMs();
    expect(b).toBeGreaterThan(a);
  });
});
