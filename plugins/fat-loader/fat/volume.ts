/**
 * The volume API: find the FAT volume on a device (bare, or in an MBR partition), then list, stat, read
 * and write files by path. Paths use '/', are case-insensitive and match long or short names.
 */
import { VmmError } from '../../../src/core/errors.js';
import type { BootSector, FatType } from './bpb.js';
import {
  FSINFO,
  FSI_UNKNOWN,
  EXT_FLAGS_NO_MIRROR,
  hasJumpInstruction,
  isFsInfo,
  looksLikeBootSector,
  parseBootSector,
  readU32,
  writeU32,
} from './bpb.js';
import type { SectorDevice } from './device.js';
import { DEVICE_SECTOR_SIZE, diskError, readSectors, writeSectors } from './device.js';
import type { DecodedDirectory, FatDirEntry, RawDirEntry } from './dir.js';
import {
  ATTR,
  DIR_ENTRY_SIZE,
  ENTRY_END,
  ENTRY_FREE,
  FAT_EPOCH,
  decodeDirectory,
  encodeEntrySlots,
  encodeShortEntry,
  longNameProblem,
  makeShortName,
  setEntryClusterAndSize,
} from './dir.js';
import { FAT_PARTITION_TYPES, hasMbrSignature, parseMbr } from './mbr.js';
import { FIRST_CLUSTER, FatTable } from './table.js';

export interface OpenFatOptions {
  /** What to call the device in error messages (default: the device's name, e.g. the image file). */
  label?: string;
  /** MBR partition slot (0-3) to open; by default a bare volume, else the first FAT partition. */
  partition?: number;
}

export interface WriteOptions {
  /** Timestamp for the entry (default: the FAT epoch 1980-01-01, so images are reproducible). */
  modified?: Date;
}

export interface FatVolumeInfo {
  type: FatType;
  /** Volume label from the boot sector (see FatVolume.label() for the root directory's). */
  label: string | undefined;
  serial: number | undefined;
  clusterSize: number;
  clusterCount: number;
  freeClusters: number;
  /** Device LBA where the volume starts (non-zero inside a partition). */
  startLba: number;
}

/** Spec section 6: a directory holds at most 65536 entries. */
const MAX_DIR_BYTES = 65536 * DIR_ENTRY_SIZE;
/** Longest single device read or write (in sectors) when moving file data. */
const MAX_RUN_SECTORS = 2048;
const DOT = '.          ';
const DOTDOT = '..         ';

/** A loaded directory: where it is, its bytes and its decoded entries. */
interface Dir {
  /** Display path, '/' for the root. */
  path: string;
  /** First cluster; 0 for the fixed FAT12/16 root directory. */
  cluster: number;
  /** Its clusters, or undefined for the fixed root directory. */
  clusters: number[] | undefined;
  data: Uint8Array;
  decoded: DecodedDirectory;
}

function splitPath(path: string): string[] {
  const out: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return out;
}

const joinPath = (parts: readonly string[]): string => '/' + parts.join('/');

export class FatVolume {
  readonly type: FatType;
  private readonly ratio: number;
  private readonly clusterSectors: number;
  readonly clusterSize: number;

  private constructor(
    private readonly dev: SectorDevice,
    /** Device LBA of the volume's sector 0. */
    private readonly base: number,
    readonly boot: BootSector,
    private readonly fat: FatTable,
    /** Name of the image in messages, or undefined. */
    readonly source: string | undefined,
    private readonly hasFsInfo: boolean,
  ) {
    this.type = boot.fatType;
    this.ratio = boot.bytesPerSector / DEVICE_SECTOR_SIZE;
    this.clusterSectors = boot.sectorsPerCluster * this.ratio;
    this.clusterSize = boot.sectorsPerCluster * boot.bytesPerSector;
  }

