import { describe, expect, it } from 'vitest';
import {
  ATTR,
  DIR_ENTRY_SIZE,
  decodeDirectory,
  encodeEntrySlots,
  encodeShortEntry,
  lfnChecksum,
  longNameProblem,
  makeShortName,
} from '../../../../plugins/fat-loader/fat/dir.js';
import { FAT_EPOCH } from '../../../../plugins/fat-loader/fat/dir.js';

const noneTaken = (): boolean => false;
const raw = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

/** Builds a directory image from slot arrays, followed by an end marker. */
function dirOf(...slots: Uint8Array[]): Uint8Array {
  const total = slots.reduce((n, s) => n + s.length, 0);
  const out = new Uint8Array(total + DIR_ENTRY_SIZE);
  let o = 0;
  for (const s of slots) {
    out.set(s, o);
    o += s.length;
  }
  return out;
}

describe('short names', () => {
  it('keeps an upper-case 8.3 name without a long name', () => {
    expect(makeShortName('RVM-BIOS.BIN', noneTaken)).toEqual({ raw: 'RVM-BIOSBIN', needsLongName: false });
    expect(makeShortName('README', noneTaken)).toEqual({ raw: 'README     ', needsLongName: false });
  });

  it('adds a long name when only the case differs, keeping the basis', () => {
    expect(makeShortName('nimbos.bin', noneTaken)).toEqual({ raw: 'NIMBOS  BIN', needsLongName: true });
  });

  it('truncates, drops spaces and extra dots, replaces invalid characters, adds ~N', () => {
    expect(makeShortName('A Long File Name.data', noneTaken).raw).toBe('ALONGF~1DAT');
    expect(makeShortName('archive.tar.gz', noneTaken).raw).toBe('ARCHIV~1GZ ');
    expect(makeShortName('.bashrc', noneTaken).raw).toBe('BASHRC~1   ');
    expect(makeShortName('a+b=c.txt', noneTaken).raw).toBe('A_B_C~1 TXT');
  });

  it('counts the numeric tail up past the taken names, shortening the basis for long tails', () => {
    const taken = new Set(['ALONGF~1DAT', 'ALONGF~2DAT']);
    expect(makeShortName('A Long File Name.data', (r) => taken.has(r)).raw).toBe('ALONGF~3DAT');
    const many = new Set(Array.from({ length: 9 }, (_, i) => `ALONGF~${i + 1}DAT`));
    expect(makeShortName('A Long File Name.data', (r) => many.has(r)).raw).toBe('ALONG~10DAT');
    expect(makeShortName('foo.txt', (r) => r === 'FOO     TXT').raw).toBe('FOO~1   TXT');
  });

  it('refuses names FAT cannot hold', () => {
    expect(longNameProblem('ok name.txt')).toBeUndefined();
    expect(longNameProblem('a/b')).toMatch(/"\/"/);
    expect(longNameProblem('what?')).toMatch(/"\?"/);
    expect(longNameProblem('tab\there')).toMatch(/\\t/);
    expect(longNameProblem('trailing.')).toMatch(/ends with/);
    expect(longNameProblem('x'.repeat(256))).toMatch(/longer than 255/);
    expect(longNameProblem('..')).toMatch(/reserved/);
  });
});

