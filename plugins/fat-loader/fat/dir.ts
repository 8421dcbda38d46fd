/**
 * Directory entries (spec section 6) and VFAT long file names (spec section 7): decoding a directory's
 * bytes into entries, the LFN checksum, short-name (8.3) generation with ~N numeric tails, and encoding
 * the entries of a new file.
 */
import { VmmError } from '../../../src/core/errors.js';
import { readU16, readU32, writeU16, writeU32 } from './bpb.js';

export const DIR_ENTRY_SIZE = 32;

/** Short directory entry fields (spec section 6, table "FAT 32 Byte Directory Entry Structure"). */
export const DIR = {
  DIR_Name: 0, // 11 bytes: 8 base + 3 extension, space padded
  DIR_Attr: 11,
  DIR_NTRes: 12, // bit 3: base is lower case, bit 4: extension is lower case (Windows NT)
  DIR_CrtTimeTenth: 13,
  DIR_CrtTime: 14,
  DIR_CrtDate: 16,
  DIR_LstAccDate: 18,
  DIR_FstClusHI: 20,
  DIR_WrtTime: 22,
  DIR_WrtDate: 24,
  DIR_FstClusLO: 26,
  DIR_FileSize: 28,
} as const;

/** Long-name entry fields (spec section 7, "FAT Long Directory Entry Structure"). */
export const LDIR = {
  LDIR_Ord: 0,
  LDIR_Name1: 1, // 5 UTF-16 units
  LDIR_Attr: 11,
  LDIR_Type: 12,
  LDIR_Chksum: 13,
  LDIR_Name2: 14, // 6 UTF-16 units
  LDIR_FstClusLO: 26,
  LDIR_Name3: 28, // 2 UTF-16 units
} as const;
const LFN_CHAR_OFFSETS = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];
export const LFN_CHARS_PER_ENTRY = LFN_CHAR_OFFSETS.length;
export const LAST_LONG_ENTRY = 0x40;
export const MAX_LONG_NAME = 255;

export const ATTR = {
  READ_ONLY: 0x01,
  HIDDEN: 0x02,
  SYSTEM: 0x04,
  VOLUME_ID: 0x08,
  DIRECTORY: 0x10,
  ARCHIVE: 0x20,
  LONG_NAME: 0x0f,
  LONG_NAME_MASK: 0x3f,
} as const;
export const NTRES_LOWER_BASE = 0x08;
export const NTRES_LOWER_EXT = 0x10;

/** The FAT epoch: the default timestamp, so that the same inputs give the same image. */
export const FAT_EPOCH = new Date(Date.UTC(1980, 0, 1));

/** DIR_Name[0] markers. */
export const ENTRY_END = 0x00;
export const ENTRY_FREE = 0xe5;
/** A name really starting with 0xE5 is stored as 0x05 (spec section 6.1). */
export const ENTRY_KANJI_E5 = 0x05;

/** An entry as the volume API shows it. */
export interface FatDirEntry {
  /** The long name when a valid one is present, else the short name. */
  name: string;
  /** The 8.3 name, e.g. `RVM-BIOS.BIN`. */
  shortName: string;
  isDirectory: boolean;
  size: number;
  attributes: number;
  firstCluster: number;
  modified: Date | undefined;
}

/** A decoded entry plus where it lives in its directory. */
export interface RawDirEntry extends FatDirEntry {
  /** The 11 raw name bytes as a latin1 string (for collision checks). */
  raw: string;
  /** Byte offset of the short entry in the directory. */
  offset: number;
  /** Byte offset of the first slot (the first LFN entry, or the short entry). */
  firstSlot: number;
}

export interface DecodedDirectory {
  entries: RawDirEntry[];
  volumeLabel: string | undefined;
  /** Byte offset of the end marker (or the directory length when there is none). */
  end: number;
}

/** The LFN checksum of an 11-byte short name (spec section 7.2, ChkSum). */
export function lfnChecksum(name11: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < 11; i++) sum = (((sum & 1) << 7) + (sum >>> 1) + name11[i]!) & 0xff;
  return sum;
}

const latin1 = (b: Uint8Array): string => String.fromCharCode(...b);

/** `FOO     TXT` -> `FOO.TXT`, honouring the NT lower-case flags. */
export function displayShortName(name11: Uint8Array, ntRes = 0): string {
  const raw = Uint8Array.from(name11.subarray(0, 11));
  if (raw[0] === ENTRY_KANJI_E5) raw[0] = ENTRY_FREE;
  let base = latin1(raw.subarray(0, 8)).replace(/ +$/, '');
  let ext = latin1(raw.subarray(8, 11)).replace(/ +$/, '');
  if (ntRes & NTRES_LOWER_BASE) base = base.toLowerCase();
  if (ntRes & NTRES_LOWER_EXT) ext = ext.toLowerCase();
  return ext ? `${base}.${ext}` : base;
}

