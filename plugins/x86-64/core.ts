/**
 * The x86-64 CPU, part 1: architectural state, lazy flags, and the memory path (segmentation,
 * paging, software TLB). Parts 2 (system.ts: events, descriptors, far transfers, system
 * registers) and 3 (interp.ts: decoder and execution) extend this class.
 *
 * Representation (measured choices, ARCHITECTURE.md "Hot-path rules"):
 * - GPRs are two Int32Arrays (low and high halves); 8/16-bit operand values are kept masked and
 *   unsigned, 32-bit values as int32, 64-bit values as an (int32 low, int32 high) pair. No BigInt
 *   outside of rare paths (64-bit DIV).
 * - RIP is a double: the 64-bit value read as signed, exact for every canonical address, so
 *   `rip + displacement` leaving the canonical range is detected by a range check.
 * - Linear addresses handed to the memory path are unsigned doubles below 2^48 (the low 48 bits of
 *   a canonical address; the upper bits are implied) or below 2^32 outside long mode.
 * - A guest fault throws the preallocated FAULT sentinel (never an Error, never allocated); the
 *   run loop catches it at the instruction boundary and delivers the exception.
 */
import type { Bus, RamRegion } from '../../src/core/bus.js';
import type { VirtualClock } from '../../src/core/clock.js';
import { PFEC, Vector } from '../../src/x86/exceptions.js';
import { CR0, CR4, EFER, PARITY, RFLAGS } from '../../src/x86/regs.js';
import { SegAttr } from '../../src/x86/descriptor.js';
import { emptyHooks, type CpuHooks, type TranslateRequest } from './hooks.js';

/** Thrown (this very object) when the guest faults; details are in the CPU's `f*` fields. */
export const FAULT = Object.freeze({ x86Fault: true });

export const enum Lazy {
  None = 0,
  Add = 1,
  Adc = 2,
  Sub = 3,
  Sbb = 4,
  Logic = 5,
  Inc = 6,
  Dec = 7,
  /** SHL/SHR/SAR: CF in lfC, OF (0/1) in lfB, AF clear, SF ZF PF from the result. */
  Shift = 8,
}

const TLB_BITS = 11;
export const TLB_SIZE = 1 << TLB_BITS;
const TLB_MASK = TLB_SIZE - 1;
const TWO32 = 4294967296;
const TWO48 = 281474976710656;

/** Physical address width advertised in CPUID.80000008H (bits above are reserved in page tables). */
export const MAXPHYADDR = 40;

/** PF per byte value: one definition, in src/x86/regs.ts (re-exported for the interpreter). */
export { PARITY };

const SIZE_MASK = [0, 0xff, 0xffff, 0, 0xffffffff, 0, 0, 0, 0xffffffff];
const SIGN_BIT = [0, 0x80, 0x8000, 0, 0x80000000, 0, 0, 0, 0x80000000];

/** Access kinds for translation. */
export const enum Acc {
  Read = 0,
  Write = 1,
  Fetch = 2,
}

export class CpuCoreBase {
  readonly bus: Bus;
  readonly clock: VirtualClock;
  hooks: CpuHooks = emptyHooks();

  // ---- general registers ----
  readonly rl = new Int32Array(16);
  readonly rh = new Int32Array(16);
  /** RIP (see the file comment); assignments go through the setter, which marks a transfer. */
  _rip = 0;
  /** Set when the current instruction assigned RIP (else the step advances it past itself). */
  jmp = false;
  get rip(): number {
    return this._rip;
  }
  set rip(v: number) {
    this._rip = v;
    this.jmp = true;
    this.seq = false;
  }
  /** The next instruction starts where the fetch window stands (no transfer since the last one). */
  seq = false;
  /** RFLAGS except the six status flags while `lfOp` is not None. Bit 1 always set. */
  fl = 2;

  // ---- lazy flags: the last flag-setting operation ----
  lfOp: Lazy = Lazy.None;
  lfSz = 4;
  lfR = 0;
  lfRH = 0;
  lfA = 0;
  lfAH = 0;
  lfB = 0;
  lfBH = 0;
  /** Carry-in for ADC/SBB, preserved CF for INC/DEC. */
  lfC = 0;

  // ---- segments: ES CS SS DS FS GS (hidden parts as VMX keeps them) ----
  readonly sSel = new Int32Array(6);
  readonly sBaseLo = new Int32Array(6);
  readonly sBaseHi = new Int32Array(6);
  readonly sLimit = new Float64Array(6);
  readonly sAttr = new Int32Array(6);
  ldtrSel = 0;
  ldtrBase = 0;
  ldtrLimit = 0;
  ldtrAttr = SegAttr.UNUSABLE;
  trSel = 0;
  trBase = 0;
  trLimit = 0xffff;
  trAttr = 0x8b;
  gdtrBase = 0;
  gdtrLimit = 0xffff;
  idtrBase = 0;
  idtrLimit = 0xffff;

  // ---- control and system registers ----
  cr0 = 0;
  cr2 = 0;
  /** CR3 as a number (physical address + PCD/PWT/PCID bits; exact below 2^53). */
  cr3 = 0;
  cr4 = 0;
  cr8 = 0;
  efer = 0;
  readonly dr = new Float64Array(8);

  // ---- derived mode state (updateMode) ----
  cpl = 0;
  /** Protected mode (CR0.PE). */
  pe = false;
  /** Long mode active (EFER.LMA). */
  lma = false;
  /** 64-bit mode: LMA and CS.L. */
  mode64 = false;
  /** CS.D: default operand/address size 32. */
  cs32 = false;
  /** SS.B: stack pointer is ESP (else SP); ignored in 64-bit mode. */
  ss32 = false;
  /** Virtual-8086 mode (EFLAGS.VM in protected mode). */
  v86 = false;
  paging = false;

  // ---- fault details (valid while FAULT propagates) ----
  fVec = 0;
  fErr = -1;
  /** #PF linear address (CR2 is written at delivery). */
  fAddr = 0;

  /** Second result half of 64-bit reads and ALU operations. */
  hi = 0;

