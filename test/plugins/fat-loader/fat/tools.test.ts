/**
 * Interoperability with the real tools: images made by this library pass `fsck.fat -n` and extract
 * with mtools; images made by mkfs.fat + mtools read correctly here. Skipped (with a message) when
 * dosfstools or mtools are not installed.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FatType, FatVolume } from '../../../../plugins/fat-loader/fat/index.js';
import {
  MemoryDevice,
  SubDevice,
  encodeMbr,
  formatFat,
  openFat,
} from '../../../../plugins/fat-loader/fat/index.js';
import {
  HAVE_FAT_TOOLS,
  TOOLS,
  byteDiff,
  fsck,
  randomTree,
  readHostTree,
  readVolumeTree,
  removeDir,
  rng,
  tempDir,
  testSeed,
  tool,
  treeSummary,
  writeHostTree,
} from './helpers.js';
import { FileDevice, createDisk } from '../../../../src/disk/index.js';

const MiB = 1024 * 1024;
/** Image sizes per type that both mkfs.fat and formatFat accept. */
const SIZES: Record<FatType, number> = { 12: 4 * MiB, 16: 24 * MiB, 32: 40 * MiB };

let dir = '';
beforeAll(() => {
  dir = tempDir('fat-tools');
});
afterAll(() => removeDir(dir));

const pattern = (n: number, seed: number): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (i * 13 + seed) & 0xff);

/** mkfs.fat on a new image file. */
function mkfs(image: string, type: FatType, size: number): void {
  writeFileSync(image, new Uint8Array(0));
  tool('truncate', ['-s', String(size), image]);
  tool('mkfs.fat', ['-F', String(type), '-n', 'TOOLS', image]);
}

/** Loads an image file into memory as a device. */
const load = (image: string, name = 'disk.img'): MemoryDevice =>
  new MemoryDevice(new Uint8Array(readFileSync(image)), name);

