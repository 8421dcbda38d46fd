/**
 * Experiment settings of the rvm-tutorial policy: exits the tutorial leaves off (HLT, INVLPG,
 * RDTSC, CR3/CR8 loads and stores, MOV DR, descriptor-table instructions, the monitor trap flag,
 * the preemption timer), intercepted exceptions, and EPT-protected guest pages. Each exit a setting
 * enables is answered as a correct hypervisor answers it: the instruction's effect is performed for
 * the guest, an intercepted exception is reflected into the guest, and an event whose delivery the
 * exit interrupted (IDT-vectoring information, SDM Vol. 3C 27.2.4) is injected again.
 *
 * Not on the benchmark's hot path: with the defaults none of these exits happens.
 */
import { hex } from '../../src/core/addresses.js';
import { CONTRIBUTORY_MASK, EventType, Vector } from '../../src/x86/exceptions.js';
import { EptViolation } from '../../src/x86/ept.js';
import {
  ActivityState,
  CrQual,
  ExitReason,
  Interruptibility,
  IntrInfo,
  PinCtl,
  Proc2Ctl,
  ProcCtl,
  VmcsField as F,
} from '../../src/x86/vmx.js';
import type { Vmx } from '../vmx/api.js';
import { MAXPHYADDR } from '../x86-64/core.js';
import type { Controls } from './vmcs-setup.js';
import { eptAccessKind, injectHardwareException, reinjectVectoring } from './vcpu.js';

/** The `exits` setting: one switch per exiting control. */
export interface ExitSwitches {
  hlt: boolean;
  invlpg: boolean;
  /** RDTSC exiting: RDTSC (reason 16) and RDTSCP (reason 51). */
  rdtsc: boolean;
  'cr3-load': boolean;
  'cr3-store': boolean;
  'cr8-load': boolean;
  'cr8-store': boolean;
  'mov-dr': boolean;
  'descriptor-table': boolean;
}

export type EptAccess = 'r' | 'rx' | 'rw' | 'x';

export interface EptProtect {
  gpa: number;
  size: number;
  access: EptAccess;
}

export interface ExperimentSettings {
  exits: ExitSwitches;
  /** Monitor trap flag for the first N guest instructions (0: off). */
  monitorTrap: number;
  /** VMX-preemption timer value (undefined: off); re-armed at every entry. */
  preemptionTimer: number | undefined;
  exceptionBitmap: readonly number[];
  pfErrorCodeMask: number;
  pfErrorCodeMatch: number;
  eptProtect: readonly EptProtect[];
  /** On a violation of a protected page: stop the run, or lift the page's protection and resume. */
  eptViolation: 'stop' | 'unprotect';
}

export const EXIT_SWITCH_NAMES: readonly (keyof ExitSwitches)[] = [
  'hlt',
  'invlpg',
  'rdtsc',
  'cr3-load',
  'cr3-store',
  'cr8-load',
  'cr8-store',
  'mov-dr',
  'descriptor-table',
];

/** The primary and secondary controls the `exits` switches stand for (SDM 24.6.2). */
export function experimentControls(s: ExperimentSettings): { pin: number; proc: number; proc2: number } {
  const e = s.exits;
  let proc = 0;
  if (e.hlt) proc |= ProcCtl.HltExiting;
  if (e.invlpg) proc |= ProcCtl.InvlpgExiting;
  if (e.rdtsc) proc |= ProcCtl.RdtscExiting;
  if (e['cr3-load']) proc |= ProcCtl.Cr3LoadExiting;
  if (e['cr3-store']) proc |= ProcCtl.Cr3StoreExiting;
  if (e['cr8-load']) proc |= ProcCtl.Cr8LoadExiting;
  if (e['cr8-store']) proc |= ProcCtl.Cr8StoreExiting;
  if (e['mov-dr']) proc |= ProcCtl.MovDrExiting;
  if (s.monitorTrap > 0) proc |= ProcCtl.MonitorTrapFlag;
  const proc2 = e['descriptor-table'] ? Proc2Ctl.DescriptorTableExiting : 0;
  const pin = s.preemptionTimer !== undefined ? PinCtl.ActivatePreemptionTimer : 0;
  return { pin, proc, proc2 };
}

/** Exception-bitmap value (SDM 24.6.3). */
export function exceptionBitmap(s: ExperimentSettings): number {
  let b = 0;
  for (const v of s.exceptionBitmap) b |= 1 << v;
  return b >>> 0;
}

export interface ExperimentStats {
  hlt: number;
  invlpg: number;
  rdtsc: number;
  cr3Load: number;
  cr3Store: number;
  cr8Load: number;
  cr8Store: number;
  movDr: number;
  descriptorTable: number;
  monitorTrap: number;
  preemptionTimer: number;
  exceptionsReflected: number;
  doubleFaults: number;
  eptProtectViolations: number;
  eptUnprotected: number;
  vectoringReinjected: number;
}

