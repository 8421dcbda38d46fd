/**
 * The VMX engine: VM entry with the SDM's checks (Vol. 3C 26.2 controls and host state, 26.3 guest
 * state, 26.2.1.3 event injection), VM exits from the CPU's intercept hooks with the exit
 * information of Vol. 3C 27.2, and the exit handler call. The exit path stores only the
 * exit-information fields; guest state stays in the CPU (live.ts).
 */
import type { NestedPaging } from '../../src/core/nested-paging.js';
import type { VirtualClock, Timer } from '../../src/core/clock.js';
import { SegAttr } from '../../src/x86/descriptor.js';
import { EptViolation as EptQual } from '../../src/x86/ept.js';
import { EventType, Vector } from '../../src/x86/exceptions.js';
import { CR0, CR4, EFER, RFLAGS } from '../../src/x86/regs.js';
import {
  ActivityState,
  CrQual,
  DrQual,
  DtInstrInfo,
  EXIT_REASON_ENTRY_FAILURE,
  EXIT_REASON_NAMES,
  EntryCtl,
  EntryFailureQualification,
  ExitCtl,
  ExitReason,
  INTR_TYPE_OTHER,
  Interruptibility,
  IntrInfo,
  IoInstrInfo,
  IoQual,
  MsrBitmap,
  PinCtl,
  Proc2Ctl,
  ProcCtl,
  VMCS_LINK_POINTER_NONE,
  VmInstructionError,
  VmcsField,
  VmxMisc,
} from '../../src/x86/vmx.js';
import type { X86_64 } from '../x86-64/cpu.js';
import type {
  CpuidEvent,
  CrAccessEvent,
  DescriptorTableEvent,
  DrAccessEvent,
  ExceptionEvent,
  InvlpgEvent,
  IoEvent,
  MsrEvent,
  TranslateRequest,
  VmxOpcode,
} from '../x86-64/hooks.js';
import type { EntryResult, ExitHandler, ExitStats, ExitTraceRecord, Vmx } from './api.js';
import { VmxCaps } from './caps.js';
import { buildLiveFields, fromHalves } from './live.js';
import { FIELDS, Vmcs, accessError, slotOf } from './vmcs.js';

const TWO32 = 4294967296;
const F = VmcsField;
const S = (enc: number): number => slotOf(enc);
// Exit-information slots, written directly on every exit.
const S_REASON = S(F.ExitReason);
const S_QUAL = S(F.ExitQualification);
const S_ILEN = S(F.VmExitInstructionLength);
const S_IINFO = S(F.VmExitInstructionInfo);
const S_INTR = S(F.VmExitInterruptionInfo);
const S_INTR_ERR = S(F.VmExitInterruptionErrorCode);
const S_IDT = S(F.IdtVectoringInfo);
const S_IDT_ERR = S(F.IdtVectoringErrorCode);
const S_GLA = S(F.GuestLinearAddress);
const S_GPA = S(F.GuestPhysicalAddress);
const S_ENTRY_INTR = S(F.VmEntryInterruptionInfo);
const S_ENTRY_CTL = S(F.VmEntryControls);
const S_ERROR = S(F.VmInstructionError);

/** Exceptions that deliver an error code (SDM 26.2.1.3): #DF #TS #NP #SS #GP #PF #AC. */
const ERROR_CODE_VECTORS = (1 << 8) | (1 << 10) | (1 << 11) | (1 << 12) | (1 << 13) | (1 << 14) | (1 << 17);

const nowMs: () => number = typeof performance !== 'undefined' ? () => performance.now() : () => Date.now();

export interface EngineOptions {
  cpu: X86_64;
  caps: VmxCaps;
  clock: VirtualClock;
  nested?: NestedPaging | undefined;
  /** Called when an exit cannot be resumed (a second consecutive entry failure): stop the machine. */
  onFatal?: (message: string) => void;
}

export class VmxEngine implements Vmx {
  readonly vmcs = new Vmcs();
  readonly caps: VmxCaps;
  readonly cpu: X86_64;
  private readonly clock: VirtualClock;
  private readonly nested: NestedPaging | undefined;
  private readonly onFatal: (message: string) => void;
  private handler: ExitHandler | null = null;
  private _inGuest = false;
  private stopRequested = false;
  private entryFailures = 0;

  exitReason = 0;
  exitQualification = 0;
  exitInstructionLength = 0;

  // ---- controls cached at the last checked entry ----
  private pin = 0;
  private proc = 0;
  private proc2 = 0;
  private exitCtl = 0;
  private excBitmap = 0;
  private pfMask = 0;
  private pfMatch = 0;
  private cr0Mask = 0;
  private cr0Shadow = 0;
  private cr4Mask = 0;
  private cr4Shadow = 0;
  private eptp = 0;
  private ioA: Uint8Array | null = null;
  private ioAOff = 0;
  private ioB: Uint8Array | null = null;
  private ioBOff = 0;
  private msrBm: Uint8Array | null = null;
  private msrBmOff = 0;
  private cr3Targets: number[] = [];

  // ---- asynchronous exit state ----
  private readonly preemptTimer: Timer;
  private preemptDeadline = Infinity;
  private preemptExpired = false;
  /** MTF: skip the boundary right after a VM entry without injection. */
  private mtfSkip = false;
  /** The event whose delivery is in progress (IDT-vectoring information), vector -1 if none. */
  private dVec = -1;
  private dType = 0;
  private dErr = -1;
  private dLen = 0;
  private dFirst = false;
  /** The exception VM entry injected, (type << 8) | vector, until delivered: not in the bitmap's reach. */
  private injException = -1;

  // ---- statistics ----
  private readonly counts = new Float64Array(72);
  private readonly times = new Float64Array(72);
  private entryFailureCount = 0;
  private timing = false;
  private trace: ((r: ExitTraceRecord) => void) | null = null;
  private readonly traceRec: ExitTraceRecord = {
    reason: 0,
    qualification: 0,
    rip: 0,
    instructionLength: 0,
    instructionInfo: -1,
    guestLinear: -1,
    guestPhysical: -1,
    interruptionInfo: 0,
    interruptionErrorCode: -1,
    idtVectoringInfo: 0,
    idtVectoringErrorCode: -1,
  };

  constructor(o: EngineOptions) {
    this.cpu = o.cpu;
    this.caps = o.caps;
    this.clock = o.clock;
    this.nested = o.nested;
    this.onFatal = o.onFatal ?? (() => {});
    buildLiveFields(this.cpu, this.vmcs);
    this.vmcs.set64(F.VmcsLinkPointer, VMCS_LINK_POINTER_NONE);
    this.preemptTimer = o.clock.createTimer('vmx-preemption-timer', () => {
      this.preemptExpired = true;
      this.cpu.eventCheck = true;
      this.cpu.halted = false;
    });
    this.wrapCpu();
  }

  get inGuest(): boolean {
    return this._inGuest;
  }

  readCapability(msr: number): bigint | undefined {
    return this.caps.readMsr(msr);
  }

  // =============================================================================================
  // VMREAD / VMWRITE
  // =============================================================================================

  private fail(error: number): number {
    this.vmcs.lo[S_ERROR] = error;
    return error;
  }

  vmread(field: number): bigint | undefined {
    const e = accessError(field, false, false);
    if (e) {
      this.fail(e);
      return undefined;
    }
    const slot = slotOf(field);
    this.vmcs.readSlot(slot);
    const v = this.vmcs;
    if (FIELDS[slot]!.width === 1 && field & 1) return BigInt(v.rdHi >>> 0);
    return (BigInt(v.rdHi >>> 0) << 32n) | BigInt(v.rdLo >>> 0);
  }

  vmread32(field: number): number {
    const slot = slotOf(field);
    if (slot < 0) return NaN;
    this.vmcs.readSlot(slot);
    return (FIELDS[slot]!.width === 1 && field & 1 ? this.vmcs.rdHi : this.vmcs.rdLo) >>> 0;
  }

  vmwrite(field: number, value: bigint | number): number {
    if (typeof value === 'number') {
      if (!Number.isSafeInteger(value)) return this.vmwrite(field, BigInt(Math.trunc(value)));
      return this.vmwrite64(field, (((value % TWO32) + TWO32) % TWO32) | 0, Math.floor(value / TWO32) | 0);
    }
    const u = BigInt.asUintN(64, value);
    return this.vmwrite64(field, Number(u & 0xffffffffn) | 0, Number(u >> 32n) | 0);
  }

  vmwrite64(field: number, lo: number, hi: number): number {
    const e = accessError(field, true, this.caps.vmwriteAnyField);
    if (e) return this.fail(e);
    const slot = slotOf(field);
    const def = FIELDS[slot]!;
    if (def.width === 1 && field & 1) {
      // "High" access: the upper 32 bits only.
      this.vmcs.readSlot(slot);
      this.vmcs.writeSlot(slot, this.vmcs.rdLo, lo);
    } else this.vmcs.writeSlot(slot, lo, hi);
    if (field === F.GuestRip) this.ripDirty = true;
    else if (def.type !== 1) this.vmcs.dirty = true;
    return 0;
  }

