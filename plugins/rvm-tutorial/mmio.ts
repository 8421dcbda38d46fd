/**
 * MMIO emulation for the guest's emulated devices (issue 5). A guest device's page is not mapped by
 * EPT, so a guest access to it is an EPT violation (SDM Vol. 3C 28.3.3.2). The policy then does
 * what the instruction would have done: it fetches the instruction at CS:RIP through the guest's
 * paging and EPT, decodes it (src/x86/mem-insn.ts), checks the decode against the exit information
 * (read/write bits of the qualification, the guest-physical and guest-linear addresses), performs
 * the access on the device through the guest bus, updates the register and RFLAGS, and moves RIP
 * past the instruction (the VM-exit instruction length is not defined for EPT violations, 27.2.5).
 *
 * An 8-byte access to a device is two 4-byte accesses, low dword first, as src/core/bus.ts does.
 * Whatever cannot be emulated ends the run cleanly with the bytes, RIP, GPA and the guest state.
 */
import type { Bus, MmioRegion } from '../../src/core/bus.js';
import { hex } from '../../src/core/addresses.js';
import { EptViolation } from '../../src/x86/ept.js';
import {
  AluKind,
  BASE_RIP,
  MAX_INSN_LENGTH,
  MEM_OP_NAMES,
  MemOp,
  NO_REG,
  decodeMemInsn,
  formatBytes,
  newMemInsn,
  type MemInsn,
} from '../../src/x86/mem-insn.js';
import { PARITY, RFLAGS, RFLAGS_ARITH, Seg } from '../../src/x86/regs.js';
import { GUEST_SEGMENT_BASE as SEG_BASE, VmcsField as F } from '../../src/x86/vmx.js';
import type { Vmx } from '../vmx/api.js';
import { GuestView } from '../../src/x86/guest-view.js';

const TWO32 = 2 ** 32;
const MASK64 = (1n << 64n) - 1n;

export interface MmioStats {
  /** EPT violations emulated as MMIO accesses. */
  mmioExits: number;
  /** Of those: reads, writes (a read-modify-write counts as both). */
  mmioReads: number;
  mmioWrites: number;
}

export type Fault = (message: string) => void;

/** What `MmioEmulator.handle` did. */
export const MmioResult = {
  /** The address is not a guest device's MMIO: the caller reports the violation. */
  NotMmio: 0,
  /** Emulated: resume the guest. */
  Emulated: 1,
  /** The run stops (the fault callback was called). */
  Stopped: 2,
} as const;
export type MmioResult = (typeof MmioResult)[keyof typeof MmioResult];

export class MmioEmulator {
  readonly stats: MmioStats = { mmioExits: 0, mmioReads: 0, mmioWrites: 0 };
  /** Emulated accesses per guest device instance (the region's name). */
  readonly perDevice: Record<string, number> = {};
  readonly view: GuestView;
  private readonly insn: MemInsn = newMemInsn();
  private readonly bytes = new Uint8Array(MAX_INSN_LENGTH);
  /** The value read from or to be written to the device: low and high dwords. */
  private vLo = 0;
  private vHi = 0;

  constructor(
    private readonly vmx: Vmx,
    private readonly guestBus: Bus,
    hostBus: Bus,
    private readonly fault: Fault,
  ) {
    this.view = new GuestView(vmx, hostBus);
  }

