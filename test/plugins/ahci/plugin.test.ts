/**
 * The ahci plugin in a machine: found through PCI configuration space at 00:1f.2, ABAR sizing and
 * moving, INTx on the bus IRQ line, image errors naming the setting, persist flushed at stop.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadMachine } from '../../../src/index.js';
import type { Machine } from '../../../src/core/machine.js';
import { configAddress } from '../../../plugins/pci-host/host.js';
import { AtaCmd, Ghc, GhcBits, Px, PxCMD, PxIS } from '../../../plugins/ahci/registers.js';
import { CLB, CTBA0, FB, patternImage, regFis, tmpDir, writeImage } from './support.js';

function yaml(dir: string, disks: string, extra = ''): string {
  const f = join(dir, 'm.yaml');
  writeFileSync(
    f,
    `host:\n  memory: 32MiB\n  devices:\n    - { plugin: pci-host }\n` +
      `    - { plugin: ahci, disks: [${disks}]${extra} }\n`,
  );
  return f;
}

function cfg(m: Machine, reg: number, size: 1 | 2 | 4 = 4, value?: number): number {
  m.hostBus.ioWrite(0xcf8, 4, configAddress(0, 0x1f, 2, reg));
  if (value === undefined) return m.hostBus.ioRead(0xcfc + (reg & 3), size);
  m.hostBus.ioWrite(0xcfc + (reg & 3), size, value);
  return 0;
}

describe('ahci plugin', () => {
  it('is an ICH9 AHCI function at 00:1f.2 with BAR5 = ABAR', async () => {
    const dir = tmpDir('ahcip-');
    writeImage(dir, 'disk.img', patternImage(16));
    const lm = await loadMachine(yaml(dir, '{ image: disk.img }'), { noUserConfig: true });
    const m = lm.machine;
    expect(cfg(m, 0)).toBe(0x2922_8086);
    expect(cfg(m, 0x08) >>> 8).toBe(0x01_06_01);
    expect(cfg(m, 0x24)).toBe(0xfebf_0000);
    expect(cfg(m, 0x3c, 1)).toBe(16);
    expect(cfg(m, 0x3d, 1)).toBe(1);
    expect(m.hostBus.read(0xfebf_0000 + Ghc.VS, 4)).toBe(0x0001_0300);
    // Size the BAR with decoding off, then move it.
    cfg(m, 0x04, 2, 0);
    expect(m.hostBus.read(0xfebf_0000 + Ghc.VS, 4)).toBe(0xffff_ffff);
    cfg(m, 0x24, 4, 0xffff_ffff);
    expect(cfg(m, 0x24)).toBe(0xffff_f000);
    cfg(m, 0x24, 4, 0xfeb0_0000);
    cfg(m, 0x04, 2, 0x6);
    expect(m.hostBus.read(0xfeb0_0000 + Ghc.VS, 4)).toBe(0x0001_0300);
    expect(m.hostBus.read(0xfebf_0000 + Ghc.VS, 4)).toBe(0xffff_ffff);
    await lm.dispose();
  });

  it('raises its bus IRQ line through INTx, masked by Command.InterruptDisable', async () => {
    const dir = tmpDir('ahcip-');
    writeImage(dir, 'disk.img', patternImage(16));
    const lm = await loadMachine(yaml(dir, '{ image: disk.img }', ', irq: 18'), { noUserConfig: true });
    const m = lm.machine;
    const bus = m.hostBus;
    const abar = 0xfebf_0000;
    const port = abar + 0x100;
    cfg(m, 0x04, 2, 0x6); // memory space + bus master
    bus.write(abar + Ghc.GHC, 4, (GhcBits.AE | GhcBits.IE) >>> 0);
    bus.write(port + Px.CLB, 4, CLB);
    bus.write(port + Px.FB, 4, FB);
    bus.write(port + Px.CMD, 4, PxCMD.FRE | PxCMD.ST);
    bus.write(port + Px.IE, 4, PxIS.DHRS);
    bus.write(CLB, 4, 5 | (1 << 16));
    bus.write(CLB + 8, 4, CTBA0);
    bus.writeBytes(CTBA0, regFis(AtaCmd.READ_DMA_EXT, 3, 1));
    bus.write(CTBA0 + 0x80, 4, 0x9000);
    bus.write(CTBA0 + 0x8c, 4, 511);
    expect(bus.irq.level(18)).toBe(false);
    bus.write(port + Px.CI, 4, 1);
    expect(bus.irq.level(18)).toBe(true);
    expect(Buffer.compare(bus.readBytes(0x9000, 512), patternImage(4).subarray(3 * 512))).toBe(0);
    cfg(m, 0x04, 2, 0x6 | 0x400);
    expect(bus.irq.level(18)).toBe(false);
    expect(cfg(m, 0x06, 2) & 0x8).toBe(0x8);
    cfg(m, 0x04, 2, 0x6);
    expect(bus.irq.level(18)).toBe(true);
    bus.write(port + Px.IS, 4, PxIS.DHRS);
    bus.write(abar + Ghc.IS, 4, 1);
    expect(bus.irq.level(18)).toBe(false);
    await lm.dispose();
  });

  it('names the file and the setting when an image is missing or too small', async () => {
    const dir = tmpDir('ahcip-');
    await expect(loadMachine(yaml(dir, '{ image: nope.img }'), { noUserConfig: true })).rejects.toThrow(
      /setting disks\[0\]\.image: disk image .*nope\.img not found/,
    );
    writeImage(dir, 'tiny.img', new Uint8Array(10));
    writeImage(dir, 'ok.img', patternImage(4));
    await expect(
      loadMachine(yaml(dir, '{ image: ok.img }, { image: tiny.img }'), { noUserConfig: true }),
    ).rejects.toThrow(/setting disks\[1\]\.image: disk image .*tiny\.img is 10 bytes/);
  });

  it('writes guest writes to the image at stop with persist: true, and never without', async () => {
    for (const persist of [false, true]) {
      const dir = tmpDir('ahcip-');
      const p = writeImage(dir, 'disk.img', patternImage(16));
      const lm = await loadMachine(yaml(dir, `{ image: disk.img, persist: ${persist} }`), {
        noUserConfig: true,
      });
      const bus = lm.machine.hostBus;
      const port = 0xfebf_0000 + 0x100;
      cfg(lm.machine, 0x04, 2, 0x6);
      bus.write(0xfebf_0000 + Ghc.GHC, 4, GhcBits.AE >>> 0);
      bus.write(port + Px.CLB, 4, CLB);
      bus.write(port + Px.FB, 4, FB);
      bus.write(port + Px.CMD, 4, PxCMD.FRE | PxCMD.ST);
      bus.write(CLB, 4, 5 | (1 << 6) | (1 << 16));
      bus.write(CLB + 8, 4, CTBA0);
      bus.writeBytes(CTBA0, regFis(AtaCmd.WRITE_DMA_EXT, 2, 1));
      bus.writeBytes(0x9000, new Uint8Array(512).fill(0xee));
      bus.write(CTBA0 + 0x80, 4, 0x9000);
      bus.write(CTBA0 + 0x8c, 4, 511);
      bus.write(port + Px.CI, 4, 1);
      expect(bus.read(port + Px.CI, 4)).toBe(0);
      // Not yet flushed either way.
      expect(Buffer.compare(readFileSync(p), patternImage(16))).toBe(0);
      const reason = await lm.run({ virtualTimeoutNs: 1000 });
      expect(reason.kind).toBe('timeout');
      const want = patternImage(16);
      if (persist) want.fill(0xee, 1024, 1536);
      expect(Buffer.compare(readFileSync(p), want)).toBe(0);
      await lm.dispose();
    }
  });
});