  static async open(dev: SectorDevice, opts: OpenFatOptions = {}): Promise<FatVolume> {
    const source = opts.label ?? dev.name;
    if (dev.sectorCount < 1) throw diskError(source, 'the image is empty');
    let sector0 = await readSectors(dev, 0, 1);
    let base = 0;
    let sectors = dev.sectorCount;
    if (opts.partition !== undefined || !looksLikeBootSector(sector0)) {
      let part: { start: number; sectors: number };
      try {
        part = choosePartition(sector0, dev.sectorCount, opts.partition, source);
      } catch (e) {
        // No usable partition, but sector 0 starts with a jump: most likely a damaged boot sector,
        // so say what is wrong with it rather than with the (absent) partition table.
        if (opts.partition === undefined && hasJumpInstruction(sector0)) {
          parseBootSector(sector0, dev.sectorCount * DEVICE_SECTOR_SIZE, source);
        }
        throw e;
      }
      base = part.start;
      sectors = part.sectors;
      sector0 = await readSectors(dev, base, 1);
    }
    const boot = parseBootSector(sector0, sectors * DEVICE_SECTOR_SIZE, source);
    const ratio = boot.bytesPerSector / DEVICE_SECTOR_SIZE;
    const noMirror = boot.fatType === 32 && (boot.extFlags & EXT_FLAGS_NO_MIRROR) !== 0;
    const activeFat = noMirror ? boot.extFlags & 0xf : 0;
    const fatLba = base + (boot.reservedSectors + activeFat * boot.fatSize) * ratio;
    const fat = await FatTable.load(dev, fatLba, boot.fatType, boot.clusterCount, source);
    let hasFsInfo = false;
    if (boot.fatType === 32 && boot.fsInfoSector !== 0) {
      const info = await readSectors(dev, base + boot.fsInfoSector * ratio, 1);
      hasFsInfo = isFsInfo(info);
      const next = readU32(info, FSINFO.FSI_Nxt_Free);
      if (hasFsInfo && next >= FIRST_CLUSTER && next <= fat.maxCluster) fat.nextFree = next;
    }
    return new FatVolume(dev, base, boot, fat, source, hasFsInfo);
  }

  get info(): FatVolumeInfo {
    return {
      type: this.type,
      label: this.boot.volumeLabel,
      serial: this.boot.volumeId,
      clusterSize: this.clusterSize,
      clusterCount: this.boot.clusterCount,
      freeClusters: this.fat.freeCount,
      startLba: this.base,
    };
  }
  /** The volume label stored in the root directory (what `mdir` and Windows show), if any. */
  async label(): Promise<string | undefined> {
    const root = await this.loadDir(this.rootDirRef());
    return root.decoded.volumeLabel ?? this.boot.volumeLabel;
  }

  // ---- reading ----

  /** The entries of a directory ('.' and '..' and the volume label left out). */
  async list(path = '/'): Promise<FatDirEntry[]> {
    const dir = await this.openDirPath(splitPath(path));
    return dir.decoded.entries.filter((e) => e.raw !== DOT && e.raw !== DOTDOT).map(publicEntry);
  }

  async stat(path: string): Promise<FatDirEntry> {
    const parts = splitPath(path);
    if (parts.length === 0) {
      return {
        name: '/',
        shortName: '/',
        isDirectory: true,
        size: 0,
        attributes: ATTR.DIRECTORY,
        firstCluster: this.rootDirRef().cluster,
        modified: undefined,
      };
    }
    const dir = await this.openDirPath(parts.slice(0, -1));
    return publicEntry(this.mustFind(dir, parts[parts.length - 1]!, 'file'));
  }

  async exists(path: string): Promise<boolean> {
    const parts = splitPath(path);
    if (parts.length === 0) return true;
    let dir = await this.loadDir(this.rootDirRef());
    for (let i = 0; i < parts.length; i++) {
      const entry = findEntry(dir, parts[i]!);
      if (!entry) return false;
      if (i === parts.length - 1) return true;
      if (!entry.isDirectory) return false;
      const here = joinPath(parts.slice(0, i + 1));
      dir = await this.loadDir(
        entry.firstCluster === 0 ? this.rootDirRef() : { path: here, cluster: entry.firstCluster },
      );
    }
    return true;
  }

  async readFile(path: string): Promise<Uint8Array> {
    const parts = splitPath(path);
    const display = joinPath(parts);
    if (parts.length === 0) throw this.error(`"/" is a directory, not a file`);
    const dir = await this.openDirPath(parts.slice(0, -1));
    const entry = this.mustFind(dir, parts[parts.length - 1]!, 'file');
    if (entry.isDirectory) throw this.error(`"${display}" is a directory, not a file`);
    if (entry.size === 0) return new Uint8Array(0);
    const needed = Math.ceil(entry.size / this.clusterSize);
    const chain = this.fat.chain(entry.firstCluster, `file "${display}"`, needed);
    const data = await this.readClusters(chain.slice(0, needed));
    return data.subarray(0, entry.size);
  }

