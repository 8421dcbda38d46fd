import { describe, expect, it } from 'vitest';
import uart16550 from '../../../plugins/uart16550/index.js';
import {
  IIR_CTI,
  IIR_MS,
  IIR_NO_INT,
  IIR_RDA,
  IIR_RLS,
  IIR_THRE,
  LSR_DR,
  LSR_OE,
  LSR_TEMT,
  LSR_THRE,
  MSR_CTS,
  MSR_DCD,
  MSR_DDCD,
  MSR_DCTS,
  MSR_DSR,
  MSR_RI,
  MSR_TERI,
  Uart16550,
} from '../../../plugins/uart16550/model.js';
import { TestMachine } from '../../devices/harness.js';

const COM1 = 0x3f8;
const [RBR, IER, IIR, LCR, MCR, LSR, MSR, SCR] = [0, 1, 2, 3, 4, 5, 6, 7].map((o) => COM1 + o) as [
  number,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
];
const FCR = IIR;

async function setup(settings: Parameters<TestMachine['add']>[1] = {}) {
  const m = new TestMachine();
  const inst = await m.add(uart16550, settings);
  const irq: boolean[] = [];
  m.hostBus.irq.connect((line, level) => line === 4 && irq.push(level));
  const out = (p: number, v: number) => m.hostBus.ioWrite(p, 1, v);
  const inb = (p: number) => m.hostBus.ioRead(p, 1);
  return { m, inst, irq, out, inb };
}

describe('uart16550 registers', () => {
  it('has the datasheet reset values', async () => {
    const { inb } = await setup();
    expect(inb(IER)).toBe(0);
    expect(inb(IIR)).toBe(IIR_NO_INT);
    expect(inb(LCR)).toBe(0);
    expect(inb(MCR)).toBe(0);
    expect(inb(LSR)).toBe(LSR_THRE | LSR_TEMT);
    expect(inb(MSR) & 0x0f).toBe(0);
  });

  it("runs NimbOS's init sequence without printing the divisor, then prints what it writes", async () => {
    const { m, out, inb } = await setup();
    out(IER, 0x00);
    out(LCR, 0x80);
    out(RBR, 0x01); // DLL
    out(IER, 0x00); // DLM
    out(LCR, 0x03);
    out(FCR, 0xc7);
    out(MCR, 0x0b);
    out(IER, 0x00);
    expect(m.console.bytes()).toHaveLength(0); // reference bug 3: no stray 0x01
    for (const c of 'hi\n') {
      expect(inb(LSR) & LSR_THRE).toBe(LSR_THRE);
      out(RBR, c.charCodeAt(0));
    }
    expect(m.console.text()).toBe('hi\n');
    expect(inb(IIR) & 0xc0).toBe(0xc0); // FIFOs enabled
    expect(inb(IER)).toBe(0);
  });

  it('reads back the divisor latch under DLAB and keeps IER separate', async () => {
    const { m, out, inb } = await setup();
    out(IER, 0x05);
    out(LCR, 0x83);
    out(RBR, 0x34);
    out(IER, 0x12);
    expect(inb(RBR)).toBe(0x34);
    expect(inb(IER)).toBe(0x12);
    out(LCR, 0x03);
    expect(inb(IER)).toBe(0x05);
    const uart = new Uart16550({ output: () => {} });
    expect(uart.divisorLatch).toBe(12);
    expect(m.console.bytes()).toHaveLength(0);
  });

  it('keeps SCR as scratch storage', async () => {
    const { out, inb } = await setup();
    out(SCR, 0xa5);
    expect(inb(SCR)).toBe(0xa5);
  });
});

