/**
 * The Intel 8259A programmable interrupt controller, as the PC's master/slave pair (master at
 * 0x20/0x21, slave at 0xA0/0xA1 on its IR2) with the PIIX/ICH edge/level control registers
 * (ELCR, 0x4D0/0x4D1). From the 8259A datasheet: initialization command words ICW1-ICW4, operation
 * command words OCW1 (mask), OCW2 (EOI, rotation, priority), OCW3 (read IRR/ISR, poll, special
 * mask), the interrupt sequence (INTA), cascade, automatic EOI and special fully nested mode.
 *
 * Reads are never fatal: every port reads as the datasheet says, whatever state the chip is in.
 */
import type { CpuCore, InterruptController } from '../../src/core/cpu.js';
import type { ExtIntSource } from '../../src/devices/apic.js';

/** Port offsets within a chip (A0) and the chips' ports on a PC. */
export const MASTER_PORT = 0x20;
export const SLAVE_PORT = 0xa0;
export const ELCR_PORT = 0x4d0;
/** The master input the slave's INT output drives. */
export const CASCADE_IR = 2;

/** ICW1 (A0=0, D4=1). */
export const ICW1_INIT = 0x10;
export const ICW1_IC4 = 0x01; // ICW4 needed
export const ICW1_SNGL = 0x02; // single (no ICW3)
export const ICW1_LTIM = 0x08; // level-triggered inputs
/** ICW4. */
export const ICW4_AEOI = 0x02;
export const ICW4_SFNM = 0x10;
/** OCW2 (A0=0, D4=0, D3=0): R SL EOI in bits 7:5, the level in bits 2:0. */
export const OCW2_EOI = 0x20;
export const OCW2_SL = 0x40;
export const OCW2_R = 0x80;
/** OCW3 (A0=0, D4=0, D3=1). */
export const OCW3_SELECT = 0x08;
export const OCW3_RIS = 0x01; // with RR: 1 = ISR, 0 = IRR
export const OCW3_RR = 0x02;
export const OCW3_P = 0x04; // poll command
export const OCW3_SMM = 0x20;
export const OCW3_ESMM = 0x40;
/** ELCR bits that must stay edge-triggered: IRQ0-2 (master), IRQ8 and IRQ13 (slave). */
export const ELCR_WRITABLE = [0xf8, 0xde] as const;
/** The IR whose vector answers an INTA that finds no request (a spurious interrupt). */
export const SPURIOUS_IR = 7;

/** Which ICW the chip expects next. */
const Ready = 0;
const ExpectIcw2 = 2;
const ExpectIcw3 = 3;
const ExpectIcw4 = 4;

/** One 8259A. */
export class Pic8259Chip {
  irr = 0;
  isr = 0;
  imr = 0;
  /** Levels on the IR inputs (edge detection). */
  pins = 0;
  /** ELCR: inputs that are level-triggered (PIIX/ICH); ICW1.LTIM makes them all level-triggered. */
  elcr = 0;
  vectorBase = 0;
  private icwStep = Ready;
  private icw1 = 0;
  private icw4 = 0;
  /** ICW3: the master's slave-attached inputs, or the slave's ID. */
  icw3 = 0;
  private readIsr = false;
  private pollPending = false;
  private specialMask = false;
  private rotateOnAeoi = false;
  /** The IR with the lowest priority (IR7 after initialization). */
  private lowest = 7;

  constructor(
    readonly name: string,
    readonly isMaster: boolean,
  ) {}

  reset(): void {
    this.irr = this.isr = this.imr = this.pins = 0;
    this.elcr = 0;
    this.vectorBase = 0;
    this.icwStep = Ready;
    this.icw1 = this.icw4 = this.icw3 = 0;
    this.readIsr = this.pollPending = this.specialMask = this.rotateOnAeoi = false;
    this.lowest = 7;
  }

  private levelTriggered(ir: number): boolean {
    return (this.icw1 & ICW1_LTIM) !== 0 || (this.elcr & (1 << ir)) !== 0;
  }

  get autoEoi(): boolean {
    return (this.icw4 & ICW4_AEOI) !== 0;
  }

  /** An IR input changed level. */
  setPin(ir: number, level: boolean): void {
    const bit = 1 << ir;
    const was = (this.pins & bit) !== 0;
    if (level) this.pins |= bit;
    else this.pins &= ~bit;
    if (this.levelTriggered(ir)) {
      // Level mode: the request follows the input.
      if (level) this.irr |= bit;
      else this.irr &= ~bit;
    } else if (level && !was) {
      // Edge mode: a rising edge latches a request, which stays until acknowledged.
      this.irr |= bit;
    }
  }

  /** The IR of the highest-priority bit in `bits` under the current rotation, or -1. */
  private highestIn(bits: number): number {
    if (bits === 0) return -1;
    for (let i = 1; i <= 8; i++) {
      const ir = (this.lowest + i) & 7;
      if (bits & (1 << ir)) return ir;
    }
    return -1;
  }