/** What the policy lends the experiments (index.ts). */
export interface ExperimentHost {
  /** The guest's TSC (no TSC offsetting: the host's). */
  tsc(): number;
  /** IA32_TSC_AUX (RDTSCP's ECX). */
  tscAux(): number;
  /** INVLPG performed for the guest: drop the CPU's cached translations of this linear address. */
  invalidatePage(linear: number): void;
  /** The guest's CR2 (not a VMCS field: the host writes it before reflecting a #PF, SDM 27.1). */
  setCr2(value: number): void;
  /** The guest APIC's TPR (CR8 is TPR[7:4], SDM 10.8.6.1); undefined without a guest APIC. */
  readTpr: (() => number) | undefined;
  writeTpr: ((value: number) => void) | undefined;
  /** Map the 4 KiB page at `gpa` with full access again and invalidate EPT-derived translations. */
  unprotectPage(gpa: number): void;
  /** The primary processor-based controls as the policy keeps them, and a way to change them. */
  primaryControls(): number;
  setPrimaryControls(proc: number): void;
  /** Guest CR0.PG. */
  paging(): boolean;
  /** PAE paging outside IA-32e mode (CR3 loads then load the PDPTEs). */
  paePaging(): boolean;
  /** Whether the guest uses 64-bit mode (RDTSC results, CR3 stores are 64-bit there). */
  longMode(): boolean;
  log: { info(m: string): void; warn(m: string): void };
  /** End the run with a fault report (the exit handler then stops the guest). */
  fault(message: string): void;
}

const PAGE = 4096;

/** #DE, #TS, #NP, #SS, #GP: the contributory class of SDM Vol. 3A 6.15 Table 6-4. */
function contributory(vector: number): boolean {
  return ((CONTRIBUTORY_MASK >>> vector) & 1) !== 0;
}

export class Experiments {
  readonly stats: ExperimentStats = {
    hlt: 0,
    invlpg: 0,
    rdtsc: 0,
    cr3Load: 0,
    cr3Store: 0,
    cr8Load: 0,
    cr8Store: 0,
    movDr: 0,
    descriptorTable: 0,
    monitorTrap: 0,
    preemptionTimer: 0,
    exceptionsReflected: 0,
    doubleFaults: 0,
    eptProtectViolations: 0,
    eptUnprotected: 0,
    vectoringReinjected: 0,
  };
  /** Monitor-trap exits still wanted (the `monitor-trap` setting counts down). */
  private mtfLeft: number;
  /** The exiting control switched off while one instruction runs under the monitor trap flag. */
  private stepping = false;
  private stepProc = 0;
  private stepProc2 = 0;
  private readonly protect: EptProtect[];

  constructor(
    private readonly s: ExperimentSettings,
    private readonly host: ExperimentHost,
  ) {
    this.mtfLeft = s.monitorTrap;
    this.protect = s.eptProtect.map((p) => ({ ...p }));
  }

  /** The five controls with the experiments' bits added (before the capability MSRs adjust them). */
  static addTo(c: Controls, s: ExperimentSettings): Controls {
    const x = experimentControls(s);
    return { ...c, pin: c.pin | x.pin, proc: c.proc | x.proc, proc2: c.proc2 | x.proc2 };
  }

  /**
   * An exit the experiments own: true when handled (the guest resumes), false when the run stops,
   * undefined when it is not theirs (the tutorial's handling applies).
   */
  handle(vmx: Vmx, reason: number): boolean | undefined {
    switch (reason) {
      case ExitReason.Hlt:
        return this.hlt(vmx);
      case ExitReason.Invlpg:
        this.stats.invlpg++;
        this.host.invalidatePage(vmx.exitQualification);
        vmx.advanceRip();
        return true;
      case ExitReason.Rdtsc:
      case ExitReason.Rdtscp:
        return this.rdtsc(vmx, reason === ExitReason.Rdtscp);
      case ExitReason.CrAccess:
        return this.crAccess(vmx);
      case ExitReason.MovDr:
        this.stats.movDr++;
        return this.step(vmx, ProcCtl.MovDrExiting, 0);
      case ExitReason.GdtrIdtrAccess:
      case ExitReason.LdtrTrAccess:
        this.stats.descriptorTable++;
        return this.step(vmx, 0, Proc2Ctl.DescriptorTableExiting);
      case ExitReason.MonitorTrapFlag:
        return this.monitorTrap(vmx);
      case ExitReason.PreemptionTimerExpired:
        // The timer value stays in the VMCS (no "save preemption timer"): the next entry re-arms it.
        this.stats.preemptionTimer++;
        return true;
      case ExitReason.ExceptionOrNmi:
        return this.exception(vmx);
      case ExitReason.EptViolation:
        return this.eptViolation(vmx);
      default:
        return undefined;
    }
  }

