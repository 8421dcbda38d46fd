/**
 * The exit handler of the tutorial's hypervisor (TUTORIAL-SYSTEM.md "Exit handling" and "Event
 * injection"), without the reference bugs: every exit is answered as the tutorial's devices would,
 * or ends the run cleanly with the guest state.
 *
 * Hot path: I/O and CPUID exits (the benchmark kit's pio and cpuid phases) allocate nothing and
 * write no VMCS control field, so the VMX model resumes without re-checking the VMCS.
 */
import type { Bus } from '../../src/core/bus.js';
import { hex } from '../../src/core/addresses.js';
import type { StopReason } from '../../src/core/stop.js';
import type { LocalApic } from '../../src/devices/apic.js';
import { EptViolation } from '../../src/x86/ept.js';
import { CR0, CR4 } from '../../src/x86/regs.js';
import { EventType, Vector } from '../../src/x86/exceptions.js';
import {
  CrQual,
  EXIT_REASON_ENTRY_FAILURE,
  EXIT_REASON_NAMES,
  ExitReason,
  Interruptibility,
  IntrInfo,
  IoQual,
  PinCtl,
  ProcCtl,
  VmcsField as F,
} from '../../src/x86/vmx.js';
import type { Vmx } from '../vmx/api.js';
import type { GuestCpuid } from './cpuid.js';
import { MmioResult, type MmioEmulator } from './mmio.js';
import type { StringIo } from './string-io.js';
import { CR0_MASK, CR4_MASK, IA32_APIC_BASE, X2APIC_FIRST, X2APIC_LAST } from './vmcs-setup.js';

/** The sample guest's hypercall (guests/README.md "ABIs"): RAX = "VMM\0" asks for the exit count. */
export const HYPERCALL_EXIT_COUNT = 0x564d4d00;

/** RFLAGS.IF. */
const RFLAGS_IF = 1 << 9;
/** The two window controls the policy toggles on top of the set-up's primary controls. */
const WINDOW_BITS = ProcCtl.InterruptWindowExiting | ProcCtl.NmiWindowExiting;
/** Guest interruptibility that holds a virtual NMI back (SDM 24.4.2 Table 24-3, 26.3.1.5). */
const NMI_BLOCKING =
  Interruptibility.BlockingByNmi | Interruptibility.BlockingByMovSs | Interruptibility.BlockingBySti;

export interface VcpuOptions {
  vmx: Vmx;
  guestBus: Bus;
  cpuid: GuestCpuid;
  /** The guest's local APIC (x2APIC MSRs, the timer); undefined: MSR accesses #GP. */
  apic: LocalApic | undefined;
  /** The host's end of an external interrupt (the EOI a host OS writes); vector from the exit. */
  hostEoi: (vector: number) => void;
  /** Guest state for stop reports. */
  dumpState: () => string;
  stop: (reason: StopReason) => void;
  log: { info(m: string): void; warn(m: string): void; debug(m: string): void };
  source: string;
  /** Guest CR0.PE (whether an exception pushes an error code). */
  protectedMode: () => boolean;
  /** MMIO emulation of the guest devices' pages (mmio.ts); undefined: such violations stop the run. */
  mmio?: MmioEmulator;
  /** INS/OUTS emulation (string-io.ts); undefined: string I/O stops the run. */
  stringIo?: StringIo;
}

export interface VcpuStats {
  exits: number;
  ioIn: number;
  ioOut: number;
  injected: number;
  reinjected: number;
  windowOpened: number;
  gpInjected: number;
  hypercalls: number;
  hostInterrupts: number;
  /** NMIs the guest's APIC raised (an NMI raised while one is pending merges with it, SDM 6.7.1). */
  nmis: number;
  nmisInjected: number;
  nmiWindowExits: number;
}

/** Exits the experiment settings enable (experiments.ts). */
export interface ExitExperiments {
  /** True: handled, resume; false: the run stopped; undefined: not an experiment's exit. */
  handle(vmx: Vmx, reason: number): boolean | undefined;
}

/**
 * Inject a hardware exception at the next VM entry (SDM 24.8.3): a fault, so the guest's RIP stays
 * on the instruction. `errorCode` -1: none (as for vectors without one, or in real mode).
 */
