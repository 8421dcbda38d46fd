/**
 * A type 0 configuration header (PCI Local Bus 3.0 §6.1, Figure 6-1) declared as registers, for
 * function models to build on: identification, Command and Status, Base Address Registers with
 * sizing (§6.2.5.1: writing all ones reads back the size mask), Interrupt Line and Pin, INTx with
 * the Command.InterruptDisable and Status.InterruptStatus bits (§6.2.2, §6.2.3).
 *
 * Capabilities and the device-specific area (0x40-0xFF) are not modelled: they read 0.
 */
import { hex } from '../../src/core/addresses.js';
import type { Bus, MmioDevice, MmioRegion } from '../../src/core/bus.js';
import type { PciFunction } from '../../src/devices/pci.js';
import { RegisterBank, type RegisterSpec } from '../../src/devices/registers.js';

/** Configuration header offsets (§6.1). */
export const PciCfg = {
  VENDOR_ID: 0x00,
  DEVICE_ID: 0x02,
  COMMAND: 0x04,
  STATUS: 0x06,
  REVISION_ID: 0x08,
  CLASS_CODE: 0x09,
  CACHE_LINE_SIZE: 0x0c,
  LATENCY_TIMER: 0x0d,
  HEADER_TYPE: 0x0e,
  BIST: 0x0f,
  BAR0: 0x10,
  CARDBUS_CIS: 0x28,
  SUBSYSTEM_VENDOR_ID: 0x2c,
  SUBSYSTEM_ID: 0x2e,
  EXPANSION_ROM: 0x30,
  CAPABILITIES_PTR: 0x34,
  INTERRUPT_LINE: 0x3c,
  INTERRUPT_PIN: 0x3d,
  MIN_GNT: 0x3e,
  MAX_LAT: 0x3f,
} as const;

export const CONFIG_SPACE_SIZE = 256;
export const BAR_COUNT = 6;

/** Command register bits (§6.2.2). */
export const PciCommand = {
  IoSpace: 1 << 0,
  MemorySpace: 1 << 1,
  BusMaster: 1 << 2,
  ParityErrorResponse: 1 << 6,
  SErrEnable: 1 << 8,
  InterruptDisable: 1 << 10,
} as const;

/** Status register bits (§6.2.3). */
export const PciStatus = {
  InterruptStatus: 1 << 3,
  CapabilitiesList: 1 << 4,
} as const;

/** BAR low bits (§6.2.5.1). */
export const BAR_IO_SPACE = 1 << 0;
export const BAR_MEM_PREFETCHABLE = 1 << 3;
/** Reads of an absent function's configuration space (§6.1: the host bridge returns all ones). */
export const PCI_ABSENT = 0xffff_ffff;

export interface BarSpec {
  /** 32-bit memory BARs only, for now (I/O and 64-bit BARs are not needed by the models yet). */
  readonly kind: 'mem32';
  /** A power of two, at least 16 bytes. */
  readonly size: number;
  readonly prefetchable?: boolean;
}

export interface PciHeaderSpec {
  readonly vendorId: number;
  readonly deviceId: number;
  readonly revisionId: number;
  /** Base class, sub-class, programming interface. */
  readonly classCode: readonly [number, number, number];
  readonly subsystemVendorId?: number;
  readonly subsystemId?: number;
  /** Bit 7 = multi-function device. */
  readonly headerType?: number;
  /** Up to six BARs; an undefined slot is not implemented (reads 0, ignores writes). */
  readonly bars?: readonly (BarSpec | undefined)[];
  /** 0 = none, 1..4 = INTA#..INTD# (§6.2.4). */
  readonly interruptPin?: number;
  /** Reset value of Interrupt Line (firmware normally writes it; 0xFF = unknown, §6.2.4). */
  readonly interruptLine?: number;
  /** Command bits software may set (default: memory space, bus master, parity, SERR#, INTx disable). */
  readonly commandWritable?: number;
}

const DEFAULT_COMMAND_WRITABLE =
  PciCommand.MemorySpace |
  PciCommand.BusMaster |
  PciCommand.ParityErrorResponse |
  PciCommand.SErrEnable |
  PciCommand.InterruptDisable;

/** The header of one function. `onDecodeChange` runs when Command or a BAR changes. */
export class PciConfigSpace implements PciFunction {
  readonly bank: RegisterBank;
  private readonly iCommand: number;
  private readonly iBar: number[] = [];
  private intxPending = false;
  /** Called when memory decoding or a BAR address may have changed. */
  onDecodeChange: () => void = () => {};
  /** Drives the function's INTx line (the level after Command.InterruptDisable). */
  onIntx: (level: boolean) => void = () => {};

