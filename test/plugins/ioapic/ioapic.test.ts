import { describe, expect, it } from 'vitest';
import ioapicPlugin from '../../../plugins/ioapic/index.js';
import lapicTimer from '../../../plugins/lapic-timer/index.js';
import { Tokens } from '../../../src/core/tokens.js';
import { DeliveryMode, type LocalApic, type MsrRead } from '../../../src/devices/apic.js';
import { TestMachine } from '../../devices/harness.js';

const BASE = 0xfec0_0000;

/** Records interrupt messages; EOIs are sent by the test. */
class FakeLapic implements LocalApic {
  readonly apicId = 0;
  messages: [number, boolean, number][] = [];
  private eoi: ((v: number) => void)[] = [];
  matchesDestination(d: number, logical: boolean): boolean {
    return logical ? (d & 1) !== 0 : d === 0 || d === 0xff;
  }
  acceptInterrupt(vector: number, level: boolean, mode: DeliveryMode = DeliveryMode.Fixed): void {
    this.messages.push([vector, level, mode]);
  }
  onEoi(l: (v: number) => void): void {
    this.eoi.push(l);
  }
  sendEoi(v: number): void {
    for (const l of this.eoi) l(v);
  }
  setLint(): void {}
  setExtIntSource(): void {}
  readMsr(): MsrRead {
    return { ok: false, lo: 0, hi: 0 };
  }
  writeMsr(): boolean {
    return false;
  }
  handlesMsr(): boolean {
    return false;
  }
  hasPendingInterrupt(): boolean {
    return false;
  }
  acknowledgeInterrupt(): number {
    return 0;
  }
}

async function setup(settings: Parameters<TestMachine['add']>[1] = {}) {
  const m = new TestMachine();
  const lapic = new FakeLapic();
  m.set(Tokens.LocalApic, lapic);
  await m.add(ioapicPlugin, settings);
  const read = (index: number) => {
    m.hostBus.write(BASE, 4, index);
    return m.hostBus.read(BASE + 0x10, 4);
  };
  const write = (index: number, v: number) => {
    m.hostBus.write(BASE, 4, index);
    m.hostBus.write(BASE + 0x10, 4, v);
  };
  const route = (pin: number, low: number, high = 0) => {
    write(0x11 + 2 * pin, high);
    write(0x10 + 2 * pin, low);
  };
  return { m, lapic, read, write, route };
}

const LEVEL = 1 << 15;
const MASK = 1 << 16;
const REMOTE_IRR = 1 << 14;