  // ---- software TLB: direct mapped; separate tag sets for supervisor and user accesses ----
  protected readonly tagRS = new Float64Array(TLB_SIZE).fill(-1);
  protected readonly tagWS = new Float64Array(TLB_SIZE).fill(-1);
  protected readonly tagXS = new Float64Array(TLB_SIZE).fill(-1);
  protected readonly tagRU = new Float64Array(TLB_SIZE).fill(-1);
  protected readonly tagWU = new Float64Array(TLB_SIZE).fill(-1);
  protected readonly tagXU = new Float64Array(TLB_SIZE).fill(-1);
  protected readonly tlbGlobal = new Uint8Array(TLB_SIZE);
  /** Offset mask of the page an entry was cut from when larger than 4 KiB (0 for 4 KiB pages). */
  protected readonly tlbLargeMask = new Int32Array(TLB_SIZE);
  /** Entries with a non-zero tlbLargeMask (an upper bound). */
  protected largeEntries = 0;
  /** Offset mask of the page the last translation used (0xfff, 0x1fffff, 0x3fffff, 0x3fffffff). */
  protected pageMask = 0xfff;
  protected readonly tlbMem: Uint8Array[] = new Array<Uint8Array>(TLB_SIZE);
  protected readonly tlbOff = new Int32Array(TLB_SIZE);
  /** Physical page base of each entry (for write invalidation of decoded code, stats). */
  protected readonly tlbPhys = new Float64Array(TLB_SIZE);
  /**
   * Supervisor translations to device (MMIO) pages, read and write tags sharing mmioPhys: device
   * registers polled in a loop (HPET counter, LAPIC) would otherwise walk the page tables and EPT
   * on every access. Dropped with the TLB, whole on INVLPG (their page may be large).
   */
  protected readonly mmioTagR = new Float64Array(TLB_SIZE).fill(-1);
  protected readonly mmioTagW = new Float64Array(TLB_SIZE).fill(-1);
  protected readonly mmioPhys = new Float64Array(TLB_SIZE);
  protected mmioEntries = 0;
  /** The tag sets for the current CPL. */
  protected tR: Float64Array = this.tagRS;
  protected tW: Float64Array = this.tagWS;
  protected tX: Float64Array = this.tagXS;
  /** The last translation's physical address (slow path). */
  protected phys = 0;

  // ---- timing ----
  /** Instructions (REP iterations count one each) since reset. */
  icount = 0;
  nsPerInsn = 1;
  protected clockBase = 0;
  protected icountBase = 0;
  /** Virtual time spent beyond the per-instruction rate (PAUSE), since the last rebase. */
  protected stallNs = 0;
  /**
   * Counts memory writes and time-dependent reads (MMIO, ports, TSC): an idle loop is one whose
   * iteration changes no register and none of these (see X86Cpu.backEdge).
   */
  sideEffects = 0;
  /** Extra virtual time a PAUSE takes (spin-wait loops then burn fewer emulated instructions). */
  pauseNs = 0;

  // ---- statistics ----
  readonly counters = {
    tlbFlushes: 0,
    tlbMisses: 0,
    pageFaults: 0,
    exceptions: 0,
    interrupts: 0,
    mmioReads: 0,
    mmioWrites: 0,
    ioReads: 0,
    ioWrites: 0,
    /** Idle loops whose wait was skipped to the next timer deadline. */
    idleSkips: 0,
  };

  private readonly treq: TranslateRequest = {
    gpa: 0,
    linear: 0,
    write: false,
    fetch: false,
    walk: false,
    writable: true,
  };

  constructor(bus: Bus, clock: VirtualClock) {
    this.bus = bus;
    this.clock = clock;
    this.tlbMem.fill(new Uint8Array(0));
  }

  // =============================================================================================
  // Faults
  // =============================================================================================

  /** Raise an exception from inside an instruction (never returns). */
  fault(vec: number, err = -1): never {
    this.fVec = vec;
    this.fErr = err;
    throw FAULT;
  }

  gp(err = 0): never {
    return this.fault(Vector.GP, err);
  }

  ud(): never {
    return this.fault(Vector.UD);
  }

  // =============================================================================================
  // Time
  // =============================================================================================

  /** Bring the virtual clock up to the current instruction (before any device access). */
  syncClock(): number {
    const now = this.clockBase + (this.icount - this.icountBase) * this.nsPerInsn + this.stallNs;
    if (now > this.clock.now) this.clock.now = now;
    return this.clock.now;
  }

  protected rebaseClock(): void {
    this.clockBase = this.clock.now;
    this.icountBase = this.icount;
    this.stallNs = 0;
  }

  // =============================================================================================
  // Registers by operand size
  // =============================================================================================

  /** Read a register operand: size 1 honours AH..BH when `rexPresent` is false. */
  getReg(n: number, size: number, rexPresent: boolean): number {
    switch (size) {
      case 1:
        if (n < 4 || rexPresent) return this.rl[n] & 0xff;
        return (this.rl[n - 4] >>> 8) & 0xff;
      case 2:
        return this.rl[n] & 0xffff;
      case 4:
        return this.rl[n];
      default:
        this.hi = this.rh[n];
        return this.rl[n];
    }
  }

  setReg(n: number, size: number, rexPresent: boolean, v: number, vh: number): void {
    switch (size) {
      case 1:
        if (n < 4 || rexPresent) this.rl[n] = (this.rl[n] & ~0xff) | (v & 0xff);
        else this.rl[n - 4] = (this.rl[n - 4] & ~0xff00) | ((v & 0xff) << 8);
        return;
      case 2:
        this.rl[n] = (this.rl[n] & ~0xffff) | (v & 0xffff);
        return;
      case 4:
        this.rl[n] = v;
        this.rh[n] = 0;
        return;
      default:
        this.rl[n] = v;
        this.rh[n] = vh;
    }
  }

  // =============================================================================================
  // Flags (lazy)
  // =============================================================================================

  /** Record an arithmetic result for lazy evaluation. Values as the operand-size conventions say. */
  setLazy(op: Lazy, sz: number, r: number, rh: number, a: number, ah: number, b: number, bh: number): void {
    this.lfOp = op;
    this.lfSz = sz;
    this.lfR = r;
    this.lfRH = rh;
    this.lfA = a;
    this.lfAH = ah;
    this.lfB = b;
    this.lfBH = bh;
  }

  getCF(): number {
    const op = this.lfOp;
    if (op === Lazy.None) return this.fl & 1;
    const sz = this.lfSz;
    switch (op) {
      case Lazy.Add:
      case Lazy.Adc: {
        const cin = op === Lazy.Adc ? this.lfC : 0;
        if (sz === 8) {
          const rh = this.lfRH >>> 0,
            ah = this.lfAH >>> 0;
          if (rh !== ah) return rh < ah ? 1 : 0;
          const r = this.lfR >>> 0,
            a = this.lfA >>> 0;
          return (cin ? r <= a : r < a) ? 1 : 0;
        }
        const m = SIZE_MASK[sz];
        const r = (this.lfR & m) >>> 0,
          a = (this.lfA & m) >>> 0;
        return (cin ? r <= a : r < a) ? 1 : 0;
      }
      case Lazy.Sub:
      case Lazy.Sbb: {
        const cin = op === Lazy.Sbb ? this.lfC : 0;
        if (sz === 8) {
          const ah = this.lfAH >>> 0,
            bh = this.lfBH >>> 0;
          if (ah !== bh) return ah < bh ? 1 : 0;
          const a = this.lfA >>> 0,
            b = this.lfB >>> 0;
          return (cin ? a <= b : a < b) ? 1 : 0;
        }
        const m = SIZE_MASK[sz];
        const a = (this.lfA & m) >>> 0,
          b = (this.lfB & m) >>> 0;
        return (cin ? a <= b : a < b) ? 1 : 0;
      }
      case Lazy.Logic:
        return 0;
      default:
        return this.lfC;
    }
  }