export function injectHardwareException(vmx: Vmx, vector: number, errorCode: number): void {
  vmx.vmwrite(
    F.VmEntryInterruptionInfo,
    (IntrInfo.VALID |
      (EventType.HardwareException << IntrInfo.TYPE_SHIFT) |
      vector |
      (errorCode >= 0 ? IntrInfo.DELIVER_ERROR_CODE : 0)) >>>
      0,
  );
  if (errorCode >= 0) vmx.vmwrite(F.VmEntryExceptionErrorCode, errorCode);
}

/** The access an EPT violation's qualification reports (SDM 27.2.1 Table 28-7), for messages. */
export function eptAccessKind(qualification: number): 'instruction fetch' | 'write' | 'read' {
  return qualification & EptViolation.INSTRUCTION_FETCH
    ? 'instruction fetch'
    : qualification & EptViolation.DATA_WRITE
      ? 'write'
      : 'read';
}

/**
 * IDT-vectoring information (SDM 27.2.4) back into the VM-entry fields: the event whose delivery
 * the exit interrupted is delivered anew. Bit 12 is undefined there and reserved on entry. An NMI
 * whose delivery was interrupted was not delivered, so the guest has no virtual-NMI blocking
 * from it: the bit is cleared, or VM entry would refuse the injection (SDM 26.3.1.5; KVM too).
 */
export function reinjectVectoring(vmx: Vmx): void {
  const idt = vmx.vmread32(F.IdtVectoringInfo);
  vmx.vmwrite(F.VmEntryInterruptionInfo, (idt & ~IntrInfo.NMI_UNBLOCKING) >>> 0);
  if (idt & IntrInfo.DELIVER_ERROR_CODE)
    vmx.vmwrite(F.VmEntryExceptionErrorCode, vmx.vmread32(F.IdtVectoringErrorCode));
  const type = (idt & IntrInfo.TYPE_MASK) >>> IntrInfo.TYPE_SHIFT;
  if (type >= EventType.SoftwareInterrupt) vmx.vmwrite(F.VmEntryInstructionLength, vmx.exitInstructionLength);
  else if (type === EventType.Nmi) {
    const b = vmx.vmread32(F.GuestInterruptibilityState);
    if (b & Interruptibility.BlockingByNmi)
      vmx.vmwrite(F.GuestInterruptibilityState, (b & ~Interruptibility.BlockingByNmi) >>> 0);
  }
}

export class Vcpu {
  /** Set by index.ts when experiment settings are on. */
  experiments: ExitExperiments | undefined;
  readonly stats: VcpuStats = {
    exits: 0,
    ioIn: 0,
    ioOut: 0,
    injected: 0,
    reinjected: 0,
    windowOpened: 0,
    gpInjected: 0,
    hypercalls: 0,
    hostInterrupts: 0,
    nmis: 0,
    nmisInjected: 0,
    nmiWindowExits: 0,
  };
  /** Primary processor-based controls as written (without the two window bits the policy toggles). */
  private proc = 0;
  private window = false;
  /** The guest's virtual NMI waiting for injection: one at most, like the CPU's NMI latch (SDM 6.7.1). */
  private nmiPending = false;
  private nmiWindow = false;
  /** "Virtual NMIs" is on, so NMI-window exiting may be used (SDM 26.2.1.1). */
  private nmiWindowUsable = false;
  private readonly warned = new Set<string>();
  private readonly vmx: Vmx;
  private readonly bus: Bus;
  private readonly apic: LocalApic | undefined;
  private readonly cpuid: GuestCpuid;

  constructor(private readonly o: VcpuOptions) {
    this.vmx = o.vmx;
    this.bus = o.guestBus;
    this.apic = o.apic;
    this.cpuid = o.cpuid;
  }

  /** The guest APIC raised an NMI (self-IPI, LINT1): pending until the guest can take it. */
  raiseNmi(): void {
    this.stats.nmis++;
    this.nmiPending = true;
  }

  /** A virtual NMI is waiting for injection. */
  get nmiIsPending(): boolean {
    return this.nmiPending;
  }

  /** The primary controls as kept (without the window bits). */
  get primaryControls(): number {
    return this.proc;
  }

