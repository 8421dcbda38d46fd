/**
 * The High Precision Event Timer (IA-PC HPET Specification 1.0a, §2.3 "Register Interface"):
 * a 64-bit main counter at 100 MHz driven by the machine's virtual clock, and three timers with
 * comparators, one-shot and periodic modes, legacy replacement routing (timer 0 -> IRQ0, timer 1
 * -> IRQ8, §2.3.8.3) or I/O APIC routing (Tn_INT_ROUTE_CNF), edge or level interrupts.
 *
 * 64-bit registers are declared as their two 32-bit halves (the bus splits an 8-byte access into
 * two 4-byte ones, low half first). 64-bit values are kept as exact (hi, lo) pairs; differences
 * are plain numbers, exact below 2^53 ticks (about 2.8 years at 100 MHz).
 *
 * All three timers are 64-bit and periodic capable, as in QEMU (the ICH9 gives timers 1 and 2
 * neither); FSB (MSI) delivery is not offered (Tn_FSB_INT_DEL_CAP = 0).
 */
import type { Timer, VirtualClock } from '../../src/core/clock.js';
import { RegisterBank, type RegisterSpec } from '../../src/devices/registers.js';

/** Register offsets (§2.3.1, Table 3). */
export const GCAP_ID = 0x000;
export const GEN_CONF = 0x010;
export const GINTR_STA = 0x020;
export const MAIN_CNT = 0x0f0;
/** Timer N registers: at 0x100 + 0x20 * N. */
export const TIMER_BASE = 0x100;
export const TIMER_STRIDE = 0x20;
export const Tn_CONF_CAP = 0x00;
export const Tn_COMPARATOR = 0x08;
export const Tn_FSB_ROUTE = 0x10;
export const HPET_MMIO_SIZE = 0x1000;

/** GCAP_ID fields (§2.3.4). */
export const REV_ID = 0x01;
export const NUM_TIMERS = 3;
export const NUM_TIM_CAP_SHIFT = 8;
export const COUNT_SIZE_CAP = 1 << 13;
export const LEG_RT_CAP = 1 << 15;
export const VENDOR_ID = 0x8086;
/** Main counter period in femtoseconds: 10 ns = 100 MHz. */
export const COUNTER_CLK_PERIOD_FS = 10_000_000;
export const COUNTER_TICK_NS = COUNTER_CLK_PERIOD_FS / 1_000_000;
export const DEFAULT_GCAP_ID_LO =
  (VENDOR_ID << 16) | LEG_RT_CAP | COUNT_SIZE_CAP | ((NUM_TIMERS - 1) << NUM_TIM_CAP_SHIFT) | REV_ID;

/** GEN_CONF fields (§2.3.5). */
export const ENABLE_CNF = 1 << 0;
export const LEG_RT_CNF = 1 << 1;

/** Tn_CONF_CAP fields (§2.3.8). */
export const Tn_INT_TYPE_CNF = 1 << 1; // 1 = level-triggered
export const Tn_INT_ENB_CNF = 1 << 2;
export const Tn_TYPE_CNF = 1 << 3; // 1 = periodic
export const Tn_PER_INT_CAP = 1 << 4;
export const Tn_SIZE_CAP = 1 << 5; // 1 = 64-bit
export const Tn_VAL_SET_CNF = 1 << 6;
export const Tn_32MODE_CNF = 1 << 8;
export const Tn_INT_ROUTE_CNF_SHIFT = 9;
export const Tn_INT_ROUTE_CNF = 0b11111 << Tn_INT_ROUTE_CNF_SHIFT;
export const Tn_FSB_EN_CNF = 1 << 14;
export const Tn_FSB_INT_DEL_CAP = 1 << 15;
export const Tn_CONF_WRITABLE =
  Tn_INT_TYPE_CNF | Tn_INT_ENB_CNF | Tn_TYPE_CNF | Tn_VAL_SET_CNF | Tn_32MODE_CNF | Tn_INT_ROUTE_CNF;
