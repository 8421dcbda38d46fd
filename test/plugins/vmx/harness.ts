/**
 * A VMX test bench: the x86-64 test machine, a stub nested-paging plugin (identity, with pages that
 * can be made to violate), the vmx engine, and a valid flat 32-bit unrestricted-guest VMCS.
 */
import type { NestedPaging, NestedPagingViolation } from '../../../src/core/nested-paging.js';
import { EptViolation } from '../../../src/x86/ept.js';
import {
  ENTRY_DEFAULT1,
  EXIT_DEFAULT1,
  ExitCtl,
  PIN_DEFAULT1,
  PROC_DEFAULT1,
  Proc2Ctl,
  ProcCtl,
  VmcsField as F,
} from '../../../src/x86/vmx.js';
import { VmxCaps } from '../../../plugins/vmx/caps.js';
import { VmxEngine } from '../../../plugins/vmx/engine.js';
import type { TranslateRequest } from '../../../plugins/x86-64/hooks.js';
import { assemble, load, testMachine, type TestMachine } from '../x86-64/helpers.js';

export class StubEpt implements NestedPaging {
  readonly lastViolation: NestedPagingViolation = { gpa: 0, qualification: 0, misconfig: false, linear: -1 };
  /** Guest-physical pages (address >> 12) that are not mapped. */
  readonly unmapped = new Set<number>();
  translate(_eptp: number, r: TranslateRequest): number {
    if (!this.unmapped.has(Math.floor(r.gpa / 4096))) return r.gpa;
    const v = this.lastViolation;
    v.gpa = r.gpa;
    v.misconfig = false;
    v.linear = r.linear;
    v.qualification =
      (r.write
        ? EptViolation.DATA_WRITE
        : r.fetch
          ? EptViolation.INSTRUCTION_FETCH
          : EptViolation.DATA_READ) |
      (r.linear >= 0 ? EptViolation.LINEAR_VALID | (r.walk ? 0 : EptViolation.LINEAR_TRANSLATION) : 0);
    return -1;
  }
  invept(): void {}
}

export interface Bench {
  m: TestMachine;
  vmx: VmxEngine;
  ept: StubEpt;
  exits: { reason: number; qual: number; len: number; rip: number }[];
}

export const CODE = 0x1000;
export const EPTP = 0x50_0000 | (3 << 3) | 6;

export function bench(opts: { hide?: string[]; vmwriteAny?: boolean } = {}): Bench {
  const m = testMachine({ ramSize: 0x800000 });
  const ept = new StubEpt();
  const caps = new VmxCaps({
    revisionId: 0x12,
    preemptionTimerRate: 5,
    vmwriteAnyField: opts.vmwriteAny ?? false,
    ept: true,
    unrestrictedGuest: true,
    vpid: true,
    hide: opts.hide ?? [],
  });
  const vmx = new VmxEngine({ cpu: m.cpu, caps, clock: m.clock, nested: ept });
  const b: Bench = { m, vmx, ept, exits: [] };
  // A flat GDT at 0x9000: null, code 0x08, data 0x10.
  const dv = new DataView(m.ram.buffer);
  dv.setUint32(0x9008, 0x0000ffff, true);
  dv.setUint32(0x900c, 0x00cf9b00, true);
  dv.setUint32(0x9010, 0x0000ffff, true);
  dv.setUint32(0x9014, 0x00cf9300, true);
  validGuest(vmx);
  return b;
}

/** Controls, host state and a flat 32-bit protected-mode guest (paging off: unrestricted guest). */
export function validGuest(vmx: VmxEngine): void {
  const w = (f: number, v: number | bigint) => {
    const e = vmx.vmwrite(f, v);
    if (e !== 0) throw new Error(`vmwrite ${f.toString(16)} failed: ${e}`);
  };
  w(F.PinBasedVmExecControls, PIN_DEFAULT1);
  w(F.PrimaryProcBasedVmExecControls, (PROC_DEFAULT1 & ~0x18000) | ProcCtl.ActivateSecondaryControls);
  w(F.SecondaryProcBasedVmExecControls, Proc2Ctl.EnableEpt | Proc2Ctl.UnrestrictedGuest);
  w(F.PrimaryVmExitControls, (EXIT_DEFAULT1 & ~4) | ExitCtl.HostAddressSpaceSize);
  w(F.VmEntryControls, ENTRY_DEFAULT1 & ~4);
  w(F.EptPointer, EPTP);
  vmx.setDefaultHostState();
  w(F.GuestCr0, 0x31); // PE | ET | NE
  w(F.GuestCr4, 0x2000); // VMXE
  w(F.GuestCr3, 0);
  const segs = [
    [F.GuestEsSelector, F.GuestEsBase, F.GuestEsLimit, F.GuestEsAccessRights, 0x10, 0xc093],
    [F.GuestCsSelector, F.GuestCsBase, F.GuestCsLimit, F.GuestCsAccessRights, 0x08, 0xc09b],
    [F.GuestSsSelector, F.GuestSsBase, F.GuestSsLimit, F.GuestSsAccessRights, 0x10, 0xc093],
    [F.GuestDsSelector, F.GuestDsBase, F.GuestDsLimit, F.GuestDsAccessRights, 0x10, 0xc093],
    [F.GuestFsSelector, F.GuestFsBase, F.GuestFsLimit, F.GuestFsAccessRights, 0x10, 0xc093],
    [F.GuestGsSelector, F.GuestGsBase, F.GuestGsLimit, F.GuestGsAccessRights, 0x10, 0xc093],
  ] as const;
  for (const [sel, base, lim, ar, s, a] of segs) {
    w(sel, s);
    w(base, 0);
    w(lim, 0xffffffff);
    w(ar, a);
  }
  w(F.GuestLdtrAccessRights, 0x10000);
  w(F.GuestTrAccessRights, 0x8b);
  w(F.GuestTrLimit, 0x67);
  w(F.GuestGdtrLimit, 0x17);
  w(F.GuestGdtrBase, 0x9000);
  w(F.GuestIdtrLimit, 0x7ff);
  w(F.GuestIdtrBase, 0x8000);
  w(F.GuestRsp, 0x7000);
  w(F.GuestRip, CODE);
  w(F.GuestRflags, 2);
}

/** Assemble 32-bit code at CODE, install a recording handler that runs `onExit` then resumes. */
export function guest(b: Bench, source: string, onExit?: (reason: number) => 'stop' | void): void {
  load(b.m, CODE, assemble(`.code32\n${source}`, CODE));
  b.vmx.setExitHandler((vmx) => {
    b.exits.push({
      reason: vmx.exitReason,
      qual: vmx.exitQualification,
      len: vmx.exitInstructionLength,
      rip: b.m.cpu.rip,
    });
    const r = onExit?.(vmx.exitReason);
    if (r === 'stop' || b.exits.length > 200) {
      vmx.stopGuest();
      b.m.done = true;
    }
  });
}

/** Install a protected-mode IDT gate (32-bit interrupt gate, selector 8) at IDT base 0x8000. */
export function idtGate(b: Bench, vector: number, handler: number): void {
  const a = 0x8000 + vector * 8;
  const d = b.m.ram;
  d[a] = handler & 0xff;
  d[a + 1] = (handler >> 8) & 0xff;
  d[a + 2] = 8;
  d[a + 3] = 0;
  d[a + 4] = 0;
  d[a + 5] = 0x8e;
  d[a + 6] = (handler >> 16) & 0xff;
  d[a + 7] = (handler >> 24) & 0xff;
}
