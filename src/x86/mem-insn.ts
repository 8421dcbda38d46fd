/**
 * A decoder for the instructions a guest uses to touch device registers: the data moves and simple
 * ALU forms with one memory operand (SDM Vol. 2 chapter 2 "Instruction Format", 2.1.5 Table 2-1/2-2
 * ModR/M and SIB addressing, 2.2.1 REX prefixes, 2.2.1.6 RIP-relative addressing, 3.3.7 operand and
 * address size attributes). A VMM emulating MMIO decodes the faulting instruction with it, performs
 * the access on the device and updates the registers as the instruction would.
 *
 * `decodeMemInsn` fills a caller-owned MemInsn (no allocation on success) and returns an error
 * message for anything it does not know; the caller stops cleanly with it.
 */
import { Seg } from './regs.js';

/** What the instruction does with its memory operand. */
export const MemOp = {
  /** MOV reg, [mem] (8A, 8B, A0, A1). */
  Load: 0,
  /** MOV [mem], reg (88, 89, A2, A3). */
  Store: 1,
  /** MOV [mem], imm (C6 /0, C7 /0). */
  StoreImm: 2,
  /** MOVZX reg, [mem] (0F B6, 0F B7). */
  LoadZx: 3,
  /** MOVSX reg, [mem] (0F BE, 0F BF). */
  LoadSx: 4,
  /** AND/OR/XOR [mem], reg|imm (read-modify-write, flags; 20/21, 08/09, 30/31, 80/81/83 /4 /1 /6). */
  AluStore: 5,
  /** AND/OR/XOR reg, [mem] (22/23, 0A/0B, 32/33): the register changes, flags. */
  AluLoad: 6,
  /** CMP [mem], reg|imm (38/39, 80/81/83 /7): flags only, memory - operand. */
  CmpMem: 7,
  /** CMP reg, [mem] (3A/3B): flags only, register - memory. */
  CmpReg: 8,
  /** TEST [mem], reg|imm (84/85, F6/F7 /0): flags only. */
  Test: 9,
  /** XCHG [mem], reg (86/87; locked whether or not it has LOCK). */
  Xchg: 10,
} as const;
export type MemOp = (typeof MemOp)[keyof typeof MemOp];
export const MEM_OP_NAMES = [
  'load',
  'store',
  'store-imm',
  'movzx',
  'movsx',
  'alu-store',
  'alu-load',
  'cmp-mem',
  'cmp-reg',
  'test',
  'xchg',
] as const;

/** The logic operation of the AluStore/AluLoad forms. */
export const AluKind = { And: 0, Or: 1, Xor: 2 } as const;
export type AluKind = (typeof AluKind)[keyof typeof AluKind];

/** Base register value meaning "RIP-relative" (disp is from the end of the instruction). */
export const BASE_RIP = 16;
/** No base / no index register. */
export const NO_REG = -1;

/** Architectural maximum instruction length (SDM Vol. 2 2.1.1). */
export const MAX_INSN_LENGTH = 15;

/** The code segment's default size: 16- or 32-bit (CS.D) in legacy/compatibility mode, or 64-bit mode (CS.L). */
export type CodeSize = 16 | 32 | 64;

export interface MemInsn {
  /** Bytes consumed, prefixes included. */
  length: number;
  op: MemOp;
  /** For AluStore/AluLoad. */
  alu: AluKind;
  /** Size of the memory access in bytes. */
  size: 1 | 2 | 4 | 8;
  /** Size of the register operand (differs from `size` for MOVZX/MOVSX). */
  regSize: 1 | 2 | 4 | 8;
  /** The register operand (0-15), NO_REG for immediate forms. */
  reg: number;
  /** `reg` is AH, CH, DH or BH (reg - 4, bits 15:8): a byte register 4-7 without REX. */
  regHigh: boolean;
  /** The immediate, sign-extended to `size` as the low and high dwords (hasImm). */
  hasImm: boolean;
  immLo: number;
  immHi: number;
  /** Effective segment (Seg.*), and whether a prefix chose it. */
  seg: number;
  segOverride: boolean;
  /** Address size in bytes. */
  addrSize: 2 | 4 | 8;
  /** Base register (0-15), BASE_RIP, or NO_REG. */
  base: number;
  /** Index register (0-15) or NO_REG. */
  index: number;
  scale: 1 | 2 | 4 | 8;
  /** Displacement, sign-extended 32-bit (moffs: its low dword, unsigned). */
  disp: number;
  /** moffs64 only: the high dword of the offset. */
  dispHi: number;
  /** LOCK prefix seen. */
  lock: boolean;
  /** A0-A3: the whole (unsigned) offset is in disp/dispHi. */
  moffs: boolean;
}