  /** The clusters holding a file or directory, in order (to inspect fragmentation). */
  async clusterChain(path: string): Promise<number[]> {
    const parts = splitPath(path);
    if (parts.length === 0)
      return this.type === 32 ? this.fat.chain(this.boot.rootCluster, 'the root directory') : [];
    const dir = await this.openDirPath(parts.slice(0, -1));
    const entry = this.mustFind(dir, parts[parts.length - 1]!, 'file');
    if (entry.firstCluster === 0) return [];
    const what = `${entry.isDirectory ? 'directory' : 'file'} "${joinPath(parts)}"`;
    return this.fat.chain(entry.firstCluster, what, Math.ceil(entry.size / this.clusterSize));
  }

  // ---- writing ----

  /** Creates or replaces a file; its directory must exist (see mkdir). */
  async writeFile(path: string, data: Uint8Array, opts: WriteOptions = {}): Promise<void> {
    this.mustBeWritable();
    const parts = splitPath(path);
    if (parts.length === 0) throw this.error('cannot write to "/": it is the root directory');
    const name = parts[parts.length - 1]!;
    const dir = await this.openDirPath(parts.slice(0, -1));
    const existing = findEntry(dir, name);
    if (existing?.isDirectory) throw this.error(`"${joinPath(parts)}" is a directory, not a file`);
    const count = Math.ceil(data.length / this.clusterSize);
    // Validate the old chain before changing anything, so a corrupt volume stays as it was.
    const old =
      existing && existing.firstCluster !== 0
        ? this.fat.chain(existing.firstCluster, `file "${joinPath(parts)}"`)
        : [];
    if (count > this.fat.freeCount + old.length) {
      throw this.error(
        `no room for "${joinPath(parts)}": it needs ${count} cluster(s) of ${this.clusterSize} bytes, ` +
          `${this.fat.freeCount + old.length} are free`,
      );
    }
    this.fat.free(old);
    const clusters = this.fat.allocate(count);
    await this.writeClusters(clusters, data);
    const first = clusters[0] ?? 0;
    if (existing) {
      setEntryClusterAndSize(
        dir.data.subarray(existing.offset, existing.offset + DIR_ENTRY_SIZE),
        first,
        data.length,
      );
    } else {
      const short = this.newEntryName(dir, name);
      const entry = encodeShortEntry(short.raw, ATTR.ARCHIVE, first, data.length, opts.modified ?? FAT_EPOCH);
      await this.placeEntry(dir, encodeEntrySlots(short.longName, entry));
    }
    await this.writeDir(dir);
    await this.flushAllocation();
  }

  /** Creates a directory and any missing parents; an existing directory is fine. */
  async mkdir(path: string, opts: WriteOptions = {}): Promise<void> {
    this.mustBeWritable();
    const parts = splitPath(path);
    let dir = await this.loadDir(this.rootDirRef());
    for (let i = 0; i < parts.length; i++) {
      const name = parts[i]!;
      const here = joinPath(parts.slice(0, i + 1));
      let entry = findEntry(dir, name);
      if (entry && !entry.isDirectory)
        throw this.error(`cannot create directory "${here}": a file has that name`);
      if (!entry) {
        const short = this.newEntryName(dir, name);
        const [cluster] = this.fat.allocate(1);
        const when = opts.modified ?? FAT_EPOCH;
        const block = new Uint8Array(this.clusterSize);
        // Spec section 6.7: '.' points to the directory itself, '..' to the parent (0 for the root).
        block.set(encodeShortEntry(DOT, ATTR.DIRECTORY, cluster!, 0, when), 0);
        const parent = dir.path === '/' ? 0 : dir.cluster; // also 0 for the FAT32 root
        block.set(encodeShortEntry(DOTDOT, ATTR.DIRECTORY, parent, 0, when), DIR_ENTRY_SIZE);
        await this.writeClusters([cluster!], block);
        const slots = encodeEntrySlots(
          short.longName,
          encodeShortEntry(short.raw, ATTR.DIRECTORY, cluster!, 0, when),
        );
        await this.placeEntry(dir, slots);
        await this.writeDir(dir);
        await this.flushAllocation();
        entry = findEntry(dir, name)!;
      }
      dir = await this.loadDir({ path: here, cluster: entry.firstCluster });
    }
  }

