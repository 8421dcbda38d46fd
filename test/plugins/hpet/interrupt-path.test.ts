// The q35 interrupt path end to end: HPET -> bus IRQ line -> I/O APIC (and 8259A) -> local APIC -> CPU.
import { describe, expect, it } from 'vitest';
import hpetPlugin from '../../../plugins/hpet/index.js';
import ioapicPlugin from '../../../plugins/ioapic/index.js';
import lapicTimer from '../../../plugins/lapic-timer/index.js';
import pic8259 from '../../../plugins/pic8259/index.js';
import { Tokens } from '../../../src/core/tokens.js';
import { TestMachine } from '../../devices/harness.js';

const HPET = 0xfed0_0000;
const IOAPIC = 0xfec0_0000;
const LAPIC = 0xfee0_0000;

async function q35() {
  const m = new TestMachine();
  await m.add(lapicTimer);
  await m.add(ioapicPlugin);
  await m.add(pic8259);
  await m.add(hpetPlugin);
  const cpu = m.get(Tokens.InterruptController);
  const ioapicRte = (pin: number, low: number) => {
    m.hostBus.write(IOAPIC, 4, 0x11 + 2 * pin);
    m.hostBus.write(IOAPIC + 0x10, 4, 0);
    m.hostBus.write(IOAPIC, 4, 0x10 + 2 * pin);
    m.hostBus.write(IOAPIC + 0x10, 4, low);
  };
  m.hostBus.write(LAPIC + 0xf0, 4, 0x1ff);
  return { m, cpu, ioapicRte };
}

describe('q35 interrupt path', () => {
  it('delivers HPET timer 0 in legacy mode through I/O APIC pin 2, with the 8259A masked', async () => {
    const { m, cpu, ioapicRte } = await q35();
    m.hostBus.ioWrite(0x21, 1, 0xff);
    m.hostBus.ioWrite(0xa1, 1, 0xff);
    ioapicRte(2, 0x30);
    m.hostBus.write(HPET + 0x100, 4, 0x4c); // T0: periodic, interrupt enabled, VAL_SET
    m.hostBus.write64(HPET + 0x108, 1000n);
    m.hostBus.write64(HPET + 0x108, 1000n);
    m.hostBus.write(HPET + 0x10, 4, 3); // enable, legacy replacement
    for (let tick = 0; tick < 3; tick++) {
      m.advance(10_000); // 1000 ticks of 10 ns
      expect(cpu.hasPendingInterrupt()).toBe(true);
      expect(cpu.acknowledgeInterrupt()).toBe(0x30);
      m.hostBus.write(LAPIC + 0xb0, 4, 0);
      expect(cpu.hasPendingInterrupt()).toBe(false);
    }
  });

  it('delivers a level-triggered HPET timer on an I/O APIC route until the status is cleared', async () => {
    const { m, cpu, ioapicRte } = await q35();
    ioapicRte(20, 0x41 | (1 << 15));
    m.hostBus.write(HPET + 0x140, 4, 0x06 | (20 << 9)); // T2: level, enabled, route 20
    m.hostBus.write64(HPET + 0x148, 100n);
    m.hostBus.write(HPET + 0x10, 4, 1);
    m.advance(1000);
    expect(cpu.acknowledgeInterrupt()).toBe(0x41);
    m.hostBus.write(HPET + 0x20, 4, 4); // the handler clears the status (line falls)
    m.hostBus.write(LAPIC + 0xb0, 4, 0); // EOI: Remote IRR cleared, no redelivery
    expect(cpu.hasPendingInterrupt()).toBe(false);
  });
});
