/**
 * The x86-64 CPU as the machine sees it (CpuCore) and as a virtualization plugin sees it: the
 * full architectural state as a plain object (getState/setState, BigInt-valued: not a hot path),
 * event injection, intercept hooks (cpu.hooks) and MSR ranges owned by other plugins.
 */
import type { BootEntry, CpuCore } from '../../src/core/cpu.js';
import { EventType, VECTOR_NAMES } from '../../src/x86/exceptions.js';
import { MSR, PAT_RESET } from '../../src/x86/msr.js';
import { CR0_RESET, DR6_RESET, DR7_RESET, REG_NAMES, RFLAGS, SEG_NAMES } from '../../src/x86/regs.js';
import { SegAttr } from '../../src/x86/descriptor.js';
import { TWO32 } from './core.js';
import { X86Cpu } from './interp.js';
import { CS, DS, ES, FS, GS, SS } from './system.js';

export interface SegmentState {
  selector: number;
  /** 64-bit base (canonical for FS/GS in long mode). */
  base: bigint;
  limit: number;
  /** Access rights in the VMX guest-state format (SDM Vol. 3C 24.4.1); bit 16 = unusable. */
  attr: number;
}

export interface TableRegister {
  base: bigint;
  limit: number;
}

/** Everything architecturally visible, as VM entry loads and VM exit saves it. */
export interface ArchState {
  /** RAX RCX RDX RBX RSP RBP RSI RDI R8..R15. */
  gpr: bigint[];
  rip: bigint;
  rflags: bigint;
  es: SegmentState;
  cs: SegmentState;
  ss: SegmentState;
  ds: SegmentState;
  fs: SegmentState;
  gs: SegmentState;
  ldtr: SegmentState;
  tr: SegmentState;
  gdtr: TableRegister;
  idtr: TableRegister;
  cr0: bigint;
  cr2: bigint;
  cr3: bigint;
  cr4: bigint;
  cr8: bigint;
  efer: bigint;
  dr: bigint[];
  pat: bigint;
  sysenterCs: bigint;
  sysenterEsp: bigint;
  sysenterEip: bigint;
  star: bigint;
  lstar: bigint;
  cstar: bigint;
  fmask: bigint;
  kernelGsBase: bigint;
  tscAux: bigint;
  /** Interruptibility (SDM Vol. 3C 24.4.2): blocking by STI / MOV SS, by NMI. */
  interruptShadow: boolean;
  nmiBlocked: boolean;
  activity: 'active' | 'hlt' | 'shutdown';
}

const u64 = (n: number): bigint => BigInt.asUintN(64, BigInt(Math.trunc(n)));
const toNum = (b: bigint): number => Number(BigInt.asIntN(64, b));

export type StartMode = 'reset-vector' | 'flat32';

export class X86_64 extends X86Cpu implements CpuCore {
  get instructionsRetired(): number {
    return this.icount;
  }

  /** Power-on/RESET state (SDM Vol. 3A 9.1.1, Table 9-1). */
  reset(): void {
    this.rl.fill(0);
    this.rh.fill(0);
    const m = this.model;
    // EDX holds the processor signature after reset.
    this.rl[2] =
      (m.stepping & 0xf) |
      ((m.model & 0xf) << 4) |
      (Math.min(m.family, 15) << 8) |
      (((m.model >> 4) & 0xf) << 16);
    this.fl = 2;
    this.lfOp = 0;
    this.cr0 = CR0_RESET;
    this.cr2 = 0;
    this.cr3 = 0;
    this.cr4 = 0;
    this.cr8 = 0;
    this.efer = 0;
    this.dr.fill(0);
    this.dr[6] = DR6_RESET >>> 0;
    this.dr[7] = DR7_RESET;
    const data = SegAttr.P | SegAttr.S | SegAttr.RW | SegAttr.ACCESSED;
    for (let s = 0; s < 6; s++) this.setSeg(s, 0, 0, 0xffff, data);
    this.setSeg(CS, 0xf000, 0xffff0000, 0xffff, data | SegAttr.CODE);
    this.gdtrBase = 0;
    this.gdtrLimit = 0xffff;
    this.idtrBase = 0;
    this.idtrLimit = 0xffff;
    this.ldtrSel = 0;
    this.ldtrBase = 0;
    this.ldtrLimit = 0xffff;
    this.ldtrAttr = 0x82;
    this.trSel = 0;
    this.trBase = 0;
    this.trLimit = 0xffff;
    this.trAttr = 0x8b;
    this.star = 0n;
    this.lstar = 0;
    this.cstar = 0;
    this.fmask = 0;
    this.kernelGsBase = 0;
    this.tscAux = 0;
    this.sysenterCs = 0;
    this.sysenterEsp = 0;
    this.sysenterEip = 0;
    this.pat = PAT_RESET;
    this.tscOffset = 0;
    this.msrStore.clear();
    this.shadow = 0;
    this.nmiBlocked = false;
    this.nmiPending = false;
    this.injVector = -1;
    this.halted = false;
    this.shutdown = false;
    this.eventCheck = true;
    this.updateMode();
    this.refreshSegOk();
    this.flushTlb();
    this.rip = 0xfff0;
  }