  private ripDirty = false;

  vmclear(): void {
    if (this.vmcs.isLive) this.leaveLive();
    this._inGuest = false;
    this.vmcs.launched = false;
    this.vmcs.dirty = true;
  }

  /** Copy the live guest state into the VMCS store (the vCPU no longer owns the CPU). */
  private leaveLive(): void {
    const v = this.vmcs;
    for (let s = 0; s < FIELDS.length; s++) {
      if (v.live[s] == null) continue;
      v.live[s]!.read(v);
      v.lo[s] = v.rdLo;
      v.hi[s] = v.rdHi;
    }
    v.isLive = false;
  }

  // =============================================================================================
  // VM entry
  // =============================================================================================

  launch(): EntryResult {
    if (this.vmcs.launched)
      return { kind: 'vmfail', error: this.fail(VmInstructionError.VmlaunchNonClearVmcs) };
    return this.enter(true);
  }

  resume(): EntryResult {
    if (!this.vmcs.launched)
      return { kind: 'vmfail', error: this.fail(VmInstructionError.VmresumeNonLaunchedVmcs) };
    return this.enter(false);
  }

  private enter(launch: boolean): EntryResult {
    const v = this.vmcs;
    if (v.dirty || !v.isLive) {
      const ctl = this.checkControls();
      if (ctl) return { kind: 'vmfail', error: this.fail(ctl) };
      const host = this.checkHost();
      if (host) return { kind: 'vmfail', error: this.fail(host) };
      const guest = this.checkGuest();
      if (guest >= 0) return this.entryFailure(ExitReason.EntryFailureGuestState, guest);
      this.loadControls();
      if (!v.isLive) this.loadGuest();
      v.dirty = false;
    } else if (this.ripDirty && !this.ripValid()) {
      return this.entryFailure(ExitReason.EntryFailureGuestState, EntryFailureQualification.Default);
    }
    this.ripDirty = false;
    if (launch) v.launched = true;
    this.entryFailures = 0;
    this.stopRequested = false;
    this._inGuest = true;
    this.injectOnEntry();
    this.armPreemptionTimer();
    this.mtfSkip = true;
    if (this.proc & ProcCtl.MonitorTrapFlag) this.cpu.eventCheck = true;
    return ENTERED;
  }

  private entryFailure(reason: number, qual: number): EntryResult {
    const v = this.vmcs;
    const full = (reason | EXIT_REASON_ENTRY_FAILURE) >>> 0;
    v.lo[S_REASON] = full | 0;
    v.lo[S_QUAL] = qual;
    v.hi[S_QUAL] = 0;
    this.exitReason = full;
    this.exitQualification = qual;
    this.entryFailureCount++;
    this._inGuest = false;
    return { kind: 'entry-failure', exitReason: full, qualification: qual };
  }

  /** 26.2.1: VM-execution, exit and entry control fields. Returns 0 or VM-instruction error 7. */
  private checkControls(): number {
    const v = this.vmcs;
    const c = this.caps;
    const bad = VmInstructionError.EntryInvalidControlFields;
    const pin = v.get32(F.PinBasedVmExecControls);
    const proc = v.get32(F.PrimaryProcBasedVmExecControls);
    const proc2 = proc & ProcCtl.ActivateSecondaryControls ? v.get32(F.SecondaryProcBasedVmExecControls) : 0;
    const exit = v.get32(F.PrimaryVmExitControls);
    const entry = v.get32(F.VmEntryControls);
    if (!VmxCaps.allowed(c.pin, pin) || !VmxCaps.allowed(c.proc, proc) || !VmxCaps.allowed(c.proc2, proc2))
      return bad;
    if (!VmxCaps.allowed(c.exit, exit) || !VmxCaps.allowed(c.entry, entry)) return bad;
    if (v.get32(F.Cr3TargetCount) > c.cr3TargetCount) return bad;
    const pageOk = (enc: number) => {
      const a = v.getNum(enc);
      return a % 4096 === 0 && a < 2 ** c.physAddrWidth;
    };
    if (proc & ProcCtl.UseIoBitmaps && (!pageOk(F.IoBitmapA) || !pageOk(F.IoBitmapB))) return bad;
    if (proc & ProcCtl.UseMsrBitmaps && !pageOk(F.MsrBitmap)) return bad;
    if (!(pin & PinCtl.NmiExiting) && pin & PinCtl.VirtualNmis) return bad;
    if (!(pin & PinCtl.VirtualNmis) && proc & ProcCtl.NmiWindowExiting) return bad;
    if (proc2 & Proc2Ctl.EnableVpid && v.get32(F.VirtualProcessorId) === 0) return bad;
    if (proc2 & Proc2Ctl.EnableEpt) {
      // EPTP (SDM 24.6.11): memory type UC(0)/WB(6), walk length 4, bits 11:7 reserved, address width.
      const lo = v.get32(F.EptPointer);
      const mt = lo & 7;
      if (mt !== 0 && mt !== 6) return bad;
      if (((lo >>> 3) & 7) !== 3) return bad;
      if (lo & 0xf80) return bad;
      if (v.getNum(F.EptPointer) >= 2 ** c.physAddrWidth) return bad;
    }
    if (proc2 & Proc2Ctl.UnrestrictedGuest && !(proc2 & Proc2Ctl.EnableEpt)) return bad;
    if (!(pin & PinCtl.ActivatePreemptionTimer) && exit & ExitCtl.SavePreemptionTimer) return bad;
    // MSR-load/store areas are not implemented: their counts must be 0.
    if (v.get32(F.VmExitMsrStoreCount) || v.get32(F.VmExitMsrLoadCount) || v.get32(F.VmEntryMsrLoadCount))
      return bad;
    // 26.2.1.3 event injection.
    const info = v.get32(F.VmEntryInterruptionInfo);
    if (info & IntrInfo.VALID) {
      const type = (info & IntrInfo.TYPE_MASK) >>> IntrInfo.TYPE_SHIFT;
      const vec = info & IntrInfo.VECTOR_MASK;
      if (type === 1) return bad;
      if (type === INTR_TYPE_OTHER && (!(c.proc.may1 & ProcCtl.MonitorTrapFlag) || vec !== 0)) return bad;
      if (type === EventType.Nmi && vec !== Vector.NMI) return bad;
      if (type === EventType.HardwareException && vec > 31) return bad;
      const ug = (proc2 & Proc2Ctl.UnrestrictedGuest) !== 0;
      const pe = (v.get32(F.GuestCr0) & CR0.PE) !== 0;
      const wantsCode =
        (!ug || pe) && type === EventType.HardwareException && ((ERROR_CODE_VECTORS >>> vec) & 1) === 1;
      if (((info & IntrInfo.DELIVER_ERROR_CODE) !== 0) !== wantsCode) return bad;
      if (info & 0x7ffff000) return bad;
      if (info & IntrInfo.DELIVER_ERROR_CODE && v.get32(F.VmEntryExceptionErrorCode) & 0xffff8000) return bad;
      if (
        type === EventType.SoftwareInterrupt ||
        type === EventType.SoftwareException ||
        type === EventType.PrivilegedSoftwareException
      ) {
        const len = v.get32(F.VmEntryInstructionLength);
        const min = this.caps.misc & BigInt(VmxMisc.INJECT_LEN0) ? 0 : 1;
        if (len < min || len > 15) return bad;
      }
    }
    return 0;
  }

  /** 26.2.2 and 26.2.3: host control registers, MSRs, segment and descriptor-table registers, RIP. */
  private checkHost(): number {
    const v = this.vmcs;
    const c = this.caps;
    const bad = VmInstructionError.EntryInvalidHostStateFields;
    const cr0 = v.get32(F.HostCr0) >>> 0;
    const cr4 = v.get32(F.HostCr4) >>> 0;
    if (v.get64(F.HostCr0) >> 32n || v.get64(F.HostCr4) >> 32n) return bad;
    if ((cr0 & c.cr0Fixed0) >>> 0 !== c.cr0Fixed0 || cr0 & ~c.cr0Fixed1) return bad;
    if ((cr4 & c.cr4Fixed0) >>> 0 !== c.cr4Fixed0 || cr4 & ~c.cr4Fixed1) return bad;
    if (v.getNum(F.HostCr3) >= 2 ** c.physAddrWidth) return bad;
    const exit = v.get32(F.PrimaryVmExitControls);
    const entry = v.get32(F.VmEntryControls);
    if (exit & ExitCtl.LoadPat && !patValid(v.get64(F.HostIa32Pat))) return bad;
    if (exit & ExitCtl.LoadEfer) {
      const efer = v.get64(F.HostIa32Efer);
      if (efer & ~BigInt(EFER.SCE | EFER.LME | EFER.LMA | EFER.NXE)) return bad;
      const lma = (efer & BigInt(EFER.LMA)) !== 0n;
      const lme = (efer & BigInt(EFER.LME)) !== 0n;
      if (lma !== ((exit & ExitCtl.HostAddressSpaceSize) !== 0) || lme !== lma) return bad;
    }
    for (const sel of [
      F.HostEsSelector,
      F.HostCsSelector,
      F.HostSsSelector,
      F.HostDsSelector,
      F.HostFsSelector,
    ])
      if (v.get32(sel) & 7) return bad;
    if (v.get32(F.HostGsSelector) & 7 || v.get32(F.HostTrSelector) & 7) return bad;
    if (v.get32(F.HostCsSelector) === 0 || v.get32(F.HostTrSelector) === 0) return bad;
    const hostLong = (exit & ExitCtl.HostAddressSpaceSize) !== 0;
    if (!hostLong && v.get32(F.HostSsSelector) === 0) return bad;
    // The host (the VMM) runs in 64-bit mode: the host address-space size control must be 1.
    if (!hostLong) return bad;
    if (!(cr4 & CR4.PAE)) return bad;
    for (const b of [F.HostFsBase, F.HostGsBase, F.HostTrBase, F.HostGdtrBase, F.HostIdtrBase, F.HostRip])
      if (!canonical(v.get64(b))) return bad;
    if (!canonical(v.get64(F.HostIa32SysenterEsp)) || !canonical(v.get64(F.HostIa32SysenterEip))) return bad;
    void entry;
    return 0;
  }