describe('long names', () => {
  it('computes the checksum with the rotate-right-and-add of the spec', () => {
    // Worked by hand: sum = ((sum & 1) << 7) + (sum >> 1) + byte, over "A          " (A then 10 spaces).
    let expected = 0;
    for (const b of raw('A          ')) expected = (((expected & 1) << 7) + (expected >> 1) + b) & 0xff;
    expect(lfnChecksum(raw('A          '))).toBe(expected);
    // Two names differing only by order of bytes must not collide (the rotate makes it order sensitive).
    expect(lfnChecksum(raw('AB         '))).not.toBe(lfnChecksum(raw('BA         ')));
  });

  it('round-trips a long name through its slots, in reverse order with the LAST flag first', () => {
    const name = 'A fairly long name, with 30+ chars.text';
    const short = encodeShortEntry('AFAIRL~1TEX', ATTR.ARCHIVE, 5, 1234, FAT_EPOCH);
    const slots = encodeEntrySlots(name, short);
    const n = Math.ceil(name.length / 13);
    expect(slots.length).toBe((n + 1) * DIR_ENTRY_SIZE);
    expect(slots[0]).toBe(0x40 | n);
    expect(slots[(n - 1) * DIR_ENTRY_SIZE]).toBe(1);
    const d = decodeDirectory(dirOf(slots));
    expect(d.entries).toHaveLength(1);
    expect(d.entries[0]).toMatchObject({ name, shortName: 'AFAIRL~1.TEX', size: 1234, firstCluster: 5 });
    expect(d.entries[0]!.firstSlot).toBe(0);
    expect(d.entries[0]!.offset).toBe(n * DIR_ENTRY_SIZE);
  });

  it('handles a name that exactly fills its slots (no NUL terminator)', () => {
    const name = 'abcdefghijklm'; // 13 characters: one full slot
    const d = decodeDirectory(
      dirOf(encodeEntrySlots(name, encodeShortEntry('ABCDEF~1   ', 0, 0, 0, FAT_EPOCH))),
    );
    expect(d.entries[0]!.name).toBe(name);
  });

  it('falls back to the short name when the checksum does not match', () => {
    const slots = encodeEntrySlots('long name.txt', encodeShortEntry('LONGNA~1TXT', 0, 0, 0, FAT_EPOCH));
    slots[13] ^= 0xff; // LDIR_Chksum of the only long entry
    const d = decodeDirectory(dirOf(slots));
    expect(d.entries[0]!.name).toBe('LONGNA~1.TXT');
  });

  it('falls back when a part is missing or out of order, and never glues parts of two names', () => {
    const name = 'x'.repeat(30); // 3 slots
    const a = encodeEntrySlots(name, encodeShortEntry('XXXXXX~1   ', 0, 0, 0, FAT_EPOCH));
    // Drop the middle long entry.
    const missing = new Uint8Array([...a.subarray(0, 32), ...a.subarray(64)]);
    expect(decodeDirectory(dirOf(missing)).entries[0]!.name).toBe('XXXXXX~1');
    // An orphan long entry before a plain short entry.
    const orphan = dirOf(a.subarray(0, 32), encodeShortEntry('PLAIN   TXT', 0, 0, 0, FAT_EPOCH));
    expect(decodeDirectory(orphan).entries.map((e) => e.name)).toEqual(['PLAIN.TXT']);
    // A deleted entry in the middle of a run breaks it.
    const deleted = Uint8Array.from(a);
    deleted[32] = 0xe5;
    expect(decodeDirectory(dirOf(deleted)).entries[0]!.name).toBe('XXXXXX~1');
  });

  it('skips free slots and the volume label, stops at the end marker, honours NT case bits', () => {
    const label = encodeShortEntry('MY DISK    ', ATTR.VOLUME_ID, 0, 0, FAT_EPOCH);
    const freed = encodeShortEntry('GONE    TXT', 0, 0, 0, FAT_EPOCH);
    freed[0] = 0xe5;
    const lower = encodeShortEntry('README  TXT', 0, 0, 0, FAT_EPOCH);
    lower[12] = 0x08 | 0x10; // DIR_NTRes: lower-case base and extension
    const after = encodeShortEntry('HIDDEN  TXT', 0, 0, 0, FAT_EPOCH);
    const data = dirOf(label, freed, lower, new Uint8Array(32), after);
    const d = decodeDirectory(data);
    expect(d.volumeLabel).toBe('MY DISK');
    expect(d.entries.map((e) => e.name)).toEqual(['readme.txt']);
    expect(d.end).toBe(3 * 32);
  });

  it('maps a stored 0x05 first byte back to 0xE5', () => {
    const e = encodeShortEntry('\u00e5BC     TXT', 0, 0, 0, FAT_EPOCH);
    expect(e[0]).toBe(0x05);
    expect(decodeDirectory(dirOf(e)).entries[0]!.shortName).toBe('\u00e5BC.TXT');
  });
});
