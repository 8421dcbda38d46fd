/**
 * Multiboot 1 kernel images (Multiboot Specification 0.6.96, section 3.1): finding the header,
 * and where each part of the image goes — from the a.out kludge fields when header flag 16 is set,
 * else from the ELF32 or ELF64 program headers. Every inconsistency is a clear error naming the
 * file; nothing here trusts the image.
 */
import { VmmError, displayPath } from '../../src/core/errors.js';
import { hex } from '../../src/core/addresses.js';

export const MULTIBOOT_HEADER_MAGIC = 0x1badb002;
/** What the loader leaves in EAX (3.2). */
export const MULTIBOOT_BOOTLOADER_MAGIC = 0x2badb002;
/** The header must lie within the first 8192 bytes, 32-bit aligned (3.1.1). */
const HEADER_SEARCH = 8192;

/** Header flags (3.1.2). */
export const MbHeaderFlag = {
  /** Modules must be 4 KiB aligned. */
  PageAlign: 1 << 0,
  /** mem_* (and the memory map) must be provided. */
  MemoryInfo: 1 << 1,
  /** Video mode table fields are valid (we run without a framebuffer and ignore it). */
  VideoMode: 1 << 2,
  /** The address fields at offsets 12-28 are valid: the "a.out kludge". */
  AoutKludge: 1 << 16,
} as const;

/** Flags bits 0-15 we must honour or refuse; bits 16-31 are optional features. */
const SUPPORTED_REQUIRED = MbHeaderFlag.PageAlign | MbHeaderFlag.MemoryInfo | MbHeaderFlag.VideoMode;

export interface Segment {
  /** Physical load address. */
  addr: number;
  /** Bytes copied from the file. */
  data: Uint8Array;
  /** Total size in memory (the rest is zeroed: .bss). */
  memSize: number;
}

export interface KernelImage {
  headerOffset: number;
  flags: number;
  entry: number;
  segments: Segment[];
  /** First byte above everything loaded (modules go after it). */
  end: number;
  format: 'a.out kludge' | 'ELF32' | 'ELF64';
}

export function parseKernel(file: string, bytes: Uint8Array): KernelImage {
  const name = displayPath(file);
  const fail = (msg: string) => new VmmError('image', `${name}: ${msg}`, { location: { file } });
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u32 = (o: number) => dv.getUint32(o, true);

  let off = -1;
  for (let o = 0; o + 12 <= Math.min(bytes.length, HEADER_SEARCH); o += 4) {
    if (u32(o) === MULTIBOOT_HEADER_MAGIC && (u32(o) + u32(o + 4) + u32(o + 8)) >>> 0 === 0) {
      off = o;
      break;
    }
  }
  if (off < 0) {
    const magicOnly = findMagic(dv, bytes.length);
    throw fail(
      magicOnly >= 0
        ? `multiboot header at offset ${hex(magicOnly)} has a bad checksum`
        : 'no multiboot header (magic 0x1badb002) in the first 8 KiB: not a multiboot1 kernel',
    );
  }
  const flags = u32(off + 4);
  const unsupported = flags & 0xffff & ~SUPPORTED_REQUIRED;
  if (unsupported)
    throw fail(`multiboot header requires features this loader lacks (flags ${hex(unsupported)})`);

  if (flags & MbHeaderFlag.AoutKludge) {
    if (off + 32 > bytes.length) throw fail('multiboot header is cut short (a.out kludge fields missing)');
    const headerAddr = u32(off + 12);
    const loadAddr = u32(off + 16);
    const loadEnd = u32(off + 20);
    const bssEnd = u32(off + 24);
    const entry = u32(off + 28);
    if (loadAddr > headerAddr)
      throw fail(`load_addr ${hex(loadAddr)} is above header_addr ${hex(headerAddr)}`);
    const fileStart = off - (headerAddr - loadAddr);
    if (fileStart < 0)
      throw fail(`header_addr - load_addr (${hex(headerAddr - loadAddr)}) points before the file`);
    const loadSize = loadEnd === 0 ? bytes.length - fileStart : loadEnd - loadAddr;
    if (loadEnd !== 0 && loadEnd < loadAddr) throw fail(`load_end_addr ${hex(loadEnd)} is below load_addr`);
    if (fileStart + loadSize > bytes.length) {
      throw fail(`load_end_addr ${hex(loadEnd)} is beyond the end of the file (${bytes.length} bytes)`);
    }
    const end = Math.max(loadAddr + loadSize, bssEnd);
    if (bssEnd !== 0 && bssEnd < loadAddr + loadSize)
      throw fail(`bss_end_addr ${hex(bssEnd)} is below load_end_addr`);
    if (entry < loadAddr || entry >= end) throw fail(`entry ${hex(entry)} is outside the loaded image`);
    return {
      headerOffset: off,
      flags,
      entry,
      segments: [
        { addr: loadAddr, data: bytes.subarray(fileStart, fileStart + loadSize), memSize: end - loadAddr },
      ],
      end,
      format: 'a.out kludge',
    };
  }
  return parseElf(bytes, dv, off, flags, fail);
}

