/**
 * The I/O APIC (Intel 82093AA datasheet §3, as integrated in the ICH9, datasheet §13.5): two
 * directly addressed registers, IOREGSEL (offset 0x00) and IOWIN (0x10), through which software
 * reaches the indirect registers: IOAPICID (0x00), IOAPICVER (0x01), IOAPICARB (0x02) and the
 * redirection table (0x10-0x3F, two 32-bit halves per entry). The ICH9's EOI register at 0x40 is
 * modelled too (version 0x20 parts have it).
 *
 * Each input pin is routed by its redirection entry to the local APIC as an interrupt message:
 * edge-triggered pins on a rising edge; level-triggered pins while asserted, once until the local
 * APIC's EOI for the vector clears Remote IRR (§3.2.4).
 */
import { DeliveryMode, type LocalApic } from '../../src/devices/apic.js';
import { RegisterBank, type RegisterSpec } from '../../src/devices/registers.js';

/** Directly addressed registers (82093AA §3.1; ICH9 §13.5.1). */
export const IOREGSEL = 0x00;
export const IOWIN = 0x10;
export const IOAPIC_EOI = 0x40;
export const IOAPIC_MMIO_SIZE = 0x1000;

/** Indirect register indices (82093AA §3.2). */
export const IOAPICID = 0x00;
export const IOAPICVER = 0x01;
export const IOAPICARB = 0x02;
export const IOREDTBL_BASE = 0x10;

export const IOAPIC_PINS = 24;
/** IOAPICVER: version 0x20 (ICH9; the 82093AA is 0x11), maximum redirection entry 23 in bits 23:16. */
export const IOAPIC_VERSION = 0x20;
export const DEFAULT_IOAPICVER = ((IOAPIC_PINS - 1) << 16) | IOAPIC_VERSION;
/** IOAPICID: bits 27:24. */
export const IOAPICID_MASK = 0x0f00_0000;

/** Redirection entry, low half (82093AA §3.2.4, Table 3). */
export const RTE_VECTOR = 0xff;
export const RTE_DELIVERY_MODE_SHIFT = 8;
export const RTE_DELIVERY_MODE = 0b111 << RTE_DELIVERY_MODE_SHIFT;
export const RTE_DEST_MODE_LOGICAL = 1 << 11;
export const RTE_DELIVERY_STATUS = 1 << 12;
export const RTE_POLARITY_LOW = 1 << 13;
export const RTE_REMOTE_IRR = 1 << 14;
export const RTE_TRIGGER_LEVEL = 1 << 15;
export const RTE_MASK = 1 << 16;
/** Writable bits of the low half: all but Delivery Status and Remote IRR. */
export const RTE_LOW_WRITABLE = 0x0001_afff;
/** High half: the destination field, bits 63:56. */
export const RTE_HIGH_WRITABLE = 0xff00_0000;
export const RTE_DEST_SHIFT = 24;
/** Every entry is masked at reset. */
export const DEFAULT_RTE_LOW = RTE_MASK;

export interface IoApicOptions {
  /** Where interrupt messages go; without it they are counted as undeliverable. */
  lapic?: LocalApic;
  id?: number;
  warn?: (message: string) => void;
}

export interface IoApicStats {
  messages: number;
  undeliverable: number;
  eois: number;
}

export class IoApic {
  readonly regs: RegisterBank;
  readonly stats: IoApicStats = { messages: 0, undeliverable: 0, eois: 0 };
  private ioregsel = 0;
  /** Input pin levels (after the bus's line-to-pin mapping). */
  private readonly pinLevel = new Uint8Array(IOAPIC_PINS);
  private readonly lowIndex: number[] = [];
  private readonly initialId: number;
  lapic: LocalApic | undefined;

  constructor(private readonly opts: IoApicOptions = {}) {
    this.lapic = opts.lapic;
    this.initialId = (opts.id ?? 0) & 0xf;
    const specs: RegisterSpec[] = [
      { name: 'IOAPICID', offset: IOAPICID * 4, width: 4, access: 'rw', writeMask: IOAPICID_MASK },
      { name: 'IOAPICVER', offset: IOAPICVER * 4, width: 4, access: 'ro', reset: DEFAULT_IOAPICVER },
      // Arbitration ID: loaded from the APIC ID (82093AA §3.2.3).
      {
        name: 'IOAPICARB',
        offset: IOAPICARB * 4,
        width: 4,
        access: 'ro',
        onRead: () => this.regs.read(0, 4),
      },
    ];
    for (let pin = 0; pin < IOAPIC_PINS; pin++) {
      specs.push(
        {
          name: `IOREDTBL${pin}[31:0]`,
          offset: (IOREDTBL_BASE + 2 * pin) * 4,
          width: 4,
          access: 'rw',
          writeMask: RTE_LOW_WRITABLE,
          reset: DEFAULT_RTE_LOW,
          onWrite: () => this.entryWritten(pin),
        },
        {
          name: `IOREDTBL${pin}[63:32]`,
          offset: (IOREDTBL_BASE + 2 * pin + 1) * 4,
          width: 4,
          access: 'rw',
          writeMask: RTE_HIGH_WRITABLE,
        },
      );
    }
    this.regs = new RegisterBank('ioapic', (IOREDTBL_BASE + 2 * IOAPIC_PINS) * 4, specs, opts.warn);
    this.regs.undefinedRead = 0;
    for (let pin = 0; pin < IOAPIC_PINS; pin++)
      this.lowIndex.push(this.regs.indexOf((IOREDTBL_BASE + 2 * pin) * 4));
    this.reset();
  }