  /** Removes a file or an empty directory. */
  async remove(path: string): Promise<void> {
    this.mustBeWritable();
    const parts = splitPath(path);
    if (parts.length === 0) throw this.error('cannot remove the root directory');
    const display = joinPath(parts);
    const dir = await this.openDirPath(parts.slice(0, -1));
    const entry = this.mustFind(dir, parts[parts.length - 1]!, 'file');
    let clusters: number[] = [];
    if (entry.isDirectory) {
      const sub = await this.loadDir({ path: display, cluster: entry.firstCluster });
      const held = sub.decoded.entries.filter((e) => e.raw !== DOT && e.raw !== DOTDOT);
      if (held.length > 0) throw this.error(`cannot remove "${display}": the directory is not empty`);
      clusters = sub.clusters ?? [];
    } else if (entry.firstCluster !== 0) {
      clusters = this.fat.chain(entry.firstCluster, `file "${display}"`);
    }
    for (let o = entry.firstSlot; o <= entry.offset; o += DIR_ENTRY_SIZE) dir.data[o] = ENTRY_FREE;
    this.fat.free(clusters);
    await this.writeDir(dir);
    await this.flushAllocation();
  }

  // ---- internals ----

  private error(message: string): VmmError {
    return diskError(this.source, message);
  }

  private where(): string {
    return this.source ?? 'the FAT volume';
  }

  private mustBeWritable(): void {
    if (!this.dev.write) throw this.error('the device is read-only');
  }

  private rootDirRef(): { path: string; cluster: number } {
    return { path: '/', cluster: this.type === 32 ? this.boot.rootCluster : 0 };
  }

  private lba(volumeSector: number): number {
    return this.base + volumeSector * this.ratio;
  }

  private clusterLba(c: number): number {
    return this.lba(this.boot.firstDataSector) + (c - FIRST_CLUSTER) * this.clusterSectors;
  }

  /** Runs of consecutive clusters, split so that no single transfer is too large. */
  private runs(clusters: readonly number[]): { first: number; count: number; index: number }[] {
    const out: { first: number; count: number; index: number }[] = [];
    const maxClusters = Math.max(1, Math.floor(MAX_RUN_SECTORS / this.clusterSectors));
    clusters.forEach((c, index) => {
      const last = out[out.length - 1];
      if (last && last.first + last.count === c && last.count < maxClusters) last.count++;
      else out.push({ first: c, count: 1, index });
    });
    return out;
  }

  private async readClusters(clusters: readonly number[]): Promise<Uint8Array> {
    const out = new Uint8Array(clusters.length * this.clusterSize);
    for (const r of this.runs(clusters)) {
      const bytes = await readSectors(this.dev, this.clusterLba(r.first), r.count * this.clusterSectors);
      out.set(bytes, r.index * this.clusterSize);
    }
    return out;
  }

  /** Writes `data` over the clusters, zero-padding the last one. */
  private async writeClusters(clusters: readonly number[], data: Uint8Array): Promise<void> {
    for (const r of this.runs(clusters)) {
      const chunk = new Uint8Array(r.count * this.clusterSize);
      chunk.set(data.subarray(r.index * this.clusterSize, (r.index + r.count) * this.clusterSize));
      await writeSectors(this.dev, this.clusterLba(r.first), chunk);
    }
  }

  private async loadDir(ref: { path: string; cluster: number }): Promise<Dir> {
    let clusters: number[] | undefined;
    let data: Uint8Array;
    if (ref.cluster === 0 && this.type !== 32) {
      data = await readSectors(
        this.dev,
        this.lba(this.boot.firstRootDirSector),
        this.boot.rootDirSectors * this.ratio,
      );
      data = data.subarray(0, this.boot.rootEntryCount * DIR_ENTRY_SIZE);
    } else {
      const what = ref.path === '/' ? 'the root directory' : `directory "${ref.path}"`;
      clusters = this.fat.chain(ref.cluster, what);
      if (clusters.length * this.clusterSize > MAX_DIR_BYTES) {
        throw this.error(
          `corrupt directory: ${what} spans ${clusters.length} clusters, more than 65536 entries`,
        );
      }
      data = await this.readClusters(clusters);
    }
    return { path: ref.path, cluster: ref.cluster, clusters, data, decoded: decodeDirectory(data) };
  }