export function newMemInsn(): MemInsn {
  return {
    length: 0,
    op: MemOp.Load,
    alu: AluKind.And,
    size: 4,
    regSize: 4,
    reg: NO_REG,
    regHigh: false,
    hasImm: false,
    immLo: 0,
    immHi: 0,
    seg: Seg.DS,
    segOverride: false,
    addrSize: 4,
    base: NO_REG,
    index: NO_REG,
    scale: 1,
    disp: 0,
    dispHi: 0,
    lock: false,
    moffs: false,
  };
}

/** 16-bit ModRM r/m: base and index registers of rm = 0..7 (SDM Vol. 2 Table 2-1). */
const RM16_BASE = [3, 3, 5, 5, 6, 7, 5, 3] as const;
const RM16_INDEX = [6, 7, 6, 7, NO_REG, NO_REG, NO_REG, NO_REG] as const;

const hexBytes = (b: Uint8Array, n: number): string =>
  Array.from(b.subarray(0, n), (x) => x.toString(16).padStart(2, '0')).join(' ');

/**
 * Decode the instruction in bytes[0..n) for a code segment of `code` size. Returns undefined and
 * fills `out`, or an error message naming the bytes.
 */
export function decodeMemInsn(
  bytes: Uint8Array,
  n: number,
  code: CodeSize,
  out: MemInsn,
): string | undefined {
  let p = 0;
  let opSize16 = false;
  let addrOverride = false;
  let rex = 0;
  let seg = -1;
  let rep = false;
  out.lock = false;
  out.moffs = false;
  const avail = Math.min(n, MAX_INSN_LENGTH);

  // Legacy prefixes, in any order; a REX prefix counts only directly before the opcode (2.2.1).
  for (;;) {
    if (p >= avail) return truncated(bytes, avail);
    const b = bytes[p]!;
    if (b === 0x66) opSize16 = true;
    else if (b === 0x67) addrOverride = true;
    else if (b === 0x26) seg = Seg.ES;
    else if (b === 0x2e) seg = Seg.CS;
    else if (b === 0x36) seg = Seg.SS;
    else if (b === 0x3e) seg = Seg.DS;
    else if (b === 0x64) seg = Seg.FS;
    else if (b === 0x65) seg = Seg.GS;
    else if (b === 0xf0) out.lock = true;
    else if (b === 0xf2 || b === 0xf3) rep = true;
    else if (code === 64 && (b & 0xf0) === 0x40) {
      rex = b;
      p++;
      if (p >= avail) return truncated(bytes, avail);
      const next = bytes[p]!;
      // A legacy prefix after REX makes the REX ignored (SDM 2.2.1): keep scanning without it.
      if (isLegacyPrefix(next)) {
        rex = 0;
        continue;
      }
      break;
    } else break;
    p++;
  }
  const rexW = (rex & 8) !== 0;
  const rexR = (rex & 4) << 1; // 8 or 0
  const rexX = (rex & 2) << 2;
  const rexB = (rex & 1) << 3;

  // Operand and address sizes (SDM Vol. 1 3.6, Vol. 2 2.2.1.2).
  const wide: 2 | 4 | 8 = rexW ? 8 : code === 16 ? (opSize16 ? 4 : 2) : opSize16 ? 2 : 4;
  out.addrSize = code === 64 ? (addrOverride ? 4 : 8) : (code === 16) !== addrOverride ? 2 : 4;

  let opcode = bytes[p++]!;
  let twoByte = false;
  if (opcode === 0x0f) {
    if (p >= avail) return truncated(bytes, avail);
    twoByte = true;
    opcode = bytes[p++]!;
  }
  if (rep) return unsupported(bytes, Math.min(avail, p + 6));

  out.hasImm = false;
  out.immLo = 0;
  out.immHi = 0;
  out.reg = NO_REG;
  out.regHigh = false;
  out.alu = AluKind.And;
  let imm = 0; // immediate bytes: 1, 2 or 4 (sign-extended to the operand size)
  let byteOp = false;
  let memSize: 1 | 2 | 4 | 8 = wide;
  let group = false; // ModRM.reg is an opcode extension

  if (twoByte) {
    if (opcode !== 0xb6 && opcode !== 0xb7 && opcode !== 0xbe && opcode !== 0xbf)
      return unsupported(bytes, Math.min(avail, p + 6));
    out.op = opcode & 8 ? MemOp.LoadSx : MemOp.LoadZx;
    memSize = opcode & 1 ? 2 : 1;
  } else {
    switch (opcode) {
      case 0x88:
      case 0x89:
        out.op = MemOp.Store;
        byteOp = opcode === 0x88;
        break;
      case 0x8a:
      case 0x8b:
        out.op = MemOp.Load;
        byteOp = opcode === 0x8a;
        break;
      case 0xc6:
      case 0xc7:
        out.op = MemOp.StoreImm;
        byteOp = opcode === 0xc6;
        group = true;
        imm = byteOp ? 1 : wide === 2 ? 2 : 4;
        break;
      case 0xa0:
      case 0xa1:
      case 0xa2:
      case 0xa3:
        return decodeMoffs(bytes, p, avail, opcode, wide, seg, out) ?? undefined;
      case 0x20:
      case 0x21:
      case 0x08:
      case 0x09:
      case 0x30:
      case 0x31:
        out.op = MemOp.AluStore;
        out.alu = aluOfOpcode(opcode);
        byteOp = (opcode & 1) === 0;
        break;
      case 0x22:
      case 0x23:
      case 0x0a:
      case 0x0b:
      case 0x32:
      case 0x33:
        out.op = MemOp.AluLoad;
        out.alu = aluOfOpcode(opcode);
        byteOp = (opcode & 1) === 0;
        break;
      case 0x38:
      case 0x39:
        out.op = MemOp.CmpMem;
        byteOp = opcode === 0x38;
        break;
      case 0x3a:
      case 0x3b:
        out.op = MemOp.CmpReg;
        byteOp = opcode === 0x3a;
        break;
      case 0x84:
      case 0x85:
        out.op = MemOp.Test;
        byteOp = opcode === 0x84;
        break;
      case 0x86:
      case 0x87:
        out.op = MemOp.Xchg;
        byteOp = opcode === 0x86;
        break;
      case 0x80:
      case 0x81:
      case 0x83:
        group = true;
        byteOp = opcode === 0x80;
        imm = opcode === 0x81 ? (wide === 2 ? 2 : 4) : 1;
        break;
      case 0xf6:
      case 0xf7:
        group = true;
        byteOp = opcode === 0xf6;
        imm = byteOp ? 1 : wide === 2 ? 2 : 4;
        break;
      default:
        return unsupported(bytes, Math.min(avail, p + 6));
    }
    if (byteOp) memSize = 1;
  }
  out.size = memSize;
  out.regSize = twoByte ? wide : memSize;

  // ModRM.
  if (p >= avail) return truncated(bytes, avail);
  const modrm = bytes[p++]!;
  const mod = modrm >>> 6;
  const regField = (modrm >>> 3) & 7;
  const rm = modrm & 7;
  if (mod === 3) {
    return `instruction ${hexBytes(bytes, Math.min(avail, p))} has no memory operand (ModRM.mod = 3)`;
  }
  if (group) {
    if (opcode === 0xc6 || opcode === 0xc7) {
      if (regField !== 0) return unsupported(bytes, Math.min(avail, p + 6));
    } else if (opcode === 0xf6 || opcode === 0xf7) {
      if (regField !== 0) return unsupported(bytes, Math.min(avail, p + 6));
      out.op = MemOp.Test;
    } else {
      // 80/81/83: /1 OR, /4 AND, /6 XOR, /7 CMP (ADD, ADC, SBB, SUB are not emulated).
      if (regField === 1 || regField === 4 || regField === 6) {
        out.op = MemOp.AluStore;
        out.alu = regField === 1 ? AluKind.Or : regField === 4 ? AluKind.And : AluKind.Xor;
      } else if (regField === 7) out.op = MemOp.CmpMem;
      else return unsupported(bytes, Math.min(avail, p + 6));
    }
  } else {
    const r = regField | rexR;
    // Byte registers 4-7 without any REX prefix are AH, CH, DH, BH (SDM Vol. 2 3.1.1.1).
    if (out.regSize === 1 && rex === 0 && r >= 4) {
      out.reg = r - 4;
      out.regHigh = true;
    } else out.reg = r;
  }

  out.base = NO_REG;
  out.index = NO_REG;
  out.scale = 1;
  out.disp = 0;
  out.dispHi = 0;
  let dispBytes = 0;
  let defaultSs = false;
  if (out.addrSize === 2) {
    // 16-bit addressing (Table 2-1).
    if (mod === 0 && rm === 6) dispBytes = 2;
    else {
      out.base = RM16_BASE[rm]!;
      out.index = RM16_INDEX[rm]!;
      defaultSs = out.base === 5;
      dispBytes = mod === 1 ? 1 : mod === 2 ? 2 : 0;
    }
  } else {
    // 32/64-bit addressing (Tables 2-2, 2-3).
    if (rm === 4) {
      if (p >= avail) return truncated(bytes, avail);
      const sib = bytes[p++]!;
      const ss = sib >>> 6;
      const idx = ((sib >>> 3) & 7) | rexX;
      const b = sib & 7;
      out.scale = (1 << ss) as 1 | 2 | 4 | 8;
      if (idx !== 4) out.index = idx;
      if (b === 5 && mod === 0) dispBytes = 4;
      else {
        out.base = b | rexB;
        defaultSs = b === 4 || b === 5;
      }
    } else if (rm === 5 && mod === 0) {
      dispBytes = 4;
      if (code === 64) out.base = BASE_RIP;
    } else {
      out.base = rm | rexB;
      defaultSs = rm === 5;
    }
    if (mod === 1) dispBytes = 1;
    else if (mod === 2) dispBytes = 4;
  }
  if (p + dispBytes > avail) return truncated(bytes, avail);
  if (dispBytes === 1) out.disp = (bytes[p]! << 24) >> 24;
  else if (dispBytes === 2) out.disp = ((bytes[p]! | (bytes[p + 1]! << 8)) << 16) >> 16;
  else if (dispBytes === 4) out.disp = readLe32(bytes, p) | 0;
  p += dispBytes;

  if (imm !== 0) {
    if (p + imm > avail) return truncated(bytes, avail);
    const v =
      imm === 1
        ? (bytes[p]! << 24) >> 24
        : imm === 2
          ? ((bytes[p]! | (bytes[p + 1]! << 8)) << 16) >> 16
          : readLe32(bytes, p) | 0;
    p += imm;
    out.hasImm = true;
    // Sign-extended to the operand size; kept as the low and high dwords.
    out.immLo = memSize === 1 ? v & 0xff : memSize === 2 ? v & 0xffff : v >>> 0;
    out.immHi = memSize === 8 ? (v < 0 ? 0xffff_ffff : 0) : 0;
  }
  out.seg = seg >= 0 ? seg : defaultSs ? Seg.SS : Seg.DS;
  out.segOverride = seg >= 0;
  out.length = p;
  if (out.lock && out.op !== MemOp.AluStore && out.op !== MemOp.Xchg) {
    return `instruction ${hexBytes(bytes, p)}: LOCK prefix on an instruction that does not write memory (#UD)`;
  }
  return undefined;
}