/** FAT dates and times (spec section 6.3), read as UTC so results do not depend on the host zone. */
export function decodeDateTime(date: number, time: number): Date | undefined {
  const day = date & 0x1f;
  const month = (date >>> 5) & 0xf;
  if (day === 0 || month === 0 || month > 12) return undefined;
  const year = 1980 + (date >>> 9);
  return new Date(Date.UTC(year, month - 1, day, time >>> 11, (time >>> 5) & 0x3f, (time & 0x1f) * 2));
}

export function encodeDateTime(d: Date): { date: number; time: number } {
  const year = Math.min(Math.max(d.getUTCFullYear(), 1980), 2107);
  return {
    date: ((year - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate(),
    time: (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | (d.getUTCSeconds() >>> 1),
  };
}

/** Characters a long name may not contain (Windows rules), besides control characters. */
const LONG_NAME_INVALID = /["*/:<>?\\|]/;
const isControl = (c: string): boolean => c.charCodeAt(0) < 0x20;
/** Characters that mark a decoded long name as garbage: controls, '/', padding units. */
const isBrokenNameChar = (c: string): boolean => isControl(c) || c === '/' || c === '\uffff';
/** Characters allowed in a long name but not in a short one: replaced by '_' in the basis name. */
const SHORT_NAME_VALID = /^[A-Z0-9!#$%&'()\-@^_`{}~]$/;

/** Why a name cannot be a FAT long name, or undefined when it can. */
export function longNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'the name is empty';
  if (name === '.' || name === '..') return `"${name}" is reserved`;
  if (name.length > MAX_LONG_NAME) return `the name is longer than ${MAX_LONG_NAME} characters`;
  const bad = [...name].find((c) => isControl(c) || LONG_NAME_INVALID.test(c));
  if (bad !== undefined) return `the name contains ${JSON.stringify(bad)}, which FAT does not allow`;
  if (/[. ]$/.test(name)) return 'the name ends with a dot or a space, which FAT does not keep';
  return undefined;
}

function padded(base: string, ext: string): string {
  return base.padEnd(8, ' ') + ext.padEnd(3, ' ');
}

/**
 * Chooses the short name for `longName` (spec section 7.4, basis-name generation and numeric tail).
 * `taken` answers whether an 11-character raw short name is already used in the directory.
 * Returns the raw 11-character name and whether a long name entry is needed.
 */
export function makeShortName(
  longName: string,
  taken: (raw: string) => boolean,
): { raw: string; needsLongName: boolean } {
  const upper = longName.toUpperCase();
  const m = /^([^.]{1,8})(?:\.([^.]{1,3}))?$/.exec(upper);
  const exact =
    m && [...upper.replace('.', '')].every((c) => SHORT_NAME_VALID.test(c))
      ? padded(m[1]!, m[2] ?? '')
      : undefined;
  // Exactly 8.3 and upper case already: no long name needed.
  if (exact !== undefined && longName === upper) return { raw: exact, needsLongName: false };
  // Differs from its short form only by case (e.g. "foo.txt"): keep the basis, add a long name.
  if (exact !== undefined && !taken(exact)) return { raw: exact, needsLongName: true };
  // Spaces are dropped, other characters a short name cannot hold become '_'.
  const convert = (s: string): string =>
    [...s.replace(/ /g, '')].map((c) => (SHORT_NAME_VALID.test(c) ? c : '_')).join('');
  const stripped = upper.replace(/^\.+/, '');
  const dot = stripped.lastIndexOf('.');
  const fullBase = convert((dot >= 0 ? stripped.slice(0, dot) : stripped).replace(/\./g, '')) || '_';
  const fullExt = dot >= 0 ? convert(stripped.slice(dot + 1)) : '';
  const ext = fullExt.slice(0, 3);
  for (let n = 1; n <= 999999; n++) {
    const tail = `~${n}`;
    const raw = padded(fullBase.slice(0, 8 - tail.length) + tail, ext);
    if (!taken(raw)) return { raw, needsLongName: true };
  }
  // Unreachable: a directory holds at most 65536 entries, far fewer than the tails tried.
  throw new VmmError('internal', `no free short name for "${longName}"`);
}

/** Decodes the entries of a directory's bytes (stops at the end marker). */
export function decodeDirectory(data: Uint8Array): DecodedDirectory {
  const entries: RawDirEntry[] = [];
  let volumeLabel: string | undefined;
  // The long-name run being collected: its checksum, the entry number expected next, the parts.
  let lfn: { checksum: number; expect: number; parts: string[]; start: number } | undefined;
  let off = 0;
  for (; off + DIR_ENTRY_SIZE <= data.length; off += DIR_ENTRY_SIZE) {
    const e = data.subarray(off, off + DIR_ENTRY_SIZE);
    const first = e[DIR.DIR_Name]!;
    if (first === ENTRY_END) break;
    if (first === ENTRY_FREE) {
      lfn = undefined;
      continue;
    }
    const attr = e[DIR.DIR_Attr]!;
    if ((attr & ATTR.LONG_NAME_MASK) === ATTR.LONG_NAME) {
      const ord = first & 0x1f;
      if (first & LAST_LONG_ENTRY) {
        lfn =
          ord >= 1 && ord <= 20
            ? { checksum: e[LDIR.LDIR_Chksum]!, expect: ord, parts: [], start: off }
            : undefined;
      } else if (lfn && (ord !== lfn.expect || e[LDIR.LDIR_Chksum] !== lfn.checksum)) {
        lfn = undefined;
      }
      if (lfn && ord === lfn.expect && lfn.expect > 0) {
        lfn.parts[ord - 1] = String.fromCharCode(...LFN_CHAR_OFFSETS.map((o) => readU16(e, o)));
        lfn.expect--;
      } else {
        lfn = undefined;
      }
      continue;
    }
    const name11 = e.subarray(0, 11);
    const ntRes = e[DIR.DIR_NTRes]!;
    const shortName = displayShortName(name11, ntRes);
    let longName: string | undefined;
    if (lfn && lfn.expect === 0 && lfn.checksum === lfnChecksum(name11)) {
      const joined = lfn.parts.join('');
      const nul = joined.indexOf('\0');
      const candidate = nul >= 0 ? joined.slice(0, nul) : joined;
      // A long name that could never have been written is treated as broken.
      if (candidate.length > 0 && ![...candidate].some(isBrokenNameChar)) longName = candidate;
    }
    const firstSlot = longName !== undefined && lfn ? lfn.start : off;
    lfn = undefined;
    if (attr & ATTR.VOLUME_ID && !(attr & ATTR.DIRECTORY)) {
      volumeLabel ??= latin1(name11).replace(/ +$/, '');
      continue;
    }
    entries.push({
      name: longName ?? shortName,
      shortName,
      isDirectory: (attr & ATTR.DIRECTORY) !== 0,
      size: readU32(e, DIR.DIR_FileSize),
      attributes: attr,
      firstCluster: (readU16(e, DIR.DIR_FstClusHI) << 16) | readU16(e, DIR.DIR_FstClusLO),
      modified: decodeDateTime(readU16(e, DIR.DIR_WrtDate), readU16(e, DIR.DIR_WrtTime)),
      raw: latin1(name11),
      offset: off,
      firstSlot,
    });
  }
  return { entries, volumeLabel, end: off };
}

/** Encodes one short directory entry. */
export function encodeShortEntry(
  raw: string,
  attr: number,
  firstCluster: number,
  size: number,
  when: Date,
): Uint8Array {
  const e = new Uint8Array(DIR_ENTRY_SIZE);
  for (let i = 0; i < 11; i++) e[i] = raw.charCodeAt(i) & 0xff;
  if (e[0] === ENTRY_FREE) e[0] = ENTRY_KANJI_E5;
  e[DIR.DIR_Attr] = attr;
  const { date, time } = encodeDateTime(when);
  writeU16(e, DIR.DIR_CrtTime, time);
  writeU16(e, DIR.DIR_CrtDate, date);
  writeU16(e, DIR.DIR_LstAccDate, date);
  writeU16(e, DIR.DIR_WrtTime, time);
  writeU16(e, DIR.DIR_WrtDate, date);
  writeU16(e, DIR.DIR_FstClusHI, firstCluster >>> 16);
  writeU16(e, DIR.DIR_FstClusLO, firstCluster & 0xffff);
  writeU32(e, DIR.DIR_FileSize, size);
  return e;
}

/** Updates the first cluster and size of an encoded short entry in place. */
export function setEntryClusterAndSize(e: Uint8Array, firstCluster: number, size: number): void {
  writeU16(e, DIR.DIR_FstClusHI, firstCluster >>> 16);
  writeU16(e, DIR.DIR_FstClusLO, firstCluster & 0xffff);
  writeU32(e, DIR.DIR_FileSize, size);
}

/** The slots of a new entry: the long-name entries (last part first) followed by the short entry. */
export function encodeEntrySlots(longName: string | undefined, short: Uint8Array): Uint8Array {
  if (longName === undefined) return short;
  const count = Math.ceil(longName.length / LFN_CHARS_PER_ENTRY);
  const out = new Uint8Array((count + 1) * DIR_ENTRY_SIZE);
  const checksum = lfnChecksum(short.subarray(0, 11));
  for (let i = 0; i < count; i++) {
    const ord = count - i; // on disk the highest-numbered part comes first
    const e = out.subarray(i * DIR_ENTRY_SIZE, (i + 1) * DIR_ENTRY_SIZE);
    e[LDIR.LDIR_Ord] = ord | (i === 0 ? LAST_LONG_ENTRY : 0);
    e[LDIR.LDIR_Attr] = ATTR.LONG_NAME;
    e[LDIR.LDIR_Chksum] = checksum;
    LFN_CHAR_OFFSETS.forEach((o, k) => {
      const idx = (ord - 1) * LFN_CHARS_PER_ENTRY + k;
      // Spec section 7.1: the name is NUL terminated if it does not fill the last entry, then 0xFFFF padded.
      const unit = idx < longName.length ? longName.charCodeAt(idx) : idx === longName.length ? 0 : 0xffff;
      writeU16(e, o, unit);
    });
  }
  out.set(short, count * DIR_ENTRY_SIZE);
  return out;
}