  reset(): void {
    this.regs.reset();
    this.regs.values[0] = this.initialId << 24;
    this.ioregsel = 0;
  }

  /** The low half of a redirection entry (for tests and the policy's debug dumps). */
  entryLow(pin: number): number {
    return this.regs.values[this.lowIndex[pin]!]!;
  }

  // ---- MMIO ------------------------------------------------------------------------------------

  mmioRead(offset: number, size: 1 | 2 | 4): number {
    if (offset === IOREGSEL) return this.ioregsel;
    if (offset >= IOWIN && offset < IOWIN + 4) {
      const lane = offset - IOWIN;
      if (lane + size > 4) return 0;
      return this.regs.read(this.ioregsel * 4 + lane, size);
    }
    return 0; // everything else in the page reads 0 (IOAPIC_EOI is write-only)
  }

  mmioWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    if (offset === IOREGSEL) {
      this.ioregsel = value & 0xff;
      return;
    }
    if (offset >= IOWIN && offset < IOWIN + 4) {
      const lane = offset - IOWIN;
      if (lane + size <= 4) this.regs.write(this.ioregsel * 4 + lane, size, value);
      return;
    }
    if (offset === IOAPIC_EOI) this.eoi(value & 0xff);
  }

  // ---- pins and messages -----------------------------------------------------------------------

  /** Drive an input pin (true = asserted). */
  setPin(pin: number, level: boolean): void {
    if (pin < 0 || pin >= IOAPIC_PINS) return;
    const was = this.pinLevel[pin] === 1;
    this.pinLevel[pin] = level ? 1 : 0;
    const low = this.entryLow(pin);
    if (low & RTE_MASK) return; // masked pins are ignored, edges are not held (§3.2.4, Interrupt Mask)
    if (low & RTE_TRIGGER_LEVEL) {
      if (level) this.serviceLevel(pin);
    } else if (level && !was) this.deliver(pin, low);
  }

  /** An EOI for `vector` (broadcast by the local APIC, or written to the EOI register). */
  eoi(vector: number): void {
    for (let pin = 0; pin < IOAPIC_PINS; pin++) {
      const i = this.lowIndex[pin]!;
      const low = this.regs.values[i]!;
      if ((low & RTE_VECTOR) === vector && low & RTE_TRIGGER_LEVEL && low & RTE_REMOTE_IRR) {
        this.stats.eois++;
        this.regs.values[i] = low & ~RTE_REMOTE_IRR;
        // Still asserted: the interrupt is delivered again.
        if (this.pinLevel[pin]) this.serviceLevel(pin);
      }
    }
  }

  private entryWritten(pin: number): void {
    const i = this.lowIndex[pin]!;
    let low = this.regs.values[i]!;
    // Remote IRR has no meaning for edge-triggered entries.
    if (!(low & RTE_TRIGGER_LEVEL) && low & RTE_REMOTE_IRR) this.regs.values[i] = low &= ~RTE_REMOTE_IRR;
    // Unmasking a level-triggered entry whose pin is asserted delivers it.
    if (!(low & RTE_MASK) && low & RTE_TRIGGER_LEVEL && this.pinLevel[pin]) this.serviceLevel(pin);
  }

  private serviceLevel(pin: number): void {
    const i = this.lowIndex[pin]!;
    const low = this.regs.values[i]!;
    if (low & RTE_REMOTE_IRR || low & RTE_MASK) return;
    if (this.deliver(pin, low)) this.regs.values[i] = low | RTE_REMOTE_IRR;
  }

  private deliver(pin: number, low: number): boolean {
    const lapic = this.lapic;
    const dest = this.regs.values[this.lowIndex[pin]! + 1]! >>> RTE_DEST_SHIFT;
    if (!lapic || !lapic.matchesDestination(dest, (low & RTE_DEST_MODE_LOGICAL) !== 0)) {
      this.stats.undeliverable++;
      return false;
    }
    this.stats.messages++;
    const dm = (low & RTE_DELIVERY_MODE) >>> RTE_DELIVERY_MODE_SHIFT;
    // 0b011 is reserved; it is treated as Fixed.
    const mode = (dm === 0b011 ? DeliveryMode.Fixed : dm) as DeliveryMode;
    lapic.acceptInterrupt(low & RTE_VECTOR, (low & RTE_TRIGGER_LEVEL) !== 0, mode);
    return true;
  }
}
