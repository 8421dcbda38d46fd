import { describe, expect, it } from 'vitest';
import type { FatType, FatVolume, SectorDevice } from '../../../../plugins/fat-loader/fat/index.js';
import {
  MemoryDevice,
  SubDevice,
  encodeMbr,
  formatFat,
  openFat,
  parseBootSector,
} from '../../../../plugins/fat-loader/fat/index.js';
import { VmmError } from '../../../../src/core/errors.js';
import { byteDiff, randomTree, readVolumeTree, rng, testSeed, treeSummary } from './helpers.js';

const MiB = 1024 * 1024;
const SIZES: Record<FatType, number> = { 12: 2 * MiB, 16: 16 * MiB, 32: 34 * MiB };
const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const pattern = (n: number, seed: number): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

async function fresh(type: FatType, name = 'disk.img'): Promise<{ dev: MemoryDevice; vol: FatVolume }> {
  const dev = MemoryDevice.zeroed(SIZES[type], name);
  await formatFat(dev, { fatType: type });
  return { dev, vol: await openFat(dev) };
}

async function failure(p: Promise<unknown>): Promise<VmmError> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof VmmError)) throw e;
    return e;
  }
  throw new Error('expected a VmmError');
}

/** Test-side FAT entry writer (independent of the library's table code). */
function pokeFat(dev: MemoryDevice, n: number, value: number): void {
  const b = parseBootSector(dev.bytes.subarray(0, 512), dev.bytes.length);
  for (let copy = 0; copy < b.numFats; copy++) {
    const base = (b.reservedSectors + copy * b.fatSize) * 512;
    if (b.fatType === 16) {
      dev.bytes[base + 2 * n] = value & 0xff;
      dev.bytes[base + 2 * n + 1] = value >> 8;
    } else if (b.fatType === 32) {
      for (let i = 0; i < 4; i++) dev.bytes[base + 4 * n + i] = (value >>> (8 * i)) & 0xff;
    } else {
      const o = base + n + (n >> 1);
      const v = dev.bytes[o]! | (dev.bytes[o + 1]! << 8);
      const nv = n & 1 ? (v & 0xf) | (value << 4) : (v & 0xf000) | value;
      dev.bytes[o] = nv & 0xff;
      dev.bytes[o + 1] = nv >> 8;
    }
  }
}