  /** Change the primary controls (experiments), keeping the interrupt-window bit as it is. */
  changePrimaryControls(proc: number): void {
    this.proc = proc & ~WINDOW_BITS;
    this.writeControls();
  }

  /**
   * Remember the controls written at set-up (the window bits are toggled on top of them).
   * NMI-window exiting needs the "virtual NMIs" pin control (SDM 26.2.1.1).
   */
  setPrimaryControls(proc: number, pin = 0): void {
    this.proc = proc & ~WINDOW_BITS;
    this.window = false;
    this.nmiWindow = false;
    this.nmiWindowUsable = (pin & PinCtl.VirtualNmis) !== 0;
  }

  readonly handle = (vmx: Vmx): void => {
    this.stats.exits++;
    const reason = vmx.exitReason;
    switch (reason) {
      case ExitReason.IoInstruction:
        if (!this.io(vmx)) return;
        break;
      case ExitReason.Cpuid: {
        // EAX, EBX, ECX, EDX; 32-bit results zero-extend in 64-bit mode (SDM Vol. 2A, CPUID).
        const r = this.cpuid.answer(vmx.getGpr32(0), vmx.getGpr32(1));
        vmx.setGpr32(0, r[0]!);
        vmx.setGpr32(3, r[1]!);
        vmx.setGpr32(1, r[2]!);
        vmx.setGpr32(2, r[3]!);
        vmx.advanceRip();
        break;
      }
      case ExitReason.Rdmsr:
        this.rdmsr(vmx);
        break;
      case ExitReason.Wrmsr:
        this.wrmsr(vmx);
        break;
      case ExitReason.Vmcall:
        this.vmcall(vmx);
        break;
      case ExitReason.ExternalInterrupt: {
        // Host interrupt handling: acknowledged on exit (its vector is in the exit information).
        this.stats.hostInterrupts++;
        const info = vmx.vmread32(F.VmExitInterruptionInfo);
        if (info & IntrInfo.VALID) this.o.hostEoi(info & IntrInfo.VECTOR_MASK);
        this.reinject(vmx);
        break;
      }
      case ExitReason.InterruptWindow:
        this.setWindow(false);
        break;
      case ExitReason.NmiWindow:
        // No virtual-NMI blocking and no MOV SS/STI shadow any more: checkInterrupts injects.
        this.stats.nmiWindowExits++;
        break;
      case ExitReason.ExceptionOrNmi: {
        // Exception bitmap 0: only NMIs exit (NMI exiting); the host has nothing to do for them.
        const info = vmx.vmread32(F.VmExitInterruptionInfo);
        if (info & IntrInfo.NMI_UNBLOCKING) this.restoreNmiBlocking(vmx);
        if ((info & IntrInfo.TYPE_MASK) >>> IntrInfo.TYPE_SHIFT !== EventType.Nmi) {
          const x = this.experiments?.handle(vmx, reason);
          if (x === true) break;
          if (x === false) return;
          this.fault(`unexpected exception exit: interruption information ${hex(info >>> 0)}`);
          return;
        }
        this.reinject(vmx);
        break;
      }
      case ExitReason.CrAccess:
        if (!this.crAccess(vmx)) return;
        break;
      case ExitReason.EptViolation:
      case ExitReason.EptMisconfiguration: {
        if (vmx.exitQualification & EptViolation.NMI_UNBLOCKING) this.restoreNmiBlocking(vmx);
        // ept-protect experiments first, then guest MMIO emulation, else a clean stop.
        const x = this.experiments?.handle(vmx, reason);
        if (x === true) break;
        if (x === false) return;
        if (!this.eptViolation(vmx, reason === ExitReason.EptMisconfiguration)) return;
        break;
      }
      case ExitReason.TripleFault:
        this.fault('guest triple fault (shutdown)');
        return;
      default: {
        const x = this.experiments?.handle(vmx, reason);
        if (x === true) break;
        if (x === false) return;
        if (reason & EXIT_REASON_ENTRY_FAILURE) {
          this.fault(
            `VM entry failed: exit reason ${hex(reason >>> 0)} (${EXIT_REASON_NAMES[reason & 0xffff] ?? '?'}), ` +
              `qualification ${hex(vmx.exitQualification)}`,
          );
        } else
          this.fault(
            `unhandled VM exit ${EXIT_REASON_NAMES[reason] ?? reason} (reason ${reason}), qualification ${hex(vmx.exitQualification)}`,
          );
        return;
      }
    }
    this.checkInterrupts(vmx);
  };

