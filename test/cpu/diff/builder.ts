/**
 * Builds one test case: picks operands (registers with edge-biased values, memory operands with any
 * addressing form pointing into the data window), and assembles the instruction bytes (legacy
 * prefixes, REX, opcode, ModRM, SIB, displacement, immediate). The forms in forms.ts drive it.
 */
import { blankCase, Reg, STACK_TOP } from './case-util.js';
import type { DiffCase } from './emulator-adapter.js';
import type { Rng } from './prng.js';
import { ARITH_FLAGS, Layout, RFLAGS_FIXED } from './protocol.js';

export type Size = 8 | 16 | 32 | 64;
export type Mode = 64 | 32;

export interface RegOp {
  kind: 'reg';
  reg: number;
  size: Size;
  /** AH CH DH BH (encodings 4-7 of an 8-bit register without REX). */
  high8: boolean;
}

export interface MemOp {
  kind: 'mem';
  size: Size;
  mod: number;
  rm: number;
  sib?: number;
  disp: bigint;
  dispSize: 0 | 1 | 2 | 4;
  rexX: boolean;
  rexB: boolean;
  /** 0x67: 32-bit addresses in 64-bit mode, 16-bit addresses in 32-bit mode. */
  addr67: boolean;
  /** RIP-relative: the disp is fixed up to reach this address once the instruction length is known. */
  ripTarget?: bigint;
  /** Offset of the access in the data window (NaN when the operand is not accessed, e.g. LEA). */
  off: number;
}

export type Operand = RegOp | MemOp;

export interface MemOptions {
  /** false for LEA/NOP: no access, registers stay random. */
  access?: boolean;
  /** Alignment of the access in bytes (default: the operand size, sometimes misaligned). */
  align?: number;
  /** Bytes of the window to fill with random data around the access. */
  spread?: number;
  /** Registers that must not be used as base or index. */
  avoid?: number[];
  /** Occasionally point the access outside the window (#PF); off for forms that must not fault. */
  pageFault?: boolean;
}

export interface InsnSpec {
  op: readonly number[];
  /** ModRM.reg: a register operand, or the /digit opcode extension. */
  reg?: number | RegOp;
  rm?: Operand;
  /** Register encoded in the opcode's low 3 bits (PUSH r, BSWAP, MOV r, imm...). */
  opreg?: number;
  /** Operand size for 0x66 / REX.W; null when the instruction has no size choice. */
  osize?: Size | null;
  /** The instruction's default operand size is 64 in 64-bit mode (PUSH, POP): no REX.W needed. */
  default64?: boolean;
  imm?: { bytes: number; value: bigint };
  /** Extra legacy prefixes (LOCK, REP, mandatory F3...), emitted before the others. */
  prefixes?: number[];
  /** Mandatory prefix placed right before REX/opcode (F3 for TZCNT/LZCNT/POPCNT). */
  mandatory?: number;
}

const SEG_64 = [0x2e, 0x36, 0x3e, 0x26]; // CS SS DS ES: ignored in 64-bit mode (SDM Vol. 1 3.3.7.1)
const SEG_32 = [0x36, 0x3e, 0x26]; // SS DS ES: flat; CS is not writable in compatibility mode

export class Builder {
  readonly c: DiffCase;
  readonly code: number[] = [];
  /** Flags the comparison ignores (undefined per the SDM for this case). */
  undef = 0;
  /** Register bits the comparison ignores (undefined results). */
  readonly regUndef = new Map<number, bigint>();
  /** Set when the case may fault by construction (#PF probes, #DE, #UD...). */
  mayFault = false;
  /** No REX prefix may be used (32-bit mode, or AH..BH are in play). */
  readonly noRex: boolean;
  /** Values the form's flag mask depends on. */
  count = 0;
  src = 0n;
  private readonly reserved = new Set<number>();

  constructor(
    readonly rng: Rng,
    readonly mode: Mode,
    byteRegs: boolean,
  ) {
    this.noRex = mode === 32 || (byteRegs && rng.chance(0.5));
    const c = blankCase(mode);
    for (let i = 0; i < c.regs.length; i++) c.regs[i] = this.randomRegValue();
    c.regs[Reg.SP] = BigInt(STACK_TOP);
    c.rflags = RFLAGS_FIXED | (rng.u32() & ARITH_FLAGS);
    // Some bytes on the stack around RSP, so POP and LEAVE read something non-trivial.
    for (let i = -64; i < 64; i++) c.stack[STACK_TOP - Layout.stackAddr + i] = rng.byte();
    this.c = c;
  }

  get regCount(): number {
    return this.mode === 64 && !this.noRex ? 16 : 8;
  }

  get wordMask(): bigint {
    return this.mode === 64 ? 0xffff_ffff_ffff_ffffn : 0xffff_ffffn;
  }

