/**
 * The VMCS the tutorial's hypervisor writes (TUTORIAL-SYSTEM.md "The reference hypervisor's VMX
 * set-up"): controls computed from the capability MSRs as real hypervisors do, CR0/CR4 masks and
 * shadows, the MSR bitmap, and the vCPU's first state (real mode at 0000:8000, or the flat 32-bit
 * state a Multiboot loader leaves).
 */
import { hex } from '../../src/core/addresses.js';
import { CR0, CR4 } from '../../src/x86/regs.js';
import {
  EntryCtl,
  ExitCtl,
  MsrBitmap,
  PinCtl,
  Proc2Ctl,
  ProcCtl,
  VmcsField as F,
  VmxMsr,
} from '../../src/x86/vmx.js';
import type { Vmx } from '../vmx/api.js';

/** The controls of the tutorial set-up (before the capability MSRs adjust them). */
export const DESIRED = {
  // Virtual NMIs: the guest's NMI blocking is virtual and NMI-window exiting is allowed (SDM 25.3).
  pin: PinCtl.ExternalInterruptExiting | PinCtl.NmiExiting | PinCtl.VirtualNmis,
  proc: ProcCtl.UnconditionalIoExiting | ProcCtl.UseMsrBitmaps | ProcCtl.ActivateSecondaryControls,
  proc2: Proc2Ctl.EnableEpt | Proc2Ctl.UnrestrictedGuest | Proc2Ctl.EnableRdtscp | Proc2Ctl.EnableInvpcid,
  exit:
    ExitCtl.HostAddressSpaceSize |
    ExitCtl.AcknowledgeInterruptOnExit |
    ExitCtl.SavePat |
    ExitCtl.LoadPat |
    ExitCtl.SaveEfer |
    ExitCtl.LoadEfer,
  entry: EntryCtl.LoadPat | EntryCtl.LoadEfer,
} as const;

/** Controls the policy cannot do without (RDTSCP and INVPCID are only enabled when offered). */
const REQUIRED_PROC2 = Proc2Ctl.EnableEpt | Proc2Ctl.UnrestrictedGuest;
/** Virtual NMIs only when offered: without them a blocked guest NMI waits for a later exit. */
const REQUIRED_PIN = PinCtl.ExternalInterruptExiting | PinCtl.NmiExiting;

/** CR0 bits the host owns (guest/host mask) and what the guest reads for them (read shadow). */
export const CR0_MASK = CR0.NE | CR0.NW | CR0.CD;
export const CR0_SHADOW = CR0.NE;
export const CR4_MASK = CR4.VMXE;
export const CR4_SHADOW = 0;

/** MSRs the policy emulates (everything else in the bitmap ranges reaches the CPU directly). */
export const IA32_APIC_BASE = 0x1b;
export const X2APIC_FIRST = 0x800;
export const X2APIC_LAST = 0x83f;

/** The power-on PAT (SDM Vol. 3A 12.12.4): WB, WT, UC-, UC repeated. */
export const PAT_DEFAULT = 0x0007_0406_0007_0406n;

/**
 * A control value as SDM Vol. 3C A.3-A.5 prescribe: bits that must be 1 (allowed-0 settings, low
 * half of the capability MSR) set, bits that may not be 1 (allowed-1, high half) cleared. Returns
 * the value and the desired bits the CPU does not offer.
 */
export function adjustControls(capability: bigint, desired: number): { value: number; missing: number } {
  const must1 = Number(capability & 0xffff_ffffn);
  const may1 = Number((capability >> 32n) & 0xffff_ffffn);
  const value = ((desired | must1) & may1) >>> 0;
  return { value, missing: (desired & ~may1) >>> 0 };
}

export interface Controls {
  pin: number;
  proc: number;
  proc2: number;
  exit: number;
  entry: number;
}

/**
 * Compute the five control fields from the TRUE capability MSRs; throws naming a missing control.
 * `extra`: controls the experiment settings add (required: an unoffered one is an error).
 * `asDesired`: write the desired values without consulting the capability MSRs (an experiment:
 * VM entry then checks them, SDM 26.2.1, and fails with VM-instruction error 7 where they violate).
 */
