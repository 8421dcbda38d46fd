/**
 * A disk's `create:` recipe: a FAT volume made on the fly from host files, for machines that ship
 * without a disk image (machines/q35-sample.yaml builds its boot disk from the committed guest
 * images). With `image:` named and absent, the image is written there once and used from then on;
 * without `image:`, it lives in memory for the run (nothing is written on the host).
 *
 * The bytes are reproducible: the FAT library derives the volume serial from the size, type and
 * label, and stamps entries with the FAT epoch.
 */
import type { HostFile, HostServices } from '../../src/core/host.js';
import { MemoryDevice, formatFat, longNameProblem, openFat } from '../fat-loader/fat/index.js';
import type { FatType } from '../fat-loader/fat/index.js';

export interface CreateRecipe {
  /** Bytes, a multiple of 512. */
  size: number;
  fat?: FatType | undefined;
  label?: string | undefined;
  /** Name on the volume (may contain `/`) -> host file. */
  files: Readonly<Record<string, string>>;
}

/**
 * The image bytes. Throws an Error naming the host file or volume name at fault (the plugin adds
 * the setting).
 */
export async function buildImage(host: HostServices, recipe: CreateRecipe): Promise<Uint8Array> {
  if (recipe.size % 512 !== 0) {
    throw new Error(`size ${recipe.size} is not a multiple of 512 bytes`);
  }
  // Read every host file first, so a missing one is reported before any work.
  const items: { name: string; data: Uint8Array }[] = [];
  for (const [name, file] of Object.entries(recipe.files)) {
    const base = name.split('/').filter(Boolean).pop() ?? '';
    const problem = longNameProblem(base);
    if (problem) throw new Error(`cannot name a file "${name}" on the volume: ${problem}`);
    if (!host.exists(file)) throw new Error(`${file} (for ${name} on the volume) not found`);
    items.push({ name, data: host.readFile(file) });
  }
  const dev = MemoryDevice.zeroed(recipe.size, 'created disk image');
  await formatFat(dev, {
    ...(recipe.fat !== undefined ? { fatType: recipe.fat } : {}),
    ...(recipe.label !== undefined ? { label: recipe.label } : {}),
  });
  const vol = await openFat(dev);
  for (const { name, data } of items) {
    const dirs = name.split('/').filter(Boolean).slice(0, -1);
    if (dirs.length > 0) await vol.mkdir('/' + dirs.join('/'));
    await vol.writeFile('/' + name.split('/').filter(Boolean).join('/'), data);
  }
  return dev.bytes;
}

/** A HostFile over bytes in memory (an image made for one run; writes stay in the array). */
export class MemoryHostFile implements HostFile {
  constructor(
    readonly path: string,
    private readonly bytes: Uint8Array,
  ) {}

  get size(): number {
    return this.bytes.length;
  }

  read(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    if (offset < this.bytes.length)
      out.set(this.bytes.subarray(offset, Math.min(offset + length, this.bytes.length)));
    return out;
  }

  write(offset: number, data: Uint8Array): void {
    this.bytes.set(data.subarray(0, Math.max(0, this.bytes.length - offset)), offset);
  }

  flush(): void {}

  close(): void {}
}