  /** 26.3.1: guest-state checks. Returns -1, or the entry-failure exit qualification. */
  private checkGuest(): number {
    const v = this.vmcs;
    const c = this.caps;
    const D = EntryFailureQualification.Default;
    const proc = v.get32(F.PrimaryProcBasedVmExecControls);
    const proc2 = proc & ProcCtl.ActivateSecondaryControls ? v.get32(F.SecondaryProcBasedVmExecControls) : 0;
    const entry = v.get32(F.VmEntryControls);
    const ug = (proc2 & Proc2Ctl.UnrestrictedGuest) !== 0;
    const ia32e = (entry & EntryCtl.Ia32eModeGuest) !== 0;
    // 26.3.1.1 control registers, debug registers, MSRs.
    if (v.get64(F.GuestCr0) >> 32n || v.get64(F.GuestCr4) >> 32n) return D;
    const cr0 = v.get32(F.GuestCr0) >>> 0;
    const cr4 = v.get32(F.GuestCr4) >>> 0;
    const fixed0 = ug ? c.cr0Fixed0 & ~(CR0.PE | CR0.PG) : c.cr0Fixed0;
    if ((cr0 & fixed0) >>> 0 !== fixed0 >>> 0 || cr0 & ~c.cr0Fixed1) return D;
    if (cr0 & CR0.PG && !(cr0 & CR0.PE)) return D;
    if ((cr4 & c.cr4Fixed0) >>> 0 !== c.cr4Fixed0 || cr4 & ~c.cr4Fixed1) return D;
    if (ia32e && (!(cr0 & CR0.PG) || !(cr4 & CR4.PAE))) return D;
    if (!ia32e && cr4 & CR4.PCIDE) return D;
    if (v.getNum(F.GuestCr3) >= 2 ** c.physAddrWidth) return D;
    if (entry & EntryCtl.LoadDebugControls && v.get64(F.GuestDr7) >> 32n) return D;
    if (!canonical(v.get64(F.GuestIa32SysenterEsp)) || !canonical(v.get64(F.GuestIa32SysenterEip))) return D;
    if (entry & EntryCtl.LoadPat && !patValid(v.get64(F.GuestIa32Pat))) return D;
    if (entry & EntryCtl.LoadEfer) {
      const efer = v.get64(F.GuestIa32Efer);
      if (efer & ~BigInt(EFER.SCE | EFER.LME | EFER.LMA | EFER.NXE)) return D;
      if (((efer & BigInt(EFER.LMA)) !== 0n) !== ia32e) return D;
      if (cr0 & CR0.PG && ((efer & BigInt(EFER.LME)) !== 0n) !== ia32e) return D;
    }
    // 26.3.1.2 segment registers.
    const rflags = v.getNum(F.GuestRflags);
    const v86 = (rflags & RFLAGS.VM) !== 0;
    const ar = (enc: number) => v.get32(enc);
    const csAr = ar(F.GuestCsAccessRights);
    const ssAr = ar(F.GuestSsAccessRights);
    const trSel = v.get32(F.GuestTrSelector);
    if (trSel & 4) return D;
    const ldtrAr = ar(F.GuestLdtrAccessRights);
    if (!(ldtrAr & SegAttr.UNUSABLE) && v.get32(F.GuestLdtrSelector) & 4) return D;
    if (!v86 && !ug && (v.get32(F.GuestSsSelector) & 3) !== (v.get32(F.GuestCsSelector) & 3)) return D;
    if (v86) {
      for (const [sel, base, lim, a] of SEGS) {
        if (v.getNum(base) !== v.get32(sel) * 16 || v.get32(lim) !== 0xffff || ar(a) !== 0xf3) return D;
      }
    } else {
      for (const [, , lim, a] of SEGS) {
        const x = ar(a);
        if (x & SegAttr.UNUSABLE && a !== F.GuestCsAccessRights) continue;
        if (x & 0xfffe0f00) return D; // reserved bits 11:8, 31:17
        const limit = v.get32(lim) >>> 0;
        if ((limit & 0xfff) !== 0xfff && x & SegAttr.G) return D;
        if (limit & 0xfff00000 && !(x & SegAttr.G)) return D;
        if (!(x & SegAttr.P) || !(x & SegAttr.S)) return D;
      }
      const csType = csAr & 0xf;
      if (!(csType === 9 || csType === 11 || csType === 13 || csType === 15 || (ug && csType === 3)))
        return D;
      const csDpl = (csAr >> 5) & 3;
      const ssDpl = (ssAr >> 5) & 3;
      if (csType === 3 && csDpl !== 0) return D;
      if ((csType === 9 || csType === 11) && csDpl !== ssDpl) return D;
      if ((csType === 13 || csType === 15) && csDpl > ssDpl) return D;
      if (ia32e && csAr & SegAttr.L && csAr & SegAttr.DB) return D;
      if (!(ssAr & SegAttr.UNUSABLE)) {
        const t = ssAr & 0xf;
        if (t !== 3 && t !== 7) return D;
      }
      if (!ug && ssDpl !== (v.get32(F.GuestSsSelector) & 3)) return D;
      if (!(cr0 & CR0.PE) && ssDpl !== 0) return D;
      for (const a of [
        F.GuestDsAccessRights,
        F.GuestEsAccessRights,
        F.GuestFsAccessRights,
        F.GuestGsAccessRights,
      ]) {
        const x = ar(a);
        if (x & SegAttr.UNUSABLE) continue;
        if (!(x & SegAttr.ACCESSED)) return D;
        if (x & SegAttr.CODE && !(x & SegAttr.RW)) return D;
      }
    }
    // TR and LDTR.
    const trAr = ar(F.GuestTrAccessRights);
    const trType = trAr & 0xf;
    if (trAr & SegAttr.UNUSABLE || trAr & SegAttr.S || !(trAr & SegAttr.P)) return D;
    if (!(trType === 11 || (!ia32e && trType === 3))) return D;
    if (!(ldtrAr & SegAttr.UNUSABLE) && ((ldtrAr & 0xf) !== 2 || ldtrAr & SegAttr.S || !(ldtrAr & SegAttr.P)))
      return D;
    // Base addresses.
    for (const b of [F.GuestTrBase, F.GuestFsBase, F.GuestGsBase, F.GuestGdtrBase, F.GuestIdtrBase])
      if (!canonical(v.get64(b))) return D;
    if (!(ldtrAr & SegAttr.UNUSABLE) && !canonical(v.get64(F.GuestLdtrBase))) return D;
    if (v.get64(F.GuestCsBase) >> 32n) return D;
    if (v.get32(F.GuestGdtrLimit) & 0xffff0000 || v.get32(F.GuestIdtrLimit) & 0xffff0000) return D;
    // 26.3.1.4 RIP and RFLAGS.
    if (!this.ripValidFor(ia32e, csAr)) return D;
    if (v.get64(F.GuestRflags) >> 22n || rflags & 0x8028 || !(rflags & RFLAGS.FIXED1)) return D;
    if ((ia32e || !(cr0 & CR0.PE)) && v86) return D;
    const info = v.get32(F.VmEntryInterruptionInfo);
    const injType = (info & IntrInfo.TYPE_MASK) >>> IntrInfo.TYPE_SHIFT;
    const injecting = (info & IntrInfo.VALID) !== 0;
    if (injecting && injType === EventType.External && !(rflags & RFLAGS.IF)) return D;
    // 26.3.1.5 non-register state.
    const act = v.get32(F.GuestActivityState);
    if (act !== ActivityState.Active && act !== ActivityState.Hlt) return D;
    if (act === ActivityState.Hlt && ssDplOf(ssAr) !== 0) return D;
    const intr = v.get32(F.GuestInterruptibilityState);
    if (intr & ~0x1f) return D;
    const sti = (intr & Interruptibility.BlockingBySti) !== 0;
    const movss = (intr & Interruptibility.BlockingByMovSs) !== 0;
    if (sti && movss) return D;
    if (!(rflags & RFLAGS.IF) && sti) return D;
    if ((sti || movss) && act !== ActivityState.Active) return D;
    if (injecting && (injType === EventType.External || injType === EventType.Nmi) && (sti || movss))
      return D;
    if (intr & Interruptibility.BlockingBySmi) return D;
    // With "virtual NMIs" an injected NMI needs no virtual-NMI blocking; without, bit 3 may be set.
    if (
      injecting &&
      injType === EventType.Nmi &&
      v.get32(F.PinBasedVmExecControls) & PinCtl.VirtualNmis &&
      intr & Interruptibility.BlockingByNmi
    )
      return D;
    if (v.get64(F.GuestPendingDebugExceptions) & ~0x1500fn) return D;
    if (v.get64(F.VmcsLinkPointer) !== VMCS_LINK_POINTER_NONE)
      return EntryFailureQualification.VmcsLinkPointer;
    return -1;
  }