  // ---- I/O ------------------------------------------------------------------------------------

  /** IN/OUT to the guest's port devices (SDM 27.2.1 Table 27-5). False when the run stops. */
  private io(vmx: Vmx): boolean {
    const q = vmx.exitQualification;
    const size = ((q & IoQual.SIZE_MASK) + 1) as 1 | 2 | 4;
    const port = q >>> IoQual.PORT_SHIFT;
    if (q & IoQual.STRING) {
      if (this.o.stringIo !== undefined) return this.o.stringIo.handle(q);
      this.fault(
        `string I/O (${q & IoQual.IN ? 'INS' : 'OUTS'}${q & IoQual.REP ? ' with REP' : ''}, port ${hex(port, 4)}, ` +
          `size ${size}) is not emulated by this policy`,
      );
      return false;
    }
    if (q & IoQual.IN) {
      this.stats.ioIn++;
      // IN AL/AX/EAX: the low `size` bytes of RAX change (IN EAX zero-extends to 64 bits).
      vmx.setGprPart(0, size, this.bus.ioRead(port, size));
    } else {
      this.stats.ioOut++;
      const v = vmx.getGpr32(0);
      this.bus.ioWrite(port, size, size === 4 ? v : v & (size === 1 ? 0xff : 0xffff));
    }
    vmx.advanceRip();
    return true;
  }

  // ---- MSRs -----------------------------------------------------------------------------------

  private rdmsr(vmx: Vmx): void {
    const msr = vmx.getGpr32(1);
    const apic = this.apic;
    if (apic !== undefined && (msr === IA32_APIC_BASE || (msr >= X2APIC_FIRST && msr <= X2APIC_LAST))) {
      const r = apic.readMsr(msr);
      if (r.ok) {
        vmx.setGprPart(0, 4, r.lo);
        vmx.setGprPart(2, 4, r.hi);
        vmx.advanceRip();
        return;
      }
    } else this.warnOnce(`rdmsr-${msr}`, `RDMSR of MSR ${hex(msr)}: not emulated, #GP injected`);
    this.injectGp(vmx);
  }

  private wrmsr(vmx: Vmx): void {
    const msr = vmx.getGpr32(1);
    const apic = this.apic;
    if (apic !== undefined && (msr === IA32_APIC_BASE || (msr >= X2APIC_FIRST && msr <= X2APIC_LAST))) {
      // IA32_APIC_BASE goes to the model too: its SDM 11.12.5 transitions decide (#GP for reserved
      // bits and x2APIC -> xAPIC); the guest's APIC starts in x2APIC mode (CPUID forces x2APIC).
      if (apic.writeMsr(msr, vmx.getGpr32(0), vmx.getGpr32(2))) {
        vmx.advanceRip();
        return;
      }
    } else this.warnOnce(`wrmsr-${msr}`, `WRMSR of MSR ${hex(msr)}: not emulated, #GP injected`);
    this.injectGp(vmx);
  }

  /** #GP(0) at the instruction (a fault: RIP stays). Real mode delivers no error code. */
  private injectGp(vmx: Vmx): void {
    this.stats.gpInjected++;
    injectHardwareException(vmx, Vector.GP, this.o.protectedMode() ? 0 : -1);
  }

  // ---- VMCALL ---------------------------------------------------------------------------------

  private vmcall(vmx: Vmx): void {
    this.stats.hypercalls++;
    const rax = vmx.getGpr(0);
    if (rax === BigInt(HYPERCALL_EXIT_COUNT)) {
      vmx.setGpr(0, BigInt(this.stats.exits));
    } else {
      this.o.log.debug(
        `VMCALL rax=${hex(rax)} rdi=${hex(vmx.getGpr(7))} rsi=${hex(vmx.getGpr(6))} rdx=${hex(vmx.getGpr(2))} rcx=${hex(vmx.getGpr(1))}`,
      );
    }
    vmx.advanceRip();
  }

  // ---- CR0/CR4 writes that touch host-owned bits ------------------------------------------------