  // ---- instructions -----------------------------------------------------------------------------

  /** HLT: the vCPU waits for the next interrupt (activity state HLT, SDM 24.4.2) unless one is pending. */
  private hlt(vmx: Vmx): boolean {
    this.stats.hlt++;
    vmx.advanceRip();
    // The STI/MOV SS shadow covered HLT and ends with it; HLT activity with it would be invalid (26.3.1.5).
    const intr = vmx.vmread32(F.GuestInterruptibilityState);
    if (intr & (Interruptibility.BlockingBySti | Interruptibility.BlockingByMovSs))
      vmx.vmwrite(
        F.GuestInterruptibilityState,
        intr & ~(Interruptibility.BlockingBySti | Interruptibility.BlockingByMovSs),
      );
    vmx.vmwrite(F.GuestActivityState, ActivityState.Hlt);
    return true;
  }

  private rdtsc(vmx: Vmx, aux: boolean): boolean {
    this.stats.rdtsc++;
    const t = this.host.tsc();
    vmx.setGprPart(0, 4, t % 2 ** 32);
    vmx.setGprPart(2, 4, Math.floor(t / 2 ** 32) >>> 0);
    if (aux) vmx.setGprPart(1, 4, this.host.tscAux());
    vmx.advanceRip();
    return true;
  }

  /** MOV to/from CR3 and CR8 (exit qualification SDM 27.2.1 Table 27-3). */
  private crAccess(vmx: Vmx): boolean | undefined {
    const q = vmx.exitQualification;
    const cr = q & CrQual.CR_MASK;
    const access = (q >>> CrQual.ACCESS_SHIFT) & 3;
    const gpr = (q >>> CrQual.GPR_SHIFT) & 0xf;
    if (cr !== 3 && cr !== 8) return undefined;
    if (access === CrQual.AccessMovToCr) {
      const v = vmx.getGpr(gpr);
      if (cr === 3) {
        this.stats.cr3Load++;
        // PAE paging loads the PDPTEs with checks (SDM 4.4.1): the CPU does that under the MTF.
        if (this.host.paePaging()) return this.step(vmx, ProcCtl.Cr3LoadExiting, 0);
        // Bits above MAXPHYADDR are reserved in IA-32e mode: #GP(0) (SDM Vol. 2A MOV CR).
        if (this.host.longMode() && v >> BigInt(MAXPHYADDR) !== 0n)
          return this.injectException(vmx, Vector.GP, 0);
        vmx.vmwrite(F.GuestCr3, this.host.longMode() ? v : v & 0xffff_ffffn);
      } else {
        this.stats.cr8Load++;
        // Bits 63:4 of CR8 are reserved: #GP(0) (SDM Vol. 2A MOV CR).
        if (v >> 4n !== 0n) return this.injectException(vmx, Vector.GP, 0);
        this.host.writeTpr?.(Number(v) << 4);
      }
    } else if (access === CrQual.AccessMovFromCr) {
      if (cr === 3) {
        this.stats.cr3Store++;
        const v = vmx.vmread(F.GuestCr3) ?? 0n;
        if (this.host.longMode()) vmx.setGpr(gpr, v);
        else vmx.setGprPart(gpr, 4, Number(v & 0xffff_ffffn));
      } else {
        this.stats.cr8Store++;
        vmx.setGpr(gpr, BigInt(((this.host.readTpr?.() ?? 0) >>> 4) & 0xf));
      }
    } else return undefined;
    vmx.advanceRip();
    return true;
  }

  /**
   * Run the intercepted instruction once in the guest with its exiting control off and the monitor
   * trap flag on (SDM 25.5.2): the CPU performs it with every architectural check, and the MTF exit
   * that follows restores the control. If an event is delivered first, the instruction exits again.
   */
  private step(vmx: Vmx, proc: number, proc2: number): boolean {
    const cur = this.host.primaryControls();
    this.stepping = true;
    this.stepProc = proc;
    this.stepProc2 = proc2;
    if (proc2) {
      const p2 = vmx.vmread32(F.SecondaryProcBasedVmExecControls);
      vmx.vmwrite(F.SecondaryProcBasedVmExecControls, (p2 & ~proc2) >>> 0);
    }
    this.host.setPrimaryControls(((cur & ~proc) | ProcCtl.MonitorTrapFlag) >>> 0);
    return true;
  }