  private ripValid(): boolean {
    const entry = this.vmcs.get32(F.VmEntryControls);
    return this.ripValidFor((entry & EntryCtl.Ia32eModeGuest) !== 0, this.vmcs.get32(F.GuestCsAccessRights));
  }

  private ripValidFor(ia32e: boolean, csAr: number): boolean {
    const rip = this.vmcs.get64(F.GuestRip);
    if (!(ia32e && csAr & SegAttr.L)) return rip >> 32n === 0n;
    return canonical(rip);
  }

  /** Cache the controls and point the CPU's hooks at the exits they enable. */
  private loadControls(): void {
    const v = this.vmcs;
    this.pin = v.get32(F.PinBasedVmExecControls);
    this.proc = v.get32(F.PrimaryProcBasedVmExecControls);
    this.proc2 =
      this.proc & ProcCtl.ActivateSecondaryControls ? v.get32(F.SecondaryProcBasedVmExecControls) : 0;
    this.exitCtl = v.get32(F.PrimaryVmExitControls);
    this.excBitmap = v.get32(F.ExceptionBitmap);
    this.pfMask = v.get32(F.PageFaultErrorCodeMask);
    this.pfMatch = v.get32(F.PageFaultErrorCodeMatch);
    this.cr0Mask = v.get32(F.Cr0GuestHostMask);
    this.cr0Shadow = v.get32(F.Cr0ReadShadow);
    this.cr4Mask = v.get32(F.Cr4GuestHostMask);
    this.cr4Shadow = v.get32(F.Cr4ReadShadow);
    this.eptp = v.getNum(F.EptPointer);
    const n = v.get32(F.Cr3TargetCount);
    this.cr3Targets = [];
    for (let i = 0; i < n; i++) this.cr3Targets.push(v.getNum(F.Cr3TargetValue0 + 2 * i));
    const bus = this.cpu.bus;
    const page = (enc: number): [Uint8Array | null, number] => {
      const a = v.getNum(enc);
      const r = bus.ramAt(a);
      return r && a + 4096 <= r.base + r.size ? [r.data, a - r.base] : [null, 0];
    };
    [this.ioA, this.ioAOff] = page(F.IoBitmapA);
    [this.ioB, this.ioBOff] = page(F.IoBitmapB);
    [this.msrBm, this.msrBmOff] = page(F.MsrBitmap);
    const h = this.cpu.hooks;
    const proc = this.proc;
    h.io = proc & (ProcCtl.UnconditionalIoExiting | ProcCtl.UseIoBitmaps) ? this.onIo : null;
    h.msr = this.onMsr;
    h.cpuid = this.onCpuid;
    h.hlt = proc & ProcCtl.HltExiting ? this.onHlt : null;
    h.crAccess = this.onCr;
    h.drAccess = proc & ProcCtl.MovDrExiting ? this.onDr : null;
    h.invlpg = proc & ProcCtl.InvlpgExiting ? this.onInvlpg : null;
    h.rdtsc = proc & ProcCtl.RdtscExiting ? this.onRdtsc : null;
    h.descriptorTable = this.proc2 & Proc2Ctl.DescriptorTableExiting ? this.onDescriptorTable : null;
    // #PF with a mask/match that can mismatch exits even when bit 14 is clear (SDM 25.2).
    const pfAlways = this.excBitmap & (1 << Vector.PF) || this.pfMask !== 0 || this.pfMatch !== 0;
    h.exceptionBitmap = (this.excBitmap | (pfAlways ? 1 << Vector.PF : 0)) >>> 0;
    h.exception = h.exceptionBitmap !== 0 ? this.onException : null;
    h.externalInterrupt = this.pin & PinCtl.ExternalInterruptExiting ? this.onExternalInterrupt : null;
    h.interruptWindow = proc & ProcCtl.InterruptWindowExiting ? this.onInterruptWindow : null;
    h.translate = this.proc2 & Proc2Ctl.EnableEpt && this.nested ? this.onTranslate : null;
    h.vmxInstruction = this.onVmxInstruction;
    h.tripleFault = this.onTripleFault;
    h.boundary = this.onBoundary;
    this.cpu.flushTlb();
  }

  /** Load the guest-state area into the CPU (first entry after VMCLEAR). */
  private loadGuest(): void {
    const v = this.vmcs;
    const cpu = this.cpu;
    const st = cpu.getState();
    const seg = (sel: number, base: number, lim: number, a: number) => ({
      selector: v.get32(sel) & 0xffff,
      base: v.get64(base),
      limit: v.get32(lim) >>> 0,
      attr: v.get32(a) & 0x1f0ff,
    });
    [st.es, st.cs, st.ss, st.ds, st.fs, st.gs] = SEGS.map(([a, b, c, d]) => seg(a, b, c, d)) as [
      typeof st.es,
      typeof st.es,
      typeof st.es,
      typeof st.es,
      typeof st.es,
      typeof st.es,
    ];
    st.ldtr = seg(F.GuestLdtrSelector, F.GuestLdtrBase, F.GuestLdtrLimit, F.GuestLdtrAccessRights);
    st.tr = seg(F.GuestTrSelector, F.GuestTrBase, F.GuestTrLimit, F.GuestTrAccessRights);
    st.gdtr = { base: v.get64(F.GuestGdtrBase), limit: v.get32(F.GuestGdtrLimit) };
    st.idtr = { base: v.get64(F.GuestIdtrBase), limit: v.get32(F.GuestIdtrLimit) };
    st.cr0 = v.get64(F.GuestCr0);
    st.cr3 = v.get64(F.GuestCr3);
    st.cr4 = v.get64(F.GuestCr4);
    const entry = v.get32(F.VmEntryControls);
    if (entry & EntryCtl.LoadDebugControls) st.dr[7] = v.get64(F.GuestDr7);
    st.gpr[4] = v.get64(F.GuestRsp);
    st.rip = v.get64(F.GuestRip);
    st.rflags = v.get64(F.GuestRflags);
    st.sysenterCs = v.get64(F.GuestIa32SysenterCs);
    st.sysenterEsp = v.get64(F.GuestIa32SysenterEsp);
    st.sysenterEip = v.get64(F.GuestIa32SysenterEip);
    if (entry & EntryCtl.LoadPat) st.pat = v.get64(F.GuestIa32Pat);
    const lmaBits = BigInt(EFER.LMA | EFER.LME);
    if (entry & EntryCtl.LoadEfer) st.efer = v.get64(F.GuestIa32Efer);
    else st.efer = (st.efer & ~lmaBits) | (entry & EntryCtl.Ia32eModeGuest ? lmaBits : 0n);
    const intr = v.get32(F.GuestInterruptibilityState);
    st.interruptShadow = (intr & (Interruptibility.BlockingBySti | Interruptibility.BlockingByMovSs)) !== 0;
    st.nmiBlocked = (intr & Interruptibility.BlockingByNmi) !== 0;
    st.activity = v.get32(F.GuestActivityState) === ActivityState.Hlt ? 'hlt' : 'active';
    cpu.setState(st);
    cpu.shadowBySti = (intr & Interruptibility.BlockingBySti) !== 0;
    v.isLive = true;
  }

  /** 26.6: VM-entry event injection; the valid bit is cleared at the next exit. */
  private injectOnEntry(): void {
    const v = this.vmcs;
    const info = v.lo[S_ENTRY_INTR]!;
    if (!(info & IntrInfo.VALID)) return;
    const type = (info & IntrInfo.TYPE_MASK) >>> IntrInfo.TYPE_SHIFT;
    if (type === INTR_TYPE_OTHER) return; // pending MTF: handled by the boundary hook
    const err = info & IntrInfo.DELIVER_ERROR_CODE ? v.get32(F.VmEntryExceptionErrorCode) : -1;
    const len = v.get32(F.VmEntryInstructionLength);
    const soft =
      type === EventType.SoftwareInterrupt ||
      type === EventType.SoftwareException ||
      type === EventType.PrivilegedSoftwareException;
    // Software events return past the instruction: RIP + length is what the handler sees (SDM 26.6.1.3).
    if (soft) this.cpu.rip = this.cpu.rip + len;
    // An injected exception is delivered without consulting the exception bitmap (SDM 26.6.1.1).
    this.injException = type >= EventType.HardwareException ? (type << 8) | (info & 0xff) : -1;
    this.cpu.injectEvent(info & 0xff, type as EventType, err, soft ? len : 0);
  }

