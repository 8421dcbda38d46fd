/**
 * The Multiboot information structure (Multiboot Specification 0.6.96, section 3.3) and the
 * memory map a PC of a given RAM size reports, written into guest memory as a loader does.
 */
export const MbInfoFlag = {
  Memory: 1 << 0,
  CmdLine: 1 << 2,
  Modules: 1 << 3,
  MemoryMap: 1 << 6,
  BootLoaderName: 1 << 9,
} as const;

/** Offsets in the information structure (3.3). */
export const MbInfo = {
  flags: 0,
  memLower: 4,
  memUpper: 8,
  cmdline: 16,
  modsCount: 20,
  modsAddr: 24,
  mmapLength: 44,
  mmapAddr: 48,
  bootLoaderName: 64,
  /** Through the framebuffer fields. */
  size: 116,
} as const;

export const MemoryType = { Available: 1, Reserved: 2 } as const;

export interface MemoryRange {
  base: number;
  length: number;
  type: number;
}

/** The PC memory map: conventional memory, the EBDA/ROM holes, RAM above 1 MiB (and above 4 GiB). */
export function pcMemoryMap(lowTop: number, highSize: number): MemoryRange[] {
  const map: MemoryRange[] = [
    { base: 0, length: 0x9fc00, type: MemoryType.Available },
    { base: 0x9fc00, length: 0x400, type: MemoryType.Reserved },
    { base: 0xf0000, length: 0x10000, type: MemoryType.Reserved },
  ];
  if (lowTop > 0x100000) map.push({ base: 0x100000, length: lowTop - 0x100000, type: MemoryType.Available });
  if (highSize > 0) map.push({ base: 2 ** 32, length: highSize, type: MemoryType.Available });
  return map;
}

export interface InfoInput {
  /** Where the structure and its strings and tables go (4-byte aligned). */
  at: number;
  lowTop: number;
  highSize: number;
  cmdline: string;
  modules: { start: number; end: number; string: string }[];
  loaderName: string;
}

/** Build the information block: the structure, then the module list, the memory map and the strings. */
export function buildInfo(i: InfoInput): { bytes: Uint8Array; size: number } {
  const map = pcMemoryMap(i.lowTop, i.highSize);
  const enc = new TextEncoder();
  const strings: Uint8Array[] = [];
  let cursor = MbInfo.size;
  const modsAt = cursor;
  cursor += 16 * i.modules.length;
  const mmapAt = cursor;
  cursor += 24 * map.length;
  const place = (s: string): number => {
    const b = enc.encode(s + '\0');
    const at = cursor;
    strings.push(b);
    cursor += b.length;
    return at;
  };
  const cmdAt = place(i.cmdline);
  const nameAt = place(i.loaderName);
  const modStrAt = i.modules.map((m) => place(m.string));
  const bytes = new Uint8Array((cursor + 3) & ~3);
  const dv = new DataView(bytes.buffer);
  const w32 = (o: number, v: number) => dv.setUint32(o, v >>> 0, true);
  w32(
    MbInfo.flags,
    MbInfoFlag.Memory |
      MbInfoFlag.CmdLine |
      MbInfoFlag.MemoryMap |
      MbInfoFlag.BootLoaderName |
      (i.modules.length > 0 ? MbInfoFlag.Modules : 0),
  );
  // mem_lower: KiB from 0 (up to 640 KiB); mem_upper: KiB of contiguous RAM from 1 MiB (3.3).
  w32(MbInfo.memLower, 0x9fc00 / 1024);
  w32(MbInfo.memUpper, Math.max(0, i.lowTop - 0x100000) / 1024);
  w32(MbInfo.cmdline, i.at + cmdAt);
  w32(MbInfo.modsCount, i.modules.length);
  w32(MbInfo.modsAddr, i.modules.length > 0 ? i.at + modsAt : 0);
  // mmap entries: size (not counting itself) = 20, base (u64), length (u64), type (u32).
  w32(MbInfo.mmapLength, 24 * map.length);
  w32(MbInfo.mmapAddr, i.at + mmapAt);
  w32(MbInfo.bootLoaderName, i.at + nameAt);
  i.modules.forEach((m, k) => {
    const o = modsAt + 16 * k;
    w32(o, m.start);
    w32(o + 4, m.end);
    w32(o + 8, i.at + modStrAt[k]!);
  });
  map.forEach((r, k) => {
    const o = mmapAt + 24 * k;
    w32(o, 20);
    dv.setBigUint64(o + 4, BigInt(r.base), true);
    dv.setBigUint64(o + 12, BigInt(r.length), true);
    w32(o + 20, r.type);
  });
  let o = MbInfo.size + 16 * i.modules.length + 24 * map.length;
  for (const s of strings) {
    bytes.set(s, o);
    o += s.length;
  }
  return { bytes, size: bytes.length };
}
