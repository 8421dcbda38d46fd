/**
 * The x86-64 CPU, part 2: segmentation (descriptor loads and checks), the stack, event delivery
 * through the IVT/IDT in every mode (with #DF and triple fault), far transfers, IRET, SYSCALL/
 * SYSRET, SYSENTER/SYSEXIT, control registers, MSRs, CPUID and I/O permission checks.
 */
import type { Bus } from '../../src/core/bus.js';
import type { LocalApic } from '../../src/devices/apic.js';
import type { VirtualClock } from '../../src/core/clock.js';
import {
  CONTRIBUTORY_MASK,
  EventType,
  HAS_ERROR_CODE_MASK,
  Vector,
  VECTOR_NAMES,
} from '../../src/x86/exceptions.js';
import { CR0, CR4, EFER, RFLAGS } from '../../src/x86/regs.js';
import { MSR } from '../../src/x86/msr.js';
import { SegAttr, SysType } from '../../src/x86/descriptor.js';
import { CpuCoreBase, FAULT, MAXPHYADDR, TWO32, TWO48 } from './core.js';
import type { ExceptionEvent } from './hooks.js';

export const ES = 0,
  CS = 1,
  SS = 2,
  DS = 3,
  FS = 4,
  GS = 5;

/** Segment access-check summary per segment register (recomputed on every load). */
export const enum SegOk {
  Read = 1,
  Write = 2,
  ExpandDown = 4,
  Unusable = 8,
}

/** A range of MSRs owned by another plugin (the local APIC's x2APIC registers, VMX capabilities). */
export interface MsrHandler {
  first: number;
  last: number;
  /** Return [lo, hi] or undefined to raise #GP. */
  read(msr: number): readonly [number, number] | undefined;
  /** Return false to raise #GP. */
  write(msr: number, lo: number, hi: number): boolean;
}

export interface CpuModel {
  vendor: string;
  family: number;
  model: number;
  stepping: number;
  brand: string;
  /** Extra features other plugins implement: x2apic, apic, vmx, tsc-deadline, hypervisor. */
  features: readonly string[];
  tscMhz: number;
}

const FLAT_CODE64 =
  SegAttr.P | SegAttr.S | SegAttr.CODE | SegAttr.RW | SegAttr.ACCESSED | SegAttr.L | SegAttr.G;
const FLAT_CODE32 =
  SegAttr.P | SegAttr.S | SegAttr.CODE | SegAttr.RW | SegAttr.ACCESSED | SegAttr.DB | SegAttr.G;
const FLAT_DATA = SegAttr.P | SegAttr.S | SegAttr.RW | SegAttr.ACCESSED | SegAttr.DB | SegAttr.G;

export class CpuSystem extends CpuCoreBase {
  readonly sOk = new Int32Array(6);
  /** Interrupt shadow after STI / MOV SS / POP SS: blocks events until after the next instruction. */
  shadow = 0;
  /** The shadow is STI's (blocking by STI), not MOV SS's or POP SS's (SDM 24.4.2 Table 24-3). */
  shadowBySti = false;
  /**
   * The instruction count of the instruction the shadow covers (the boundary before it used the
   * shadow up): a VM exit before it retires saves the blocking (SDM 27.3.4), -1 when none.
   */
  shadowInsn = -1;
  /** Blocking by NMI (set at NMI delivery, cleared by IRET). */
  nmiBlocked = false;
  nmiPending = false;
  /** Something to look at before the next instruction (interrupt, NMI, injection, exit request). */
  eventCheck = true;
  halted = false;
  shutdown = false;
  /** Pending injection (VM entry event injection), delivered before the next instruction. */
  injVector = -1;
  injType: EventType = EventType.External;
  injError = -1;
  injLength = 0;

  // ---- MSR state ----
  star = 0n;
  lstar = 0;
  cstar = 0;
  fmask = 0;
  kernelGsBase = 0;
  tscAux = 0;
  sysenterCs = 0;
  sysenterEsp = 0;
  sysenterEip = 0;
  pat = 0x0007_0406_0007_0406n;
  /** TSC = virtual ns scaled + tscOffset (WRMSR to the TSC sets the offset). */
  tscOffset = 0;
  readonly msrStore = new Map<number, bigint>();
  readonly msrHandlers: MsrHandler[] = [];
  /** The local APIC, which owns IA32_APIC_BASE, IA32_TSC_DEADLINE and the x2APIC MSRs. */
  apic: LocalApic | undefined;

  model: CpuModel = {
    vendor: 'GenuineIntel',
    family: 6,
    model: 0x3a,
    stepping: 9,
    brand: 'vmm x86-64',
    features: [],
    tscMhz: 1000,
  };

  /** Diagnostics: unimplemented or invalid encodings met (key: bytes @ address). */
  readonly undefinedOps = new Map<string, number>();
  readonly unimplemented = new Map<string, number>();

  /** Callbacks the plugin wires: triple fault (stop the machine). */
  onTripleFault: ((message: string) => void) | null = null;

  private readonly excEvent: ExceptionEvent = {
    vector: 0,
    type: EventType.HardwareException,
    errorCode: -1,
    address: 0,
    length: 0,
  };

  constructor(bus: Bus, clock: VirtualClock) {
    super(bus, clock);
  }

  note(map: Map<string, number>, what: string): void {
    map.set(what, (map.get(what) ?? 0) + 1);
  }

  // =============================================================================================
  // Segment caches
  // =============================================================================================

  setSeg(seg: number, sel: number, base: number, limit: number, attr: number): void {
    this.sSel[seg] = sel;
    this.sBaseLo[seg] = base | 0;
    this.sBaseHi[seg] = base >= TWO32 || base < 0 ? Math.floor(base / TWO32) | 0 : 0;
    this.sLimit[seg] = limit >>> 0;
    this.sAttr[seg] = attr;
    this.updateSegOk(seg);
  }

  updateSegOk(seg: number): void {
    const a = this.sAttr[seg];
    let ok: number;
    if (!this.pe || this.v86) ok = SegOk.Read | SegOk.Write;
    else if (a & SegAttr.UNUSABLE) ok = SegOk.Unusable;
    else if (a & SegAttr.CODE) ok = a & SegAttr.RW ? SegOk.Read : 0;
    else ok = SegOk.Read | (a & SegAttr.RW ? SegOk.Write : 0) | (a & SegAttr.DC ? SegOk.ExpandDown : 0);
    this.sOk[seg] = ok;
  }

  refreshSegOk(): void {
    for (let s = 0; s < 6; s++) this.updateSegOk(s);
  }

  /** Base of a segment as a number (64-bit canonical value, signed). */
  segBase(seg: number): number {
    return this.sBaseHi[seg] * TWO32 + (this.sBaseLo[seg] >>> 0);
  }

  /**
   * Linear address of a data access at offset (lo, hi) in a segment, with the checks of the
   * current mode: canonical form in 64-bit mode, type, limit and usability elsewhere.
   * `size` is the access size; `write` selects the write-permission check.
   */
  segLin(seg: number, lo: number, hi: number, size: number, write: boolean): number {
    // Alignment check (SDM Vol. 3A 6.15 #AC): CPL 3 with CR0.AM and EFLAGS.AC set.
    if (this.cpl === 3 && this.cr0 & CR0.AM && this.fl & RFLAGS.AC && size > 1)
      this.alignCheck(seg, lo, size);
    if (this.mode64) {
      if (seg >= FS) {
        const bl = this.sBaseLo[seg];
        const s = (lo >>> 0) + (bl >>> 0);
        lo = s | 0;
        hi = (hi + this.sBaseHi[seg] + (s >= TWO32 ? 1 : 0)) | 0;
      }
      if ((hi + 0x8000) >>> 16 !== 0) this.fault(seg === SS ? Vector.SS : Vector.GP, 0);
      return (hi & 0xffff) * TWO32 + (lo >>> 0);
    }
    const ok = this.sOk[seg];
    const off = lo >>> 0;
    if ((ok & (write ? SegOk.Write : SegOk.Read)) === 0 || ok & SegOk.ExpandDown) {
      if (ok & SegOk.ExpandDown && (ok & (write ? SegOk.Write : SegOk.Read)) !== 0) {
        const upper = this.sAttr[seg] & SegAttr.DB ? 0xffffffff : 0xffff;
        if (off <= this.sLimit[seg] || off + size - 1 > upper) this.segFault(seg);
        return (this.sBaseLo[seg] + off) >>> 0;
      }
      this.segFault(seg);
    }
    if (off + size - 1 > this.sLimit[seg]) this.segFault(seg);
    return (this.sBaseLo[seg] + off) >>> 0;
  }

  /** #AC(0) when the linear address of a CPL-3 data access is not aligned to its size. */
  private alignCheck(seg: number, lo: number, size: number): void {
    const base = this.mode64 && seg < FS ? 0 : this.sBaseLo[seg];
    if (((lo + base) & (size - 1)) !== 0) this.fault(Vector.AC, 0);
  }

  private segFault(seg: number): never {
    return this.fault(seg === SS ? Vector.SS : Vector.GP, 0);
  }

  // =============================================================================================
  // Descriptor tables
  // =============================================================================================

  /** Descriptor dwords of the last readDescriptor (and the third dword for 16-byte descriptors). */
  dLo = 0;
  dHi = 0;
  dHi2 = 0;
  /** Linear address of the last descriptor read (to set its accessed/busy bits). */
  dAddr = 0;

