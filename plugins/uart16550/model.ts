/**
 * The TI PC16550D UART, register by register (datasheet Table II "Summary of Registers", and the
 * register descriptions of §8.x it refers to).
 *
 * | offset | DLAB=0 read | DLAB=0 write | DLAB=1    |
 * |--------|-------------|--------------|-----------|
 * | 0      | RBR         | THR          | DLL       |
 * | 1      | IER         | IER          | DLM       |
 * | 2      | IIR         | FCR          | (IIR/FCR) |
 * | 3      | LCR         | LCR          |           |
 * | 4      | MCR         | MCR          |           |
 * | 5      | LSR         | (factory)    |           |
 * | 6      | MSR         | (ignored)    |           |
 * | 7      | SCR         | SCR          |           |
 *
 * Transmission takes no virtual time: a THR write goes straight to the output (or, in loopback,
 * into the receiver), so LSR.THRE and LSR.TEMT read 1 again at once. Input from the host console
 * waits in a bounded host buffer and moves into the receiver as the guest empties it, so text
 * pasted faster than the guest reads is not lost (up to the buffer size; beyond it bytes are
 * dropped, counted, and reported once).
 *
 * The 8250-family registers are DLAB-dependent and have side effects on nearly every access, so
 * this device decodes them itself rather than through src/devices/registers.ts.
 */
import type { PortDevice } from '../../src/core/bus.js';
import type { Timer, VirtualClock } from '../../src/core/clock.js';

// ---- register offsets (Table II) ----
export const RBR = 0; // receiver buffer (read, DLAB=0)
export const THR = 0; // transmitter holding (write, DLAB=0)
export const DLL = 0; // divisor latch LSB (DLAB=1)
export const IER = 1; // interrupt enable (DLAB=0)
export const DLM = 1; // divisor latch MSB (DLAB=1)
export const IIR = 2; // interrupt identification (read)
export const FCR = 2; // FIFO control (write)
export const LCR = 3;
export const MCR = 4;
export const LSR = 5;
export const MSR = 6;
export const SCR = 7;
export const UART_PORTS = 8;

/** IER bits. */
export const IER_ERBFI = 0x01; // received data available
export const IER_ETBEI = 0x02; // THR empty
export const IER_ELSI = 0x04; // receiver line status
export const IER_EDSSI = 0x08; // modem status
const IER_MASK = 0x0f;

/** IIR values: bit 0 clear = interrupt pending; bits 3:1 identify it (Table IV). */
export const IIR_NO_INT = 0x01;
export const IIR_RLS = 0x06; // receiver line status, priority 1 (highest)
export const IIR_RDA = 0x04; // received data available, priority 2
export const IIR_CTI = 0x0c; // character timeout, priority 2
export const IIR_THRE = 0x02; // THR empty, priority 3
export const IIR_MS = 0x00; // modem status, priority 4
export const IIR_FIFO_ENABLED = 0xc0;

/** FCR bits. */
export const FCR_FIFO_ENABLE = 0x01;
export const FCR_RX_RESET = 0x02;
export const FCR_TX_RESET = 0x04;
export const FCR_DMA_MODE = 0x08;
export const FCR_TRIGGER_SHIFT = 6;
/** RX FIFO trigger levels selected by FCR bits 7:6. */
export const RX_TRIGGER_LEVELS = [1, 4, 8, 14] as const;

/** LCR bits. */
export const LCR_WLS_MASK = 0x03;
export const LCR_STB = 0x04;
export const LCR_PEN = 0x08;
export const LCR_DLAB = 0x80;

/** MCR bits. */
export const MCR_DTR = 0x01;
export const MCR_RTS = 0x02;
export const MCR_OUT1 = 0x04;
export const MCR_OUT2 = 0x08;
export const MCR_LOOP = 0x10;
const MCR_MASK = 0x1f;

