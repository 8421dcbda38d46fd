/**
 * The VMX capability model (SDM Vol. 3C Appendix A): the values of the IA32_VMX_* MSRs, derived
 * from the plugin settings. A control may be set only where its allowed-1 bit is 1 and cleared
 * only where its allowed-0 bit is 0; this model advertises exactly the controls it implements.
 */
import { EPT_VPID_CAP, EPT_VPID_CAP_HI } from '../../src/x86/ept.js';
import { CR0, CR4 } from '../../src/x86/regs.js';
import {
  ENTRY_DEFAULT1,
  EXIT_DEFAULT1,
  EntryCtl,
  ExitCtl,
  PIN_DEFAULT1,
  PROC_DEFAULT1,
  PinCtl,
  Proc2Ctl,
  ProcCtl,
  VmxBasic,
  VmxMisc,
  VmxMsr,
} from '../../src/x86/vmx.js';
import { VMCS_ENUM_MAX_INDEX } from './vmcs.js';

/** A control MSR: bits that must be 1 (allowed-0 settings, low half) and bits that may be 1 (high half). */
export interface ControlCaps {
  must1: number;
  may1: number;
}

export interface VmxCapsConfig {
  revisionId: number;
  /** IA32_VMX_MISC[4:0]. */
  preemptionTimerRate: number;
  /** IA32_VMX_MISC bit 29. */
  vmwriteAnyField: boolean;
  /** EPT is offered only when a nested-paging plugin is wired. */
  ept: boolean;
  unrestrictedGuest: boolean;
  vpid: boolean;
  /** Controls to hide (cleared from allowed-1), by SDM name, e.g. "HltExiting". */
  hide: readonly string[];
}

/** Controls this model implements (allowed-1), besides the default1 bits. */
export const IMPLEMENTED = {
  pin:
    PinCtl.ExternalInterruptExiting | PinCtl.NmiExiting | PinCtl.VirtualNmis | PinCtl.ActivatePreemptionTimer,
  proc:
    ProcCtl.InterruptWindowExiting |
    ProcCtl.HltExiting |
    ProcCtl.InvlpgExiting |
    ProcCtl.RdtscExiting |
    ProcCtl.Cr3LoadExiting |
    ProcCtl.Cr3StoreExiting |
    ProcCtl.Cr8LoadExiting |
    ProcCtl.Cr8StoreExiting |
    ProcCtl.NmiWindowExiting |
    ProcCtl.MovDrExiting |
    ProcCtl.UnconditionalIoExiting |
    ProcCtl.UseIoBitmaps |
    ProcCtl.MonitorTrapFlag |
    ProcCtl.UseMsrBitmaps |
    ProcCtl.ActivateSecondaryControls,
  proc2:
    Proc2Ctl.EnableEpt |
    Proc2Ctl.DescriptorTableExiting |
    Proc2Ctl.EnableRdtscp |
    Proc2Ctl.EnableVpid |
    Proc2Ctl.UnrestrictedGuest |
    Proc2Ctl.EnableInvpcid,
  exit:
    ExitCtl.SaveDebugControls |
    ExitCtl.HostAddressSpaceSize |
    ExitCtl.AcknowledgeInterruptOnExit |
    ExitCtl.SavePat |
    ExitCtl.LoadPat |
    ExitCtl.SaveEfer |
    ExitCtl.LoadEfer |
    ExitCtl.SavePreemptionTimer,
  entry: EntryCtl.LoadDebugControls | EntryCtl.Ia32eModeGuest | EntryCtl.LoadPat | EntryCtl.LoadEfer,
} as const;

/** Every control name (for the `hide` setting). */
export const CONTROL_NAMES: Record<string, { group: keyof typeof IMPLEMENTED; bit: number }> = (() => {
  const out: Record<string, { group: keyof typeof IMPLEMENTED; bit: number }> = {};
  const add = (group: keyof typeof IMPLEMENTED, o: Record<string, number>) => {
    for (const [k, v] of Object.entries(o)) if (IMPLEMENTED[group] & v) out[k] = { group, bit: v };
  };
  add('pin', PinCtl);
  add('proc', ProcCtl);
  add('proc2', Proc2Ctl);
  add('exit', ExitCtl);
  add('entry', EntryCtl);
  return out;
})();

