import { describe, expect, it } from 'vitest';
import { Tokens } from '../../../src/core/tokens.js';
import { DeliveryMode } from '../../../src/devices/apic.js';
import lapicTimer from '../../../plugins/lapic-timer/index.js';
import type { LocalApicModel } from '../../../plugins/lapic-timer/model.js';
import { TestMachine } from '../../devices/harness.js';

const APIC = 0xfee0_0000;
const IA32_APIC_BASE = 0x1b;
const IA32_TSC_DEADLINE = 0x6e0;
const X2 = {
  ID: 0x802,
  VERSION: 0x803,
  TPR: 0x808,
  PPR: 0x80a,
  EOI: 0x80b,
  LDR: 0x80d,
  DFR: 0x80e,
  SIVR: 0x80f,
  ISR0: 0x810,
  IRR0: 0x820,
  ESR: 0x828,
  ICR: 0x830,
  ICR_HIGH: 0x831,
  LVT_TIMER: 0x832,
  LVT_LINT0: 0x835,
  LVT_LINT1: 0x836,
  LVT_ERROR: 0x837,
  INITIAL: 0x838,
  CURRENT: 0x839,
  DIVIDE: 0x83e,
  SELF_IPI: 0x83f,
};
const PERIODIC = 1 << 17;
const TSC_DEADLINE = 2 << 17;
const MASKED = 1 << 16;

class FakeCpu {
  requests = 0;
  nmis = 0;
  interruptRequested(): void {
    this.requests++;
  }
  nmi(): void {
    this.nmis++;
  }
}

async function setup(settings: Parameters<TestMachine['add']>[1] = {}) {
  const m = new TestMachine();
  const cpu = new FakeCpu();
  await m.add(lapicTimer, settings);
  const apic = m.get(Tokens.LocalApic) as LocalApicModel;
  apic.connectCpu(cpu);
  const rd = (msr: number) => {
    const r = apic.readMsr(msr);
    return r.ok ? r.hi * 2 ** 32 + r.lo : undefined;
  };
  const wr = (msr: number, v: number) => apic.writeMsr(msr, v % 2 ** 32, Math.floor(v / 2 ** 32));
  const mmio = (off: number) => m.hostBus.read(APIC + off, 4);
  const mmioW = (off: number, v: number) => m.hostBus.write(APIC + off, 4, v);
  const toX2 = () => expect(wr(IA32_APIC_BASE, APIC + 0xc00)).toBe(true);
  return { m, cpu, apic, rd, wr, mmio, mmioW, toX2 };
}

describe('lapic-timer: reset state and the xAPIC page', () => {
  it('has the SDM reset values', async () => {
    const { rd, mmio } = await setup({ 'apic-id': 3 });
    expect(rd(IA32_APIC_BASE)).toBe(APIC + 0x900); // EN | BSP
    expect(mmio(0x20)).toBe(3 << 24);
    expect(mmio(0x30)).toBe(0x0005_0014);
    expect(mmio(0x80)).toBe(0);
    expect(mmio(0xe0)).toBe(0xffff_ffff);
    expect(mmio(0xf0)).toBe(0xff);
    for (const lvt of [0x320, 0x330, 0x340, 0x370]) expect(mmio(lvt)).toBe(MASKED);
    // QEMU's virtual-wire reset for the BSP: LINT0 ExtINT, unmasked; LINT1 masked
    expect(mmio(0x350)).toBe(0x700);
    expect(mmio(0x360)).toBe(MASKED);
    expect(mmio(0x390)).toBe(0);
  });

  it('reads and writes registers through MMIO with their writable bits', async () => {
    const { mmio, mmioW } = await setup();
    mmioW(0x80, 0xffff_ff45);
    expect(mmio(0x80)).toBe(0x45);
    mmioW(0xd0, 0x0300_00ff);
    expect(mmio(0xd0)).toBe(0x0300_0000);
    mmioW(0x30, 0); // read-only
    expect(mmio(0x30)).toBe(0x0005_0014);
    mmioW(0xf0, 0x1ff);
    mmioW(0x320, 0xffff_ffff);
    expect(mmio(0x320)).toBe(0x0007_00ff); // no delivery status, no reserved bits
    expect(mmio(0x324)).toBe(0); // the rest of a 16-byte slot reads 0
  });

  it('keeps LVT entries masked while software-disabled and masks them all on disable', async () => {
    const { mmio, mmioW } = await setup();
    mmioW(0x320, 0xf0);
    expect(mmio(0x320)).toBe(0xf0 | MASKED);
    mmioW(0xf0, 0x1ff);
    mmioW(0x320, 0xf0);
    mmioW(0x370, 0xfe);
    expect(mmio(0x320)).toBe(0xf0);
    mmioW(0xf0, 0x0ff);
    expect(mmio(0x320)).toBe(0xf0 | MASKED);
    expect(mmio(0x370)).toBe(0xfe | MASKED);
  });

  it('moves the page when IA32_APIC_BASE changes the base', async () => {
    const { m, wr, rd } = await setup();
    expect(wr(IA32_APIC_BASE, 0xfed4_0000 + 0x800)).toBe(true);
    expect(rd(IA32_APIC_BASE)).toBe(0xfed4_0900);
    expect(m.hostBus.read(0xfed4_0030, 4)).toBe(0x0005_0014);
    expect(m.hostBus.read(APIC + 0x30, 4)).toBe(0xffff_ffff); // unmapped now
  });
});

