/**
 * Formatting a device as FAT12, FAT16 or FAT32 (spec sections 3-5): choose the type and cluster size the
 * way mkfs.fat does by default, size the FATs, write the boot sector (plus FSInfo and the backup boot
 * sector on FAT32), empty FATs, and a root directory holding the volume label.
 */
import type { FatType } from './bpb.js';
import {
  FAT12_MAX_CLUSTERS,
  FAT16_MAX_CLUSTERS,
  encodeBootSector,
  encodeFsInfo,
  fatBytes,
  fatTypeForClusterCount,
} from './bpb.js';
import type { SectorDevice } from './device.js';
import { DEVICE_SECTOR_SIZE, diskError, writeSectors } from './device.js';
import { ATTR, DIR_ENTRY_SIZE, FAT_EPOCH, encodeShortEntry } from './dir.js';
import { FAT_EOC, FatTable } from './table.js';

export interface FormatOptions {
  /** Default: FAT32 from 512 MiB, else FAT12 when it fits with 2 KiB clusters, else FAT16 (as mkfs.fat). */
  fatType?: FatType;
  /** Up to 11 characters; default "VMM DISK". */
  label?: string;
  /** Volume serial number; default derived from the size, type and label, so images are reproducible. */
  serial?: number | 'random';
  /** Power of two from 1 to 128; default chosen from the size. */
  sectorsPerCluster?: number;
  /** BPB_HiddSec: the LBA of the partition when the device is one (default 0). */
  hiddenSectors?: number;
  /** Root directory entries for FAT12/16 (default 512). */
  rootEntries?: number;
}

export interface FormatResult {
  fatType: FatType;
  sectorsPerCluster: number;
  clusterCount: number;
  serial: number;
  label: string;
}