  /** Protected mode, flat 4 GiB segments, paging off, CPL 0, interrupts off: the multiboot entry state. */
  enterFlat32(eip: number): void {
    this.cr0 = (this.cr0 | 1) & ~0x8000_0000;
    this.updateMode();
    const code =
      SegAttr.P | SegAttr.S | SegAttr.CODE | SegAttr.RW | SegAttr.ACCESSED | SegAttr.DB | SegAttr.G;
    const data = SegAttr.P | SegAttr.S | SegAttr.RW | SegAttr.ACCESSED | SegAttr.DB | SegAttr.G;
    this.setSeg(CS, 0x08, 0, 0xffffffff, code);
    for (const s of [ES, SS, DS, FS, GS]) this.setSeg(s, 0x10, 0, 0xffffffff, data);
    this.fl = 2;
    this.lfOp = 0;
    this.updateMode();
    this.refreshSegOk();
    this.flushTlb();
    this.rip = eip >>> 0;
  }

  /** A loader's boot state (src/core/cpu.ts BootEntry), applied after reset. */
  setEntry(entry: BootEntry): void {
    if (entry.mode === 'real') {
      const cs = entry.cs ?? 0;
      this.setSeg(
        CS,
        cs,
        cs << 4,
        0xffff,
        SegAttr.P | SegAttr.S | SegAttr.CODE | SegAttr.RW | SegAttr.ACCESSED,
      );
      this.updateMode();
      this.rip = entry.ip & 0xffff;
    } else {
      this.enterFlat32(entry.ip);
      if (entry.mode === 'long') {
        // 64-bit mode on the loader's tables: PAE + LME/LMA + PG, a 64-bit flat code segment.
        this.cr4 |= 0x20;
        this.cr3 = entry.cr3 ?? 0;
        this.efer |= 0x500;
        this.cr0 |= 0x8000_0000;
        this.setSeg(
          CS,
          0x08,
          0,
          0xffffffff,
          SegAttr.P | SegAttr.S | SegAttr.CODE | SegAttr.RW | SegAttr.ACCESSED | SegAttr.L | SegAttr.G,
        );
        this.updateMode();
        this.flushTlb();
        this.rip = entry.ip;
      }
    }
    const names = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi'] as const;
    names.forEach((n, i) => {
      const v = entry.regs?.[n];
      if (v !== undefined) {
        this.rl[i] = v | 0;
        this.rh[i] = 0;
      }
    });
  }