  /**
   * Read the 8-byte descriptor a selector names (GDT or LDT). Returns false when the selector is
   * outside the table; the caller raises the fault its instruction defines.
   */
  readDescriptor(sel: number, wide = false): boolean {
    let base: number, limit: number;
    if (sel & 4) {
      if (this.ldtrAttr & SegAttr.UNUSABLE) return false;
      base = this.ldtrBase;
      limit = this.ldtrLimit;
    } else {
      base = this.gdtrBase;
      limit = this.gdtrLimit;
    }
    const idx = sel & 0xfff8;
    if (idx + (wide ? 15 : 7) > limit) return false;
    const a = this.lma ? (base + idx) % TWO48 : (base + idx) % TWO32;
    this.dAddr = a;
    this.dLo = this.sysRead32(a);
    this.dHi = this.sysRead32(a + 4);
    if (wide) this.dHi2 = this.sysRead32(a + 8);
    return true;
  }

  /** Set the accessed bit of the descriptor just read (a locked write on hardware). */
  private markAccessed(): void {
    if ((this.dHi & 0x100) === 0) {
      this.dHi |= 0x100;
      this.sysWrite8(this.dAddr + 5, (this.dHi >>> 8) & 0xff);
    }
  }

  descBase(): number {
    return ((this.dLo >>> 16) | ((this.dHi & 0xff) << 16) | (this.dHi & 0xff000000)) >>> 0;
  }

  descLimit(): number {
    const raw = (this.dLo & 0xffff) | (this.dHi & 0xf0000);
    return this.dHi & 0x800000 ? ((raw << 12) | 0xfff) >>> 0 : raw;
  }

  descAttr(): number {
    return (this.dHi >>> 8) & 0xf0ff;
  }

  /** Load a segment register (MOV/POP Sreg, LDS.., far transfers use loadCs). SDM Vol. 3A 5.4-5.6. */
  loadSeg(seg: number, sel: number): void {
    sel &= 0xffff;
    if (!this.pe || this.v86) {
      // Real and virtual-8086 mode: base = selector * 16; limit and attributes are kept (so the
      // "unreal mode" trick works), except that V86 forces 64 KiB, DPL 3 segments.
      this.sSel[seg] = sel;
      this.sBaseLo[seg] = sel << 4;
      this.sBaseHi[seg] = 0;
      if (this.v86) {
        this.sLimit[seg] = 0xffff;
        this.sAttr[seg] =
          SegAttr.P | SegAttr.S | SegAttr.RW | SegAttr.ACCESSED | (3 << 5) | (seg === CS ? SegAttr.CODE : 0);
      } else if (this.sAttr[seg] & SegAttr.UNUSABLE) {
        this.sAttr[seg] =
          SegAttr.P | SegAttr.S | SegAttr.RW | SegAttr.ACCESSED | (seg === CS ? SegAttr.CODE : 0);
      }
      this.updateSegOk(seg);
      if (seg === CS || seg === SS) this.updateMode();
      return;
    }
    const rpl = sel & 3;
    if ((sel & 0xfffc) === 0) {
      if (seg === SS) {
        // A null SS is allowed only in 64-bit mode at CPL < 3 with RPL = CPL.
        if (!this.mode64 || this.cpl === 3 || rpl !== this.cpl) this.gp(0);
        this.setSeg(SS, sel, 0, 0, SegAttr.UNUSABLE | (this.cpl << 5));
        return;
      }
      this.setSeg(seg, sel, 0, 0, SegAttr.UNUSABLE);
      return;
    }
    if (!this.readDescriptor(sel)) this.gp(sel & 0xfffc);
    const attr = this.descAttr();
    const dpl = (attr >> 5) & 3;
    if (seg === SS) {
      if (rpl !== this.cpl || dpl !== this.cpl || (attr & 0x1a) !== 0x12) this.gp(sel & 0xfffc);
      if ((attr & SegAttr.P) === 0) this.fault(Vector.SS, sel & 0xfffc);
    } else {
      // Data or readable code; DPL >= max(CPL, RPL) unless conforming code.
      if ((attr & SegAttr.S) === 0 || (attr & 0xa) === 0x8) this.gp(sel & 0xfffc);
      const conforming = (attr & 0xc) === 0xc;
      if (!conforming && (rpl > dpl || this.cpl > dpl)) this.gp(sel & 0xfffc);
      if ((attr & SegAttr.P) === 0) this.fault(Vector.NP, sel & 0xfffc);
    }
    this.markAccessed();
    this.setSeg(seg, sel, this.descBase(), this.descLimit(), this.descAttr());
    if (seg === SS) this.updateMode();
  }

  /**
   * Validate a code-segment selector for a far JMP/CALL/RET/IRET and load CS with it (RPL forced
   * to the new CPL). Call and task gates are not implemented (recorded, #GP).
   */
  private checkCodeDesc(sel: number, ext: number): number {
    if ((sel & 0xfffc) === 0) this.gp(ext);
    if (!this.readDescriptor(sel)) this.gp((sel & 0xfffc) | ext);
    const attr = this.descAttr();
    if ((attr & (SegAttr.S | SegAttr.CODE)) !== (SegAttr.S | SegAttr.CODE)) {
      if ((attr & SegAttr.S) === 0) {
        const t = attr & 0xf;
        if (
          t === SysType.CALL_GATE ||
          t === SysType.CALL_GATE16 ||
          t === SysType.TASK_GATE ||
          t === 9 ||
          t === 1
        ) {
          this.note(this.unimplemented, `far transfer through system descriptor type ${t}`);
        }
      }
      this.gp((sel & 0xfffc) | ext);
    }
    return attr;
  }

  loadCs(sel: number, attrDesc: number, cpl: number): void {
    this.markAccessed();
    this.setSeg(CS, (sel & 0xfffc) | cpl, this.descBase(), this.descLimit(), attrDesc | SegAttr.ACCESSED);
    this.updateMode();
  }

  /** Set the new RIP for a far transfer: checks it against the new CS (limit, or canonical form). */
  private setFarRip(lo: number, hi: number): void {
    if (this.mode64) {
      if ((hi + 0x8000) >>> 16 !== 0) this.gp(0);
      this.rip = hi * TWO32 + (lo >>> 0);
    } else {
      if (lo >>> 0 > this.sLimit[CS]) this.gp(0);
      this.rip = lo >>> 0;
    }
  }

  /** JMP ptr16:16/32 or JMP m16:16/32/64 (SDM Vol. 2A JMP). */
  farJump(sel: number, offLo: number, offHi: number): void {
    if (!this.pe || this.v86) {
      this.loadSeg(CS, sel);
      this.rip = offLo >>> 0;
      return;
    }
    if (this.isCallGate(sel)) {
      this.throughGate(sel, false, 0, 0, 0);
      return;
    }
    const attr = this.checkCodeDesc(sel, 0);
    const dpl = (attr >> 5) & 3;
    const rpl = sel & 3;
    if (attr & SegAttr.DC) {
      if (dpl > this.cpl) this.gp(sel & 0xfffc);
    } else if (rpl > this.cpl || dpl !== this.cpl) this.gp(sel & 0xfffc);
    if ((attr & SegAttr.P) === 0) this.fault(Vector.NP, sel & 0xfffc);
    this.checkFarTarget(attr, offLo, offHi);
    this.loadCs(sel, attr, this.cpl);
    this.setFarRip(offLo, offHi);
  }

  /** Whether a selector names a call gate (peeks at the descriptor; faults as a CS load would). */
  private isCallGate(sel: number): boolean {
    if ((sel & 0xfffc) === 0) return false;
    if (!this.readDescriptor(sel)) this.gp(sel & 0xfffc);
    const a = this.descAttr();
    if (a & SegAttr.S) return false;
    const t = a & 0xf;
    if (this.lma) return t === SysType.CALL_GATE;
    return t === SysType.CALL_GATE || t === SysType.CALL_GATE16;
  }