/** LSR bits. */
export const LSR_DR = 0x01;
export const LSR_OE = 0x02;
export const LSR_PE = 0x04;
export const LSR_FE = 0x08;
export const LSR_BI = 0x10;
export const LSR_THRE = 0x20;
export const LSR_TEMT = 0x40;
export const LSR_RX_FIFO_ERROR = 0x80;
const LSR_ERRORS = LSR_OE | LSR_PE | LSR_FE | LSR_BI;

/** MSR bits. */
export const MSR_DCTS = 0x01;
export const MSR_DDSR = 0x02;
export const MSR_TERI = 0x04;
export const MSR_DDCD = 0x08;
export const MSR_CTS = 0x10;
export const MSR_DSR = 0x20;
export const MSR_RI = 0x40;
export const MSR_DCD = 0x80;
const MSR_DELTAS = 0x0f;

export const FIFO_SIZE = 16;
/** Input clock of a PC's UART: 1.8432 MHz, divided by 16 (divisor 1 = 115200 baud). */
export const UART_CLOCK_HZ = 1_843_200;
/** Divisor after reset: the datasheet leaves it undefined; QEMU and most firmware use 12 (9600 baud). */
export const DEFAULT_DIVISOR = 12;
/** Modem inputs when not in loopback: a terminal that is present and ready (DCD, DSR, CTS). */
export const DEFAULT_MODEM_INPUTS = MSR_DCD | MSR_DSR | MSR_CTS;

export interface Uart16550Options {
  /** Output bytes (THR writes outside loopback). */
  output: (byte: number) => void;
  /** The INTR output; called only when its level changes. */
  irq?: (level: boolean) => void;
  /** Virtual clock for the character timeout indication (FIFO mode); without it, no timeouts. */
  clock?: VirtualClock;
  /** Host-side input buffer size in bytes. */
  inputBufferSize?: number;
  warn?: (message: string) => void;
}

export interface Uart16550Stats {
  txBytes: number;
  rxBytes: number;
  /** Host input bytes dropped because the host buffer was full. */
  inputDropped: number;
  /** Receiver overruns (LSR.OE), e.g. loopback writes into a full receiver. */
  overruns: number;
}

export class Uart16550 implements PortDevice {
  // registers
  private ier = 0;
  private lcr = 0;
  private mcr = 0;
  private lsr = LSR_THRE | LSR_TEMT;
  /** Delta bits of MSR (the input bits are computed from MCR in loopback or the modem inputs). */
  private msrDeltas = 0;
  private scr = 0;
  private fcr = 0;
  private divisor = DEFAULT_DIVISOR;
  /** The modem input lines (CTS, DSR, RI, DCD as MSR bits 4-7) outside loopback. */
  private modemInputs = DEFAULT_MODEM_INPUTS;

  // interrupt state
  /** THRE interrupt pending: set when THR becomes empty or ETBEI is enabled; cleared by IIR read or THR write. */
  private thrIPending = false;
  private timeoutIPending = false;
  private irqLevel = false;

  // receiver: a ring of FIFO_SIZE bytes (holding register = depth 1 when FIFOs are off)
  private readonly rx = new Uint8Array(FIFO_SIZE);
  private rxHead = 0;
  private rxCount = 0;

  // host input buffer (bounded ring)
  private readonly input: Uint8Array;
  private inHead = 0;
  private inCount = 0;
  private warnedOverflow = false;

  private readonly timeout: Timer | undefined;
  readonly stats: Uart16550Stats = { txBytes: 0, rxBytes: 0, inputDropped: 0, overruns: 0 };

  constructor(private readonly opts: Uart16550Options) {
    this.input = new Uint8Array(opts.inputBufferSize ?? 4096);
    this.timeout = opts.clock?.createTimer('uart16550 character timeout', () => this.onTimeout());
  }

