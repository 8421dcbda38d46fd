import { describe, expect, it } from 'vitest';
import lapicTimer from '../../../plugins/lapic-timer/index.js';
import pic8259 from '../../../plugins/pic8259/index.js';
import { Pic8259Pair } from '../../../plugins/pic8259/model.js';
import { Tokens } from '../../../src/core/tokens.js';
import { TestMachine } from '../../devices/harness.js';

/** A bare pair on a bus, programmed like Linux's init_8259A (vectors 0x20 and 0x28). */
async function setup(init = true, icw4 = 0x01) {
  const m = new TestMachine();
  await m.add(pic8259);
  const out = (p: number, v: number) => m.hostBus.ioWrite(p, 1, v);
  const inb = (p: number) => m.hostBus.ioRead(p, 1);
  if (init) {
    out(0x20, 0x11); // ICW1: edge, cascade, ICW4
    out(0x21, 0x20); // ICW2
    out(0x21, 0x04); // ICW3: slave on IR2
    out(0x21, icw4); // ICW4: 8086 mode
    out(0xa0, 0x11);
    out(0xa1, 0x28);
    out(0xa1, 0x02); // slave ID 2
    out(0xa1, icw4);
    out(0x21, 0x00);
    out(0xa1, 0x00);
  }
  return { m, out, inb };
}

/** The poll command (OCW3 P, then a read): the INTA sequence as software performs it. */
function intaOf(m: TestMachine) {
  return (chip: 0x20 | 0xa0) => {
    m.hostBus.ioWrite(chip, 1, 0x0c);
    return m.hostBus.ioRead(chip, 1);
  };
}

const irr = (m: TestMachine, chip: number) => (m.hostBus.ioWrite(chip, 1, 0x0a), m.hostBus.ioRead(chip, 1));
const isr = (m: TestMachine, chip: number) => (m.hostBus.ioWrite(chip, 1, 0x0b), m.hostBus.ioRead(chip, 1));

describe('pic8259 through its ports', () => {
  it('accepts the NimbOS mask-all writes and reads the masks back', async () => {
    const { m, out, inb } = await setup(false);
    out(0x21, 0xff);
    out(0xa1, 0xff);
    expect(inb(0x21)).toBe(0xff);
    expect(inb(0xa1)).toBe(0xff);
    m.hostBus.irq.pulse(1);
    expect(irr(m, 0x20)).toBe(0x02); // requested, but masked
  });

  it('latches edges in IRR, shows ISR after polling, and clears it with a non-specific EOI', async () => {
    const { m, out } = await setup();
    const poll = intaOf(m);
    m.hostBus.irq.pulse(1);
    expect(irr(m, 0x20)).toBe(0x02); // the line already fell: the edge stays latched
    expect(poll(0x20)).toBe(0x81);
    expect(irr(m, 0x20)).toBe(0);
    expect(isr(m, 0x20)).toBe(0x02);
    out(0x20, 0x20);
    expect(isr(m, 0x20)).toBe(0);
    expect(poll(0x20)).toBe(0); // nothing pending
  });

  it('resolves priority against the in-service level, and nests higher priorities', async () => {
    const { m, out } = await setup();
    const poll = intaOf(m);
    m.hostBus.irq.pulse(3);
    m.hostBus.irq.pulse(1);
    expect(poll(0x20)).toBe(0x81);
    expect(poll(0x20)).toBe(0); // IR3 is blocked while IR1 is in service
    m.hostBus.irq.pulse(0);
    expect(poll(0x20)).toBe(0x80); // IR0 nests
    out(0x20, 0x20); // EOI retires IR0 (highest in service)
    out(0x20, 0x20); // then IR1
    expect(poll(0x20)).toBe(0x83);
  });

  it('holds masked requests in IRR and delivers them when unmasked (OCW1)', async () => {
    const { m, out } = await setup();
    const poll = intaOf(m);
    out(0x21, 0x10);
    m.hostBus.irq.pulse(4);
    expect(poll(0x20)).toBe(0);
    out(0x21, 0x00);
    expect(poll(0x20)).toBe(0x84);
  });

  it('supports specific EOI and priority rotation', async () => {
    const { m, out } = await setup();
    const poll = intaOf(m);
    m.hostBus.irq.pulse(5);
    m.hostBus.irq.pulse(6);
    expect(poll(0x20)).toBe(0x85);
    out(0x20, 0x65); // specific EOI for IR5
    expect(isr(m, 0x20)).toBe(0);
    out(0x20, 0xc5); // set priority: IR5 lowest, IR6 highest
    m.hostBus.irq.pulse(0);
    expect(poll(0x20)).toBe(0x86);
    out(0x20, 0xa0); // rotate on non-specific EOI: IR6 becomes lowest
    expect(poll(0x20)).toBe(0x80);
  });

  it('programs ELCR with the bits that may be level-triggered', async () => {
    const { m, inb } = await setup();
    m.hostBus.ioWrite(0x4d0, 1, 0xff);
    m.hostBus.ioWrite(0x4d1, 1, 0xff);
    expect(inb(0x4d0)).toBe(0xf8);
    expect(inb(0x4d1)).toBe(0xde);
    expect(m.hostBus.ioRead(0x4d0, 2)).toBe(0xdef8);
  });

  it('never fails a read, even mid-initialization', async () => {
    const { out, inb } = await setup(false);
    out(0x20, 0x11);
    expect(inb(0x20)).toBe(0);
    expect(inb(0x21)).toBe(0);
    out(0x21, 0x08);
    expect(inb(0xa0)).toBe(0);
  });
});

