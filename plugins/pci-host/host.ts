/**
 * PCI configuration mechanism #1 (PCI Local Bus 3.0 §3.2.2.3.2): CONFIG_ADDRESS at 0xCF8 (dword
 * accesses only) selects bus, device, function and register; CONFIG_DATA at 0xCFC-0xCFF carries the
 * configuration cycle, in bytes, words or dwords. Only bus 0 exists; absent functions read all ones.
 */
import type { PortDevice } from '../../src/core/bus.js';
import { VmmError } from '../../src/core/errors.js';
import { PCI_MAX_DEVICES, PCI_MAX_FUNCTIONS, type PciFunction, type PciHost } from '../../src/devices/pci.js';
import { PCI_ABSENT } from './config-space.js';

export const CONFIG_ADDRESS_PORT = 0xcf8;
export const CONFIG_DATA_PORT = 0xcfc;

/** CONFIG_ADDRESS fields (§3.2.2.3.2, Figure 3-2). */
export const ConfigAddress = {
  Enable: 1 << 31,
  BUS_SHIFT: 16,
  DEVICE_SHIFT: 11,
  FUNCTION_SHIFT: 8,
  /** Register number (dword index) in bits 7:2; bits 1:0 read as 0. */
  REGISTER_MASK: 0xfc,
} as const;

/** CONFIG_ADDRESS bits that hold a value (bits 30:24 are reserved, 1:0 hard-wired 0). */
const CONFIG_ADDRESS_WRITABLE = (ConfigAddress.Enable | 0x00ff_fffc) >>> 0;

/** Build a CONFIG_ADDRESS value (for drivers and tests). */
export const configAddress = (bus: number, device: number, fn: number, register: number): number =>
  (ConfigAddress.Enable |
    (bus << ConfigAddress.BUS_SHIFT) |
    (device << ConfigAddress.DEVICE_SHIFT) |
    (fn << ConfigAddress.FUNCTION_SHIFT) |
    (register & ConfigAddress.REGISTER_MASK)) >>>
  0;

export interface PciHostStats {
  configReads: number;
  configWrites: number;
  /** Cycles to functions that do not exist (read all ones, writes dropped). */
  absentAccesses: number;
  /** CONFIG_DATA accesses while CONFIG_ADDRESS.Enable is clear. */
  disabledAccesses: number;
}

export class PciHostBridge implements PciHost {
  /** Functions of bus 0, indexed by device * 8 + function. */
  private readonly functions: (PciFunction | undefined)[] = new Array(PCI_MAX_DEVICES * PCI_MAX_FUNCTIONS);
  private readonly owners: (string | undefined)[] = new Array(PCI_MAX_DEVICES * PCI_MAX_FUNCTIONS);
  private address = 0;
  readonly stats: PciHostStats = { configReads: 0, configWrites: 0, absentAccesses: 0, disabledAccesses: 0 };

  /** CONFIG_ADDRESS, decoded for dword accesses only. */
  readonly addressPort: PortDevice = {
    ioRead: () => this.address,
    ioWrite: (_o, _size, value) => {
      this.address = (value & CONFIG_ADDRESS_WRITABLE) >>> 0;
    },
  };

  /** CONFIG_DATA: byte, word and dword accesses at 0xCFC-0xCFF. */
  readonly dataPort: PortDevice = {
    ioRead: (offset, size) => {
      const f = this.target();
      if (f === undefined) return size === 4 ? PCI_ABSENT : (1 << (size * 8)) - 1;
      this.stats.configReads++;
      return f.configRead((this.address & ConfigAddress.REGISTER_MASK) + offset, size);
    },
    ioWrite: (offset, size, value) => {
      const f = this.target();
      if (f === undefined) return;
      this.stats.configWrites++;
      f.configWrite((this.address & ConfigAddress.REGISTER_MASK) + offset, size, value);
    },
  };

  register(device: number, fn: number, f: PciFunction, owner: string): void {
    if (!Number.isInteger(device) || device < 0 || device >= PCI_MAX_DEVICES) {
      throw new VmmError('bus-conflict', `${owner}: PCI device number ${device} is not 0-31`);
    }
    if (!Number.isInteger(fn) || fn < 0 || fn >= PCI_MAX_FUNCTIONS) {
      throw new VmmError('bus-conflict', `${owner}: PCI function number ${fn} is not 0-7`);
    }
    const i = device * PCI_MAX_FUNCTIONS + fn;
    const other = this.owners[i];
    if (other !== undefined) {
      const slot = `${device.toString(16).padStart(2, '0')}.${fn}`;
      throw new VmmError('bus-conflict', `${owner}: PCI slot 00:${slot} is already taken by ${other}`);
    }
    this.functions[i] = f;
    this.owners[i] = owner;
  }

  /** Who sits at a slot (for `describe` and tests). */
  ownerAt(device: number, fn: number): string | undefined {
    return this.owners[device * PCI_MAX_FUNCTIONS + fn];
  }

  reset(): void {
    this.address = 0;
  }

  private target(): PciFunction | undefined {
    const a = this.address;
    if ((a & ConfigAddress.Enable) === 0) {
      // Not a configuration cycle: an ordinary I/O access nobody claims.
      this.stats.disabledAccesses++;
      return undefined;
    }
    const bus = (a >>> ConfigAddress.BUS_SHIFT) & 0xff;
    const f = bus === 0 ? this.functions[(a >>> ConfigAddress.FUNCTION_SHIFT) & 0xff] : undefined;
    if (f === undefined) this.stats.absentAccesses++;
    return f;
  }
}
