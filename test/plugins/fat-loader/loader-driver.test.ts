/**
 * fat-loader's AHCI driver against the model (through pci-host), and the loader writing through a
 * policy's GuestMemory instead of the host bus.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadMachine } from '../../../src/index.js';
import { AhciDriver, findAhci } from '../../../plugins/fat-loader/ahci-driver.js';
import { addFiles, createDisk } from '../../../src/disk/index.js';

const TMP = resolve('test/.tmp');
const tmp = () => {
  mkdirSync(TMP, { recursive: true });
  return mkdtempSync(join(TMP, 'ahci-driver-'));
};
const pattern = (sectors: number) => new Uint8Array(sectors * 512).map((_, i) => (i * 5 + (i >>> 9)) & 0xff);

async function machine(dir: string, image: Uint8Array, devices = '') {
  writeFileSync(join(dir, 'disk.img'), image);
  const f = join(dir, 'm.yaml');
  writeFileSync(
    f,
    'host:\n  memory: 64MiB\n  devices:\n    - { plugin: pci-host }\n' +
      `    - { plugin: ahci, addr: "3.0", disks: [ { image: disk.img, model: "QEMU HARDDISK" } ] }\n${devices}`,
  );
  return loadMachine(f, { noUserConfig: true });
}

describe('ahci-driver', () => {
  it('finds the HBA by class, identifies the disk and reads and writes through commands', async () => {
    const img = pattern(3000);
    const lm = await machine(tmp(), img);
    const bus = lm.machine.hostBus;
    expect(findAhci(bus)).toEqual({ bus: 0, device: 3, function: 0 });
    // A small scratch area: 16 KiB buffer -> 32 sectors per command.
    const d = AhciDriver.open({ bus, scratch: 0x100_0000, scratchSize: 0x2000 + 0x4000 });
    expect(d.info.model).toBe('QEMU HARDDISK');
    expect(d.sectorCount).toBe(3000);
    expect(d.port).toBe(0);
    const before = d.commands;
    const got = d.read(10, 100);
    expect(Buffer.compare(got, img.subarray(10 * 512, 110 * 512))).toBe(0);
    expect(d.commands - before).toBe(Math.ceil(100 / 32));
    const data = new Uint8Array(40 * 512).fill(0x3c);
    d.write(2960, data);
    expect(Buffer.compare(d.read(2959, 41).subarray(512), data)).toBe(0);
    expect(() => d.read(2990, 20)).toThrow(/outside the disk \(3000 sectors\)/);
    d.close();
    await lm.dispose();
  });

  it('turns device errors into messages and recovers the port', async () => {
    const lm = await machine(tmp(), pattern(64));
    const bus = lm.machine.hostBus;
    const d = AhciDriver.open({ bus, scratch: 0x100_0000, scratchSize: 0x10000 });
    // Bypass the range check to make the device itself refuse.
    const unchecked = d as unknown as { sectorCount: number };
    Object.defineProperty(unchecked, 'sectorCount', { value: 1000 });
    expect(() => d.read(60, 8)).toThrow(
      /READ DMA EXT of 8 sector\(s\) at LBA 60 failed: status 0x41 error 0x14 \(ABRT, IDNF\)/,
    );
    expect(Buffer.compare(d.read(0, 2), pattern(2))).toBe(0);
    await lm.dispose();
  });

  it('says so when there is no AHCI function or no disk', async () => {
    const dir = tmp();
    const f = join(dir, 'none.yaml');
    writeFileSync(f, 'host:\n  memory: 64MiB\n  devices:\n    - { plugin: pci-host }\n');
    const lm = await loadMachine(f, { noUserConfig: true });
    expect(() =>
      AhciDriver.open({ bus: lm.machine.hostBus, scratch: 0x100_0000, scratchSize: 0x10000 }),
    ).toThrow(/no AHCI controller \(PCI class 01\/06\/01\) found on bus 0/);
    await lm.dispose();
    const f2 = join(dir, 'nodisk.yaml');
    writeFileSync(
      f2,
      'host:\n  memory: 64MiB\n  devices:\n    - { plugin: pci-host }\n    - { plugin: ahci }\n',
    );
    const lm2 = await loadMachine(f2, { noUserConfig: true });
    expect(() =>
      AhciDriver.open({ bus: lm2.machine.hostBus, scratch: 0x100_0000, scratchSize: 0x10000 }),
    ).toThrow(/no disk on any port of the AHCI controller at 00:1f\.2/);
    await lm2.dispose();
  });

  it('writes through the GuestMemory a policy provides', async () => {
    const dir = tmp();
    const file = join(dir, 'rvm-bios.bin');
    const bios = new Uint8Array(110).map((_, i) => 255 - i);
    writeFileSync(file, bios);
    await createDisk(join(dir, 'disk.img'), { size: '40M', fat: 32 });
    await addFiles(join(dir, 'disk.img'), [file]);
    // A stand-in policy: guest RAM is 1 MiB of host RAM at 0x1000000.
    writeFileSync(
      join(dir, 'policy.ts'),
      `import { definePlugin, Tokens, z } from 'vmm';
export default definePlugin({
  name: 'test-policy', description: 'guest RAM at host 0x1000000', provides: [Tokens.GuestMemory],
  settings: z.object({}),
  create(ctx) {
    ctx.provide(Tokens.GuestMemory, {
      size: 0x100000,
      write: (addr: number, bytes: Uint8Array) => ctx.machine.hostBus.writeBytes(0x1000000 + addr, bytes),
    });
    return {};
  },
});
`,
    );
    const f = join(dir, 'm.yaml');
    writeFileSync(
      f,
      'host:\n  memory: 64MiB\n  devices:\n    - { plugin: pci-host }\n' +
        '    - { plugin: ahci, disks: [ { image: disk.img } ] }\n' +
        'vmm:\n  loader: { plugin: fat-loader, files: { rvm-bios.bin: 0x8000 }, scratch: 0x2000000 }\n' +
        '  policy: { plugin: ./policy.ts }\n',
    );
    const lm = await loadMachine(f, { noUserConfig: true });
    await lm.run({ virtualTimeoutNs: 1 });
    const bus = lm.machine.hostBus;
    expect(Buffer.compare(bus.readBytes(0x1008000, 110), bios)).toBe(0);
    expect(bus.read(0x8000, 4)).toBe(0);
    await lm.dispose();
  });
});