function findMagic(dv: DataView, len: number): number {
  for (let o = 0; o + 4 <= Math.min(len, HEADER_SEARCH); o += 4)
    if (dv.getUint32(o, true) === MULTIBOOT_HEADER_MAGIC) return o;
  return -1;
}

const PT_LOAD = 1;

function parseElf(
  bytes: Uint8Array,
  dv: DataView,
  headerOffset: number,
  flags: number,
  fail: (m: string) => VmmError,
): KernelImage {
  if (bytes.length < 52 || dv.getUint32(0, false) !== 0x7f454c46) {
    throw fail(
      'not an ELF file, and the multiboot header has no a.out kludge (flag 16) to say where to load it',
    );
  }
  const cls = bytes[4];
  if (bytes[5] !== 1) throw fail('ELF file is not little-endian');
  if (dv.getUint16(18, true) !== (cls === 2 ? 62 : 3)) throw fail('ELF file is not for x86');
  const is64 = cls === 2;
  if (!is64 && cls !== 1) throw fail(`unknown ELF class ${cls}`);
  // ELF64 addresses of higher-half kernels exceed 2^53: read them as BigInt (not a hot path).
  const big = (o: number): bigint => (is64 ? dv.getBigUint64(o, true) : BigInt(dv.getUint32(o, true)));
  const num = (o: number): number => {
    const v = big(o);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw fail(`ELF field at offset ${hex(o)} is out of range`);
    return Number(v);
  };
  const entryV = big(24);
  const phoff = num(is64 ? 32 : 28);
  const phentsize = dv.getUint16(is64 ? 54 : 42, true);
  const phnum = dv.getUint16(is64 ? 56 : 44, true);
  if (phnum === 0) throw fail('ELF file has no program headers');
  if (phentsize < (is64 ? 56 : 32) || phoff + phnum * phentsize > bytes.length) {
    throw fail('ELF program headers lie beyond the end of the file');
  }
  const segments: Segment[] = [];
  let entry: number | undefined;
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    if (dv.getUint32(p, true) !== PT_LOAD) continue;
    const off = num(p + (is64 ? 8 : 4));
    const vaddr = big(p + (is64 ? 16 : 8));
    const paddr = num(p + (is64 ? 24 : 12));
    const filesz = num(p + (is64 ? 32 : 16));
    const memsz = num(p + (is64 ? 40 : 20));
    if (memsz === 0) continue;
    if (filesz > memsz)
      throw fail(`ELF segment ${i}: file size ${hex(filesz)} exceeds memory size ${hex(memsz)}`);
    if (off + filesz > bytes.length) throw fail(`ELF segment ${i} lies beyond the end of the file`);
    if (paddr + memsz > 2 ** 32) throw fail(`ELF segment ${i} at ${hex(paddr)} does not fit below 4 GiB`);
    segments.push({ addr: paddr, data: bytes.subarray(off, off + filesz), memSize: memsz });
    // The entry is a virtual address; it runs at the physical address of the segment holding it.
    if (entryV >= vaddr && entryV < vaddr + BigInt(memsz)) entry = paddr + Number(entryV - vaddr);
  }
  if (segments.length === 0) throw fail('ELF file has no loadable segments');
  if (entry === undefined) {
    const e = Number(entryV);
    if (entryV < 2n ** 32n && segments.some((s) => e >= s.addr && e < s.addr + s.memSize)) entry = e;
    else throw fail(`ELF entry point ${hex(entryV)} is in no loadable segment`);
  }
  const end = Math.max(...segments.map((s) => s.addr + s.memSize));
  return { headerOffset, flags, entry, segments, end, format: is64 ? 'ELF64' : 'ELF32' };
}