  /** Power-on / master reset values (datasheet Table IV). SCR and the divisor latch are not reset. */
  reset(): void {
    this.ier = 0;
    this.lcr = 0;
    this.mcr = 0;
    this.lsr = LSR_THRE | LSR_TEMT;
    this.msrDeltas = 0;
    this.fcr = 0;
    this.thrIPending = false;
    this.timeoutIPending = false;
    this.rxHead = 0;
    this.rxCount = 0;
    if (this.timeout && this.opts.clock) this.opts.clock.cancel(this.timeout);
    this.feed();
    this.update();
  }

  // ---- host side ----------------------------------------------------------------------------

  /** Bytes from the host console. They wait in the host buffer until the receiver has room. */
  receive(data: Uint8Array): void {
    const cap = this.input.length;
    for (let i = 0; i < data.length; i++) {
      if (this.inCount === cap) this.feed();
      if (this.inCount === cap) {
        const dropped = data.length - i;
        this.stats.inputDropped += dropped;
        if (!this.warnedOverflow) {
          this.warnedOverflow = true;
          this.opts.warn?.(
            `input buffer full (${cap} bytes): dropped ${dropped} byte(s) the guest has not read yet; ` +
              'further drops are counted in the stats',
          );
        }
        break;
      }
      this.input[(this.inHead + this.inCount) % cap] = data[i]!;
      this.inCount++;
    }
    if (this.feed()) this.update();
  }

  /** Bytes waiting in the host buffer (not yet in the receiver). */
  get pendingInput(): number {
    return this.inCount;
  }

  /** Set the modem input lines (MSR bits 4-7: CTS, DSR, RI, DCD), as a terminal would. */
  setModemInputs(msrBits: number): void {
    const before = this.msrInputs();
    this.modemInputs = msrBits & 0xf0;
    if (!(this.mcr & MCR_LOOP)) this.noteModemChange(before, this.msrInputs());
    this.update();
  }

  // ---- guest side ---------------------------------------------------------------------------

  ioRead(offset: number, size: 1 | 2 | 4): number {
    // The UART has byte registers; a wider access reads the first one (the rest float high).
    const v = this.readReg(offset & 7);
    return size === 1 ? v : (v | (size === 2 ? 0xff00 : 0xffff_ff00)) >>> 0;
  }

  ioWrite(offset: number, _size: 1 | 2 | 4, value: number): void {
    this.writeReg(offset & 7, value & 0xff);
  }

  private readReg(reg: number): number {
    switch (reg) {
      case RBR:
        if (this.lcr & LCR_DLAB) return this.divisor & 0xff;
        return this.readRbr();
      case IER:
        if (this.lcr & LCR_DLAB) return this.divisor >>> 8;
        return this.ier;
      case IIR: {
        const iir = this.iir();
        // Reading IIR while it reports THRE clears that interrupt (Table IV, "reset control").
        if (iir === IIR_THRE) {
          this.thrIPending = false;
          this.update();
        }
        return iir | (this.fcr & FCR_FIFO_ENABLE ? IIR_FIFO_ENABLED : 0);
      }
      case LCR:
        return this.lcr;
      case MCR:
        return this.mcr;
      case LSR: {
        const v = this.lsr;
        // Reading LSR clears the error bits (OE, PE, FE, BI) and the RX FIFO error summary.
        if (v & (LSR_ERRORS | LSR_RX_FIFO_ERROR)) {
          this.lsr &= ~(LSR_ERRORS | LSR_RX_FIFO_ERROR);
          this.update();
        }
        return v;
      }
      case MSR: {
        const v = this.msrInputs() | this.msrDeltas;
        if (this.msrDeltas) {
          this.msrDeltas = 0;
          this.update();
        }
        return v;
      }
      default:
        return this.scr;
    }
  }