  /**
   * Far CALL/JMP through a call gate (SDM Vol. 3A 5.8.3-5.8.6, 5.8.3.1 for IA-32e mode): checks,
   * an inner-privilege CALL switches to the TSS stack and copies the gate's parameters.
   */
  private throughGate(sel: number, call: boolean, _osz: number, retLo: number, retHi: number): void {
    const wide = this.lma;
    if (!this.readDescriptor(sel, wide)) this.gp(sel & 0xfffc);
    const lo = this.dLo,
      hi = this.dHi;
    const gdpl = (hi >>> 13) & 3;
    if (gdpl < this.cpl || gdpl < (sel & 3)) this.gp(sel & 0xfffc);
    if ((hi & 0x8000) === 0) this.fault(Vector.NP, sel & 0xfffc);
    if (wide && ((this.dHi2 >>> 8) & 0x1f) !== 0) this.gp(sel & 0xfffc);
    const gate32 = ((hi >>> 8) & 0xf) === SysType.CALL_GATE;
    const params = hi & 0x1f;
    const csSel = lo >>> 16;
    const offLo = gate32 ? (lo & 0xffff) | (hi & 0xffff0000) : lo & 0xffff;
    const offHi = wide ? this.dHi2 : 0;
    if ((csSel & 0xfffc) === 0) this.gp(0);
    if (!this.readDescriptor(csSel)) this.gp(csSel & 0xfffc);
    const attr = this.descAttr();
    const dpl = (attr >> 5) & 3;
    if ((attr & 0x18) !== 0x18 || dpl > this.cpl) this.gp(csSel & 0xfffc);
    if (wide && (!(attr & SegAttr.L) || attr & SegAttr.DB)) this.gp(csSel & 0xfffc);
    if ((attr & SegAttr.P) === 0) this.fault(Vector.NP, csSel & 0xfffc);
    const conforming = (attr & SegAttr.DC) !== 0;
    if (!call) {
      if (!conforming && dpl !== this.cpl) this.gp(csSel & 0xfffc);
      this.checkFarTarget(attr, offLo, offHi);
      this.loadCs(csSel, attr, this.cpl);
      this.setFarRip(offLo, offHi);
      return;
    }
    const csLo = this.dLo,
      csHi = this.dHi,
      csAddr = this.dAddr;
    const size = wide ? 8 : gate32 ? 4 : 2;
    const oldCs = this.sSel[CS];
    if (conforming || dpl === this.cpl) {
      const save = this.rl[4],
        saveh = this.rh[4];
      try {
        this.push(oldCs, 0, size);
        this.push(retLo, retHi, size);
      } catch (e) {
        this.rl[4] = save;
        this.rh[4] = saveh;
        throw e;
      }
      this.dLo = csLo;
      this.dHi = csHi;
      this.dAddr = csAddr;
      this.checkFarTarget(attr, offLo, offHi);
      this.loadCs(csSel, attr, this.cpl);
      this.setFarRip(offLo, offHi);
      return;
    }
    // More privileged: new stack from the TSS.
    const oldSs = this.sSel[SS],
      oldSpLo = this.rl[4],
      oldSpHi = this.rh[4];
    if (wide) {
      const off = 4 + dpl * 8;
      if (off + 7 > this.trLimit) this.fault(Vector.TS, this.trSel & 0xfffc);
      let sl = this.sysRead32((this.trBase + off) % TWO48);
      let sh = this.sysRead32((this.trBase + off + 4) % TWO48);
      const frame = [oldSs, oldSpLo, oldCs, retLo];
      const frameHi = [0, oldSpHi, 0, retHi];
      for (let k = 0; k < 4; k++) {
        const x = (sl >>> 0) - 8;
        if (x < 0) sh = (sh - 1) | 0;
        sl = x | 0;
        if ((sh + 0x8000) >>> 16 !== 0) this.fault(Vector.SS, 0);
        this.implicitAccess = true;
        try {
          this.writeSlow((sh & 0xffff) * TWO32 + (sl >>> 0), 8, frame[k], frameHi[k]);
        } finally {
          this.implicitAccess = false;
        }
      }
      this.dLo = csLo;
      this.dHi = csHi;
      this.dAddr = csAddr;
      this.checkFarTarget(attr, offLo, offHi);
      this.setSeg(SS, dpl, 0, 0, SegAttr.UNUSABLE | (dpl << 5) | SegAttr.DB);
      this.loadCs(csSel, attr, dpl);
      this.rl[4] = sl;
      this.rh[4] = sh;
      this.setFarRip(offLo, offHi);
      return;
    }
    const st = this.tssStack(dpl, 0);
    this.checkStackSeg(st.sel, dpl, attr, 0);
    const ssAttr = this.descAttr(),
      ssBase = this.descBase(),
      ssLimit = this.descLimit();
    const ssLo = this.dLo,
      ssHi = this.dHi,
      ssAddr = this.dAddr;
    const b32 = (ssAttr & SegAttr.DB) !== 0;
    // Parameters come from the old stack (read before anything changes).
    const args: number[] = [];
    for (let i = params - 1; i >= 0; i--) {
      const off = this.ss32 ? (oldSpLo + i * size) >>> 0 : (oldSpLo + i * size) & 0xffff;
      args.push(this.readN(this.segLin(SS, off, 0, size, false), size));
    }
    let sp = b32 ? st.sp : st.sp & 0xffff;
    const w = (v: number): void => {
      sp = b32 ? (sp - size) >>> 0 : (sp - size) & 0xffff;
      this.implicitAccess = true;
      try {
        this.writeSlow((ssBase + sp) % TWO32, size, v, 0);
      } finally {
        this.implicitAccess = false;
      }
    };
    w(oldSs);
    w(oldSpLo);
    for (const a of args) w(a);
    w(oldCs);
    w(retLo);
    if (offLo >>> 0 > this.descLimitOf(csHi, csLo)) this.gp(0);
    this.dLo = ssLo;
    this.dHi = ssHi;
    this.dAddr = ssAddr;
    this.markAccessed();
    this.setSeg(SS, (st.sel & 0xfffc) | dpl, ssBase, ssLimit, ssAttr | SegAttr.ACCESSED);
    this.rl[4] = b32 ? sp | 0 : (this.rl[4] & ~0xffff) | sp;
    this.dLo = csLo;
    this.dHi = csHi;
    this.dAddr = csAddr;
    this.loadCs(csSel, attr, dpl);
    this.rip = offLo >>> 0;
  }

  private descLimitOf(hi: number, lo: number): number {
    const raw = (lo & 0xffff) | (hi & 0xf0000);
    return hi & 0x800000 ? ((raw << 12) | 0xfff) >>> 0 : raw;
  }

  /** The target offset must fit the new code segment (checked before anything changes). */
  private checkFarTarget(attr: number, lo: number, hi: number): void {
    if (this.lma && attr & SegAttr.L && !(attr & SegAttr.DB)) {
      if ((hi + 0x8000) >>> 16 !== 0) this.gp(0);
    } else if (lo >>> 0 > this.descLimit()) this.gp(0);
  }

  /** CALL far: push CS and the return offset with the operand size, then jump. */
  farCall(sel: number, offLo: number, offHi: number, osz: number, retLo: number, retHi: number): void {
    if (!this.pe || this.v86) {
      this.push(this.sSel[CS], 0, osz);
      this.push(retLo, retHi, osz);
      this.loadSeg(CS, sel);
      this.rip = offLo >>> 0;
      return;
    }
    if (this.isCallGate(sel)) {
      this.throughGate(sel, true, osz, retLo, retHi);
      return;
    }
    const attr = this.checkCodeDesc(sel, 0);
    const dpl = (attr >> 5) & 3;
    const rpl = sel & 3;
    if (attr & SegAttr.DC) {
      if (dpl > this.cpl) this.gp(sel & 0xfffc);
    } else if (rpl > this.cpl || dpl !== this.cpl) this.gp(sel & 0xfffc);
    if ((attr & SegAttr.P) === 0) this.fault(Vector.NP, sel & 0xfffc);
    this.checkFarTarget(attr, offLo, offHi);
    // Both pushes must succeed before CS changes.
    const saveLo = this.rl[4],
      saveHi = this.rh[4];
    try {
      this.push(this.sSel[CS], 0, osz);
      this.push(retLo, retHi, osz);
    } catch (e) {
      this.rl[4] = saveLo;
      this.rh[4] = saveHi;
      throw e;
    }
    this.loadCs(sel, attr, this.cpl);
    this.setFarRip(offLo, offHi);
  }

  /** RETF [imm16] (SDM Vol. 2B RET: protected-mode and IA-32e paths). */
  farReturn(osz: number, imm: number): void {
    const saveLo = this.rl[4],
      saveHi = this.rh[4];
    try {
      const ipLo = this.pop(osz);
      const ipHi = osz === 8 ? this.hi : 0;
      const sel = this.pop(osz) & 0xffff;
      if (!this.pe || this.v86) {
        this.loadSeg(CS, sel);
        this.rip = ipLo >>> 0;
        this.addSp(imm);
        return;
      }
      const rpl = sel & 3;
      if (rpl < this.cpl) this.gp(sel & 0xfffc);
      const attr = this.checkCodeDesc(sel, 0);
      const dpl = (attr >> 5) & 3;
      if (attr & SegAttr.DC ? dpl > rpl : dpl !== rpl) this.gp(sel & 0xfffc);
      if ((attr & SegAttr.P) === 0) this.fault(Vector.NP, sel & 0xfffc);
      this.checkFarTarget(attr, ipLo, ipHi);
      if (rpl === this.cpl) {
        this.loadCs(sel, attr, rpl);
        this.setFarRip(ipLo, ipHi);
        this.addSp(imm);
        return;
      }
      // Return to an outer privilege level: SS:RSP follow the immediate-adjusted stack.
      this.addSp(imm);
      const spLo = this.pop(osz);
      const spHi = osz === 8 ? this.hi : 0;
      const ssSel = this.pop(osz) & 0xffff;
      const csDlo = this.dLo,
        csDhi = this.dHi,
        csAddr = this.dAddr;
      this.checkStackSeg(ssSel, rpl, attr, 0);
      const ssLo = this.dLo,
        ssHi = this.dHi,
        ssAddr = this.dAddr;
      this.dLo = csDlo;
      this.dHi = csDhi;
      this.dAddr = csAddr;
      this.loadCs(sel, attr, rpl);
      this.setFarRip(ipLo, ipHi);
      this.loadSsFrom(ssSel, ssLo, ssHi, ssAddr, rpl);
      this.setSp(spLo, spHi, osz);
      this.addSp(imm);
      this.nullifyDataSegs();
    } catch (e) {
      this.rl[4] = saveLo;
      this.rh[4] = saveHi;
      throw e;
    }
  }