  getState(): ArchState {
    const seg = (s: number): SegmentState => ({
      selector: this.sSel[s],
      base: BigInt.asUintN(64, (BigInt(this.sBaseHi[s]) << 32n) | BigInt(this.sBaseLo[s] >>> 0)),
      limit: this.sLimit[s] >>> 0,
      attr: this.sAttr[s],
    });
    const gpr: bigint[] = [];
    for (let i = 0; i < 16; i++)
      gpr.push(BigInt.asUintN(64, (BigInt(this.rh[i]) << 32n) | BigInt(this.rl[i] >>> 0)));
    const lin = (n: number): bigint => u64(this.canonicalOf(n));
    return {
      gpr,
      rip: u64(this._rip),
      rflags: BigInt(this.getFlags() >>> 0),
      es: seg(ES),
      cs: seg(CS),
      ss: seg(SS),
      ds: seg(DS),
      fs: seg(FS),
      gs: seg(GS),
      ldtr: {
        selector: this.ldtrSel,
        base: lin(this.ldtrBase),
        limit: this.ldtrLimit >>> 0,
        attr: this.ldtrAttr,
      },
      tr: { selector: this.trSel, base: lin(this.trBase), limit: this.trLimit >>> 0, attr: this.trAttr },
      gdtr: { base: lin(this.gdtrBase), limit: this.gdtrLimit },
      idtr: { base: lin(this.idtrBase), limit: this.idtrLimit },
      cr0: BigInt(this.cr0 >>> 0),
      cr2: u64(this.cr2),
      cr3: u64(this.cr3),
      cr4: BigInt(this.cr4 >>> 0),
      cr8: BigInt(this.cr8),
      efer: BigInt(this.efer),
      dr: Array.from(this.dr, (d) => u64(d)),
      pat: this.pat,
      sysenterCs: BigInt(this.sysenterCs),
      sysenterEsp: u64(this.sysenterEsp),
      sysenterEip: u64(this.sysenterEip),
      star: this.star,
      lstar: u64(this.lstar),
      cstar: u64(this.cstar),
      fmask: BigInt(this.fmask >>> 0),
      kernelGsBase: u64(this.kernelGsBase),
      tscAux: BigInt(this.tscAux >>> 0),
      interruptShadow: this.shadow > 0,
      nmiBlocked: this.nmiBlocked,
      activity: this.shutdown ? 'shutdown' : this.halted ? 'hlt' : 'active',
    };
  }

  /** Load a complete state (VM entry/exit, loaders). Flushes the TLB and re-derives the mode. */
  setState(st: ArchState): void {
    for (let i = 0; i < 16; i++) {
      const v = st.gpr[i] ?? 0n;
      this.rl[i] = Number(BigInt.asIntN(32, v));
      this.rh[i] = Number(BigInt.asIntN(32, v >> 32n));
    }
    this.fl = (Number(st.rflags & 0xffffffffn) | 2) >>> 0;
    this.lfOp = 0;
    this.cr0 = Number(st.cr0 & 0xffffffffn) | 0;
    this.cr2 = toNum(st.cr2);
    this.cr3 = Number(st.cr3);
    this.cr4 = Number(st.cr4 & 0xffffffffn);
    this.cr8 = Number(st.cr8 & 0xfn);
    this.efer = Number(st.efer & 0xffffffffn);
    const segs = [st.es, st.cs, st.ss, st.ds, st.fs, st.gs];
    segs.forEach((s, i) => {
      this.sSel[i] = s.selector;
      this.sBaseLo[i] = Number(BigInt.asIntN(32, s.base));
      this.sBaseHi[i] = Number(BigInt.asIntN(32, s.base >> 32n));
      this.sLimit[i] = s.limit >>> 0;
      this.sAttr[i] = s.attr;
    });
    const lin48 = (b: bigint): number => Number(b & 0xffff_ffff_ffffn);
    this.ldtrSel = st.ldtr.selector;
    this.ldtrBase = lin48(st.ldtr.base);
    this.ldtrLimit = st.ldtr.limit >>> 0;
    this.ldtrAttr = st.ldtr.attr;
    this.trSel = st.tr.selector;
    this.trBase = lin48(st.tr.base);
    this.trLimit = st.tr.limit >>> 0;
    this.trAttr = st.tr.attr;
    this.gdtrBase = lin48(st.gdtr.base);
    this.gdtrLimit = st.gdtr.limit;
    this.idtrBase = lin48(st.idtr.base);
    this.idtrLimit = st.idtr.limit;
    st.dr.forEach((d, i) => (this.dr[i] = Number(d)));
    this.pat = st.pat;
    this.sysenterCs = Number(st.sysenterCs & 0xffffn);
    this.sysenterEsp = toNum(st.sysenterEsp);
    this.sysenterEip = toNum(st.sysenterEip);
    this.star = st.star;
    this.lstar = toNum(st.lstar);
    this.cstar = toNum(st.cstar);
    this.fmask = Number(st.fmask & 0xffffffffn);
    this.kernelGsBase = toNum(st.kernelGsBase);
    this.tscAux = Number(st.tscAux & 0xffffffffn);
    this.shadow = st.interruptShadow ? 1 : 0;
    this.nmiBlocked = st.nmiBlocked;
    this.halted = st.activity !== 'active';
    this.shutdown = st.activity === 'shutdown';
    this.updateMode();
    // The CPL is SS.DPL (SDM Vol. 3C 26.3.1.5: what VM entry uses).
    if (this.pe && !this.v86) this.setCpl((this.sAttr[SS] >> 5) & 3);
    this.refreshSegOk();
    this.flushTlb();
    if (this.paging && !this.lma && this.cr4 & 0x20) {
      try {
        this.loadPdptes(this.cr3, false);
      } catch {
        // A second-stage hook refused the access: the PDPTEs stay as they were.
      }
    }
    const rip = toNum(st.rip);
    this.rip = this.mode64 ? rip : rip >>> 0;
    this.eventCheck = true;
  }

