/**
 * The local APIC (Intel SDM Vol. 3A, chapter 11 "Advanced Programmable Interrupt Controller"), one
 * model behind both interfaces: the xAPIC MMIO page (§11.4.1) and the x2APIC MSRs 0x800-0x8FF
 * (§11.12), switched by IA32_APIC_BASE (§11.4.4, §11.12.5). Its timer (§11.5.4) counts on the
 * machine's virtual clock in one-shot, periodic and TSC-deadline modes.
 *
 * It is the CPU's interrupt controller (hasPendingInterrupt / acknowledgeInterrupt: the INTR/INTA
 * cycle) and the destination of I/O APIC messages (acceptInterrupt, with EOI broadcast for
 * level-triggered vectors). A VMM policy can own an instance as a guest's emulated x2APIC.
 *
 * #GP is the CPU's business: readMsr/writeMsr report `ok: false` / `false` where the SDM says
 * the access faults.
 */
import type { Timer, VirtualClock } from '../../src/core/clock.js';
import type { CpuCore } from '../../src/core/cpu.js';
import { DeliveryMode, type ExtIntSource, type LocalApic, type MsrRead } from '../../src/devices/apic.js';
import { RegisterBank, type RegisterSpec } from '../../src/devices/registers.js';
import { MSR } from '../../src/x86/msr.js';
import * as R from './registers.js';

/** Which interface the APIC is in (IA32_APIC_BASE.EN and .EXTD, SDM Table 11-5). */
export const ApicMode = { Disabled: 0, XApic: 1, X2Apic: 2 } as const;
export type ApicMode = (typeof ApicMode)[keyof typeof ApicMode];

export interface LocalApicOptions {
  clock: VirtualClock;
  /** Initial APIC ID (x2APIC ID; its low 8 bits are the xAPIC ID). */
  apicId?: number;
  /** The bootstrap processor (IA32_APIC_BASE.BSP; and QEMU's virtual-wire LINT0/LINT1 at reset). */
  bsp?: boolean;
  /** Whether x2APIC mode exists (CPUID.01H:ECX[21]); without it, setting EXTD faults. */
  x2apic?: boolean;
  /** The timer's base clock in MHz, before the divide configuration (the tutorial's 1 GHz). */
  timerMhz?: number;
  /** TSC frequency in MHz: IA32_TSC_DEADLINE compares against TSC = ns * tscMhz / 1000. */
  tscMhz?: number;
  /** The xAPIC page's address after reset (IA32_APIC_BASE[MAXPHYADDR-1:12]). */
  baseAddress?: number;
  /** MAXPHYADDR: IA32_APIC_BASE bits above it are reserved. */
  physAddrBits?: number;
  /** INTR may have changed (the CPU's interruptRequested). */
  onInterrupt?: () => void;
  /** An NMI was delivered (LINT1 in NMI mode, an NMI IPI or message). */
  onNmi?: () => void;
  /** The xAPIC page moved, or the MMIO interface was switched on or off (xAPIC mode only). */
  onMmioChange?: (base: number, mmioEnabled: boolean) => void;
  warn?: (message: string) => void;
}

export interface LocalApicStats {
  accepted: number;
  delivered: number;
  spurious: number;
  eois: number;
  timerExpiries: number;
  /** IPIs and messages this single-CPU model cannot deliver (INIT, SIPI, SMI, other CPUs). */
  undeliverable: number;
  /** MMIO accesses while the page is not active (x2APIC mode or disabled). */
  inactiveMmio: number;
  /** Accesses that made readMsr/writeMsr report #GP. */
  msrFaults: number;
}

/** x2APIC access to a register (SDM Table 11-6): absent (#GP), read/write, read-only, write-only. */
type X2Access = 'none' | 'rw' | 'ro' | 'wo';
const X2_NONE = 0;
const X2_RW = 1;
const X2_RO = 2;
const X2_WO = 3;
const X2_CODE: Record<X2Access, number> = { none: X2_NONE, rw: X2_RW, ro: X2_RO, wo: X2_WO };

interface ApicRegister extends RegisterSpec {
  readonly x2apic: X2Access;
  /** Absent from the xAPIC page (SELF IPI). */
  readonly x2apicOnly?: boolean;
}

const REG_SPACE = 0x400;
const LVT_OFFSETS = [
  R.APIC_LVT_TIMER,
  R.APIC_LVT_THERMAL,
  R.APIC_LVT_PERF,
  R.APIC_LVT_LINT0,
  R.APIC_LVT_LINT1,
  R.APIC_LVT_ERROR,
] as const;
const TWO_32 = 0x1_0000_0000;

