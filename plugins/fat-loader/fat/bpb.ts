/**
 * The boot sector and BIOS Parameter Block (Microsoft "FAT: General Overview of On-Disk Format",
 * section 3 "Boot Sector and BPB"), the FAT type determination (section 3.5) and the FAT32 FSInfo
 * sector (section 5). Field offsets are named once here; everything else uses these names.
 */
import { diskError } from './device.js';

export type FatType = 12 | 16 | 32;

/** Fields common to all FAT types (spec section 3.1). */
export const BPB = {
  BS_jmpBoot: 0, // 3 bytes: EB xx 90 or E9 xx xx
  BS_OEMName: 3, // 8 bytes
  BPB_BytsPerSec: 11, // u16
  BPB_SecPerClus: 13, // u8
  BPB_RsvdSecCnt: 14, // u16
  BPB_NumFATs: 16, // u8
  BPB_RootEntCnt: 17, // u16
  BPB_TotSec16: 19, // u16
  BPB_Media: 21, // u8
  BPB_FATSz16: 22, // u16
  BPB_SecPerTrk: 24, // u16
  BPB_NumHeads: 26, // u16
  BPB_HiddSec: 28, // u32
  BPB_TotSec32: 32, // u32
} as const;

/** Extended boot record of FAT12/FAT16 volumes (spec section 3.2). */
export const BS16 = {
  BS_DrvNum: 36,
  BS_Reserved1: 37,
  BS_BootSig: 38,
  BS_VolID: 39, // u32
  BS_VolLab: 43, // 11 bytes
  BS_FilSysType: 54, // 8 bytes
  BootCode: 62,
} as const;

/** Extended BPB of FAT32 volumes (spec section 3.3). */
export const BPB32 = {
  BPB_FATSz32: 36, // u32
  BPB_ExtFlags: 40, // u16: bit 7 = mirroring disabled, bits 0-3 = active FAT
  BPB_FSVer: 42, // u16, must be 0
  BPB_RootClus: 44, // u32
  BPB_FSInfo: 48, // u16
  BPB_BkBootSec: 50, // u16
  BPB_Reserved: 52, // 12 bytes
  BS_DrvNum: 64,
  BS_Reserved1: 65,
  BS_BootSig: 66,
  BS_VolID: 67, // u32
  BS_VolLab: 71, // 11 bytes
  BS_FilSysType: 82, // 8 bytes
  BootCode: 90,
} as const;

/** Bytes 510-511 of the boot sector (and of an MBR). */
export const SIGNATURE_OFFSET = 510;
export const SIGNATURE = 0xaa55;
/** BS_BootSig value saying that BS_VolID, BS_VolLab and BS_FilSysType are present. */
export const EXTENDED_BOOT_SIGNATURE = 0x29;
export const EXT_FLAGS_NO_MIRROR = 0x80;

/** FSInfo sector (spec section 5). */
export const FSINFO = {
  FSI_LeadSig: 0,
  FSI_StrucSig: 484,
  FSI_Free_Count: 488,
  FSI_Nxt_Free: 492,
  FSI_TrailSig: 508,
} as const;
export const FSI_LEAD_SIG = 0x41615252;
export const FSI_STRUC_SIG = 0x61417272;
export const FSI_TRAIL_SIG = 0xaa550000;
/** FSI_Free_Count / FSI_Nxt_Free value meaning "unknown". */
export const FSI_UNKNOWN = 0xffffffff;

/** Cluster-count limits of the FAT type determination (spec section 3.5): below 4085 is FAT12, etc. */
export const FAT12_MAX_CLUSTERS = 4084;
export const FAT16_MAX_CLUSTERS = 65524;
/** The largest FAT32 cluster count that keeps cluster numbers below the BAD marker 0x0FFFFFF7. */
export const FAT32_MAX_CLUSTERS = 0x0ffffff5;

export const VALID_BYTES_PER_SECTOR = [512, 1024, 2048, 4096] as const;

/** The decoded boot sector with the derived layout (all sector numbers relative to the volume start). */
export interface BootSector {
  oemName: string;
  bytesPerSector: number;
  sectorsPerCluster: number;
  reservedSectors: number;
  numFats: number;
  rootEntryCount: number;
  totalSectors: number;
  media: number;
  fatSize: number;
  sectorsPerTrack: number;
  numHeads: number;
  hiddenSectors: number;
  /** FAT32 only (0 otherwise). */
  extFlags: number;
  rootCluster: number;
  fsInfoSector: number;
  backupBootSector: number;
  /** From the extended boot record when BS_BootSig is 0x29. */
  volumeId: number | undefined;
  volumeLabel: string | undefined;
  fileSystemType: string | undefined;
  // Derived (spec section 3.5).
  fatType: FatType;
  rootDirSectors: number;
  firstRootDirSector: number;
  firstDataSector: number;
  clusterCount: number;
}