  private writeReg(reg: number, v: number): void {
    switch (reg) {
      case THR:
        if (this.lcr & LCR_DLAB) {
          this.divisor = (this.divisor & 0xff00) | v;
          return;
        }
        this.transmit(v);
        return;
      case IER: {
        if (this.lcr & LCR_DLAB) {
          this.divisor = (this.divisor & 0xff) | (v << 8);
          return;
        }
        const before = this.ier;
        this.ier = v & IER_MASK;
        // Enabling ETBEI while THR is empty raises the THRE interrupt at once (as on real parts
        // and in QEMU); disabling it drops a pending one.
        if (this.ier & IER_ETBEI) {
          if (!(before & IER_ETBEI) && this.lsr & LSR_THRE) this.thrIPending = true;
        } else this.thrIPending = false;
        this.update();
        return;
      }
      case FCR:
        this.writeFcr(v);
        return;
      case LCR:
        this.lcr = v;
        return;
      case MCR: {
        const before = this.msrInputs();
        const wasLoop = this.mcr & MCR_LOOP;
        this.mcr = v & MCR_MASK;
        const after = this.msrInputs();
        if (wasLoop || this.mcr & MCR_LOOP) this.noteModemChange(before, after);
        this.update();
        return;
      }
      case LSR:
      case MSR:
        return; // LSR is for factory test only; MSR is read-only
      default:
        this.scr = v;
    }
  }

  private writeFcr(v: number): void {
    const wasEnabled = this.fcr & FCR_FIFO_ENABLE;
    // FCR0 must be set for the other bits to be programmed; changing it clears both FIFOs.
    if ((v & FCR_FIFO_ENABLE) !== wasEnabled || v & FCR_RX_RESET) this.clearRx();
    if (v & FCR_FIFO_ENABLE) this.fcr = v & (FCR_FIFO_ENABLE | FCR_DMA_MODE | 0xc0);
    else this.fcr = 0;
    // The transmitter is always empty (transmission takes no time), so FCR_TX_RESET has nothing to do.
    this.feed();
    this.update();
  }

  private transmit(byte: number): void {
    this.thrIPending = false;
    this.stats.txBytes++;
    if (this.mcr & MCR_LOOP) this.loopbackReceive(byte);
    else this.opts.output(byte);
    // Transmission completes at once: THR is empty again, which raises THRE if enabled.
    if (this.ier & IER_ETBEI) this.thrIPending = true;
    this.update();
  }

  private loopbackReceive(byte: number): void {
    if (this.rxCount >= this.rxDepth()) {
      // Overrun: the character in the shift register is lost, the FIFO keeps its contents.
      this.lsr |= LSR_OE;
      this.stats.overruns++;
      return;
    }
    this.pushRx(byte);
  }

  private readRbr(): number {
    if (this.rxCount === 0) return 0; // empty receiver: the last value floats; 0 is as good as any
    const b = this.rx[this.rxHead]!;
    this.rxHead = (this.rxHead + 1) % FIFO_SIZE;
    this.rxCount--;
    this.timeoutIPending = false;
    this.stats.rxBytes++;
    if (this.rxCount === 0) this.lsr &= ~LSR_DR;
    this.feed();
    this.armTimeout();
    this.update();
    return b;
  }

  // ---- receiver plumbing ----------------------------------------------------------------------

  private rxDepth(): number {
    return this.fcr & FCR_FIFO_ENABLE ? FIFO_SIZE : 1;
  }

  private pushRx(byte: number): void {
    this.rx[(this.rxHead + this.rxCount) % FIFO_SIZE] = byte;
    this.rxCount++;
    this.lsr |= LSR_DR;
    this.armTimeout();
  }

  private clearRx(): void {
    this.rxHead = 0;
    this.rxCount = 0;
    this.lsr &= ~(LSR_DR | LSR_RX_FIFO_ERROR);
    this.timeoutIPending = false;
  }