describe('Pic8259Pair: INTA, cascade, spurious interrupts', () => {
  function pair(icw4 = 0x01) {
    const p = new Pic8259Pair();
    const levels: boolean[] = [];
    p.intr = (l) => levels.push(l);
    p.reset();
    for (const [chip, a0, v] of [
      [0, 0, 0x11],
      [0, 1, 0x08],
      [0, 1, 0x04],
      [0, 1, icw4],
      [1, 0, 0x11],
      [1, 1, 0x70],
      [1, 1, 0x02],
      [1, 1, icw4],
    ] as const)
      p.ioWrite(chip, a0, v);
    return { p, levels };
  }

  it('raises INT and returns the vector at INTA (BIOS vectors 0x08 and 0x70)', () => {
    const { p, levels } = pair();
    p.setIrq(0, true);
    expect(levels).toEqual([true]);
    expect(p.hasPendingInterrupt()).toBe(true);
    expect(p.acknowledgeInterrupt()).toBe(0x08);
    expect(levels).toEqual([true, false]);
    expect(p.master.isr).toBe(1);
  });

  it('cascades slave requests through master IR2', () => {
    const { p } = pair();
    p.setIrq(12, true);
    expect(p.hasPendingInterrupt()).toBe(true);
    expect(p.acknowledgeInterrupt()).toBe(0x74);
    expect(p.master.isr).toBe(0x04);
    expect(p.slave.isr).toBe(0x10);
    p.ioWrite(1, 0, 0x20); // EOI to the slave, then the master
    p.ioWrite(0, 0, 0x20);
    expect(p.master.isr | p.slave.isr).toBe(0);
  });

  it('answers a request that went away before INTA with the IR7 vector, ISR untouched', () => {
    const { p } = pair();
    p.writeElcr(0, 0x20); // IRQ5 level-triggered
    p.setIrq(5, true);
    expect(p.hasPendingInterrupt()).toBe(true);
    p.setIrq(5, false);
    expect(p.acknowledgeInterrupt()).toBe(0x0f); // spurious IRQ7
    expect(p.master.isr).toBe(0);
    expect(p.stats.spurious).toBe(1);
  });

  it('answers a vanished slave request with IRQ15, master IR2 in service', () => {
    const { p } = pair();
    p.writeElcr(1, 0x04); // IRQ10 level-triggered
    p.setIrq(10, true);
    // The slave request disappears between the master's resolution and the slave's INTA.
    const m = p.master;
    const ir = m.acknowledge();
    expect(ir).toBe(2);
    p.setIrq(10, false);
    expect(p.slave.acknowledge()).toBe(-1);
    expect(m.isr).toBe(0x04);
    // The same through the pair: a level drop after INT was raised.
    const q = pair().p;
    q.writeElcr(1, 0x04);
    q.setIrq(10, true);
    q.slave.setPin(2, false); // the slave's input drops without the pair re-evaluating the cascade
    expect(q.acknowledgeInterrupt()).toBe(0x77);
    expect(q.master.isr).toBe(0x04);
  });

  it('does not set ISR in automatic EOI mode', () => {
    const { p } = pair(0x03);
    p.setIrq(3, true);
    expect(p.acknowledgeInterrupt()).toBe(0x0b);
    expect(p.master.isr).toBe(0);
  });

  it('lets the slave nest in special fully nested mode', () => {
    const { p } = pair(0x11);
    p.setIrq(12, true);
    expect(p.acknowledgeInterrupt()).toBe(0x74);
    p.setIrq(9, true); // higher priority on the slave, same master level
    expect(p.hasPendingInterrupt()).toBe(true);
    expect(p.acknowledgeInterrupt()).toBe(0x71);
    const plain = pair().p;
    plain.setIrq(12, true);
    plain.acknowledgeInterrupt();
    plain.setIrq(9, true);
    expect(plain.hasPendingInterrupt()).toBe(false);
  });
});

describe('pic8259 behind the local APIC (virtual wire)', () => {
  it('drives LINT0 and answers the APIC ExtINT acknowledge with its vector', async () => {
    const m = new TestMachine();
    await m.add(lapicTimer);
    await m.add(pic8259);
    const apic = m.get(Tokens.InterruptController);
    for (const [p, v] of [
      [0x20, 0x11],
      [0x21, 0x30],
      [0x21, 0x04],
      [0x21, 0x01],
      [0x21, 0xfe],
    ] as const)
      m.hostBus.ioWrite(p, 1, v);
    expect(apic.hasPendingInterrupt()).toBe(false);
    m.hostBus.irq.pulse(0);
    expect(apic.hasPendingInterrupt()).toBe(true);
    expect(apic.acknowledgeInterrupt()).toBe(0x30);
    expect(apic.hasPendingInterrupt()).toBe(false);
    m.hostBus.irq.pulse(1); // masked
    expect(apic.hasPendingInterrupt()).toBe(false);
  });
});