/** MOV AL/eAX <-> moffs (A0-A3): the offset is address-size wide, no ModRM (SDM Vol. 2 MOV). */
function decodeMoffs(
  bytes: Uint8Array,
  p: number,
  avail: number,
  opcode: number,
  wide: 2 | 4 | 8,
  seg: number,
  out: MemInsn,
): string | undefined {
  const n = out.addrSize;
  if (p + n > avail) return `instruction ${hexBytes(bytes, avail)} is truncated`;
  out.op = opcode >= 0xa2 ? MemOp.Store : MemOp.Load;
  out.moffs = true;
  out.size = opcode & 1 ? wide : 1;
  out.regSize = out.size;
  out.reg = 0;
  out.regHigh = false;
  out.hasImm = false;
  out.base = NO_REG;
  out.index = NO_REG;
  out.scale = 1;
  out.disp = n === 2 ? bytes[p]! | (bytes[p + 1]! << 8) : readLe32(bytes, p);
  out.dispHi = n === 8 ? readLe32(bytes, p + 4) : 0;
  out.seg = seg >= 0 ? seg : Seg.DS;
  out.segOverride = seg >= 0;
  out.length = p + n;
  if (out.lock) return `instruction ${hexBytes(bytes, p + n)}: LOCK prefix on MOV (#UD)`;
  return undefined;
}