  /** Check a stack-segment selector for a privilege change to `cpl` (leaves its descriptor in d*). */
  private checkStackSeg(sel: number, cpl: number, csAttr: number, ext: number): void {
    if ((sel & 0xfffc) === 0) {
      // 64-bit mode may return to a null SS when the new CS is 64-bit and CPL < 3.
      if (this.lma && csAttr & SegAttr.L && cpl !== 3) {
        this.dLo = 0;
        this.dHi = -1;
        return;
      }
      this.gp(ext);
    }
    if ((sel & 3) !== cpl) this.gp((sel & 0xfffc) | ext);
    if (!this.readDescriptor(sel)) this.gp((sel & 0xfffc) | ext);
    const attr = this.descAttr();
    if ((attr & 0x1a) !== 0x12 || ((attr >> 5) & 3) !== cpl) this.gp((sel & 0xfffc) | ext);
    if ((attr & SegAttr.P) === 0) this.fault(Vector.SS, (sel & 0xfffc) | ext);
  }

  private loadSsFrom(sel: number, lo: number, hi: number, addr: number, cpl: number): void {
    if (hi === -1 && lo === 0) {
      this.setSeg(SS, sel, 0, 0, SegAttr.UNUSABLE | (cpl << 5));
      this.updateMode();
      return;
    }
    this.dLo = lo;
    this.dHi = hi;
    this.dAddr = addr;
    this.markAccessed();
    this.setSeg(SS, sel, this.descBase(), this.descLimit(), this.descAttr() | SegAttr.ACCESSED);
    this.updateMode();
  }

  /** After a return to an outer level: data segments the new CPL may not use become null. */
  private nullifyDataSegs(): void {
    for (const s of [ES, DS, FS, GS]) {
      const a = this.sAttr[s];
      if (a & SegAttr.UNUSABLE) continue;
      const dpl = (a >> 5) & 3;
      const confCode = (a & 0xc) === 0xc;
      if (!confCode && dpl < this.cpl) this.setSeg(s, 0, 0, 0, SegAttr.UNUSABLE);
    }
  }

  // =============================================================================================
  // Stack
  // =============================================================================================

  /** Push a value of `size` bytes (2, 4 or 8) on SS:RSP. Memory first, then RSP. */
  push(lo: number, hi: number, size: number): void {
    if (this.mode64) {
      const old = this.rl[4];
      const nl = (old - size) | 0;
      if (this.cpl === 3 && nl & (size - 1) && this.cr0 & CR0.AM && this.fl & RFLAGS.AC)
        this.fault(Vector.AC, 0);
      const nh = old >>> 0 < size ? (this.rh[4] - 1) | 0 : this.rh[4];
      if ((nh + 0x8000) >>> 16 !== 0) this.fault(Vector.SS, 0);
      const lin = (nh & 0xffff) * TWO32 + (nl >>> 0);
      if (size === 8) this.write64(lin, lo, hi);
      else if (size === 4) this.write32(lin, lo);
      else this.write16(lin, lo);
      this.rl[4] = nl;
      this.rh[4] = nh;
      return;
    }
    if (this.ss32) {
      const nsp = (this.rl[4] - size) | 0;
      const lin = this.segLin(SS, nsp, 0, size, true);
      this.writeN(lin, size, lo, hi);
      this.rl[4] = nsp;
    } else {
      const nsp = (this.rl[4] - size) & 0xffff;
      const lin = this.segLin(SS, nsp, 0, size, true);
      this.writeN(lin, size, lo, hi);
      this.rl[4] = (this.rl[4] & ~0xffff) | nsp;
    }
  }

  /** Pop `size` bytes; returns the low half (`hi` gets the high half for size 8). */
  pop(size: number): number {
    if (this.mode64) {
      const sl = this.rl[4],
        sh = this.rh[4];
      if ((sh + 0x8000) >>> 16 !== 0) this.fault(Vector.SS, 0);
      if (this.cpl === 3 && sl & (size - 1) && this.cr0 & CR0.AM && this.fl & RFLAGS.AC)
        this.fault(Vector.AC, 0);
      const v = this.readN((sh & 0xffff) * TWO32 + (sl >>> 0), size);
      const h = this.hi;
      const nl = (sl + size) | 0;
      this.rl[4] = nl;
      if (nl >>> 0 < size) this.rh[4] = (sh + 1) | 0;
      this.hi = h;
      return v;
    }
    if (this.ss32) {
      const sp = this.rl[4];
      const v = this.readN(this.segLin(SS, sp, 0, size, false), size);
      this.rl[4] = (sp + size) | 0;
      return v;
    }
    const sp = this.rl[4] & 0xffff;
    const v = this.readN(this.segLin(SS, sp, 0, size, false), size);
    this.rl[4] = (this.rl[4] & ~0xffff) | ((sp + size) & 0xffff);
    return v;
  }

  /** Read the stack at RSP + offset without popping (for ENTER/IRET checks). */
  addSp(n: number): void {
    if (n === 0) return;
    if (this.mode64) {
      const s = (this.rl[4] >>> 0) + n;
      this.rl[4] = s | 0;
      if (s >= TWO32) this.rh[4] = (this.rh[4] + 1) | 0;
    } else if (this.ss32) this.rl[4] = (this.rl[4] + n) | 0;
    else this.rl[4] = (this.rl[4] & ~0xffff) | ((this.rl[4] + n) & 0xffff);
  }

  private setSp(lo: number, hi: number, osz: number): void {
    if (this.mode64 || osz === 8) {
      this.rl[4] = lo;
      this.rh[4] = osz === 8 ? hi : 0;
    } else if (this.ss32) {
      this.rl[4] = lo;
      this.rh[4] = 0;
    } else this.rl[4] = (this.rl[4] & ~0xffff) | (lo & 0xffff);
  }

  // =============================================================================================
  // Events: exceptions, interrupts (SDM Vol. 3A chapter 6)
  // =============================================================================================

  /** The vector being delivered (for #DF promotion), or -1. */
  private delivering = -1;

  /**
   * Deliver an exception raised by an instruction (RIP already points at it for faults, after it
   * for traps). Applies the double-fault rules of SDM Table 6-5 and stops on a triple fault.
   */
  raiseException(vec: number, err: number, type: EventType, length: number): void {
    // A fault while delivering a software interrupt is reported at the INT instruction itself.
    let faultRip =
      type === EventType.HardwareException || type === EventType.External || type === EventType.Nmi
        ? this._rip
        : this._rip - length;
    for (;;) {
      const first = this.delivering;
      if (first >= 0) {
        if (first === Vector.DF) {
          this.tripleFault(`exception ${VECTOR_NAMES[vec] ?? vec} while delivering #DF`);
          return;
        }
        const firstContrib = ((CONTRIBUTORY_MASK >> first) & 1) !== 0;
        const secondContrib = ((CONTRIBUTORY_MASK >> vec) & 1) !== 0;
        if (
          (firstContrib && secondContrib) ||
          (first === Vector.PF && (secondContrib || vec === Vector.PF))
        ) {
          vec = Vector.DF;
          err = 0;
          type = EventType.HardwareException;
        }
      }
      this.delivering = vec;
      try {
        this.deliverEvent(vec, type, err, length);
        this.delivering = -1;
        return;
      } catch (e) {
        if (e !== FAULT) {
          this.delivering = -1;
          throw e;
        }
        if (this.fVec < 0) {
          // A second-stage hook took over during delivery.
          this.delivering = -1;
          return;
        }
        vec = this.fVec;
        err = this.fErr;
        type = EventType.HardwareException;
        length = 0;
        this._rip = faultRip;
        faultRip = this._rip;
      }
    }
  }

  tripleFault(why: string): void {
    this.delivering = -1;
    if (this.hooks.tripleFault !== null && this.hooks.tripleFault()) return;
    this.shutdown = true;
    this.halted = true;
    this.eventCheck = true;
    this.onTripleFault?.(`triple fault: ${why}`);
  }

  /**
   * Deliver one event through the IVT/IDT. `length` is the instruction length of software
   * interrupts and exceptions (RIP is already past the instruction for those).
   */
  deliverEvent(vec: number, type: EventType, err: number, length: number): void {
    const hw = type === EventType.HardwareException;
    const exc = hw || type === EventType.SoftwareException || type === EventType.PrivilegedSoftwareException;
    if (
      exc &&
      vec < 32 &&
      ((this.hooks.exceptionBitmap >>> vec) & 1) !== 0 &&
      this.hooks.exception !== null
    ) {
      const ev = this.excEvent;
      ev.vector = vec;
      ev.type = type;
      ev.errorCode = err;
      ev.address = vec === Vector.PF ? this.canonicalOf(this.fAddr) : 0;
      ev.length = length;
      if (this.hooks.exception(ev)) return;
    }
    if (hw) {
      this.counters.exceptions++;
      if (vec === Vector.PF) this.cr2 = this.canonicalOf(this.fAddr);
      if (((HAS_ERROR_CODE_MASK >>> vec) & 1) === 0 || !this.pe) err = -1;
    } else this.counters.interrupts++;
    // An event ends the interrupt shadow and a HLT.
    this.shadow = 0;
    this.halted = false;
    const ext =
      type === EventType.SoftwareInterrupt ||
      type === EventType.SoftwareException ||
      type === EventType.PrivilegedSoftwareException
        ? 0
        : 1;
    const soft = type === EventType.SoftwareInterrupt || type === EventType.SoftwareException;
    if (!this.pe) this.realModeEvent(vec);
    else if (this.lma) this.longModeEvent(vec, err, ext, soft);
    else this.protModeEvent(vec, err, ext, soft);
    if (type === EventType.Nmi) this.nmiBlocked = true;
  }

