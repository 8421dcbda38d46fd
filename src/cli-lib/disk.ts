/** The logic of `vmm disk create|add|ls|cat` over src/disk (the oclif commands only parse flags). */
import { stderrChalk } from '../host/log.js';
import { formatError } from './errors.js';

export interface DiskIo {
  stdout?: { write(s: string | Uint8Array): unknown };
  stderr?: { write(s: string): unknown };
  color?: boolean;
  debug?: boolean;
}

async function guarded(
  io: DiskIo,
  fn: (out: NonNullable<DiskIo['stdout']>) => Promise<void>,
): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  try {
    await fn(stdout);
    return 0;
  } catch (e) {
    const f = formatError(e, stderrChalk(io.color), io.debug);
    stderr.write(f.text + '\n');
    return f.exitCode;
  }
}

function humanSize(bytes: number): string {
  for (const [unit, n] of [
    ['GiB', 2 ** 30],
    ['MiB', 2 ** 20],
    ['KiB', 2 ** 10],
  ] as const) {
    if (bytes >= n) return `${+(bytes / n).toFixed(2)} ${unit}`;
  }
  return `${bytes} bytes`;
}

export interface DiskCreateOptions {
  image: string;
  size: string;
  fat?: 12 | 16 | 32;
  label?: string;
  force?: boolean;
}

export function runDiskCreate(o: DiskCreateOptions, io: DiskIo = {}): Promise<number> {
  return guarded(io, async (out) => {
    const { createDisk, parseSize } = await import('../disk/index.js');
    const bytes = parseSize(o.size);
    const r = await createDisk(o.image, {
      size: bytes,
      ...(o.fat !== undefined ? { fat: o.fat } : {}),
      ...(o.label !== undefined ? { label: o.label } : {}),
      overwrite: o.force ?? false,
    });
    out.write(
      `${o.image}: FAT${r.fatType}, ${humanSize(bytes)}, ${r.clusterCount} clusters of ` +
        `${r.sectorsPerCluster * 512} bytes, label "${r.label}", serial ${r.serial.toString(16).padStart(8, '0')}\n`,
    );
  });
}

export interface DiskAddOptions {
  image: string;
  files: readonly string[];
  to?: string;
  partition?: number;
}

export function runDiskAdd(o: DiskAddOptions, io: DiskIo = {}): Promise<number> {
  return guarded(io, async (out) => {
    const { addFiles } = await import('../disk/index.js');
    const written = await addFiles(o.image, o.files, {
      ...(o.to !== undefined ? { to: o.to } : {}),
      ...(o.partition !== undefined ? { partition: o.partition } : {}),
    });
    for (const p of written) out.write(`${p}\n`);
  });
}

export interface DiskLsOptions {
  image: string;
  path?: string;
  partition?: number;
}

export function runDiskLs(o: DiskLsOptions, io: DiskIo = {}): Promise<number> {
  return guarded(io, async (out) => {
    const { listDisk, formatListing } = await import('../disk/index.js');
    const entries = await listDisk(
      o.image,
      o.path ?? '/',
      o.partition !== undefined ? { partition: o.partition } : {},
    );
    const lines = formatListing(entries);
    if (lines.length) out.write(lines.join('\n') + '\n');
  });
}

export interface DiskCatOptions {
  image: string;
  path: string;
  partition?: number;
}

export function runDiskCat(o: DiskCatOptions, io: DiskIo = {}): Promise<number> {
  return guarded(io, async (out) => {
    const { catDisk } = await import('../disk/index.js');
    out.write(await catDisk(o.image, o.path, o.partition !== undefined ? { partition: o.partition } : {}));
  });
}
