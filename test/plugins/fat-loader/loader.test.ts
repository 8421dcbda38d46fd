/**
 * The tutorial's loading step end to end: a FAT32 disk.img made with `vmm disk` functions, read by
 * fat-loader's AHCI driver through pci-host and the ahci model, files placed at 0x8000 and
 * 0x200000. With VMM_NIMBOS_DIR pointing at a folder holding nimbos.bin and rvm-bios.bin, the real
 * images too.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadMachine } from '../../../src/index.js';
import { MemoryLog } from '../../../src/core/log.js';
import { addFiles, createDisk } from '../../../src/disk/index.js';

const TMP = resolve('test/.tmp');

function tmp(): string {
  mkdirSync(TMP, { recursive: true });
  return mkdtempSync(join(TMP, 'fat-loader-'));
}

/** Stand-ins: a 110-byte "BIOS" and a ~550 KiB "kernel" with position-dependent bytes. */
function standIns(dir: string): { bios: Uint8Array; kernel: Uint8Array } {
  const bios = new Uint8Array(110).map((_, i) => (i * 31 + 7) & 0xff);
  const kernel = new Uint8Array(550 * 1024 + 123).map((_, i) => (i ^ (i >>> 8) ^ (i >>> 16)) & 0xff);
  writeFileSync(join(dir, 'rvm-bios.bin'), bios);
  writeFileSync(join(dir, 'nimbos.bin'), kernel);
  return { bios, kernel };
}

function machineFile(dir: string, files: string, extra = ''): string {
  const f = join(dir, 'm.yaml');
  writeFileSync(
    f,
    'host:\n  memory: 128MiB\n  devices:\n    - { plugin: pci-host }\n' +
      '    - { plugin: ahci, disks: [ { image: disk.img } ] }\n' +
      `vmm:\n  loader: { plugin: fat-loader, files: { ${files} }${extra} }\n`,
  );
  return f;
}

async function runStart(file: string, log = new MemoryLog()) {
  const lm = await loadMachine(file, { noUserConfig: true, logSink: log.sink });
  const reason = await lm.run({ virtualTimeoutNs: 1 });
  return { lm, reason, log };
}

const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;