  constructor(
    readonly name: string,
    readonly spec: PciHeaderSpec,
    warn: (m: string) => void = () => {},
  ) {
    const bars = spec.bars ?? [];
    const regs: RegisterSpec[] = [
      { name: 'VENDOR_ID', offset: PciCfg.VENDOR_ID, width: 2, access: 'ro', reset: spec.vendorId },
      { name: 'DEVICE_ID', offset: PciCfg.DEVICE_ID, width: 2, access: 'ro', reset: spec.deviceId },
      {
        name: 'COMMAND',
        offset: PciCfg.COMMAND,
        width: 2,
        access: 'rw',
        writeMask: spec.commandWritable ?? DEFAULT_COMMAND_WRITABLE,
        onWrite: () => {
          this.onDecodeChange();
          this.driveIntx();
        },
      },
      {
        name: 'STATUS',
        offset: PciCfg.STATUS,
        width: 2,
        access: 'ro',
        onRead: () => (this.intxPending ? PciStatus.InterruptStatus : 0),
      },
      {
        name: 'REVISION_CLASS',
        offset: PciCfg.REVISION_ID,
        width: 4,
        access: 'ro',
        reset:
          (spec.revisionId |
            (spec.classCode[2] << 8) |
            (spec.classCode[1] << 16) |
            (spec.classCode[0] << 24)) >>>
          0,
      },
      { name: 'CACHE_LINE_SIZE', offset: PciCfg.CACHE_LINE_SIZE, width: 1, access: 'rw' },
      { name: 'LATENCY_TIMER', offset: PciCfg.LATENCY_TIMER, width: 1, access: 'ro' },
      {
        name: 'HEADER_TYPE',
        offset: PciCfg.HEADER_TYPE,
        width: 1,
        access: 'ro',
        reset: spec.headerType ?? 0,
      },
      { name: 'BIST', offset: PciCfg.BIST, width: 1, access: 'ro' },
    ];
    for (let i = 0; i < BAR_COUNT; i++) {
      const b = bars[i];
      if (b && (b.size < 16 || (b.size & (b.size - 1)) !== 0)) {
        throw new Error(`${name}: BAR${i} size ${b.size} is not a power of two of at least 16`);
      }
      regs.push({
        name: `BAR${i}`,
        offset: PciCfg.BAR0 + 4 * i,
        width: 4,
        access: b ? 'rw' : 'ro',
        // Address bits below the size are hard-wired to 0: writing all ones reads back the size.
        writeMask: b ? ~(b.size - 1) >>> 0 : 0,
        reset: b?.prefetchable ? BAR_MEM_PREFETCHABLE : 0,
        onWrite: () => this.onDecodeChange(),
      });
    }
    regs.push(
      { name: 'CARDBUS_CIS', offset: PciCfg.CARDBUS_CIS, width: 4, access: 'ro' },
      {
        name: 'SUBSYSTEM_VENDOR_ID',
        offset: PciCfg.SUBSYSTEM_VENDOR_ID,
        width: 2,
        access: 'ro',
        reset: spec.subsystemVendorId ?? 0,
      },
      {
        name: 'SUBSYSTEM_ID',
        offset: PciCfg.SUBSYSTEM_ID,
        width: 2,
        access: 'ro',
        reset: spec.subsystemId ?? 0,
      },
      { name: 'EXPANSION_ROM', offset: PciCfg.EXPANSION_ROM, width: 4, access: 'ro' },
      { name: 'CAPABILITIES_PTR', offset: PciCfg.CAPABILITIES_PTR, width: 1, access: 'ro' },
      {
        name: 'INTERRUPT_LINE',
        offset: PciCfg.INTERRUPT_LINE,
        width: 1,
        access: 'rw',
        reset: spec.interruptLine ?? 0xff,
      },
      {
        name: 'INTERRUPT_PIN',
        offset: PciCfg.INTERRUPT_PIN,
        width: 1,
        access: 'ro',
        reset: spec.interruptPin ?? 0,
      },
      { name: 'MIN_GNT', offset: PciCfg.MIN_GNT, width: 1, access: 'ro' },
      { name: 'MAX_LAT', offset: PciCfg.MAX_LAT, width: 1, access: 'ro' },
    );
    this.bank = new RegisterBank(name, CONFIG_SPACE_SIZE, regs, warn);
    // Reserved and device-specific registers read 0 (§6.1: unimplemented registers return 0).
    this.bank.undefinedRead = 0;
    this.iCommand = this.bank.indexOf(PciCfg.COMMAND);
    for (let i = 0; i < BAR_COUNT; i++) this.iBar.push(this.bank.indexOf(PciCfg.BAR0 + 4 * i));
  }