  getZF(): number {
    if (this.lfOp === Lazy.None) return this.fl & RFLAGS.ZF;
    const sz = this.lfSz;
    if (sz === 8) return (this.lfR | this.lfRH) === 0 ? RFLAGS.ZF : 0;
    return (this.lfR & SIZE_MASK[sz]) === 0 ? RFLAGS.ZF : 0;
  }

  getSF(): number {
    if (this.lfOp === Lazy.None) return this.fl & RFLAGS.SF;
    const sz = this.lfSz;
    if (sz === 8) return this.lfRH < 0 ? RFLAGS.SF : 0;
    return this.lfR & SIGN_BIT[sz] ? RFLAGS.SF : 0;
  }

  getOF(): number {
    const op = this.lfOp;
    if (op === Lazy.None) return this.fl & RFLAGS.OF;
    const sz = this.lfSz;
    let r: number, a: number, b: number, sign: number;
    if (sz === 8) {
      r = this.lfRH;
      a = this.lfAH;
      b = this.lfBH;
      sign = 0x80000000;
    } else {
      r = this.lfR;
      a = this.lfA;
      b = this.lfB;
      sign = SIGN_BIT[sz];
    }
    switch (op) {
      case Lazy.Add:
      case Lazy.Adc:
      case Lazy.Inc:
        return ((a ^ r) & (b ^ r) & sign) !== 0 ? RFLAGS.OF : 0;
      case Lazy.Sub:
      case Lazy.Sbb:
      case Lazy.Dec:
        return ((a ^ b) & (a ^ r) & sign) !== 0 ? RFLAGS.OF : 0;
      case Lazy.Shift:
        return this.lfB !== 0 ? RFLAGS.OF : 0;
      default:
        return 0;
    }
  }

  getPF(): number {
    if (this.lfOp === Lazy.None) return this.fl & RFLAGS.PF;
    return PARITY[this.lfR & 0xff];
  }

  getAF(): number {
    const op = this.lfOp;
    if (op === Lazy.None) return this.fl & RFLAGS.AF;
    if (op === Lazy.Logic || op === Lazy.Shift) return 0;
    return (this.lfA ^ this.lfB ^ this.lfR) & RFLAGS.AF;
  }

  /** Full RFLAGS (low 32 bits; the upper half is reserved zero). */
  getFlags(): number {
    if (this.lfOp === Lazy.None) return this.fl;
    return (
      (this.fl & ~0x8d5) |
      this.getCF() |
      this.getPF() |
      this.getAF() |
      this.getZF() |
      this.getSF() |
      this.getOF()
    );
  }

  /** Materialize the lazy flags into `fl`. */
  flushFlags(): void {
    if (this.lfOp !== Lazy.None) {
      this.fl = this.getFlags();
      this.lfOp = Lazy.None;
    }
  }

  /** Set the six status flags from an explicit mask (bits of RFLAGS_ARITH). */
  setArith(bits: number): void {
    this.fl = (this.fl & ~0x8d5) | (bits & 0x8d5);
    this.lfOp = Lazy.None;
  }

  /** SF, ZF and PF of a result (for eagerly computed instructions). */
  szp(r: number, rh: number, sz: number): number {
    let f = PARITY[r & 0xff];
    if (sz === 8) {
      if ((r | rh) === 0) f |= RFLAGS.ZF;
      if (rh < 0) f |= RFLAGS.SF;
    } else {
      if ((r & SIZE_MASK[sz]) === 0) f |= RFLAGS.ZF;
      if (r & SIGN_BIT[sz]) f |= RFLAGS.SF;
    }
    return f;
  }

  setCF(v: number): void {
    this.flushFlags();
    this.fl = (this.fl & ~1) | (v ? 1 : 0);
  }

  /** Condition code test (the low nibble of Jcc/SETcc/CMOVcc; SDM Vol. 1 Appendix B). */
  cond(cc: number): boolean {
    let r: boolean;
    switch (cc >> 1) {
      case 0:
        r = this.getOF() !== 0;
        break;
      case 1:
        r = this.getCF() !== 0;
        break;
      case 2:
        r = this.getZF() !== 0;
        break;
      case 3:
        r = this.getCF() !== 0 || this.getZF() !== 0;
        break;
      case 4:
        r = this.getSF() !== 0;
        break;
      case 5:
        r = this.getPF() !== 0;
        break;
      case 6:
        r = (this.getSF() !== 0) !== (this.getOF() !== 0);
        break;
      default:
        r = this.getZF() !== 0 || (this.getSF() !== 0) !== (this.getOF() !== 0);
    }
    return cc & 1 ? !r : r;
  }

  // =============================================================================================
  // Mode
  // =============================================================================================

  /** Recompute derived mode fields after CS, CR0, CR4, EFER or RFLAGS.VM changed. */
  updateMode(): void {
    this.pe = (this.cr0 & CR0.PE) !== 0;
    this.lma = (this.efer & EFER.LMA) !== 0;
    this.paging = (this.cr0 & CR0.PG) !== 0 && this.pe;
    this.v86 = this.pe && (this.fl & RFLAGS.VM) !== 0;
    const csAttr = this.sAttr[1];
    this.mode64 = this.lma && (csAttr & SegAttr.L) !== 0;
    this.cs32 = !this.mode64 && (csAttr & SegAttr.DB) !== 0 && !this.v86;
    this.ss32 = (this.sAttr[2] & SegAttr.DB) !== 0 && !this.v86;
    this.setCpl(this.pe ? (this.v86 ? 3 : this.sSel[1] & 3) : 0);
  }

  setCpl(cpl: number): void {
    this.cpl = cpl;
    if (cpl === 3) {
      this.tR = this.tagRU;
      this.tW = this.tagWU;
      this.tX = this.tagXU;
    } else {
      this.tR = this.tagRS;
      this.tW = this.tagWS;
      this.tX = this.tagXS;
    }
  }

  // =============================================================================================
  // TLB
  // =============================================================================================

