/**
 * StringIo against a scripted VMCS and real page tables in a host bus: the cases a guest program
 * reaches only with much setup (a 64-bit rCX above 2^53, an FS base that wraps, INS into memory
 * that the guest's paging or EPT makes read-only or supervisor-only).
 */
import { describe, expect, it } from 'vitest';
import { Bus } from '../../../src/core/bus.js';
import { SegAttr } from '../../../src/x86/descriptor.js';
import { EPTE } from '../../../src/x86/ept.js';
import { PFEC } from '../../../src/x86/exceptions.js';
import { PTE } from '../../../src/x86/paging.js';
import { CR0, EFER, RFLAGS, Seg } from '../../../src/x86/regs.js';
import { IntrInfo, IoInstrInfo, IoQual, Proc2Ctl, ProcCtl, VmcsField as F } from '../../../src/x86/vmx.js';
import { GuestView } from '../../../src/x86/guest-view.js';
import { FakeVmx } from './fake-vmx.js';
import { MAX_PER_EXIT, StringIo } from '../../../plugins/rvm-tutorial/string-io.js';

const EPT_ROOT = 0x10_0000; // host-physical: PML4, PDPT, PD, PT in four pages
const GUEST_RAM = 0x20_0000; // host-physical base of guest-physical 0
const GUEST_PAGES = 64;
const PORT = 0x3ff;
const RIP = 0x4000;

interface Setup {
  vmx: FakeVmx;
  host: Bus;
  sio: StringIo;
  faults: string[];
  written: number[];
  /** Guest-physical byte. */
  byte(gpa: number): number;
  /** The #PF the handler set up for injection (its error code, and the CR2 it wrote), if any. */
  pageFault(): { errorCode: number; cr2: number } | undefined;
}

/** EPT maps guest-physical pages 0..GUEST_PAGES-1 RWX, except `eptReadOnly` (read-only). */
function setup(o: { code: 32 | 64; eptReadOnly?: number; cpl?: number }): Setup {
  const host = new Bus('host');
  const ram = host.addRam('ram', 0, 0x40_0000);
  const w32 = (a: number, v: number): void => host.write(a, 4, v >>> 0);
  w32(EPT_ROOT, (EPT_ROOT + 0x1000) | 7);
  w32(EPT_ROOT + 0x1000, (EPT_ROOT + 0x2000) | 7);
  w32(EPT_ROOT + 0x2000, (EPT_ROOT + 0x3000) | 7);
  for (let i = 0; i < GUEST_PAGES; i++) {
    const perms = i === o.eptReadOnly ? EPTE.READ : EPTE.READ | EPTE.WRITE | EPTE.EXECUTE;
    w32(EPT_ROOT + 0x3000 + i * 8, (GUEST_RAM + i * 0x1000) | perms);
  }
  const vmx = new FakeVmx();
  vmx.vmwrite(F.PrimaryProcBasedVmExecControls, ProcCtl.ActivateSecondaryControls);
  vmx.vmwrite(F.SecondaryProcBasedVmExecControls, Proc2Ctl.EnableEpt);
  vmx.vmwrite(F.EptPointer, EPT_ROOT | 0x1e);
  vmx.vmwrite(F.GuestRip, RIP);
  vmx.vmwrite(F.GuestRflags, 2);
  vmx.vmwrite(F.GuestSsAccessRights, SegAttr.P | ((o.cpl ?? 0) << SegAttr.DPL_SHIFT) | 0x13);
  if (o.code === 64) {
    vmx.vmwrite(F.GuestIa32Efer, EFER.LMA | EFER.LME);
    vmx.vmwrite(F.GuestCsAccessRights, SegAttr.P | SegAttr.L | 0x1b);
  } else vmx.vmwrite(F.GuestCsAccessRights, SegAttr.P | SegAttr.DB | 0x1b);
  const guest = new Bus('guest');
  const written: number[] = [];
  let next = 0x10;
  guest.addPorts('scratch', PORT, 1, {
    ioRead: () => next++ & 0xff,
    ioWrite: (_o, _s, v) => void written.push(v),
  });
  const faults: string[] = [];
  const cr2: number[] = [];
  const sio = new StringIo(
    vmx.asVmx,
    guest,
    host,
    new GuestView(vmx.asVmx, host),
    (m) => faults.push(m),
    (v) => cr2.push(v),
  );
  return {
    vmx,
    host,
    sio,
    faults,
    written,
    byte: (gpa) => ram.data[GUEST_RAM + gpa]!,
    pageFault: () => {
      const info = vmx.vmread32(F.VmEntryInterruptionInfo);
      if (!(info & IntrInfo.VALID)) return undefined;
      expect(info >>> 0).toBe(
        (IntrInfo.VALID | (3 << IntrInfo.TYPE_SHIFT) | 14 | IntrInfo.DELIVER_ERROR_CODE) >>> 0,
      );
      return { errorCode: vmx.vmread32(F.VmEntryExceptionErrorCode), cr2: cr2.at(-1)! };
    },
  };
}

