/**
 * A SectorDevice over a host image file (Node fs, synchronous: `vmm disk` is a one-shot command).
 */
import { closeSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { VmmError } from '../core/errors.js';
import type { SectorDevice } from '../../plugins/fat-loader/fat/device.js';
import { DEVICE_SECTOR_SIZE } from '../../plugins/fat-loader/fat/device.js';

function hostError(path: string, what: string, e: unknown): VmmError {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  const why =
    code === 'ENOENT'
      ? 'no such file'
      : code === 'EACCES' || code === 'EPERM'
        ? 'permission denied'
        : code === 'EISDIR'
          ? 'it is a directory'
          : code === 'EEXIST'
            ? 'the file already exists'
            : e instanceof Error
              ? e.message
              : String(e);
  return new VmmError('disk', `cannot ${what} ${path}: ${why}`, { cause: e });
}

export class FileDevice implements SectorDevice {
  readonly sectorSize = DEVICE_SECTOR_SIZE;
  readonly sectorCount: number;
  readonly write: ((lba: number, data: Uint8Array) => void) | undefined;
  private fd: number | undefined;

  private constructor(
    readonly name: string,
    fd: number,
    writable: boolean,
  ) {
    this.fd = fd;
    // A trailing partial sector is not addressable and is left alone.
    this.sectorCount = Math.floor(fstatSync(fd).size / DEVICE_SECTOR_SIZE);
    this.write = writable ? (lba, data) => this.writeAt(lba, data) : undefined;
  }

  /** Opens an existing image. */
  static open(path: string, opts: { writable?: boolean } = {}): FileDevice {
    let fd: number;
    try {
      fd = openSync(path, opts.writable ? 'r+' : 'r');
    } catch (e) {
      throw hostError(path, 'open', e);
    }
    return new FileDevice(path, fd, opts.writable ?? false);
  }

  /** Creates (or, with `overwrite`, truncates) an image of `size` zero bytes; the file is sparse. */
  static create(path: string, size: number, opts: { overwrite?: boolean } = {}): FileDevice {
    let fd: number | undefined;
    try {
      fd = openSync(path, opts.overwrite ? 'w+' : 'wx+');
      ftruncateSync(fd, size);
    } catch (e) {
      if (fd !== undefined) closeSync(fd);
      throw hostError(path, 'create', e);
    }
    return new FileDevice(path, fd, true);
  }

  read(lba: number, count: number): Uint8Array {
    const out = new Uint8Array(count * DEVICE_SECTOR_SIZE);
    const fd = this.handle();
    let done = 0;
    try {
      while (done < out.length) {
        const n = readSync(fd, out, done, out.length - done, lba * DEVICE_SECTOR_SIZE + done);
        if (n === 0) break;
        done += n;
      }
    } catch (e) {
      throw hostError(this.name, 'read', e);
    }
    if (done !== out.length) {
      throw new VmmError(
        'disk',
        `${this.name}: the file ended ${out.length - done} bytes early (changed while open?)`,
      );
    }
    return out;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private writeAt(lba: number, data: Uint8Array): void {
    const fd = this.handle();
    try {
      let done = 0;
      while (done < data.length) {
        done += writeSync(fd, data, done, data.length - done, lba * DEVICE_SECTOR_SIZE + done);
      }
    } catch (e) {
      throw hostError(this.name, 'write', e);
    }
  }

  private handle(): number {
    if (this.fd === undefined) throw new VmmError('internal', `${this.name}: the image is already closed`);
    return this.fd;
  }
}