describe.each([12, 16, 32] as const)('FAT%i volume', (type) => {
  it('formats with the requested type, label and a deterministic serial', async () => {
    const a = await fresh(type);
    const b = await fresh(type);
    expect(a.vol.type).toBe(type);
    expect(a.vol.info.label).toBe('VMM DISK');
    expect(await a.vol.label()).toBe('VMM DISK');
    expect(a.vol.info.serial).toBe(b.vol.info.serial);
    expect(byteDiff(a.dev.bytes, b.dev.bytes)).toBe('equal');
    const c = MemoryDevice.zeroed(SIZES[type]);
    const r = await formatFat(c, { fatType: type, serial: 0x12345678 });
    expect(r.serial).toBe(0x12345678);
    expect((await openFat(c)).info.serial).toBe(0x12345678);
    expect(await a.vol.list('/')).toEqual([]);
  });

  it('writes and reads back files, directories and long names, case-insensitively', async () => {
    const { dev, vol } = await fresh(type);
    const big = pattern(5 * vol.clusterSize + 123, 7);
    await vol.writeFile('/RVM-BIOS.BIN', bytes('bios'));
    await vol.mkdir('/boot/grub');
    await vol.writeFile('/boot/grub/A Long File Name.data', big);
    await vol.writeFile('/boot/empty', new Uint8Array(0));
    const again = await openFat(dev);
    expect(new TextDecoder().decode(await again.readFile('/rvm-bios.bin'))).toBe('bios');
    expect(byteDiff(await again.readFile('BOOT/GRUB/a long file name.DATA'), big)).toBe('equal');
    expect(byteDiff(await again.readFile('/boot/grub/ALONGF~1.DAT'), big)).toBe('equal');
    expect(byteDiff(await again.readFile('/boot/./grub/../empty'), new Uint8Array(0))).toBe('equal');
    const root = await again.list('/');
    expect(root.map((e) => [e.name, e.isDirectory])).toEqual([
      ['RVM-BIOS.BIN', false],
      ['boot', true],
    ]);
    expect((await again.stat('/boot/grub/A Long File Name.data')).size).toBe(big.length);
    expect(await again.exists('/boot/grub')).toBe(true);
    expect(await again.exists('/boot/nope')).toBe(false);
    expect(await again.exists('/RVM-BIOS.BIN/x')).toBe(false);
  });

  it('replaces a file in place and frees its old clusters', async () => {
    const { vol } = await fresh(type);
    const free0 = vol.info.freeClusters;
    await vol.writeFile('/x.bin', pattern(4 * vol.clusterSize, 1));
    expect(vol.info.freeClusters).toBe(free0 - 4);
    await vol.writeFile('/X.BIN', pattern(vol.clusterSize, 2));
    expect(vol.info.freeClusters).toBe(free0 - 1);
    expect(byteDiff(await vol.readFile('/x.bin'), pattern(vol.clusterSize, 2))).toBe('equal');
    expect((await vol.list('/')).length).toBe(1);
    await vol.remove('/x.bin');
    expect(vol.info.freeClusters).toBe(free0);
    expect(await vol.list('/')).toEqual([]);
  });

  it('grows a directory past one cluster and generates unique ~N short names', async () => {
    const { dev, vol } = await fresh(type);
    await vol.mkdir('/many');
    const names = Array.from({ length: 60 }, (_, i) => `a common long prefix ${i}.text`);
    for (const n of names) await vol.writeFile(`/many/${n}`, bytes(n));
    const again = await openFat(dev);
    const list = await again.list('/many');
    expect(list.map((e) => e.name).sort()).toEqual([...names].sort());
    expect(new Set(list.map((e) => e.shortName)).size).toBe(names.length);
    const bad = list.filter(
      (e) => !/^A(C(O(M(MO?)?)?)?)?~\d+\.TEX$/.test(e.shortName) || e.shortName.length > 12,
    );
    expect(bad.map((e) => e.shortName)).toEqual([]);
    expect(list.map((e) => e.shortName)).toContain('ACOMM~10.TEX');
    for (const n of names) expect(new TextDecoder().decode(await again.readFile(`/many/${n}`))).toBe(n);
    expect((await again.clusterChain('/many')).length).toBeGreaterThan(1);
  });

  it('follows fragmented chains', async () => {
    const { dev, vol } = await fresh(type);
    const cs = vol.clusterSize;
    for (let i = 0; i < 6; i++) await vol.writeFile(`/f${i}`, pattern(2 * cs, i));
    for (const i of [1, 3]) await vol.remove(`/f${i}`);
    const big = pattern(9 * cs + 5, 99);
    await vol.writeFile('/big', big);
    const again = await openFat(dev);
    const chain = await again.clusterChain('/big');
    const jumps = chain.filter((c, i) => i > 0 && c !== chain[i - 1]! + 1).length;
    expect(jumps).toBeGreaterThanOrEqual(1);
    expect(byteDiff(await again.readFile('/big'), big)).toBe('equal');
    for (const i of [0, 2, 4, 5])
      expect(byteDiff(await again.readFile(`/f${i}`), pattern(2 * cs, i))).toBe('equal');
  });

  it('round-trips a generated tree', async () => {
    const seed = testSeed(`FAT${type} in-memory tree`);
    const { dev, vol } = await fresh(type);
    const tree = randomTree(rng(seed), vol.clusterSize, { files: 30, maxDepth: 3 });
    for (const d of tree.dirs) await vol.mkdir(d);
    for (const f of tree.files) await vol.writeFile(f.path, f.data);
    expect(treeSummary(await readVolumeTree(await openFat(dev)))).toEqual(treeSummary(tree));
  });
});

