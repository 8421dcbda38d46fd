/**
 * The emulator under test: runs a DiffCase on the x86-64 plugin's CPU (see emulator-adapter.ts for
 * the contract). One CPU and bus are built once and reused: each case rewrites the three windows,
 * the page tables' target pages stay put.
 *
 * Machine: long mode with 4-level paging; linear pages codeAddr (user, RWX), dataAddr and stackAddr
 * (user, RW, NX) map to three physical pages; nothing else is present. CPL 3, flat segments:
 * CS 0x33 (64-bit) or 0x23 (32-bit compatibility). Every exception is intercepted through the
 * exception hook (bitmap all ones) and ends the case, as the native runner's signal does.
 */
import { Bus } from '../../../src/core/bus.js';
import { VirtualClock } from '../../../src/core/clock.js';
import { SegAttr } from '../../../src/x86/descriptor.js';
import { Vector } from '../../../src/x86/exceptions.js';
import { CR0, CR4, EFER } from '../../../src/x86/regs.js';
import { X86_64 } from '../../../plugins/x86-64/cpu.js';
import type { ExceptionEvent } from '../../../plugins/x86-64/hooks.js';
import type { DiffCase, DiffFault, DiffResult, Emulate, FaultKind } from './emulator-adapter.js';

const PHYS = 0x100000;
const PML4 = PHYS,
  PDPT = PHYS + 0x1000,
  PD = PHYS + 0x2000,
  PT0 = PHYS + 0x3000;
/** Physical pages of the code, data and stack windows. */
const WIN = [PHYS + 0x6000, PHYS + 0x7000, PHYS + 0x8000];
const MAX_STEPS = 200_000;

const USER_CODE64 =
  SegAttr.P | SegAttr.S | SegAttr.CODE | SegAttr.RW | SegAttr.ACCESSED | SegAttr.L | SegAttr.G | (3 << 5);
const USER_CODE32 =
  SegAttr.P | SegAttr.S | SegAttr.CODE | SegAttr.RW | SegAttr.ACCESSED | SegAttr.DB | SegAttr.G | (3 << 5);
const USER_DATA = SegAttr.P | SegAttr.S | SegAttr.RW | SegAttr.ACCESSED | SegAttr.DB | SegAttr.G | (3 << 5);

interface Env {
  bus: Bus;
  cpu: X86_64;
  ram: Uint8Array;
  fault: ExceptionEvent | undefined;
  mapped: number[];
}

let env: Env | undefined;

function setup(): Env {
  const bus = new Bus('diff');
  const region = bus.addRam('ram', PHYS, 0x10000);
  const cpu = new X86_64(bus, new VirtualClock());
  cpu.reset();
  const e: Env = { bus, cpu, ram: region.data, fault: undefined, mapped: [] };
  cpu.hooks.exceptionBitmap = -1;
  cpu.hooks.exception = (ev) => {
    e.fault = { ...ev };
    return true;
  };
  return e;
}

const le32 = (a: Uint8Array, off: number, v: number): void => {
  a[off] = v;
  a[off + 1] = v >>> 8;
  a[off + 2] = v >>> 16;
  a[off + 3] = v >>> 24;
};

/** Build page tables mapping the three windows (each case may use different addresses). */
function mapWindows(e: Env, c: DiffCase): void {
  const key = [c.codeAddr, c.dataAddr, c.stackAddr];
  if (e.mapped.join() === key.join()) return;
  e.ram.fill(0, 0, 0x6000);
  const r = (a: number): number => a - PHYS;
  le32(e.ram, r(PML4), PDPT | 7);
  key.forEach((lin, k) => {
    if (lin >= 2 ** 39 || lin % 4096 !== 0)
      throw new Error(`window ${lin.toString(16)} outside the adapter's map`);
    const pdpti = Math.floor(lin / 2 ** 30);
    const pdi = Math.floor(lin / 2 ** 21) % 512;
    const pti = Math.floor(lin / 4096) % 512;
    // One PDPT page covers 512 GiB; one PD per 1 GiB slot (only one used here), one PT per window.
    if (pdpti !== 0 && pdpti !== Math.floor(key[0]! / 2 ** 30))
      throw new Error('windows must share a 1 GiB slot');
    le32(e.ram, r(PDPT) + pdpti * 8, PD | 7);
    const pt = PT0 + k * 0x1000;
    le32(e.ram, r(PD) + pdi * 8, pt | 7);
    le32(e.ram, r(pt) + pti * 8, WIN[k]! | 7);
    // NX on the data and stack windows.
    if (k > 0) le32(e.ram, r(pt) + pti * 8 + 4, 0x80000000);
  });
  e.mapped = key;
}