// Error messages: module functions, not closures made per decode (MMIO exits are an exit path).
function truncated(bytes: Uint8Array, avail: number): string {
  return `instruction ${hexBytes(bytes, avail)} is truncated or longer than ${MAX_INSN_LENGTH} bytes`;
}

function unsupported(bytes: Uint8Array, n: number): string {
  return (
    `instruction ${hexBytes(bytes, n)} is not one this decoder emulates for MMIO ` +
    '(MOV, MOVZX, MOVSX, AND, OR, XOR, CMP, TEST, XCHG with a memory operand)'
  );
}

function aluOfOpcode(opcode: number): AluKind {
  const row = opcode & 0xf8;
  return row === 0x20 ? AluKind.And : row === 0x08 ? AluKind.Or : AluKind.Xor;
}

function isLegacyPrefix(b: number): boolean {
  return (
    b === 0x66 ||
    b === 0x67 ||
    b === 0x26 ||
    b === 0x2e ||
    b === 0x36 ||
    b === 0x3e ||
    b === 0x64 ||
    b === 0x65 ||
    b === 0xf0 ||
    b === 0xf2 ||
    b === 0xf3
  );
}

function readLe32(b: Uint8Array, p: number): number {
  return (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
}

/** "8b 05 10 00 00 00" for messages. */
export function formatBytes(b: Uint8Array, n: number): string {
  return hexBytes(b, n);
}