  flushTlb(keepGlobal = false): void {
    this.counters.tlbFlushes++;
    this.flushMmioTlb();
    if (!keepGlobal) {
      this.tagRS.fill(-1);
      this.tagWS.fill(-1);
      this.tagXS.fill(-1);
      this.tagRU.fill(-1);
      this.tagWU.fill(-1);
      this.tagXU.fill(-1);
      this.tlbGlobal.fill(0);
      this.tlbLargeMask.fill(0);
      this.largeEntries = 0;
      return;
    }
    const g = this.tlbGlobal;
    for (let i = 0; i < TLB_SIZE; i++) {
      if (g[i] === 0) {
        this.tagRS[i] = -1;
        this.tagWS[i] = -1;
        this.tagXS[i] = -1;
        this.tagRU[i] = -1;
        this.tagWU[i] = -1;
        this.tagXU[i] = -1;
      }
    }
  }

  /** INVLPG: drop the entry for one linear page (any size page containing it: we cache 4K pieces). */
  flushTlbPage(lin: number): void {
    this.flushMmioTlb();
    if (this.largeEntries > 0) {
      // INVLPG drops the whole translation of a large page: every 4 KiB piece cached from it.
      const m = this.tlbLargeMask;
      for (let k = 0; k < TLB_SIZE; k++) {
        const mask = m[k];
        if (mask === 0) continue;
        const tag = Math.max(
          this.tagRS[k],
          this.tagWS[k],
          this.tagXS[k],
          this.tagRU[k],
          this.tagWU[k],
          this.tagXU[k],
        );
        if (tag >= 0 && Math.floor(tag / (mask + 1)) === Math.floor(lin / (mask + 1))) this.dropEntry(k);
      }
    }
    this.dropEntry((lin >>> 12) & TLB_MASK);
  }

  private flushMmioTlb(): void {
    if (this.mmioEntries === 0) return;
    this.mmioTagR.fill(-1);
    this.mmioTagW.fill(-1);
    this.mmioEntries = 0;
  }

  private dropEntry(i: number): void {
    this.tagRS[i] = -1;
    this.tagWS[i] = -1;
    this.tagXS[i] = -1;
    this.tagRU[i] = -1;
    this.tagWU[i] = -1;
    this.tagXU[i] = -1;
  }

  // =============================================================================================
  // Paging: linear -> physical (SDM Vol. 3A chapter 4)
  // =============================================================================================

  /** Guest-physical to host-physical through the second-stage hook (if any). */
  protected stage2(gpa: number, lin: number, write: boolean, fetch: boolean, walk: boolean): number {
    const h = this.hooks.translate;
    if (h === null) return gpa;
    const r = this.treq;
    r.gpa = gpa;
    r.linear = lin;
    r.write = write;
    r.fetch = fetch;
    r.walk = walk;
    const hpa = h(r);
    if (hpa < 0) {
      // The hook performed its exit; abandon the instruction without delivering anything.
      this.fVec = -1;
      this.fErr = -1;
      throw FAULT;
    }
    this.s2Writable = r.writable !== false;
    r.writable = true; // the hook only ever clears it
    return hpa;
  }

  /** Whether the last second-stage translation allows writes (TranslateRequest.writable). */
  private s2Writable = true;
  private pteLo = 0;
  private pteHi = 0;
  /** The PDPTE registers of PAE paging (SDM 4.4.1). */
  readonly pdpteLo = new Int32Array(4);
  readonly pdpteHi = new Int32Array(4);

  /** Read a 4- or 8-byte paging-structure entry at a physical address into pteLo/pteHi. */
  private readPte(addr: number, lin: number, wide: boolean): number {
    const a = this.stage2(addr, lin, false, false, true);
    this.pteLo = this.bus.read(a, 4) | 0;
    this.pteHi = wide ? this.bus.read(a + 4, 4) | 0 : 0;
    return a;
  }

  /** Set the A (and D) bits of an entry if not yet set (locked read-modify-write on hardware). */
  private setAD(hostAddr: number, lo: number, bits: number): void {
    if ((lo & bits) !== bits) this.bus.write(hostAddr, 4, (lo | bits) >>> 0);
  }

