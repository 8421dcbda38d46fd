/**
 * The operations behind `vmm disk`: create (format a new image), add (copy host files in), ls and cat.
 * The oclif command only parses flags and prints; everything else is here so tests can call it.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { VmmError } from '../core/errors.js';
import { parseSize as parseSizeText } from '../config/types.js';
import type { FatDirEntry, FatType, FormatResult } from '../../plugins/fat-loader/fat/index.js';
import { formatFat, longNameProblem, openFat } from '../../plugins/fat-loader/fat/index.js';
import type { FatVolume } from '../../plugins/fat-loader/fat/index.js';
import { FileDevice } from './file-device.js';

/**
 * `64M`, `64MiB`, `1440K`, `512KB`, `1048576` -> bytes, a positive multiple of 512. The units are
 * those of machine files (src/config/types.ts): K/M/G and KiB/MiB/GiB binary, KB/MB/GB decimal.
 */
export function parseSize(text: string): number {
  const bytes = parseSizeText(text);
  if (bytes === undefined) {
    throw new VmmError(
      'usage',
      `bad size "${text}": use a number with an optional unit (K, M, G, KiB, MB, ...)`,
    );
  }
  const whole = Math.round(bytes);
  if (whole <= 0 || whole % 512 !== 0) {
    throw new VmmError('usage', `bad size "${text}": ${whole} bytes is not a positive multiple of 512`);
  }
  return whole;
}

export interface CreateDiskOptions {
  /** Bytes, or a size text such as `64M`. */
  size: number | string;
  fat?: FatType;
  label?: string;
  /** Default: deterministic (derived from the size, type and label). */
  serial?: number | 'random';
  /** Replace an existing file (default: refuse). */
  overwrite?: boolean;
}

/** Creates and formats a new image file. */
export async function createDisk(image: string, opts: CreateDiskOptions): Promise<FormatResult> {
  const size = typeof opts.size === 'string' ? parseSize(opts.size) : opts.size;
  if (!Number.isInteger(size) || size <= 0 || size % 512 !== 0) {
    throw new VmmError('usage', `bad size ${size}: the image size must be a positive multiple of 512 bytes`);
  }
  const dev = FileDevice.create(image, size, { overwrite: opts.overwrite ?? false });
  try {
    return await formatFat(dev, {
      ...(opts.fat !== undefined ? { fatType: opts.fat } : {}),
      ...(opts.label !== undefined ? { label: opts.label } : {}),
      ...(opts.serial !== undefined ? { serial: opts.serial } : {}),
    });
  } finally {
    dev.close();
  }
}

export interface DiskOptions {
  /** MBR partition slot (0-3); default: bare volume or the first FAT partition. */
  partition?: number;
}

async function withVolume<T>(
  image: string,
  writable: boolean,
  opts: DiskOptions,
  fn: (vol: FatVolume) => Promise<T>,
): Promise<T> {
  const dev = FileDevice.open(image, { writable });
  try {
    const vol = await openFat(dev, opts.partition !== undefined ? { partition: opts.partition } : {});
    return await fn(vol);
  } finally {
    dev.close();
  }
}

export interface AddOptions extends DiskOptions {
  /** Directory in the image to add to (created with its parents when missing); default the root. */
  to?: string;
}

/**
 * Copies host files into the image under `to`; a host directory is copied with its contents.
 * Returns the image paths written.
 */
export async function addFiles(
  image: string,
  files: readonly string[],
  opts: AddOptions = {},
): Promise<string[]> {
  // Read the host side first, so a missing file changes nothing in the image.
  interface Item {
    path: string;
    data?: Uint8Array;
  }
  const items: Item[] = [];
  const base = '/' + (opts.to ?? '').split('/').filter(Boolean).join('/');
  const visit = (host: string, target: string, depth: number): void => {
    let st;
    try {
      st = statSync(host);
    } catch {
      throw new VmmError('disk', `cannot add ${host}: no such file or directory`);
    }
    const problem = longNameProblem(basename(target));
    if (problem) throw new VmmError('disk', `cannot add ${host} to ${image}: ${problem}`);
    if (st.isDirectory()) {
      if (depth > 64) throw new VmmError('disk', `cannot add ${host}: directories nest too deep`);
      items.push({ path: target });
      for (const name of readdirSync(host).sort()) visit(`${host}/${name}`, `${target}/${name}`, depth + 1);
    } else if (st.isFile()) {
      items.push({ path: target, data: readFileSync(host) });
    } else {
      throw new VmmError('disk', `cannot add ${host}: not a regular file or directory`);
    }
  };
  for (const f of files) visit(f, `${base === '/' ? '' : base}/${basename(f)}`, 0);
  return withVolume(image, true, opts, async (vol) => {
    await vol.mkdir(base);
    for (const item of items) {
      if (item.data) await vol.writeFile(item.path, item.data);
      else await vol.mkdir(item.path);
    }
    return items.map((i) => i.path);
  });
}

/** The entries of a directory in the image, or the one entry when `path` names a file. */
export async function listDisk(image: string, path = '/', opts: DiskOptions = {}): Promise<FatDirEntry[]> {
  return withVolume(image, false, opts, async (vol) => {
    const st = await vol.stat(path);
    return st.isDirectory ? vol.list(path) : [st];
  });
}

/** The contents of a file in the image. */
export async function catDisk(image: string, path: string, opts: DiskOptions = {}): Promise<Uint8Array> {
  return withVolume(image, false, opts, (vol) => vol.readFile(path));
}

/** `ls` output: one line per entry, size (or <DIR>) right-aligned, then the name (directories end in '/'). */
export function formatListing(entries: readonly FatDirEntry[]): string[] {
  const sizes = entries.map((e) => (e.isDirectory ? '<DIR>' : String(e.size)));
  const width = Math.max(5, ...sizes.map((s) => s.length));
  return entries.map((e, i) => `${sizes[i]!.padStart(width)}  ${e.name}${e.isDirectory ? '/' : ''}`);
}