describe('uart16550 receive path', () => {
  it('delivers console input byte by byte when polled, FIFOs off (one holding register)', async () => {
    const { m, inb } = await setup();
    m.console.type('ab');
    expect(inb(LSR) & LSR_DR).toBe(LSR_DR);
    expect(inb(RBR)).toBe(0x61);
    expect(inb(LSR) & LSR_DR).toBe(LSR_DR); // the next byte moved in from the host buffer
    expect(inb(RBR)).toBe(0x62);
    expect(inb(LSR) & LSR_DR).toBe(0);
    expect(inb(LSR) & LSR_OE).toBe(0); // no overrun: the host buffer held the rest
  });

  it('holds a long paste in the bounded host buffer and counts what overflows, warning once', async () => {
    const { m, inst, out, inb } = await setup({ 'input-buffer': 32 });
    out(FCR, 0x01);
    const text = 'x'.repeat(16 + 32 + 10);
    m.console.type(text);
    m.console.type('yy');
    expect(inst.stats?.()).toMatchObject({ inputDropped: 12, inputPending: 32 });
    expect(m.logs.entries.filter((e) => e.level === 'warn')).toHaveLength(1);
    let got = 0;
    while (inb(LSR) & LSR_DR) {
      inb(RBR);
      got++;
    }
    expect(got).toBe(48);
  });

  it('raises RDA at the FIFO trigger level and the character timeout below it', async () => {
    const { m, irq, out, inb } = await setup();
    out(LCR, 0x03); // 8N1
    out(FCR, 0x81); // FIFO on, trigger 8
    out(IER, 0x01);
    m.console.type('1234');
    expect(inb(IIR) & 0x0f).toBe(IIR_NO_INT); // below the trigger level
    m.console.type('5678');
    expect(inb(IIR) & 0x0f).toBe(IIR_RDA);
    expect(irq).toEqual([true]);
    for (let i = 0; i < 5; i++) inb(RBR);
    expect(inb(IIR) & 0x0f).toBe(IIR_NO_INT);
    expect(irq).toEqual([true, false]);
    // 4 character times at 9600 baud 8N1 (about 4.17 ms) later: character timeout
    m.advance(4_000_000);
    expect(inb(IIR) & 0x0f).toBe(IIR_NO_INT);
    m.advance(200_000);
    expect(inb(IIR) & 0x0f).toBe(IIR_CTI);
    inb(RBR);
    expect(inb(IIR) & 0x0f).toBe(IIR_NO_INT);
  });

  it('clears the receive FIFO through FCR', async () => {
    const { m, out, inb } = await setup();
    out(FCR, 0x01);
    m.console.type('abc');
    out(FCR, 0x03);
    expect(inb(LSR) & LSR_DR).toBe(0);
  });
});

describe('uart16550 loopback', () => {
  it('loops TX to RX instead of the console', async () => {
    const { m, out, inb } = await setup();
    out(MCR, 0x10);
    out(RBR, 0x55);
    expect(m.console.bytes()).toHaveLength(0);
    expect(inb(LSR) & LSR_DR).toBe(LSR_DR);
    expect(inb(RBR)).toBe(0x55);
  });

  it('reflects MCR in MSR and records deltas, cleared by reading MSR', async () => {
    const { out, inb } = await setup();
    out(MCR, 0x10);
    const first = inb(MSR);
    expect(first & 0xf0).toBe(0);
    out(MCR, 0x10 | 0x0f); // DTR RTS OUT1 OUT2
    expect(inb(MSR)).toBe(MSR_CTS | MSR_DSR | MSR_RI | MSR_DCD | MSR_DCTS | 0x02 | MSR_DDCD);
    expect(inb(MSR) & 0x0f).toBe(0);
    out(MCR, 0x10 | 0x0b); // RI falls: TERI
    expect(inb(MSR) & 0x0f).toBe(MSR_TERI);
  });

  it('sets OE when a character arrives at a full receiver, and LSR read clears it', async () => {
    const { m, inst, out, inb } = await setup();
    out(MCR, 0x10);
    out(IER, 0x04);
    out(RBR, 1);
    out(RBR, 2); // no FIFO: holding register full
    expect(inb(IIR) & 0x0f).toBe(IIR_RLS);
    expect(inb(LSR) & LSR_OE).toBe(LSR_OE);
    expect(inb(LSR) & LSR_OE).toBe(0);
    expect(inb(RBR)).toBe(1);
    expect(inst.stats?.()).toMatchObject({ overruns: 1 });
    // with FIFOs, 16 fit
    out(FCR, 0x01);
    for (let i = 0; i < 17; i++) out(RBR, i);
    expect(inb(LSR) & LSR_OE).toBe(LSR_OE);
    let n = 0;
    while (inb(LSR) & LSR_DR) expect(inb(RBR)).toBe(n++);
    expect(n).toBe(16);
    expect(m.console.bytes()).toHaveLength(0);
  });
});