const u16 = (b: Uint8Array, o: number): number => b[o]! | (b[o + 1]! << 8);
const u32 = (b: Uint8Array, o: number): number =>
  (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
const ascii = (b: Uint8Array, o: number, n: number): string =>
  String.fromCharCode(...b.subarray(o, o + n)).replace(/[\s\0]+$/, '');

export function readU16(b: Uint8Array, o: number): number {
  return u16(b, o);
}
export function readU32(b: Uint8Array, o: number): number {
  return u32(b, o);
}
export function writeU16(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
}
export function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}

const isPowerOfTwo = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;

/** BS_jmpBoot holds a short (EB xx) or near (E9 xx xx) jump, as every FAT boot sector does. */
export function hasJumpInstruction(s: Uint8Array): boolean {
  return s[BPB.BS_jmpBoot] === 0xeb || s[BPB.BS_jmpBoot] === 0xe9;
}

/**
 * A cheap test used to tell a bare volume (BPB in sector 0) from an MBR: a jump instruction and
 * plausible sector and cluster sizes, FAT count and reserved sectors.
 */
export function looksLikeBootSector(s: Uint8Array): boolean {
  if (s.length < 512) return false;
  if (!hasJumpInstruction(s)) return false;
  const bps = u16(s, BPB.BPB_BytsPerSec);
  const spc = s[BPB.BPB_SecPerClus]!;
  return (
    (VALID_BYTES_PER_SECTOR as readonly number[]).includes(bps) &&
    isPowerOfTwo(spc) &&
    spc <= 128 &&
    s[BPB.BPB_NumFATs]! > 0 &&
    u16(s, BPB.BPB_RsvdSecCnt) > 0
  );
}

/** The FAT type for a cluster count (spec section 3.5: this is the only correct way to decide). */
export function fatTypeForClusterCount(count: number): FatType {
  if (count <= FAT12_MAX_CLUSTERS) return 12;
  if (count <= FAT16_MAX_CLUSTERS) return 16;
  return 32;
}

/** Bytes needed for a FAT holding `entries` entries (clusters + the 2 reserved entries). */
export function fatBytes(type: FatType, entries: number): number {
  return type === 12 ? Math.ceil((entries * 3) / 2) : entries * (type / 8);
}

/**
 * Decodes and checks a boot sector. `volumeBytes` is the room the device has for the volume;
 * `source` names the image in errors.
 */