  private async writeDir(dir: Dir): Promise<void> {
    if (!dir.clusters) {
      const sectors = this.boot.rootDirSectors * this.ratio;
      const bytes = new Uint8Array(sectors * DEVICE_SECTOR_SIZE);
      bytes.set(dir.data);
      await writeSectors(this.dev, this.lba(this.boot.firstRootDirSector), bytes);
    } else {
      await this.writeClusters(dir.clusters, dir.data);
    }
    dir.decoded = decodeDirectory(dir.data);
  }

  /** Walks from the root to the directory named by `parts`. */
  private async openDirPath(parts: readonly string[]): Promise<Dir> {
    let dir = await this.loadDir(this.rootDirRef());
    for (let i = 0; i < parts.length; i++) {
      const entry = this.mustFind(dir, parts[i]!, 'directory');
      const here = joinPath(parts.slice(0, i + 1));
      if (!entry.isDirectory) throw this.error(`"${here}" is a file, not a directory`);
      // '..' of a first-level directory holds 0, meaning the root (spec section 6.7).
      dir = await this.loadDir(
        entry.firstCluster === 0 ? this.rootDirRef() : { path: here, cluster: entry.firstCluster },
      );
    }
    return dir;
  }

  private mustFind(dir: Dir, name: string, kind: 'file' | 'directory'): RawDirEntry {
    const entry = findEntry(dir, name);
    if (entry) return entry;
    const names = dir.decoded.entries
      .filter((e) => e.raw !== DOT && e.raw !== DOTDOT)
      .map((e) => (e.isDirectory ? `${e.name}/` : e.name));
    const which = dir.path === '/' ? 'the root directory' : `the directory ${dir.path}`;
    const shown = names.length > 40 ? [...names.slice(0, 40), `... (${names.length - 40} more)`] : names;
    const holds = names.length === 0 ? `${which} is empty` : `${which} holds: ${shown.join(', ')}`;
    throw new VmmError('disk', `no ${kind} "${name}" in ${this.where()}; ${holds}`);
  }

  /** Checks a new name and picks its short name. */
  private newEntryName(dir: Dir, name: string): { raw: string; longName: string | undefined } {
    const problem = longNameProblem(name);
    if (problem) throw this.error(`cannot create "${name}" in ${dir.path}: ${problem}`);
    const taken = new Set(dir.decoded.entries.map((e) => e.raw));
    const short = makeShortName(name, (raw) => taken.has(raw));
    return { raw: short.raw, longName: short.needsLongName ? name : undefined };
  }

  /** Puts the slots of a new entry into the first run of free slots, growing the directory if needed. */
  private async placeEntry(dir: Dir, slots: Uint8Array): Promise<void> {
    const need = slots.length / DIR_ENTRY_SIZE;
    const total = dir.data.length / DIR_ENTRY_SIZE;
    const endSlot = dir.decoded.end / DIR_ENTRY_SIZE;
    let runStart = -1;
    let run = 0;
    for (let i = 0; i < total && run < need; i++) {
      const free = i >= endSlot || dir.data[i * DIR_ENTRY_SIZE] === ENTRY_FREE;
      if (free) {
        if (run === 0) runStart = i;
        run++;
      } else {
        run = 0;
      }
    }
    if (run < need) {
      if (!dir.clusters) {
        throw this.error(`the root directory is full (${this.boot.rootEntryCount} entries)`);
      }
      // Grow the directory by enough zeroed clusters for the slots still missing.
      if (run === 0) runStart = total;
      const extraBytes = (need - run) * DIR_ENTRY_SIZE;
      const extra = Math.ceil(extraBytes / this.clusterSize);
      if (dir.data.length + extra * this.clusterSize > MAX_DIR_BYTES) {
        throw this.error(`the directory ${dir.path} is full (65536 entries)`);
      }
      const added = this.fat.allocate(extra, dir.clusters[dir.clusters.length - 1]!);
      const grown = new Uint8Array(dir.data.length + extra * this.clusterSize);
      grown.set(dir.data);
      dir.data = grown;
      dir.clusters.push(...added);
    }
    const at = runStart * DIR_ENTRY_SIZE;
    const usesEnd = runStart + need > endSlot;
    dir.data.set(slots, at);
    // Past the end marker every slot must read as free: clear leftovers so none reappear.
    if (usesEnd) {
      for (let o = at + slots.length; o < dir.data.length; o += DIR_ENTRY_SIZE) {
        if (dir.data[o] !== ENTRY_END) dir.data.fill(0, o, o + DIR_ENTRY_SIZE);
      }
    }
  }

