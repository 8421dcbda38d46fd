/**
 * The multiboot loader: kernels in each format land where their headers say, the information
 * structure matches the specification (3.3), the CPU starts in the state of 3.2, and broken
 * images are clear errors naming the file.
 */
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadMachine, type BootEntry } from './support.js';

const TMP = resolve('test/.tmp');

function machine(dir: string, extra = ''): string {
  const file = join(dir, 'm.yaml');
  writeFileSync(
    file,
    `host:\n  memory: 32MiB\n  cpu: { plugin: ${resolve('test/fixtures/plugins/fake-cpu.ts')} }\n` +
      `  boot: { plugin: multiboot, kernel: kernel.bin${extra} }\n`,
  );
  return file;
}

function header(flags: number, extra: number[] = []): Uint8Array {
  const words = [0x1badb002, flags, -(0x1badb002 + flags) >>> 0, ...extra];
  const b = new Uint8Array(words.length * 4);
  const dv = new DataView(b.buffer);
  words.forEach((w, i) => dv.setUint32(i * 4, w >>> 0, true));
  return b;
}

/** An a.out-kludge kernel loaded at 1 MiB: header, then code bytes; bss to 1 MiB + 0x3000. */
function aoutKernel(): Uint8Array {
  const load = 0x100000;
  const body = new Uint8Array(0x1800).fill(0x90);
  const h = header(0x00010003, [load, load, load + 32 + body.length, load + 0x3000, load + 32]);
  const out = new Uint8Array(32 + body.length);
  out.set(h);
  out.set(body, 32);
  return out;
}

/** A minimal ELF with one PT_LOAD segment at paddr 0x200000 (vaddr differs for ELF64: a higher-half kernel). */
function elfKernel(is64: boolean): Uint8Array {
  const ehsize = is64 ? 64 : 52;
  const phsize = is64 ? 56 : 32;
  const dataOff = 0x100;
  const payload = new Uint8Array(0x200).fill(0xcc);
  payload.set(header(0x00000003), 0);
  const out = new Uint8Array(dataOff + payload.length);
  const dv = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, 1, 1], 0);
  dv.setUint16(16, 2, true);
  dv.setUint16(18, is64 ? 62 : 3, true);
  const vbase = is64 ? 0xffffff8000200000n : 0x200000n;
  const entryV = vbase + 0x40n;
  if (is64) {
    dv.setBigUint64(24, entryV, true);
    dv.setBigUint64(32, BigInt(ehsize), true);
    dv.setUint16(54, phsize, true);
    dv.setUint16(56, 1, true);
    const p = ehsize;
    dv.setUint32(p, 1, true);
    dv.setBigUint64(p + 8, BigInt(dataOff), true);
    dv.setBigUint64(p + 16, vbase, true);
    dv.setBigUint64(p + 24, 0x200000n, true);
    dv.setBigUint64(p + 32, BigInt(payload.length), true);
    dv.setBigUint64(p + 40, 0x1000n, true);
  } else {
    dv.setUint32(24, Number(entryV), true);
    dv.setUint32(28, ehsize, true);
    dv.setUint16(42, phsize, true);
    dv.setUint16(44, 1, true);
    const p = ehsize;
    dv.setUint32(p, 1, true);
    dv.setUint32(p + 4, dataOff, true);
    dv.setUint32(p + 8, 0x200000, true);
    dv.setUint32(p + 12, 0x200000, true);
    dv.setUint32(p + 16, payload.length, true);
    dv.setUint32(p + 20, 0x1000, true);
  }
  out.set(payload, dataOff);
  return out;
}

async function boot(kernel: Uint8Array, extra = '', files: Record<string, Uint8Array> = {}) {
  mkdirSync(TMP, { recursive: true });
  const dir = mkdtempSync(join(TMP, 'mb-'));
  writeFileSync(join(dir, 'kernel.bin'), kernel);
  for (const [n, d] of Object.entries(files)) writeFileSync(join(dir, n), d);
  const m = await loadMachine(machine(dir, extra), { noUserConfig: true });
  await m.run({ virtualTimeoutNs: 1 });
  const cpu = m.machine.cpu as unknown as { entry: BootEntry };
  return { m, bus: m.machine.hostBus, entry: cpu.entry, dir };
}

const u32 = (bus: { read(a: number, s: 4): number }, a: number) => bus.read(a, 4);

