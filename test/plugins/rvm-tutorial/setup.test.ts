/**
 * The policy's set-up: the CPUID function alone, control values from the capability MSRs, the MSR
 * bitmap, the host layout checks, and the EPT tables it builds (walked here from the EPTP in the
 * VMCS, entry by entry, as the CPU would).
 */
import { describe, expect, it } from 'vitest';
import { GuestCpuid, signatureDwords } from '../../../plugins/rvm-tutorial/cpuid.js';
import { layoutProblem, passthroughBases, planLayout } from '../../../plugins/rvm-tutorial/layout.js';
import {
  DESIRED,
  adjustControls,
  computeControls,
  msrBitmapPage,
} from '../../../plugins/rvm-tutorial/vmcs-setup.js';
import { VmxCaps } from '../../../plugins/vmx/caps.js';
import { VmxEngine } from '../../../plugins/vmx/engine.js';
import type { MachineConfig } from '../../../src/config/machine-schema.js';
import { MsrBitmap, VmcsField as F } from '../../../src/x86/vmx.js';
import { testMachine } from '../x86-64/helpers.js';
import { POWEROFF, RAM_BASE, loadGuest } from './helpers.js';

describe('GuestCpuid', () => {
  const host = (leaf: number, _sub: number, out: Int32Array) => {
    out.set([leaf === 0 ? 7 : leaf, 0x11, leaf === 1 ? 1 << 5 : 0x22, 0x33]);
  };

  it('edits leaf 1 and answers the hypervisor range itself', () => {
    const c = new GuestCpuid(host, { signature: 'ABCDEFGHIJKL' });
    const l1 = c.query(1, 0);
    expect(l1[2]! >>> 0).toBe(((1 << 21) | (1 << 31)) >>> 0); // VMX cleared, x2APIC and hypervisor set
    expect(l1[3]! & (1 << 9)).not.toBe(0);
    expect([...c.query(0x4000_0000, 0)]).toEqual([0x4000_0000, ...signatureDwords('ABCDEFGHIJKL')]);
    expect([...c.query(0x4000_0001, 0)]).toEqual([0, 0, 0, 0]);
    expect([...c.query(0x8000_0000, 0)]).toEqual([0x8000_0000 | 0, 0x11, 0x22, 0x33]); // passed through
  });

  it('reports leaf 0x16 only when configured, raising the maximum basic leaf', () => {
    const off = new GuestCpuid(host, { signature: 'ABCDEFGHIJKL' });
    expect(off.query(0, 0)[0]).toBe(7);
    expect(off.query(0x16, 0)[0]).toBe(0x16); // the host's answer
    const on = new GuestCpuid(host, {
      signature: 'ABCDEFGHIJKL',
      frequency: { baseMhz: 2500, maxMhz: 3100, busMhz: 100 },
    });
    expect(on.query(0, 0)[0]).toBe(0x16);
    expect([...on.query(0x16, 0)]).toEqual([2500, 3100, 100, 0]);
  });
});

describe('GuestCpuid cache (the CPUID exit path)', () => {
  it('asks the host once per ECX-independent leaf, every time for a leaf that depends on ECX', () => {
    const calls: [number, number][] = [];
    const c = new GuestCpuid(
      (leaf, sub, out) => {
        calls.push([leaf, sub]);
        out.set([leaf + sub, 1, 2, 3]);
      },
      { signature: 'ABCDEFGHIJKL' },
    );
    const a = c.answer(0, 0);
    expect(c.answer(0, 5)).toBe(a); // leaf 0 ignores ECX: the same cached answer
    expect([...a]).toEqual([0, 1, 2, 3]);
    expect(c.answer(0x8000_0000, 0)).toBe(c.answer(0x8000_0000, 1));
    expect([...c.answer(7, 0)]).toEqual([7, 1, 2, 3]);
    expect([...c.answer(7, 1)]).toEqual([8, 1, 2, 3]); // leaf 7 subleaf 1: asked again
    expect(calls).toEqual([
      [0, 0],
      [0x8000_0000, 0],
      [7, 0],
      [7, 1],
    ]);
    // The hypervisor range is the policy's own answer, never the host's.
    expect([...c.answer(0x4000_0000, 3)]).toEqual([0x4000_0000, ...signatureDwords('ABCDEFGHIJKL')]);
    expect(calls).toHaveLength(4);
  });

  it('query copies the answer: writing its result leaves the cache alone', () => {
    const c = new GuestCpuid((_l, _s, out) => out.set([0xd, 0x756e6547, 0x6c65746e, 0x49656e69]), {
      signature: 'ABCDEFGHIJKL',
    });
    const q = c.query(0, 0);
    q.fill(0);
    expect([...c.query(0, 0)]).toEqual([0xd, 0x756e6547, 0x6c65746e, 0x49656e69]);
  });
});

