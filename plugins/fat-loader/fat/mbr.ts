/**
 * The classic MBR partition table: four 16-byte entries at offset 446, signature 0x55AA at 510.
 */
import { SIGNATURE, SIGNATURE_OFFSET, readU16, readU32, writeU16, writeU32 } from './bpb.js';

export const MBR = {
  PartitionTable: 446,
  EntrySize: 16,
  Entries: 4,
  // Offsets inside one entry.
  Status: 0,
  ChsFirst: 1,
  Type: 4,
  ChsLast: 5,
  LbaFirst: 8, // u32
  SectorCount: 12, // u32
} as const;

/** Partition types that hold a FAT file system. */
export const FAT_PARTITION_TYPES: ReadonlyMap<number, string> = new Map([
  [0x01, 'FAT12'],
  [0x04, 'FAT16 <32M'],
  [0x06, 'FAT16'],
  [0x0b, 'FAT32 CHS'],
  [0x0c, 'FAT32 LBA'],
  [0x0e, 'FAT16 LBA'],
]);

export interface MbrPartition {
  /** 0-3: the slot in the table. */
  index: number;
  bootable: boolean;
  type: number;
  start: number;
  sectors: number;
}

export function hasMbrSignature(sector: Uint8Array): boolean {
  return sector.length >= 512 && readU16(sector, SIGNATURE_OFFSET) === SIGNATURE;
}

/** The non-empty entries of an MBR partition table. */
export function parseMbr(sector: Uint8Array): MbrPartition[] {
  const parts: MbrPartition[] = [];
  for (let i = 0; i < MBR.Entries; i++) {
    const o = MBR.PartitionTable + i * MBR.EntrySize;
    const type = sector[o + MBR.Type]!;
    const sectors = readU32(sector, o + MBR.SectorCount);
    if (type === 0 || sectors === 0) continue;
    parts.push({
      index: i,
      bootable: sector[o + MBR.Status] === 0x80,
      type,
      start: readU32(sector, o + MBR.LbaFirst),
      sectors,
    });
  }
  return parts;
}

/** Writes partition entries (LBA only; the CHS fields get the "use LBA" value 0xFEFFFF). */
export function encodeMbr(
  parts: readonly { type: number; start: number; sectors: number; bootable?: boolean }[],
  base?: Uint8Array,
): Uint8Array {
  const s = base ? base.slice(0, 512) : new Uint8Array(512);
  parts.forEach((p, i) => {
    const o = MBR.PartitionTable + i * MBR.EntrySize;
    s[o + MBR.Status] = p.bootable ? 0x80 : 0;
    s.set([0xfe, 0xff, 0xff], o + MBR.ChsFirst);
    s[o + MBR.Type] = p.type;
    s.set([0xfe, 0xff, 0xff], o + MBR.ChsLast);
    writeU32(s, o + MBR.LbaFirst, p.start);
    writeU32(s, o + MBR.SectorCount, p.sectors);
  });
  writeU16(s, SIGNATURE_OFFSET, SIGNATURE);
  return s;
}