  /**
   * MOV to CR0/CR4 changing a bit the host owns (SDM 25.3): CR0.NE stays 1 in the real CR0 (VMX
   * needs it), CD/NW stay 0 (the guest's memory is WB through EPT); the guest reads back what it
   * wrote. CR4.VMXE: VMX is hidden, so setting it is #GP as on a CPU without VMX.
   */
  private crAccess(vmx: Vmx): boolean {
    const q = vmx.exitQualification;
    const cr = q & CrQual.CR_MASK;
    const access = (q >>> CrQual.ACCESS_SHIFT) & 3;
    if (access !== CrQual.AccessMovToCr || (cr !== 0 && cr !== 4)) {
      const x = this.experiments?.handle(vmx, ExitReason.CrAccess);
      if (x !== undefined) return x;
      this.fault(`unexpected control-register access exit, qualification ${hex(q)}`);
      return false;
    }
    const v = vmx.getGpr32((q >>> CrQual.GPR_SHIFT) & 0xf);
    if (cr === 4) {
      if (v & CR4.VMXE) {
        this.injectGp(vmx);
        return true;
      }
      vmx.vmwrite(F.GuestCr4, (v | CR4.VMXE) >>> 0);
      vmx.vmwrite(F.Cr4ReadShadow, v & CR4_MASK);
    } else {
      vmx.vmwrite(F.GuestCr0, ((v | CR0.NE) & ~(CR0.NW | CR0.CD)) >>> 0);
      vmx.vmwrite(F.Cr0ReadShadow, (v & CR0_MASK) >>> 0);
    }
    vmx.advanceRip();
    return true;
  }

  // ---- EPT violations -------------------------------------------------------------------------

  /** An EPT violation on a guest device's page is emulated (true: resume); anything else stops. */
  private eptViolation(vmx: Vmx, misconfig: boolean): boolean {
    // F.GuestPhysicalAddress + 1: the field's high dword ("high" access encoding, SDM 24.11.2).
    const gpa = vmx.vmread32(F.GuestPhysicalAddress) + vmx.vmread32(F.GuestPhysicalAddress + 1) * 2 ** 32;
    const q = vmx.exitQualification;
    if (!misconfig && this.o.mmio !== undefined) {
      const r = this.o.mmio.handle(gpa, q);
      if (r !== MmioResult.NotMmio) return r === MmioResult.Emulated;
    }
    const kind = eptAccessKind(q);
    const region = this.bus.regionAt(gpa);
    if (!misconfig && region?.kind === 'mmio') {
      // Only a vCPU built without an MMIO emulator (unit tests) gets here: the policy always has one.
      this.fault(
        `guest ${kind} at GPA ${hex(gpa)} hits emulated MMIO of ${region.name}, and no MMIO emulator is set`,
      );
      return false;
    }
    this.fault(
      misconfig
        ? `EPT misconfiguration at GPA ${hex(gpa)}`
        : `EPT violation: guest ${kind} at GPA ${hex(gpa)} (qualification ${hex(q)}), which is neither guest RAM nor a passthrough page`,
    );
    return false;
  }

  // ---- interrupts -------------------------------------------------------------------------------

  /**
   * IDT-vectoring information (SDM 27.2.4, 28.2.1.2): an event whose delivery the exit interrupted
   * is injected again at the next entry, or it would be lost (reference bug 5).
   */
  private reinject(vmx: Vmx): boolean {
    if (!(vmx.vmread32(F.IdtVectoringInfo) & IntrInfo.VALID)) return false;
    this.stats.reinjected++;
    reinjectVectoring(vmx);
    return true;
  }

  /**
   * An IRET that unblocked NMIs faulted into an exit (exit qualification or interruption
   * information bit 12, SDM 27.2.2/27.2.3): the IRET runs again, so the guest's NMI handler is
   * still running; virtual-NMI blocking is set again before the entry (as KVM does).
   * Not when the exit interrupted an event delivery: that event is being delivered anew.
   */
  private restoreNmiBlocking(vmx: Vmx): void {
    if (vmx.vmread32(F.IdtVectoringInfo) & IntrInfo.VALID) return;
    const b = vmx.vmread32(F.GuestInterruptibilityState);
    vmx.vmwrite(F.GuestInterruptibilityState, (b | Interruptibility.BlockingByNmi) >>> 0);
  }