  private armPreemptionTimer(): void {
    if (!(this.pin & PinCtl.ActivatePreemptionTimer)) {
      if (this.preemptDeadline !== Infinity) this.clock.cancel(this.preemptTimer);
      this.preemptDeadline = Infinity;
      return;
    }
    const value = this.vmcs.get32(F.VmxPreemptionTimerValue) >>> 0;
    const ticks = value * 2 ** this.caps.preemptionTimerRate;
    const ns = (ticks * 1000) / this.cpu.model.tscMhz;
    this.preemptDeadline = this.clock.now + ns;
    this.preemptExpired = value === 0;
    if (value === 0) this.cpu.eventCheck = true;
    else this.clock.arm(this.preemptTimer, this.preemptDeadline);
  }

  // =============================================================================================
  // VM exit
  // =============================================================================================

  /**
   * Record the common exit information and call the handler. Returns true (the CPU takes the
   * instruction as handled: the state is whatever the handler left).
   */
  private vmexit(reason: number, qual: number, ilen: number): boolean {
    // The exit handler's devices (port I/O, APIC MSRs) see the virtual time of this instruction,
    // as a bare IN/OUT does, not that of the CPU run slice's start.
    const cpu = this.cpu;
    cpu.syncClock();
    // An exit on the instruction in an STI/MOV SS shadow (or at the boundary before it) saves the
    // blocking (SDM 27.3.4): the guest interruptibility state shows it, and a resume that does not
    // skip the instruction runs it in the shadow again (advanceRip ends it).
    if (cpu.shadowInsn === cpu.icount) {
      cpu.shadow = 1;
      cpu.shadowInsn = -1;
      cpu.eventCheck = true;
    }
    const v = this.vmcs;
    this.injException = -1;
    const lo = v.lo;
    lo[S_REASON] = reason;
    lo[S_QUAL] = qual | 0;
    v.hi[S_QUAL] = qual > 0xffffffff || qual < 0 ? Math.floor(qual / TWO32) | 0 : 0;
    lo[S_ILEN] = ilen;
    this.exitReason = reason;
    this.exitQualification = qual;
    this.exitInstructionLength = ilen;
    // IDT-vectoring information (27.2.4): an event whose delivery this exit interrupted.
    if (cpu.injVector >= 0) {
      // Injected but not yet delivered: report it, so it is not lost.
      lo[S_IDT] =
        IntrInfo.VALID |
        (cpu.injType << 8) |
        cpu.injVector |
        (cpu.injError >= 0 ? IntrInfo.DELIVER_ERROR_CODE : 0) |
        0;
      lo[S_IDT_ERR] = cpu.injError;
      cpu.injVector = -1;
    } else if (this.dVec >= 0) {
      lo[S_IDT] =
        IntrInfo.VALID |
        (this.dType << 8) |
        this.dVec |
        (this.dErr >= 0 && cpu.pe ? IntrInfo.DELIVER_ERROR_CODE : 0) |
        0;
      lo[S_IDT_ERR] = this.dErr;
      if (this.dType >= EventType.SoftwareInterrupt) lo[S_ILEN] = this.dLen;
    } else lo[S_IDT] = 0;
    // Every VM exit clears the valid bit of the VM-entry interruption-information field (SDM 27.2).
    const ei = lo[S_ENTRY_INTR]!;
    if (ei < 0) lo[S_ENTRY_INTR] = ei & 0x7fffffff;
    // Saving guest state (SDM 28.3): the "IA-32e mode guest" entry control receives IA32_EFER.LMA,
    // so a guest that enters or leaves long mode without exiting can be resumed.
    const ec = lo[S_ENTRY_CTL]!;
    const lma = cpu.lma ? EntryCtl.Ia32eModeGuest : 0;
    if ((ec & EntryCtl.Ia32eModeGuest) !== lma) lo[S_ENTRY_CTL] = (ec & ~EntryCtl.Ia32eModeGuest) | lma;
    if (this.preemptDeadline !== Infinity) {
      if (this.exitCtl & ExitCtl.SavePreemptionTimer) {
        const left = Math.max(0, this.preemptDeadline - this.clock.now);
        const ticks = (left * this.cpu.model.tscMhz) / 1000;
        v.set32(F.VmxPreemptionTimerValue, Math.ceil(ticks / 2 ** this.caps.preemptionTimerRate));
      }
      this.clock.cancel(this.preemptTimer);
      this.preemptDeadline = Infinity;
    }
    this._inGuest = false;
    const r = reason & 0xffff;
    this.counts[r]++;
    if (this.trace !== null) this.traceExit(reason, qual, cpu.rip);
    const h = this.handler;
    if (h === null) {
      this.onFatal(`VM exit ${EXIT_REASON_NAMES[r] ?? r} with no exit handler`);
      cpu.requestExit();
      return true;
    }
    this.stopRequested = false;
    if (this.timing) {
      const t0 = nowMs();
      h(this);
      this.times[r] += nowMs() - t0;
    } else h(this);
    if (this.stopRequested) cpu.requestExit();
    else if (!v.dirty && v.isLive && v.launched && !this.ripDirty) this.reenter();
    else this.resumeAfterExit();
    return true;
  }

  /**
   * VMRESUME of a VMCS the handler left unchanged since the last checked entry (no VMWRITE but to
   * the exit-information fields, RIP advanced by the CPU's own rules): the 26.2/26.3 checks passed
   * on the same values and no event is to be injected (any VMWRITE of the entry
   * interruption-information field marks the VMCS dirty), so only the entry's side effects remain.
   */
  private reenter(): void {
    this.entryFailures = 0;
    this._inGuest = true;
    if (this.pin & PinCtl.ActivatePreemptionTimer) this.armPreemptionTimer();
    this.mtfSkip = true;
    if (this.proc & ProcCtl.MonitorTrapFlag) this.cpu.eventCheck = true;
  }

  /** The exit information fields valid for this exit (SDM 27.2), for --trace exits. */
  private traceExit(reason: number, qual: number, rip: number): void {
    const t = this.traceRec;
    const lo = this.vmcs.lo;
    const hi = this.vmcs.hi;
    const r = reason & 0xffff;
    const failed = (reason & EXIT_REASON_ENTRY_FAILURE) !== 0;
    t.reason = reason >>> 0;
    t.qualification = qual;
    t.rip = rip;
    t.instructionLength = failed ? 0 : lo[S_ILEN]! >>> 0;
    const stringIo = r === ExitReason.IoInstruction && (qual & IoQual.STRING) !== 0;
    t.instructionInfo =
      !failed && (stringIo || r === ExitReason.GdtrIdtrAccess || r === ExitReason.LdtrTrAccess)
        ? lo[S_IINFO]! >>> 0
        : -1;
    const ept = r === ExitReason.EptViolation || r === ExitReason.EptMisconfiguration;
    t.guestLinear =
      !failed && (stringIo || (r === ExitReason.EptViolation && qual & EptQual.LINEAR_VALID))
        ? fromHalves(lo[S_GLA]!, hi[S_GLA]!)
        : -1;
    t.guestPhysical = !failed && ept ? (hi[S_GPA]! >>> 0) * TWO32 + (lo[S_GPA]! >>> 0) : -1;
    const intr = !failed && (r === ExitReason.ExceptionOrNmi || r === ExitReason.ExternalInterrupt);
    t.interruptionInfo = intr ? lo[S_INTR]! >>> 0 : 0;
    t.interruptionErrorCode = intr && lo[S_INTR]! & IntrInfo.DELIVER_ERROR_CODE ? lo[S_INTR_ERR]! >>> 0 : -1;
    t.idtVectoringInfo = failed ? 0 : lo[S_IDT]! >>> 0;
    t.idtVectoringErrorCode =
      !failed && lo[S_IDT]! & IntrInfo.VALID && lo[S_IDT]! & IntrInfo.DELIVER_ERROR_CODE
        ? lo[S_IDT_ERR]! >>> 0
        : -1;
    this.trace!(t);
  }

  private resumeAfterExit(): void {
    for (;;) {
      const r = this.resume();
      if (r.kind === 'entered') return;
      if (r.kind === 'vmfail') {
        this.onFatal(`VMRESUME failed: VM-instruction error ${r.error}`);
        this.parkCpu();
        return;
      }
      // Entry failure: a VM exit to the handler (SDM 26.8); twice in a row means it cannot be fixed.
      if (++this.entryFailures > 1) {
        this.onFatal(`VM entry failed twice: exit reason 0x${r.exitReason.toString(16)}`);
        this.parkCpu();
        return;
      }
      this.counts[r.exitReason & 0xffff]++;
      if (this.trace !== null) this.traceExit(r.exitReason, r.qualification, this.cpu.rip);
      this.stopRequested = false;
      this.handler?.(this);
      if (this.stopRequested) {
        this.parkCpu();
        return;
      }
    }
  }