export class LocalApicModel implements LocalApic {
  readonly regs: RegisterBank;
  readonly stats: LocalApicStats = {
    accepted: 0,
    delivered: 0,
    spurious: 0,
    eois: 0,
    timerExpiries: 0,
    undeliverable: 0,
    inactiveMmio: 0,
    msrFaults: 0,
  };
  /** 256-bit vectors (§11.8.4), 32 vectors per word. */
  readonly irr = new Uint32Array(8);
  readonly isr = new Uint32Array(8);
  readonly tmr = new Uint32Array(8);

  private mode: ApicMode = ApicMode.XApic;
  private baseAddress = R.DEFAULT_APIC_BASE_ADDRESS;
  private readonly initialId: number;
  private readonly bsp: boolean;
  private readonly x2apicSupported: boolean;
  private readonly timerMhz: number;
  private readonly tscMhz: number;
  private readonly baseReservedHi: number;
  /** Errors detected since the last ESR write (§11.5.3). */
  private errorsPending = 0;
  private icrDestX2 = 0;
  private readonly lintLevel = [false, false];
  private extIntSource: ExtIntSource | undefined;
  /** An ExtINT message arrived (I/O APIC pin in ExtINT mode): INTA asks the 8259A for the vector. */
  private extIntMessage = false;
  private intrLevel = false;
  private readonly eoiListeners: ((vector: number) => void)[] = [];
  private readonly x2Access = new Uint8Array(REG_SPACE >>> 4);
  private readonly x2Only = new Uint8Array(REG_SPACE >>> 4);
  private readonly msrResult: MsrRead = { ok: false, lo: 0, hi: 0 };
  private cpu: Pick<CpuCore, 'interruptRequested' | 'nmi'> | undefined;

  // register indices in the bank (hot ones cached)
  private readonly iTpr: number;
  private readonly iSvr: number;
  private readonly iEsr: number;
  private readonly iIcrLow: number;
  private readonly iIcrHigh: number;
  private readonly iLvtTimer: number;
  private readonly iLvtLint0: number;
  private readonly iLvtLint1: number;
  private readonly iLvtError: number;
  private readonly iInitialCount: number;
  private readonly iDcr: number;
  private readonly iLdr: number;
  private readonly iId: number;
  private readonly iDfr: number;
  private readonly lvtIndices: number[];

  // timer
  private readonly clock: VirtualClock;
  private readonly timer: Timer;
  /** Counting down (one-shot or periodic) since `countStartNs` from `countStartValue`. */
  private counting = false;
  private countStartNs = 0;
  private countStartValue = 0;
  /** Armed IA32_TSC_DEADLINE value; 0 when disarmed. */
  private tscDeadline = 0;