  /** Move host input into the receiver while it has room (not in loopback: the line is disconnected). */
  private feed(): boolean {
    if (this.mcr & MCR_LOOP) return false;
    const depth = this.rxDepth();
    let moved = false;
    while (this.inCount > 0 && this.rxCount < depth) {
      this.pushRx(this.input[this.inHead]!);
      this.inHead = (this.inHead + 1) % this.input.length;
      this.inCount--;
      moved = true;
    }
    return moved;
  }

  /** Character timeout (FIFO mode): 4 character times without a read while data sits below the trigger level. */
  private armTimeout(): void {
    const clock = this.opts.clock;
    if (!clock || !this.timeout || !(this.fcr & FCR_FIFO_ENABLE) || this.rxCount === 0) return;
    clock.arm(this.timeout, clock.now + 4 * this.characterTimeNs());
  }

  private onTimeout(): void {
    if (this.rxCount > 0 && this.fcr & FCR_FIFO_ENABLE) {
      this.timeoutIPending = true;
      this.update();
    }
  }

  /** One character frame (start + data + parity + stop bits) at the programmed baud rate, in ns. */
  characterTimeNs(): number {
    const bits =
      1 + 5 + (this.lcr & LCR_WLS_MASK) + (this.lcr & LCR_PEN ? 1 : 0) + (this.lcr & LCR_STB ? 2 : 1);
    const baud = UART_CLOCK_HZ / 16 / (this.divisor === 0 ? 0x10000 : this.divisor);
    return (bits * 1e9) / baud;
  }

  // ---- modem status ---------------------------------------------------------------------------

  /** MSR bits 4-7: from MCR in loopback (CTS=RTS, DSR=DTR, RI=OUT1, DCD=OUT2), else the input lines. */
  private msrInputs(): number {
    if (!(this.mcr & MCR_LOOP)) return this.modemInputs;
    const m = this.mcr;
    return (
      (m & MCR_RTS ? MSR_CTS : 0) |
      (m & MCR_DTR ? MSR_DSR : 0) |
      (m & MCR_OUT1 ? MSR_RI : 0) |
      (m & MCR_OUT2 ? MSR_DCD : 0)
    );
  }

  private noteModemChange(before: number, after: number): void {
    const changed = before ^ after;
    if (changed & MSR_CTS) this.msrDeltas |= MSR_DCTS;
    if (changed & MSR_DSR) this.msrDeltas |= MSR_DDSR;
    if (changed & MSR_DCD) this.msrDeltas |= MSR_DDCD;
    // TERI: RI went from active to inactive (trailing edge).
    if (before & MSR_RI && !(after & MSR_RI)) this.msrDeltas |= MSR_TERI;
  }

  // ---- interrupts -----------------------------------------------------------------------------

  /** The highest-priority pending, enabled interrupt (Table IV), as IIR bits 3:0. */
  private iir(): number {
    const ier = this.ier;
    if (ier & IER_ELSI && this.lsr & LSR_ERRORS) return IIR_RLS;
    if (ier & IER_ERBFI) {
      if (this.timeoutIPending) return IIR_CTI;
      if (this.rxCount > 0) {
        const trigger = this.fcr & FCR_FIFO_ENABLE ? RX_TRIGGER_LEVELS[this.fcr >>> FCR_TRIGGER_SHIFT]! : 1;
        if (this.rxCount >= trigger) return IIR_RDA;
      }
    }
    if (ier & IER_ETBEI && this.thrIPending) return IIR_THRE;
    if (ier & IER_EDSSI && this.msrDeltas & MSR_DELTAS) return IIR_MS;
    return IIR_NO_INT;
  }

  /**
   * Drive INTR from the pending state. Like QEMU, the line is not gated by MCR.OUT2 (on a real PC
   * board OUT2 enables the ISA IRQ driver; guests tested on QEMU do not always set it).
   */
  private update(): void {
    const level = this.iir() !== IIR_NO_INT;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.opts.irq?.(level);
    }
  }

  /** Divisor latch value (for tests and stats). */
  get divisorLatch(): number {
    return this.divisor;
  }
}