  /** Sign-extend a 48-bit linear address to the 64-bit value (as a signed double). */
  canonicalOf(lin: number): number {
    if (!this.lma) return lin;
    return lin >= 140737488355328 ? lin - TWO48 : lin;
  }

  private realModeEvent(vec: number): void {
    if (vec * 4 + 3 > this.idtrLimit) this.gp(vec * 8 + 2);
    const entry = this.read32((this.idtrBase + vec * 4) % TWO32);
    const flags = this.getFlags() & 0xffff;
    const saveSp = this.rl[4];
    try {
      this.push(flags, 0, 2);
      this.push(this.sSel[CS], 0, 2);
      this.push(this.rip & 0xffff, 0, 2);
    } catch (e) {
      this.rl[4] = saveSp;
      throw e;
    }
    this.fl &= ~(RFLAGS.IF | RFLAGS.TF | RFLAGS.AC | RFLAGS.RF);
    this.loadSeg(CS, entry >>> 16);
    this.rip = entry & 0xffff;
  }

  /** Read a gate (8 or 16 bytes) from the IDT into gLo/gHi/gLo2. */
  private gLo = 0;
  private gHi = 0;
  private gLo2 = 0;

  private readGate(vec: number, ext: number, wide: boolean): void {
    const size = wide ? 16 : 8;
    if (vec * size + size - 1 > this.idtrLimit) this.gp(vec * 8 + 2 + ext);
    const a = this.idtrBase + vec * size;
    const lin = this.lma ? a % TWO48 : a % TWO32;
    this.gLo = this.sysRead32(lin);
    this.gHi = this.sysRead32(lin + 4);
    if (wide) this.gLo2 = this.sysRead32(lin + 8);
  }

  /** Stack pointer for privilege level `dpl` from the current TSS (32- or 16-bit TSS). */
  private tssStack(dpl: number, ext: number): { sel: number; sp: number } {
    const t = this.trAttr & 0xf;
    if ((this.trAttr & SegAttr.UNUSABLE) !== 0) this.fault(Vector.TS, ext);
    if (t === SysType.TSS_AVAIL || t === SysType.TSS_BUSY) {
      const off = 4 + dpl * 8;
      if (off + 5 > this.trLimit) this.fault(Vector.TS, (this.trSel & 0xfffc) | ext);
      const sp = this.sysRead32((this.trBase + off) % TWO32) >>> 0;
      const sel = this.sysRead16((this.trBase + off + 4) % TWO32);
      return { sel, sp };
    }
    const off = 2 + dpl * 4;
    if (off + 3 > this.trLimit) this.fault(Vector.TS, (this.trSel & 0xfffc) | ext);
    const sp = this.sysRead16((this.trBase + off) % TWO32);
    const sel = this.sysRead16((this.trBase + off + 2) % TWO32);
    return { sel, sp };
  }

  private protModeEvent(vec: number, err: number, ext: number, soft: boolean): void {
    if (this.v86) {
      this.note(this.unimplemented, 'interrupt from virtual-8086 mode');
      this.gp(0);
    }
    this.readGate(vec, ext, false);
    const lo = this.gLo,
      hi = this.gHi;
    const gtype = (hi >>> 8) & 0x1f;
    const gdpl = (hi >>> 13) & 3;
    const idtErr = vec * 8 + 2 + ext;
    if (gtype === SysType.TASK_GATE) {
      this.note(this.unimplemented, 'task gate in the IDT');
      this.gp(idtErr);
    }
    if (gtype !== 6 && gtype !== 7 && gtype !== 14 && gtype !== 15) this.gp(idtErr);
    if (soft && gdpl < this.cpl) this.gp(idtErr);
    if ((hi & 0x8000) === 0) this.fault(Vector.NP, idtErr);
    const gate32 = (gtype & 8) !== 0;
    const trap = (gtype & 1) !== 0;
    const sel = lo >>> 16;
    const offset = gate32 ? ((lo & 0xffff) | (hi & 0xffff0000)) >>> 0 : lo & 0xffff;
    if ((sel & 0xfffc) === 0) this.gp(ext);
    if (!this.readDescriptor(sel)) this.gp((sel & 0xfffc) | ext);
    const attr = this.descAttr();
    const dpl = (attr >> 5) & 3;
    if ((attr & 0x18) !== 0x18 || dpl > this.cpl) this.gp((sel & 0xfffc) | ext);
    if ((attr & SegAttr.P) === 0) this.fault(Vector.NP, (sel & 0xfffc) | ext);
    const csLo = this.dLo,
      csHi = this.dHi,
      csAddr = this.dAddr;
    if (offset > this.descLimit()) this.gp(ext);
    const size = gate32 ? 4 : 2;
    const flags = this.getFlags();
    const retIp = this.rip >>> 0;
    const oldCs = this.sSel[CS];
    const conforming = (attr & SegAttr.DC) !== 0;
    if (!conforming && dpl < this.cpl) {
      // Inner privilege: switch to the TSS stack of the target level.
      const st = this.tssStack(dpl, ext);
      this.checkStackSeg(st.sel, dpl, attr, ext);
      const ssAttr = this.descAttr();
      const ssBase = this.descBase();
      const ssLimit = this.descLimit();
      const ssLo = this.dLo,
        ssHi = this.dHi,
        ssAddr = this.dAddr;
      const b32 = (ssAttr & SegAttr.DB) !== 0;
      const frame = size * (err >= 0 ? 6 : 5);
      let sp = b32 ? st.sp : st.sp & 0xffff;
      const newTop = (sp - frame) >>> 0;
      if (!(ssAttr & SegAttr.DC) && (b32 ? newTop : newTop & 0xffff) + frame - 1 > ssLimit)
        this.fault(Vector.SS, (st.sel & 0xfffc) | ext);
      const oldSs = this.sSel[SS];
      const oldSp = this.rl[4];
      const w = (v: number): void => {
        sp = b32 ? (sp - size) >>> 0 : (sp - size) & 0xffff;
        this.implicitAccess = true;
        try {
          this.writeSlow((ssBase + sp) % TWO32, size, v, 0);
        } finally {
          this.implicitAccess = false;
        }
      };
      w(oldSs);
      w(oldSp);
      w(flags);
      w(oldCs);
      w(retIp);
      if (err >= 0) w(err);
      this.dLo = ssLo;
      this.dHi = ssHi;
      this.dAddr = ssAddr;
      this.markAccessed();
      this.setSeg(SS, (st.sel & 0xfffc) | dpl, ssBase, ssLimit, ssAttr | SegAttr.ACCESSED);
      this.rl[4] = b32 ? sp | 0 : (this.rl[4] & ~0xffff) | sp;
      this.dLo = csLo;
      this.dHi = csHi;
      this.dAddr = csAddr;
      this.loadCs(sel, attr, dpl);
    } else if (conforming || dpl === this.cpl) {
      const save = this.rl[4];
      try {
        this.push(flags, 0, size);
        this.push(oldCs, 0, size);
        this.push(retIp, 0, size);
        if (err >= 0) this.push(err, 0, size);
      } catch (e) {
        this.rl[4] = save;
        throw e;
      }
      this.dLo = csLo;
      this.dHi = csHi;
      this.dAddr = csAddr;
      this.loadCs(sel, attr, this.cpl);
    } else this.gp((sel & 0xfffc) | ext);
    this.rip = offset;
    this.flushFlags();
    this.fl &= ~(RFLAGS.TF | RFLAGS.NT | RFLAGS.RF | RFLAGS.VM);
    if (!trap) this.fl &= ~RFLAGS.IF;
    this.updateMode();
  }