  private monitorTrap(vmx: Vmx): boolean {
    let proc = this.host.primaryControls();
    if (this.stepping) {
      this.stepping = false;
      proc |= this.stepProc;
      if (this.stepProc2) {
        const p2 = vmx.vmread32(F.SecondaryProcBasedVmExecControls);
        vmx.vmwrite(F.SecondaryProcBasedVmExecControls, (p2 | this.stepProc2) >>> 0);
      }
    }
    if (this.mtfLeft > 0) {
      this.stats.monitorTrap++;
      this.mtfLeft--;
    }
    if (this.mtfLeft === 0) proc &= ~ProcCtl.MonitorTrapFlag;
    this.host.setPrimaryControls(proc >>> 0);
    return true;
  }

  // ---- exceptions ---------------------------------------------------------------------------------

  /**
   * An intercepted exception goes back to the guest as the CPU would have delivered it: same vector
   * and error code, CR2 written first for #PF (the qualification holds the linear address). If it
   * arose while delivering another exception, the two combine as SDM Vol. 3A 6.15 Table 6-5 says.
   */
  private exception(vmx: Vmx): boolean | undefined {
    const info = vmx.vmread32(F.VmExitInterruptionInfo);
    const type = (info & IntrInfo.TYPE_MASK) >>> IntrInfo.TYPE_SHIFT;
    if (type === EventType.Nmi || !(info & IntrInfo.VALID)) return undefined;
    const vector = info & IntrInfo.VECTOR_MASK;
    const err = info & IntrInfo.DELIVER_ERROR_CODE ? vmx.vmread32(F.VmExitInterruptionErrorCode) : -1;
    this.stats.exceptionsReflected++;
    const idt = vmx.vmread32(F.IdtVectoringInfo);
    if (
      idt & IntrInfo.VALID &&
      (idt & IntrInfo.TYPE_MASK) >>> IntrInfo.TYPE_SHIFT === EventType.HardwareException
    ) {
      const first = idt & IntrInfo.VECTOR_MASK;
      // A contributory exception or #PF while delivering #DF: shutdown (Table 6-5; Vol. 3A 6.15 #DF).
      if (first === Vector.DF && (contributory(vector) || vector === Vector.PF)) {
        this.host.fault(
          `guest triple fault (shutdown): exception ${vector} while delivering a double fault (#DF)`,
        );
        return false;
      }
      if (
        (contributory(first) && contributory(vector)) ||
        (first === Vector.PF && (contributory(vector) || vector === Vector.PF))
      ) {
        this.stats.doubleFaults++;
        return this.injectException(vmx, Vector.DF, 0);
      }
    }
    if (vector === Vector.PF) this.host.setCr2(vmx.exitQualification);
    if (type === EventType.HardwareException) return this.injectException(vmx, vector, err);
    // INT3/INTO (software exceptions) and INT1: delivered past the instruction, with its length.
    vmx.vmwrite(F.VmEntryInterruptionInfo, (IntrInfo.VALID | (type << IntrInfo.TYPE_SHIFT) | vector) >>> 0);
    vmx.vmwrite(F.VmEntryInstructionLength, vmx.exitInstructionLength);
    return true;
  }

  private injectException(vmx: Vmx, vector: number, err: number): boolean {
    injectHardwareException(vmx, vector, err);
    return true;
  }

  // ---- EPT-protected pages ------------------------------------------------------------------------

  private eptViolation(vmx: Vmx): boolean | undefined {
    const gpa = Number(vmx.vmread(F.GuestPhysicalAddress) ?? -1n);
    const p = this.protect.find((r) => gpa >= r.gpa && gpa < r.gpa + r.size);
    if (p === undefined) return undefined;
    const q = vmx.exitQualification;
    this.stats.eptProtectViolations++;
    const kind = eptAccessKind(q);
    const allowed =
      (q & EptViolation.READABLE ? 'r' : '-') +
      (q & EptViolation.WRITABLE ? 'w' : '-') +
      (q & EptViolation.EXECUTABLE ? 'x' : '-');
    const where = `guest ${kind} at GPA ${hex(gpa)} in the EPT-protected range ${hex(p.gpa)}+${hex(p.size)} (${p.access}; page ${allowed}), qualification ${hex(q)}`;
    if (this.s.eptViolation === 'stop') {
      this.host.fault(`EPT violation: ${where}`);
      return false;
    }
    this.host.log.info(`EPT violation: ${where}: protection lifted`);
    this.stats.eptUnprotected++;
    this.host.unprotectPage(gpa - (gpa % PAGE));
    // The instruction (or event delivery) restarts; an interrupted delivery is injected again.
    this.reinject(vmx);
    return true;
  }

  /** IDT-vectoring information (SDM 27.2.4): the event goes back into the VM-entry fields. */
  private reinject(vmx: Vmx): void {
    if (!(vmx.vmread32(F.IdtVectoringInfo) & IntrInfo.VALID)) return;
    this.stats.vectoringReinjected++;
    reinjectVectoring(vmx);
  }
}