describe('lapic-timer: IA32_APIC_BASE and the x2APIC interface', () => {
  it('faults x2APIC MSRs in xAPIC mode and serves them in x2APIC mode, where MMIO goes dark', async () => {
    const { apic, rd, wr, mmio, toX2 } = await setup({ 'apic-id': 0x21 });
    expect(rd(X2.VERSION)).toBeUndefined();
    expect(wr(X2.TPR, 0)).toBe(false);
    toX2();
    expect(rd(IA32_APIC_BASE)).toBe(APIC + 0xd00);
    expect(rd(X2.VERSION)).toBe(0x0005_0014);
    expect(rd(X2.ID)).toBe(0x21);
    expect(rd(X2.LDR)).toBe((2 << 16) | (1 << 1)); // derived from the x2APIC ID
    expect(apic.apicId).toBe(0x21);
    expect(mmio(0x30)).toBe(0xffff_ffff);
  });

  it("takes the tutorial guest's read-modify-write of IA32_APIC_BASE (BSP bit included)", async () => {
    const { rd, wr } = await setup();
    expect(wr(IA32_APIC_BASE, rd(IA32_APIC_BASE)! + 0x400)).toBe(true);
    expect(rd(IA32_APIC_BASE)).toBe(APIC + 0xd00);
  });

  it('enforces the x2APIC access rules of SDM Table 11-6', async () => {
    const { rd, wr, toX2 } = await setup();
    toX2();
    expect(rd(X2.EOI)).toBeUndefined(); // write-only
    expect(rd(X2.SELF_IPI)).toBeUndefined();
    expect(wr(X2.VERSION, 0)).toBe(false); // read-only
    expect(wr(X2.ID, 0)).toBe(false);
    expect(wr(X2.PPR, 0)).toBe(false);
    expect(wr(X2.CURRENT, 0)).toBe(false);
    expect(rd(X2.DFR)).toBeUndefined(); // absent in x2APIC mode
    expect(rd(X2.ICR_HIGH)).toBeUndefined();
    expect(rd(0x8ff)).toBeUndefined();
    expect(wr(X2.EOI, 1)).toBe(false); // EOI and ESR take only 0
    expect(wr(X2.ESR, 1)).toBe(false);
    expect(wr(X2.TPR, 2 ** 32)).toBe(false); // EDX reserved
    expect(wr(X2.TPR, 0x20)).toBe(true);
    expect(rd(X2.TPR)).toBe(0x20);
  });

  it('allows only the legal IA32_APIC_BASE transitions', async () => {
    const { rd, wr, toX2 } = await setup();
    expect(wr(IA32_APIC_BASE, APIC + 0x400)).toBe(false); // EN=0 EXTD=1: invalid
    expect(wr(IA32_APIC_BASE, APIC + 0x801)).toBe(false); // reserved bit
    expect(wr(IA32_APIC_BASE, 2 ** 40 + APIC + 0x800)).toBe(false); // above MAXPHYADDR
    toX2();
    expect(wr(IA32_APIC_BASE, APIC + 0x800)).toBe(false); // x2APIC -> xAPIC
    expect(wr(IA32_APIC_BASE, APIC)).toBe(true); // x2APIC -> disabled
    expect(rd(X2.VERSION)).toBeUndefined();
    expect(wr(IA32_APIC_BASE, APIC + 0xc00)).toBe(false); // disabled -> x2APIC
    expect(wr(IA32_APIC_BASE, APIC + 0x800)).toBe(true); // disabled -> xAPIC
    toX2();
    const { wr: wrNo } = await setup({ x2apic: false });
    expect(wrNo(IA32_APIC_BASE, APIC + 0xc00)).toBe(false);
  });

  it('returns to the power-up state when globally disabled', async () => {
    const { wr, mmio, mmioW } = await setup();
    mmioW(0xf0, 0x1f1);
    mmioW(0x80, 0x30);
    wr(IA32_APIC_BASE, APIC);
    wr(IA32_APIC_BASE, APIC + 0x800);
    expect(mmio(0xf0)).toBe(0xff);
    expect(mmio(0x80)).toBe(0);
  });
});