  /** Rank of an IR: 0 highest, 7 lowest. */
  private rank(ir: number): number {
    return (ir - this.lowest - 1) & 7;
  }

  /** The request the INT output is raised for, or -1 (priority resolver). */
  pending(): number {
    const req = this.highestIn(this.irr & ~this.imr);
    if (req < 0) return -1;
    // In-service levels block equal and lower priorities, except masked ones in special mask
    // mode, and except a cascade input in special fully nested mode (the slave may nest).
    let blocking = this.isr;
    if (this.specialMask) blocking &= ~this.imr;
    if (this.isMaster && this.icw4 & ICW4_SFNM) blocking &= ~this.icw3;
    const inService = this.highestIn(blocking);
    if (inService >= 0 && this.rank(inService) <= this.rank(req)) return -1;
    return req;
  }

  /** The INTA cycle for this chip: the IR now in service, or -1 when no request is there any more. */
  acknowledge(): number {
    const ir = this.pending();
    if (ir < 0) return -1;
    const bit = 1 << ir;
    if (!this.levelTriggered(ir)) this.irr &= ~bit;
    if (this.autoEoi) {
      if (this.rotateOnAeoi) this.lowest = ir;
    } else this.isr |= bit;
    return ir;
  }

  // ---- ports ----------------------------------------------------------------------------------

  write(a0: number, v: number): void {
    if (a0 === 0) {
      if (v & ICW1_INIT) this.icw1Write(v);
      else if (v & OCW3_SELECT) this.ocw3(v);
      else this.ocw2(v);
      return;
    }
    switch (this.icwStep) {
      case ExpectIcw2:
        // ICW2: T7-T3 of the vector (x86 mode: the low 3 bits are the IR).
        this.vectorBase = v & 0xf8;
        this.icwStep = this.icw1 & ICW1_SNGL ? this.afterIcw3() : ExpectIcw3;
        return;
      case ExpectIcw3:
        this.icw3 = v;
        this.icwStep = this.afterIcw3();
        return;
      case ExpectIcw4:
        this.icw4 = v & 0x1f;
        this.icwStep = Ready;
        return;
      default:
        this.imr = v; // OCW1
    }
  }

  private afterIcw3(): number {
    return this.icw1 & ICW1_IC4 ? ExpectIcw4 : Ready;
  }

  private icw1Write(v: number): void {
    // ICW1 resets the edge sense, clears IMR, makes IR7 the lowest priority, clears special mask
    // mode and selects IRR for reads; without IC4 the ICW4 functions are zero.
    this.icw1 = v;
    this.icwStep = ExpectIcw2;
    this.imr = 0;
    this.isr = 0;
    this.irr = 0;
    this.lowest = 7;
    this.specialMask = false;
    this.readIsr = false;
    this.pollPending = false;
    this.rotateOnAeoi = false;
    if (!(v & ICW1_IC4)) this.icw4 = 0;
    // Edge-triggered inputs need a new rising edge; level-triggered ones are seen as they are.
    for (let ir = 0; ir < 8; ir++) if (this.pins & (1 << ir) && this.levelTriggered(ir)) this.irr |= 1 << ir;
  }

  private ocw2(v: number): void {
    const level = v & 7;
    switch (v & (OCW2_R | OCW2_SL | OCW2_EOI)) {
      case OCW2_EOI: // non-specific EOI
        this.nonSpecificEoi(false);
        return;
      case OCW2_EOI | OCW2_R: // rotate on non-specific EOI
        this.nonSpecificEoi(true);
        return;
      case OCW2_SL | OCW2_EOI: // specific EOI
        this.isr &= ~(1 << level);
        return;
      case OCW2_R | OCW2_SL | OCW2_EOI: // rotate on specific EOI
        this.isr &= ~(1 << level);
        this.lowest = level;
        return;
      case OCW2_R: // set rotate in automatic EOI mode
        this.rotateOnAeoi = true;
        return;
      case 0: // clear rotate in automatic EOI mode
        this.rotateOnAeoi = false;
        return;
      case OCW2_R | OCW2_SL: // set priority command
        this.lowest = level;
        return;
      default: // OCW2_SL alone: no operation
    }
  }

  private nonSpecificEoi(rotate: boolean): void {
    const ir = this.highestIn(this.isr);
    if (ir < 0) return;
    this.isr &= ~(1 << ir);
    if (rotate) this.lowest = ir;
  }

  private ocw3(v: number): void {
    if (v & OCW3_ESMM) this.specialMask = (v & OCW3_SMM) !== 0;
    if (v & OCW3_P) this.pollPending = true;
    if (v & OCW3_RR) this.readIsr = (v & OCW3_RIS) !== 0;
  }