  /** The vCPU left the guest without resuming: keep the CPU from executing guest code. */
  private parkCpu(): void {
    this._inGuest = false;
    this.cpu.halted = true;
    this.cpu.requestExit();
  }

  stopGuest(): void {
    this.stopRequested = true;
  }

  setExitHandler(fn: ExitHandler): void {
    this.handler = fn;
  }

  advanceRip(): void {
    const cpu = this.cpu;
    const r = cpu.rip + this.exitInstructionLength;
    // RIP wraps at the operand size of the code segment (r is a non-negative integer outside 64-bit mode).
    cpu.rip = cpu.mode64 ? r : cpu.cs32 ? r >>> 0 : r & 0xffff;
    cpu.shadow = 0;
  }

  // ---- guest GPRs ----
  getGpr(n: number): bigint {
    return (BigInt(this.cpu.rh[n]! >>> 0) << 32n) | BigInt(this.cpu.rl[n]! >>> 0);
  }
  setGpr(n: number, v: bigint): void {
    const u = BigInt.asUintN(64, v);
    this.cpu.rl[n] = Number(u & 0xffffffffn) | 0;
    this.cpu.rh[n] = Number(u >> 32n) | 0;
  }
  getGpr32(n: number): number {
    return this.cpu.rl[n]! >>> 0;
  }
  setGpr32(n: number, v: number): void {
    this.cpu.rl[n] = v;
    this.cpu.rh[n] = 0;
  }
  setGprPart(n: number, size: 1 | 2 | 4, v: number): void {
    const rl = this.cpu.rl;
    if (size === 4) {
      rl[n] = v;
      this.cpu.rh[n] = 0;
    } else if (size === 2) rl[n] = (rl[n]! & ~0xffff) | (v & 0xffff);
    else rl[n] = (rl[n]! & ~0xff) | (v & 0xff);
  }

  setDefaultHostState(): void {
    const c = this.caps;
    this.vmwrite(F.HostCr0, (c.cr0Fixed0 | CR0.ET | CR0.WP) >>> 0);
    this.vmwrite(F.HostCr4, c.cr4Fixed0 | CR4.PAE);
    this.vmwrite(F.HostCr3, 0x1000);
    this.vmwrite(F.HostCsSelector, 0x08);
    this.vmwrite(F.HostSsSelector, 0x10);
    this.vmwrite(F.HostDsSelector, 0x10);
    this.vmwrite(F.HostEsSelector, 0x10);
    this.vmwrite(F.HostTrSelector, 0x18);
    this.vmwrite(F.HostIa32Efer, EFER.LME | EFER.LMA | EFER.SCE | EFER.NXE);
    this.vmwrite(F.HostIa32Pat, 0x0007040600070406n);
    const exit = this.vmcs.get32(F.PrimaryVmExitControls);
    this.vmwrite(F.PrimaryVmExitControls, exit | ExitCtl.HostAddressSpaceSize | this.caps.exit.must1);
  }

  // ---- statistics and tracing ----
  exitStats(): ExitStats[] {
    const out: ExitStats[] = [];
    for (let r = 0; r < this.counts.length; r++) {
      if (this.counts[r] === 0) continue;
      out.push({
        reason: r,
        name: EXIT_REASON_NAMES[r] ?? `reason ${r}`,
        count: this.counts[r]!,
        hostMs: this.times[r]!,
      });
    }
    return out;
  }

  stats(): Record<string, number | string> {
    const out: Record<string, number | string> = {};
    let total = 0;
    for (const s of this.exitStats()) {
      out[`exits.${s.name}`] = s.count;
      if (this.timing) out[`hostMs.${s.name}`] = Math.round(s.hostMs * 1000) / 1000;
      total += s.count;
    }
    out.exits = total;
    out.entryFailures = this.entryFailureCount;
    return out;
  }

  setTiming(on: boolean): void {
    this.timing = on;
  }

  setTrace(fn: ((r: ExitTraceRecord) => void) | null): void {
    this.trace = fn;
  }

  // =============================================================================================
  // CPU hooks (each decides whether the controls make the event exit, then exits)
  // =============================================================================================

  private readonly onIo = (e: IoEvent): boolean => {
    const port = e.port;
    if (this.proc & ProcCtl.UseIoBitmaps) {
      // 25.1.3: exit if the bit of any byte of the access is set (wrapping past 0xFFFF exits).
      let any = false;
      for (let p = port; p < port + e.size; p++) {
        if (p > 0xffff) {
          any = true;
          break;
        }
        const bm = p < 0x8000 ? this.ioA : this.ioB;
        const off = (p < 0x8000 ? this.ioAOff : this.ioBOff) + ((p & 0x7fff) >> 3);
        if (bm === null || (bm[off]! >> (p & 7)) & 1) {
          any = true;
          break;
        }
      }
      if (!any) return false;
    }
    const q =
      (e.size - 1) |
      (e.input ? IoQual.IN : 0) |
      (e.string ? IoQual.STRING : 0) |
      (e.rep ? IoQual.REP : 0) |
      (e.immediate ? IoQual.IMMEDIATE : 0) |
      (port << IoQual.PORT_SHIFT);
    if (e.string) {
      const cpu = this.cpu;
      const asz = cpu.asz;
      const v = this.vmcs;
      v.lo[S_IINFO] =
        ((asz === 2 ? 0 : asz === 4 ? 1 : 2) << IoInstrInfo.ADDRESS_SIZE_SHIFT) |
        ((e.input ? 0 : cpu.segOv >= 0 ? cpu.segOv : 3) << IoInstrInfo.SEGMENT_SHIFT);
      // Guest-linear address of the memory operand (27.2.1: INS: ES:rDI, OUTS: seg:rSI).
      const reg = e.input ? 7 : 6;
      const segIdx = e.input ? 0 : cpu.segOv >= 0 ? cpu.segOv : 3;
      const off =
        asz === 8
          ? fromHalves(cpu.rl[reg]!, cpu.rh[reg]!)
          : asz === 4
            ? cpu.rl[reg]! >>> 0
            : cpu.rl[reg]! & 0xffff;
      const base = fromHalves(cpu.sBaseLo[segIdx]!, cpu.mode64 ? cpu.sBaseHi[segIdx]! : 0);
      const lin = cpu.mode64 ? (segIdx >= 4 ? base : 0) + off : (base + off) % TWO32;
      v.lo[S_GLA] = (((lin % TWO32) + TWO32) % TWO32) | 0;
      v.hi[S_GLA] = Math.floor(lin / TWO32) | 0;
    }
    return this.vmexit(ExitReason.IoInstruction, q >>> 0, e.length);
  };

  private readonly onMsr = (e: MsrEvent): boolean => {
    if (this.proc & ProcCtl.UseMsrBitmaps) {
      // 25.1.3: MSRs outside the two ranges always exit; inside, the bitmap bit decides.
      const m = e.msr >>> 0;
      const bm = this.msrBm;
      let off: number;
      if (m <= MsrBitmap.LOW_LAST) off = e.write ? MsrBitmap.WRITE_LOW : MsrBitmap.READ_LOW;
      else if (m >= MsrBitmap.HIGH_FIRST && m <= MsrBitmap.HIGH_LAST)
        off = e.write ? MsrBitmap.WRITE_HIGH : MsrBitmap.READ_HIGH;
      else off = -1;
      if (off >= 0 && bm !== null) {
        const i = m & 0x1fff;
        if (((bm[this.msrBmOff + off + (i >> 3)]! >> (i & 7)) & 1) === 0) return false;
      }
    }
    return this.vmexit(e.write ? ExitReason.Wrmsr : ExitReason.Rdmsr, 0, e.length);
  };

  private readonly onCpuid = (e: CpuidEvent): boolean => this.vmexit(ExitReason.Cpuid, 0, e.length);

  private readonly onHlt = (length: number): boolean => this.vmexit(ExitReason.Hlt, 0, length);

  private readonly onInvlpg = (e: InvlpgEvent): boolean => {
    const a = this.cpu.canonicalOf(e.address);
    return this.vmexit(ExitReason.Invlpg, a, e.length);
  };

  /** RDTSC exiting (25.1.3); RDTSCP exits with it as reason 51 (RDTSCP itself is enabled by proc2). */
  private readonly onRdtsc = (aux: boolean, length: number): boolean =>
    this.vmexit(aux ? ExitReason.Rdtscp : ExitReason.Rdtsc, 0, length);