describe('uart16550 modem status', () => {
  it('reports a present terminal (DCD, DSR, CTS) and interrupts on input line changes', async () => {
    const m = new TestMachine();
    const uart = new Uart16550({ output: () => {}, irq: (l) => levels.push(l) });
    const levels: boolean[] = [];
    uart.reset();
    expect(uart.ioRead(6, 1)).toBe(MSR_DCD | MSR_DSR | MSR_CTS);
    uart.ioWrite(1, 1, 0x08); // EDSSI
    uart.setModemInputs(MSR_DCD | MSR_DSR); // CTS drops
    expect(levels).toEqual([true]);
    expect(uart.ioRead(2, 1) & 0x0f).toBe(IIR_MS);
    expect(uart.ioRead(6, 1)).toBe(MSR_DCD | MSR_DSR | MSR_DCTS);
    expect(levels).toEqual([true, false]);
    expect(m.console.bytes()).toHaveLength(0);
  });
});

describe('uart16550 interrupts', () => {
  it('raises THRE when ETBEI is enabled, clears it on IIR read, re-raises after a THR write', async () => {
    const { irq, out, inb } = await setup();
    out(IER, 0x02);
    expect(irq).toEqual([true]);
    expect(inb(IIR) & 0x0f).toBe(IIR_THRE);
    expect(irq).toEqual([true, false]);
    expect(inb(IIR) & 0x0f).toBe(IIR_NO_INT);
    out(RBR, 0x41);
    expect(irq).toEqual([true, false, true]);
    out(IER, 0x00);
    expect(irq).toEqual([true, false, true, false]);
  });

  it('orders causes: line status > received data > THRE > modem status', async () => {
    const { m, out, inb } = await setup();
    out(MCR, 0x10);
    out(IER, 0x0f);
    out(MCR, 0x11); // DTR -> DSR delta: modem status pending
    expect(inb(IIR) & 0x0f).toBe(IIR_THRE); // THRE (raised on enabling) outranks modem status
    expect(inb(IIR) & 0x0f).toBe(IIR_MS);
    out(RBR, 7); // loopback: data, and THRE pending again
    expect(inb(IIR) & 0x0f).toBe(IIR_RDA);
    out(RBR, 8); // overrun
    expect(inb(IIR) & 0x0f).toBe(IIR_RLS);
    inb(LSR);
    expect(inb(IIR) & 0x0f).toBe(IIR_RDA);
    inb(RBR);
    expect(inb(IIR) & 0x0f).toBe(IIR_THRE);
    expect(inb(IIR) & 0x0f).toBe(IIR_MS);
    inb(MSR);
    expect(inb(IIR) & 0x0f).toBe(IIR_NO_INT);
    expect(m.hostBus.irq.level(4)).toBe(false);
  });

  it('uses the configured port and IRQ and can run without a console', async () => {
    const m = new TestMachine();
    await m.add(uart16550, { port: 0x2f8, irq: 3, console: 'none' });
    m.hostBus.ioWrite(0x2f9, 1, 0x02);
    expect(m.hostBus.irq.level(3)).toBe(true);
    m.hostBus.ioWrite(0x2f8, 1, 0x41);
    expect(m.console.bytes()).toHaveLength(0);
    expect(m.hostBus.hasPort(0x3f8)).toBe(false);
  });
});