  /**
   * Translate a linear address for an access; on success `this.phys` holds the host-physical
   * address and the return value is a permission summary (bit0 writable, bit1 user, bit2 global,
   * bit3 no-execute, bit4 dirty). On failure raises #PF with the SDM error code.
   * `user`: a user-mode access (CPL 3 and not an implicit supervisor access).
   */
  translate(lin: number, acc: Acc, user: boolean): number {
    if (!this.paging) {
      this.phys = this.stage2(lin, lin, acc === Acc.Write, acc === Acc.Fetch, false);
      this.pageMask = 0xfff;
      return 0x13;
    }
    const cr4 = this.cr4;
    const write = acc === Acc.Write;
    const fetch = acc === Acc.Fetch;
    const nxe = (this.efer & EFER.NXE) !== 0;
    let rw = 1,
      us = 1,
      xd = 0,
      global = 0,
      dirty = 0;
    let physLo: number, physPage: number;
    // Entries walked, for A/D updates after the checks pass.
    let e0 = -1,
      e1 = -1,
      e2 = -1,
      e3 = -1;
    let l0 = 0,
      l1 = 0,
      l2 = 0,
      l3 = 0;
    let rsvd = false;
    const linLo = lin >>> 0;
    if ((cr4 & CR4.PAE) === 0) {
      // 32-bit paging (SDM 4.3).
      const pdeAddr = (this.cr3 & 0xfffff000) + (linLo >>> 22) * 4;
      e0 = this.readPte(pdeAddr >>> 0, lin, false);
      l0 = this.pteLo;
      if ((l0 & 1) === 0) return this.pageFault(lin, acc, user, 0);
      rw &= (l0 >> 1) & 1;
      us &= (l0 >> 2) & 1;
      if (l0 & 0x80 && cr4 & CR4.PSE) {
        // 4 MiB page; bits 20:13 are physical bits 39:32 (PSE-36), bit 21 reserved.
        if (l0 & (1 << 21)) rsvd = true;
        physPage = ((l0 & 0xffc00000) >>> 0) + ((l0 >>> 13) & 0xff) * TWO32 + (linLo & 0x3ff000);
        this.pageMask = 0x3fffff;
        global = (l0 >> 8) & 1;
        dirty = (l0 >> 6) & 1;
      } else {
        e1 = this.readPte(((l0 & 0xfffff000) >>> 0) + ((linLo >>> 12) & 0x3ff) * 4, lin, false);
        l1 = this.pteLo;
        if ((l1 & 1) === 0) return this.pageFault(lin, acc, user, 0);
        rw &= (l1 >> 1) & 1;
        us &= (l1 >> 2) & 1;
        physPage = (l1 & 0xfffff000) >>> 0;
        this.pageMask = 0xfff;
        global = (l1 >> 8) & 1;
        dirty = (l1 >> 6) & 1;
      }
      if (rsvd) return this.pageFault(lin, acc, user, PFEC.P | PFEC.RSVD);
      physLo = physPage + (linLo & 0xfff);
    } else {
      // Reserved physical-address bits 51:MAXPHYADDR, in the entry's high dword.
      const hiMask = 0xfffff & ~((1 << (MAXPHYADDR - 32)) - 1);
      const xdRsvd = nxe ? 0 : 0x80000000;
      let tableLo: number, tableHi: number;
      if (this.lma) {
        // 4-level paging (SDM 4.5). PML4E.
        const linHi = Math.floor(lin / TWO32) & 0xffff;
        tableLo = (this.cr3 % TWO32) & 0xfffff000;
        tableHi = Math.floor(this.cr3 / TWO32) & 0xfffff;
        const i4 = ((linHi & 0xff80) >>> 7) & 0x1ff;
        e3 = this.readPte(tableHi * TWO32 + (tableLo >>> 0) + i4 * 8, lin, true);
        l3 = this.pteLo;
        if ((l3 & 1) === 0) return this.pageFault(lin, acc, user, 0);
        if (this.pteHi & (hiMask | xdRsvd) || l3 & 0x80) rsvd = true;
        rw &= (l3 >> 1) & 1;
        us &= (l3 >> 2) & 1;
        xd |= this.pteHi >>> 31;
        tableLo = l3 & 0xfffff000;
        tableHi = this.pteHi & 0xfffff;
        // PDPTE (1 GiB pages allowed).
        const i3 = (((linHi & 0x7f) << 2) | (linLo >>> 30)) & 0x1ff;
        e2 = this.readPte(tableHi * TWO32 + (tableLo >>> 0) + i3 * 8, lin, true);
        l2 = this.pteLo;
        if (rsvd) return this.pageFault(lin, acc, user, PFEC.P | PFEC.RSVD);
        if ((l2 & 1) === 0) return this.pageFault(lin, acc, user, 0);
        if (this.pteHi & (hiMask | xdRsvd)) rsvd = true;
        rw &= (l2 >> 1) & 1;
        us &= (l2 >> 2) & 1;
        xd |= this.pteHi >>> 31;
        if (l2 & 0x80) {
          if (l2 & 0x3fffe000) rsvd = true;
          if (rsvd) return this.pageFault(lin, acc, user, PFEC.P | PFEC.RSVD);
          physPage = (this.pteHi & 0xfffff) * TWO32 + ((l2 & 0xc0000000) >>> 0) + (linLo & 0x3ffff000);
          this.pageMask = 0x3fffffff;
          global = (l2 >> 8) & 1;
          dirty = (l2 >> 6) & 1;
          return this.finishWalk(
            lin,
            acc,
            user,
            physPage,
            rw,
            us,
            xd,
            global,
            dirty,
            e3,
            l3,
            e2,
            l2,
            -1,
            0,
            -1,
            0,
          );
        }
        tableLo = l2 & 0xfffff000;
        tableHi = this.pteHi & 0xfffff;
      } else {
        // PAE paging (SDM 4.4): the PDPTEs were loaded at MOV CR3 (or CR0/CR4 changes).
        const p = this.pdpteLo[linLo >>> 30];
        this.pteHi = this.pdpteHi[linLo >>> 30];
        if ((p & 1) === 0) return this.pageFault(lin, acc, user, 0);
        if (p & 0x1e6 || this.pteHi & (hiMask | 0x7ff00000 | 0x80000000))
          return this.pageFault(lin, acc, user, PFEC.P | PFEC.RSVD);
        tableLo = p & 0xfffff000;
        tableHi = this.pteHi & 0xfffff;
      }
      // PDE.
      e1 = this.readPte(tableHi * TWO32 + (tableLo >>> 0) + ((linLo >>> 21) & 0x1ff) * 8, lin, true);
      l1 = this.pteLo;
      if ((l1 & 1) === 0) return this.pageFault(lin, acc, user, 0);
      if (this.pteHi & (hiMask | xdRsvd)) rsvd = true;
      rw &= (l1 >> 1) & 1;
      us &= (l1 >> 2) & 1;
      xd |= this.pteHi >>> 31;
      if (l1 & 0x80) {
        if (l1 & 0x1fe000) rsvd = true;
        if (rsvd) return this.pageFault(lin, acc, user, PFEC.P | PFEC.RSVD);
        physPage = (this.pteHi & 0xfffff) * TWO32 + ((l1 & 0xffe00000) >>> 0) + (linLo & 0x1ff000);
        this.pageMask = 0x1fffff;
        global = (l1 >> 8) & 1;
        dirty = (l1 >> 6) & 1;
        return this.finishWalk(
          lin,
          acc,
          user,
          physPage,
          rw,
          us,
          xd,
          global,
          dirty,
          e3,
          l3,
          e2,
          l2,
          e1,
          l1,
          -1,
          0,
        );
      }
      // PTE.
      e0 = this.readPte(
        (this.pteHi & 0xfffff) * TWO32 + ((l1 & 0xfffff000) >>> 0) + ((linLo >>> 12) & 0x1ff) * 8,
        lin,
        true,
      );
      l0 = this.pteLo;
      if (rsvd) return this.pageFault(lin, acc, user, PFEC.P | PFEC.RSVD);
      if ((l0 & 1) === 0) return this.pageFault(lin, acc, user, 0);
      if (this.pteHi & (hiMask | xdRsvd)) return this.pageFault(lin, acc, user, PFEC.P | PFEC.RSVD);
      rw &= (l0 >> 1) & 1;
      us &= (l0 >> 2) & 1;
      xd |= this.pteHi >>> 31;
      physPage = (this.pteHi & 0xfffff) * TWO32 + ((l0 & 0xfffff000) >>> 0);
      this.pageMask = 0xfff;
      global = (l0 >> 8) & 1;
      dirty = (l0 >> 6) & 1;
      return this.finishWalk(
        lin,
        acc,
        user,
        physPage,
        rw,
        us,
        xd,
        global,
        dirty,
        e3,
        l3,
        e2,
        l2,
        e1,
        l1,
        e0,
        l0,
      );
    }
    // 32-bit paging tail: checks and A/D.
    this.checkAccess(lin, acc, user, rw, us, 0);
    if (e0 >= 0 && e1 < 0) {
      // 4 MiB page: the PDE is the leaf.
      this.setAD(e0, l0, write ? 0x60 : 0x20);
    } else {
      this.setAD(e0, l0, 0x20);
      this.setAD(e1, l1, write ? 0x60 : 0x20);
    }
    if (write) dirty = 1;
    this.phys = this.stage2(physLo, lin, write, fetch, false);
    return (rw | (us << 1) | (global << 2) | (dirty << 4)) & 0x1f;
  }