  /** Descriptor-table exiting: instruction information per 27.2.5, displacement as qualification. */
  private readonly onDescriptorTable = (e: DescriptorTableEvent): boolean => {
    const asz = e.addressSize === 2 ? 0 : e.addressSize === 4 ? 1 : 2;
    let info = (asz << DtInstrInfo.ADDRESS_SIZE_SHIFT) | (e.identity << DtInstrInfo.IDENTITY_SHIFT);
    if (e.reg >= 0) info |= DtInstrInfo.REGISTER | (e.reg << DtInstrInfo.REG1_SHIFT);
    else {
      info |=
        e.scale |
        (e.segment << DtInstrInfo.SEGMENT_SHIFT) |
        (e.index >= 0 ? e.index << DtInstrInfo.INDEX_SHIFT : DtInstrInfo.INDEX_INVALID) |
        (e.base >= 0 ? e.base << DtInstrInfo.BASE_SHIFT : DtInstrInfo.BASE_INVALID);
    }
    if (!e.ldtrTr && e.operandSize !== 2) info |= DtInstrInfo.OPERAND_SIZE_32;
    this.vmcs.lo[S_IINFO] = info | 0;
    return this.vmexit(
      e.ldtrTr ? ExitReason.LdtrTrAccess : ExitReason.GdtrIdtrAccess,
      e.reg >= 0 ? 0 : e.displacement,
      e.length,
    );
  };

  private readonly onDr = (e: DrAccessEvent): boolean =>
    this.vmexit(
      ExitReason.MovDr,
      e.dr | (e.write ? 0 : DrQual.FROM_DR) | (e.gpr << DrQual.GPR_SHIFT),
      e.length,
    );

  /** CR access: guest/host masks and read shadows (25.3), CR3/CR8 exiting (25.1.3). */
  private readonly onCr = (e: CrAccessEvent): boolean => {
    const cpu = this.cpu;
    const gprQ = e.gpr << CrQual.GPR_SHIFT;
    switch (e.kind) {
      case 'mov-from': {
        if (e.cr === 3 && this.proc & ProcCtl.Cr3StoreExiting)
          return this.vmexit(ExitReason.CrAccess, 3 | (CrQual.AccessMovFromCr << 4) | gprQ, e.length);
        if (e.cr === 8 && this.proc & ProcCtl.Cr8StoreExiting)
          return this.vmexit(ExitReason.CrAccess, 8 | (CrQual.AccessMovFromCr << 4) | gprQ, e.length);
        if (e.cr === 0 || e.cr === 4) {
          const mask = e.cr === 0 ? this.cr0Mask : this.cr4Mask;
          if (mask === 0) return false;
          const shadow = e.cr === 0 ? this.cr0Shadow : this.cr4Shadow;
          const val = ((e.cr === 0 ? cpu.cr0 : cpu.cr4) & ~mask) | (shadow & mask);
          cpu.setReg(e.gpr, cpu.mode64 ? 8 : 4, true, val, 0);
          this.skip(e.length);
          return true;
        }
        return false;
      }
      case 'mov-to': {
        const q = e.cr | (CrQual.AccessMovToCr << 4) | gprQ;
        if (e.cr === 0 || e.cr === 4) {
          const mask = e.cr === 0 ? this.cr0Mask : this.cr4Mask;
          const shadow = e.cr === 0 ? this.cr0Shadow : this.cr4Shadow;
          if ((e.valueLo ^ shadow) & mask) return this.vmexit(ExitReason.CrAccess, q, e.length);
          if (mask === 0 && !this.fixedViolation(e.cr, e.valueLo)) return false;
          const cur = e.cr === 0 ? cpu.cr0 : cpu.cr4;
          const nv = (e.valueLo & ~mask) | (cur & mask);
          if (this.fixedViolation(e.cr, nv)) cpu.gp(0);
          if (e.cr === 0) cpu.writeCr0(nv, e.valueHi);
          else cpu.writeCr4(nv, e.valueHi);
          this.skip(e.length);
          cpu.eventCheck = true;
          return true;
        }
        if (e.cr === 3 && this.proc & ProcCtl.Cr3LoadExiting) {
          const val = (e.valueHi >>> 0) * TWO32 + (e.valueLo >>> 0);
          if (!this.cr3Targets.includes(val)) return this.vmexit(ExitReason.CrAccess, q, e.length);
        }
        if (e.cr === 8 && this.proc & ProcCtl.Cr8LoadExiting)
          return this.vmexit(ExitReason.CrAccess, q, e.length);
        return false;
      }
      case 'clts':
        // CLTS exits when the host owns TS and the shadow has TS set (25.1.3).
        if (this.cr0Mask & CR0.TS && this.cr0Shadow & CR0.TS)
          return this.vmexit(ExitReason.CrAccess, CrQual.AccessClts << 4, e.length);
        if (this.cr0Mask & CR0.TS) {
          this.skip(e.length);
          return true;
        }
        return false;
      case 'lmsw': {
        // LMSW exits when it would change an owned bit of PE/MP/EM/TS (or set PE) against the shadow.
        const m = this.cr0Mask & 0xf;
        const val = e.valueLo & 0xf;
        if (
          (m & 1 && val & 1 && !(this.cr0Shadow & 1)) ||
          ((m & 0xe) !== 0 && ((val ^ this.cr0Shadow) & m & 0xe) !== 0)
        )
          return this.vmexit(
            ExitReason.CrAccess,
            (CrQual.AccessLmsw << 4) |
              (cpu.mod !== 3 ? CrQual.LMSW_MEMORY : 0) |
              (val << CrQual.LMSW_DATA_SHIFT),
            e.length,
          );
        if (m === 0) return false;
        // Owned bits keep their value; LMSW can set PE but never clear it.
        const cur = cpu.cr0;
        const low = (cur & m) | (val & ~m & 0xf) | (cur & 1);
        cpu.writeCr0(((cur & ~0xf) | low) >>> 0, 0);
        this.skip(e.length);
        return true;
      }
      default:
        return false;
    }
  };

  /** True when a MOV to CR0/CR4 would violate the VMX fixed bits (25.3: #GP). */
  private fixedViolation(cr: number, v: number): boolean {
    const c = this.caps;
    if (cr === 4) return (v & c.cr4Fixed0) >>> 0 !== c.cr4Fixed0 || (v & ~c.cr4Fixed1) !== 0;
    const f0 = this.proc2 & Proc2Ctl.UnrestrictedGuest ? c.cr0Fixed0 & ~(CR0.PE | CR0.PG) : c.cr0Fixed0;
    return (v & f0) >>> 0 !== f0 >>> 0 || (v & ~c.cr0Fixed1) !== 0;
  }

  private skip(len: number): void {
    const cpu = this.cpu;
    const r = cpu.ip0 + len;
    cpu.rip = cpu.mode64 ? r : cpu.cs32 ? r >>> 0 : r & 0xffff;
  }

  private readonly onException = (e: ExceptionEvent): boolean => {
    const vec = e.vector;
    if (this.injException >= 0 && this.injException === ((e.type << 8) | vec)) {
      this.injException = -1;
      return false;
    }
    if (vec === Vector.PF) {
      // 25.2: the bitmap bit decides when (PFEC & mask) == match, the opposite otherwise.
      const bit = (this.excBitmap >>> Vector.PF) & 1;
      const match = (e.errorCode & this.pfMask) >>> 0 === this.pfMatch >>> 0;
      if ((match ? bit : bit ^ 1) === 0) return false;
    } else if (!((this.excBitmap >>> vec) & 1)) return false;
    const v = this.vmcs;
    const hasErr = e.errorCode >= 0 && this.cpu.pe && e.type === EventType.HardwareException;
    // The intercepted event itself is not "being delivered"; an earlier one is (IDT vectoring).
    if (this.dFirst) this.dVec = -1;
    // A fault of an IRET that unblocked NMIs, not during event delivery and not #DF (27.2.2).
    const unblocked = this.cpu.iretUnblockedNmi && vec !== Vector.DF && this.dVec < 0;
    v.lo[S_INTR] =
      IntrInfo.VALID |
      (e.type << 8) |
      vec |
      (hasErr ? IntrInfo.DELIVER_ERROR_CODE : 0) |
      (unblocked ? IntrInfo.NMI_UNBLOCKING : 0) |
      0;
    v.lo[S_INTR_ERR] = hasErr ? e.errorCode : 0;
    const qual = vec === Vector.PF ? e.address : 0;
    // INT3/INTO/INT1: the saved RIP references the instruction itself (SDM 27.3.3), not the next one.
    if (e.length > 0) this.cpu.rip = this.cpu.ip0;
    return this.vmexit(ExitReason.ExceptionOrNmi, qual, e.length);
  };

  private readonly onExternalInterrupt = (): boolean => this.boundaryExit(this.externalInterruptExit());

  /** An exit taken at an instruction boundary resumes there: the next boundary follows an instruction. */
  private boundaryExit(r: boolean): boolean {
    this.mtfSkip = false;
    return r;
  }