describe('errors that name the image and say what is wrong', () => {
  it('lists what the directory holds when a file is missing', async () => {
    const { vol } = await fresh(16);
    await vol.writeFile('/RVM-BIOS.BIN', bytes('x'));
    await vol.writeFile('/FOO.TXT', bytes('y'));
    await vol.mkdir('/boot');
    const e = await failure(vol.readFile('/nimbos.bin'));
    expect(e.code).toBe('disk');
    expect(e.message).toBe(
      'no file "nimbos.bin" in disk.img; the root directory holds: RVM-BIOS.BIN, FOO.TXT, boot/',
    );
    expect((await failure(vol.readFile('/boot/x'))).message).toBe(
      'no file "x" in disk.img; the directory /boot is empty',
    );
    expect((await failure(vol.list('/etc/x'))).message).toMatch(/^no directory "etc" in disk.img; the root/);
    expect((await failure(vol.readFile('/boot'))).message).toBe(
      'disk.img: "/boot" is a directory, not a file',
    );
    expect((await failure(vol.list('/FOO.TXT/a'))).message).toBe(
      'disk.img: "/FOO.TXT" is a file, not a directory',
    );
    expect((await failure(vol.writeFile('/bad:name', bytes('')))).message).toMatch(/contains ":"/);
    expect((await failure(vol.mkdir('/FOO.TXT'))).message).toMatch(/a file has that name/);
  });

  it('reports a full volume and a full fixed root directory', async () => {
    const dev = MemoryDevice.zeroed(SIZES[12], 'small.img');
    await formatFat(dev, { fatType: 12, rootEntries: 16 });
    const vol = await openFat(dev);
    await vol.mkdir('/D');
    for (let i = 0; i < 14; i++) await vol.writeFile(`/F${i}`, bytes('z')); // + label and d = 16
    expect((await failure(vol.writeFile('/F15', bytes('z')))).message).toBe(
      'small.img: the root directory is full (16 entries)',
    );
    expect((await failure(vol.writeFile('/D/huge', new Uint8Array(SIZES[12])))).message).toMatch(
      /^small.img: no room for "\/D\/huge": it needs \d+ cluster\(s\) of 2048 bytes, \d+ are free$/,
    );
  });

  it('refuses impossible formats', async () => {
    await expect(formatFat(MemoryDevice.zeroed(16 * MiB, 'd.img'), { fatType: 32 })).rejects.toThrow(
      /cannot format 16384 KiB as FAT32/,
    );
    await expect(formatFat(MemoryDevice.zeroed(2 * MiB, 'd.img'), { fatType: 16 })).rejects.toThrow(
      /as FAT16/,
    );
    await expect(formatFat(MemoryDevice.zeroed(2 * MiB), { label: 'much too long label' })).rejects.toThrow(
      /volume label/,
    );
  });
});

