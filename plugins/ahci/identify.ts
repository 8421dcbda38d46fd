/**
 * IDENTIFY DEVICE data (ACS-3 §7.12.7, Table 45): 256 words. Only the words a driver reads are
 * filled; the rest are 0. Values follow what QEMU's IDE/AHCI disk reports where ACS-3 leaves a choice.
 */
import { SECTOR_SIZE } from './registers.js';

/** Word numbers (ACS-3 Table 45). */
export const IdWord = {
  GENERAL_CONFIG: 0,
  CYLINDERS: 1,
  HEADS: 3,
  SECTORS_PER_TRACK: 6,
  SERIAL: 10,
  FIRMWARE: 23,
  MODEL: 27,
  MAX_MULTIPLE: 47,
  CAPABILITIES: 49,
  CAPABILITIES2: 50,
  VALID_FIELDS: 53,
  LBA28_SECTORS: 60,
  MULTIWORD_DMA: 63,
  PIO_MODES: 64,
  SATA_CAPABILITIES: 76,
  MAJOR_VERSION: 80,
  COMMAND_SET_1: 82,
  COMMAND_SET_2: 83,
  COMMAND_SET_EXT: 84,
  ENABLED_1: 85,
  ENABLED_2: 86,
  ENABLED_EXT: 87,
  UDMA: 88,
  LBA48_SECTORS: 100,
  SECTOR_SIZE_INFO: 106,
  LOGICAL_SECTOR_WORDS: 117,
  INTEGRITY: 255,
} as const;

export const SERIAL_CHARS = 20;
export const FIRMWARE_CHARS = 8;
export const MODEL_CHARS = 40;

/** Word 83/86 bits: 48-bit address feature set (10), FLUSH CACHE (12), FLUSH CACHE EXT (13). */
export const ID83_LBA48 = 1 << 10;
export const ID83_FLUSH_CACHE = 1 << 12;
export const ID83_FLUSH_CACHE_EXT = 1 << 13;
/** Word 49: LBA (9) and DMA (8) supported. */
export const ID49_LBA = 1 << 9;
export const ID49_DMA = 1 << 8;
/** Word 106: bit 14 set and 15 clear = the word is valid; bit 12 = logical sector longer than 256 words. */
export const ID106_VALID = 1 << 14;
export const ID106_LOGICAL_LONG = 1 << 12;
/** The largest LBA a 28-bit command can address + 1. */
export const LBA28_LIMIT = 0x0fff_ffff;
/** Word 255 low byte: the checksum is valid (ACS-3 §7.12.7.94). */
export const INTEGRITY_SIGNATURE = 0xa5;

export interface IdentifyOptions {
  sectors: number;
  model: string;
  serial: string;
  firmware: string;
}

/** ATA strings: space padded, two characters per word, the first in the high byte. */
function putString(w: Uint16Array, word: number, chars: number, text: string): void {
  const s = text.padEnd(chars, ' ').slice(0, chars);
  for (let i = 0; i < chars; i += 2) {
    w[word + i / 2] = ((s.charCodeAt(i) & 0xff) << 8) | (s.charCodeAt(i + 1) & 0xff);
  }
}

export function identifyData(o: IdentifyOptions): Uint8Array {
  const w = new Uint16Array(256);
  // Obsolete CHS geometry (16 heads, 63 sectors), as drivers that still look at it expect.
  const cylinders = Math.min(16383, Math.floor(o.sectors / (16 * 63)));
  w[IdWord.GENERAL_CONFIG] = 0x0040; // ATA device, fixed
  w[IdWord.CYLINDERS] = cylinders;
  w[IdWord.HEADS] = 16;
  w[IdWord.SECTORS_PER_TRACK] = 63;
  putString(w, IdWord.SERIAL, SERIAL_CHARS, o.serial);
  putString(w, IdWord.FIRMWARE, FIRMWARE_CHARS, o.firmware);
  putString(w, IdWord.MODEL, MODEL_CHARS, o.model);
  w[IdWord.MAX_MULTIPLE] = 0x8010;
  w[IdWord.CAPABILITIES] = ID49_LBA | ID49_DMA;
  w[IdWord.CAPABILITIES2] = 0x4000;
  w[IdWord.VALID_FIELDS] = 0x0006; // words 64-70 and 88 are valid
  const lba28 = Math.min(o.sectors, LBA28_LIMIT);
  w[IdWord.LBA28_SECTORS] = lba28 & 0xffff;
  w[IdWord.LBA28_SECTORS + 1] = lba28 >>> 16;
  w[IdWord.MULTIWORD_DMA] = 0x0007;
  w[IdWord.PIO_MODES] = 0x0003;
  w[IdWord.SATA_CAPABILITIES] = 0x0002; // SATA Gen 1 signalling
  w[IdWord.MAJOR_VERSION] = 0x01f0; // ATA/ATAPI-5 .. ACS (ATA8-ACS)
  w[IdWord.COMMAND_SET_1] = 0x0020; // volatile write cache
  w[IdWord.COMMAND_SET_2] = 0x4000 | ID83_LBA48 | ID83_FLUSH_CACHE | ID83_FLUSH_CACHE_EXT;
  w[IdWord.COMMAND_SET_EXT] = 0x4000;
  w[IdWord.ENABLED_1] = 0x0020;
  w[IdWord.ENABLED_2] = ID83_LBA48 | ID83_FLUSH_CACHE | ID83_FLUSH_CACHE_EXT;
  w[IdWord.ENABLED_EXT] = 0x4000;
  w[IdWord.UDMA] = 0x203f; // UDMA 0-5 supported, mode 5 selected
  // Words 100-103: the 48-bit sector count (at most 2^53 here, far above any image).
  let n = o.sectors;
  for (let i = 0; i < 4; i++) {
    w[IdWord.LBA48_SECTORS + i] = n % 0x10000;
    n = Math.floor(n / 0x10000);
  }
  // One 512-byte logical sector per physical sector; words 117-118 stay 0 (bit 12 clear).
  w[IdWord.SECTOR_SIZE_INFO] = ID106_VALID;
  const bytes = new Uint8Array(SECTOR_SIZE);
  for (let i = 0; i < 256; i++) {
    bytes[i * 2] = w[i]! & 0xff;
    bytes[i * 2 + 1] = w[i]! >>> 8;
  }
  // Word 255: signature A5h, then the byte that makes all 512 bytes sum to 0 (mod 256).
  bytes[510] = INTEGRITY_SIGNATURE;
  let sum = 0;
  for (let i = 0; i < 511; i++) sum = (sum + bytes[i]!) & 0xff;
  bytes[511] = (0x100 - sum) & 0xff;
  return bytes;
}