describe.skipIf(!HAVE_FAT_TOOLS)('against dosfstools and mtools', () => {
  describe.each([12, 16, 32] as const)('FAT%i', (type) => {
    it('our image with a generated tree passes fsck.fat and extracts with mcopy', async () => {
      const seed = testSeed(`FAT${type} ours -> mtools`);
      const dev = MemoryDevice.zeroed(SIZES[type], 'ours.img');
      await formatFat(dev, { fatType: type });
      const vol = await openFat(dev);
      const tree = randomTree(rng(seed), vol.clusterSize, { files: 40, maxDepth: 3 });
      for (const d of tree.dirs) await vol.mkdir(d);
      for (const f of tree.files) await vol.writeFile(f.path, f.data);
      const image = join(dir, `ours${type}.img`);
      writeFileSync(image, dev.bytes);

      const check = fsck(image);
      expect(check.output).not.toMatch(/differ|invalid|bad|broken|lost|free cluster/i);
      expect(check.status, check.output).toBe(0);
      expect(tool('mdir', ['-i', image, '::'])).toMatch(/Volume in drive : is VMM DISK/);

      const out = join(dir, `out${type}`);
      tool('mkdir', ['-p', out]);
      tool('mcopy', ['-s', '-n', '-i', image, '::', out + '/']);
      expect(treeSummary(readHostTree(out))).toEqual(treeSummary(tree));
    });

    it('reads an mkfs.fat image filled by mmd and mcopy', async () => {
      const seed = testSeed(`FAT${type} mtools -> ours`);
      const image = join(dir, `tools${type}.img`);
      mkfs(image, type, SIZES[type]);
      const vol = await openFat(load(image));
      expect(vol.type).toBe(type);
      const tree = randomTree(rng(seed), vol.clusterSize, { files: 40, maxDepth: 3, forMtools: true });
      const host = join(dir, `host${type}`);
      writeHostTree(host, tree);
      for (const d of tree.dirs) tool('mmd', ['-i', image, `::${d}`]);
      for (const f of tree.files) tool('mcopy', ['-i', image, join(host, f.path), `::${f.path}`]);

      const ours = await openFat(load(image));
      expect(await ours.label()).toBe('TOOLS');
      expect(treeSummary(await readVolumeTree(ours))).toEqual(treeSummary(tree));
    });

    it('reads a file that mtools wrote into the holes left by mdel', async () => {
      const image = join(dir, `frag${type}.img`);
      mkfs(image, type, SIZES[type]);
      const cs = (await openFat(load(image))).clusterSize;
      for (let i = 0; i < 8; i++) {
        const p = join(dir, `small${i}`);
        writeFileSync(p, pattern(2 * cs, i));
        tool('mcopy', ['-i', image, p, `::/small${i}`]);
      }
      tool('mdel', ['-i', image, '::/small1', '::/small3', '::/small5']);
      if (type === 32) {
        // mtools continues after FSI_Nxt_Free; mark it unknown so it fills the holes from the start.
        const img = readFileSync(image);
        img.writeUInt32LE(0xffffffff, 512 + 492);
        writeFileSync(image, img);
      }
      const big = pattern(20 * cs + 99, 42);
      writeFileSync(join(dir, 'big'), big);
      tool('mcopy', ['-i', image, join(dir, 'big'), '::/big.bin']);

      const vol = await openFat(load(image));
      const chain = await vol.clusterChain('/big.bin');
      expect(chain.filter((c, i) => i > 0 && c !== chain[i - 1]! + 1).length).toBeGreaterThanOrEqual(1);
      expect(byteDiff(await vol.readFile('/BIG.BIN'), big)).toBe('equal');
      for (const i of [0, 2, 4, 6, 7])
        expect(byteDiff(await vol.readFile(`/small${i}`), pattern(2 * cs, i))).toBe('equal');
    });

    it('writes a fragmented file that fsck.fat accepts and mcopy extracts', async () => {
      const dev = MemoryDevice.zeroed(SIZES[type], 'ours.img');
      await formatFat(dev, { fatType: type });
      const vol = await openFat(dev);
      const cs = vol.clusterSize;
      for (let i = 0; i < 8; i++) await vol.writeFile(`/small${i}`, pattern(2 * cs, i));
      for (const i of [1, 3, 5]) await vol.remove(`/small${i}`);
      const big = pattern(20 * cs + 99, 42);
      await vol.writeFile('/big.bin', big);
      const chain = await vol.clusterChain('/big.bin');
      expect(chain.filter((c, i) => i > 0 && c !== chain[i - 1]! + 1).length).toBeGreaterThanOrEqual(1);
      const image = join(dir, `ourfrag${type}.img`);
      writeFileSync(image, dev.bytes);
      const check = fsck(image);
      expect(check.status, check.output).toBe(0);
      const out = join(dir, `ourfrag${type}.out`);
      tool('mcopy', ['-n', '-i', image, '::/big.bin', out]);
      expect(byteDiff(new Uint8Array(readFileSync(out)), big)).toBe('equal');
      expect(tool('mdir', ['-b', '-i', image, '::'])).not.toMatch(/small1|small3|small5/);
    });

    it('keeps the free count that fsck.fat computes (FSInfo on FAT32)', async () => {
      const dev = MemoryDevice.zeroed(SIZES[type], 'ours.img');
      await formatFat(dev, { fatType: type });
      const vol = await openFat(dev);
      await vol.mkdir('/a/b/c');
      await vol.writeFile('/a/b/c/file', pattern(5 * vol.clusterSize, 1));
      const image = join(dir, `free${type}.img`);
      writeFileSync(image, dev.bytes);
      const out = tool('fsck.fat', ['-n', '-v', image]);
      const m = /(\d+)\/(\d+) clusters/.exec(out);
      expect(m).not.toBeNull();
      expect(Number(m![2]) - Number(m![1])).toBe(vol.info.freeClusters);
      expect(out).not.toMatch(/Free cluster summary wrong/);
    });
  });

  it('agrees with mkfs.fat on the default FAT type and cluster size (sparse files up to 600 MiB)', async () => {
    for (const mb of [2, 8, 16, 64, 300, 600]) {
      const theirsImg = join(dir, `default${mb}.img`);
      writeFileSync(theirsImg, new Uint8Array(0));
      tool('truncate', ['-s', `${mb}M`, theirsImg]);
      tool('mkfs.fat', [theirsImg]);
      const theirsDev = FileDevice.open(theirsImg);
      const theirs = await openFat(theirsDev);
      const oursImg = join(dir, `ours-default${mb}.img`);
      const ours = await createDisk(oursImg, { size: mb * MiB });
      expect([mb, ours.fatType, ours.sectorsPerCluster * 512]).toEqual([mb, theirs.type, theirs.clusterSize]);
      theirsDev.close();
      const check = fsck(oursImg);
      expect(check.status, check.output).toBe(0);
      removeDir(theirsImg);
      removeDir(oursImg);
    }
  });

  it.each([1024, 4096])('reads a volume with %i-byte logical sectors', async (sectorSize) => {
    const image = join(dir, `sector${sectorSize}.img`);
    writeFileSync(image, new Uint8Array(0));
    tool('truncate', ['-s', String(40 * MiB), image]);
    tool('mkfs.fat', ['-F', '16', '-S', String(sectorSize), '-s', '1', '-n', 'BIGSEC', image]);
    const data = pattern(3 * sectorSize + 5, 9);
    writeFileSync(join(dir, 'bigsec'), data);
    tool('mmd', ['-i', image, '::/d']);
    tool('mcopy', ['-i', image, join(dir, 'bigsec'), '::/d/Big Sector File.bin']);
    const dev = load(image);
    const vol = await openFat(dev);
    expect(vol.boot.bytesPerSector).toBe(sectorSize);
    expect(byteDiff(await vol.readFile('/d/big sector file.bin'), data)).toBe('equal');
    await vol.mkdir('/d/sub dir');
    await vol.writeFile('/d/sub dir/back.txt', new TextEncoder().encode('back'));
    writeFileSync(image, dev.bytes);
    expect(tool('mtype', ['-i', image, '::/d/sub dir/back.txt'])).toBe('back');
    const check = fsck(image);
    expect(check.status, check.output).toBe(0);
  });

  it('reads and writes a FAT partition of an MBR disk (partition table by sfdisk when present)', async () => {
    const image = join(dir, 'mbr.img');
    const start = 2048;
    const sectors = 30 * 2048;
    writeFileSync(image, new Uint8Array(0));
    tool('truncate', ['-s', `${(start + sectors) * 512 + MiB}`, image]);
    if (TOOLS.sfdisk) {
      tool('sh', ['-c', `echo 'start=${start}, size=${sectors}, type=e' | sfdisk -q ${image}`]);
    } else {
      const raw = load(image);
      raw.write(0, encodeMbr([{ type: 0x0e, start, sectors }]));
      writeFileSync(image, raw.bytes);
    }
    tool('mkfs.fat', ['-F', '16', '--offset', String(start), '-n', 'PART', image, String(sectors / 2)]);
    const payload = pattern(50_000, 5);
    writeFileSync(join(dir, 'payload'), payload);
    const at = `${image}@@${start * 512}`;
    tool('mmd', ['-i', at, '::/boot']);
    tool('mcopy', ['-i', at, join(dir, 'payload'), '::/boot/nimbos.bin']);

    const dev = load(image);
    const vol = await openFat(dev);
    expect(vol.info.startLba).toBe(start);
    expect(byteDiff(await vol.readFile('/BOOT/NIMBOS.BIN'), payload)).toBe('equal');
    await vol.writeFile('/boot/from vmm.txt', new TextEncoder().encode('written by vmm\n'));
    writeFileSync(image, dev.bytes);
    expect(tool('mtype', ['-i', at, '::/boot/from vmm.txt'])).toBe('written by vmm\n');
    // fsck.fat checks a bare volume: give it the partition alone.
    const part = join(dir, 'part.img');
    writeFileSync(part, dev.bytes.subarray(start * 512, (start + sectors) * 512));
    const check = fsck(part);
    expect(check.status, check.output).toBe(0);
  });

  it('formats a partition that mtools and fsck.fat accept', async () => {
    const start = 2048;
    const sectors = 20 * 2048;
    const dev = MemoryDevice.zeroed((start + sectors) * 512, 'mbr2.img');
    dev.write(0, encodeMbr([{ type: 0x06, start, sectors }]));
    await formatFat(new SubDevice(dev, start, sectors), { hiddenSectors: start, label: 'IN PART' });
    const vol: FatVolume = await openFat(dev);
    await vol.writeFile('/hello.txt', new TextEncoder().encode('hi'));
    const image = join(dir, 'mbr2.img');
    writeFileSync(image, dev.bytes);
    expect(tool('mtype', ['-i', `${image}@@${start * 512}`, '::/hello.txt'])).toBe('hi');
    const part = join(dir, 'part2.img');
    writeFileSync(part, dev.bytes.subarray(start * 512));
    expect(fsck(part).status).toBe(0);
  });
});