describe('multiboot loader', () => {
  it('loads an a.out-kludge kernel, zeroes its bss and starts in the Multiboot machine state', async () => {
    const k = aoutKernel();
    const { bus, entry, m } = await boot(k, ', cmdline: "scale=10 console=ttyS0"');
    expect(bus.readBytes(0x100000, k.length)).toEqual(k);
    expect(bus.read(0x100000 + 0x2fff, 1)).toBe(0);
    expect(entry).toEqual({
      mode: 'protected',
      ip: 0x100020,
      // ESP: a usable stack below 0x7c00 like QEMU's loader leaves (the spec leaves it undefined).
      regs: { eax: 0x2badb002, ebx: expect.any(Number), esp: 0x7000 },
    });
    const mbi = entry.regs!.ebx!;
    expect(mbi % 4096).toBe(0);
    expect(mbi).toBeGreaterThanOrEqual(0x103000); // after the kernel and its bss
    const flags = u32(bus, mbi);
    expect(flags & 0b1001000101).toBe(0b1001000101); // mem, cmdline, mmap, loader name
    expect(flags & 8).toBe(0); // no modules
    expect(u32(bus, mbi + 4)).toBe(639);
    expect(u32(bus, mbi + 8)).toBe(31 * 1024); // 32 MiB - 1 MiB, in KiB
    const cmd = u32(bus, mbi + 16);
    expect(new TextDecoder().decode(bus.readBytes(cmd, 40)).split('\0').slice(0, 2)).toEqual([
      'kernel.bin scale=10 console=ttyS0',
      'vmm', // the boot loader name follows
    ]);
    // Memory map: size field 20, then base, length, type; the last entry is RAM above 1 MiB.
    const len = u32(bus, mbi + 44);
    const at = u32(bus, mbi + 48);
    expect(len).toBe(4 * 24);
    expect(u32(bus, at)).toBe(20);
    expect(u32(bus, at + 3 * 24 + 4)).toBe(0x100000);
    expect(u32(bus, at + 3 * 24 + 12)).toBe(31 * 1024 * 1024);
    expect(u32(bus, at + 3 * 24 + 20)).toBe(1);
    await m.dispose();
  });

  it('takes the entry stack pointer from the stack setting', async () => {
    const { entry, m } = await boot(aoutKernel(), ', stack: 0x9f000');
    expect(entry.regs?.esp).toBe(0x9f000);
    await m.dispose();
  });

  it('refuses a stack setting that does not fit ESP, naming the setting', async () => {
    await expect(boot(aoutKernel(), ', stack: 0x100000000')).rejects.toThrow(/stack/);
  });

  it.each([false, true])('loads an ELF kernel at its physical addresses (ELF64: %s)', async (is64) => {
    const { bus, entry, m } = await boot(elfKernel(is64));
    expect(entry.ip).toBe(0x200040); // the virtual entry translated through the segment
    expect(bus.read(0x200000, 4)).toBe(0x1badb002);
    expect(bus.read(0x200000 + 0x1ff, 1)).toBe(0xcc);
    expect(bus.read(0x200000 + 0x200, 1)).toBe(0); // memsz beyond filesz is zeroed
    await m.dispose();
  });

  it('places modules page-aligned after the kernel, with their strings', async () => {
    const a = new Uint8Array(5000).fill(1);
    const b = new Uint8Array(10).fill(2);
    const { bus, entry, m } = await boot(aoutKernel(), ', modules: ["a.img arg=1", b.img]', {
      'a.img': a,
      'b.img': b,
    });
    const mbi = entry.regs!.ebx!;
    expect(u32(bus, mbi) & 8).toBe(8);
    expect(u32(bus, mbi + 20)).toBe(2);
    const mods = u32(bus, mbi + 24);
    const [s0, e0, str0, , s1, e1] = [0, 4, 8, 12, 16, 20].map((o) => u32(bus, mods + o));
    expect(s0).toBe(0x103000);
    expect(e0 - s0!).toBe(5000);
    expect(s1).toBe(0x105000);
    expect(e1! - s1!).toBe(10);
    expect(bus.read(s1!, 1)).toBe(2);
    const str = new TextDecoder().decode(bus.readBytes(str0!, 200)).split('\0')[0];
    expect(str).toMatch(/\/a\.img arg=1$/);
    await m.dispose();
  });

  it.each([
    ['no header', new Uint8Array(100), 'no multiboot header (magic 0x1badb002) in the first 8 KiB'],
    [
      'a bad checksum',
      (() => {
        const h = header(0x10003);
        h[8] ^= 1;
        return h;
      })(),
      'multiboot header at offset 0x0 has a bad checksum',
    ],
    ['an ELF-less image without the a.out kludge', header(3), 'not an ELF file'],
    ['an unsupported required flag', header(0x10), 'requires features this loader lacks (flags 0x10)'],
    [
      'load_end beyond the file',
      header(0x10000, [0x100000, 0x100000, 0x100000 + 0x100000, 0, 0x100000]),
      'is beyond the end of the file',
    ],
    [
      'a kernel outside RAM',
      header(0x10000, [0x4000000, 0x4000000, 0, 0, 0x4000000]),
      'is outside RAM (host.memory is 32 MiB)',
    ],
  ])('refuses %s with a clear error', async (_what, image, message) => {
    await expect(boot(image)).rejects.toThrow(message);
  });

  it('boots the committed sample guest image (a.out kludge at 0x200000)', async () => {
    const file = resolve('guests/sample/sample.bin');
    if (!existsSync(file)) return;
    const { readFileSync } = await import('node:fs');
    const { entry, bus, m } = await boot(new Uint8Array(readFileSync(file)));
    expect(entry.ip).toBe(0x200000);
    expect(bus.read(0x200000, 4)).not.toBe(0);
    await m.dispose();
  });
});