  randomRegValue(): bigint {
    const bits = this.mode === 64 ? 64 : 32;
    return this.rng.chance(0.5) ? this.rng.edge(bits) : this.rng.u64() & ((1n << BigInt(bits)) - 1n);
  }

  /** Reserve a register so later picks (operands, base, index) do not use it. */
  reserve(...regs: number[]): void {
    for (const r of regs) this.reserved.add(r);
  }

  /** Pick a general register operand of `size` (never RSP, never a reserved one). */
  reg(size: Size, avoid: readonly number[] = []): RegOp {
    for (;;) {
      const reg = this.rng.int(this.regCount);
      const high8 = size === 8 && this.noRex && reg >= 4;
      if (!high8 && reg === Reg.SP) continue;
      const full = high8 ? reg - 4 : reg;
      if (this.reserved.has(full) || avoid.includes(full)) continue;
      return { kind: 'reg', reg, size, high8 };
    }
  }

  /** A fixed register operand (implicit operands, accumulator forms). */
  fixed(reg: number, size: Size): RegOp {
    return { kind: 'reg', reg, size, high8: false };
  }

  /** Register or memory operand (memory with probability pMem). */
  rm(size: Size, pMem = 0.5, mem: MemOptions = {}): Operand {
    return this.rng.chance(pMem) ? this.mem(size, mem) : this.reg(size);
  }

  /** Write the low `size` bits of a register operand (or AH..BH), keeping the other bits. */
  setReg(op: RegOp, value: bigint): void {
    const regs = this.c.regs;
    if (op.high8) {
      const r = op.reg - 4;
      regs[r] = (regs[r]! & ~0xff00n) | ((value & 0xffn) << 8n);
      return;
    }
    const m = (1n << BigInt(op.size)) - 1n;
    regs[op.reg] = ((regs[op.reg]! & ~m) | (value & m)) & this.wordMask;
  }

  getReg(op: RegOp): bigint {
    if (op.high8) return (this.c.regs[op.reg - 4]! >> 8n) & 0xffn;
    return this.c.regs[op.reg]! & ((1n << BigInt(op.size)) - 1n);
  }

  /** Set an operand's value: a register's low bits, or memory bytes at the access. */
  set(op: Operand, value: bigint): void {
    if (op.kind === 'reg') this.setReg(op, value);
    else this.setMem(op.off, op.size / 8, value);
  }

  get(op: Operand): bigint {
    if (op.kind === 'reg') return this.getReg(op);
    let v = 0n;
    for (let i = op.size / 8 - 1; i >= 0; i--) v = (v << 8n) | BigInt(this.c.data[op.off + i] ?? 0);
    return v;
  }

  setMem(off: number, bytes: number, value: bigint): void {
    for (let i = 0; i < bytes; i++) {
      const o = off + i;
      if (o >= 0 && o < Layout.dataSize) this.c.data[o] = Number((value >> BigInt(8 * i)) & 0xffn);
    }
  }

  /** Edge-biased value for an operand and store it. */
  randomize(op: Operand): bigint {
    const v = this.rng.edge(op.size);
    this.set(op, v);
    return v;
  }

  fillData(lo: number, hi: number): void {
    for (let o = Math.max(0, lo); o < Math.min(Layout.dataSize, hi); o++) this.c.data[o] = this.rng.byte();
  }

