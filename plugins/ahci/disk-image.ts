/**
 * A disk's backing store: a raw image file read through the host, with guest writes kept in a
 * copy-on-write overlay of 4 KiB chunks. The file is written only when the disk is persistent, and
 * then only on flush (FLUSH CACHE, and the plugin's stop hook before the machine reports power-off).
 *
 * Size rules: an image smaller than one sector is an error. A trailing partial sector is not
 * addressable (the disk has floor(size / 512) sectors) and is left untouched; the plugin warns about
 * it. This matches the FileDevice of `vmm disk`, so both see the same sector count.
 */
import type { HostFile, HostServices } from '../../src/core/host.js';
import { MemoryHostFile } from './create-image.js';
import { SECTOR_SIZE } from './registers.js';

export const CHUNK_SIZE = 4096;
const SECTORS_PER_CHUNK = CHUNK_SIZE / SECTOR_SIZE;

export interface DiskImageStats {
  sectorsRead: number;
  sectorsWritten: number;
  /** Chunks held in the overlay. */
  overlayChunks: number;
  /** Chunks written to the image file by flushes. */
  chunksFlushed: number;
}

export class DiskImage {
  readonly sectors: number;
  /** Bytes past the last whole sector (not addressable). */
  readonly trailingBytes: number;
  private readonly overlay = new Map<number, Uint8Array>();
  private readonly dirty = new Set<number>();
  readonly stats: DiskImageStats = { sectorsRead: 0, sectorsWritten: 0, overlayChunks: 0, chunksFlushed: 0 };

  private constructor(
    readonly path: string,
    private readonly file: HostFile,
    readonly persist: boolean,
  ) {
    this.sectors = Math.floor(file.size / SECTOR_SIZE);
    this.trailingBytes = file.size % SECTOR_SIZE;
  }

  /**
   * Opens an image (read-only unless `persist`). Throws an Error whose message names the file;
   * the plugin adds the setting.
   */
  static open(host: HostServices, path: string, persist: boolean): DiskImage {
    if (!host.exists(path)) throw new Error(`disk image ${path} not found`);
    let file: HostFile;
    try {
      file = host.open(path, persist ? 'r+' : 'r');
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new Error(
        `cannot open disk image ${path}${persist ? ' for writing (persist: true)' : ''}: ${why}`,
        {
          cause: e,
        },
      );
    }
    if (file.size < SECTOR_SIZE) {
      file.close();
      throw new Error(
        `disk image ${path} is ${file.size} bytes, smaller than one ${SECTOR_SIZE}-byte sector`,
      );
    }
    return new DiskImage(path, file, persist);
  }

  /** An image held in memory for this run (a `create:` recipe without a file); never persistent. */
  static inMemory(name: string, bytes: Uint8Array): DiskImage {
    return new DiskImage(name, new MemoryHostFile(name, bytes), false);
  }

  /** `count` sectors from `lba`; the caller checked the range. */
  read(lba: number, count: number): Uint8Array {
    const out = new Uint8Array(count * SECTOR_SIZE);
    this.stats.sectorsRead += count;
    let done = 0;
    while (done < count) {
      const s = lba + done;
      const chunk = Math.floor(s / SECTORS_PER_CHUNK);
      const inChunk = s - chunk * SECTORS_PER_CHUNK;
      const n = Math.min(count - done, SECTORS_PER_CHUNK - inChunk);
      const o = this.overlay.get(chunk);
      if (o) {
        out.set(o.subarray(inChunk * SECTOR_SIZE, (inChunk + n) * SECTOR_SIZE), done * SECTOR_SIZE);
        done += n;
        continue;
      }
      // A run of sectors with no overlay chunk: one file read.
      let run = n;
      while (done + run < count && !this.overlay.has(Math.floor((s + run) / SECTORS_PER_CHUNK))) {
        run += Math.min(count - done - run, SECTORS_PER_CHUNK);
      }
      out.set(this.file.read(s * SECTOR_SIZE, run * SECTOR_SIZE), done * SECTOR_SIZE);
      done += run;
    }
    return out;
  }

  /** Whole sectors at `lba` into the overlay; the caller checked the range. */
  write(lba: number, data: Uint8Array): void {
    const count = data.length / SECTOR_SIZE;
    this.stats.sectorsWritten += count;
    let done = 0;
    while (done < count) {
      const s = lba + done;
      const chunk = Math.floor(s / SECTORS_PER_CHUNK);
      const inChunk = s - chunk * SECTORS_PER_CHUNK;
      const n = Math.min(count - done, SECTORS_PER_CHUNK - inChunk);
      let o = this.overlay.get(chunk);
      if (!o) {
        const first = chunk * SECTORS_PER_CHUNK;
        const len = Math.min(SECTORS_PER_CHUNK, this.sectors - first) * SECTOR_SIZE;
        o = new Uint8Array(CHUNK_SIZE);
        // Only a partly written chunk needs its old contents.
        if (n * SECTOR_SIZE < len) o.set(this.file.read(first * SECTOR_SIZE, len));
        this.overlay.set(chunk, o);
        this.stats.overlayChunks = this.overlay.size;
      }
      o.set(data.subarray(done * SECTOR_SIZE, (done + n) * SECTOR_SIZE), inChunk * SECTOR_SIZE);
      if (this.persist) this.dirty.add(chunk);
      done += n;
    }
  }

  /** Write dirty chunks to the file and flush it (persistent disks only; otherwise nothing). */
  flush(): void {
    if (!this.persist || this.dirty.size === 0) return;
    for (const chunk of [...this.dirty].sort((a, b) => a - b)) {
      const first = chunk * SECTORS_PER_CHUNK;
      const len = Math.min(SECTORS_PER_CHUNK, this.sectors - first) * SECTOR_SIZE;
      this.file.write(first * SECTOR_SIZE, this.overlay.get(chunk)!.subarray(0, len));
      this.stats.chunksFlushed++;
    }
    this.dirty.clear();
    this.file.flush();
  }

  close(): void {
    this.file.close();
  }
}