  private longModeEvent(vec: number, err: number, ext: number, soft: boolean): void {
    this.readGate(vec, ext, true);
    const lo = this.gLo,
      hi = this.gHi;
    const gtype = (hi >>> 8) & 0x1f;
    const gdpl = (hi >>> 13) & 3;
    const idtErr = vec * 8 + 2 + ext;
    if (gtype !== 14 && gtype !== 15) this.gp(idtErr);
    if (soft && gdpl < this.cpl) this.gp(idtErr);
    if ((hi & 0x8000) === 0) this.fault(Vector.NP, idtErr);
    const sel = lo >>> 16;
    const offLo = (lo & 0xffff) | (hi & 0xffff0000) | 0;
    const offHi = this.gLo2;
    const ist = hi & 7;
    if ((sel & 0xfffc) === 0) this.gp(ext);
    if (!this.readDescriptor(sel)) this.gp((sel & 0xfffc) | ext);
    const attr = this.descAttr();
    const dpl = (attr >> 5) & 3;
    if ((attr & 0x18) !== 0x18 || dpl > this.cpl || !(attr & SegAttr.L) || attr & SegAttr.DB) {
      this.gp((sel & 0xfffc) | ext);
    }
    if ((attr & SegAttr.P) === 0) this.fault(Vector.NP, (sel & 0xfffc) | ext);
    if ((offHi + 0x8000) >>> 16 !== 0) this.gp(ext);
    const conforming = (attr & SegAttr.DC) !== 0;
    const newCpl = conforming ? this.cpl : dpl;
    if (!conforming && dpl > this.cpl) this.gp((sel & 0xfffc) | ext);
    let spLo: number, spHi: number;
    if (ist !== 0 || newCpl < this.cpl) {
      const off = ist !== 0 ? 0x24 + (ist - 1) * 8 : 4 + newCpl * 8;
      if (off + 7 > this.trLimit) this.fault(Vector.TS, (this.trSel & 0xfffc) | ext);
      spLo = this.sysRead32((this.trBase + off) % TWO48);
      spHi = this.sysRead32((this.trBase + off + 4) % TWO48);
      if ((spHi + 0x8000) >>> 16 !== 0) this.fault(Vector.SS, ext);
    } else {
      spLo = this.rl[4];
      spHi = this.rh[4];
    }
    spLo &= ~0xf;
    const flags = this.getFlags();
    const frameLo = [this.sSel[SS], this.rl[4], flags, this.sSel[CS], this.rip >>> 0, err];
    const frameHi = [0, this.rh[4], 0, 0, Math.floor(this.rip / TWO32) | 0, 0];
    const n = err >= 0 ? 6 : 5;
    // Write the frame from the top down: SS, RSP, RFLAGS, CS, RIP, error code.
    let sl = spLo,
      sh = spHi;
    for (let k = 0; k < n; k++) {
      const nl = (sl - 8) | 0;
      if (sl >>> 0 < 8) sh = (sh - 1) | 0;
      sl = nl;
      if ((sh + 0x8000) >>> 16 !== 0) this.fault(Vector.SS, ext);
      const lin = (sh & 0xffff) * TWO32 + (sl >>> 0);
      this.implicitAccess = newCpl < 3;
      try {
        // The frame is written with the new privilege (supervisor if the target CPL < 3).
        if (newCpl < 3 && this.cpl === 3) {
          this.implicitAccess = true;
          this.writeSlow(lin, 8, frameLo[k], frameHi[k]);
        } else this.write64(lin, frameLo[k], frameHi[k]);
      } finally {
        this.implicitAccess = false;
      }
    }
    if (newCpl < this.cpl) {
      // SS becomes a null selector with RPL = new CPL (SDM 6.14.4).
      this.setSeg(SS, newCpl, 0, 0, SegAttr.UNUSABLE | (newCpl << 5) | SegAttr.DB);
    }
    this.loadCs(sel, attr, newCpl);
    this.rl[4] = sl;
    this.rh[4] = sh;
    this.rip = offHi * TWO32 + (offLo >>> 0);
    this.flushFlags();
    this.fl &= ~(RFLAGS.TF | RFLAGS.NT | RFLAGS.RF | RFLAGS.VM);
    if ((gtype & 1) === 0) this.fl &= ~RFLAGS.IF;
    this.updateMode();
  }

  /**
   * The IRET being executed unblocked NMIs. It stays set when the IRET faults, until the fault is
   * delivered or taken by a hook: VMX reports it in the exit information of a fault or an EPT
   * violation during the IRET ("NMI unblocking due to IRET", SDM Vol. 3C 27.2.2, 27.2.3).
   */
  iretUnblockedNmi = false;

  /** IRET / IRETD / IRETQ (SDM Vol. 2A IRET). */
  iret(osz: number): void {
    const saveLo = this.rl[4],
      saveHi = this.rh[4];
    // IRET unblocks NMIs even when it faults (SDM Vol. 3A 6.7.1).
    this.iretUnblockedNmi = this.nmiBlocked;
    this.nmiBlocked = false;
    this.eventCheck = true;
    try {
      this.iretInner(osz);
    } catch (e) {
      this.rl[4] = saveLo;
      this.rh[4] = saveHi;
      throw e;
    }
    this.iretUnblockedNmi = false;
  }

  private iretInner(osz: number): void {
    if (!this.pe) {
      const ip = this.pop(osz);
      const cs = this.pop(osz) & 0xffff;
      const fl = this.pop(osz);
      this.loadSeg(CS, cs);
      this.rip = osz === 2 ? ip & 0xffff : ip >>> 0;
      // Real mode: VM, VIF and VIP are kept (SDM IRET, REAL-ADDRESS-MODE).
      const mask = osz === 2 ? 0x7fd5 : 0x257fd5;
      this.flushFlags();
      this.fl = (this.fl & ~mask) | (fl & mask) | 2;
      return;
    }
    if (this.v86) {
      this.note(this.unimplemented, 'IRET in virtual-8086 mode');
      this.gp(0);
    }
    if (this.fl & RFLAGS.NT) {
      if (this.lma) this.gp(0);
      this.note(this.unimplemented, 'IRET with NT=1 (task return)');
      this.gp(0);
    }
    const ipLo = this.pop(osz);
    const ipHi = osz === 8 ? this.hi : 0;
    const sel = this.pop(osz) & 0xffff;
    const nfl = this.pop(osz);
    if (!this.lma && nfl & RFLAGS.VM && osz === 4 && this.cpl === 0) {
      this.note(this.unimplemented, 'IRET to virtual-8086 mode');
      this.gp(0);
    }
    const rpl = sel & 3;
    if (rpl < this.cpl) this.gp(sel & 0xfffc);
    const attr = this.checkCodeDesc(sel, 0);
    const dpl = (attr >> 5) & 3;
    if (attr & SegAttr.DC ? dpl > rpl : dpl !== rpl) this.gp(sel & 0xfffc);
    if ((attr & SegAttr.P) === 0) this.fault(Vector.NP, sel & 0xfffc);
    const oldCpl = this.cpl;
    const popStack = rpl > this.cpl || this.mode64;
    let spLo = 0,
      spHi = 0,
      ssSel = 0,
      ssLo = 0,
      ssHi = 0,
      ssAddr = 0;
    const csLo = this.dLo,
      csHi = this.dHi,
      csAddr = this.dAddr;
    if (popStack) {
      spLo = this.pop(osz);
      spHi = osz === 8 ? this.hi : 0;
      ssSel = this.pop(osz) & 0xffff;
      if (rpl !== this.cpl || (ssSel & 0xfffc) !== 0 || !this.mode64) {
        this.checkStackSeg(ssSel, rpl, attr, 0);
      } else {
        // Same level in 64-bit mode: a null SS is allowed (with RPL = CPL).
        if ((ssSel & 3) !== rpl) this.gp(ssSel & 0xfffc);
        this.dLo = 0;
        this.dHi = -1;
      }
      ssLo = this.dLo;
      ssHi = this.dHi;
      ssAddr = this.dAddr;
      this.dLo = csLo;
      this.dHi = csHi;
      this.dAddr = csAddr;
    }
    this.checkFarTarget(attr, ipLo, ipHi);
    this.loadCs(sel, attr, rpl);
    this.setFarRip(ipLo, ipHi);
    // RFLAGS: IOPL only at CPL 0, IF only when CPL <= IOPL (SDM IRET "EFLAGS update").
    let mask =
      RFLAGS.CF |
      RFLAGS.PF |
      RFLAGS.AF |
      RFLAGS.ZF |
      RFLAGS.SF |
      RFLAGS.TF |
      RFLAGS.DF |
      RFLAGS.OF |
      RFLAGS.NT;
    if (osz >= 4) mask |= RFLAGS.RF | RFLAGS.AC | RFLAGS.ID;
    if (oldCpl <= ((this.fl >> 12) & 3)) mask |= RFLAGS.IF;
    if (oldCpl === 0) {
      mask |= RFLAGS.IOPL;
      if (osz >= 4) mask |= RFLAGS.VIF | RFLAGS.VIP;
    }
    this.flushFlags();
    this.fl = (this.fl & ~mask) | (nfl & mask) | 2;
    if (popStack) {
      this.loadSsFrom(ssSel, ssLo, ssHi, ssAddr, rpl);
      this.setSp(spLo, spHi, osz);
      if (rpl > oldCpl) this.nullifyDataSegs();
    }
    this.updateMode();
  }

  // =============================================================================================
  // Fast system calls (SDM Vol. 2B SYSCALL/SYSRET/SYSENTER/SYSEXIT)
  // =============================================================================================

  syscall(nextRip: number): void {
    if (!this.mode64 || (this.efer & EFER.SCE) === 0) this.ud();
    const starHi = Number(this.star >> 32n) >>> 0;
    const csSel = starHi & 0xfffc;
    this.rl[1] = nextRip >>> 0;
    this.rh[1] = Math.floor(nextRip / TWO32) | 0;
    const f = this.getFlags() & ~RFLAGS.RF;
    this.rl[11] = f;
    this.rh[11] = 0;
    this.fl = (f & ~this.fmask & ~RFLAGS.RF) | 2;
    this.lfOp = 0;
    this.setSeg(CS, csSel, 0, 0xffffffff, FLAT_CODE64);
    this.setSeg(SS, (csSel + 8) & 0xffff, 0, 0xffffffff, FLAT_DATA);
    this.updateMode();
    this.rip = this.lstar;
  }

  sysret(rexW: boolean): void {
    if (!this.mode64 || (this.efer & EFER.SCE) === 0) this.ud();
    if (this.cpl !== 0) this.gp(0);
    const base = Number(this.star >> 48n) & 0xffff;
    if (rexW) {
      if ((this.rh[1] + 0x8000) >>> 16 !== 0) this.gp(0);
      this.setSeg(CS, ((base + 16) & 0xfffc) | 3, 0, 0xffffffff, FLAT_CODE64 | (3 << 5));
      this.rip = this.rh[1] * TWO32 + (this.rl[1] >>> 0);
    } else {
      this.setSeg(CS, (base & 0xfffc) | 3, 0, 0xffffffff, FLAT_CODE32 | (3 << 5));
      this.rip = this.rl[1] >>> 0;
    }
    this.fl = (this.rl[11] & 0x3c7fd7) | 2;
    this.lfOp = 0;
    // SS gets its selector with RPL 3; the hidden part is fixed (SDM SYSRET operation).
    this.setSeg(SS, ((base + 8) & 0xffff) | 3, 0, 0xffffffff, FLAT_DATA | (3 << 5));
    this.updateMode();
    this.eventCheck = true;
  }