describe('lapic-timer: the timer', () => {
  it("runs the tutorial guest's x2APIC sequence: periodic 10 ms tick at 1 GHz, vector 0xF0", async () => {
    const { m, apic, cpu, rd, wr, toX2 } = await setup();
    toX2();
    wr(X2.SIVR, 0x1f1);
    wr(X2.LVT_LINT0, 0);
    wr(X2.LVT_LINT1, 0);
    wr(X2.LVT_ERROR, 0xf2);
    wr(X2.DIVIDE, 0b1011);
    wr(X2.LVT_TIMER, 0xf0 | PERIODIC);
    wr(X2.INITIAL, 10_000_000);
    m.advance(4_000_000);
    expect(rd(X2.CURRENT)).toBe(6_000_000);
    expect(apic.hasPendingInterrupt()).toBe(false);
    m.advance(6_000_000);
    expect(apic.hasPendingInterrupt()).toBe(true);
    expect(cpu.requests).toBe(1);
    expect(rd(X2.IRR0 + 7)).toBe(1 << 16); // vector 0xF0 = word 7, bit 16
    expect(apic.acknowledgeInterrupt()).toBe(0xf0);
    expect(rd(X2.ISR0 + 7)).toBe(1 << 16);
    expect(rd(X2.PPR)).toBe(0xf0);
    expect(wr(X2.EOI, 0)).toBe(true);
    expect(rd(X2.ISR0 + 7)).toBe(0);
    expect(rd(X2.CURRENT)).toBe(10_000_000); // reloaded
    m.advance(10_000_000);
    expect(apic.acknowledgeInterrupt()).toBe(0xf0);
    expect(apic.stats.timerExpiries).toBe(2);
  });

  it('runs the timer through the xAPIC page too (divide by 16, periodic)', async () => {
    const { m, apic, mmio, mmioW } = await setup();
    mmioW(0xf0, 0x1ff);
    mmioW(0x3e0, 0b0011);
    mmioW(0x320, 0x40 | PERIODIC);
    mmioW(0x380, 1000); // 16,000 ns per period at 1 GHz / 16
    m.advance(8000);
    expect(mmio(0x390)).toBe(500);
    m.advance(8000);
    expect(apic.acknowledgeInterrupt()).toBe(0x40);
    mmioW(0xb0, 0);
    expect(mmio(0x390)).toBe(1000);
    mmioW(0x380, 0); // writing 0 stops the timer
    m.advance(100_000);
    expect(apic.hasPendingInterrupt()).toBe(false);
    expect(mmio(0x390)).toBe(0);
  });

  it('counts down from 0xFFFFFFFF for calibration and stops one-shot at 0', async () => {
    const { m, apic, rd, wr, toX2 } = await setup();
    toX2();
    wr(X2.SIVR, 0x1f1);
    wr(X2.DIVIDE, 0b1011);
    wr(X2.LVT_TIMER, 0xf0); // one-shot, unmasked
    wr(X2.INITIAL, 0xffff_ffff);
    m.advance(1_234_567);
    expect(rd(X2.CURRENT)).toBe(0xffff_ffff - 1_234_567);
    wr(X2.INITIAL, 1000);
    m.advance(999);
    expect(apic.hasPendingInterrupt()).toBe(false);
    m.advance(1);
    expect(apic.hasPendingInterrupt()).toBe(true);
    expect(rd(X2.CURRENT)).toBe(0);
    apic.acknowledgeInterrupt();
    wr(X2.EOI, 0);
    m.advance(10_000);
    expect(apic.hasPendingInterrupt()).toBe(false);
    expect(apic.stats.timerExpiries).toBe(1);
  });

  it('divides the base clock by each of the 8 divide encodings', async () => {
    const encodings: [number, number][] = [
      [0b0000, 2],
      [0b0001, 4],
      [0b0010, 8],
      [0b0011, 16],
      [0b1000, 32],
      [0b1001, 64],
      [0b1010, 128],
      [0b1011, 1],
    ];
    for (const [dcr, div] of encodings) {
      const { m, rd, wr, toX2 } = await setup({ 'clock-mhz': 500 });
      toX2();
      wr(X2.DIVIDE, dcr | 0b0100); // bit 2 is reserved and ignored
      expect(rd(X2.DIVIDE)).toBe(dcr);
      wr(X2.INITIAL, 1_000_000);
      m.advance(256_000); // 128,000 base clocks at 500 MHz
      expect(rd(X2.CURRENT)).toBe(1_000_000 - 128_000 / div);
    }
  });

  it('keeps the count reached when the divide configuration changes mid-count', async () => {
    const { m, rd, wr, toX2 } = await setup();
    toX2();
    wr(X2.DIVIDE, 0b1011);
    wr(X2.INITIAL, 1000);
    m.advance(400);
    wr(X2.DIVIDE, 0b0000); // now 2 ns per tick
    m.advance(400);
    expect(rd(X2.CURRENT)).toBe(400);
  });

  it('counts but does not interrupt when the LVT entry is masked', async () => {
    const { m, apic, rd, wr, toX2 } = await setup();
    toX2();
    wr(X2.SIVR, 0x1f1);
    wr(X2.DIVIDE, 0b1011);
    wr(X2.LVT_TIMER, 0xf0 | PERIODIC | MASKED);
    wr(X2.INITIAL, 100);
    m.advance(1000);
    expect(apic.hasPendingInterrupt()).toBe(false);
    expect(rd(X2.IRR0 + 7)).toBe(0);
    expect(apic.stats.timerExpiries).toBeGreaterThan(0);
    wr(X2.LVT_TIMER, 0xf0 | PERIODIC);
    m.advance(100);
    expect(apic.hasPendingInterrupt()).toBe(true);
  });

  it('coalesces periodic expiries the CPU has not taken yet, and skips missed periods', async () => {
    const { m, apic, wr, toX2 } = await setup();
    toX2();
    wr(X2.SIVR, 0x1f1);
    wr(X2.DIVIDE, 0b1011);
    wr(X2.LVT_TIMER, 0xf0 | PERIODIC);
    wr(X2.INITIAL, 100);
    m.advance(1_000_000);
    expect(apic.stats.timerExpiries).toBe(1); // one callback, the missed periods coalesced
    expect(apic.acknowledgeInterrupt()).toBe(0xf0);
    wr(X2.EOI, 0);
    expect(apic.hasPendingInterrupt()).toBe(false);
    m.advance(100);
    expect(apic.hasPendingInterrupt()).toBe(true);
  });

  it('arms, fires and disarms TSC-deadline mode', async () => {
    const { m, apic, rd, wr, toX2 } = await setup({ 'tsc-mhz': 2000 });
    toX2();
    wr(X2.SIVR, 0x1f1);
    wr(IA32_TSC_DEADLINE, 5000); // ignored outside TSC-deadline mode
    expect(rd(IA32_TSC_DEADLINE)).toBe(0);
    wr(X2.LVT_TIMER, 0xe0 | TSC_DEADLINE);
    wr(X2.INITIAL, 100); // ignored in TSC-deadline mode
    expect(rd(X2.INITIAL)).toBe(0);
    m.clock.now = 1000; // TSC = 2000
    wr(IA32_TSC_DEADLINE, 4000);
    expect(rd(IA32_TSC_DEADLINE)).toBe(4000);
    m.advance(999);
    expect(apic.hasPendingInterrupt()).toBe(false);
    m.advance(1);
    expect(apic.acknowledgeInterrupt()).toBe(0xe0);
    expect(rd(IA32_TSC_DEADLINE)).toBe(0); // cleared on expiry
    wr(X2.EOI, 0);
    wr(IA32_TSC_DEADLINE, 10_000);
    wr(IA32_TSC_DEADLINE, 0); // disarm
    m.advance(1_000_000);
    expect(apic.hasPendingInterrupt()).toBe(false);
    wr(IA32_TSC_DEADLINE, 1); // in the past: fires at once
    m.advance(0);
    expect(apic.hasPendingInterrupt()).toBe(true);
  });

  it('disarms when the timer mode changes to or from TSC-deadline', async () => {
    const { m, apic, rd, wr, toX2 } = await setup();
    toX2();
    wr(X2.SIVR, 0x1f1);
    wr(X2.LVT_TIMER, 0xe0 | TSC_DEADLINE);
    wr(IA32_TSC_DEADLINE, 3000 * 10);
    wr(X2.LVT_TIMER, 0xe0);
    m.advance(1000);
    expect(apic.hasPendingInterrupt()).toBe(false);
    wr(X2.DIVIDE, 0b1011);
    wr(X2.INITIAL, 50);
    wr(X2.LVT_TIMER, 0xe0 | TSC_DEADLINE);
    m.advance(1000);
    expect(apic.hasPendingInterrupt()).toBe(false);
    expect(rd(X2.CURRENT)).toBe(0);
  });
});