describe('volume detection', () => {
  it('chooses the default type by size as mkfs.fat does', async () => {
    const typeFor = async (size: number): Promise<number> => {
      const dev = MemoryDevice.zeroed(size);
      return (await formatFat(dev)).fatType;
    };
    expect(await typeFor(4 * MiB)).toBe(12);
    expect(await typeFor(16 * MiB)).toBe(16);
  });

  it('decides the FAT type by cluster count alone, not by the BS_FilSysType string', async () => {
    const { dev } = await fresh(12);
    dev.bytes.set(new TextEncoder().encode('FAT16   '), 54); // BS_FilSysType of a FAT12/16 boot sector
    const vol = await openFat(dev);
    expect(vol.type).toBe(12);
    expect(vol.boot.fileSystemType).toBe('FAT16');
    expect(vol.info.clusterCount).toBeLessThan(4085);
  });

  it('opens a volume inside an MBR partition, by default the first FAT one, or by index', async () => {
    const dev = MemoryDevice.zeroed(40 * MiB, 'part.img');
    const p0 = { type: 0x83, start: 2048, sectors: 4096 }; // Linux: skipped by default
    const p1 = { type: 0x06, start: 8192, sectors: 16 * 2048 };
    const p2 = { type: 0x01, start: 8192 + 16 * 2048, sectors: 4096 };
    dev.write(0, encodeMbr([p0, p1, p2]));
    await formatFat(new SubDevice(dev, p1.start, p1.sectors), {
      fatType: 16,
      hiddenSectors: p1.start,
      label: 'ONE',
    });
    await formatFat(new SubDevice(dev, p2.start, p2.sectors), {
      fatType: 12,
      hiddenSectors: p2.start,
      label: 'TWO',
    });
    const one = await openFat(dev);
    expect([one.type, one.info.label, one.info.startLba]).toEqual([16, 'ONE', 8192]);
    await one.writeFile('/in-one.txt', bytes('1'));
    const two = await openFat(dev, { partition: 2 });
    expect([two.type, two.info.label]).toEqual([12, 'TWO']);
    expect(await two.list('/')).toEqual([]);
    expect((await (await openFat(dev)).list('/')).map((e) => e.name)).toEqual(['in-one.txt']);
    expect((await failure(openFat(dev, { partition: 3 }))).message).toBe(
      'part.img: MBR partition 3 is empty; it holds 0: type 0x83, 1: type 0x06, 2: type 0x01',
    );
    expect((await failure(openFat(dev, { partition: 0 }))).message).toMatch(
      /^part.img: not a valid FAT volume/,
    );
    expect((await failure(openFat(dev, { partition: 7 }))).message).toMatch(/partitions 0 to 3/);
  });

  it('refuses an MBR without FAT partitions, and a partition past the end', async () => {
    const dev = MemoryDevice.zeroed(4 * MiB, 'p.img');
    dev.write(0, encodeMbr([{ type: 0x83, start: 2048, sectors: 2048 }]));
    expect((await failure(openFat(dev))).message).toBe(
      'p.img: no FAT partition (types 01, 04, 06, 0B, 0C, 0E) in the MBR; it holds 0: type 0x83',
    );
    dev.write(0, encodeMbr([{ type: 0x0c, start: 2048, sectors: 1 << 20 }]));
    expect((await failure(openFat(dev))).message).toMatch(
      /MBR partition 0 \(sectors 2048\.\.1050623\) does not fit/,
    );
    expect((await failure(openFat(MemoryDevice.zeroed(1 * MiB, 'z.img')))).message).toBe(
      'z.img: not a FAT volume: sector 0 holds neither a FAT boot sector nor an MBR partition table',
    );
    expect((await failure(openFat(MemoryDevice.zeroed(0, 'e.img')))).message).toBe(
      'e.img: the image is empty',
    );
  });
});