  /** Writes the FAT copies and the FSInfo hints. */
  private async flushAllocation(): Promise<void> {
    const b = this.boot;
    const noMirror = b.fatType === 32 && (b.extFlags & EXT_FLAGS_NO_MIRROR) !== 0;
    const copies = noMirror ? [b.extFlags & 0xf] : Array.from({ length: b.numFats }, (_, i) => i);
    await this.fat.flush(
      this.dev,
      copies.map((i) => this.lba(b.reservedSectors + i * b.fatSize)),
    );
    if (this.hasFsInfo) {
      const lba = this.lba(b.fsInfoSector);
      const info = await readSectors(this.dev, lba, 1);
      writeU32(info, FSINFO.FSI_Free_Count, this.fat.freeCount);
      writeU32(
        info,
        FSINFO.FSI_Nxt_Free,
        this.fat.nextFree <= this.fat.maxCluster ? this.fat.nextFree : FSI_UNKNOWN,
      );
      await writeSectors(this.dev, lba, info);
    }
  }
}

function publicEntry(e: RawDirEntry): FatDirEntry {
  return {
    name: e.name,
    shortName: e.shortName,
    isDirectory: e.isDirectory,
    size: e.size,
    attributes: e.attributes,
    firstCluster: e.firstCluster,
    modified: e.modified,
  };
}

/** Case-insensitive match on the long or the short name. */
function findEntry(dir: Dir, name: string): RawDirEntry | undefined {
  const want = name.toUpperCase();
  return dir.decoded.entries.find((e) => e.name.toUpperCase() === want || e.shortName.toUpperCase() === want);
}

function choosePartition(
  mbr: Uint8Array,
  deviceSectors: number,
  index: number | undefined,
  source: string | undefined,
): { start: number; sectors: number } {
  const fail = (msg: string): never => {
    throw diskError(source, msg);
  };
  if (index !== undefined && (!Number.isInteger(index) || index < 0 || index > 3)) {
    fail(`partition ${index} does not exist: an MBR has partitions 0 to 3`);
  }
  if (!hasMbrSignature(mbr)) {
    fail('not a FAT volume: sector 0 holds neither a FAT boot sector nor an MBR partition table');
  }
  const parts = parseMbr(mbr);
  const describe = (): string =>
    parts.length === 0
      ? 'the partition table is empty'
      : 'it holds ' +
        parts.map((p) => `${p.index}: type 0x${p.type.toString(16).padStart(2, '0')}`).join(', ');
  const part =
    index !== undefined
      ? parts.find((p) => p.index === index)
      : parts.find((p) => FAT_PARTITION_TYPES.has(p.type));
  if (!part) {
    return fail(
      index !== undefined
        ? `MBR partition ${index} is empty; ${describe()}`
        : `no FAT partition (types 01, 04, 06, 0B, 0C, 0E) in the MBR; ${describe()}`,
    );
  }
  if (part.start === 0 || part.start + part.sectors > deviceSectors) {
    fail(
      `MBR partition ${part.index} (sectors ${part.start}..${part.start + part.sectors - 1}) ` +
        `does not fit the device (${deviceSectors} sectors)`,
    );
  }
  return part;
}

/** Opens the FAT volume on a device (see OpenFatOptions). */
export function openFat(dev: SectorDevice, opts: OpenFatOptions = {}): Promise<FatVolume> {
  return FatVolume.open(dev, opts);
}
