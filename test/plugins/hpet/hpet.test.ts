import { describe, expect, it } from 'vitest';
import hpetPlugin from '../../../plugins/hpet/index.js';
import { TestMachine } from '../../devices/harness.js';

const BASE = 0xfed0_0000;
const GCAP = 0x0;
const CONF = 0x10;
const STA = 0x20;
const CNT = 0xf0;
const TCONF = (n: number) => 0x100 + 0x20 * n;
const TCMP = (n: number) => 0x108 + 0x20 * n;
const [LEVEL, ENB, PERIODIC, PER_CAP, SIZE_CAP, VAL_SET, MODE32] = [2, 4, 8, 0x10, 0x20, 0x40, 0x100];
const route = (gsi: number) => gsi << 9;

async function setup() {
  const m = new TestMachine();
  await m.add(hpetPlugin);
  const rd = (off: number) => m.hostBus.read(BASE + off, 4);
  const wr = (off: number, v: number) => m.hostBus.write(BASE + off, 4, v);
  const rd64 = (off: number) => m.hostBus.read64(BASE + off);
  const wr64 = (off: number, v: bigint) => m.hostBus.write64(BASE + off, v);
  const edges: number[] = [];
  m.hostBus.irq.connect((line, level) => level && edges.push(line));
  return { m, rd, wr, rd64, wr64, edges };
}

describe('hpet registers', () => {
  it('reports 100 MHz, a 64-bit counter, 3 timers, legacy-replacement capable (what NimbOS checks)', async () => {
    const { rd, rd64 } = await setup();
    const cap = rd64(GCAP);
    expect(cap >> 32n).toBe(10_000_000n); // COUNTER_CLK_PERIOD in fs
    expect(Number(cap & 0xffn)).toBe(1); // REV_ID
    expect(Number((cap >> 8n) & 0x1fn) + 1).toBe(3); // NUM_TIM_CAP
    expect(cap & (1n << 13n)).not.toBe(0n); // COUNT_SIZE_CAP
    expect(cap & (1n << 15n)).not.toBe(0n); // LEG_RT_CAP
    expect(Number((cap >> 16n) & 0xffffn)).toBe(0x8086);
    expect(rd(CONF)).toBe(0);
    expect(rd(STA)).toBe(0);
    expect(rd64(CNT)).toBe(0n);
    for (let n = 0; n < 3; n++) {
      expect(rd(TCONF(n))).toBe(PER_CAP | SIZE_CAP);
      expect(rd(TCONF(n) + 4)).toBe(0x00f0_0000); // INT_ROUTE_CAP
      expect(rd64(TCMP(n))).toBe(0xffff_ffff_ffff_ffffn);
    }
  });

  it('ignores writes to read-only bits and keeps only the defined configuration bits', async () => {
    const { rd, wr } = await setup();
    wr(GCAP, 0);
    expect(rd(GCAP + 4)).toBe(10_000_000);
    wr(CONF, 0xffff_fffc);
    expect(rd(CONF)).toBe(0);
    wr(TCONF(1), 0xffff_ffff);
    expect(rd(TCONF(1))).toBe(0x3f7e); // no FSB_EN (no FSB capability), bits 0 and 7 reserved
    expect(rd(0x3f0)).toBe(0); // reserved space
  });
});

describe('hpet main counter', () => {
  it('counts at 100 MHz only while enabled and can be written while halted', async () => {
    const { m, rd, wr, rd64, wr64 } = await setup();
    m.clock.now = 5000;
    expect(rd64(CNT)).toBe(0n);
    wr(CONF, 1);
    m.clock.now += 1_000_000; // 1 ms
    expect(rd64(CNT)).toBe(100_000n);
    wr(CNT, 7); // ignored while counting
    expect(rd(CNT)).toBe(100_000);
    wr(CONF, 0);
    m.clock.now += 1_000_000;
    expect(rd64(CNT)).toBe(100_000n);
    wr64(CNT, 0xffff_ffff_ffff_fff0n);
    expect(rd64(CNT)).toBe(0xffff_ffff_ffff_fff0n);
    wr(CONF, 1);
    m.clock.now += 200; // 20 ticks: wraps through 2^64
    expect(rd64(CNT)).toBe(4n);
  });

  it('carries from the low into the high half', async () => {
    const { m, wr, rd64, wr64 } = await setup();
    wr64(CNT, 0xffff_fff0n);
    wr(CONF, 1);
    m.clock.now += 1000; // 100 ticks
    expect(rd64(CNT)).toBe(0x1_0000_0054n);
  });
});