  reset(): void {
    this.bank.reset();
    this.intxPending = false;
    this.onDecodeChange();
    this.onIntx(false);
  }

  /** A dword may span several narrower registers (Interrupt Line/Pin, ...): split it per register. */
  configRead(offset: number, size: 1 | 2 | 4): number {
    let v = 0;
    for (let i = 0; i < size;) {
      const n = this.pieceAt(offset + i, size - i);
      v |= this.bank.read(offset + i, n) << (i * 8);
      i += n;
    }
    return v >>> 0;
  }

  configWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    for (let i = 0; i < size;) {
      const n = this.pieceAt(offset + i, size - i);
      this.bank.write(offset + i, n, (value >>> (i * 8)) & (n === 4 ? 0xffff_ffff : (1 << (n * 8)) - 1));
      i += n;
    }
  }

  /** Bytes from `offset` (at most `left`) that one register access covers. */
  private pieceAt(offset: number, left: number): 1 | 2 | 4 {
    const r = this.bank.at(offset);
    const n = r ? Math.min(r.offset + r.width - offset, left) : 1;
    return n >= 4 ? 4 : n >= 2 ? 2 : 1;
  }

  get command(): number {
    return this.bank.values[this.iCommand]!;
  }

  /** Set Command as firmware would have left it (e.g. memory decoding on at reset). */
  setCommand(value: number): void {
    this.bank.values[this.iCommand] = value & 0xffff;
    this.onDecodeChange();
    this.driveIntx();
  }

  /** Program a BAR as firmware would have (the address is masked to the BAR's size). */
  setBar(i: number, address: number): void {
    const b = this.spec.bars?.[i];
    if (!b) throw new Error(`${this.name}: BAR${i} is not implemented`);
    const low = b.prefetchable ? BAR_MEM_PREFETCHABLE : 0;
    this.bank.values[this.iBar[i]!] = ((address & ~(b.size - 1)) | low) >>> 0;
    this.onDecodeChange();
  }

  /** The address a memory BAR decodes, or undefined when memory decoding is off. */
  memoryBar(i: number): number | undefined {
    if ((this.command & PciCommand.MemorySpace) === 0) return undefined;
    return (this.bank.values[this.iBar[i]!]! & ~0xf) >>> 0;
  }

  get busMaster(): boolean {
    return (this.command & PciCommand.BusMaster) !== 0;
  }

  /** The function's internal interrupt condition (what Status.InterruptStatus shows). */
  setInterrupt(pending: boolean): void {
    if (this.intxPending === pending) return;
    this.intxPending = pending;
    this.driveIntx();
  }

  private driveIntx(): void {
    this.onIntx(this.intxPending && (this.command & PciCommand.InterruptDisable) === 0);
  }
}

/**
 * Keeps a memory BAR's MMIO region on the bus where the BAR says. A BAR moved onto RAM or another
 * device is left unmapped (a guest's mistake is not a set-up error) and reported once.
 */
export class MmioBarMapping {
  private region: MmioRegion | undefined;
  conflicts = 0;

  constructor(
    private readonly bus: Bus,
    private readonly name: string,
    readonly size: number,
    private readonly device: MmioDevice,
    private readonly warn: (m: string) => void = () => {},
  ) {}

  get base(): number | undefined {
    return this.region?.base;
  }

  /** Map at `base`, or unmap when undefined. */
  update(base: number | undefined): void {
    if (this.region && this.region.base === base) return;
    if (this.region) {
      this.bus.removeRegion(this.region);
      this.region = undefined;
    }
    // Address 0 is where an unprogrammed BAR points: not decoded (RAM is there on a PC).
    if (base === undefined || base === 0) return;
    for (let a = base; a < base + this.size; a += 0x1000) {
      const other = this.bus.regionAt(a);
      if (other) {
        this.conflicts++;
        if (this.conflicts === 1) {
          this.warn(`${this.name}: BAR at ${hex(base)} overlaps ${other.name}; not decoded`);
        }
        return;
      }
    }
    this.region = this.bus.addMmio(this.name, base, this.size, this.device);
  }
}
