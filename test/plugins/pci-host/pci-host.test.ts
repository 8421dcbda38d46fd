/**
 * The PCI host bridge through its ports, as firmware enumerates: CONFIG_ADDRESS (dword only, enable
 * bit), CONFIG_DATA in bytes/words/dwords, absent functions, and a type 0 header's BAR sizing,
 * Command register and INTx.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { PortDevice } from '../../../src/core/bus.js';
import { Tokens } from '../../../src/core/tokens.js';
import pciHost from '../../../plugins/pci-host/index.js';
import {
  MmioBarMapping,
  PciCfg,
  PciCommand,
  PciConfigSpace,
  PciStatus,
} from '../../../plugins/pci-host/config-space.js';
import { configAddress } from '../../../plugins/pci-host/host.js';
import { TestMachine } from '../../devices/harness.js';

const CF8 = 0xcf8;
const CFC = 0xcfc;

describe('pci-host', () => {
  let m: TestMachine;
  let fn: PciConfigSpace;
  const intx: boolean[] = [];

  const cfgRead = (dev: number, f: number, reg: number, size: 1 | 2 | 4 = 4): number => {
    m.hostBus.ioWrite(CF8, 4, configAddress(0, dev, f, reg));
    return m.hostBus.ioRead(CFC + (reg & 3), size);
  };
  const cfgWrite = (dev: number, f: number, reg: number, value: number, size: 1 | 2 | 4 = 4): void => {
    m.hostBus.ioWrite(CF8, 4, configAddress(0, dev, f, reg));
    m.hostBus.ioWrite(CFC + (reg & 3), size, value);
  };

  beforeEach(async () => {
    m = new TestMachine();
    await m.add(pciHost);
    fn = new PciConfigSpace('test-fn', {
      vendorId: 0x8086,
      deviceId: 0x2922,
      revisionId: 0x02,
      classCode: [0x01, 0x06, 0x01],
      bars: [undefined, undefined, undefined, undefined, undefined, { kind: 'mem32', size: 0x2000 }],
      interruptPin: 1,
      interruptLine: 16,
    });
    intx.length = 0;
    fn.onIntx = (level) => intx.push(level);
    m.get(Tokens.PciHost).register(0x1f, 2, fn, 'test');
  });

  it('latches CONFIG_ADDRESS on dword accesses only, bits 1:0 and 30:24 reading 0', () => {
    m.hostBus.ioWrite(CF8, 4, 0xffff_ffff);
    expect(m.hostBus.ioRead(CF8, 4)).toBe(0x80ff_fffc);
    m.hostBus.ioWrite(CF8, 4, 0);
    // A byte access to 0xCF8 is not CONFIG_ADDRESS (nobody else claims it here: unmapped).
    m.hostBus.ioWrite(CF8, 1, 0xff);
    expect(m.hostBus.ioRead(CF8, 4)).toBe(0);
    expect(m.hostBus.stats.unmappedPortWrites).toBe(1);
  });

  it('leaves byte accesses to 0xCF9 to another device (the ICH9 reset control register)', () => {
    const seen: number[] = [];
    const rst: PortDevice = { ioRead: () => 0x5a, ioWrite: (_o, _s, v) => seen.push(v) };
    m.hostBus.addPorts('RST_CNT', 0xcf9, 1, rst);
    m.hostBus.ioWrite(0xcf9, 1, 0x06);
    expect(seen).toEqual([0x06]);
    expect(m.hostBus.ioRead(0xcf9, 1)).toBe(0x5a);
    expect(cfgRead(0x1f, 2, 0)).toBe(0x2922_8086);
  });

  it('reads the host bridge at 00:00.0 and all ones for absent functions and buses', () => {
    expect(cfgRead(0, 0, PciCfg.VENDOR_ID)).toBe(0x29c0_8086);
    expect(cfgRead(0, 0, 0x08) >>> 8).toBe(0x06_00_00);
    expect(cfgRead(0, 1, 0)).toBe(0xffff_ffff);
    expect(cfgRead(3, 0, 0, 2)).toBe(0xffff);
    expect(cfgRead(3, 0, 0, 1)).toBe(0xff);
    m.hostBus.ioWrite(CF8, 4, configAddress(1, 0x1f, 2, 0));
    expect(m.hostBus.ioRead(CFC, 4)).toBe(0xffff_ffff);
  });

  it('returns all ones when the enable bit is clear, and drops writes', () => {
    m.hostBus.ioWrite(CF8, 4, configAddress(0, 0x1f, 2, PciCfg.COMMAND) & 0x7fff_ffff);
    expect(m.hostBus.ioRead(CFC, 4)).toBe(0xffff_ffff);
    m.hostBus.ioWrite(CFC, 2, PciCommand.MemorySpace);
    expect(fn.command).toBe(0);
  });

  it('serves byte and word accesses at 0xCFC-0xCFF within the selected dword', () => {
    expect(cfgRead(0x1f, 2, 0x00, 2)).toBe(0x8086);
    expect(cfgRead(0x1f, 2, 0x02, 2)).toBe(0x2922);
    expect(cfgRead(0x1f, 2, 0x0b, 1)).toBe(0x01);
    expect(cfgRead(0x1f, 2, 0x0a, 1)).toBe(0x06);
    expect(cfgRead(0x1f, 2, 0x09, 1)).toBe(0x01);
    expect(cfgRead(0x1f, 2, 0x08, 1)).toBe(0x02);
    expect(cfgRead(0x1f, 2, PciCfg.INTERRUPT_PIN, 1)).toBe(1);
    expect(cfgRead(0x1f, 2, PciCfg.INTERRUPT_LINE, 1)).toBe(16);
    cfgWrite(0x1f, 2, PciCfg.INTERRUPT_LINE, 11, 1);
    expect(cfgRead(0x1f, 2, 0x3c)).toBe(0x0000_010b);
    // Read-only identification ignores writes.
    cfgWrite(0x1f, 2, 0, 0x1234_5678);
    expect(cfgRead(0x1f, 2, 0)).toBe(0x2922_8086);
    // Device-specific space reads 0.
    expect(cfgRead(0x1f, 2, 0x90)).toBe(0);
  });

  it('sizes BARs: all ones reads back the size mask; unimplemented BARs read 0', () => {
    cfgWrite(0x1f, 2, 0x24, 0xffff_ffff);
    expect(cfgRead(0x1f, 2, 0x24)).toBe(0xffff_e000);
    cfgWrite(0x1f, 2, 0x10, 0xffff_ffff);
    expect(cfgRead(0x1f, 2, 0x10)).toBe(0);
    cfgWrite(0x1f, 2, 0x24, 0xfebf_1234);
    expect(cfgRead(0x1f, 2, 0x24)).toBe(0xfebf_0000);
  });

  it('keeps the Command register to its writable bits and decodes the BAR only with memory space on', () => {
    cfgWrite(0x1f, 2, PciCfg.COMMAND, 0xffff, 2);
    expect(cfgRead(0x1f, 2, PciCfg.COMMAND, 2)).toBe(0x0546);
    cfgWrite(0x1f, 2, 0x24, 0xfebf_0000);
    expect(fn.memoryBar(5)).toBe(0xfebf_0000);
    cfgWrite(0x1f, 2, PciCfg.COMMAND, 0, 2);
    expect(fn.memoryBar(5)).toBeUndefined();
  });

  it('drives INTx from the interrupt condition unless Command.InterruptDisable, with Status.InterruptStatus', () => {
    fn.setInterrupt(true);
    expect(intx.at(-1)).toBe(true);
    expect(cfgRead(0x1f, 2, PciCfg.STATUS, 2) & PciStatus.InterruptStatus).not.toBe(0);
    cfgWrite(0x1f, 2, PciCfg.COMMAND, PciCommand.InterruptDisable, 2);
    expect(intx.at(-1)).toBe(false);
    expect(cfgRead(0x1f, 2, PciCfg.STATUS, 2) & PciStatus.InterruptStatus).not.toBe(0);
    cfgWrite(0x1f, 2, PciCfg.COMMAND, 0, 2);
    expect(intx.at(-1)).toBe(true);
    fn.setInterrupt(false);
    expect(intx.at(-1)).toBe(false);
    expect(cfgRead(0x1f, 2, PciCfg.STATUS, 2) & PciStatus.InterruptStatus).toBe(0);
  });

  it('refuses a taken slot', () => {
    expect(() => m.get(Tokens.PciHost).register(0x1f, 2, fn, 'other')).toThrow(
      /00:1f\.2 is already taken by test/,
    );
  });

  it('maps a BAR region where it points, and not over RAM', () => {
    m.hostBus.addRam('ram', 0, 0x10_0000);
    const dev = { mmioRead: () => 0x1234, mmioWrite: () => {} };
    const warnings: string[] = [];
    const map = new MmioBarMapping(m.hostBus, 'dev', 0x1000, dev, (w) => warnings.push(w));
    map.update(0xfebf_0000);
    expect(m.hostBus.read(0xfebf_0000, 4)).toBe(0x1234);
    map.update(0x8000);
    expect(map.base).toBeUndefined();
    expect(m.hostBus.read(0xfebf_0000, 4)).toBe(0xffff_ffff);
    expect(warnings[0]).toMatch(/overlaps ram/);
    map.update(0xfebe_0000);
    expect(m.hostBus.read(0xfebe_0000, 4)).toBe(0x1234);
  });
});