describe('corrupt volumes end in a VmmError', () => {
  const BPB = { bytsPerSec: 11, secPerClus: 13, rsvd: 14, numFats: 16, totSec16: 19, totSec32: 32 };

  it.each([
    [
      'bytes per sector 1000',
      (b: Uint8Array) => b.set([0xe8, 0x03], BPB.bytsPerSec),
      /bytes per sector is 1000/,
    ],
    ['sectors per cluster 3', (b: Uint8Array) => (b[BPB.secPerClus] = 3), /sectors per cluster is 3/],
    ['zero FATs', (b: Uint8Array) => (b[BPB.numFats] = 0), /number of FATs is 0/],
    ['zero reserved sectors', (b: Uint8Array) => b.set([0, 0], BPB.rsvd), /reserved sector count is 0/],
    ['zero total sectors', (b: Uint8Array) => b.set([0, 0], BPB.totSec16), /total sector count is 0/],
    ['size beyond the device', (b: Uint8Array) => b.set([0xff, 0xff], BPB.totSec16), /truncated image/],
  ])('bad boot sector: %s', async (_what, poke, message) => {
    const { dev } = await fresh(12);
    poke(dev.bytes);
    const e = await failure(openFat(dev));
    expect(e.code).toBe('disk');
    expect(e.message).toMatch(/^disk\.img: not a valid FAT volume: /);
    expect(e.message).toMatch(message);
  });

  it('a truncated image', async () => {
    const { dev } = await fresh(32);
    const cut = new MemoryDevice(dev.bytes.slice(0, dev.bytes.length / 2), 'cut.img');
    expect((await failure(openFat(cut))).message).toMatch(
      /^cut\.img: not a valid FAT volume: the boot sector says the volume is 35651584 bytes .* but the device holds only 17825792 bytes \(truncated image\?\)$/,
    );
  });

  it.each([12, 16, 32] as const)('FAT%i: looping, out-of-range, free, bad and short chains', async (type) => {
    const { dev, vol } = await fresh(type);
    await vol.writeFile('/data.bin', pattern(5 * vol.clusterSize, 3));
    const chain = await vol.clusterChain('/data.bin');
    const eoc = type === 12 ? 0xfff : type === 16 ? 0xffff : 0x0fffffff;
    const bad = type === 12 ? 0xff7 : type === 16 ? 0xfff7 : 0x0ffffff7;
    const cases: [number, RegExp][] = [
      [chain[1]!, /loops \(cluster \d+ links back to cluster \d+\)/],
      [vol.info.clusterCount + 10, /points out of range/],
      [0, /runs into free cluster/],
      [bad, /bad cluster/],
      [eoc, /ends early: 3 cluster\(s\) where the size needs 5/],
    ];
    for (const [value, message] of cases) {
      const copy = new MemoryDevice(dev.bytes.slice(), 'disk.img');
      pokeFat(copy, chain[2]!, value);
      const e = await failure((await openFat(copy)).readFile('/data.bin'));
      expect(e.message).toMatch(/^disk\.img: corrupt FAT: the cluster chain of file "\/data\.bin" /);
      expect(e.message).toMatch(message);
    }
  });

  it('a directory whose chain loops, and a FAT32 root that loops', async () => {
    const { dev, vol } = await fresh(32);
    await vol.mkdir('/sub');
    const [c] = await vol.clusterChain('/sub');
    pokeFat(dev, c!, c!);
    expect((await failure((await openFat(dev)).list('/sub'))).message).toMatch(
      /the cluster chain of directory "\/sub" loops/,
    );
    pokeFat(dev, 2, 2);
    expect((await failure((await openFat(dev)).list('/'))).message).toMatch(
      /the cluster chain of the root directory loops/,
    );
  });
});

/** Copy-on-write view of a device: the fuzzer's changes stay in the overlay (no 34 MiB copy per round). */
class OverlayDevice implements SectorDevice {
  readonly sectorSize = 512;
  readonly name = 'fuzz.img';
  readonly sectorCount: number;
  private readonly changed = new Map<number, Uint8Array>();
  constructor(private readonly base: MemoryDevice) {
    this.sectorCount = base.sectorCount;
  }
  private sector(lba: number): Uint8Array {
    return this.changed.get(lba) ?? this.base.bytes.subarray(lba * 512, lba * 512 + 512);
  }
  poke(offset: number, value: number): void {
    const lba = Math.floor(offset / 512);
    const s = Uint8Array.from(this.sector(lba));
    s[offset % 512] = value;
    this.changed.set(lba, s);
  }
  read(lba: number, count: number): Uint8Array {
    const out = new Uint8Array(count * 512);
    for (let i = 0; i < count; i++) out.set(this.sector(lba + i), i * 512);
    return out;
  }
  write(lba: number, data: Uint8Array): void {
    for (let i = 0; i < data.length / 512; i++) this.changed.set(lba + i, data.slice(i * 512, i * 512 + 512));
  }
}

