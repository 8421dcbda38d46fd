import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../../src/core/clock.js';
import { Tokens } from '../../../src/core/tokens.js';
import eptPlugin, { isEpt, type Ept } from '../../../plugins/ept/index.js';
import { X86_64 } from '../../../plugins/x86-64/index.js';
import { TestMachine } from '../../devices/harness.js';

async function load(settings: Parameters<TestMachine['add']>[1] = {}) {
  const m = new TestMachine();
  m.hostBus.addRam('ram', 0, 0x100_0000);
  const cpu = new X86_64(m.hostBus, new VirtualClock());
  m.set(Tokens.Cpu, cpu);
  const inst = await m.add(eptPlugin, settings);
  const np = m.get(Tokens.NestedPaging);
  if (!isEpt(np)) throw new Error('ept did not provide an Ept');
  return { m, cpu, inst, ept: np as Ept };
}

// IA32_VMX_EPT_VPID_CAP bits as appendix A.10 numbers them.
const bit = (...n: number[]) => n.reduce((v, b) => v + 2 ** b, 0);

describe('ept plugin', () => {
  it('provides NestedPaging and advertises its capabilities', async () => {
    const { ept, inst } = await load();
    expect(ept.capabilities()).toBe(bit(0, 6, 8, 14, 16, 17, 20, 21, 25, 26));
    expect(inst.describe?.()).toBe('4-level, A/D, 2M+1G pages, cache 512');
    const small = await load({
      'accessed-dirty': false,
      'large-pages': ['2M'],
      'execute-only': false,
      'five-level': true,
      'cache-entries': 0,
    });
    expect(small.ept.capabilities()).toBe(bit(6, 7, 8, 14, 16, 20, 25, 26));
    expect(small.inst.describe?.()).toBe('4/5-level, no A/D, 2M pages, cache 0');
    expect(() => eptPlugin.settings.parse({ 'cache-entries': 384 })).toThrow(/power of two/);
    expect(() => eptPlugin.settings.parse({ 'large-pages': ['4M'] })).toThrow();
  });

  it('the builder follows the settings', async () => {
    const { ept } = await load({ 'large-pages': ['2M'] });
    const t = ept.createTables(0x10_0000, 0x1_0000, { owner: 'rvm-tutorial' });
    expect(() => t.map(0, 0, 0x4000_0000, { pageSize: '1G' })).toThrow(
      /rvm-tutorial: .*1G pages are not enabled/,
    );
    t.map(0, 0, 0x20_0000, { pageSize: '2M' });
  });

  it('checks an EPTP as VM entry does (SDM 26.2.1.1)', async () => {
    const { ept } = await load();
    const root = 0x10_0000;
    expect(ept.checkEptp(root | 0x1e)).toBeUndefined();
    expect(ept.checkEptp(root | 0x5e)).toBeUndefined();
    expect(ept.checkEptp(root | 0x18)).toBeUndefined();
    expect(ept.checkEptp(root | 0x1d)).toMatch(/memory type 5/);
    expect(ept.checkEptp(root | 0x16)).toMatch(/page-walk length 3/);
    expect(ept.checkEptp(root | 0x26)).toMatch(/page-walk length 5/);
    expect(ept.checkEptp(root | 0x9e)).toMatch(/shadow-stack/);
    expect(ept.checkEptp(root | 0x11e)).toMatch(/bits 11:8/);
    expect(ept.checkEptp(2 ** 40 + 0x1e)).toMatch(/bits 63:40/);
    const noAd = await load({ 'accessed-dirty': false, 'five-level': true });
    expect(noAd.ept.checkEptp(root | 0x5e)).toMatch(/A\/D/);
    expect(noAd.ept.checkEptp(root | 0x26)).toBeUndefined();
  });

  it("INVEPT flushes the CPU's TLB; reset empties the cache", async () => {
    const { ept, cpu, inst } = await load();
    const t = ept.createTables(0x10_0000, 0x1_0000);
    t.map(0x1000, 0x2000, 0x1000);
    const flushes = cpu.counters.tlbFlushes;
    ept.invept(1, t.eptp());
    ept.invept(2, 0);
    expect(cpu.counters.tlbFlushes).toBe(flushes + 2);
    const r = { gpa: 0x1000, linear: 0x1000, write: false, fetch: false, walk: false };
    ept.translate(t.eptp(), r);
    ept.translate(t.eptp(), r);
    expect(inst.stats?.()).toMatchObject({ walks: 1, cacheHits: 1, inveptSingle: 1, inveptAll: 1 });
    inst.reset?.();
    ept.translate(t.eptp(), r);
    expect(inst.stats?.()).toMatchObject({ walks: 2 });
  });
});