  private finishWalk(
    lin: number,
    acc: Acc,
    user: boolean,
    physPage: number,
    rw: number,
    us: number,
    xd: number,
    global: number,
    dirty: number,
    e3: number,
    l3: number,
    e2: number,
    l2: number,
    e1: number,
    l1: number,
    e0: number,
    l0: number,
  ): number {
    if ((this.efer & EFER.NXE) === 0) xd = 0;
    this.checkAccess(lin, acc, user, rw, us, xd);
    const write = acc === Acc.Write;
    // Accessed bits on every level, dirty on the leaf (SDM 4.8).
    if (e3 >= 0) this.setAD(e3, l3, 0x20);
    if (e0 >= 0) {
      if (e2 >= 0) this.setAD(e2, l2, 0x20);
      this.setAD(e1, l1, 0x20);
      this.setAD(e0, l0, write ? 0x60 : 0x20);
    } else if (e1 >= 0) {
      if (e2 >= 0) this.setAD(e2, l2, 0x20);
      this.setAD(e1, l1, write ? 0x60 : 0x20);
    } else {
      this.setAD(e2, l2, write ? 0x60 : 0x20);
    }
    if (write) dirty = 1;
    this.phys = this.stage2(physPage + ((lin >>> 0) & 0xfff), lin, write, acc === Acc.Fetch, false);
    return rw | (us << 1) | (global << 2) | (xd << 3) | (dirty << 4);
  }

  /** Permission checks (SDM 4.6) given the combined R/W, U/S and XD of the walk. */
  private checkAccess(lin: number, acc: Acc, user: boolean, rw: number, us: number, xd: number): void {
    const cr4 = this.cr4;
    if (user) {
      if (!us) this.pageFault(lin, acc, user, PFEC.P);
      if (acc === Acc.Write && !rw) this.pageFault(lin, acc, user, PFEC.P);
      if (acc === Acc.Fetch && xd) this.pageFault(lin, acc, user, PFEC.P);
      return;
    }
    if (acc === Acc.Fetch) {
      if (xd) this.pageFault(lin, acc, user, PFEC.P);
      if (us && cr4 & CR4.SMEP) this.pageFault(lin, acc, user, PFEC.P);
      return;
    }
    if (us && cr4 & CR4.SMAP) {
      // Explicit supervisor accesses from CPL<3 are allowed with EFLAGS.AC=1; implicit ones never.
      if (this.cpl === 3 || (this.fl & RFLAGS.AC) === 0 || this.implicitAccess) {
        this.pageFault(lin, acc, user, PFEC.P);
      }
    }
    if (acc === Acc.Write && !rw && this.cr0 & CR0.WP) this.pageFault(lin, acc, user, PFEC.P);
  }

  /** True while the CPU makes implicit supervisor accesses (descriptor tables, TSS, IDT). */
  implicitAccess = false;

  private pageFault(lin: number, acc: Acc, user: boolean, bits: number): never {
    let err = bits;
    if (acc === Acc.Write) err |= PFEC.W;
    if (user) err |= PFEC.U;
    if (acc === Acc.Fetch && ((this.efer & EFER.NXE && this.cr4 & CR4.PAE) || this.cr4 & CR4.SMEP))
      err |= PFEC.I;
    this.counters.pageFaults++;
    this.fAddr = lin;
    return this.fault(Vector.PF, err);
  }

  // =============================================================================================
  // TLB fill and the slow memory path
  // =============================================================================================

  /**
   * Translate and, when the target is RAM, install a TLB entry. Returns the host-physical
   * address; `this.fillMem`/`this.fillOff` point into RAM or fillMem is null for MMIO/unmapped.
   */
  protected fillMem: Uint8Array | null = null;
  protected fillOff = 0;
  /** The RAM region of the last tlbFill that found RAM. */
  protected fillRam: RamRegion | null = null;

  protected tlbFill(lin: number, acc: Acc): number {
    this.counters.tlbMisses++;
    const user = this.cpl === 3 && !this.implicitAccess;
    const perm = this.translate(lin, acc, user);
    const phys = this.phys;
    const page = phys - (phys % 4096);
    const r = this.bus.regionAt(page);
    if (
      r === undefined ||
      r.kind !== 'ram' ||
      page - r.base + 4096 > r.size ||
      page - r.base >= 0x7fff_f000
    ) {
      this.fillMem = null;
      if (r !== undefined && r.kind === 'mmio' && this.cpl !== 3 && acc !== Acc.Fetch)
        this.cacheMmio(lin, acc, perm, page);
      return phys;
    }
    const ram = r as RamRegion;
    this.fillMem = ram.data;
    this.fillOff = page - ram.base + (phys % 4096);
    this.fillRam = ram;
    // Cache the translation only when the implicit flag is not in play (tags are per CPL class).
    if (this.implicitAccess && this.cpl === 3) return phys;
    // Supervisor data access to a user page under SMAP depends on EFLAGS.AC: do not cache.
    if (!user && perm & 2 && this.cr4 & CR4.SMAP && acc !== Acc.Fetch) return phys;
    const i = (lin >>> 12) & TLB_MASK;
    const tag = lin - (lin & 0xfff);
    const tR = user ? this.tagRU : this.tagRS;
    const tW = user ? this.tagWU : this.tagWS;
    const tX = user ? this.tagXU : this.tagXS;
    // A new entry replaces whatever sat in this slot in every set of this privilege class.
    if (tR[i] !== tag) {
      tR[i] = -1;
      tW[i] = -1;
      tX[i] = -1;
    }
    this.tlbMem[i] = ram.data;
    this.tlbOff[i] = page - ram.base;
    this.tlbPhys[i] = page;
    this.tlbGlobal[i] = (perm >> 2) & 1 && this.cr4 & CR4.PGE ? 1 : 0;
    const large = this.pageMask === 0xfff ? 0 : this.pageMask;
    if (large !== 0) this.largeEntries++;
    this.tlbLargeMask[i] = large;
    // Clear the other class's tags for this slot: tlbMem/tlbOff are shared. All three: a slot may
    // hold only a fetch tag (NimbOS: a user code page kept its tag while a global kernel page with
    // the same slot took tlbMem/tlbOff, so user code was fetched from the kernel's frame).
    if (user) {
      this.tagRS[i] = -1;
      this.tagWS[i] = -1;
      this.tagXS[i] = -1;
    } else {
      this.tagRU[i] = -1;
      this.tagWU[i] = -1;
      this.tagXU[i] = -1;
    }
    if (acc === Acc.Fetch) {
      tX[i] = tag;
    } else {
      tR[i] = tag;
      // Writable and dirty: later writes need no walk (the D bit is already set).
      const writable = user ? perm & 1 : perm & 1 || (this.cr0 & CR0.WP) === 0 || !this.paging;
      // No write entry for a page with decoded code: its stores take writeSlow, which reports them.
      if (writable && perm & 0x10 && this.s2Writable && ram.codePages[(page - ram.base) >>> 12] === 0)
        tW[i] = tag;
    }
    return phys;
  }