describe('fuzzing: random byte flips end in success or a VmmError', () => {
  it.each([12, 16, 32] as const)('FAT%i', async (type) => {
    const seed = testSeed(`FAT${type} fuzz`);
    const rand = rng(seed);
    const { dev, vol } = await fresh(type);
    const tree = randomTree(rng(seed ^ 0x5a5a), vol.clusterSize, { files: 12, maxDepth: 2 });
    for (const d of tree.dirs) await vol.mkdir(d);
    for (const f of tree.files) await vol.writeFile(f.path, f.data);
    const boot = parseBootSector(dev.bytes, dev.bytes.length);
    // Flip bytes where they matter: the boot sector, the used start of the FAT, the root directory and
    // every directory of the tree.
    const dataStart = boot.firstDataSector * 512;
    const clusterAt = (c: number): number => dataStart + (c - 2) * vol.clusterSize;
    const ranges: [number, number][] = [
      [0, 90],
      [boot.reservedSectors * 512, 1024],
      type === 32 ? [clusterAt(boot.rootCluster), 1024] : [boot.firstRootDirSector * 512, 1024],
    ];
    for (const d of tree.dirs) ranges.push([clusterAt((await vol.clusterChain(d))[0]!), 512]);
    const pick = (): number => {
      const [start, len] = ranges[Math.floor(rand() * ranges.length)]!;
      return start + Math.floor(rand() * len);
    };
    const outcomes = { ok: 0, error: 0 };
    for (let round = 0; round < 150; round++) {
      const img = new OverlayDevice(dev);
      const flips = 1 + Math.floor(rand() * 8);
      for (let i = 0; i < flips; i++) {
        img.poke(pick(), Math.floor(rand() * 256));
      }
      try {
        const v = await openFat(img);
        await readVolumeTree(v);
        await v.writeFile('/fuzz-new-file.txt', pattern(3 * v.clusterSize, round));
        await v.mkdir('/fuzz/dir');
        outcomes.ok++;
      } catch (e) {
        if (!(e instanceof VmmError)) {
          throw new Error(`round ${round} (seed ${seed}): ${String(e)}`, { cause: e });
        }
        expect(e.code).toBe('disk');
        outcomes.error++;
      }
    }
    console.log(
      `FAT${type} fuzz: ${outcomes.ok} rounds read and wrote, ${outcomes.error} ended in a disk error`,
    );
    expect(outcomes.ok + outcomes.error).toBe(150);
    expect(outcomes.ok).toBeGreaterThan(0); // the flips must not all break the boot sector
  });
});

describe('boot sector fuzzing', () => {
  it('random BPB field values end in success or a VmmError', async () => {
    const seed = testSeed('BPB fuzz');
    const rand = rng(seed);
    const types = await Promise.all(([12, 16, 32] as const).map((t) => fresh(t)));
    let ok = 0;
    for (let round = 0; round < 300; round++) {
      const { dev } = types[round % 3]!;
      const img = new OverlayDevice(dev);
      // Rewrite a few bytes of the BPB (offsets 11..89) with random or boundary values.
      const n = 1 + Math.floor(rand() * 4);
      for (let i = 0; i < n; i++) {
        const special = [0, 1, 0x7f, 0x80, 0xff][Math.floor(rand() * 5)]!;
        img.poke(11 + Math.floor(rand() * 79), rand() < 0.5 ? special : Math.floor(rand() * 256));
      }
      try {
        const v = await openFat(img);
        await readVolumeTree(v);
        await v.writeFile('/after-fuzz.bin', pattern(2 * v.clusterSize, round));
        ok++;
      } catch (e) {
        if (!(e instanceof VmmError))
          throw new Error(`round ${round} (seed ${seed}): ${String(e)}`, { cause: e });
      }
    }
    expect(ok).toBeGreaterThan(0);
  });
});

describe('asynchronous devices (as the AHCI model will be)', () => {
  it('works when reads and writes resolve later', async () => {
    const mem = MemoryDevice.zeroed(SIZES[16], 'async.img');
    const later = <T>(v: T): Promise<T> => new Promise((resolve) => setImmediate(() => resolve(v)));
    let reads = 0;
    const dev: SectorDevice = {
      sectorSize: 512,
      sectorCount: mem.sectorCount,
      name: 'async.img',
      read: (lba, count) => {
        reads++;
        return later(mem.read(lba, count));
      },
      write: (lba, data) => later(undefined).then(() => mem.write(lba, data)),
    };
    await formatFat(dev, { fatType: 16 });
    const vol = await openFat(dev);
    await vol.mkdir('/boot');
    await vol.writeFile('/boot/nimbos.bin', pattern(70_000, 4));
    expect(byteDiff(await (await openFat(mem)).readFile('/BOOT/NIMBOS.BIN'), pattern(70_000, 4))).toBe(
      'equal',
    );
    expect(reads).toBeGreaterThan(0);
  });
});