describe('fat-loader through the AHCI model', () => {
  it('loads rvm-bios.bin at 0x8000 and nimbos.bin at 0x200000 from a FAT32 disk.img', async () => {
    const dir = tmp();
    const { bios, kernel } = standIns(dir);
    const img = join(dir, 'disk.img');
    await createDisk(img, { size: '40M', fat: 32 });
    await addFiles(img, [join(dir, 'rvm-bios.bin'), join(dir, 'nimbos.bin')]);
    const before = readFileSync(img);
    const { lm, reason, log } = await runStart(
      machineFile(dir, 'rvm-bios.bin: 0x8000, nimbos.bin: 0x200000'),
    );
    expect(reason.kind).toBe('timeout');
    const bus = lm.machine.hostBus;
    expect(same(bus.readBytes(0x8000, bios.length), bios)).toBe(true);
    expect(same(bus.readBytes(0x200000, kernel.length), kernel)).toBe(true);
    // Nothing written past the files.
    expect(bus.read(0x8000 + bios.length, 4)).toBe(0);
    expect(bus.read(0x200000 + kernel.length, 4)).toBe(0);
    expect(log.text()).toContain('loaded rvm-bios.bin (110 bytes) at 0x8000');
    expect(log.text()).toContain(`loaded nimbos.bin (${kernel.length} bytes) at 0x200000`);
    // The data went through the HBA: commands were issued and sectors read from the image.
    const stats = lm.stats();
    expect(Number(stats.ahci!.commands)).toBeGreaterThan(3);
    expect(Number(stats.ahci!['port0.sectorsRead'])).toBeGreaterThanOrEqual(Math.ceil(kernel.length / 512));
    expect(same(readFileSync(img), before)).toBe(true);
    await lm.dispose();
  });

  it('reads files in subdirectories of an MBR-less FAT16 volume too', async () => {
    const dir = tmp();
    const { bios } = standIns(dir);
    const img = join(dir, 'disk.img');
    await createDisk(img, { size: '8M', fat: 16 });
    await addFiles(img, [join(dir, 'rvm-bios.bin')], { to: '/boot/firmware' });
    const { lm } = await runStart(machineFile(dir, '"/boot/firmware/rvm-bios.bin": 0x9000'));
    expect(same(lm.machine.hostBus.readBytes(0x9000, bios.length), bios)).toBe(true);
    await lm.dispose();
  });

  it('names what the volume holds when a file is missing', async () => {
    const dir = tmp();
    standIns(dir);
    const img = join(dir, 'disk.img');
    await createDisk(img, { size: '40M', fat: 32 });
    await addFiles(img, [join(dir, 'rvm-bios.bin')]);
    await expect(runStart(machineFile(dir, 'nimbos.bin: 0x200000'))).rejects.toThrow(
      /fat-loader.*failed in start: no file "nimbos\.bin" in .*disk\.img; the root directory holds: rvm-bios\.bin/,
    );
  });

  it('reports a corrupt volume clearly', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'disk.img'), new Uint8Array(1024 * 1024).fill(0x5a));
    await expect(runStart(machineFile(dir, 'nimbos.bin: 0x200000'))).rejects.toThrow(
      /fat-loader[\s\S]*disk\.img/,
    );
  });

  it('refuses destinations outside host RAM and over its scratch area', async () => {
    const dir = tmp();
    standIns(dir);
    const img = join(dir, 'disk.img');
    await createDisk(img, { size: '40M', fat: 32 });
    await addFiles(img, [join(dir, 'rvm-bios.bin')]);
    await expect(runStart(machineFile(dir, 'rvm-bios.bin: 0x7fffff0'))).rejects.toThrow(
      /setting files\["rvm-bios\.bin"\]: rvm-bios\.bin \(110 bytes\) at 0x7fffff0 does not fit in host RAM/,
    );
    await expect(runStart(machineFile(dir, 'rvm-bios.bin: 0x7000100'))).rejects.toThrow(
      /overlaps the driver's scratch area/,
    );
    await expect(runStart(machineFile(dir, 'rvm-bios.bin: 0x8000', ', scratch: 0x9000000'))).rejects.toThrow(
      /setting scratch: the scratch area 0x9000000/,
    );
  });

  const nimbos = process.env.VMM_NIMBOS_DIR;
  const haveNimbos =
    nimbos !== undefined &&
    existsSync(join(nimbos, 'nimbos.bin')) &&
    existsSync(join(nimbos, 'rvm-bios.bin'));
  it.skipIf(!haveNimbos)('loads the real NimbOS images (VMM_NIMBOS_DIR)', async () => {
    const dir = tmp();
    const img = join(dir, 'disk.img');
    await createDisk(img, { size: '40M', fat: 32 });
    await addFiles(img, [join(nimbos!, 'rvm-bios.bin'), join(nimbos!, 'nimbos.bin')]);
    const { lm } = await runStart(machineFile(dir, 'rvm-bios.bin: 0x8000, nimbos.bin: 0x200000'));
    const bios = readFileSync(join(nimbos!, 'rvm-bios.bin'));
    const kernel = readFileSync(join(nimbos!, 'nimbos.bin'));
    const bus = lm.machine.hostBus;
    expect(same(bus.readBytes(0x8000, bios.length), bios)).toBe(true);
    expect(same(bus.readBytes(0x200000, kernel.length), kernel)).toBe(true);
    // nimbos.bin begins with a short jump over its multiboot header, which sits at offset 8.
    expect(bus.read(0x200008, 4)).toBe(0x1badb002);
    await lm.dispose();
  });
});