/** Exit qualification of a string I/O exit on PORT. */
function qual(input: boolean, rep: boolean, size = 1): number {
  return (
    (PORT << IoQual.PORT_SHIFT) |
    IoQual.STRING |
    (input ? IoQual.IN : 0) |
    (rep ? IoQual.REP : 0) |
    (size - 1)
  );
}

/** 32-bit paging in guest-physical pages 1 (PD) and 2 (PT), linear 0-4 MiB identity-mapped. */
function guestPaging32(s: Setup, pteOf: (page: number) => number, wp: boolean): void {
  const g32 = (gpa: number, v: number): void => s.host.write(GUEST_RAM + gpa, 4, v >>> 0);
  g32(0x1000, 0x2000 | PTE.P | PTE.RW | PTE.US);
  for (let i = 0; i < GUEST_PAGES; i++) g32(0x2000 + i * 4, (i * 0x1000) | pteOf(i));
  s.vmx.vmwrite(F.GuestCr3, 0x1000);
  s.vmx.vmwrite(F.GuestCr0, CR0.PE | CR0.PG | (wp ? CR0.WP : 0));
}

describe('rvm-tutorial string I/O: 64-bit registers and addresses', () => {
  it('REP INSB with RCX = 2^64-1 leaves RCX exactly 2^64-1 minus the elements moved', () => {
    const s = setup({ code: 64 });
    s.vmx.vmwrite(F.VmExitInstructionInfo, 2 << IoInstrInfo.ADDRESS_SIZE_SHIFT);
    s.vmx.gpr[1] = 0xffff_ffff_ffff_ffffn;
    s.vmx.gpr[7] = 0x8000n;
    expect(s.sio.handle(qual(true, true))).toBe(true);
    expect(s.faults).toEqual([]);
    expect(s.vmx.gpr[1]).toBe(0xffff_ffff_ffff_ffffn - BigInt(MAX_PER_EXIT));
    expect(s.vmx.gpr[7]).toBe(0x8000n + BigInt(MAX_PER_EXIT));
    // The instruction is not finished: RIP stays on it.
    expect(s.vmx.advanced).toBe(0);
    expect(s.byte(0x8000)).toBe(0x10);
    expect(s.byte(0x8001)).toBe(0x11);
  });

  it('REP INSB with RCX = 2^53 + 3 keeps the low bits', () => {
    const s = setup({ code: 64 });
    s.vmx.vmwrite(F.VmExitInstructionInfo, 2 << IoInstrInfo.ADDRESS_SIZE_SHIFT);
    s.vmx.gpr[1] = 2n ** 53n + 3n;
    s.vmx.gpr[7] = 0x8000n;
    s.sio.handle(qual(true, true));
    expect(s.vmx.gpr[1]).toBe(2n ** 53n + 3n - BigInt(MAX_PER_EXIT));
  });

  it('OUTSB with an FS override: FS base + RSI wraps at 2^64', () => {
    const s = setup({ code: 64 });
    s.vmx.vmwrite(
      F.VmExitInstructionInfo,
      (2 << IoInstrInfo.ADDRESS_SIZE_SHIFT) | (Seg.FS << IoInstrInfo.SEGMENT_SHIFT),
    );
    s.vmx.vmwrite(F.GuestFsBase, 0xffff_ffff_ffff_f000n);
    s.vmx.gpr[6] = 0x3005n; // linear 0x2005 after the wrap
    s.host.write(GUEST_RAM + 0x2005, 1, 0xab);
    s.host.write(GUEST_RAM + 0x2004, 1, 0xcd);
    s.vmx.vmwrite(F.GuestRflags, 2 | RFLAGS.DF);
    s.vmx.gpr[1] = 2n;
    expect(s.sio.handle(qual(false, true))).toBe(true);
    expect(s.faults).toEqual([]);
    expect(s.written).toEqual([0xab, 0xcd]);
    expect(s.vmx.gpr[6]).toBe(0x3003n);
    expect(s.vmx.gpr[1]).toBe(0n);
    expect(s.vmx.advanced).toBe(1);
  });
});