  /**
   * Handle an EPT violation at `gpa` with exit qualification `qual`.
   */
  handle(gpa: number, qual: number): MmioResult {
    const region = this.guestBus.regionAt(gpa);
    if (region?.kind !== 'mmio') return MmioResult.NotMmio;
    const vmx = this.vmx;
    const view = this.view;
    if (qual & EptViolation.INSTRUCTION_FETCH) {
      this.fault(`the guest executes from MMIO of ${region.name} at GPA ${hex(gpa)}`);
      return MmioResult.Stopped;
    }
    view.refresh();
    const code = view.codeSize();
    const rip = vmx.vmread(F.GuestRip) ?? 0n;
    const ripLo = Number(rip & 0xffff_ffffn);
    const ripHi = Number(rip >> 32n);
    // CS:RIP (the CS base is 0 in 64-bit mode, SDM Vol. 3A 3.4.4).
    let linLo = ripLo;
    let linHi = ripHi;
    if (code !== 64) {
      linLo = (vmx.vmread32(F.GuestCsBase) + ripLo) % TWO32;
      linHi = 0;
    }
    const bytes = this.bytes;
    const n = view.readLinear(linLo, linHi, bytes, MAX_INSN_LENGTH);
    if (n === 0) {
      this.fault(
        `MMIO emulation: cannot fetch the instruction ${this.where(rip, code, region, gpa)}: ${view.describeFailure()}`,
      );
      return MmioResult.Stopped;
    }
    const insn = this.insn;
    const err = decodeMemInsn(bytes, n, code, insn);
    if (err !== undefined) {
      this.fault(`MMIO emulation: ${err} ${this.where(rip, code, region, gpa)}`);
      return MmioResult.Stopped;
    }

    // The exit's read/write bits must agree with what the instruction does to memory.
    const write = (qual & EptViolation.DATA_WRITE) !== 0;
    const op = insn.op;
    const writes = op === MemOp.Store || op === MemOp.StoreImm;
    const rmw = op === MemOp.AluStore || op === MemOp.Xchg;
    if (!rmw && writes !== write) {
      this.fault(
        `MMIO emulation: the exit reports a ${write ? 'write' : 'read'} (qualification ${hex(qual)}), ` +
          `the instruction ${this.describe(rip, code, region, gpa)} does not`,
      );
      return MmioResult.Stopped;
    }

    // The operand's linear address, checked against the exit's guest-linear address.
    this.effectiveAddress(insn, code, rip);
    if (qual & EptViolation.LINEAR_VALID) {
      const gla = vmx.vmread(F.GuestLinearAddress) ?? 0n;
      if (Number(gla & 0xffff_ffffn) !== this.eaLo || Number(gla >> 32n) !== this.eaHi) {
        this.fault(
          `MMIO emulation: the instruction ${this.describe(rip, code, region, gpa)} addresses linear ${hex(this.eaHi * TWO32 + this.eaLo)}, ` +
            `the exit reports ${hex(gla)}`,
        );
        return MmioResult.Stopped;
      }
    }
    const opGpa = view.linearToGpa(this.eaLo, this.eaHi);
    if (opGpa !== gpa) {
      this.fault(
        `MMIO emulation: the instruction ${this.describe(rip, code, region, gpa)} addresses GPA ${opGpa < 0 ? `none (${view.describeFailure()})` : hex(opGpa)}, ` +
          `not the GPA of the exit`,
      );
      return MmioResult.Stopped;
    }
    if (gpa + insn.size > region.base + region.size) {
      this.fault(
        `MMIO emulation: the access ${this.describe(rip, code, region, gpa)} crosses the end of ${region.name}'s MMIO range`,
      );
      return MmioResult.Stopped;
    }

    this.execute(insn, region, gpa - region.base);
    this.stats.mmioExits++;
    this.perDevice[region.name] = (this.perDevice[region.name] ?? 0) + 1;
    // RIP past the instruction, wrapped to the code size (SDM Vol. 1 3.5).
    const next = rip + BigInt(insn.length);
    vmx.vmwrite(F.GuestRip, code === 64 ? next & MASK64 : code === 32 ? next & 0xffff_ffffn : next & 0xffffn);
    return MmioResult.Emulated;
  }

  // ---- messages (built only when the run stops) ---------------------------------------------

  private where(rip: bigint, code: number, region: MmioRegion, gpa: number): string {
    return `at RIP ${hex(rip)} (${code}-bit code) accessing ${region.name} at GPA ${hex(gpa)}`;
  }

  private describe(rip: bigint, code: number, region: MmioRegion, gpa: number): string {
    const insn = this.insn;
    return (
      `${formatBytes(this.bytes, insn.length)} (${MEM_OP_NAMES[insn.op]}, ${insn.size} bytes) ` +
      this.where(rip, code, region, gpa)
    );
  }

  // ---- address ------------------------------------------------------------------------------

  private eaLo = 0;
  private eaHi = 0;