  /** A memory operand whose effective address lands in the data window (unless it is a #PF probe). */
  mem(size: Size, o: MemOptions = {}): MemOp {
    const rng = this.rng;
    const access = o.access ?? true;
    const width = Math.max(1, size / 8);
    let off = Number.NaN;
    if (access) {
      const align = o.align ?? (rng.chance(0.8) ? width : 1);
      off = rng.range(0x200, 0xe00) & ~(align - 1);
      if (o.pageFault !== false && rng.chance(0.02)) {
        this.mayFault = true;
        off = rng.pick([
          Layout.dataSize - rng.range(1, width),
          -rng.range(1, 0x800),
          Layout.dataSize + rng.int(0x800),
        ]);
      }
      const spread = o.spread ?? 32;
      this.fillData(off - spread, off + width + spread);
    }
    const avoid = new Set([...(o.avoid ?? []), ...this.reserved]);
    if (this.mode === 32 && !access && rng.chance(0.3)) return this.mem16(size, avoid);
    const addrBits = this.mode === 64 && rng.chance(0.15) ? 32 : this.mode;
    const addr67 = this.mode === 64 && addrBits === 32;
    const amask = (1n << BigInt(addrBits)) - 1n;
    const target = BigInt(Layout.dataAddr + (access ? off : 0));
    const pickAddrReg = (allowSp: boolean): number => {
      for (;;) {
        const r = rng.int(this.regCount);
        if ((r === Reg.SP && !allowSp) || avoid.has(r)) continue;
        return r;
      }
    };
    const shape = rng.pick(
      this.mode === 64
        ? (['base', 'sib', 'sib', 'index', 'abs', 'rip', 'rip'] as const)
        : (['base', 'sib', 'sib', 'index', 'abs'] as const),
    );
    const scaleLog = rng.int(4);
    const scale = 1n << BigInt(scaleLog);
    let dispSize: 0 | 1 | 4 = rng.pick([0, 1, 4] as const);
    const randDisp = (): bigint =>
      dispSize === 0
        ? 0n
        : dispSize === 1
          ? BigInt(rng.range(-128, 127))
          : BigInt.asIntN(32, rng.chance(0.5) ? BigInt(rng.range(-0x1000, 0x1000)) : rng.edge(32));
    const regs = this.c.regs;
    const op: MemOp = {
      kind: 'mem',
      size,
      mod: 0,
      rm: 0,
      disp: 0n,
      dispSize: 0,
      rexX: false,
      rexB: false,
      addr67,
      off,
    };

    if (shape === 'rip') {
      op.mod = 0;
      op.rm = 5;
      op.dispSize = 4;
      op.ripTarget = access ? target : (BigInt(Layout.codeAddr) + BigInt.asIntN(32, rng.edge(32))) & amask;
      return op;
    }
    if (shape === 'abs') {
      dispSize = 4;
      const disp = access ? target : BigInt.asIntN(32, rng.edge(32));
      op.disp = disp;
      op.dispSize = 4;
      if (this.mode === 64 || rng.chance(0.3)) {
        op.rm = 4; // SIB with no base (101, mod 00) and no index (100)
        op.sib = (rng.int(4) << 6) | (4 << 3) | 5;
      } else op.rm = 5;
      return op;
    }
    if (shape === 'index') {
      // [index*scale + disp32], no base
      dispSize = 4;
      const index = pickAddrReg(false);
      let disp = randDisp();
      let iv: bigint;
      if (access) {
        iv = (target - disp) / scale;
        disp = target - iv * scale;
        if (addrBits === 32)
          iv = BigInt.asUintN(32, iv) | (this.mode === 64 ? rng.u64() & ~0xffff_ffffn : 0n);
      } else iv = this.randomRegValue();
      regs[index] = iv & this.wordMask;
      op.rm = 4;
      op.sib = (scaleLog << 6) | ((index & 7) << 3) | 5;
      op.rexX = index >= 8;
      op.disp = BigInt.asIntN(32, disp);
      op.dispSize = 4;
      return op;
    }
    const base = pickAddrReg(true);
    const useIndex = shape === 'sib';
    const index = useIndex ? pickAddrReg(false) : -1;
    if ((base & 7) === 5 && dispSize === 0) dispSize = 1; // mod 00 with base 101 means "no base"
    let disp = randDisp();
    if (access) {
      let iv = useIndex ? (rng.chance(0.6) ? BigInt(rng.range(-64, 64)) : this.randomRegValue()) : 0n;
      if (useIndex && index === base) {
        const k = scale + 1n;
        iv = (target - disp) / k;
        const rest = target - iv * k; // 0..k-1 + disp: keep it a valid displacement
        if (rest !== disp) {
          if (dispSize === 0) dispSize = 1;
          disp = rest;
          if (disp > 127n || disp < -128n) dispSize = 4;
        }
        regs[base] = iv & this.wordMask;
      } else {
        let bv = (target - iv * scale - disp) & amask;
        if (addrBits === 32 && this.mode === 64) bv |= rng.u64() & ~0xffff_ffffn;
        if (useIndex) regs[index] = BigInt.asUintN(this.mode, iv);
        regs[base] = bv & this.wordMask;
      }
    } else {
      regs[base] = this.randomRegValue();
      if (useIndex) regs[index] = this.randomRegValue();
    }
    op.disp = disp;
    op.dispSize = dispSize;
    op.mod = dispSize === 0 ? 0 : dispSize === 1 ? 1 : 2;
    op.rexB = base >= 8;
    if (useIndex || (base & 7) === 4 || rng.chance(0.05)) {
      // SIB; index 100 without REX.X means "no index" (the scale is then ignored)
      op.rm = 4;
      const idx = useIndex ? index & 7 : 4;
      op.rexX = useIndex && index >= 8;
      op.sib = ((useIndex ? scaleLog : rng.int(4)) << 6) | (idx << 3) | (base & 7);
    } else op.rm = base & 7;
    return op;
  }