describe('VMCS controls', () => {
  it('(desired | allowed-0) & allowed-1, and what is missing', () => {
    const cap = (BigInt(0x0000_00ff) << 32n) | 0x16n;
    expect(adjustControls(cap, 0x109)).toEqual({ value: 0x1f, missing: 0x100 });
  });

  it('computes the tutorial controls from the model, or names the control it lacks', () => {
    const make = (hide: string[]) => {
      const m = testMachine({ ramSize: 0x10000 });
      const caps = new VmxCaps({
        revisionId: 1,
        preemptionTimerRate: 5,
        vmwriteAnyField: true,
        ept: true,
        unrestrictedGuest: true,
        vpid: true,
        hide,
      });
      return new VmxEngine({ cpu: m.cpu, caps, clock: m.clock, nested: undefined });
    };
    const c = computeControls(make([]));
    expect(c.pin & DESIRED.pin).toBe(DESIRED.pin);
    expect((c.proc & DESIRED.proc) >>> 0).toBe(DESIRED.proc >>> 0);
    expect(c.proc & ((1 << 15) | (1 << 16))).toBe(0); // CR3 load/store exiting off
    expect(c.proc2).toBe(DESIRED.proc2);
    expect(c.exit & DESIRED.exit).toBe(DESIRED.exit);
    expect(c.entry & DESIRED.entry).toBe(DESIRED.entry);
    // Optional secondary controls may be missing; the required ones may not.
    expect(computeControls(make(['EnableInvpcid'])).proc2 & (1 << 12)).toBe(0);
    expect(() => computeControls(make(['UnrestrictedGuest']))).toThrow(
      'the VMX model does not offer the secondary processor-based controls 0x80',
    );
  });

  it('the MSR bitmap intercepts reads and writes of 0x1B and 0x800-0x83F only', () => {
    const page = msrBitmapPage();
    const bit = (base: number, msr: number) => (page[base + (msr >> 3)]! >> (msr & 7)) & 1;
    const intercepted: number[] = [];
    for (let m = 0; m <= MsrBitmap.LOW_LAST; m++) {
      expect(bit(MsrBitmap.READ_LOW, m)).toBe(bit(MsrBitmap.WRITE_LOW, m));
      if (bit(MsrBitmap.READ_LOW, m)) intercepted.push(m);
    }
    expect(intercepted).toEqual([0x1b, ...Array.from({ length: 0x40 }, (_, i) => 0x800 + i)]);
    expect(page.subarray(MsrBitmap.READ_HIGH, MsrBitmap.WRITE_LOW).every((b) => b === 0)).toBe(true);
    expect(page.subarray(MsrBitmap.WRITE_HIGH).every((b) => b === 0)).toBe(true);
  });
});

