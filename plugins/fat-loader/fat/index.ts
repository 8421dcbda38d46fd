/** A FAT12/16/32 file-system library over a sector device (used by fat-loader and `vmm disk`). */
export type { SectorDevice } from './device.js';
export { DEVICE_SECTOR_SIZE, MemoryDevice, SubDevice } from './device.js';
export type { BootSector, FatType } from './bpb.js';
export { parseBootSector } from './bpb.js';
export type { MbrPartition } from './mbr.js';
export { FAT_PARTITION_TYPES, encodeMbr, parseMbr } from './mbr.js';
export type { FatDirEntry } from './dir.js';
export { ATTR, FAT_EPOCH, lfnChecksum, longNameProblem, makeShortName } from './dir.js';
export type { FatVolumeInfo, OpenFatOptions, WriteOptions } from './volume.js';
export { FatVolume, openFat } from './volume.js';
export type { FormatOptions, FormatResult } from './format.js';
export { DEFAULT_LABEL, formatFat, planLayout } from './format.js';
