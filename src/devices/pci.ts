/**
 * The PCI bus as plugins see it (PCI Local Bus 3.0). A host bridge plugin (pci-host) decodes
 * configuration mechanism #1 and routes each configuration cycle to the function registered at
 * that device/function number; function models (ahci, ...) register themselves during attach.
 */

/** One PCI function's configuration space (256 bytes; offsets are within it). */
export interface PciFunction {
  /** `size` bytes at `offset`; the access never crosses a dword boundary. */
  configRead(offset: number, size: 1 | 2 | 4): number;
  configWrite(offset: number, size: 1 | 2 | 4, value: number): void;
}

/** Bus 0 device/function numbers, as `lspci` prints them (00:1f.2). */
export interface PciAddress {
  readonly bus: number;
  readonly device: number;
  readonly function: number;
}

export const PCI_MAX_DEVICES = 32;
export const PCI_MAX_FUNCTIONS = 8;

export interface PciHost {
  /**
   * Place a function at bus 0, `device` (0-31), `fn` (0-7). `owner` names the plugin instance in
   * error messages; a taken slot is a set-up error.
   */
  register(device: number, fn: number, f: PciFunction, owner: string): void;
}

/** `1f.2` -> { device: 0x1f, function: 2 } (the `DD.F` form QEMU's addr= property takes). */
export function parsePciSlot(text: string): { device: number; function: number } | undefined {
  const m = /^([0-9a-f]{1,2})\.([0-7])$/i.exec(text.trim());
  if (!m) return undefined;
  const device = parseInt(m[1]!, 16);
  if (device >= PCI_MAX_DEVICES) return undefined;
  return { device, function: Number(m[2]) };
}

export const formatPciAddress = (a: PciAddress): string =>
  `${a.bus.toString(16).padStart(2, '0')}:${a.device.toString(16).padStart(2, '0')}.${a.function}`;