describe('hpet timers', () => {
  it('fires a one-shot timer once when the counter reaches the comparator (edge, I/O APIC route)', async () => {
    const { m, wr, wr64, edges } = await setup();
    wr(TCONF(2), ENB | route(20));
    wr64(TCMP(2), 1000n);
    wr(CONF, 1);
    m.advance(9_990);
    expect(edges).toEqual([]);
    m.advance(10);
    expect(edges).toEqual([20]);
    m.advance(100_000_000);
    expect(edges).toEqual([20]);
  });

  it('runs a periodic timer with the Linux set-up sequence (VAL_SET, start, period) and reloads', async () => {
    const { m, rd64, wr, edges } = await setup();
    wr(CONF, 1 | 2); // enable, legacy replacement
    m.clock.now = 10_000; // counter = 1000
    wr(TCONF(0), ENB | PERIODIC | VAL_SET | MODE32); // Linux uses 32-bit mode
    wr(TCMP(0), 1000 + 500); // first: comparator and period
    wr(TCMP(0), 500); // then: period only
    expect(rd64(TCMP(0))).toBe(1500n);
    m.advance(5000);
    expect(edges).toEqual([0]); // legacy: timer 0 -> IRQ0
    expect(rd64(TCMP(0))).toBe(2000n); // comparator advanced by the period
    m.advance(5000);
    m.advance(5000);
    expect(edges).toEqual([0, 0, 0]);
    m.advance(5000 * 10 + 1); // ran past 10 matches (3000..7500): one interrupt, next match 8000
    expect(edges.length).toBe(4);
    expect(rd64(TCMP(0))).toBe(BigInt(1500 + 500 * 13));
  });

  it('does not fire a spent one-shot again when its configuration is rewritten', async () => {
    const { m, rd, wr, wr64, edges } = await setup();
    wr(TCONF(2), ENB | LEVEL | route(20));
    wr64(TCMP(2), 10n);
    wr(CONF, 1);
    m.advance(1000);
    expect(rd(STA)).toBe(4);
    wr(STA, 4);
    wr(TCONF(2), ENB | LEVEL | route(21)); // a new route, the same comparator behind the counter
    wr(TCONF(2), LEVEL | route(21)); // and the disable NimbOS writes
    wr(CONF, 3); // legacy routing toggled while counting
    m.advance(100_000);
    expect(rd(STA)).toBe(0);
    expect(edges).toEqual([20]);
  });

  it('routes timer 1 to IRQ8 under legacy replacement', async () => {
    const { m, wr, wr64, edges } = await setup();
    wr(TCONF(1), ENB | route(21));
    wr64(TCMP(1), 10n);
    wr(CONF, 1 | 2);
    m.advance(100);
    wr(CONF, 1);
    wr64(TCMP(1), 20n);
    m.advance(100);
    expect(edges).toEqual([8, 21]);
  });

  it('holds a level interrupt until its GINTR_STA bit is cleared (W1C)', async () => {
    const { m, rd, wr, wr64 } = await setup();
    wr(TCONF(2), ENB | LEVEL | route(22));
    wr64(TCMP(2), 10n);
    wr(CONF, 1);
    m.advance(100);
    expect(rd(STA)).toBe(4);
    expect(m.hostBus.irq.level(22)).toBe(true);
    wr(STA, 3); // other bits: no effect
    expect(rd(STA)).toBe(4);
    wr(STA, 4);
    expect(rd(STA)).toBe(0);
    expect(m.hostBus.irq.level(22)).toBe(false);
  });

  it('sets the level status without interrupting when Tn_INT_ENB_CNF is clear', async () => {
    const { m, rd, wr, wr64 } = await setup();
    wr(TCONF(0), LEVEL | route(20));
    wr64(TCMP(0), 10n);
    wr(CONF, 1);
    m.advance(100);
    expect(rd(STA)).toBe(1);
    expect(m.hostBus.irq.level(20)).toBe(false);
    wr(TCONF(0), LEVEL | ENB | route(20)); // enabling raises the held interrupt
    expect(m.hostBus.irq.level(20)).toBe(true);
  });

  it('compares only 32 bits in 32-bit mode and matches again after the low half wraps', async () => {
    const { m, rd, wr, edges } = await setup();
    wr(TCONF(2), ENB | MODE32 | route(23));
    wr(TCMP(2), 100);
    wr(TCMP(2) + 4, 5); // no upper half in 32-bit mode
    expect(rd(TCMP(2) + 4)).toBe(0);
    wr(CONF, 1);
    m.advance(1000);
    expect(edges).toEqual([23]);
    m.advance(2 ** 32 * 10);
    expect(edges).toEqual([23, 23]);
  });

  it('takes a 64-bit comparator write with VAL_SET in one 8-byte access', async () => {
    const { rd64, wr, wr64 } = await setup();
    wr(TCONF(0), PERIODIC | VAL_SET);
    wr64(TCMP(0), 0x1_0000_0010n);
    expect(rd64(TCMP(0))).toBe(0x1_0000_0010n);
    wr64(TCMP(0), 0x2_0000_0000n); // period only now
    expect(rd64(TCMP(0))).toBe(0x1_0000_0010n);
  });

  it('fires a comparator already behind the counter at the next tick', async () => {
    const { m, wr, wr64, edges } = await setup();
    wr(CONF, 1);
    m.advance(10_000);
    wr(TCONF(2), ENB | route(20));
    wr64(TCMP(2), 5n);
    m.advance(10);
    expect(edges).toEqual([20]);
  });

  it('stops timers while the counter is halted', async () => {
    const { m, wr, wr64, edges } = await setup();
    wr(TCONF(2), ENB | route(20));
    wr64(TCMP(2), 100n);
    m.advance(100_000);
    expect(edges).toEqual([]);
    wr(CONF, 1);
    m.advance(999);
    wr(CONF, 0);
    m.advance(100_000);
    expect(edges).toEqual([]);
    wr(CONF, 1);
    m.advance(9); // the count continues from 99, not from where time got to
    expect(edges).toEqual([]);
    m.advance(1);
    expect(edges).toEqual([20]);
  });
});