export function computeControls(vmx: Vmx, extra?: Controls, asDesired = false): Controls {
  const x = extra ?? { pin: 0, proc: 0, proc2: 0, exit: 0, entry: 0 };
  if (asDesired) {
    return {
      pin: (DESIRED.pin | x.pin) >>> 0,
      proc: (DESIRED.proc | x.proc) >>> 0,
      proc2: (DESIRED.proc2 | x.proc2) >>> 0,
      exit: (DESIRED.exit | x.exit) >>> 0,
      entry: (DESIRED.entry | x.entry) >>> 0,
    };
  }
  const cap = (msr: number): bigint => {
    const v = vmx.readCapability(msr);
    if (v === undefined) throw new Error(`the VMX model has no capability MSR ${hex(msr)}`);
    return v;
  };
  const adj = (what: string, msr: number, desired: number, required = desired) => {
    const r = adjustControls(cap(msr), desired);
    if (r.missing & required)
      throw new Error(`the VMX model does not offer the ${what} controls ${hex(r.missing & required)}`);
    return r.value;
  };
  return {
    pin: adj('pin-based', VmxMsr.IA32_VMX_TRUE_PINBASED_CTLS, DESIRED.pin | x.pin, REQUIRED_PIN | x.pin),
    proc: adj('primary processor-based', VmxMsr.IA32_VMX_TRUE_PROCBASED_CTLS, DESIRED.proc | x.proc),
    // The secondary controls have no TRUE MSR: all bits are default0 (A.3.3).
    proc2: adj(
      'secondary processor-based',
      VmxMsr.IA32_VMX_PROCBASED_CTLS2,
      DESIRED.proc2 | x.proc2,
      REQUIRED_PROC2 | x.proc2,
    ),
    exit: adj('VM-exit', VmxMsr.IA32_VMX_TRUE_EXIT_CTLS, DESIRED.exit | x.exit),
    entry: adj('VM-entry', VmxMsr.IA32_VMX_TRUE_ENTRY_CTLS, DESIRED.entry | x.entry),
  };
}

/** The MSR bitmap page: read and write intercepts for IA32_APIC_BASE and the x2APIC registers. */
export function msrBitmapPage(): Uint8Array {
  const page = new Uint8Array(4096);
  const set = (msr: number) => {
    for (const base of [MsrBitmap.READ_LOW, MsrBitmap.WRITE_LOW]) page[base + (msr >> 3)]! |= 1 << (msr & 7);
  };
  set(IA32_APIC_BASE);
  for (let m = X2APIC_FIRST; m <= X2APIC_LAST; m++) set(m);
  return page;
}

/** The vCPU's first state. */
export type GuestStart =
  | { mode: 'real'; ip: number }
  /** Flat 32-bit protected mode, paging off (Multiboot 3.2), with a GDT at `gdt` (null, 0x08 code, 0x10 data). */
  | { mode: 'protected'; ip: number; gdt: number };

/** The 3-entry GDT the protected-mode start refers to. */
export function flatGdt(): Uint8Array {
  const g = new Uint8Array(24);
  const dv = new DataView(g.buffer);
  dv.setUint32(8, 0x0000ffff, true);
  dv.setUint32(12, 0x00cf9b00, true);
  dv.setUint32(16, 0x0000ffff, true);
  dv.setUint32(20, 0x00cf9300, true);
  return g;
}

const SEGMENTS = [
  [F.GuestEsSelector, F.GuestEsBase, F.GuestEsLimit, F.GuestEsAccessRights],
  [F.GuestCsSelector, F.GuestCsBase, F.GuestCsLimit, F.GuestCsAccessRights],
  [F.GuestSsSelector, F.GuestSsBase, F.GuestSsLimit, F.GuestSsAccessRights],
  [F.GuestDsSelector, F.GuestDsBase, F.GuestDsLimit, F.GuestDsAccessRights],
  [F.GuestFsSelector, F.GuestFsBase, F.GuestFsLimit, F.GuestFsAccessRights],
  [F.GuestGsSelector, F.GuestGsBase, F.GuestGsLimit, F.GuestGsAccessRights],
] as const;
const CS = 1;

/** Access rights (SDM 24.4.1): present, S=1, type; 0xC000 adds G and D/B. */
const AR_CODE16 = 0x9b;
const AR_DATA16 = 0x93;
const AR_CODE32 = 0xc09b;
const AR_DATA32 = 0xc093;
const AR_TSS_BUSY = 0x8b;
const AR_UNUSABLE = 0x10000;