  /**
   * After every exit: the guest APIC's highest pending interrupt is injected when the guest can
   * take it (RFLAGS.IF=1, no STI/MOV SS shadow, nothing else being injected); otherwise
   * interrupt-window exiting asks for the next chance. The APIC's IRR is the queue: an
   * interrupt is acknowledged only when injected, so nothing piles up or is lost.
   */
  checkInterrupts(vmx: Vmx): void {
    if (this.nmiPending) this.checkNmi(vmx);
    else if (this.nmiWindow) this.setNmiWindow(false);
    const apic = this.apic;
    if (apic === undefined || !apic.hasPendingInterrupt()) {
      if (this.window) this.setWindow(false);
      return;
    }
    if (vmx.vmread32(F.VmEntryInterruptionInfo) & IntrInfo.VALID) {
      this.setWindow(true); // an event is already being injected: the next window takes this one
      return;
    }
    const rflags = vmx.vmread32(F.GuestRflags);
    const blocking = vmx.vmread32(F.GuestInterruptibilityState);
    if (
      rflags & RFLAGS_IF &&
      !(blocking & (Interruptibility.BlockingBySti | Interruptibility.BlockingByMovSs))
    ) {
      const vector = apic.acknowledgeInterrupt() & 0xff;
      vmx.vmwrite(
        F.VmEntryInterruptionInfo,
        (IntrInfo.VALID | (EventType.External << IntrInfo.TYPE_SHIFT) | vector) >>> 0,
      );
      this.stats.injected++;
      if (this.window) this.setWindow(false);
    } else this.setWindow(true);
  }

  /**
   * The pending virtual NMI is injected (type NMI, vector 2; SDM 26.6.1.1) when nothing else is
   * being injected and the guest can take it: no virtual-NMI blocking (the guest's handler runs
   * until its IRET), no blocking by MOV SS (VM entry refuses an NMI then, SDM 26.3.1.5) and none
   * by STI (some processors block NMIs after STI: the window waits for the shadow to end, as
   * KVM does). Otherwise NMI-window exiting (SDM 25.2) asks for the next chance. NMIs are not
   * masked by RFLAGS.IF. Injecting sets virtual-NMI blocking (SDM 26.6.1.2).
   */
  private checkNmi(vmx: Vmx): void {
    if (
      vmx.vmread32(F.VmEntryInterruptionInfo) & IntrInfo.VALID ||
      vmx.vmread32(F.GuestInterruptibilityState) & NMI_BLOCKING
    ) {
      this.setNmiWindow(true);
      return;
    }
    vmx.vmwrite(
      F.VmEntryInterruptionInfo,
      (IntrInfo.VALID | (EventType.Nmi << IntrInfo.TYPE_SHIFT) | Vector.NMI) >>> 0,
    );
    this.nmiPending = false;
    this.stats.nmisInjected++;
    if (this.nmiWindow) this.setNmiWindow(false);
  }

  private setWindow(on: boolean): void {
    if (on === this.window) return;
    this.window = on;
    if (on) this.stats.windowOpened++;
    this.writeControls();
  }

  /** Without "virtual NMIs" there is no NMI window: the NMI waits for a later exit (warned once). */
  private setNmiWindow(on: boolean): void {
    if (on === this.nmiWindow) return;
    if (on && !this.nmiWindowUsable) {
      this.warnOnce(
        'nmi-window',
        'the VMX model offers no "virtual NMIs" control: a blocked guest NMI waits for a later VM exit',
      );
      return;
    }
    this.nmiWindow = on;
    this.writeControls();
  }

  private writeControls(): void {
    this.vmx.vmwrite(
      F.PrimaryProcBasedVmExecControls,
      (this.proc |
        (this.window ? ProcCtl.InterruptWindowExiting : 0) |
        (this.nmiWindow ? ProcCtl.NmiWindowExiting : 0)) >>>
        0,
    );
  }

  // ---- stops ------------------------------------------------------------------------------------

  private fault(message: string): void {
    this.o.stop({
      kind: 'fault',
      message: `${this.o.source}: ${message}`,
      state: this.o.dumpState(),
      source: this.o.source,
    });
    this.vmx.stopGuest();
  }

  private warnOnce(key: string, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.o.log.warn(message);
  }
}