  constructor(private readonly opts: LocalApicOptions) {
    this.clock = opts.clock;
    this.initialId = opts.apicId ?? 0;
    this.bsp = opts.bsp ?? true;
    this.x2apicSupported = opts.x2apic ?? true;
    this.timerMhz = opts.timerMhz ?? 1000;
    this.tscMhz = opts.tscMhz ?? 3000;
    const phys = opts.physAddrBits ?? 40;
    this.baseReservedHi = phys >= 64 ? 0 : ~((2 ** (phys - 32) - 1) >>> 0) >>> 0;
    this.timer = this.clock.createTimer('lapic timer', (at) => this.timerExpired(at));

    const u = (
      name: string,
      offset: number,
      x2apic: X2Access,
      rest: Partial<ApicRegister> = {},
    ): ApicRegister => ({
      name,
      offset,
      width: 4,
      access: 'rw',
      x2apic,
      ...rest,
    });
    const bitmap = (name: string, base: number, words: Uint32Array): ApicRegister[] =>
      Array.from({ length: 8 }, (_, i) =>
        u(`${name}${i}`, base + i * 0x10, 'ro', { access: 'ro', onRead: () => words[i]! }),
      );
    const lvt = (name: string, offset: number, writeMask: number, rest: Partial<ApicRegister> = {}) =>
      u(name, offset, 'rw', {
        writeMask,
        reset: R.DEFAULT_LVT,
        ...rest,
        onWrite: (v, prev) => {
          // While the APIC is software-disabled the mask bits stay set (§11.4.7.2).
          if (!this.softwareEnabled()) this.regs.values[this.regs.indexOf(offset)]! |= R.LVT_MASK;
          rest.onWrite?.(v, prev);
        },
      });
    const specs: ApicRegister[] = [
      u('ID', R.APIC_ID, 'ro', { writeMask: 0xff00_0000, onRead: () => this.idRegister() }),
      u('VERSION', R.APIC_VERSION, 'ro', { access: 'ro', reset: R.DEFAULT_APIC_VERSION }),
      u('TPR', R.APIC_TPR, 'rw', { writeMask: 0xff, onWrite: () => this.update() }),
      u('APR', R.APIC_APR, 'none', { access: 'ro', unimplemented: 'arbitration priority reads 0' }),
      u('PPR', R.APIC_PPR, 'ro', { access: 'ro', onRead: () => this.ppr() }),
      u('EOI', R.APIC_EOI, 'wo', { access: 'wo', onWrite: () => this.eoi() }),
      u('RRD', R.APIC_RRD, 'none', { access: 'ro' }),
      u('LDR', R.APIC_LDR, 'ro', { writeMask: 0xff00_0000, onRead: () => this.ldr() }),
      u('DFR', R.APIC_DFR, 'none', { writeMask: 0xf000_0000, reset: 0xffff_ffff }),
      u('SVR', R.APIC_SVR, 'rw', {
        writeMask: R.SVR_VECTOR | R.SVR_APIC_ENABLE | R.SVR_FOCUS_DISABLE,
        reset: R.DEFAULT_SVR,
        onWrite: () => this.svrWritten(),
      }),
      ...bitmap('ISR', R.APIC_ISR, this.isr),
      ...bitmap('TMR', R.APIC_TMR, this.tmr),
      ...bitmap('IRR', R.APIC_IRR, this.irr),
      u('ESR', R.APIC_ESR, 'rw', {
        writeMask: 0,
        onWrite: () => {
          // A write latches the errors seen since the previous write; reads return the latch.
          this.regs.values[this.iEsr] = this.errorsPending;
          this.errorsPending = 0;
        },
      }),
      u('ICR_LOW', R.APIC_ICR_LOW, 'rw', {
        writeMask: R.ICR_LOW_WRITABLE,
        onWrite: (v) =>
          this.sendIpi(
            v,
            this.mode === ApicMode.X2Apic ? this.icrDestX2 : this.regs.values[this.iIcrHigh]! >>> 24,
          ),
      }),
      u('ICR_HIGH', R.APIC_ICR_HIGH, 'none', { writeMask: 0xff00_0000 }),
      lvt('LVT_TIMER', R.APIC_LVT_TIMER, R.LVT_TIMER_WRITABLE, {
        onWrite: (v, prev) => this.lvtTimerWritten(v, prev),
      }),
      lvt('LVT_THERMAL', R.APIC_LVT_THERMAL, R.LVT_OTHER_WRITABLE, {
        unimplemented: 'no thermal sensor: never fires',
      }),
      lvt('LVT_PERF', R.APIC_LVT_PERF, R.LVT_OTHER_WRITABLE, {
        unimplemented: 'no performance counters: never fires',
      }),
      lvt('LVT_LINT0', R.APIC_LVT_LINT0, R.LVT_LINT_WRITABLE, { onWrite: () => this.update() }),
      lvt('LVT_LINT1', R.APIC_LVT_LINT1, R.LVT_LINT_WRITABLE),
      lvt('LVT_ERROR', R.APIC_LVT_ERROR, R.LVT_ERROR_WRITABLE),
      u('TIMER_INITIAL_COUNT', R.APIC_TIMER_INITIAL_COUNT, 'rw', {
        onWrite: (v, prev) => this.initialCountWritten(v, prev),
      }),
      u('TIMER_CURRENT_COUNT', R.APIC_TIMER_CURRENT_COUNT, 'ro', {
        access: 'ro',
        onRead: () => this.currentCount(),
      }),
      u('TIMER_DIVIDE_CONFIG', R.APIC_TIMER_DIVIDE_CONFIG, 'rw', {
        writeMask: R.DCR_WRITABLE,
        onWrite: (_v, prev) => this.divideWritten(prev),
      }),
      u('SELF_IPI', R.APIC_SELF_IPI, 'wo', { access: 'wo', x2apicOnly: true }),
    ];
    this.regs = new RegisterBank('lapic', REG_SPACE, specs, opts.warn);
    this.regs.undefinedRead = 0;
    for (const s of specs) {
      this.x2Access[s.offset >>> 4] = X2_CODE[s.x2apic];
      if (s.x2apicOnly) this.x2Only[s.offset >>> 4] = 1;
    }
    const at = (o: number) => this.regs.indexOf(o);
    this.iTpr = at(R.APIC_TPR);
    this.iSvr = at(R.APIC_SVR);
    this.iEsr = at(R.APIC_ESR);
    this.iIcrLow = at(R.APIC_ICR_LOW);
    this.iIcrHigh = at(R.APIC_ICR_HIGH);
    this.iLvtTimer = at(R.APIC_LVT_TIMER);
    this.iLvtLint0 = at(R.APIC_LVT_LINT0);
    this.iLvtLint1 = at(R.APIC_LVT_LINT1);
    this.iLvtError = at(R.APIC_LVT_ERROR);
    this.iInitialCount = at(R.APIC_TIMER_INITIAL_COUNT);
    this.iDcr = at(R.APIC_TIMER_DIVIDE_CONFIG);
    this.iLdr = at(R.APIC_LDR);
    this.iId = at(R.APIC_ID);
    this.iDfr = at(R.APIC_DFR);
    this.lvtIndices = LVT_OFFSETS.map(at);
    this.reset();
  }