/** CR0 and CR4 bits the CPU implements (IA32_VMX_CR0/CR4_FIXED1). */
const CR0_FIXED1 =
  CR0.PE | CR0.MP | CR0.EM | CR0.TS | CR0.ET | CR0.NE | CR0.WP | CR0.AM | CR0.NW | CR0.CD | CR0.PG;
const CR4_FIXED1 =
  CR4.TSD |
  CR4.DE |
  CR4.PSE |
  CR4.PAE |
  CR4.MCE |
  CR4.PGE |
  CR4.PCE |
  CR4.OSFXSR |
  CR4.OSXMMEXCPT |
  CR4.VMXE |
  CR4.SMEP |
  CR4.SMAP;

export class VmxCaps {
  readonly pin: ControlCaps;
  readonly proc: ControlCaps;
  readonly proc2: ControlCaps;
  readonly exit: ControlCaps;
  readonly entry: ControlCaps;
  /** The non-TRUE MSRs report the default1 bits as must-be-1 (SDM A.2). */
  readonly cr0Fixed0 = (CR0.PE | CR0.NE | CR0.PG) >>> 0;
  readonly cr0Fixed1 = CR0_FIXED1 >>> 0;
  readonly cr4Fixed0 = CR4.VMXE;
  readonly cr4Fixed1 = CR4_FIXED1;
  readonly basic: bigint;
  readonly misc: bigint;
  readonly eptVpidCap: bigint;
  readonly preemptionTimerRate: number;
  readonly vmwriteAnyField: boolean;
  /** Physical-address width for VMX structure pointers (matches CPUID.80000008H). */
  readonly physAddrWidth = 40;
  readonly cr3TargetCount = 4;

  constructor(cfg: VmxCapsConfig) {
    const hidden = { pin: 0, proc: 0, proc2: 0, exit: 0, entry: 0 };
    for (const name of cfg.hide) {
      const c = CONTROL_NAMES[name];
      if (c) hidden[c.group] |= c.bit;
    }
    if (!cfg.ept) hidden.proc2 |= Proc2Ctl.EnableEpt | Proc2Ctl.UnrestrictedGuest;
    if (!cfg.unrestrictedGuest) hidden.proc2 |= Proc2Ctl.UnrestrictedGuest;
    if (!cfg.vpid) hidden.proc2 |= Proc2Ctl.EnableVpid;
    // TRUE controls (SDM A.3-A.5): CR3 load/store exiting and the debug-control save/load may be 0.
    const truePin = PIN_DEFAULT1;
    const trueProc = PROC_DEFAULT1 & ~(ProcCtl.Cr3LoadExiting | ProcCtl.Cr3StoreExiting);
    const trueExit = EXIT_DEFAULT1 & ~ExitCtl.SaveDebugControls;
    const trueEntry = ENTRY_DEFAULT1 & ~EntryCtl.LoadDebugControls;
    const mk = (must1: number, impl: number, hide: number): ControlCaps => ({
      must1: must1 >>> 0,
      may1: ((impl | must1) & ~(hide & ~must1)) >>> 0,
    });
    this.pin = mk(truePin, IMPLEMENTED.pin, hidden.pin);
    this.proc = mk(trueProc, IMPLEMENTED.proc, hidden.proc);
    this.proc2 = mk(0, IMPLEMENTED.proc2, hidden.proc2);
    this.exit = mk(trueExit, IMPLEMENTED.exit, hidden.exit);
    this.entry = mk(trueEntry, IMPLEMENTED.entry, hidden.entry);
    this.preemptionTimerRate = cfg.preemptionTimerRate & VmxMisc.PREEMPTION_TIMER_RATE_MASK;
    this.vmwriteAnyField = cfg.vmwriteAnyField;
    this.basic =
      BigInt(cfg.revisionId & 0x7fffffff) |
      (4096n << BigInt(VmxBasic.REGION_SIZE_SHIFT)) |
      (6n << BigInt(VmxBasic.MEMORY_TYPE_SHIFT)) |
      (1n << BigInt(VmxBasic.INS_OUTS_INFO)) |
      (1n << BigInt(VmxBasic.TRUE_CTLS));
    this.misc = BigInt(
      (this.preemptionTimerRate |
        VmxMisc.STORE_LMA |
        VmxMisc.ACTIVITY_HLT |
        (this.cr3TargetCount << VmxMisc.CR3_TARGET_SHIFT) |
        (cfg.vmwriteAnyField ? VmxMisc.VMWRITE_ANY : 0)) >>>
        0,
    );
    let lo = 0;
    let hi = 0;
    if (this.proc2.may1 & Proc2Ctl.EnableEpt) {
      const C = EPT_VPID_CAP;
      lo =
        C.EXECUTE_ONLY |
        C.WALK_LENGTH_4 |
        C.MEMTYPE_UC |
        C.MEMTYPE_WB |
        C.PAGE_2M |
        C.PAGE_1G |
        C.INVEPT |
        C.ACCESS_DIRTY |
        C.INVEPT_SINGLE_CONTEXT |
        C.INVEPT_ALL_CONTEXT;
    }
    if (this.proc2.may1 & Proc2Ctl.EnableVpid) {
      const C = EPT_VPID_CAP_HI;
      hi =
        C.INVVPID |
        C.INVVPID_INDIVIDUAL_ADDRESS |
        C.INVVPID_SINGLE_CONTEXT |
        C.INVVPID_ALL_CONTEXT |
        C.INVVPID_SINGLE_CONTEXT_RETAINING_GLOBALS;
    }
    const ev = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
    this.eptVpidCap = ev;
  }

