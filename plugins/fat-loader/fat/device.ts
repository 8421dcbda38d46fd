/**
 * The block device the FAT code works over: 512-byte sectors, addressed by LBA. The same interface is
 * served by an in-memory image, a host file (src/disk) and later the AHCI disk model, so every access is
 * awaited even when the backing store answers synchronously.
 */
import { VmmError } from '../../../src/core/errors.js';

/** The unit every SectorDevice uses; FAT volumes with bigger logical sectors span several of these. */
export const DEVICE_SECTOR_SIZE = 512;

export interface SectorDevice {
  readonly sectorSize: 512;
  readonly sectorCount: number;
  /** What to call this device in error messages (usually the image file name). */
  readonly name?: string;
  read(lba: number, count: number): Uint8Array | Promise<Uint8Array>;
  write?(lba: number, data: Uint8Array): void | Promise<void>;
}

/**
 * A clear `disk` error naming the device when its name is known. The name goes into the message (not
 * the location) so it is printed once whoever formats the error.
 */
export function diskError(source: string | undefined, message: string, cause?: unknown): VmmError {
  return new VmmError(
    'disk',
    source ? `${source}: ${message}` : message,
    cause === undefined ? {} : { cause },
  );
}

function checkRange(dev: SectorDevice, lba: number, count: number, what: string): void {
  if (!Number.isInteger(lba) || !Number.isInteger(count) || lba < 0 || count < 0) {
    throw diskError(dev.name, `${what} of ${count} sector(s) at LBA ${lba} is not a valid sector range`);
  }
  if (lba + count > dev.sectorCount) {
    throw diskError(
      dev.name,
      `${what} of ${count} sector(s) at LBA ${lba} goes past the end of the device (${dev.sectorCount} sectors)`,
    );
  }
}

/** A device backed by a byte array (its length is rounded down to whole sectors). */
export class MemoryDevice implements SectorDevice {
  readonly sectorSize = DEVICE_SECTOR_SIZE;
  readonly sectorCount: number;
  readonly bytes: Uint8Array;
  readonly name: string | undefined;

  constructor(bytes: Uint8Array, name?: string) {
    this.bytes = bytes;
    this.sectorCount = Math.floor(bytes.length / DEVICE_SECTOR_SIZE);
    this.name = name;
  }

  /** A zero-filled device of `size` bytes. */
  static zeroed(size: number, name?: string): MemoryDevice {
    return new MemoryDevice(new Uint8Array(size), name);
  }

  read(lba: number, count: number): Uint8Array {
    checkRange(this, lba, count, 'read');
    return this.bytes.slice(lba * DEVICE_SECTOR_SIZE, (lba + count) * DEVICE_SECTOR_SIZE);
  }

  write(lba: number, data: Uint8Array): void {
    if (data.length % DEVICE_SECTOR_SIZE !== 0) {
      throw diskError(this.name, `write of ${data.length} bytes is not a whole number of sectors`);
    }
    checkRange(this, lba, data.length / DEVICE_SECTOR_SIZE, 'write');
    this.bytes.set(data, lba * DEVICE_SECTOR_SIZE);
  }
}

/** A window onto part of another device, e.g. one MBR partition. */
export class SubDevice implements SectorDevice {
  readonly sectorSize = DEVICE_SECTOR_SIZE;
  readonly name: string | undefined;
  readonly write: ((lba: number, data: Uint8Array) => Promise<void>) | undefined;

  constructor(
    readonly parent: SectorDevice,
    readonly start: number,
    readonly sectorCount: number,
  ) {
    checkRange(parent, start, sectorCount, 'partition');
    this.name = parent.name;
    const parentWrite = parent.write?.bind(parent);
    this.write = parentWrite
      ? async (lba: number, data: Uint8Array) => {
          checkRange(this, lba, Math.ceil(data.length / DEVICE_SECTOR_SIZE), 'write');
          await parentWrite(this.start + lba, data);
        }
      : undefined;
  }

  async read(lba: number, count: number): Promise<Uint8Array> {
    checkRange(this, lba, count, 'read');
    return this.parent.read(this.start + lba, count);
  }
}

/** Reads exactly `count` sectors, checking that the device kept its promise about the length. */
export async function readSectors(dev: SectorDevice, lba: number, count: number): Promise<Uint8Array> {
  if (count === 0) return new Uint8Array(0);
  checkRange(dev, lba, count, 'read');
  const data = await dev.read(lba, count);
  if (data.length !== count * DEVICE_SECTOR_SIZE) {
    throw diskError(dev.name, `device returned ${data.length} bytes for a read of ${count} sector(s)`);
  }
  return data;
}

export async function writeSectors(dev: SectorDevice, lba: number, data: Uint8Array): Promise<void> {
  if (!dev.write) throw diskError(dev.name, 'the device is read-only');
  checkRange(dev, lba, Math.ceil(data.length / DEVICE_SECTOR_SIZE), 'write');
  await dev.write(lba, data);
}