  // ---- reset and IA32_APIC_BASE ---------------------------------------------------------------

  /** Power-up / RESET state (§11.4.7.1): xAPIC mode at 0xFEE00000, software-disabled, LVTs masked. */
  reset(): void {
    this.mode = ApicMode.XApic;
    this.baseAddress = this.opts.baseAddress ?? R.DEFAULT_APIC_BASE_ADDRESS;
    this.resetRegisters();
    this.opts.onMmioChange?.(this.baseAddress, true);
  }

  private resetRegisters(): void {
    this.regs.reset();
    this.regs.values[this.iId] = (this.initialId & 0xff) << 24;
    if (this.bsp) {
      // QEMU's reset puts the BSP's LINT0 in ExtINT mode, unmasked (what a PC BIOS sets up for
      // virtual-wire mode), so the 8259A reaches the CPU; the other LVT entries stay masked.
      this.regs.values[this.iLvtLint0] = DeliveryMode.ExtINT << R.LVT_DELIVERY_MODE_SHIFT;
    }
    this.irr.fill(0);
    this.isr.fill(0);
    this.tmr.fill(0);
    this.errorsPending = 0;
    this.icrDestX2 = 0;
    this.extIntMessage = false;
    this.stopTimer();
    this.tscDeadline = 0;
    this.update();
  }

  get apicMode(): ApicMode {
    return this.mode;
  }

  /** The xAPIC page's physical address. */
  get mmioBase(): number {
    return this.baseAddress;
  }

  /** IA32_APIC_BASE as (lo, hi). */
  private apicBaseLo(): number {
    let v = (this.baseAddress % TWO_32) & 0xffff_f000;
    if (this.bsp) v |= R.APIC_BASE_BSP;
    if (this.mode !== ApicMode.Disabled) v |= R.APIC_BASE_EN;
    if (this.mode === ApicMode.X2Apic) v |= R.APIC_BASE_EXTD;
    return v >>> 0;
  }

  /** WRMSR IA32_APIC_BASE: the state transitions of SDM §11.12.5 (Figure 11-27); false means #GP. */
  private writeApicBase(lo: number, hi: number): boolean {
    if (lo & 0x2ff || hi & this.baseReservedHi) return false; // reserved bits (BSP, bit 8, is read-only)
    const en = (lo & R.APIC_BASE_EN) !== 0;
    const extd = (lo & R.APIC_BASE_EXTD) !== 0;
    if (extd && !this.x2apicSupported) return false;
    if (!en && extd) return false; // the invalid state
    const next = !en ? ApicMode.Disabled : extd ? ApicMode.X2Apic : ApicMode.XApic;
    const prev = this.mode;
    if (prev === ApicMode.X2Apic && next === ApicMode.XApic) return false; // x2APIC -> xAPIC only via disabled
    if (prev === ApicMode.Disabled && next === ApicMode.X2Apic) return false; // disabled -> x2APIC only via xAPIC
    const base = hi * TWO_32 + ((lo & 0xffff_f000) >>> 0);
    const moved = base !== this.baseAddress;
    this.baseAddress = base;
    this.mode = next;
    // Globally disabling the APIC returns it to its power-up state (keeping the base address).
    if (next === ApicMode.Disabled && prev !== ApicMode.Disabled) this.resetRegisters();
    if (moved || (prev === ApicMode.XApic) !== (next === ApicMode.XApic)) {
      this.opts.onMmioChange?.(this.baseAddress, next === ApicMode.XApic);
    }
    this.update();
    return true;
  }

  // ---- the two register interfaces -------------------------------------------------------------