describe('ioapic', () => {
  it('has the reset values: ID, version 0x20 with 24 entries, all entries masked', async () => {
    const { m, read } = await setup({ id: 2 });
    expect(read(0x00)).toBe(0x0200_0000);
    expect(read(0x01)).toBe(0x0017_0020);
    expect(read(0x02)).toBe(0x0200_0000);
    for (let pin = 0; pin < 24; pin++) {
      expect(read(0x10 + 2 * pin)).toBe(MASK);
      expect(read(0x11 + 2 * pin)).toBe(0);
    }
    expect(m.hostBus.read(BASE, 4)).toBe(0x11 + 2 * 23); // IOREGSEL reads back
  });

  it('keeps read-only bits: version, delivery status, remote IRR', async () => {
    const { read, write } = await setup();
    write(0x01, 0);
    expect(read(0x01)).toBe(0x0017_0020);
    write(0x00, 0xffff_ffff);
    expect(read(0x00)).toBe(0x0f00_0000);
    write(0x10, 0xffff_ffff);
    expect(read(0x10)).toBe(0x0001_afff);
    write(0x11, 0xffff_ffff);
    expect(read(0x11)).toBe(0xff00_0000);
  });

  it('delivers edge-triggered pins on the rising edge only, and ignores masked edges', async () => {
    const { m, lapic, route } = await setup();
    route(4, 0x34);
    m.hostBus.irq.set(4, true);
    m.hostBus.irq.set(4, true);
    m.hostBus.irq.set(4, false);
    expect(lapic.messages).toEqual([[0x34, false, DeliveryMode.Fixed]]);
    route(4, 0x34 | MASK);
    m.hostBus.irq.pulse(4);
    route(4, 0x34); // unmasking does not replay the lost edge
    expect(lapic.messages).toHaveLength(1);
  });

  it('routes ISA IRQ0 to pin 2', async () => {
    const { m, lapic, route } = await setup();
    route(2, 0x30);
    route(0, 0x31);
    m.hostBus.irq.pulse(0);
    expect(lapic.messages).toEqual([[0x30, false, 0]]);
    const t = await setup({ 'irq0-to-gsi2': false });
    t.route(0, 0x31);
    t.m.hostBus.irq.pulse(0);
    expect(t.lapic.messages).toEqual([[0x31, false, 0]]);
  });

  it('holds level-triggered pins with Remote IRR until the EOI, and redelivers if still asserted', async () => {
    const { m, lapic, read, route } = await setup();
    route(10, 0x50 | LEVEL);
    m.hostBus.irq.set(10, true);
    expect(lapic.messages).toEqual([[0x50, true, 0]]);
    expect(read(0x10 + 20) & REMOTE_IRR).toBe(REMOTE_IRR);
    lapic.sendEoi(0x51); // another vector: no effect
    expect(read(0x10 + 20) & REMOTE_IRR).toBe(REMOTE_IRR);
    lapic.sendEoi(0x50); // still asserted: delivered again
    expect(lapic.messages).toHaveLength(2);
    m.hostBus.irq.set(10, false);
    lapic.sendEoi(0x50);
    expect(read(0x10 + 20) & REMOTE_IRR).toBe(0);
    expect(lapic.messages).toHaveLength(2);
  });

  it('delivers an asserted level pin when unmasked, and takes EOIs through the EOI register', async () => {
    const { m, lapic, read, route } = await setup();
    route(11, 0x60 | LEVEL | MASK);
    m.hostBus.irq.set(11, true);
    expect(lapic.messages).toHaveLength(0);
    route(11, 0x60 | LEVEL);
    expect(lapic.messages).toEqual([[0x60, true, 0]]);
    m.hostBus.irq.set(11, false);
    m.hostBus.write(BASE + 0x40, 4, 0x60);
    expect(read(0x10 + 22) & REMOTE_IRR).toBe(0);
  });

  it('passes delivery mode and destination, and counts messages nobody accepts', async () => {
    const { m, lapic, route } = await setup();
    route(5, 0x70 | (DeliveryMode.NMI << 8));
    m.hostBus.irq.pulse(5);
    route(6, 0x71 | (1 << 11), 0x0100_0000); // logical destination 1
    m.hostBus.irq.pulse(6);
    route(7, 0x72, 0x0300_0000); // physical APIC 3: absent
    m.hostBus.irq.pulse(7);
    expect(lapic.messages).toEqual([
      [0x70, false, DeliveryMode.NMI],
      [0x71, false, 0],
    ]);
    const t = await setup();
    t.route(7, 0x72);
    t.m.hostBus.irq.pulse(7);
    expect(t.lapic.messages).toHaveLength(1);
  });

  it('reads byte lanes of IOWIN and 0 elsewhere in the page', async () => {
    const { m, write } = await setup();
    write(0x10, 0x0001_0042);
    expect(m.hostBus.read(BASE + 0x10, 1)).toBe(0x42);
    expect(m.hostBus.read(BASE + 0x12, 1)).toBe(0x01);
    expect(m.hostBus.read(BASE + 0x20, 4)).toBe(0);
  });
});

describe('ioapic with the local APIC model', () => {
  it('delivers a level-triggered line end to end and re-arms on the LAPIC EOI broadcast', async () => {
    const m = new TestMachine();
    await m.add(lapicTimer);
    await m.add(ioapicPlugin);
    const apic = m.get(Tokens.InterruptController);
    m.hostBus.write(0xfee0_00f0, 4, 0x1ff); // SVR: software-enable
    m.hostBus.write(BASE, 4, 0x10 + 2 * 9);
    m.hostBus.write(BASE + 0x10, 4, 0x39 | LEVEL);
    m.hostBus.irq.set(9, true);
    expect(apic.hasPendingInterrupt()).toBe(true);
    expect(apic.acknowledgeInterrupt()).toBe(0x39);
    m.hostBus.irq.set(9, false); // the handler quiets the device
    m.hostBus.write(0xfee0_00b0, 4, 0); // EOI: broadcast, Remote IRR cleared
    m.hostBus.write(BASE, 4, 0x10 + 2 * 9);
    expect(m.hostBus.read(BASE + 0x10, 4) & REMOTE_IRR).toBe(0);
    m.hostBus.irq.set(9, true);
    expect(apic.acknowledgeInterrupt()).toBe(0x39);
  });
});