/** Tn_INT_ROUTE_CAP (the high half of Tn_CONF_CAP): I/O APIC inputs 20-23, as on the ICH9. */
export const DEFAULT_INT_ROUTE_CAP = 0x00f0_0000;
/** Legacy replacement routes (§2.3.8.3 / Table 2): timer 0 -> IRQ0 (I/O APIC pin 2), timer 1 -> IRQ8. */
export const LEGACY_IRQ = [0, 8] as const;

const TWO_32 = 0x1_0000_0000;

export interface HpetOptions {
  clock: VirtualClock;
  /** Drive an interrupt line (ISA IRQ / GSI). */
  setIrq: (line: number, level: boolean) => void;
  intRouteCap?: number;
  warn?: (message: string) => void;
}

export interface HpetStats {
  expiries: number;
  interrupts: number;
}

interface HpetTimer {
  readonly n: number;
  config: number;
  cmpHi: number;
  cmpLo: number;
  periodHi: number;
  periodLo: number;
  /** A VAL_SET low-half write: the high half that follows (the rest of an 8-byte write) sets the comparator too. */
  valSetHighPending: boolean;
  /** The interrupt line this timer holds asserted (level mode), or -1. */
  assertedLine: number;
  readonly clockTimer: Timer;
}

export class Hpet {
  readonly regs: RegisterBank;
  readonly stats: HpetStats = { expiries: 0, interrupts: 0 };
  private readonly clock: VirtualClock;
  private readonly timers: HpetTimer[];
  private genConf = 0;
  private intSta = 0;
  /** Main counter: its value at `enabledNs` (while enabled) or its value (while halted). */
  private cntHi = 0;
  private cntLo = 0;
  private enabledNs = 0;
  private readonly intRouteCap: number;