  /** Remember a supervisor translation to a device page (the RAM entries' rules: SMAP, WP, D bit). */
  private cacheMmio(lin: number, acc: Acc, perm: number, page: number): void {
    if (perm & 2 && this.cr4 & CR4.SMAP) return;
    const i = (lin >>> 12) & TLB_MASK;
    const tag = lin - (lin & 0xfff);
    if (this.mmioTagR[i] !== tag) this.mmioTagR[i] = -1;
    if (this.mmioTagW[i] !== tag) this.mmioTagW[i] = -1;
    this.mmioPhys[i] = page;
    this.mmioEntries++;
    if (acc !== Acc.Write) this.mmioTagR[i] = tag;
    else if ((perm & 1 || (this.cr0 & CR0.WP) === 0 || !this.paging) && perm & 0x10 && this.s2Writable)
      this.mmioTagW[i] = tag;
  }

  /** Linear page base of an address. */
  static pageOf(lin: number): number {
    return lin - (lin % 4096);
  }

  read8Slow(lin: number): number {
    const i = (lin >>> 12) & TLB_MASK;
    if (this.mmioTagR[i] === lin - (lin & 0xfff) && this.cpl !== 3)
      return this.mmioRead(this.mmioPhys[i] + (lin & 0xfff), 1);
    const phys = this.tlbFill(lin, Acc.Read);
    if (this.fillMem !== null) return this.fillMem[this.fillOff];
    return this.mmioRead(phys, 1);
  }

  readSlow(lin: number, size: number): number {
    const off = (lin >>> 0) & 0xfff;
    if (off + size > 4096) {
      // Crosses a page: bytes in order (both pages translated before any effect).
      let v = 0;
      let vh = 0;
      for (let k = 0; k < size; k++) {
        const l = lin + k >= TWO48 ? lin + k - TWO48 : lin + k;
        const b = this.read8(this.lma ? l : (lin + k) % TWO32);
        if (k < 4) v |= b << (8 * k);
        else vh |= b << (8 * (k - 4));
      }
      this.hi = vh;
      return size === 4 || size === 8 ? v | 0 : v >>> 0;
    }
    const i = (lin >>> 12) & TLB_MASK;
    if (this.mmioTagR[i] === lin - off && this.cpl !== 3)
      return this.mmioReadSized(this.mmioPhys[i] + off, size);
    const phys = this.tlbFill(lin, Acc.Read);
    const m = this.fillMem;
    if (m !== null) {
      const o = this.fillOff;
      if (size === 2) return m[o] | (m[o + 1] << 8);
      const v = m[o] | (m[o + 1] << 8) | (m[o + 2] << 16) | (m[o + 3] << 24);
      if (size === 8) this.hi = m[o + 4] | (m[o + 5] << 8) | (m[o + 6] << 16) | (m[o + 7] << 24);
      return v;
    }
    return this.mmioReadSized(phys, size);
  }

  /** A device read of 1, 2, 4 or 8 bytes (8: two dword accesses, low first; the high half in `hi`). */
  private mmioReadSized(phys: number, size: number): number {
    if (size === 8) {
      const lo = this.mmioRead(phys, 4) | 0;
      this.hi = this.mmioRead(phys + 4, 4) | 0;
      return lo;
    }
    const v = this.mmioRead(phys, size);
    return size === 4 ? v | 0 : v;
  }

  writeSlow(lin: number, size: number, v: number, vh: number): void {
    this.sideEffects++;
    const off = (lin >>> 0) & 0xfff;
    if (off + size > 4096) {
      // Check both pages first so a fault leaves memory untouched.
      const second = lin + (4096 - off);
      this.tlbFill(lin, Acc.Write);
      this.tlbFill(this.lma ? (second >= TWO48 ? second - TWO48 : second) : second % TWO32, Acc.Write);
      for (let k = 0; k < size; k++) {
        const l = lin + k;
        const b = k < 4 ? v >>> (8 * k) : vh >>> (8 * (k - 4));
        this.write8(this.lma ? (l >= TWO48 ? l - TWO48 : l) : l % TWO32, b & 0xff);
      }
      return;
    }
    const i = (lin >>> 12) & TLB_MASK;
    if (this.mmioTagW[i] === lin - off && this.cpl !== 3) {
      this.mmioWriteSized(this.mmioPhys[i] + off, size, v, vh);
      return;
    }
    const phys = this.tlbFill(lin, Acc.Write);
    const m = this.fillMem;
    if (m !== null) {
      const o = this.fillOff;
      m[o] = v;
      if (size >= 2) m[o + 1] = v >>> 8;
      if (size >= 4) {
        m[o + 2] = v >>> 16;
        m[o + 3] = v >>> 24;
      }
      if (size === 8) {
        m[o + 4] = vh;
        m[o + 5] = vh >>> 8;
        m[o + 6] = vh >>> 16;
        m[o + 7] = vh >>> 24;
      }
      const ram = this.fillRam!;
      if (ram.codePages[(this.fillOff >>> 12) | 0] !== 0) this.bus.noteRamWrite(ram, this.fillOff, size);
      return;
    }
    this.mmioWriteSized(phys, size, v, vh);
  }

  /** A device write of 1, 2, 4 or 8 bytes (8: two dword accesses, low first). */
  private mmioWriteSized(phys: number, size: number, v: number, vh: number): void {
    if (size === 8) {
      this.mmioWrite(phys, 4, v);
      this.mmioWrite(phys + 4, 4, vh);
      return;
    }
    this.mmioWrite(phys, size, v);
  }

  mmioRead(phys: number, size: number): number {
    this.sideEffects++;
    this.syncClock();
    this.counters.mmioReads++;
    return this.bus.read(phys, size as 1 | 2 | 4);
  }