  /** The memory operand's linear address into eaLo/eaHi (SDM Vol. 1 3.7.5, Vol. 3A 3.4.4). */
  private effectiveAddress(insn: MemInsn, code: number, rip: bigint): void {
    const vmx = this.vmx;
    if (insn.addrSize === 8) {
      let ea: bigint;
      if (insn.moffs) ea = (BigInt(insn.dispHi >>> 0) << 32n) | BigInt(insn.disp >>> 0);
      else {
        ea = BigInt(insn.disp); // sign-extended disp8/disp32
        if (insn.base === BASE_RIP) ea += rip + BigInt(insn.length);
        else if (insn.base !== NO_REG) ea += vmx.getGpr(insn.base);
        if (insn.index !== NO_REG) ea += vmx.getGpr(insn.index) * BigInt(insn.scale);
      }
      // In 64-bit mode only FS and GS have a base (SDM Vol. 3A 3.4.4).
      if (insn.seg === Seg.FS || insn.seg === Seg.GS) ea += vmx.vmread(SEG_BASE[insn.seg]!) ?? 0n;
      ea &= MASK64;
      this.eaLo = Number(ea & 0xffff_ffffn);
      this.eaHi = Number(ea >> 32n);
      return;
    }
    const mask = insn.addrSize === 4 ? TWO32 : 0x1_0000;
    let off = insn.disp;
    if (insn.base === BASE_RIP) off += (Number(rip & 0xffff_ffffn) + insn.length) % TWO32;
    else if (insn.base !== NO_REG) off += vmx.getGpr32(insn.base);
    if (insn.index !== NO_REG) off += vmx.getGpr32(insn.index) * insn.scale;
    off = ((off % mask) + mask) % mask;
    if (code === 64) {
      // 32-bit addressing in 64-bit mode: zero-extended, plus an FS/GS base.
      let ea = BigInt(off);
      if (insn.seg === Seg.FS || insn.seg === Seg.GS)
        ea = (ea + (vmx.vmread(SEG_BASE[insn.seg]!) ?? 0n)) & MASK64;
      this.eaLo = Number(ea & 0xffff_ffffn);
      this.eaHi = Number(ea >> 32n);
      return;
    }
    this.eaLo = (vmx.vmread32(SEG_BASE[insn.seg]!) + off) % TWO32;
    this.eaHi = 0;
  }

  // ---- execution ----------------------------------------------------------------------------

  private execute(insn: MemInsn, region: MmioRegion, offset: number): void {
    const size = insn.size;
    switch (insn.op) {
      case MemOp.Load:
        this.read(region, offset, size);
        this.setReg(insn.reg, insn.regHigh, size, this.vLo, this.vHi);
        break;
      case MemOp.Store:
        this.getReg(insn.reg, insn.regHigh, size);
        this.write(region, offset, size, this.rLo, this.rHi);
        break;
      case MemOp.StoreImm:
        this.write(region, offset, size, insn.immLo, insn.immHi);
        break;
      case MemOp.LoadZx:
        this.read(region, offset, size);
        this.setReg(insn.reg, false, insn.regSize, this.vLo, 0);
        break;
      case MemOp.LoadSx: {
        this.read(region, offset, size);
        const v = size === 1 ? (this.vLo << 24) >> 24 : (this.vLo << 16) >> 16;
        const rs = insn.regSize;
        this.setReg(insn.reg, false, rs, rs === 2 ? v & 0xffff : v >>> 0, v < 0 ? 0xffff_ffff : 0);
        break;
      }
      case MemOp.AluStore: {
        this.read(region, offset, size);
        this.source(insn);
        const lo = alu(insn.alu, this.vLo, this.rLo);
        const hi = alu(insn.alu, this.vHi, this.rHi);
        this.write(region, offset, size, lo, hi);
        this.logicFlags(size, lo, hi);
        break;
      }
      case MemOp.AluLoad: {
        this.read(region, offset, size);
        this.getReg(insn.reg, insn.regHigh, size);
        const lo = alu(insn.alu, this.rLo, this.vLo);
        const hi = alu(insn.alu, this.rHi, this.vHi);
        this.setReg(insn.reg, insn.regHigh, size, lo, hi);
        this.logicFlags(size, lo, hi);
        break;
      }
      case MemOp.CmpMem:
        this.read(region, offset, size);
        this.source(insn);
        this.subFlags(size, this.vLo, this.vHi, this.rLo, this.rHi);
        break;
      case MemOp.CmpReg:
        this.read(region, offset, size);
        this.getReg(insn.reg, insn.regHigh, size);
        this.subFlags(size, this.rLo, this.rHi, this.vLo, this.vHi);
        break;
      case MemOp.Test:
        this.read(region, offset, size);
        this.source(insn);
        this.logicFlags(size, (this.vLo & this.rLo) >>> 0, (this.vHi & this.rHi) >>> 0);
        break;
      case MemOp.Xchg: {
        this.read(region, offset, size);
        const lo = this.vLo;
        const hi = this.vHi;
        this.getReg(insn.reg, insn.regHigh, size);
        this.write(region, offset, size, this.rLo, this.rHi);
        this.setReg(insn.reg, insn.regHigh, size, lo, hi);
        break;
      }
    }
  }

  /** The second operand of AluStore/CmpMem/Test: the immediate or the register, into rLo/rHi. */
  private source(insn: MemInsn): void {
    if (insn.hasImm) {
      this.rLo = insn.immLo;
      this.rHi = insn.immHi;
    } else this.getReg(insn.reg, insn.regHigh, insn.size);
  }