  /** RDMSR of a capability MSR (undefined: not a VMX capability MSR). */
  readMsr(msr: number): bigint | undefined {
    const ctl = (c: ControlCaps, must1 = c.must1): bigint => (BigInt(c.may1) << 32n) | BigInt(must1 >>> 0);
    switch (msr) {
      case VmxMsr.IA32_VMX_BASIC:
        return this.basic;
      case VmxMsr.IA32_VMX_PINBASED_CTLS:
        return ctl(this.pin, PIN_DEFAULT1);
      case VmxMsr.IA32_VMX_PROCBASED_CTLS:
        return ctl(this.proc, PROC_DEFAULT1);
      case VmxMsr.IA32_VMX_EXIT_CTLS:
        return ctl(this.exit, EXIT_DEFAULT1);
      case VmxMsr.IA32_VMX_ENTRY_CTLS:
        return ctl(this.entry, ENTRY_DEFAULT1);
      case VmxMsr.IA32_VMX_TRUE_PINBASED_CTLS:
        return ctl(this.pin);
      case VmxMsr.IA32_VMX_TRUE_PROCBASED_CTLS:
        return ctl(this.proc);
      case VmxMsr.IA32_VMX_TRUE_EXIT_CTLS:
        return ctl(this.exit);
      case VmxMsr.IA32_VMX_TRUE_ENTRY_CTLS:
        return ctl(this.entry);
      case VmxMsr.IA32_VMX_PROCBASED_CTLS2:
        return ctl(this.proc2);
      case VmxMsr.IA32_VMX_MISC:
        return this.misc;
      case VmxMsr.IA32_VMX_CR0_FIXED0:
        return BigInt(this.cr0Fixed0);
      case VmxMsr.IA32_VMX_CR0_FIXED1:
        return BigInt(this.cr0Fixed1);
      case VmxMsr.IA32_VMX_CR4_FIXED0:
        return BigInt(this.cr4Fixed0);
      case VmxMsr.IA32_VMX_CR4_FIXED1:
        return BigInt(this.cr4Fixed1);
      case VmxMsr.IA32_VMX_VMCS_ENUM:
        return BigInt(VMCS_ENUM_MAX_INDEX << 1);
      case VmxMsr.IA32_VMX_EPT_VPID_CAP:
        return this.eptVpidCap;
      default:
        return undefined;
    }
  }

  /** True when `value` respects a control MSR's allowed-0 and allowed-1 settings. */
  static allowed(c: ControlCaps, value: number): boolean {
    return (value & c.must1) >>> 0 === c.must1 && (value & ~c.may1) === 0;
  }
}