describe('host layout', () => {
  const config = (o: { loader?: Record<string, unknown>; passthrough?: string[] } = {}) =>
    ({
      host: {
        memory: 128 << 20,
        devices: [
          { plugin: 'hpet' },
          { plugin: 'ioapic', name: 'io', base: 0xfec01000 },
          { plugin: 'uart16550' },
        ],
      },
      vmm: o.loader ? { loader: { plugin: 'fat-loader', ...o.loader } } : {},
      guest: {
        memory: 16 << 20,
        passthrough: o.passthrough ?? [],
        devices: [],
        entry: { mode: 'real', ip: 0x8000 },
      },
    }) as unknown as MachineConfig;

  it('checks host RAM, alignment and the loader scratch area', () => {
    const l = planLayout(0x100_0000, 16 << 20);
    expect(l.eptBase).toBe(0x200_0000);
    expect(layoutProblem(l, 128 << 20, config())).toBeUndefined();
    expect(layoutProblem(l, 32 << 20, config())).toContain('host.memory is 0x2000000 bytes');
    expect(layoutProblem(planLayout(0x101_0000, 16 << 20), 128 << 20, config())).toContain(
      'not 2 MiB aligned',
    );
    expect(layoutProblem(l, 128 << 20, config({ loader: { scratch: 0x180_0000 } }))).toContain(
      "overlap the loader's scratch area (0x1800000..0x183ffff)",
    );
    // The default scratch area (0x7000000) is clear of a 16 MiB guest at 16 MiB.
    expect(layoutProblem(l, 128 << 20, config({ loader: {} }))).toBeUndefined();
  });

  it('finds passthrough pages by host instance name, with plugin defaults', () => {
    expect(passthroughBases(config({ passthrough: ['hpet', 'io'] }))).toEqual([
      { name: 'hpet', base: 0xfed00000 },
      { name: 'io', base: 0xfec01000 },
    ]);
    expect(() => passthroughBases(config({ passthrough: ['lapic'] }))).toThrow(
      'guest.passthrough names "lapic", but no host device has that name (host devices: hpet, io, uart16550)',
    );
    expect(() => passthroughBases(config({ passthrough: ['uart16550'] }))).toThrow('has no MMIO base');
  });
});

/** Every leaf of 4-level EPT tables: [gpa, hpa, rwx, memType, size]. */
function eptLeaves(read64: (a: number) => bigint, eptp: number): [number, number, number, number, number][] {
  const out: [number, number, number, number, number][] = [];
  const walk = (table: number, level: number, base: number) => {
    for (let i = 0; i < 512; i++) {
      const e = read64(table + i * 8);
      const rwx = Number(e & 7n);
      if (rwx === 0) continue;
      const addr = Number(e & 0x000f_ffff_ffff_f000n);
      const gpa = base + i * 2 ** (12 + 9 * level);
      if (level === 0 || e & 0x80n) out.push([gpa, addr, rwx, Number((e >> 3n) & 7n), 2 ** (12 + 9 * level)]);
      else walk(addr, level - 1, gpa);
    }
  };
  walk(eptp - (eptp % 4096), 3, 0);
  return out;
}

describe('EPT built by the policy', () => {
  const layoutOf = async (policy?: string) => {
    const { loaded } = await loadGuest(POWEROFF, policy ? { policy } : {});
    try {
      await loaded.machine.callHook('start');
      const vmx = loaded.machine.plugins.find((p) => p.instanceName === 'vmx')!.instance as VmxEngine;
      const eptp = Number(vmx.vmread(F.EptPointer));
      const bus = loaded.machine.hostBus;
      return { eptp, leaves: eptLeaves((a) => bus.read64(a), eptp) };
    } finally {
      await loaded.dispose();
    }
  };

  it('maps guest RAM write-back in 4 KiB pages and the passthrough pages 1:1 uncached, nothing else', async () => {
    const { eptp, leaves } = await layoutOf();
    expect(eptp & 0x7f).toBe(6 | (3 << 3) | (1 << 6)); // WB, 4-level, A/D
    const ram = leaves.filter(([gpa]) => gpa < 16 << 20);
    expect(ram).toHaveLength(4096);
    ram.forEach(([gpa, hpa, rwx, mt, size], i) => {
      expect([gpa, hpa, rwx, mt, size]).toEqual([i * 4096, RAM_BASE + i * 4096, 7, 6, 4096]);
    });
    expect(leaves.filter(([gpa]) => gpa >= 16 << 20)).toEqual([
      [0xfec00000, 0xfec00000, 7, 0, 4096],
      [0xfed00000, 0xfed00000, 7, 0, 4096],
      [0xfee00000, 0xfee00000, 7, 0, 4096],
    ]);
  });

  it('uses 2 MiB pages for guest RAM when asked', async () => {
    const { leaves } = await layoutOf("page-size: '2M'");
    const ram = leaves.filter(([gpa]) => gpa < 16 << 20);
    expect(ram).toHaveLength(8);
    expect(ram.map(([, hpa, , mt, size]) => [hpa, mt, size])).toEqual(
      Array.from({ length: 8 }, (_, i) => [RAM_BASE + i * (2 << 20), 6, 2 << 20]),
    );
  });
});