  private read(region: MmioRegion, offset: number, size: 1 | 2 | 4 | 8): void {
    this.stats.mmioReads++;
    const d = region.device;
    if (size === 8) {
      this.vLo = d.mmioRead(offset, 4) >>> 0;
      this.vHi = d.mmioRead(offset + 4, 4) >>> 0;
    } else {
      this.vLo = d.mmioRead(offset, size) >>> 0;
      this.vHi = 0;
    }
  }

  private write(region: MmioRegion, offset: number, size: 1 | 2 | 4 | 8, lo: number, hi: number): void {
    this.stats.mmioWrites++;
    const d = region.device;
    if (size === 8) {
      d.mmioWrite(offset, 4, lo >>> 0);
      d.mmioWrite(offset + 4, 4, hi >>> 0);
    } else d.mmioWrite(offset, size, size === 4 ? lo >>> 0 : lo & (size === 1 ? 0xff : 0xffff));
  }

  // ---- registers and flags --------------------------------------------------------------------

  private rLo = 0;
  private rHi = 0;

  private getReg(reg: number, high: boolean, size: number): void {
    const vmx = this.vmx;
    const v = vmx.getGpr32(reg);
    this.rHi = 0;
    if (size === 1) this.rLo = high ? (v >>> 8) & 0xff : v & 0xff;
    else if (size === 2) this.rLo = v & 0xffff;
    else {
      this.rLo = v;
      if (size === 8) this.rHi = Number(vmx.getGpr(reg) >> 32n);
    }
  }

  /** Write a register as a MOV of that size would (SDM Vol. 1 3.4.1.1: 32-bit results zero-extend). */
  private setReg(reg: number, high: boolean, size: number, lo: number, hi: number): void {
    const vmx = this.vmx;
    if (size === 8) vmx.setGpr(reg, (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0));
    else if (size === 1 && high) vmx.setGprPart(reg, 2, (vmx.getGpr32(reg) & 0xff) | ((lo & 0xff) << 8));
    else vmx.setGprPart(reg, size as 1 | 2 | 4, lo);
  }

  /** AND/OR/XOR/TEST: CF = OF = 0; SF, ZF, PF from the result; AF undefined (cleared). */
  private logicFlags(size: number, lo: number, hi: number): void {
    const top = size === 8 ? hi : lo;
    const bits = size === 8 ? 32 : size * 8;
    let f = PARITY[lo & 0xff]!;
    if ((top >>> (bits - 1)) & 1) f |= RFLAGS.SF;
    if (lo >>> 0 === 0 && (size !== 8 || hi >>> 0 === 0)) f |= RFLAGS.ZF;
    this.setFlags(f);
  }

  /** CMP: the flags of a - b (SDM Vol. 2 CMP; SUB's flags). */
  private subFlags(size: number, aLo: number, aHi: number, bLo: number, bHi: number): void {
    let f = 0;
    let rLo: number;
    if (size === 8) {
      aLo >>>= 0;
      bLo >>>= 0;
      aHi >>>= 0;
      bHi >>>= 0;
      rLo = (aLo - bLo) >>> 0;
      const borrow = aLo < bLo ? 1 : 0;
      const rHi = (aHi - bHi - borrow) >>> 0;
      if (aHi < bHi + borrow) f |= RFLAGS.CF;
      if ((((aHi ^ bHi) & (aHi ^ rHi)) >>> 31) & 1) f |= RFLAGS.OF;
      if (rHi >>> 31) f |= RFLAGS.SF;
      if (rLo === 0 && rHi === 0) f |= RFLAGS.ZF;
    } else {
      const bits = size * 8;
      const mask = size === 4 ? 0xffff_ffff : (1 << bits) - 1;
      const a = aLo & mask;
      const b = bLo & mask;
      const a1 = a >>> 0;
      const b1 = b >>> 0;
      rLo = (a1 - b1) & mask;
      rLo >>>= 0;
      if (a1 < b1) f |= RFLAGS.CF;
      if ((((a1 ^ b1) & (a1 ^ rLo)) >>> (bits - 1)) & 1) f |= RFLAGS.OF;
      if ((rLo >>> (bits - 1)) & 1) f |= RFLAGS.SF;
      if (rLo === 0) f |= RFLAGS.ZF;
    }
    if ((aLo ^ bLo ^ rLo) & 0x10) f |= RFLAGS.AF;
    f |= PARITY[rLo & 0xff]!;
    this.setFlags(f);
  }

  private setFlags(f: number): void {
    const rflags = this.vmx.vmread32(F.GuestRflags);
    this.vmx.vmwrite(F.GuestRflags, ((rflags & ~RFLAGS_ARITH) | f) >>> 0);
  }
}

function alu(kind: AluKind, a: number, b: number): number {
  return (kind === AluKind.And ? a & b : kind === AluKind.Or ? a | b : a ^ b) >>> 0;
}