  mmioWrite(phys: number, size: number, v: number): void {
    this.syncClock();
    this.counters.mmioWrites++;
    this.bus.write(phys, size as 1 | 2 | 4, size === 4 ? v >>> 0 : v & (size === 1 ? 0xff : 0xffff));
  }

  // =============================================================================================
  // Linear memory access: TLB hit fast paths
  // =============================================================================================

  read8(lin: number): number {
    const i = (lin >>> 12) & TLB_MASK;
    const o = lin & 0xfff;
    if (this.tR[i] === lin - o) return this.tlbMem[i][this.tlbOff[i] + o];
    return this.read8Slow(lin);
  }

  read16(lin: number): number {
    const i = (lin >>> 12) & TLB_MASK;
    const o = lin & 0xfff;
    if (this.tR[i] === lin - o && o < 4095) {
      const m = this.tlbMem[i];
      const p = this.tlbOff[i] + o;
      return m[p] | (m[p + 1] << 8);
    }
    return this.readSlow(lin, 2);
  }

  read32(lin: number): number {
    const i = (lin >>> 12) & TLB_MASK;
    const o = lin & 0xfff;
    if (this.tR[i] === lin - o && o < 4093) {
      const m = this.tlbMem[i];
      const p = this.tlbOff[i] + o;
      return m[p] | (m[p + 1] << 8) | (m[p + 2] << 16) | (m[p + 3] << 24);
    }
    return this.readSlow(lin, 4);
  }

  /** 64-bit read: returns the low half, `hi` gets the high half. */
  read64(lin: number): number {
    const i = (lin >>> 12) & TLB_MASK;
    const o = lin & 0xfff;
    if (this.tR[i] === lin - o && o < 4089) {
      const m = this.tlbMem[i];
      const p = this.tlbOff[i] + o;
      this.hi = m[p + 4] | (m[p + 5] << 8) | (m[p + 6] << 16) | (m[p + 7] << 24);
      return m[p] | (m[p + 1] << 8) | (m[p + 2] << 16) | (m[p + 3] << 24);
    }
    return this.readSlow(lin, 8);
  }

  readN(lin: number, size: number): number {
    switch (size) {
      case 1:
        return this.read8(lin);
      case 2:
        return this.read16(lin);
      case 4:
        return this.read32(lin);
      default:
        return this.read64(lin);
    }
  }

  write8(lin: number, v: number): void {
    this.sideEffects++;
    const i = (lin >>> 12) & TLB_MASK;
    const o = lin & 0xfff;
    if (this.tW[i] === lin - o) {
      this.tlbMem[i][this.tlbOff[i] + o] = v;
      return;
    }
    this.writeSlow(lin, 1, v, 0);
  }

  write16(lin: number, v: number): void {
    this.sideEffects++;
    const i = (lin >>> 12) & TLB_MASK;
    const o = lin & 0xfff;
    if (this.tW[i] === lin - o && o < 4095) {
      const m = this.tlbMem[i];
      const p = this.tlbOff[i] + o;
      m[p] = v;
      m[p + 1] = v >>> 8;
      return;
    }
    this.writeSlow(lin, 2, v, 0);
  }

  write32(lin: number, v: number): void {
    this.sideEffects++;
    const i = (lin >>> 12) & TLB_MASK;
    const o = lin & 0xfff;
    if (this.tW[i] === lin - o && o < 4093) {
      const m = this.tlbMem[i];
      const p = this.tlbOff[i] + o;
      m[p] = v;
      m[p + 1] = v >>> 8;
      m[p + 2] = v >>> 16;
      m[p + 3] = v >>> 24;
      return;
    }
    this.writeSlow(lin, 4, v, 0);
  }

  write64(lin: number, v: number, vh: number): void {
    this.sideEffects++;
    const i = (lin >>> 12) & TLB_MASK;
    const o = lin & 0xfff;
    if (this.tW[i] === lin - o && o < 4089) {
      const m = this.tlbMem[i];
      const p = this.tlbOff[i] + o;
      m[p] = v;
      m[p + 1] = v >>> 8;
      m[p + 2] = v >>> 16;
      m[p + 3] = v >>> 24;
      m[p + 4] = vh;
      m[p + 5] = vh >>> 8;
      m[p + 6] = vh >>> 16;
      m[p + 7] = vh >>> 24;
      return;
    }
    this.writeSlow(lin, 8, v, vh);
  }

  writeN(lin: number, size: number, v: number, vh: number): void {
    switch (size) {
      case 1:
        this.write8(lin, v);
        return;
      case 2:
        this.write16(lin, v);
        return;
      case 4:
        this.write32(lin, v);
        return;
      default:
        this.write64(lin, v, vh);
    }
  }

  /** Check that a write to [lin, lin+size) would succeed (translates; faults if not). */
  probeWrite(lin: number, size: number): void {
    const i = (lin >>> 12) & TLB_MASK;
    const o = lin & 0xfff;
    if (this.tW[i] === lin - o && o + size <= 4096) return;
    this.tlbFill(lin, Acc.Write);
    if (o + size > 4096) {
      const second = lin + (4096 - o);
      this.tlbFill(this.lma ? (second >= TWO48 ? second - TWO48 : second) : second % TWO32, Acc.Write);
    }
  }

  // ---- implicit supervisor accesses (descriptor tables, TSS, IDT: SDM 4.6 "implicit") ----
  sysRead32(lin: number): number {
    this.implicitAccess = true;
    try {
      return this.readSlowAny(lin, 4);
    } finally {
      this.implicitAccess = false;
    }
  }

  sysRead16(lin: number): number {
    this.implicitAccess = true;
    try {
      return this.readSlowAny(lin, 2);
    } finally {
      this.implicitAccess = false;
    }
  }

  sysWrite8(lin: number, v: number): void {
    this.implicitAccess = true;
    try {
      this.writeSlow(lin, 1, v, 0);
    } finally {
      this.implicitAccess = false;
    }
  }

  /** A read through the full translation path (no TLB hit shortcut: the tags are CPL-specific). */
  private readSlowAny(lin: number, size: number): number {
    const off = (lin >>> 0) & 0xfff;
    if (off + size > 4096) {
      let v = 0;
      for (let k = 0; k < size; k++) v |= this.readSlowAny(lin + k, 1) << (8 * k);
      return size === 4 ? v | 0 : v;
    }
    return this.readSlow(lin, size);
  }

  /** Linear address form of the 64-bit value (lo, hi): canonical check done by the caller. */
  static lin48(lo: number, hi: number): number {
    return (hi & 0xffff) * TWO32 + (lo >>> 0);
  }
}

export { TWO32, TWO48, SIZE_MASK, SIGN_BIT };
