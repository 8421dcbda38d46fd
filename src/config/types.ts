/**
 * Setting types shared by the core schema and the plugins' schemas (zod 4). Each carries a
 * description, which `vmm plugins NAME` prints and the JSON Schema carries to editors.
 */
import { z } from 'zod';

/** K/M/G and KiB/MiB/GiB are binary; KB/MB/GB are decimal, as disk vendors count. */
const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kib: 1024,
  kb: 1000,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  mb: 1000 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  gb: 1000 ** 3,
};

/** Parse `16MiB`, `64M`, `1.5K`, `0x1000000`, `4096` into bytes; undefined when malformed or not whole. */
export function parseSize(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  const m = /^\s*(0x[0-9a-f]+|\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(v);
  if (!m) return undefined;
  const unit = UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return undefined;
  const n = m[1]!.toLowerCase().startsWith('0x') ? parseInt(m[1]!, 16) : Number(m[1]);
  const bytes = n * unit;
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** A size in bytes: a number, or a string with a unit (B, K/KiB, M/MiB, G/GiB binary; KB/MB/GB decimal). */
export const size = () =>
  z
    .union([z.number(), z.string()])
    .transform((v, ctx) => {
      const n = parseSize(v);
      if (n === undefined) {
        ctx.addIssue({
          code: 'custom',
          message: `"${String(v)}" is not a size (examples: 16MiB, 64M, 0x1000000)`,
        });
        return z.NEVER;
      }
      return n;
    })
    .meta({ vmmType: 'size' });

/** An I/O port, 0..0xFFFF. */
export const port = () => z.number().int().min(0).max(0xffff).meta({ vmmType: 'port' });

/** A physical address (below 2^52). */
export const physAddr = () =>
  z
    .number()
    .int()
    .min(0)
    .max(2 ** 52 - 1)
    .meta({ vmmType: 'address' });

/** An unsigned integer of `bits` bits. */
export const uint = (bits: number) =>
  z
    .number()
    .int()
    .min(0)
    .max(2 ** bits - 1);

/**
 * A host file. Relative paths resolve against the machine file that wrote them (for a value from
 * `--set` or a flag, against the working directory), so plugins always see absolute paths.
 */
export const filePath = () => z.string().min(1).meta({ vmmType: 'file' });

/** A host file followed by optional arguments (`initrd.img arg=1`), as Multiboot module strings are. */
export const fileWithArgs = () => z.string().min(1).meta({ vmmType: 'file-with-args' });

/**
 * A list of files with arguments; from the command line also one comma-separated string
 * (`--initrd a.img,b.img`, as QEMU's -initrd takes it).
 */
export const fileList = () => z.array(fileWithArgs()).default([]).meta({ vmmType: 'list-of-files' });

export { z };