  /** xAPIC MMIO read at an offset into the 4 KiB page. */
  mmioRead(offset: number, size: 1 | 2 | 4): number {
    if (this.mode !== ApicMode.XApic) {
      // In x2APIC mode (or disabled) the page does not respond (§11.12.2): reads float high.
      this.stats.inactiveMmio++;
      return size === 4 ? 0xffff_ffff : (1 << (size * 8)) - 1;
    }
    if (offset >= REG_SPACE || this.x2Only[offset >>> 4]) return 0;
    return this.regs.read(offset, size);
  }

  mmioWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    if (this.mode !== ApicMode.XApic) {
      this.stats.inactiveMmio++;
      return;
    }
    if (offset >= REG_SPACE || this.x2Only[offset >>> 4]) return;
    this.regs.write(offset, size, value);
  }

  handlesMsr(msr: number): boolean {
    return (
      msr === MSR.IA32_APIC_BASE ||
      msr === MSR.IA32_TSC_DEADLINE ||
      (msr >= MSR.X2APIC_FIRST && msr <= MSR.X2APIC_LAST)
    );
  }

  /** RDMSR. The returned object is reused: copy its fields. */
  readMsr(msr: number): MsrRead {
    const r = this.msrResult;
    r.ok = true;
    r.hi = 0;
    if (msr === MSR.IA32_APIC_BASE) {
      r.lo = this.apicBaseLo();
      r.hi = Math.floor(this.baseAddress / TWO_32);
      return r;
    }
    if (msr === MSR.IA32_TSC_DEADLINE) {
      // Reads 0 outside TSC-deadline mode (§11.5.4.1).
      const v = this.timerMode() === R.TimerMode.TscDeadline ? this.tscDeadline : 0;
      r.lo = (v % TWO_32) >>> 0;
      r.hi = Math.floor(v / TWO_32) >>> 0;
      return r;
    }
    const access = this.x2apicAccess(msr);
    if (access === X2_NONE || access === X2_WO) return this.msrFault();
    const offset = R.x2apicOffset(msr);
    r.lo = this.regs.read(offset, 4);
    if (offset === R.APIC_ICR_LOW) r.hi = this.icrDestX2;
    return r;
  }

  /** WRMSR of EDX:EAX = hi:lo; false means #GP(0). */
  writeMsr(msr: number, lo: number, hi: number): boolean {
    lo >>>= 0;
    hi >>>= 0;
    if (msr === MSR.IA32_APIC_BASE) return this.writeApicBase(lo, hi) || this.faulted();
    if (msr === MSR.IA32_TSC_DEADLINE) {
      this.writeTscDeadline(hi * TWO_32 + lo);
      return true;
    }
    const access = this.x2apicAccess(msr);
    if (access === X2_NONE || access === X2_RO) return this.faulted();
    const offset = R.x2apicOffset(msr);
    if (offset === R.APIC_ICR_LOW) {
      // The 64-bit x2APIC ICR: destination in bits 63:32, written in one WRMSR (§11.12.9).
      this.icrDestX2 = hi;
      this.regs.write(offset, 4, lo);
      return true;
    }
    if (hi !== 0) return this.faulted(); // 32-bit registers: EDX is reserved
    // EOI and ESR take only 0 in x2APIC mode (§11.12.1.2).
    if ((offset === R.APIC_EOI || offset === R.APIC_ESR) && lo !== 0) return this.faulted();
    if (offset === R.APIC_SELF_IPI) {
      this.selfInterrupt(lo & 0xff);
      return true;
    }
    this.regs.write(offset, 4, lo);
    return true;
  }

  private x2apicAccess(msr: number): number {
    if (this.mode !== ApicMode.X2Apic || msr < MSR.X2APIC_FIRST || msr > MSR.X2APIC_LAST) return X2_NONE;
    const i = msr - MSR.X2APIC_FIRST;
    return i < this.x2Access.length ? this.x2Access[i]! : X2_NONE;
  }

  private msrFault(): MsrRead {
    this.stats.msrFaults++;
    const r = this.msrResult;
    r.ok = false;
    r.lo = 0;
    r.hi = 0;
    return r;
  }

  private faulted(): false {
    this.stats.msrFaults++;
    return false;
  }

  /** The CPU whose INTR this APIC drives (the CPU calls this in its attach hook). */
  connectCpu(cpu: Pick<CpuCore, 'interruptRequested' | 'nmi'> | undefined): void {
    this.cpu = cpu;
    if (cpu && this.intrLevel) cpu.interruptRequested();
  }

  private nmi(): void {
    this.opts.onNmi?.();
    this.cpu?.nmi();
  }

  // ---- identification and priority --------------------------------------------------------------

  get apicId(): number {
    return this.mode === ApicMode.X2Apic ? this.initialId : this.regs.values[this.iId]! >>> 24;
  }

  private idRegister(): number {
    return this.mode === ApicMode.X2Apic ? this.initialId >>> 0 : this.regs.values[this.iId]!;
  }

  /** x2APIC: the logical ID is derived from the x2APIC ID (§11.12.10.2); xAPIC: as written. */
  private ldr(): number {
    if (this.mode !== ApicMode.X2Apic) return this.regs.values[this.iLdr]!;
    const id = this.initialId;
    return (((id >>> 4) << 16) | (1 << (id & 0xf))) >>> 0;
  }

  matchesDestination(destination: number, logical: boolean): boolean {
    const x2 = this.mode === ApicMode.X2Apic;
    if (!logical) {
      if (x2)
        return (
          destination >>> 0 === 0xffff_ffff || destination === 0xff || destination >>> 0 === this.initialId
        );
      return (destination & 0xff) === 0xff || (destination & 0xff) === this.apicId;
    }
    if (x2) {
      const ldr = this.ldr();
      return (
        destination >>> 0 === 0xffff_ffff ||
        (destination >>> 16 === ldr >>> 16 && (destination & ldr & 0xffff) !== 0)
      );
    }
    const dest = destination & 0xff;
    if (dest === 0xff) return true;
    const logicalId = this.regs.values[this.iLdr]! >>> 24;
    // DFR model: flat (0b1111) or cluster (0b0000), §11.6.2.2.
    if (this.regs.values[this.iDfr]! >>> 28 === 0xf) return (dest & logicalId) !== 0;
    return dest >>> 4 === logicalId >>> 4 && (dest & logicalId & 0xf) !== 0;
  }

  /** Processor priority (§11.8.3.1): the TPR, or the class of the highest in-service vector if higher. */
  ppr(): number {
    const tpr = this.regs.values[this.iTpr]!;
    const isrv = highest(this.isr);
    const isrClass = isrv < 0 ? 0 : isrv & 0xf0;
    return (tpr & 0xf0) >= isrClass ? tpr : isrClass;
  }

  private softwareEnabled(): boolean {
    return (this.regs.values[this.iSvr]! & R.SVR_APIC_ENABLE) !== 0;
  }

  private svrWritten(): void {
    // Software-disabling masks every LVT entry (§11.4.7.2).
    if (!this.softwareEnabled()) for (const i of this.lvtIndices) this.regs.values[i]! |= R.LVT_MASK;
    this.update();
  }

  // ---- accepting and delivering interrupts ---------------------------------------------------------

  acceptInterrupt(vector: number, levelTriggered: boolean, mode: DeliveryMode = DeliveryMode.Fixed): void {
    if (this.mode === ApicMode.Disabled) {
      this.stats.undeliverable++;
      return;
    }
    switch (mode) {
      case DeliveryMode.Fixed:
      case DeliveryMode.LowestPriority:
        break;
      case DeliveryMode.NMI:
        this.nmi();
        return;
      case DeliveryMode.ExtINT:
        this.extIntMessage = true;
        this.update();
        return;
      default:
        this.stats.undeliverable++; // SMI, INIT, SIPI: not modelled on a single CPU
        return;
    }
    if (vector < 16) {
      this.error(R.ESR_RECEIVE_ILLEGAL_VECTOR);
      return;
    }
    this.stats.accepted++;
    const w = vector >>> 5;
    const bit = 1 << (vector & 31);
    this.irr[w]! |= bit;
    if (levelTriggered) this.tmr[w]! |= bit;
    else this.tmr[w]! &= ~bit;
    this.update();
  }

  onEoi(listener: (vector: number) => void): void {
    this.eoiListeners.push(listener);
  }

  setExtIntSource(source: ExtIntSource | undefined): void {
    this.extIntSource = source;
    this.update();
  }

  setLint(pin: 0 | 1, level: boolean): void {
    const was = this.lintLevel[pin];
    this.lintLevel[pin] = level;
    if (level && !was) {
      const lvt = this.regs.values[pin === 0 ? this.iLvtLint0 : this.iLvtLint1]!;
      if (this.mode !== ApicMode.Disabled && !(lvt & R.LVT_MASK)) {
        const dm = (lvt & R.LVT_DELIVERY_MODE) >>> R.LVT_DELIVERY_MODE_SHIFT;
        if (dm === DeliveryMode.NMI) this.nmi();
        else if (dm === DeliveryMode.Fixed)
          this.acceptInterrupt(lvt & R.LVT_VECTOR, (lvt & R.LVT_TRIGGER_MODE) !== 0);
      }
    }
    this.update();
  }

  /** An ExtINT is pending: LINT0 in ExtINT mode with the 8259A's INTR high, or an ExtINT message. */
  private extIntPending(): boolean {
    if (this.extIntSource === undefined) return false;
    if (this.mode === ApicMode.Disabled) return this.lintLevel[0]!; // no APIC: INTR goes straight to the CPU
    if (this.extIntMessage) return true;
    const lvt = this.regs.values[this.iLvtLint0]!;
    return (
      this.lintLevel[0]! &&
      !(lvt & R.LVT_MASK) &&
      (lvt & R.LVT_DELIVERY_MODE) >>> R.LVT_DELIVERY_MODE_SHIFT === DeliveryMode.ExtINT
    );
  }

  hasPendingInterrupt(): boolean {
    if (this.extIntPending()) return true;
    if (this.mode === ApicMode.Disabled || !this.softwareEnabled()) return false;
    const v = highest(this.irr);
    return v >= 0 && (v & 0xf0) > (this.ppr() & 0xf0);
  }

  /** INTA: the highest-priority deliverable vector moves from IRR to ISR (§11.8.4). */
  acknowledgeInterrupt(): number {
    if (this.extIntPending()) {
      this.extIntMessage = false;
      const v = this.extIntSource!.acknowledgeInterrupt();
      this.update();
      return v;
    }
    const v = highest(this.irr);
    if (v < 0 || !this.softwareEnabled() || (v & 0xf0) <= (this.ppr() & 0xf0)) {
      // Nothing deliverable any more (e.g. the TPR was raised): the spurious vector, ISR untouched (§11.9).
      this.stats.spurious++;
      return this.regs.values[this.iSvr]! & R.SVR_VECTOR;
    }
    const w = v >>> 5;
    const bit = 1 << (v & 31);
    this.irr[w]! &= ~bit;
    this.isr[w]! |= bit;
    this.stats.delivered++;
    this.update();
    return v;
  }

  /** EOI (§11.8.5): retire the highest in-service vector; broadcast it if it was level-triggered. */
  private eoi(): void {
    const v = highest(this.isr);
    if (v < 0) return;
    this.stats.eois++;
    const w = v >>> 5;
    const bit = 1 << (v & 31);
    this.isr[w]! &= ~bit;
    if (this.tmr[w]! & bit) for (const l of this.eoiListeners) l(v);
    this.update();
  }

  /** Tell the CPU when the INTR output changes. */
  private update(): void {
    const level = this.hasPendingInterrupt();
    if (level !== this.intrLevel) {
      this.intrLevel = level;
      if (level) {
        this.opts.onInterrupt?.();
        this.cpu?.interruptRequested();
      }
    }
  }

  private error(bits: number): void {
    const first = (this.errorsPending & bits) !== bits;
    this.errorsPending |= bits;
    const lvt = this.regs.values[this.iLvtError]!;
    // An error interrupt whose own vector is illegal would recurse: it only records the error.
    if (first && !(lvt & R.LVT_MASK) && (lvt & R.LVT_VECTOR) >= 16)
      this.acceptInterrupt(lvt & R.LVT_VECTOR, false);
  }

  // ---- IPIs ------------------------------------------------------------------------------------------

  private sendIpi(icr: number, destination: number): void {
    const vector = icr & R.ICR_VECTOR;
    const mode = ((icr >>> R.ICR_DELIVERY_MODE_SHIFT) & 0b111) as DeliveryMode;
    const shorthand = (icr >>> R.ICR_SHORTHAND_SHIFT) & 0b11;
    const level = (icr & R.ICR_TRIGGER_LEVEL) !== 0;
    let self: boolean;
    switch (shorthand) {
      case R.Shorthand.Self:
      case R.Shorthand.AllIncludingSelf:
        self = true;
        break;
      case R.Shorthand.AllExcludingSelf:
        self = false;
        break;
      default:
        self = this.matchesDestination(destination, (icr & R.ICR_DEST_MODE_LOGICAL) !== 0);
    }
    if ((mode === DeliveryMode.Fixed || mode === DeliveryMode.LowestPriority) && vector < 16) {
      this.error(R.ESR_SEND_ILLEGAL_VECTOR);
      return;
    }
    if (!self) {
      this.stats.undeliverable++; // no other processors on this machine
      return;
    }
    this.acceptInterrupt(vector, level, mode);
  }

  private selfInterrupt(vector: number): void {
    if (vector < 16) {
      this.error(R.ESR_SEND_ILLEGAL_VECTOR);
      return;
    }
    this.acceptInterrupt(vector, false);
  }

  // ---- the timer (§11.5.4) -----------------------------------------------------------------------------

  private timerMode(): number {
    return (this.regs.values[this.iLvtTimer]! & R.LVT_TIMER_MODE) >>> R.LVT_TIMER_MODE_SHIFT;
  }

  /** Nanoseconds per timer tick at the current divide configuration. */
  private tickNs(): number {
    return (R.dcrDivisor(this.regs.values[this.iDcr]!) * 1000) / this.timerMhz;
  }

  private startCountdown(count: number, fromNs: number): void {
    if (count === 0) {
      this.stopTimer();
      return;
    }
    this.counting = true;
    this.countStartNs = fromNs;
    this.countStartValue = count;
    this.clock.arm(this.timer, fromNs + count * this.tickNs());
  }

  private stopTimer(): void {
    this.counting = false;
    this.clock.cancel(this.timer);
  }

  /** TIMER_CURRENT_COUNT: counts down from the initial count; 0 once a one-shot count expired. */
  currentCount(): number {
    if (!this.counting) return 0;
    const ticks = Math.floor((this.clock.now - this.countStartNs) / this.tickNs());
    const left = this.countStartValue - ticks;
    if (left > 0) return left;
    if (this.timerMode() !== R.TimerMode.Periodic) return 0;
    // Periodic, expiry not yet processed by the clock: where the reloaded count has got to.
    const initial = this.regs.values[this.iInitialCount]!;
    return initial === 0 ? 0 : initial - (-left % initial);
  }

  private initialCountWritten(value: number, previous: number): void {
    if (this.timerMode() === R.TimerMode.TscDeadline) {
      this.regs.values[this.iInitialCount] = previous; // ignored in TSC-deadline mode
      return;
    }
    // A write starts a new count (0 stops the timer).
    this.startCountdown(value >>> 0, this.clock.now);
  }

  private divideWritten(previous: number): void {
    if (!this.counting) return;
    // Keep the count reached so far and continue from it at the new rate.
    const now = this.clock.now;
    const ticks = Math.floor((now - this.countStartNs) / ((R.dcrDivisor(previous) * 1000) / this.timerMhz));
    const left = this.countStartValue - ticks;
    if (left > 0) this.startCountdown(left, now);
  }

  private lvtTimerWritten(value: number, previous: number): void {
    const oldMode = (previous & R.LVT_TIMER_MODE) >>> R.LVT_TIMER_MODE_SHIFT;
    const newMode = (value & R.LVT_TIMER_MODE) >>> R.LVT_TIMER_MODE_SHIFT;
    if (oldMode !== newMode && (oldMode === R.TimerMode.TscDeadline || newMode === R.TimerMode.TscDeadline)) {
      // Changing to or from TSC-deadline mode disarms the timer (§11.5.4.1).
      this.stopTimer();
      this.tscDeadline = 0;
      if (newMode === R.TimerMode.TscDeadline) this.regs.values[this.iInitialCount] = 0;
    }
  }

  /** The TSC at the current virtual time. */
  tsc(): number {
    return Math.floor((this.clock.now * this.tscMhz) / 1000);
  }

  private writeTscDeadline(value: number): void {
    // Writes are ignored outside TSC-deadline mode; 0 disarms (§11.5.4.1).
    if (this.timerMode() !== R.TimerMode.TscDeadline) return;
    this.tscDeadline = value;
    if (value === 0) {
      this.clock.cancel(this.timer);
      return;
    }
    const at = Math.max(this.clock.now, Math.ceil((value * 1000) / this.tscMhz));
    this.clock.arm(this.timer, at);
  }

  private timerExpired(at: number): void {
    this.stats.timerExpiries++;
    const mode = this.timerMode();
    if (mode === R.TimerMode.TscDeadline) {
      this.tscDeadline = 0;
    } else if (mode === R.TimerMode.Periodic) {
      const initial = this.regs.values[this.iInitialCount]!;
      if (initial === 0) this.counting = false;
      else {
        // Reload; if the clock ran past several periods, skip the ones that were missed (they coalesce).
        const period = initial * this.tickNs();
        const missed = Math.floor((this.clock.now - at) / period);
        this.startCountdown(initial, at + missed * period);
      }
    } else {
      this.counting = false;
    }
    const lvt = this.regs.values[this.iLvtTimer]!;
    if (!(lvt & R.LVT_MASK)) this.acceptInterrupt(lvt & R.LVT_VECTOR, false);
  }
}

/** The highest set bit of a 256-bit vector, or -1. */
function highest(words: Uint32Array): number {
  for (let w = 7; w >= 0; w--) {
    const x = words[w]!;
    if (x !== 0) return w * 32 + 31 - Math.clz32(x);
  }
  return -1;
}
