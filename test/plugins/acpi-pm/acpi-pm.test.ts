import { describe, expect, it } from 'vitest';
import acpiPm from '../../../plugins/acpi-pm/index.js';
import pciHost from '../../../plugins/pci-host/index.js';
import { PM_TIMER_HZ } from '../../../plugins/acpi-pm/model.js';
import { TestMachine } from '../../devices/harness.js';

describe('acpi-pm', () => {
  it('powers off on the 16-bit write of 0x2000 to 0x604 (SLP_EN, SLP_TYP 0 = QEMU S5)', async () => {
    const m = new TestMachine();
    await m.add(acpiPm);
    m.hostBus.ioWrite(0x604, 2, 0x2000);
    expect(m.stopReason).toEqual({
      kind: 'poweroff',
      code: 0,
      source: 'acpi-pm',
      message: expect.any(String),
    });
  });

  it('does not power off on SLP_TYP alone or on other sleep types', async () => {
    const m = new TestMachine();
    const inst = await m.add(acpiPm);
    m.hostBus.ioWrite(0x604, 2, 0x1c01); // SLP_TYP 7, SCI_EN, no SLP_EN
    expect(m.stopReason).toBeUndefined();
    expect(m.hostBus.ioRead(0x604, 2)).toBe(0x1c01);
    m.hostBus.ioWrite(0x604, 2, 0x2000 | (1 << 10)); // S3 in QEMU's encoding: not modelled
    m.hostBus.ioWrite(0x604, 2, 0x2000 | (1 << 10));
    expect(m.stopReason).toBeUndefined();
    expect(inst.stats?.()).toMatchObject({ otherSleepRequests: 2, powerOffs: 0 });
    expect(m.logs.entries.filter((e) => e.level === 'warn')).toHaveLength(1);
    // SLP_EN reads back as 0
    expect(m.hostBus.ioRead(0x604, 2) & 0x2000).toBe(0);
  });

  it('uses the ICH9 S5 encoding when configured', async () => {
    const m = new TestMachine();
    await m.add(acpiPm, { 's5-slp-typ': 7 });
    m.hostBus.ioWrite(0x604, 2, 0x2000);
    expect(m.stopReason).toBeUndefined();
    m.hostBus.ioWrite(0x604, 2, 0x3c00);
    expect(m.stopReason?.kind).toBe('poweroff');
  });

  it('resets through RST_CNT at 0xCF9 when RST_CPU is written', async () => {
    const m = new TestMachine();
    await m.add(acpiPm);
    m.hostBus.ioWrite(0xcf9, 1, 0x02); // SYS_RST alone selects the kind, no reset yet
    expect(m.stopReason).toBeUndefined();
    expect(m.hostBus.ioRead(0xcf9, 1)).toBe(0x02);
    m.hostBus.ioWrite(0xcf9, 1, 0x06);
    expect(m.stopReason).toEqual({ kind: 'reset', source: 'acpi-pm' });
  });

  it('shares 0xCF8-0xCFB with the PCI host: dwords go to CONFIG_ADDRESS, bytes at 0xCF9 to RST_CNT', async () => {
    const m = new TestMachine();
    await m.add(pciHost);
    await m.add(acpiPm);
    m.hostBus.ioWrite(0xcf8, 4, 0x8000_0000);
    expect(m.hostBus.ioRead(0xcf8, 4)).toBe(0x8000_0000);
    expect(m.stopReason).toBeUndefined();
    m.hostBus.ioWrite(0xcf9, 1, 0x0e);
    expect(m.stopReason).toEqual({ kind: 'reset', source: 'acpi-pm' });
  });

  it('counts the PM timer at 3.579545 MHz, wrapping at 24 bits', async () => {
    const m = new TestMachine();
    await m.add(acpiPm);
    expect(m.hostBus.ioRead(0x608, 4)).toBe(0);
    m.clock.now = 1_000_000; // 1 ms
    expect(m.hostBus.ioRead(0x608, 4)).toBe(Math.floor(PM_TIMER_HZ / 1000));
    m.clock.now = 10e9; // 10 s: 35,795,450 ticks, wrapped to 24 bits
    expect(m.hostBus.ioRead(0x608, 4)).toBe(35_795_450 % 2 ** 24);
    const m32 = new TestMachine();
    await m32.add(acpiPm, { 'pm-timer-bits': 32, 'reset-port': false });
    m32.clock.now = 10e9;
    expect(m32.hostBus.ioRead(0x608, 4)).toBe(35_795_450);
    expect(m32.hostBus.hasPort(0xcf9)).toBe(false);
  });

  it('has W1C status bits and a writable enable register', async () => {
    const m = new TestMachine();
    await m.add(acpiPm);
    expect(m.hostBus.ioRead(0x600, 2)).toBe(0);
    m.hostBus.ioWrite(0x602, 2, 0xffff);
    expect(m.hostBus.ioRead(0x602, 2)).toBe(0x0101);
  });

  it('claims only PM1_CNT without the full block', async () => {
    const m = new TestMachine();
    await m.add(acpiPm, { 'pm1-block': false });
    expect(m.hostBus.hasPort(0x600)).toBe(false);
    expect(m.hostBus.hasPort(0x604)).toBe(true);
    m.hostBus.ioWrite(0x604, 2, 0x2000);
    expect(m.stopReason?.kind).toBe('poweroff');
  });
});