  /** Registers and key state for a stop report. */
  dumpState(): string {
    const h = (lo: number, hi: number): string =>
      (hi >>> 0).toString(16).padStart(8, '0') + (lo >>> 0).toString(16).padStart(8, '0');
    const lines: string[] = [];
    for (let i = 0; i < 16; i += 4) {
      lines.push(
        [0, 1, 2, 3]
          .map((k) => `${REG_NAMES[i + k]!.padStart(3)}=${h(this.rl[i + k], this.rh[i + k])}`)
          .join(' '),
      );
    }
    const rip = this._rip;
    lines.push(
      `rip=${h((rip % TWO32) | 0, Math.floor(rip / TWO32) | 0)} rflags=${(this.getFlags() >>> 0).toString(16).padStart(8, '0')} ` +
        `cpl=${this.cpl} mode=${this.mode64 ? 'long64' : this.lma ? 'compat' : this.pe ? (this.v86 ? 'v86' : this.cs32 ? 'prot32' : 'prot16') : 'real'}` +
        `${this.halted ? ' halted' : ''}`,
    );
    lines.push(
      SEG_NAMES.map(
        (n, s) =>
          `${n}=${this.sSel[s].toString(16).padStart(4, '0')}[${(this.sBaseLo[s] >>> 0).toString(16)} ${this.sLimit[s].toString(16)} ${this.sAttr[s].toString(16)}]`,
      ).join(' '),
    );
    lines.push(
      `cr0=${(this.cr0 >>> 0).toString(16)} cr2=${this.cr2.toString(16)} cr3=${this.cr3.toString(16)} cr4=${this.cr4.toString(16)} ` +
        `efer=${this.efer.toString(16)} gdtr=${this.gdtrBase.toString(16)}/${this.gdtrLimit.toString(16)} ` +
        `idtr=${this.idtrBase.toString(16)}/${this.idtrLimit.toString(16)} tr=${this.trSel.toString(16)} ldtr=${this.ldtrSel.toString(16)}`,
    );
    return lines.join('\n');
  }

  /** Counters and the diagnostic summary (invalid/unimplemented encodings met, by bytes and address). */
  stats(): Record<string, number | string> {
    const out: Record<string, number | string> = { instructions: this.icount, ...this.counters };
    let i = 0;
    for (const [k, n] of this.undefinedOps) {
      if (i++ >= 20) break;
      out[`ud[${k}]`] = n;
    }
    for (const [k, n] of this.unimplemented) out[`unimplemented[${k}]`] = n;
    return out;
  }

  /** A one-line summary of an exception vector, for logs. */
  static vectorName(v: number): string {
    return VECTOR_NAMES[v] ?? `vector ${v}`;
  }
}

export { EventType, MSR, RFLAGS };