const KINDS: Record<number, FaultKind> = {
  [Vector.DE]: 'DE',
  [Vector.UD]: 'UD',
  [Vector.GP]: 'GP',
  [Vector.PF]: 'PF',
  [Vector.BP]: 'BP',
};

export const emulate: Emulate = (c: DiffCase): DiffResult => {
  env ??= setup();
  const e = env;
  const cpu = e.cpu;
  mapWindows(e, c);
  const code = e.ram.subarray(WIN[0]! - PHYS, WIN[0]! - PHYS + 4096);
  code.fill(0xcc);
  code.set(c.code);
  // Every case reuses the code page: report the store so no translated block outlives its bytes.
  e.bus.noteRamWrite(e.bus.ramAt(PHYS)!, WIN[0]! - PHYS, 4096);
  e.ram.set(c.data, WIN[1]! - PHYS);
  e.ram.set(c.stack, WIN[2]! - PHYS);
  e.fault = undefined;

  cpu.reset();
  cpu.cr0 = CR0.PE | CR0.PG | CR0.WP | CR0.ET | CR0.NE;
  cpu.cr4 = CR4.PAE;
  cpu.cr3 = PML4;
  cpu.efer = EFER.LME | EFER.LMA | EFER.NXE | EFER.SCE;
  cpu.setSeg(1, c.mode === 64 ? 0x33 : 0x23, 0, 0xffffffff, c.mode === 64 ? USER_CODE64 : USER_CODE32);
  for (const s of [0, 2, 3, 4, 5]) cpu.setSeg(s, 0x2b, 0, 0xffffffff, USER_DATA);
  cpu.updateMode();
  cpu.refreshSegOk();
  cpu.flushTlb();
  const nregs = c.mode === 64 ? 16 : 8;
  for (let i = 0; i < 16; i++) {
    const v = i < nregs ? (c.regs[i] ?? 0n) : 0n;
    cpu.rl[i] = Number(BigInt.asIntN(32, v));
    cpu.rh[i] = Number(BigInt.asIntN(32, v >> 32n));
  }
  cpu.fl = (c.rflags | 2) >>> 0;
  cpu.lfOp = 0;
  cpu.rip = c.codeAddr;
  const end = c.codeAddr + c.code.length;
  for (let n = 0; n < MAX_STEPS && e.fault === undefined && cpu.rip !== end; n++) cpu.execute(1);

  const regs: bigint[] = [];
  for (let i = 0; i < nregs; i++) {
    const v = BigInt.asUintN(64, (BigInt(cpu.rh[i]) << 32n) | BigInt(cpu.rl[i] >>> 0));
    regs.push(c.mode === 64 ? v : v & 0xffffffffn);
  }
  let fault: DiffFault | undefined;
  const f = e.fault as ExceptionEvent | undefined;
  if (f !== undefined) {
    fault = {
      kind: KINDS[f.vector] ?? 'other',
      rip: BigInt.asUintN(64, BigInt(cpu.rip)),
      vector: f.vector,
    };
    if (f.vector === Vector.PF) fault.addr = BigInt.asUintN(64, BigInt(f.address));
  }
  const result: DiffResult = {
    regs,
    rflags: cpu.getFlags() >>> 0,
    data: e.ram.slice(WIN[1]! - PHYS, WIN[1]! - PHYS + 4096),
    stack: e.ram.slice(WIN[2]! - PHYS, WIN[2]! - PHYS + 4096),
  };
  if (fault) result.fault = fault;
  return result;
};