export const DEFAULT_LABEL = 'VMM DISK';
/** The OEM name the spec recommends for the widest compatibility (section 3.1, BS_OEMName). */
const OEM_NAME = 'MSWIN4.1';
/** Fixed (non-removable) media (spec section 3.1, BPB_Media); FAT[0] repeats it. */
const MEDIA_FIXED = 0xf8;
const NUM_FATS = 2;
/** Reserved sectors: the boot sector alone for FAT12/16; FAT32 keeps FSInfo and the backups there. */
const RESERVED_16 = 1;
const RESERVED_32 = 32;
const FAT32_FSINFO_SECTOR = 1;
const FAT32_BACKUP_BOOT_SECTOR = 6;
const FAT32_ROOT_CLUSTER = 2;
/** mkfs.fat switches to FAT32 by default from 512 MiB. */
const FAT32_DEFAULT_FROM_BYTES = 512 * 1024 * 1024;
/** mkfs.fat's default cluster for FAT12/16 hard disk images: 4 sectors (2 KiB). */
const DEFAULT_SPC_16 = 4;
const FAT32_MIN_CLUSTERS = FAT16_MAX_CLUSTERS + 1;
const LABEL_CHARS = /^[A-Z0-9 !#$%&'()\-@^_`{}~]*$/;
/** Largest write while clearing the metadata area. */
const ZERO_CHUNK_SECTORS = 2048;

/** FAT32 default cluster size by volume size (spec section 3.5, DskTableFAT32, for 512-byte sectors). */
function fat32DefaultSpc(sectors: number): number {
  if (sectors <= 532480) return 1; // up to 260 MB
  if (sectors <= 16777216) return 8; // up to 8 GB
  if (sectors <= 33554432) return 16; // up to 16 GB
  if (sectors <= 67108864) return 32; // up to 32 GB
  return 64;
}

interface Layout {
  fatType: FatType;
  sectorsPerCluster: number;
  reservedSectors: number;
  rootEntries: number;
  rootDirSectors: number;
  fatSize: number;
  clusterCount: number;
}

/** FAT size and cluster count for one choice of type and cluster size (iterated to a fixed point). */
function measure(total: number, type: FatType, spc: number, rootEntries: number): Layout {
  const reservedSectors = type === 32 ? RESERVED_32 : RESERVED_16;
  const entries = type === 32 ? 0 : rootEntries;
  const rootDirSectors = Math.ceil((entries * DIR_ENTRY_SIZE) / DEVICE_SECTOR_SIZE);
  let fatSize = 1;
  let clusterCount = 0;
  for (let i = 0; i < 64; i++) {
    const data = total - reservedSectors - rootDirSectors - NUM_FATS * fatSize;
    clusterCount = Math.max(0, Math.floor(data / spc));
    const need = Math.max(1, Math.ceil(fatBytes(type, clusterCount + 2) / DEVICE_SECTOR_SIZE));
    if (need <= fatSize) break;
    fatSize = need;
  }
  return {
    fatType: type,
    sectorsPerCluster: spc,
    reservedSectors,
    rootEntries: entries,
    rootDirSectors,
    fatSize,
    clusterCount,
  };
}

/** mkfs.fat's choice: FAT32 from 512 MiB, else FAT12 if it fits with its default cluster, else FAT16. */
function defaultFatType(total: number, spc: number | undefined, rootEntries: number): FatType {
  if (total * DEVICE_SECTOR_SIZE >= FAT32_DEFAULT_FROM_BYTES) return 32;
  const asFat12 = measure(total, 12, spc ?? DEFAULT_SPC_16, rootEntries);
  return asFat12.clusterCount <= FAT12_MAX_CLUSTERS ? 12 : 16;
}

const fits = (l: Layout): boolean =>
  l.clusterCount > 0 && fatTypeForClusterCount(l.clusterCount) === l.fatType;

/** Chooses the layout for a device of `total` 512-byte sectors. */
export function planLayout(total: number, opts: FormatOptions = {}, source?: string): Layout {
  const rootEntries = opts.rootEntries ?? 512;
  if (!Number.isInteger(rootEntries) || rootEntries < 16 || rootEntries > 65520 || rootEntries % 16 !== 0) {
    throw diskError(
      source,
      `root directory entries must be a multiple of 16 from 16 to 65520, not ${rootEntries}`,
    );
  }
  const spcAsked = opts.sectorsPerCluster;
  if (
    spcAsked !== undefined &&
    !(Number.isInteger(spcAsked) && spcAsked >= 1 && spcAsked <= 128 && (spcAsked & (spcAsked - 1)) === 0)
  ) {
    throw diskError(source, `sectors per cluster must be a power of two from 1 to 128, not ${spcAsked}`);
  }
  if (total > 0xffffffff) throw diskError(source, 'FAT cannot address more than 2^32 sectors (2 TiB)');
  const type = opts.fatType ?? defaultFatType(total, spcAsked, rootEntries);
  let spc = spcAsked ?? (type === 32 ? fat32DefaultSpc(total) : DEFAULT_SPC_16);
  let layout = measure(total, type, spc, rootEntries);
  if (spcAsked === undefined) {
    // Too many clusters for the type: bigger clusters; too few: smaller ones.
    const max = type === 12 ? FAT12_MAX_CLUSTERS : type === 16 ? FAT16_MAX_CLUSTERS : Infinity;
    while (layout.clusterCount > max && spc < 128) layout = measure(total, type, (spc *= 2), rootEntries);
    const min = type === 12 ? 1 : type === 16 ? FAT12_MAX_CLUSTERS + 1 : FAT32_MIN_CLUSTERS;
    while (layout.clusterCount < min && spc > 1) layout = measure(total, type, (spc /= 2), rootEntries);
  }
  if (!fits(layout)) {
    const size = `${Math.floor((total * DEVICE_SECTOR_SIZE) / 1024)} KiB`;
    const why =
      layout.clusterCount === 0
        ? 'leaves no room for data'
        : `gives ${layout.clusterCount} clusters of ${layout.sectorsPerCluster * DEVICE_SECTOR_SIZE} bytes, ` +
          `a FAT${fatTypeForClusterCount(layout.clusterCount)} count`;
    throw diskError(source, `cannot format ${size} as FAT${type}: it ${why}`);
  }
  return layout;
}

/** FNV-1a: a stable serial number from the things that define the volume. */
function defaultSerial(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h >>> 0;
}

async function zeroSectors(dev: SectorDevice, lba: number, count: number): Promise<void> {
  const zeros = new Uint8Array(Math.min(count, ZERO_CHUNK_SECTORS) * DEVICE_SECTOR_SIZE);
  for (let done = 0; done < count; done += ZERO_CHUNK_SECTORS) {
    const n = Math.min(ZERO_CHUNK_SECTORS, count - done);
    await writeSectors(
      dev,
      lba + done,
      n === ZERO_CHUNK_SECTORS ? zeros : zeros.subarray(0, n * DEVICE_SECTOR_SIZE),
    );
  }
}

/** Formats the whole device. Data clusters are not cleared (new directories clear their own). */
export async function formatFat(dev: SectorDevice, opts: FormatOptions = {}): Promise<FormatResult> {
  const source = dev.name;
  if (!dev.write) throw diskError(source, 'cannot format: the device is read-only');
  const label = (opts.label ?? DEFAULT_LABEL).toUpperCase();
  if (label.length === 0 || label.length > 11 || !LABEL_CHARS.test(label)) {
    throw diskError(
      source,
      `the volume label "${label}" must be 1 to 11 characters, letters, digits, spaces or !#$%&'()-@^_\`{}~`,
    );
  }
  const total = dev.sectorCount;
  const l = planLayout(total, opts, source);
  const serial =
    opts.serial === 'random'
      ? Math.floor(Math.random() * 0x100000000) >>> 0
      : (opts.serial ?? defaultSerial(`${l.fatType}:${total}:${label}`)) >>> 0;
  const type = l.fatType;

  const firstRootDir = l.reservedSectors + NUM_FATS * l.fatSize;
  const firstData = firstRootDir + l.rootDirSectors;
  const clusterSectors = l.sectorsPerCluster;
  // Clear the reserved area, the FATs, the root directory (and FAT32's root cluster).
  await zeroSectors(dev, 0, firstData + (type === 32 ? clusterSectors : 0));

  const boot = encodeBootSector({
    oemName: OEM_NAME,
    bytesPerSector: DEVICE_SECTOR_SIZE,
    sectorsPerCluster: l.sectorsPerCluster,
    reservedSectors: l.reservedSectors,
    numFats: NUM_FATS,
    rootEntryCount: l.rootEntries,
    totalSectors: total,
    media: MEDIA_FIXED,
    fatSize: l.fatSize,
    sectorsPerTrack: 32,
    numHeads: 64,
    hiddenSectors: opts.hiddenSectors ?? 0,
    fatType: type,
    rootCluster: type === 32 ? FAT32_ROOT_CLUSTER : 0,
    fsInfoSector: type === 32 ? FAT32_FSINFO_SECTOR : 0,
    backupBootSector: type === 32 ? FAT32_BACKUP_BOOT_SECTOR : 0,
    driveNumber: 0x80,
    volumeId: serial,
    volumeLabel: label,
  });
  await writeSectors(dev, 0, boot);

  // FAT[0] holds the media byte in its low 8 bits, all other bits set; FAT[1] is an end-of-chain mark
  // (spec section 4.2, with the FAT32 "clean shutdown" and "no hard error" bits set).
  const fat = FatTable.empty(type, l.clusterCount, source);
  fat.set(0, (FAT_EOC[type] & ~0xff) | MEDIA_FIXED);
  fat.set(1, FAT_EOC[type]);
  if (type === 32) fat.set(FAT32_ROOT_CLUSTER, FAT_EOC[type]);
  await fat.flush(
    dev,
    Array.from({ length: NUM_FATS }, (_, i) => l.reservedSectors + i * l.fatSize),
  );

  if (type === 32) {
    const info = encodeFsInfo(DEVICE_SECTOR_SIZE, fat.freeCount, FAT32_ROOT_CLUSTER + 1);
    await writeSectors(dev, FAT32_FSINFO_SECTOR, info);
    await writeSectors(dev, FAT32_BACKUP_BOOT_SECTOR, boot);
    await writeSectors(dev, FAT32_BACKUP_BOOT_SECTOR + FAT32_FSINFO_SECTOR, info);
  }

  // The volume label entry, first in the root directory.
  const rootLba = type === 32 ? firstData + (FAT32_ROOT_CLUSTER - 2) * clusterSectors : firstRootDir;
  const root = new Uint8Array(DEVICE_SECTOR_SIZE);
  root.set(encodeShortEntry(label.padEnd(11, ' '), ATTR.VOLUME_ID, 0, 0, FAT_EPOCH));
  await writeSectors(dev, rootLba, root);

  return {
    fatType: type,
    sectorsPerCluster: l.sectorsPerCluster,
    clusterCount: l.clusterCount,
    serial,
    label,
  };
}
