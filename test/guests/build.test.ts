// The committed guest images must be exactly what the sources build to: rebuild them into a temp
// directory with the same toolchain and compare byte for byte.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const GUESTS = resolve(import.meta.dirname, '../../guests');
const IMAGES = ['bios/bios.bin', 'bios/bios-mbi.bin', 'sample/sample.bin'];

function firstLine(cmd: string): string | null {
  const r = spawnSync(cmd, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n')[0]! : null;
}

/** Why the rebuild cannot be compared here, or null when it can. */
function skipReason(): string | null {
  for (const tool of ['make', 'objcopy']) if (!firstLine(tool)) return `${tool} not found`;
  const gcc = firstLine('gcc');
  const ld = firstLine('ld');
  if (!gcc || !ld) return 'gcc or ld not found: the committed guest images cannot be rebuilt here';
  const recorded = readFileSync(join(GUESTS, 'TOOLCHAIN'), 'utf8').trim();
  const present = `${gcc}\n${ld}`;
  if (recorded !== present) {
    return `the images were built with\n${recorded}\nbut this machine has\n${present}\n(byte-for-byte equality is only promised for the same toolchain)`;
  }
  return null;
}

const reason = skipReason();
if (reason) console.warn(`[guests] skipping the reproducibility test: ${reason}`);

describe.skipIf(reason !== null)('guest images are reproducible', () => {
  const out = mkdtempSync(join(tmpdir(), 'vmm-guests-'));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('rebuilds every committed image byte for byte', () => {
    const r = spawnSync('make', ['-s', '-C', GUESTS, `OUT=${out}`], { encoding: 'utf8' });
    expect(r.stderr, r.stderr).toBe('');
    expect(r.status).toBe(0);
    for (const image of IMAGES) {
      const committed = readFileSync(join(GUESTS, image));
      const rebuilt = readFileSync(join(out, image));
      expect(rebuilt.length, `${image} size`).toBe(committed.length);
      expect(Buffer.compare(rebuilt, committed), `${image} differs from its rebuild`).toBe(0);
    }
  });

  it('embeds no build paths', () => {
    for (const image of IMAGES) {
      const text = readFileSync(join(GUESTS, image)).toString('latin1');
      expect(text.includes(GUESTS), image).toBe(false);
      expect(text.includes(out), image).toBe(false);
    }
  });
});

describe('the BIOS images keep their documented layout', () => {
  const bios = readFileSync(join(GUESTS, 'bios/bios.bin'));
  const mbi = readFileSync(join(GUESTS, 'bios/bios-mbi.bin'));

  it('start with cli; cld and load the Multiboot magic their variant promises', () => {
    expect([...bios.subarray(0, 2)]).toEqual([0xfa, 0xfc]);
    // mov $imm32, %eax is B8 followed by the little-endian immediate.
    const magic = (image: Buffer, value: number): boolean => {
      const pattern = Buffer.alloc(5);
      pattern[0] = 0xb8;
      pattern.writeUInt32LE(value, 1);
      return image.includes(pattern);
    };
    expect(magic(bios, 0x1badb002)).toBe(true);
    expect(magic(mbi, 0x2badb002)).toBe(true);
    expect(magic(mbi, 0x1badb002)).toBe(false);
  });

  it('bios-mbi.bin has its patchable configuration block at offset 0x100 (16 MiB default)', () => {
    expect(mbi.readUInt32LE(0x100)).toBe(0x424d4d56); // 'VMMB'
    expect(mbi.readUInt32LE(0x104)).toBe(16 << 20);
    expect(mbi.toString('latin1', 0x108, mbi.indexOf(0, 0x108))).toBe('sample.bin');
  });
});

describe('sample.bin carries a Multiboot header with the a.out kludge', () => {
  const image = readFileSync(join(GUESTS, 'sample/sample.bin'));
  // Multiboot 0.6.96 section 3.1.1: within the first 8 KiB, 32-bit aligned.
  let at = -1;
  for (let i = 0; i + 32 <= Math.min(image.length, 8192); i += 4) {
    if (image.readUInt32LE(i) === 0x1badb002) {
      at = i;
      break;
    }
  }
  const field = (n: number): number => image.readUInt32LE(at + 4 * n);

  it('has magic, flags 0x00010002 and a zero checksum sum', () => {
    expect(at).toBeGreaterThanOrEqual(0);
    expect(field(1)).toBe(0x00010002);
    expect((field(0) + field(1) + field(2)) >>> 0).toBe(0);
  });

  it('loads the whole file at 0x200000 and enters at 0x200000', () => {
    const [headerAddr, loadAddr, loadEnd, bssEnd, entry] = [3, 4, 5, 6, 7].map(field);
    expect(loadAddr).toBe(0x200000);
    expect(headerAddr! - loadAddr!).toBe(at);
    expect(loadEnd! - loadAddr!).toBe(image.length);
    expect(bssEnd).toBeGreaterThanOrEqual(loadEnd!);
    expect(entry).toBe(0x200000);
  });
});