  /** 16-bit addressing (0x67 in 32-bit mode): only for operands that are not accessed (LEA). */
  private mem16(size: Size, avoid: Set<number>): MemOp {
    const rng = this.rng;
    for (const r of [Reg.BX, Reg.BP, Reg.SI, Reg.DI])
      if (!avoid.has(r)) this.c.regs[r] = this.randomRegValue();
    const mod = rng.int(3);
    const rm = rng.int(8);
    const dispSize = mod === 1 ? 1 : mod === 2 || (mod === 0 && rm === 6) ? 2 : 0;
    const disp = dispSize === 1 ? BigInt(rng.range(-128, 127)) : BigInt(rng.int(0x10000));
    return {
      kind: 'mem',
      size,
      mod,
      rm,
      disp,
      dispSize,
      rexX: false,
      rexB: false,
      addr67: true,
      off: Number.NaN,
    };
  }

  /** Assemble one instruction and append it to the code. Returns its offset in the code. */
  insn(s: InsnSpec): number {
    const rng = this.rng;
    const start = this.code.length;
    const bytes: number[] = [];
    const pre: number[] = [...(s.prefixes ?? [])];
    const mem = s.rm?.kind === 'mem' ? s.rm : undefined;
    if (mem && rng.chance(0.1)) pre.push(rng.pick(this.mode === 64 ? SEG_64 : SEG_32));
    if (s.osize === 16) pre.push(0x66);
    if (mem?.addr67) pre.push(0x67);
    // Legacy prefixes may come in any order (SDM Vol. 2 2.1.1).
    for (let i = pre.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [pre[i], pre[j]] = [pre[j]!, pre[i]!];
    }
    bytes.push(...pre);
    if (s.mandatory !== undefined) bytes.push(s.mandatory);

    const regOp = typeof s.reg === 'object' ? s.reg : undefined;
    const regField = typeof s.reg === 'object' ? s.reg.reg : (s.reg ?? 0);
    const rmReg = s.rm?.kind === 'reg' ? s.rm : undefined;
    const w = s.osize === 64 && !s.default64;
    const r = regField >= 8;
    const x = mem?.rexX ?? false;
    const b = (rmReg ? rmReg.reg >= 8 : (mem?.rexB ?? false)) || (s.opreg ?? 0) >= 8;
    // Byte registers 4-7 mean SPL..DIL with any REX, AH..BH without (SDM Vol. 2 2.2.1.2).
    const needRex8 =
      !this.noRex &&
      this.mode === 64 &&
      ((rmReg?.size === 8 && rmReg.reg >= 4) ||
        (regOp?.size === 8 && regOp.reg >= 4) ||
        (s.opreg !== undefined && s.osize === 8 && s.opreg >= 4));
    if (w || r || x || b || needRex8 || (this.mode === 64 && !this.noRex && rng.chance(0.05))) {
      if (this.noRex) throw new Error('builder: REX needed where none may be used');
      bytes.push(0x40 | (w ? 8 : 0) | (r ? 4 : 0) | (x ? 2 : 0) | (b ? 1 : 0));
    }
    const op = [...s.op];
    if (s.opreg !== undefined) op[op.length - 1]! |= s.opreg & 7;
    bytes.push(...op);
    let dispAt = -1;
    let dispSize = 0;
    if (s.rm) {
      if (s.rm.kind === 'reg') bytes.push(0xc0 | ((regField & 7) << 3) | (s.rm.reg & 7));
      else {
        bytes.push((s.rm.mod << 6) | ((regField & 7) << 3) | s.rm.rm);
        if (s.rm.sib !== undefined) bytes.push(s.rm.sib);
        dispAt = bytes.length;
        dispSize = s.rm.dispSize;
        pushLE(bytes, s.rm.disp, dispSize);
      }
    }
    if (s.imm) pushLE(bytes, s.imm.value, s.imm.bytes);
    if (mem?.ripTarget !== undefined) {
      const end = BigInt(this.c.codeAddr + start + bytes.length);
      const disp = BigInt.asIntN(32, mem.ripTarget - end);
      const patch: number[] = [];
      pushLE(patch, disp, 4);
      bytes.splice(dispAt, 4, ...patch);
    }
    if (dispAt >= 0 && dispSize === 0 && mem?.ripTarget !== undefined)
      throw new Error('builder: bad RIP form');
    this.code.push(...bytes);
    return start;
  }

  /** Raw bytes (branch scaffolding, markers). */
  raw(...bytes: number[]): void {
    this.code.push(...bytes);
  }

  finish(): DiffCase {
    this.c.code = Uint8Array.from(this.code);
    return this.c;
  }
}

export function pushLE(out: number[], v: bigint, n: number): void {
  for (let i = 0; i < n; i++) out.push(Number((v >> BigInt(8 * i)) & 0xffn));
}