  constructor(private readonly opts: HpetOptions) {
    this.clock = opts.clock;
    this.intRouteCap = opts.intRouteCap ?? DEFAULT_INT_ROUTE_CAP;
    this.timers = Array.from({ length: NUM_TIMERS }, (_, n) => ({
      n,
      config: 0,
      cmpHi: 0,
      cmpLo: 0,
      periodHi: 0,
      periodLo: 0,
      valSetHighPending: false,
      assertedLine: -1,
      clockTimer: this.clock.createTimer(`hpet timer ${n}`, (at) => this.expire(n, at)),
    }));
    const specs: RegisterSpec[] = [
      { name: 'GCAP_ID[31:0]', offset: GCAP_ID, width: 4, access: 'ro', reset: DEFAULT_GCAP_ID_LO },
      { name: 'GCAP_ID[63:32]', offset: GCAP_ID + 4, width: 4, access: 'ro', reset: COUNTER_CLK_PERIOD_FS },
      {
        name: 'GEN_CONF[31:0]',
        offset: GEN_CONF,
        width: 4,
        access: 'rw',
        writeMask: ENABLE_CNF | LEG_RT_CNF,
        onRead: () => this.genConf,
        onWrite: (v) => this.writeGenConf(v & (ENABLE_CNF | LEG_RT_CNF)),
      },
      { name: 'GEN_CONF[63:32]', offset: GEN_CONF + 4, width: 4, access: 'ro' },
      {
        name: 'GINTR_STA[31:0]',
        offset: GINTR_STA,
        width: 4,
        access: 'w1c',
        onRead: () => this.intSta,
        onWrite: (v) => this.clearStatus(v),
      },
      { name: 'GINTR_STA[63:32]', offset: GINTR_STA + 4, width: 4, access: 'ro' },
      {
        name: 'MAIN_CNT[31:0]',
        offset: MAIN_CNT,
        width: 4,
        access: 'rw',
        onRead: () => this.counterLo(),
        onWrite: (v) => this.writeCounter(false, v),
      },
      {
        name: 'MAIN_CNT[63:32]',
        offset: MAIN_CNT + 4,
        width: 4,
        access: 'rw',
        onRead: () => this.counterHi(),
        onWrite: (v) => this.writeCounter(true, v),
      },
    ];
    for (const t of this.timers) {
      const base = TIMER_BASE + t.n * TIMER_STRIDE;
      specs.push(
        {
          name: `T${t.n}_CONF_CAP[31:0]`,
          offset: base + Tn_CONF_CAP,
          width: 4,
          access: 'rw',
          onRead: () => t.config | Tn_PER_INT_CAP | Tn_SIZE_CAP,
          onWrite: (v) => this.writeConfig(t, v),
        },
        {
          name: `T${t.n}_CONF_CAP[63:32]`,
          offset: base + Tn_CONF_CAP + 4,
          width: 4,
          access: 'ro',
          reset: this.intRouteCap,
        },
        {
          name: `T${t.n}_COMPARATOR[31:0]`,
          offset: base + Tn_COMPARATOR,
          width: 4,
          access: 'rw',
          onRead: () => t.cmpLo,
          onWrite: (v) => this.writeComparator(t, false, v),
        },
        {
          name: `T${t.n}_COMPARATOR[63:32]`,
          offset: base + Tn_COMPARATOR + 4,
          width: 4,
          access: 'rw',
          onRead: () => (t.config & Tn_32MODE_CNF ? 0 : t.cmpHi),
          onWrite: (v) => this.writeComparator(t, true, v),
        },
        {
          name: `T${t.n}_FSB_ROUTE[31:0]`,
          offset: base + Tn_FSB_ROUTE,
          width: 4,
          access: 'rw',
          unimplemented: 'FSB (MSI) delivery is not offered',
        },
        {
          name: `T${t.n}_FSB_ROUTE[63:32]`,
          offset: base + Tn_FSB_ROUTE + 4,
          width: 4,
          access: 'rw',
          unimplemented: 'FSB (MSI) delivery is not offered',
        },
      );
    }
    this.regs = new RegisterBank('hpet', HPET_MMIO_SIZE, specs, opts.warn);
    // Reserved space reads as 0.
    this.regs.undefinedRead = 0;
    this.reset();
  }

  reset(): void {
    for (const t of this.timers) {
      this.clock.cancel(t.clockTimer);
      this.deassert(t);
      t.config = 0;
      // Comparators reset to all ones (§2.3.9); periods to 0.
      t.cmpHi = 0xffff_ffff;
      t.cmpLo = 0xffff_ffff;
      t.periodHi = 0;
      t.periodLo = 0;
      t.valSetHighPending = false;
    }
    this.regs.reset();
    this.genConf = 0;
    this.intSta = 0;
    this.cntHi = 0;
    this.cntLo = 0;
  }

  mmioRead(offset: number, size: 1 | 2 | 4): number {
    return this.regs.read(offset, size);
  }

  mmioWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    this.regs.write(offset, size, value);
  }

  // ---- main counter (§2.3.7) -------------------------------------------------------------------

  private enabled(): boolean {
    return (this.genConf & ENABLE_CNF) !== 0;
  }

  /** Ticks counted since the counter was last enabled (0 while halted). */
  private elapsedTicks(): number {
    return this.enabled() ? Math.floor((this.clock.now - this.enabledNs) / COUNTER_TICK_NS) : 0;
  }

  private counterLo(): number {
    return (this.cntLo + this.elapsedTicks()) % TWO_32;
  }

  private counterHi(): number {
    return (this.cntHi + Math.floor((this.cntLo + this.elapsedTicks()) / TWO_32)) % TWO_32;
  }

  /** The main counter as a number (exact below 2^53). */
  counter(): number {
    return this.counterHi() * TWO_32 + this.counterLo();
  }

  private writeCounter(high: boolean, v: number): void {
    // Writable only while halted (§2.3.7: software should halt the counter before writing it);
    // a write while counting is ignored, as QEMU does.
    if (this.enabled()) return;
    if (high) this.cntHi = v >>> 0;
    else this.cntLo = v >>> 0;
  }

  private writeGenConf(v: number): void {
    const was = this.genConf;
    if (!(was & ENABLE_CNF) && v & ENABLE_CNF) this.enabledNs = this.clock.now;
    if (was & ENABLE_CNF && !(v & ENABLE_CNF)) {
      // Halt: latch the count reached.
      const lo = this.cntLo + this.elapsedTicks();
      this.cntHi = (this.cntHi + Math.floor(lo / TWO_32)) % TWO_32;
      this.cntLo = lo % TWO_32;
    }
    this.genConf = v;
    const starting = !(was & ENABLE_CNF) && (v & ENABLE_CNF) !== 0;
    for (const t of this.timers) {
      // Routes may have changed (LEG_RT_CNF): drop a held level, it is re-raised on the new line.
      this.deassert(t);
      if (this.intSta & (1 << t.n)) this.assertLevel(t);
      this.arm(t, starting);
    }
  }

  // ---- timers (§2.3.8, §2.3.9) -----------------------------------------------------------------

  private writeConfig(t: HpetTimer, v: number): void {
    const before = t.config;
    t.config = v & Tn_CONF_WRITABLE;
    t.valSetHighPending = false;
    if (t.config & Tn_32MODE_CNF && !(before & Tn_32MODE_CNF)) {
      // Switching to 32-bit mode truncates the comparator (§2.3.8, Tn_32MODE_CNF).
      t.cmpHi = 0;
      t.periodHi = 0;
    }
    // Interrupt type or enable changed: re-evaluate the held level.
    this.deassert(t);
    if (this.intSta & (1 << t.n)) {
      if (t.config & Tn_INT_TYPE_CNF) this.assertLevel(t);
      else this.intSta &= ~(1 << t.n); // edge mode has no status
    }
    this.arm(t, (t.config & Tn_INT_ENB_CNF) !== 0 && !(before & Tn_INT_ENB_CNF));
  }

  /**
   * Comparator writes (§2.3.9; QEMU's reading of it): in one-shot mode they set the comparator;
   * in periodic mode they set the period, and also the comparator when Tn_VAL_SET_CNF is set,
   * which the write then clears.
   */
  private writeComparator(t: HpetTimer, high: boolean, v: number): void {
    v >>>= 0;
    const periodic = (t.config & Tn_TYPE_CNF) !== 0;
    if (high) {
      if (t.config & Tn_32MODE_CNF) return; // the upper half does not exist in 32-bit mode
      if (!periodic || t.valSetHighPending) t.cmpHi = v;
      if (periodic) t.periodHi = v;
      t.valSetHighPending = false;
    } else {
      const setVal = (t.config & Tn_VAL_SET_CNF) !== 0;
      if (!periodic || setVal) t.cmpLo = v;
      if (periodic) t.periodLo = v;
      t.valSetHighPending = periodic && setVal;
      t.config &= ~Tn_VAL_SET_CNF;
    }
    this.arm(t, true);
  }

  /**
   * Schedule the clock timer at the tick where the counter next equals the comparator.
   *
   * `lateFires`: when software has just written the comparator, enabled the timer's interrupt or
   * started the counter, a comparator at or behind the counter (signed difference <= 0) matches at
   * the next tick, as QEMU does, rather than after the counter wraps (in 64-bit mode: never). On
   * other changes (a configuration write, a one-shot that has fired) only a real match counts.
   */
  private arm(t: HpetTimer, lateFires: boolean): void {
    const ticks = this.enabled() ? this.ticksUntilMatch(t, lateFires) : Infinity;
    if (ticks === Infinity) {
      this.clock.cancel(t.clockTimer);
      return;
    }
    this.clock.arm(t.clockTimer, this.enabledNs + (this.elapsedTicks() + ticks) * COUNTER_TICK_NS);
  }

  private ticksUntilMatch(t: HpetTimer, lateFires: boolean): number {
    const cntLo = this.counterLo();
    if (t.config & Tn_32MODE_CNF) {
      const d = (t.cmpLo - cntLo) | 0;
      if (lateFires && d <= 0) return 1;
      // Exact: the low half matches again within one wrap of the 32-bit counter.
      const u = (t.cmpLo - cntLo) >>> 0;
      return u === 0 ? TWO_32 : u;
    }
    const lo = t.cmpLo - cntLo;
    const borrow = lo < 0 ? 1 : 0;
    const hi = (t.cmpHi - this.counterHi() - borrow) | 0;
    const d = hi * TWO_32 + (lo + borrow * TWO_32);
    if (d > 0) return d;
    return lateFires ? 1 : Infinity;
  }

  private expire(n: number, at: number): void {
    const t = this.timers[n]!;
    if (!this.enabled()) return;
    this.stats.expiries++;
    this.raise(t);
    if (t.config & Tn_TYPE_CNF) {
      // Periodic: the comparator advances by the period (§2.3.9.2.2); periods the clock ran past
      // are skipped (their interrupts coalesce).
      const period = t.config & Tn_32MODE_CNF ? t.periodLo : t.periodHi * TWO_32 + t.periodLo;
      if (period === 0) return;
      const behind = Math.max(0, this.clock.now - at) / COUNTER_TICK_NS;
      const steps = 1 + Math.floor(behind / period);
      this.addToComparator(t, steps * period);
      this.arm(t, false);
    } else if (t.config & Tn_32MODE_CNF) {
      // A 32-bit one-shot comparator matches again when the low half of the counter wraps.
      this.arm(t, false);
    }
  }

  private addToComparator(t: HpetTimer, delta: number): void {
    const lo = t.cmpLo + (delta % TWO_32);
    t.cmpLo = lo % TWO_32;
    if (t.config & Tn_32MODE_CNF) return;
    t.cmpHi = (t.cmpHi + Math.floor(delta / TWO_32) + Math.floor(lo / TWO_32)) % TWO_32;
  }

  // ---- interrupts (§2.3.6, §2.3.8) -------------------------------------------------------------

  /** The line a timer's interrupt goes to: legacy replacement for timers 0 and 1, else Tn_INT_ROUTE_CNF. */
  private line(t: HpetTimer): number {
    if (this.genConf & LEG_RT_CNF && t.n < LEGACY_IRQ.length) return LEGACY_IRQ[t.n]!;
    return (t.config & Tn_INT_ROUTE_CNF) >>> Tn_INT_ROUTE_CNF_SHIFT;
  }

  private raise(t: HpetTimer): void {
    if (t.config & Tn_INT_TYPE_CNF) {
      // Level: the status bit records the active interrupt until software clears it.
      this.intSta |= 1 << t.n;
      this.assertLevel(t);
    } else if (t.config & Tn_INT_ENB_CNF) {
      this.stats.interrupts++;
      const line = this.line(t);
      this.opts.setIrq(line, true);
      this.opts.setIrq(line, false);
    }
  }

  private assertLevel(t: HpetTimer): void {
    if (!(t.config & Tn_INT_ENB_CNF) || t.assertedLine >= 0 || !this.enabled()) return;
    this.stats.interrupts++;
    t.assertedLine = this.line(t);
    this.opts.setIrq(t.assertedLine, true);
  }

  private deassert(t: HpetTimer): void {
    if (t.assertedLine < 0) return;
    this.opts.setIrq(t.assertedLine, false);
    t.assertedLine = -1;
  }

  private clearStatus(v: number): void {
    for (const t of this.timers) {
      if (v & this.intSta & (1 << t.n)) {
        this.intSta &= ~(1 << t.n);
        this.deassert(t);
      }
    }
  }
}