  sysenter(): void {
    if (!this.pe || (this.sysenterCs & 0xfffc) === 0) this.gp(0);
    this.flushFlags();
    this.fl &= ~(RFLAGS.VM | RFLAGS.IF | RFLAGS.RF);
    const cs = this.sysenterCs & 0xfffc;
    this.setSeg(CS, cs, 0, 0xffffffff, this.lma ? FLAT_CODE64 : FLAT_CODE32);
    this.setSeg(SS, cs + 8, 0, 0xffffffff, FLAT_DATA);
    this.updateMode();
    if (this.lma) {
      this.rip = this.sysenterEip;
      this.rl[4] = this.sysenterEsp | 0;
      this.rh[4] = Math.floor(this.sysenterEsp / TWO32) | 0;
    } else {
      this.rip = this.sysenterEip >>> 0;
      this.rl[4] = this.sysenterEsp | 0;
    }
  }

  sysexit(rexW: boolean): void {
    if (!this.pe || (this.sysenterCs & 0xfffc) === 0 || this.cpl !== 0) this.gp(0);
    const cs = this.sysenterCs & 0xfffc;
    if (rexW) {
      if ((this.rh[2] + 0x8000) >>> 16 !== 0 || (this.rh[1] + 0x8000) >>> 16 !== 0) this.gp(0);
      this.setSeg(CS, (cs + 32) | 3, 0, 0xffffffff, FLAT_CODE64 | (3 << 5));
      this.setSeg(SS, (cs + 40) | 3, 0, 0xffffffff, FLAT_DATA | (3 << 5));
      this.rip = this.rh[2] * TWO32 + (this.rl[2] >>> 0);
      this.rl[4] = this.rl[1];
      this.rh[4] = this.rh[1];
    } else {
      this.setSeg(CS, (cs + 16) | 3, 0, 0xffffffff, FLAT_CODE32 | (3 << 5));
      this.setSeg(SS, (cs + 24) | 3, 0, 0xffffffff, FLAT_DATA | (3 << 5));
      this.rip = this.rl[2] >>> 0;
      this.rl[4] = this.rl[1];
      this.rh[4] = 0;
    }
    this.updateMode();
  }

  // =============================================================================================
  // Control registers (SDM Vol. 3A 2.5, MOV CR)
  // =============================================================================================

  writeCr0(lo: number, hi: number): void {
    if (hi !== 0) this.gp(0);
    let v = (lo | CR0.ET) >>> 0;
    if (v & CR0.PG && !(v & CR0.PE)) this.gp(0);
    if (v & CR0.NW && !(v & CR0.CD)) this.gp(0);
    const old = this.cr0;
    v &= 0xe005003f;
    if (v & CR0.PG && !(old & CR0.PG) && this.efer & EFER.LME) {
      // Activating IA-32e mode needs PAE and a non-64-bit CS (SDM 9.8.5).
      if (!(this.cr4 & CR4.PAE)) this.gp(0);
      if (this.sAttr[CS] & SegAttr.L) this.gp(0);
      this.efer |= EFER.LMA;
    }
    if (!(v & CR0.PG) && old & CR0.PG && this.lma) {
      if (this.mode64) this.gp(0);
      this.efer &= ~EFER.LMA;
    }
    // Enabling PAE paging outside IA-32e mode loads the PDPTEs (SDM 4.4.1).
    if (v & CR0.PG && !(old & CR0.PG) && this.cr4 & CR4.PAE && !(this.efer & EFER.LME))
      this.loadPdptes(this.cr3, true);
    this.cr0 = v | 0;
    if ((old ^ v) & (CR0.PG | CR0.WP | CR0.PE)) this.flushTlb();
    this.updateMode();
    this.refreshSegOk();
  }

  cr4Mask(): number {
    let m =
      CR4.TSD |
      CR4.DE |
      CR4.PSE |
      CR4.PAE |
      CR4.MCE |
      CR4.PGE |
      CR4.PCE |
      CR4.OSFXSR |
      CR4.OSXMMEXCPT |
      CR4.SMEP |
      CR4.SMAP;
    if (this.model.features.includes('vmx')) m |= CR4.VMXE;
    return m;
  }

  writeCr4(lo: number, hi: number): void {
    if (hi !== 0 || lo & ~this.cr4Mask()) this.gp(0);
    if (this.lma && !(lo & CR4.PAE)) this.gp(0);
    const old = this.cr4;
    const changed = old ^ lo;
    // Changing PAE, PGE, PSE or SMEP with PAE paging on reloads the PDPTEs (SDM 4.4.1).
    if (this.paging && !this.lma && lo & CR4.PAE && changed & (CR4.PAE | CR4.PGE | CR4.PSE | CR4.SMEP)) {
      this.loadPdptes(this.cr3, true);
    }
    this.cr4 = lo;
    if (changed & (CR4.PAE | CR4.PGE | CR4.PSE | CR4.SMEP | CR4.SMAP | CR4.PCIDE)) this.flushTlb();
  }

  /**
   * Load the four PDPTEs of PAE paging into the CPU (SDM 4.4.1): done at MOV CR3 and at the other
   * events above, not at each walk. A present entry with reserved bits set makes the loading
   * instruction #GP(0) (when `check`).
   */
  loadPdptes(cr3: number, check: boolean): void {
    const base = ((cr3 % TWO32) & 0xffffffe0) >>> 0;
    const lo = new Int32Array(4),
      hi = new Int32Array(4);
    for (let i = 0; i < 4; i++) {
      const a = this.stage2(base + i * 8, -1, false, false, true);
      lo[i] = this.bus.read(a, 4) | 0;
      hi[i] = this.bus.read(a + 4, 4) | 0;
      const rsvdHi = (0xfffff & ~((1 << (MAXPHYADDR - 32)) - 1)) | 0xfff00000;
      if (check && lo[i] & 1 && (lo[i] & 0x1e6 || hi[i] & rsvdHi)) this.gp(0);
    }
    this.pdpteLo.set(lo);
    this.pdpteHi.set(hi);
  }

  writeCr3(lo: number, hi: number): void {
    if (this.lma && hi & ~((1 << (MAXPHYADDR - 32)) - 1)) this.gp(0);
    const v = (this.lma ? (hi >>> 0) * TWO32 : 0) + (lo >>> 0);
    if (this.paging && !this.lma && this.cr4 & CR4.PAE) this.loadPdptes(v, true);
    this.cr3 = v;
    this.flushTlb(this.cr4 & CR4.PGE ? true : false);
  }

  writeEfer(lo: number, hi: number): void {
    const allowed = EFER.SCE | EFER.LME | EFER.LMA | EFER.NXE;
    if (hi !== 0 || lo & ~allowed) this.gp(0);
    if ((lo ^ this.efer) & EFER.LME && this.cr0 & CR0.PG) this.gp(0);
    const old = this.efer;
    this.efer = (lo & ~EFER.LMA) | (old & EFER.LMA);
    if ((old ^ this.efer) & EFER.NXE) this.flushTlb();
  }

  // =============================================================================================
  // MSRs (SDM Vol. 4)
  // =============================================================================================

  tsc(): number {
    return Math.floor((this.syncClock() * this.model.tscMhz) / 1000) + this.tscOffset;
  }

  /** RDMSR: returns false for an unknown MSR (the caller raises #GP(0)). Result in msrLo/msrHi. */
  msrLo = 0;
  msrHi = 0;

  private ret64(v: number): boolean {
    this.msrLo = v | 0;
    this.msrHi = Math.floor(v / TWO32) | 0;
    return true;
  }

  private retBig(v: bigint): boolean {
    this.msrLo = Number(v & 0xffffffffn) | 0;
    this.msrHi = Number((v >> 32n) & 0xffffffffn) | 0;
    return true;
  }