describe('rvm-tutorial string I/O: access rights of the memory operand', () => {
  it('INS into a page EPT maps read-only stops without writing it', () => {
    const s = setup({ code: 32, eptReadOnly: 8 });
    s.vmx.vmwrite(F.VmExitInstructionInfo, 1 << IoInstrInfo.ADDRESS_SIZE_SHIFT);
    s.vmx.gpr[7] = 0x8000n;
    expect(s.sio.handle(qual(true, false))).toBe(false);
    expect(s.faults[0]).toMatch(/not writable in EPT/);
    expect(s.byte(0x8000)).toBe(0);
    // OUTS may read it.
    s.vmx.gpr[6] = 0x8000n;
    expect(s.sio.handle(qual(false, false))).toBe(true);
    expect(s.written).toEqual([0]);
  });

  it('INS into a read-only guest page: allowed at CPL 0 without CR0.WP, #PF(P|W) with it', () => {
    for (const wp of [false, true]) {
      const s = setup({ code: 32 });
      guestPaging32(s, (i) => (i === 8 ? PTE.P | PTE.US : PTE.P | PTE.RW | PTE.US), wp);
      s.vmx.vmwrite(F.VmExitInstructionInfo, 1 << IoInstrInfo.ADDRESS_SIZE_SHIFT);
      s.vmx.gpr[7] = 0x8000n;
      expect(s.sio.handle(qual(true, false))).toBe(true);
      expect(s.faults).toEqual([]);
      expect(s.byte(0x8000)).toBe(wp ? 0 : 0x10);
      expect(s.pageFault()).toEqual(wp ? { errorCode: PFEC.P | PFEC.W, cr2: 0x8000 } : undefined);
      // A fault leaves RIP on the instruction and rDI where it was.
      expect(s.vmx.advanced).toBe(wp ? 0 : 1);
      expect(s.vmx.gpr[7]).toBe(wp ? 0x8000n : 0x8001n);
    }
  });

  it('at CPL 3, INS into a read-only page and OUTS from a supervisor page are #PF(P|W|U), #PF(P|U)', () => {
    const s = setup({ code: 32, cpl: 3 });
    guestPaging32(
      s,
      (i) => (i === 8 ? PTE.P | PTE.US : i === 9 ? PTE.P | PTE.RW : PTE.P | PTE.RW | PTE.US),
      false,
    );
    s.vmx.vmwrite(F.VmExitInstructionInfo, 1 << IoInstrInfo.ADDRESS_SIZE_SHIFT);
    s.vmx.gpr[7] = 0x8000n;
    expect(s.sio.handle(qual(true, false))).toBe(true);
    expect(s.pageFault()).toEqual({ errorCode: PFEC.P | PFEC.W | PFEC.U, cr2: 0x8000 });
    expect(s.byte(0x8000)).toBe(0);
    s.vmx.vmwrite(F.VmEntryInterruptionInfo, 0); // the entry delivered it
    s.vmx.gpr[6] = 0x9000n;
    expect(s.sio.handle(qual(false, false))).toBe(true);
    expect(s.pageFault()).toEqual({ errorCode: PFEC.P | PFEC.U, cr2: 0x9000 });
    expect(s.written).toEqual([]);
    // A user page is fine; the faulting INS did not read the port (nothing is lost).
    s.vmx.vmwrite(F.VmEntryInterruptionInfo, 0);
    s.vmx.gpr[7] = 0xa000n;
    expect(s.sio.handle(qual(true, false))).toBe(true);
    expect(s.pageFault()).toBeUndefined();
    expect(s.byte(0xa000)).toBe(0x10);
    expect(s.faults).toEqual([]);
    expect(s.sio.stats.pageFaultsInjected).toBe(2);
  });

  it('REP INSW running into a not-present page: the elements before it move, #PF(W) at its first byte', () => {
    const s = setup({ code: 32 });
    guestPaging32(s, (i) => (i === 9 ? 0 : PTE.P | PTE.RW | PTE.US), true);
    s.vmx.vmwrite(F.VmExitInstructionInfo, 1 << IoInstrInfo.ADDRESS_SIZE_SHIFT);
    // Words at 0x8ffb and 0x8ffd move; the one at 0x8fff straddles into the not-present page 9.
    s.vmx.gpr[7] = 0x8ffbn;
    s.vmx.gpr[1] = 10n;
    expect(s.sio.handle(qual(true, true, 2))).toBe(true);
    expect(s.pageFault()).toEqual({ errorCode: PFEC.W, cr2: 0x9000 });
    expect(s.vmx.gpr[7]).toBe(0x8fffn);
    expect(s.vmx.gpr[1]).toBe(8n);
    expect(s.vmx.advanced).toBe(0);
    // A word from the one-byte port reads all ones; the straddling word wrote nothing.
    expect([0x8ffb, 0x8ffc, 0x8ffd, 0x8ffe, 0x8fff].map((a) => s.byte(a))).toEqual([
      0xff, 0xff, 0xff, 0xff, 0,
    ]);
  });

  it('a supervisor-only PDE over a not-present PTE is a not-present fault (P=0)', () => {
    const s = setup({ code: 32, cpl: 3 });
    guestPaging32(s, (i) => (i === 8 ? 0 : PTE.P | PTE.RW | PTE.US), false);
    s.host.write(GUEST_RAM + 0x1000, 4, 0x2000 | PTE.P | PTE.RW); // the PDE: supervisor only
    s.vmx.vmwrite(F.VmExitInstructionInfo, 1 << IoInstrInfo.ADDRESS_SIZE_SHIFT);
    s.vmx.gpr[6] = 0x8000n;
    expect(s.sio.handle(qual(false, false))).toBe(true);
    expect(s.pageFault()).toEqual({ errorCode: PFEC.U, cr2: 0x8000 });
    s.vmx.vmwrite(F.VmEntryInterruptionInfo, 0);
    s.vmx.gpr[6] = 0xa000n; // a present PTE under the supervisor PDE: a protection fault
    expect(s.sio.handle(qual(false, false))).toBe(true);
    expect(s.pageFault()).toEqual({ errorCode: PFEC.P | PFEC.U, cr2: 0xa000 });
  });
});
