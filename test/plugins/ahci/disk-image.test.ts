/** The copy-on-write backing store: the image file changes only with persist, and only on flush. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NodeHost } from '../../../src/host/node-host.js';
import { DiskImage } from '../../../plugins/ahci/disk-image.js';
import { patternImage, tmpDir, writeImage } from './support.js';

const host = new NodeHost();
const sameAs = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;

describe('ahci disk image', () => {
  it('keeps writes in the overlay without persist: reads see them, the file does not', () => {
    const dir = tmpDir('img-');
    const orig = patternImage(64);
    const p = writeImage(dir, 'a.img', orig);
    const img = DiskImage.open(host, p, false);
    const data = new Uint8Array(3 * 512).fill(0xab);
    img.write(7, data); // straddles the first two 4 KiB chunks
    const back = img.read(6, 5);
    expect(sameAs(back.subarray(512, 4 * 512), data)).toBe(true);
    expect(sameAs(back.subarray(0, 512), orig.subarray(6 * 512, 7 * 512))).toBe(true);
    expect(sameAs(back.subarray(4 * 512), orig.subarray(10 * 512, 11 * 512))).toBe(true);
    img.flush();
    img.close();
    expect(sameAs(readFileSync(p), orig)).toBe(true);
  });

  it('writes the overlay back on flush with persist, and only then', () => {
    const dir = tmpDir('img-');
    const orig = patternImage(20); // the last chunk is partial (20 sectors = 2.5 chunks)
    const p = writeImage(dir, 'b.img', orig);
    const img = DiskImage.open(host, p, true);
    img.write(1, new Uint8Array(512).fill(1));
    img.write(19, new Uint8Array(512).fill(2));
    expect(sameAs(readFileSync(p), orig)).toBe(true);
    img.flush();
    const want = orig.slice();
    want.fill(1, 512, 1024);
    want.fill(2, 19 * 512, 20 * 512);
    expect(sameAs(readFileSync(p), want)).toBe(true);
    expect(img.stats.chunksFlushed).toBe(2);
    img.close();
  });

  it('refuses missing and too-small images, naming the file; ignores a trailing partial sector', () => {
    const dir = tmpDir('img-');
    expect(() => DiskImage.open(host, join(dir, 'none.img'), false)).toThrow(
      /disk image .*none\.img not found/,
    );
    const small = join(dir, 'small.img');
    writeFileSync(small, new Uint8Array(100));
    expect(() => DiskImage.open(host, small, false)).toThrow(
      /small\.img is 100 bytes, smaller than one 512-byte sector/,
    );
    const odd = join(dir, 'odd.img');
    writeFileSync(odd, new Uint8Array(1000));
    const img = DiskImage.open(host, odd, false);
    expect(img.sectors).toBe(1);
    expect(img.trailingBytes).toBe(488);
    img.close();
  });
});
