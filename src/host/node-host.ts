/**
 * HostServices over Node's fs: the only place plugins' file access meets the real file system.
 * Failures become VmmErrors that name the file and say what went wrong in words (not errno codes),
 * because the usual cause is a wrong path in a machine file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { VmmError, type ErrorCode } from '../core/errors.js';
import type { HostFile, HostServices } from '../core/host.js';

/** A short human explanation of a Node fs error code. */
function describeFsError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory, not a file';
    case 'ENOTDIR':
      return 'a component of the path is not a directory';
    case 'EROFS':
      return 'read-only file system';
    case 'ENOSPC':
      return 'no space left on the device';
    case 'EMFILE':
    case 'ENFILE':
      return 'too many open files';
    default:
      return e instanceof Error ? e.message : String(e);
  }
}

function fsError(code: ErrorCode, verb: string, file: string, e: unknown): VmmError {
  return new VmmError(code, `cannot ${verb} ${file}: ${describeFsError(e)}`, {
    cause: e,
    location: { file },
  });
}

/** An open file; reads past the end return zeros (like a sparse image), writes may extend it. */
export class NodeHostFile implements HostFile {
  private fd: number | undefined;
  private _size: number;

  constructor(
    readonly path: string,
    private readonly mode: 'r' | 'r+',
  ) {
    try {
      this.fd = fs.openSync(path, mode);
      const st = fs.fstatSync(this.fd);
      if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
      this._size = st.size;
    } catch (e) {
      if (this.fd !== undefined) fs.closeSync(this.fd);
      throw fsError('disk', mode === 'r' ? 'open' : 'open for writing', path, e);
    }
  }

  get size(): number {
    return this._size;
  }

  private handle(): number {
    if (this.fd === undefined)
      throw new VmmError('disk', `${this.path} is closed`, { location: { file: this.path } });
    return this.fd;
  }

  read(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    const fd = this.handle();
    let done = 0;
    try {
      while (done < length && offset + done < this._size) {
        const n = fs.readSync(fd, out, done, length - done, offset + done);
        if (n === 0) break;
        done += n;
      }
    } catch (e) {
      throw fsError('disk', `read ${length} bytes at offset ${offset} of`, this.path, e);
    }
    return out;
  }

  write(offset: number, data: Uint8Array): void {
    if (this.mode === 'r')
      throw new VmmError('disk', `cannot write ${this.path}: opened read-only`, {
        location: { file: this.path },
      });
    const fd = this.handle();
    let done = 0;
    try {
      while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done, offset + done);
    } catch (e) {
      throw fsError('disk', `write ${data.length} bytes at offset ${offset} of`, this.path, e);
    }
    this._size = Math.max(this._size, offset + data.length);
  }

  flush(): void {
    if (this.mode === 'r' || this.fd === undefined) return;
    try {
      fs.fsyncSync(this.fd);
    } catch (e) {
      throw fsError('disk', 'flush', this.path, e);
    }
  }

  close(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    try {
      fs.closeSync(fd);
    } catch (e) {
      throw fsError('disk', 'close', this.path, e);
    }
  }
}

export class NodeHost implements HostServices {
  resolve(p: string, baseDir: string): string {
    if (p === '~' || p.startsWith('~/')) {
      const home = process.env.HOME;
      if (home) return path.join(home, p.slice(1));
    }
    return path.resolve(baseDir, p);
  }

  exists(p: string): boolean {
    return fs.existsSync(p);
  }

  readFile(p: string): Uint8Array {
    try {
      const b = fs.readFileSync(p);
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    } catch (e) {
      throw fsError('image', 'read', p, e);
    }
  }

  writeFile(p: string, data: Uint8Array): void {
    try {
      fs.writeFileSync(p, data);
    } catch (e) {
      throw fsError('disk', 'write', p, e);
    }
  }

  open(p: string, mode: 'r' | 'r+'): HostFile {
    return new NodeHostFile(p, mode);
  }

  wallMs(): number {
    return performance.now();
  }
}

/** The process-wide instance (stateless, so one is enough). */
export const nodeHost: HostServices = new NodeHost();