  private externalInterruptExit(): boolean {
    const v = this.vmcs;
    if (this.exitCtl & ExitCtl.AcknowledgeInterruptOnExit && this.cpu.intc) {
      this.cpu.syncClock();
      const vec = this.cpu.intc.acknowledgeInterrupt() & 0xff;
      v.lo[S_INTR] = IntrInfo.VALID | (EventType.External << 8) | vec | 0;
    } else v.lo[S_INTR] = 0;
    return this.vmexit(ExitReason.ExternalInterrupt, 0, 0);
  }

  private readonly onInterruptWindow = (): boolean => {
    this.vmcs.lo[S_INTR] = 0;
    return this.boundaryExit(this.vmexit(ExitReason.InterruptWindow, 0, 0));
  };

  private readonly onTranslate = (r: TranslateRequest): number => {
    const n = this.nested!;
    const hpa = n.translate(this.eptp, r);
    if (hpa >= 0) {
      const last = n.last;
      if (last !== undefined && (last.perms & 2) === 0) r.writable = false;
      return hpa;
    }
    const lv = n.lastViolation;
    const v = this.vmcs;
    v.lo[S_GPA] = (lv.gpa % TWO32) | 0;
    v.hi[S_GPA] = Math.floor(lv.gpa / TWO32) | 0;
    if (lv.linear >= 0) {
      const lin = this.cpu.canonicalOf(lv.linear);
      v.lo[S_GLA] = (((lin % TWO32) + TWO32) % TWO32) | 0;
      v.hi[S_GLA] = Math.floor(lin / TWO32) | 0;
    }
    v.lo[S_INTR] = 0;
    // The instruction did not complete: the guest resumes at it. During event delivery RIP already
    // is where the event returns to; a software interrupt's is past the INT: back to it (27.3.3).
    if (this.dVec < 0) this.cpu.rip = this.cpu.ip0;
    else if (this.dType >= EventType.SoftwareInterrupt) this.cpu.rip = this.cpu.rip - this.dLen;
    // An EPT violation of an IRET that unblocked NMIs, not during event delivery (27.2.1 Table 28-7).
    const unblocked = !lv.misconfig && this.cpu.iretUnblockedNmi && this.dVec < 0;
    this.vmexit(
      lv.misconfig ? ExitReason.EptMisconfiguration : ExitReason.EptViolation,
      unblocked ? lv.qualification | EptQual.NMI_UNBLOCKING : lv.qualification,
      0,
    );
    return -1;
  };

  private readonly onVmxInstruction = (op: VmxOpcode, length: number): boolean => {
    // Every VMX instruction in VMX non-root operation exits (25.1.2), VMCALL included.
    const reason = VMX_INSTRUCTION_EXIT[op];
    this.vmcs.lo[S_INTR] = 0;
    return this.vmexit(reason, 0, length);
  };

  private readonly onTripleFault = (): boolean => {
    this.vmcs.lo[S_INTR] = 0;
    return this.vmexit(ExitReason.TripleFault, 0, 0);
  };

  /** Asynchronous exits at an instruction boundary, in the priority order of SDM 26.7 / 6.9. */
  private readonly onBoundary = (): boolean => this.boundaryExit(this.boundaryEvents());

  private boundaryEvents(): boolean {
    if (!this._inGuest) return false;
    const cpu = this.cpu;
    const proc = this.proc;
    const skipMtf = this.mtfSkip;
    this.mtfSkip = false;
    if (proc & ProcCtl.MonitorTrapFlag) {
      cpu.eventCheck = true;
      if (!skipMtf) {
        this.vmcs.lo[S_INTR] = 0;
        return this.vmexit(ExitReason.MonitorTrapFlag, 0, 0);
      }
    }
    if (this.preemptExpired) {
      this.preemptExpired = false;
      if (this.pin & PinCtl.ActivatePreemptionTimer) {
        this.vmcs.lo[S_INTR] = 0;
        return this.vmexit(ExitReason.PreemptionTimerExpired, 0, 0);
      }
    }
    const movss = cpu.shadow > 0 && !(cpu.fl & RFLAGS.IF);
    if (proc & ProcCtl.NmiWindowExiting && !cpu.nmiBlocked && !movss && cpu.shadow === 0) {
      this.vmcs.lo[S_INTR] = 0;
      return this.vmexit(ExitReason.NmiWindow, 0, 0);
    }
    // With "virtual NMIs", bit 3 is virtual-NMI blocking: it does not hold real NMIs back (SDM 26.6.1.2).
    if (
      cpu.nmiPending &&
      this.pin & PinCtl.NmiExiting &&
      (this.pin & PinCtl.VirtualNmis || !cpu.nmiBlocked) &&
      !movss
    ) {
      cpu.nmiPending = false;
      this.vmcs.lo[S_INTR] = IntrInfo.VALID | (EventType.Nmi << 8) | Vector.NMI | 0;
      return this.vmexit(ExitReason.ExceptionOrNmi, 0, 0);
    }
    // External-interrupt exiting: RFLAGS.IF does not block (25.3); the IF=1 case uses the CPU's hook.
    if (
      this.pin & PinCtl.ExternalInterruptExiting &&
      !(cpu.fl & RFLAGS.IF) &&
      cpu.shadow === 0 &&
      cpu.intc?.hasPendingInterrupt()
    )
      return this.externalInterruptExit();
    return false;
  }

  /** Track the event being delivered (for IDT-vectoring information) and wake on interrupts. */
  private wrapCpu(): void {
    const cpu = this.cpu;
    const raise = cpu.raiseException.bind(cpu);
    cpu.raiseException = (vec: number, err: number, type: EventType, length: number): void => {
      const sv = this.dVec,
        st = this.dType,
        se = this.dErr,
        sl = this.dLen,
        sf = this.dFirst;
      this.dVec = vec;
      this.dType = type;
      this.dErr = err;
      this.dLen = length;
      this.dFirst = true;
      try {
        raise(vec, err, type, length);
      } finally {
        this.dVec = sv;
        this.dType = st;
        this.dErr = se;
        this.dLen = sl;
        this.dFirst = sf;
      }
    };
    const deliver = cpu.deliverEvent.bind(cpu);
    cpu.deliverEvent = (vec: number, type: EventType, err: number, length: number): void => {
      // The first call delivers the raised event itself; a later one (#DF, a fault while
      // delivering) means the original event's delivery was interrupted.
      if (vec !== this.dVec || type !== this.dType) this.dFirst = false;
      deliver(vec, type, err, length);
    };
    const requested = cpu.interruptRequested.bind(cpu);
    cpu.interruptRequested = (): void => {
      requested();
      // With external-interrupt exiting an interrupt ends HLT even with IF=0 (it exits).
      if (this._inGuest && this.pin & PinCtl.ExternalInterruptExiting && cpu.halted && !cpu.shutdown)
        if (cpu.intc?.hasPendingInterrupt()) cpu.halted = false;
    };
  }
}

const ENTERED: EntryResult = Object.freeze({ kind: 'entered' });

const SEGS: readonly [number, number, number, number][] = [
  [F.GuestEsSelector, F.GuestEsBase, F.GuestEsLimit, F.GuestEsAccessRights],
  [F.GuestCsSelector, F.GuestCsBase, F.GuestCsLimit, F.GuestCsAccessRights],
  [F.GuestSsSelector, F.GuestSsBase, F.GuestSsLimit, F.GuestSsAccessRights],
  [F.GuestDsSelector, F.GuestDsBase, F.GuestDsLimit, F.GuestDsAccessRights],
  [F.GuestFsSelector, F.GuestFsBase, F.GuestFsLimit, F.GuestFsAccessRights],
  [F.GuestGsSelector, F.GuestGsBase, F.GuestGsLimit, F.GuestGsAccessRights],
];

const VMX_INSTRUCTION_EXIT: Record<VmxOpcode, number> = {
  vmcall: ExitReason.Vmcall,
  vmlaunch: ExitReason.Vmlaunch,
  vmresume: ExitReason.Vmresume,
  vmxoff: ExitReason.Vmxoff,
  vmxon: ExitReason.Vmxon,
  vmptrld: ExitReason.Vmptrld,
  vmptrst: ExitReason.Vmptrst,
  vmclear: ExitReason.Vmclear,
  vmread: ExitReason.Vmread,
  vmwrite: ExitReason.Vmwrite,
  invept: ExitReason.Invept,
  invvpid: ExitReason.Invvpid,
  vmfunc: ExitReason.Vmfunc,
};

const ssDplOf = (ar: number): number => (ar >> SegAttr.DPL_SHIFT) & 3;

/** 48-bit canonical (SDM 3.3.7.1). */
function canonical(v: bigint): boolean {
  const s = BigInt.asIntN(64, v);
  return s >= -(1n << 47n) && s < 1n << 47n;
}

/** Every PAT entry is a valid memory type: 0, 1, 4, 5, 6 or 7 (SDM 26.2.2/26.3.1.1). */
function patValid(pat: bigint): boolean {
  for (let i = 0n; i < 64n; i += 8n) {
    const t = Number((pat >> i) & 0xffn);
    if (t === 2 || t === 3 || t > 7) return false;
  }
  return true;
}