describe('lapic-timer: delivery, priority and EOI', () => {
  async function enabled() {
    const t = await setup();
    t.toX2();
    t.wr(X2.SIVR, 0x1ff);
    return t;
  }

  it('delivers by priority class against PPR, and EOI retires the highest in-service vector', async () => {
    const { apic, rd, wr } = await enabled();
    apic.acceptInterrupt(0x41, false);
    apic.acceptInterrupt(0x82, false);
    expect(apic.acknowledgeInterrupt()).toBe(0x82);
    expect(rd(X2.PPR)).toBe(0x80);
    expect(apic.hasPendingInterrupt()).toBe(false); // 0x41 is a lower class
    apic.acceptInterrupt(0x85, false);
    expect(apic.hasPendingInterrupt()).toBe(false); // same class as in service
    apic.acceptInterrupt(0x91, false);
    expect(apic.acknowledgeInterrupt()).toBe(0x91); // nests above 0x82
    wr(X2.EOI, 0); // retires 0x91
    expect(rd(X2.ISR0 + 4)).toBe(1 << 2);
    wr(X2.EOI, 0); // retires 0x82
    expect(apic.acknowledgeInterrupt()).toBe(0x85);
    wr(X2.EOI, 0);
    wr(X2.TPR, 0x50);
    expect(apic.hasPendingInterrupt()).toBe(false); // TPR blocks 0x41
    expect(rd(X2.PPR)).toBe(0x50);
    wr(X2.TPR, 0x30);
    expect(apic.acknowledgeInterrupt()).toBe(0x41);
  });

  it('answers INTA with the spurious vector when nothing is deliverable', async () => {
    const { apic, rd, wr } = await enabled();
    apic.acceptInterrupt(0x41, false);
    wr(X2.TPR, 0xf0);
    expect(apic.acknowledgeInterrupt()).toBe(0xff);
    expect(rd(X2.ISR0 + 2)).toBe(0); // ISR untouched
    expect(apic.stats.spurious).toBe(1);
  });

  it('holds interrupts while software-disabled', async () => {
    const { apic, wr, toX2 } = await setup();
    toX2();
    apic.acceptInterrupt(0x41, false);
    expect(apic.hasPendingInterrupt()).toBe(false);
    wr(X2.SIVR, 0x1ff);
    expect(apic.hasPendingInterrupt()).toBe(true);
  });

  it('broadcasts EOI for level-triggered vectors only', async () => {
    const { apic, wr } = await enabled();
    const eois: number[] = [];
    apic.onEoi((v) => eois.push(v));
    apic.acceptInterrupt(0x31, true);
    apic.acknowledgeInterrupt();
    wr(X2.EOI, 0);
    apic.acceptInterrupt(0x32, false);
    apic.acknowledgeInterrupt();
    wr(X2.EOI, 0);
    expect(eois).toEqual([0x31]);
  });

  it('latches errors into ESR on write, and raises the error LVT', async () => {
    const { apic, rd, wr } = await enabled();
    wr(X2.LVT_ERROR, 0xfe);
    wr(X2.SELF_IPI, 0x05); // illegal vector
    expect(rd(X2.ESR)).toBe(0); // not visible until ESR is written
    wr(X2.ESR, 0);
    expect(rd(X2.ESR)).toBe(0x20); // Send Illegal Vector
    wr(X2.ESR, 0);
    expect(rd(X2.ESR)).toBe(0);
    apic.acceptInterrupt(0x03, false);
    wr(X2.ESR, 0);
    expect(rd(X2.ESR)).toBe(0x40); // Receive Illegal Vector
    expect(apic.acknowledgeInterrupt()).toBe(0xfe);
  });

  it('sends self-IPIs through SELF IPI, the x2APIC ICR and the xAPIC ICR', async () => {
    const { apic, rd, wr } = await enabled();
    wr(X2.SELF_IPI, 0x55);
    expect(rd(X2.IRR0 + 2)).toBe(1 << 21);
    apic.acknowledgeInterrupt();
    wr(X2.EOI, 0);
    wr(X2.ICR, 0x66 | (1 << 18)); // shorthand self
    expect(apic.acknowledgeInterrupt()).toBe(0x66);
    wr(X2.EOI, 0);
    wr(X2.ICR, 0x67); // physical destination 0 = this APIC
    expect(apic.acknowledgeInterrupt()).toBe(0x67);
    wr(X2.EOI, 0);
    wr(X2.ICR, 2 ** 32 * 5 + 0x68); // another APIC: nobody there
    expect(apic.hasPendingInterrupt()).toBe(false);
    expect(apic.stats.undeliverable).toBe(1);
    const x = await setup();
    x.mmioW(0xf0, 0x1ff);
    x.mmioW(0x310, 0);
    x.mmioW(0x300, 0x4077);
    expect(x.mmio(0x200 + 0x30)).toBe(1 << 23);
  });

  it('passes the 8259A through LINT0 (ExtINT) and NMIs through LINT1', async () => {
    const { apic, cpu, mmioW } = await setup();
    let acks = 0;
    apic.setExtIntSource({ acknowledgeInterrupt: () => (acks++, 0x20) });
    expect(apic.hasPendingInterrupt()).toBe(false);
    apic.setLint(0, true);
    expect(apic.hasPendingInterrupt()).toBe(true); // virtual wire even while software-disabled
    expect(apic.acknowledgeInterrupt()).toBe(0x20);
    expect(acks).toBe(1);
    apic.setLint(0, false);
    expect(apic.hasPendingInterrupt()).toBe(false);
    apic.setLint(1, true); // masked at reset
    expect(cpu.nmis).toBe(0);
    apic.setLint(1, false);
    mmioW(0xf0, 0x1ff);
    mmioW(0x360, 0x400); // NMI delivery
    apic.setLint(1, true);
    expect(cpu.nmis).toBe(1);
    apic.acceptInterrupt(0, false, DeliveryMode.NMI);
    expect(cpu.nmis).toBe(2);
  });

  it('matches physical and logical destinations', async () => {
    const { apic, mmioW } = await setup({ 'apic-id': 2 });
    expect(apic.matchesDestination(2, false)).toBe(true);
    expect(apic.matchesDestination(0xff, false)).toBe(true);
    expect(apic.matchesDestination(1, false)).toBe(false);
    mmioW(0xd0, 0x0400_0000);
    expect(apic.matchesDestination(0x04, true)).toBe(true); // flat model
    expect(apic.matchesDestination(0x0b, true)).toBe(false);
    mmioW(0xe0, 0x0fff_ffff); // cluster model
    mmioW(0xd0, 0x2400_0000);
    expect(apic.matchesDestination(0x24, true)).toBe(true);
    expect(apic.matchesDestination(0x14, true)).toBe(false);
  });
});
