/**
 * What a disk controller plugin (ahci) tells the plugins that read disks through it (fat-loader):
 * where the controller sits on PCI and which disk hangs on which port. The readers still talk to
 * the controller through its registers, as a driver does; this only names things and orders start-up.
 */
import type { PciAddress } from './pci.js';

export interface BlockDiskInfo {
  /** Controller port (AHCI port number). */
  readonly port: number;
  /** The backing image file, for messages. */
  readonly image: string;
  readonly sectors: number;
}

export interface BlockController {
  /** `ahci`, ... */
  readonly kind: string;
  readonly pci: PciAddress;
  readonly disks: readonly BlockDiskInfo[];
}