export function parseBootSector(s: Uint8Array, volumeBytes: number, source?: string): BootSector {
  const bad = (what: string): never => {
    throw diskError(source, `not a valid FAT volume: ${what}`);
  };
  if (s.length < 512) bad('the boot sector is shorter than 512 bytes');
  const bytesPerSector = u16(s, BPB.BPB_BytsPerSec);
  if (!(VALID_BYTES_PER_SECTOR as readonly number[]).includes(bytesPerSector)) {
    bad(`bytes per sector is ${bytesPerSector} (must be 512, 1024, 2048 or 4096)`);
  }
  const sectorsPerCluster = s[BPB.BPB_SecPerClus]!;
  if (!isPowerOfTwo(sectorsPerCluster) || sectorsPerCluster > 128) {
    bad(`sectors per cluster is ${sectorsPerCluster} (must be a power of two from 1 to 128)`);
  }
  const reservedSectors = u16(s, BPB.BPB_RsvdSecCnt);
  if (reservedSectors === 0) bad('the reserved sector count is 0');
  const numFats = s[BPB.BPB_NumFATs]!;
  if (numFats === 0) bad('the number of FATs is 0');
  const rootEntryCount = u16(s, BPB.BPB_RootEntCnt);
  const totSec16 = u16(s, BPB.BPB_TotSec16);
  const totalSectors = totSec16 !== 0 ? totSec16 : u32(s, BPB.BPB_TotSec32);
  if (totalSectors === 0) bad('the total sector count is 0');
  const fatSz16 = u16(s, BPB.BPB_FATSz16);
  const fatSize = fatSz16 !== 0 ? fatSz16 : u32(s, BPB32.BPB_FATSz32);
  if (fatSize === 0) bad('the FAT size is 0');

  const volumeSize = totalSectors * bytesPerSector;
  if (volumeSize > volumeBytes) {
    bad(
      `the boot sector says the volume is ${volumeSize} bytes (${totalSectors} sectors of ${bytesPerSector}) ` +
        `but the device holds only ${volumeBytes} bytes (truncated image?)`,
    );
  }

  const rootDirSectors = Math.ceil((rootEntryCount * 32) / bytesPerSector);
  const firstRootDirSector = reservedSectors + numFats * fatSize;
  const firstDataSector = firstRootDirSector + rootDirSectors;
  if (firstDataSector >= totalSectors) {
    bad(`the FATs and root directory (${firstDataSector} sectors) fill the whole volume (${totalSectors})`);
  }
  const clusterCount = Math.floor((totalSectors - firstDataSector) / sectorsPerCluster);
  if (clusterCount === 0) bad('the data region holds no cluster');
  const fatType = fatTypeForClusterCount(clusterCount);
  if (fatType === 32 && clusterCount > FAT32_MAX_CLUSTERS)
    bad(`${clusterCount} clusters is too many for FAT32`);
  if (fatBytes(fatType, clusterCount + 2) > fatSize * bytesPerSector) {
    bad(`a FAT of ${fatSize} sectors cannot describe ${clusterCount} clusters`);
  }

  let extFlags = 0;
  let rootCluster = 0;
  let fsInfoSector = 0;
  let backupBootSector = 0;
  let ext: number = BS16.BS_BootSig;
  if (fatType === 32) {
    if (rootEntryCount !== 0) bad(`a FAT32 volume (${clusterCount} clusters) has a fixed root directory`);
    if (fatSz16 !== 0) bad(`a FAT32 volume (${clusterCount} clusters) has BPB_FATSz16 set`);
    extFlags = u16(s, BPB32.BPB_ExtFlags);
    if (u16(s, BPB32.BPB_FSVer) !== 0)
      bad(`unsupported FAT32 version ${u16(s, BPB32.BPB_FSVer).toString(16)}`);
    if ((extFlags & EXT_FLAGS_NO_MIRROR) !== 0 && (extFlags & 0xf) >= numFats) {
      bad(`the active FAT is ${extFlags & 0xf} but there are only ${numFats}`);
    }
    rootCluster = u32(s, BPB32.BPB_RootClus);
    if (rootCluster < 2 || rootCluster > clusterCount + 1)
      bad(`the root directory cluster ${rootCluster} is out of range`);
    fsInfoSector = u16(s, BPB32.BPB_FSInfo);
    if (fsInfoSector >= reservedSectors) fsInfoSector = 0; // 0 and 0xFFFF both mean "none"
    backupBootSector = u16(s, BPB32.BPB_BkBootSec);
    if (backupBootSector >= reservedSectors) backupBootSector = 0;
    ext = BPB32.BS_BootSig;
  } else if (rootEntryCount === 0) {
    bad(`a FAT${fatType} volume (${clusterCount} clusters) has no root directory entries`);
  }

  const hasExt = s[ext] === EXTENDED_BOOT_SIGNATURE;
  const volOff = ext + 1;
  return {
    oemName: ascii(s, BPB.BS_OEMName, 8),
    bytesPerSector,
    sectorsPerCluster,
    reservedSectors,
    numFats,
    rootEntryCount,
    totalSectors,
    media: s[BPB.BPB_Media]!,
    fatSize,
    sectorsPerTrack: u16(s, BPB.BPB_SecPerTrk),
    numHeads: u16(s, BPB.BPB_NumHeads),
    hiddenSectors: u32(s, BPB.BPB_HiddSec),
    extFlags,
    rootCluster,
    fsInfoSector,
    backupBootSector,
    volumeId: hasExt ? u32(s, volOff) : undefined,
    volumeLabel: hasExt ? ascii(s, volOff + 4, 11) : undefined,
    fileSystemType: hasExt ? ascii(s, volOff + 15, 8) : undefined,
    fatType,
    rootDirSectors,
    firstRootDirSector,
    firstDataSector,
    clusterCount,
  };
}

/** The fields formatFat chooses; encodeBootSector lays them out. */
export interface BootSectorFields {
  oemName: string;
  bytesPerSector: number;
  sectorsPerCluster: number;
  reservedSectors: number;
  numFats: number;
  rootEntryCount: number;
  totalSectors: number;
  media: number;
  fatSize: number;
  sectorsPerTrack: number;
  numHeads: number;
  hiddenSectors: number;
  fatType: FatType;
  rootCluster: number;
  fsInfoSector: number;
  backupBootSector: number;
  driveNumber: number;
  volumeId: number;
  volumeLabel: string;
}