  readMsr(msr: number): boolean {
    const apic = this.apic;
    if (apic !== undefined && apic.handlesMsr(msr)) {
      const r = apic.readMsr(msr);
      this.msrLo = r.lo | 0;
      this.msrHi = r.hi | 0;
      return r.ok;
    }
    for (const h of this.msrHandlers) {
      if (msr >= h.first && msr <= h.last) {
        const r = h.read(msr);
        if (r === undefined) return false;
        this.msrLo = r[0] | 0;
        this.msrHi = r[1] | 0;
        return true;
      }
    }
    switch (msr) {
      case MSR.IA32_EFER:
        return this.ret64(this.efer);
      case MSR.IA32_STAR:
        return this.retBig(this.star);
      case MSR.IA32_LSTAR:
        return this.ret64(this.lstar);
      case MSR.IA32_CSTAR:
        return this.ret64(this.cstar);
      case MSR.IA32_FMASK:
        return this.ret64(this.fmask);
      case MSR.IA32_FS_BASE:
        this.msrLo = this.sBaseLo[FS];
        this.msrHi = this.sBaseHi[FS];
        return true;
      case MSR.IA32_GS_BASE:
        this.msrLo = this.sBaseLo[GS];
        this.msrHi = this.sBaseHi[GS];
        return true;
      case MSR.IA32_KERNEL_GS_BASE:
        return this.ret64(this.kernelGsBase);
      case MSR.IA32_TSC_AUX:
        return this.ret64(this.tscAux);
      case MSR.IA32_TIME_STAMP_COUNTER:
        return this.ret64(this.tsc());
      case MSR.IA32_SYSENTER_CS:
        return this.ret64(this.sysenterCs);
      case MSR.IA32_SYSENTER_ESP:
        return this.ret64(this.sysenterEsp);
      case MSR.IA32_SYSENTER_EIP:
        return this.ret64(this.sysenterEip);
      case MSR.IA32_PAT:
        return this.retBig(this.pat);
      case MSR.IA32_MTRRCAP:
      case MSR.IA32_MCG_CAP:
      case MSR.IA32_MCG_STATUS:
      case MSR.IA32_PLATFORM_ID:
      case MSR.IA32_BIOS_SIGN_ID:
        return this.ret64(0);
      default: {
        const v = this.msrStore.get(msr);
        if (v !== undefined) return this.retBig(v);
        if (this.isStoredMsr(msr)) return this.ret64(0);
        return false;
      }
    }
  }

  /** MSRs kept as plain storage (MTRRs, MISC_ENABLE): read back what was written. */
  private isStoredMsr(msr: number): boolean {
    return (
      msr === MSR.IA32_MISC_ENABLE ||
      msr === MSR.IA32_MTRR_DEF_TYPE ||
      (msr >= MSR.IA32_MTRR_PHYSBASE0 && msr < MSR.IA32_MTRR_PHYSBASE0 + 16) ||
      msr === MSR.IA32_MTRR_FIX64K_00000 ||
      msr === MSR.IA32_MTRR_FIX16K_80000 ||
      msr === MSR.IA32_MTRR_FIX16K_A0000 ||
      (msr >= MSR.IA32_MTRR_FIX4K_C0000 && msr <= MSR.IA32_MTRR_FIX4K_F8000)
    );
  }

  /** WRMSR: returns false when the write raises #GP (unknown MSR or invalid value). */
  writeMsr(msr: number, lo: number, hi: number): boolean {
    const apic = this.apic;
    if (apic !== undefined && apic.handlesMsr(msr)) return apic.writeMsr(msr, lo >>> 0, hi >>> 0);
    for (const h of this.msrHandlers) {
      if (msr >= h.first && msr <= h.last) return h.write(msr, lo, hi);
    }
    const canon = (hi + 0x8000) >>> 16 === 0;
    const num = (hi | 0) * TWO32 + (lo >>> 0);
    switch (msr) {
      case MSR.IA32_EFER:
        this.writeEfer(lo, hi);
        return true;
      case MSR.IA32_STAR:
        this.star = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
        return true;
      case MSR.IA32_LSTAR:
        if (!canon) return false;
        this.lstar = num;
        return true;
      case MSR.IA32_CSTAR:
        if (!canon) return false;
        this.cstar = num;
        return true;
      case MSR.IA32_FMASK:
        this.fmask = lo >>> 0;
        return true;
      case MSR.IA32_FS_BASE:
      case MSR.IA32_GS_BASE: {
        if (!canon) return false;
        const s = msr === MSR.IA32_FS_BASE ? FS : GS;
        this.sBaseLo[s] = lo;
        this.sBaseHi[s] = hi;
        return true;
      }
      case MSR.IA32_KERNEL_GS_BASE:
        if (!canon) return false;
        this.kernelGsBase = num;
        return true;
      case MSR.IA32_TSC_AUX:
        this.tscAux = lo >>> 0;
        return true;
      case MSR.IA32_TIME_STAMP_COUNTER:
        this.tscOffset = 0;
        this.tscOffset = (hi >>> 0) * TWO32 + (lo >>> 0) - this.tsc();
        return true;
      case MSR.IA32_SYSENTER_CS:
        this.sysenterCs = lo & 0xffff;
        return true;
      case MSR.IA32_SYSENTER_ESP:
      case MSR.IA32_SYSENTER_EIP:
        if (!canon) return false;
        if (msr === MSR.IA32_SYSENTER_ESP) this.sysenterEsp = num;
        else this.sysenterEip = num;
        return true;
      case MSR.IA32_PAT: {
        // Each byte must be a valid memory type: 0, 1, 4, 5, 6 or 7 (SDM 12.12.2).
        for (let i = 0; i < 8; i++) {
          const t = ((i < 4 ? lo : hi) >>> ((i & 3) * 8)) & 0xff;
          if (t === 2 || t === 3 || t > 7) return false;
        }
        this.pat = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
        return true;
      }
      case MSR.IA32_MCG_STATUS:
        return true;
      default:
        if (this.isStoredMsr(msr)) {
          this.msrStore.set(msr, (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0));
          return true;
        }
        return false;
    }
  }

  // =============================================================================================
  // CPUID (SDM Vol. 2A CPUID) from the configured model
  // =============================================================================================

  cpuidOut = new Int32Array(4);

  cpuid(leaf: number, sub: number): void {
    const o = this.cpuidOut;
    o.fill(0);
    const m = this.model;
    const feat = (f: string): boolean => m.features.includes(f);
    const str = (s: string, i: number): number =>
      (s.charCodeAt(i) & 0xff) |
      ((s.charCodeAt(i + 1) & 0xff) << 8) |
      ((s.charCodeAt(i + 2) & 0xff) << 16) |
      ((s.charCodeAt(i + 3) & 0xff) << 24);
    const vendor = (m.vendor + '            ').slice(0, 12);
    leaf >>>= 0;
    if (leaf < 0x8000_0000 && leaf > 7) leaf = 7 + 0; // above the max basic leaf: Intel returns the highest leaf's data
    switch (leaf) {
      case 0:
        o[0] = 7;
        o[1] = str(vendor, 0);
        o[3] = str(vendor, 4);
        o[2] = str(vendor, 8);
        return;
      case 1: {
        const fam = m.family;
        const baseFam = Math.min(fam, 15);
        const extFam = fam >= 15 ? fam - 15 : 0;
        o[0] =
          (m.stepping & 0xf) |
          ((m.model & 0xf) << 4) |
          (baseFam << 8) |
          (((m.model >> 4) & 0xf) << 16) |
          (extFam << 20);
        o[1] = (1 << 16) | (8 << 8); // one logical processor, CLFLUSH line 64 bytes
        let ecx = (1 << 13) | (1 << 23); // CX16, POPCNT
        if (feat('vmx')) ecx |= 1 << 5;
        if (feat('x2apic')) ecx |= 1 << 21;
        if (feat('tsc-deadline')) ecx |= 1 << 24;
        if (feat('hypervisor')) ecx |= 1 << 31;
        // PSE TSC MSR PAE CX8 SEP PGE CMOV PAT PSE36 CLFSH (no FPU, MMX, FXSR or SSE: not implemented).
        let edx =
          (1 << 3) |
          (1 << 4) |
          (1 << 5) |
          (1 << 6) |
          (1 << 8) |
          (1 << 11) |
          (1 << 13) |
          (1 << 15) |
          (1 << 16) |
          (1 << 17) |
          (1 << 19);
        if (feat('apic') || feat('x2apic')) edx |= 1 << 9;
        if (feat('de')) edx |= 1 << 2;
        o[2] = ecx;
        o[3] = edx;
        return;
      }
      case 7:
        if (sub === 0) o[1] = (1 << 7) | (1 << 20); // SMEP, SMAP
        return;
      case 0x8000_0000:
        o[0] = 0x8000_0008;
        return;
      case 0x8000_0001:
        o[2] = (1 << 0) | (1 << 5); // LAHF/SAHF in 64-bit mode, LZCNT
        o[3] = (1 << 11) | (1 << 20) | (1 << 26) | (1 << 27) | (1 << 29); // SYSCALL NX 1G RDTSCP LM
        return;
      case 0x8000_0002:
      case 0x8000_0003:
      case 0x8000_0004: {
        const b = (m.brand + '\0'.repeat(48)).slice(0, 48);
        const base = (leaf - 0x8000_0002) * 16;
        for (let i = 0; i < 4; i++) o[i] = str(b, base + i * 4);
        return;
      }
      case 0x8000_0008:
        o[0] = MAXPHYADDR | (48 << 8);
        return;
      default:
        return;
    }
  }

  // =============================================================================================
  // I/O permission (SDM Vol. 1 19.5)
  // =============================================================================================

  /** #GP(0) unless CPL <= IOPL or the TSS I/O bitmap allows every byte of the access. */
  checkIoPermission(port: number, size: number): void {
    if (!this.pe) return;
    if (!this.v86 && this.cpl <= ((this.fl >> 12) & 3)) return;
    const t = this.trAttr & 0xf;
    if ((t !== SysType.TSS_AVAIL && t !== SysType.TSS_BUSY) || this.trLimit < 0x67) this.gp(0);
    const mapBase = this.sysRead16((this.trBase + 0x66) % TWO48);
    const byte = mapBase + (port >>> 3);
    if (byte + 1 > this.trLimit) this.gp(0);
    const bits = this.sysRead16((this.trBase + byte) % TWO48);
    if ((bits >>> (port & 7)) & ((1 << size) - 1)) this.gp(0);
  }
}