  /** A read: A0=1 gives IMR; A0=0 gives IRR or ISR, or the poll word after a poll command. */
  read(a0: number, poll: () => number): number {
    if (a0 === 1) return this.imr;
    if (this.pollPending) {
      this.pollPending = false;
      return poll();
    }
    return this.readIsr ? this.isr : this.irr;
  }
}

export interface Pic8259Options {
  /** The master's INT output (the CPU's INTR, or LINT0 of the local APIC). */
  intr?: (level: boolean) => void;
}

export interface Pic8259Stats {
  acknowledged: number;
  spurious: number;
}

/** The PC's cascaded pair: ISA IRQ0-7 on the master, IRQ8-15 on the slave (via master IR2). */
export class Pic8259Pair implements InterruptController, ExtIntSource {
  readonly master = new Pic8259Chip('master', true);
  readonly slave = new Pic8259Chip('slave', false);
  readonly stats: Pic8259Stats = { acknowledged: 0, spurious: 0 };
  private intrLevel = false;
  intr: ((level: boolean) => void) | undefined;

  constructor(opts: Pic8259Options = {}) {
    this.intr = opts.intr;
  }

  reset(): void {
    this.master.reset();
    this.slave.reset();
    this.update();
  }

  /** ISA IRQ line `irq` (0-15) changed level. IRQ2 is the cascade and has no ISA line. */
  setIrq(irq: number, level: boolean): void {
    if (irq < 8) {
      if (irq === CASCADE_IR) return;
      this.master.setPin(irq, level);
    } else if (irq < 16) this.slave.setPin(irq - 8, level);
    else return;
    this.update();
  }

  /** Recompute the cascade input and the INT output. */
  private update(): void {
    // The slave's INT output is a level on master IR2 (re-evaluated at every change).
    this.master.setPin(CASCADE_IR, this.slave.pending() >= 0);
    const level = this.master.pending() >= 0;
    if (level !== this.intrLevel) {
      this.intrLevel = level;
      this.intr?.(level);
    }
  }

  /** Used bare (no local APIC): the CPU connects itself and is woken when INT rises. */
  connectCpu(cpu: Pick<CpuCore, 'interruptRequested' | 'nmi'> | undefined): void {
    this.intr = cpu ? (level) => level && cpu.interruptRequested() : undefined;
    if (cpu && this.intrLevel) cpu.interruptRequested();
  }

  hasPendingInterrupt(): boolean {
    return this.master.pending() >= 0;
  }

  /**
   * The INTA sequence: the vector of the highest-priority request, now in service. With no
   * request left the chip answers with its IR7 vector without setting ISR (a spurious IRQ7, or
   * IRQ15 from the slave, whose master IR2 is then in service).
   */
  acknowledgeInterrupt(): number {
    const m = this.master;
    let ir = m.acknowledge();
    let vector: number;
    if (ir < 0) {
      this.stats.spurious++;
      vector = m.vectorBase | SPURIOUS_IR;
    } else if (ir === CASCADE_IR && m.icw3 & (1 << CASCADE_IR)) {
      const s = this.slave;
      ir = s.acknowledge();
      if (ir < 0) {
        this.stats.spurious++;
        vector = s.vectorBase | SPURIOUS_IR;
      } else vector = s.vectorBase | ir;
    } else vector = m.vectorBase | ir;
    this.stats.acknowledged++;
    this.update();
    return vector;
  }

  /** The poll word (OCW3 P): bit 7 set with the IR of the request, acknowledged as by INTA. */
  private poll(chip: Pic8259Chip): number {
    // Polling the master for a slave request puts master IR2 in service; software then polls the slave.
    const ir = chip.acknowledge();
    this.update();
    return ir < 0 ? 0 : 0x80 | ir;
  }

  private readonly pollMaster = () => this.poll(this.master);
  private readonly pollSlave = () => this.poll(this.slave);

  /** A port access at a chip (offset 0 or 1 from 0x20 / 0xA0). */
  ioRead(chip: 0 | 1, a0: number): number {
    return chip === 0 ? this.master.read(a0, this.pollMaster) : this.slave.read(a0, this.pollSlave);
  }

  ioWrite(chip: 0 | 1, a0: number, value: number): void {
    (chip === 0 ? this.master : this.slave).write(a0, value & 0xff);
    this.update();
  }

  /** ELCR1 (0x4D0) and ELCR2 (0x4D1). */
  readElcr(chip: 0 | 1): number {
    return (chip === 0 ? this.master : this.slave).elcr;
  }

  writeElcr(chip: 0 | 1, value: number): void {
    const c = chip === 0 ? this.master : this.slave;
    c.elcr = value & ELCR_WRITABLE[chip];
    // Re-evaluate level inputs under the new sense.
    for (let ir = 0; ir < 8; ir++) c.setPin(ir, (c.pins & (1 << ir)) !== 0);
    this.update();
  }
}