export interface VmcsSetup {
  controls: Controls;
  eptp: number;
  msrBitmap: number;
  start: GuestStart;
  /** Experiment settings (experiments.ts); the tutorial's values when absent. */
  exceptionBitmap?: number;
  pfErrorCodeMask?: number;
  pfErrorCodeMatch?: number;
  /** VMX-preemption timer value (SDM 24.4.2), written when the pin control is on. */
  preemptionTimer?: number;
}

/** Write every control, host and guest field; returns the first failing VMWRITE as an error. */
export function writeVmcs(vmx: Vmx, s: VmcsSetup): void {
  const w = (field: number, value: number | bigint) => {
    const e = vmx.vmwrite(field, value);
    if (e !== 0) throw new Error(`VMWRITE ${hex(field, 4)} failed with VM-instruction error ${e}`);
  };
  const c = s.controls;
  w(F.PinBasedVmExecControls, c.pin);
  w(F.PrimaryProcBasedVmExecControls, c.proc);
  w(F.SecondaryProcBasedVmExecControls, c.proc2);
  w(F.PrimaryVmExitControls, c.exit);
  w(F.VmEntryControls, c.entry);
  w(F.ExceptionBitmap, s.exceptionBitmap ?? 0);
  w(F.PageFaultErrorCodeMask, s.pfErrorCodeMask ?? 0);
  w(F.PageFaultErrorCodeMatch, s.pfErrorCodeMatch ?? 0);
  if (s.preemptionTimer !== undefined) w(F.VmxPreemptionTimerValue, s.preemptionTimer);
  w(F.Cr3TargetCount, 0);
  w(F.MsrBitmap, s.msrBitmap);
  w(F.EptPointer, s.eptp);
  w(F.Cr0GuestHostMask, CR0_MASK);
  w(F.Cr0ReadShadow, CR0_SHADOW);
  w(F.Cr4GuestHostMask, CR4_MASK);
  w(F.Cr4ReadShadow, CR4_SHADOW);
  w(F.VmEntryInterruptionInfo, 0);
  vmx.setDefaultHostState();

  const real = s.start.mode === 'real';
  for (const [i, [sel, base, limit, ar]] of SEGMENTS.entries()) {
    if (real) {
      w(sel, 0);
      w(base, 0);
      w(limit, 0xffff);
      w(ar, i === CS ? AR_CODE16 : AR_DATA16);
    } else {
      w(sel, i === CS ? 0x08 : 0x10);
      w(base, 0);
      w(limit, 0xffffffff);
      w(ar, i === CS ? AR_CODE32 : AR_DATA32);
    }
  }
  w(F.GuestLdtrSelector, 0);
  w(F.GuestLdtrBase, 0);
  w(F.GuestLdtrLimit, 0);
  w(F.GuestLdtrAccessRights, AR_UNUSABLE);
  w(F.GuestTrSelector, 0);
  w(F.GuestTrBase, 0);
  w(F.GuestTrLimit, 0xffff);
  w(F.GuestTrAccessRights, AR_TSS_BUSY);
  if (s.start.mode === 'protected') {
    w(F.GuestGdtrBase, s.start.gdt);
    w(F.GuestGdtrLimit, 0x17);
  } else {
    w(F.GuestGdtrBase, 0);
    w(F.GuestGdtrLimit, 0xffff);
  }
  w(F.GuestIdtrBase, 0);
  w(F.GuestIdtrLimit, 0xffff);
  // Real mode: CR0 = ET|NE as the tutorial's vCPU starts (unrestricted guest allows PE=PG=0).
  w(F.GuestCr0, CR0.ET | CR0.NE | (real ? 0 : CR0.PE));
  w(F.GuestCr3, 0);
  w(F.GuestCr4, CR4.VMXE);
  w(F.GuestDr7, 0x400);
  w(F.GuestIa32Debugctl, 0);
  w(F.GuestIa32Pat, PAT_DEFAULT);
  w(F.GuestIa32Efer, 0);
  w(F.GuestIa32SysenterCs, 0);
  w(F.GuestIa32SysenterEsp, 0);
  w(F.GuestIa32SysenterEip, 0);
  w(F.GuestRsp, 0);
  w(F.GuestRip, s.start.ip);
  w(F.GuestRflags, 2);
  w(F.GuestInterruptibilityState, 0);
  w(F.GuestActivityState, 0);
  w(F.GuestPendingDebugExceptions, 0);
}