/** Boot code for a data-only volume: print nothing, halt forever (hlt; jmp $-1). */
const HALT_LOOP = [0xf4, 0xeb, 0xfd];

function putAscii(b: Uint8Array, o: number, n: number, text: string): void {
  for (let i = 0; i < n; i++) b[o + i] = i < text.length ? text.charCodeAt(i) & 0xff : 0x20;
}

export function encodeBootSector(f: BootSectorFields): Uint8Array {
  const s = new Uint8Array(f.bytesPerSector);
  const bootCode = f.fatType === 32 ? BPB32.BootCode : BS16.BootCode;
  // Short jump over the BPB to the boot code, then NOP (spec section 3.1, BS_jmpBoot).
  s.set([0xeb, bootCode - 2, 0x90], BPB.BS_jmpBoot);
  putAscii(s, BPB.BS_OEMName, 8, f.oemName);
  writeU16(s, BPB.BPB_BytsPerSec, f.bytesPerSector);
  s[BPB.BPB_SecPerClus] = f.sectorsPerCluster;
  writeU16(s, BPB.BPB_RsvdSecCnt, f.reservedSectors);
  s[BPB.BPB_NumFATs] = f.numFats;
  writeU16(s, BPB.BPB_RootEntCnt, f.rootEntryCount);
  const small = f.fatType !== 32 && f.totalSectors < 0x10000;
  writeU16(s, BPB.BPB_TotSec16, small ? f.totalSectors : 0);
  writeU32(s, BPB.BPB_TotSec32, small ? 0 : f.totalSectors);
  s[BPB.BPB_Media] = f.media;
  writeU16(s, BPB.BPB_FATSz16, f.fatType === 32 ? 0 : f.fatSize);
  writeU16(s, BPB.BPB_SecPerTrk, f.sectorsPerTrack);
  writeU16(s, BPB.BPB_NumHeads, f.numHeads);
  writeU32(s, BPB.BPB_HiddSec, f.hiddenSectors);
  let ext: number = BS16.BS_DrvNum;
  if (f.fatType === 32) {
    writeU32(s, BPB32.BPB_FATSz32, f.fatSize);
    writeU16(s, BPB32.BPB_ExtFlags, 0);
    writeU16(s, BPB32.BPB_FSVer, 0);
    writeU32(s, BPB32.BPB_RootClus, f.rootCluster);
    writeU16(s, BPB32.BPB_FSInfo, f.fsInfoSector);
    writeU16(s, BPB32.BPB_BkBootSec, f.backupBootSector);
    ext = BPB32.BS_DrvNum;
  }
  // The extended boot record has the same layout for all types, only its offset differs.
  s[ext] = f.driveNumber;
  s[ext + 2] = EXTENDED_BOOT_SIGNATURE;
  writeU32(s, ext + 3, f.volumeId);
  putAscii(s, ext + 7, 11, f.volumeLabel);
  putAscii(s, ext + 18, 8, `FAT${f.fatType}`);
  s.set(HALT_LOOP, bootCode);
  writeU16(s, SIGNATURE_OFFSET, SIGNATURE);
  return s;
}

/** A fresh FSInfo sector (spec section 5). */
export function encodeFsInfo(bytesPerSector: number, freeCount: number, nextFree: number): Uint8Array {
  const s = new Uint8Array(bytesPerSector);
  writeU32(s, FSINFO.FSI_LeadSig, FSI_LEAD_SIG);
  writeU32(s, FSINFO.FSI_StrucSig, FSI_STRUC_SIG);
  writeU32(s, FSINFO.FSI_Free_Count, freeCount);
  writeU32(s, FSINFO.FSI_Nxt_Free, nextFree);
  writeU32(s, FSINFO.FSI_TrailSig, FSI_TRAIL_SIG);
  return s;
}

/** True when a sector carries the three FSInfo signatures. */
export function isFsInfo(s: Uint8Array): boolean {
  return (
    s.length >= 512 &&
    u32(s, FSINFO.FSI_LeadSig) === FSI_LEAD_SIG &&
    u32(s, FSINFO.FSI_StrucSig) === FSI_STRUC_SIG &&
    u32(s, FSINFO.FSI_TrailSig) === FSI_TRAIL_SIG
  );
}
