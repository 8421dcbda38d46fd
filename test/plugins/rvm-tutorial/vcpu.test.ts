/**
 * The exit handler against a scripted VMX (fields in a map) and a scripted local APIC: event
 * re-injection from the IDT-vectoring information, and the injection decision when an event is
 * already being injected or the guest cannot take an interrupt.
 */
import { describe, expect, it } from 'vitest';
import { Bus } from '../../../src/core/bus.js';
import type { StopReason } from '../../../src/core/stop.js';
import type { LocalApic, MsrRead } from '../../../src/devices/apic.js';
import { EventType } from '../../../src/x86/exceptions.js';
import { EptViolation } from '../../../src/x86/ept.js';
import {
  ExitReason,
  Interruptibility,
  IntrInfo,
  PinCtl,
  ProcCtl,
  VmcsField as F,
} from '../../../src/x86/vmx.js';
import { GuestCpuid } from '../../../plugins/rvm-tutorial/cpuid.js';
import { Vcpu } from '../../../plugins/rvm-tutorial/vcpu.js';
import type { Vmx } from '../../../plugins/vmx/api.js';

class FakeVmx {
  readonly fields = new Map<number, number>();
  exitReason = 0;
  exitQualification = 0;
  exitInstructionLength = 0;
  ripAdvanced = 0;
  stopped = false;
  vmread32(f: number): number {
    return (this.fields.get(f) ?? 0) >>> 0;
  }
  vmread(f: number): bigint {
    return BigInt(this.vmread32(f));
  }
  vmwrite(f: number, v: number | bigint): number {
    this.fields.set(f, Number(v) >>> 0);
    return 0;
  }
  advanceRip(): void {
    this.ripAdvanced++;
  }
  stopGuest(): void {
    this.stopped = true;
  }
  getGpr32(): number {
    return 0;
  }
  setGpr32(): void {}
}

class FakeApic {
  pending: number[] = [];
  acks = 0;
  hasPendingInterrupt(): boolean {
    return this.pending.length > 0;
  }
  acknowledgeInterrupt(): number {
    this.acks++;
    return this.pending.shift()!;
  }
  readMsr(): MsrRead {
    return { ok: false, lo: 0, hi: 0 };
  }
  writeMsr(): boolean {
    return false;
  }
}

function setup(pin = 0) {
  const vmx = new FakeVmx();
  const apic = new FakeApic();
  const stops: StopReason[] = [];
  const eois: number[] = [];
  const warnings: string[] = [];
  const vcpu = new Vcpu({
    vmx: vmx as unknown as Vmx,
    guestBus: new Bus('guest'),
    cpuid: new GuestCpuid(() => {}, { signature: 'RVMRVMRVMRVM' }),
    apic: apic as unknown as LocalApic,
    hostEoi: (v) => eois.push(v),
    dumpState: () => 'state',
    stop: (r) => stops.push(r),
    log: { info() {}, warn: (m) => warnings.push(m), debug() {} },
    source: 'rvm-tutorial',
    protectedMode: () => true,
  });
  vcpu.setPrimaryControls(0x1234_0000, pin);
  return { vmx, apic, vcpu, stops, eois, warnings };
}

const EXT = (v: number) => (IntrInfo.VALID | (EventType.External << IntrInfo.TYPE_SHIFT) | v) >>> 0;

describe('Vcpu', () => {
  it('re-injects an event whose delivery an exit interrupted, and holds the APIC interrupt back', () => {
    const { vmx, apic, vcpu, eois } = setup();
    vmx.exitReason = ExitReason.ExternalInterrupt;
    vmx.fields.set(F.VmExitInterruptionInfo, EXT(0xfd)); // the host's kick vector
    const pf =
      (IntrInfo.VALID |
        (EventType.HardwareException << IntrInfo.TYPE_SHIFT) |
        14 |
        IntrInfo.DELIVER_ERROR_CODE) >>>
      0;
    vmx.fields.set(F.IdtVectoringInfo, pf);
    vmx.fields.set(F.IdtVectoringErrorCode, 6);
    vmx.fields.set(F.GuestRflags, 0x202);
    apic.pending = [0xf0];
    vcpu.handle(vmx as unknown as Vmx);
    expect(eois).toEqual([0xfd]);
    expect(vmx.vmread32(F.VmEntryInterruptionInfo)).toBe(pf);
    expect(vmx.vmread32(F.VmEntryExceptionErrorCode)).toBe(6);
    // The timer interrupt waits for the next window, still in the APIC's IRR.
    expect(apic.acks).toBe(0);
    expect(vmx.vmread32(F.PrimaryProcBasedVmExecControls)).toBe(
      (0x1234_0000 | ProcCtl.InterruptWindowExiting) >>> 0,
    );
    expect(vcpu.stats).toMatchObject({ reinjected: 1, injected: 0, windowOpened: 1 });
  });

  it('a software interrupt is re-injected with its instruction length', () => {
    const { vmx, vcpu } = setup();
    vmx.exitReason = ExitReason.ExternalInterrupt;
    vmx.exitInstructionLength = 2;
    const int80 = (IntrInfo.VALID | (EventType.SoftwareInterrupt << IntrInfo.TYPE_SHIFT) | 0x80) >>> 0;
    vmx.fields.set(F.IdtVectoringInfo, int80);
    vcpu.handle(vmx as unknown as Vmx);
    expect(vmx.vmread32(F.VmEntryInterruptionInfo)).toBe(int80);
    expect(vmx.vmread32(F.VmEntryInstructionLength)).toBe(2);
  });

  it('injects when IF=1 without a shadow, else opens the window; closes it once the IRR is empty', () => {
    const { vmx, apic, vcpu } = setup();
    vmx.exitReason = ExitReason.InterruptWindow;
    apic.pending = [0xf0, 0xf1];
    vmx.fields.set(F.GuestRflags, 0x202);
    vmx.fields.set(F.GuestInterruptibilityState, 1); // blocking by STI
    vcpu.handle(vmx as unknown as Vmx);
    expect(apic.acks).toBe(0);
    expect(vcpu.stats.windowOpened).toBe(1);

    vmx.fields.set(F.GuestInterruptibilityState, 0);
    vcpu.handle(vmx as unknown as Vmx);
    expect(vmx.vmread32(F.VmEntryInterruptionInfo)).toBe(EXT(0xf0));
    expect(vmx.vmread32(F.PrimaryProcBasedVmExecControls)).toBe(0x1234_0000);

    // The next exit: the entry information was consumed (the model clears the valid bit); 0xF1 next.
    vmx.fields.set(F.VmEntryInterruptionInfo, 0);
    vcpu.handle(vmx as unknown as Vmx);
    expect(vmx.vmread32(F.VmEntryInterruptionInfo)).toBe(EXT(0xf1));
    vmx.fields.set(F.VmEntryInterruptionInfo, 0);
    vcpu.handle(vmx as unknown as Vmx);
    expect(vmx.vmread32(F.VmEntryInterruptionInfo)).toBe(0);
    expect(vcpu.stats).toMatchObject({ injected: 2, windowOpened: 1 });
  });

  it('an exit reason it does not handle stops the machine with the state', () => {
    const { vmx, vcpu, stops } = setup();
    vmx.exitReason = ExitReason.Rdtsc;
    vcpu.handle(vmx as unknown as Vmx);
    expect(vmx.stopped).toBe(true);
    expect(stops).toEqual([
      {
        kind: 'fault',
        message: 'rvm-tutorial: unhandled VM exit Rdtsc (reason 16), qualification 0x0',
        state: 'state',
        source: 'rvm-tutorial',
      },
    ]);
  });
});

const NMI = (IntrInfo.VALID | (EventType.Nmi << IntrInfo.TYPE_SHIFT) | 2) >>> 0;
const VNMI = PinCtl.NmiExiting | PinCtl.VirtualNmis;
const PROC = 0x1234_0000;

describe('Vcpu: virtual NMIs', () => {
  /** An exit the policy answers without touching the entry fields (a CPUID). */
  const exit = (vmx: FakeVmx, vcpu: Vcpu, reason: number = ExitReason.Cpuid) => {
    vmx.exitReason = reason;
    vmx.fields.set(F.VmEntryInterruptionInfo, 0); // consumed by the last entry
    vcpu.handle(vmx as unknown as Vmx);
  };

  for (const [name, blocking] of [
    ['virtual-NMI blocking (the handler has not returned)', Interruptibility.BlockingByNmi],
    ['blocking by MOV SS (VM entry refuses an NMI then)', Interruptibility.BlockingByMovSs],
    ['blocking by STI', Interruptibility.BlockingBySti],
  ] as const)
    it(`holds the NMI back under ${name}: NMI-window exiting, injected at the NMI-window exit`, () => {
      const { vmx, vcpu } = setup(VNMI);
      vmx.fields.set(F.GuestRflags, 0x202);
      vmx.fields.set(F.GuestInterruptibilityState, blocking);
      vcpu.raiseNmi();
      exit(vmx, vcpu);
      expect(vmx.vmread32(F.VmEntryInterruptionInfo)).toBe(0);
      expect(vmx.vmread32(F.PrimaryProcBasedVmExecControls)).toBe((PROC | ProcCtl.NmiWindowExiting) >>> 0);
      expect(vcpu.nmiIsPending).toBe(true);

      vmx.fields.set(F.GuestInterruptibilityState, 0);
      exit(vmx, vcpu, ExitReason.NmiWindow);
      expect(vmx.vmread32(F.VmEntryInterruptionInfo)).toBe(NMI);
      expect(vmx.vmread32(F.PrimaryProcBasedVmExecControls)).toBe(PROC);
      expect(vcpu.nmiIsPending).toBe(false);
      expect(vcpu.stats).toMatchObject({ nmis: 1, nmisInjected: 1, nmiWindowExits: 1 });
    });

  it('NMIs are not masked by RFLAGS.IF; a second NMI before injection merges with the first', () => {
    const { vmx, vcpu } = setup(VNMI);
    vmx.fields.set(F.GuestRflags, 0x2);
    vcpu.raiseNmi();
    vcpu.raiseNmi();
    exit(vmx, vcpu);
    expect(vmx.vmread32(F.VmEntryInterruptionInfo)).toBe(NMI);
    exit(vmx, vcpu);
    expect(vmx.vmread32(F.VmEntryInterruptionInfo)).toBe(0);
    expect(vcpu.stats).toMatchObject({ nmis: 2, nmisInjected: 1, nmiWindowExits: 0 });
  });

  it('an NMI goes before a pending APIC interrupt, which waits for the interrupt window', () => {
    const { vmx, apic, vcpu } = setup(VNMI);
    vmx.fields.set(F.GuestRflags, 0x202);
    apic.pending = [0x40];
    vcpu.raiseNmi();
    exit(vmx, vcpu);
    expect(vmx.vmread32(F.VmEntryInterruptionInfo)).toBe(NMI);
    expect(apic.acks).toBe(0);
    expect(vmx.vmread32(F.PrimaryProcBasedVmExecControls)).toBe(
      (PROC | ProcCtl.InterruptWindowExiting) >>> 0,
    );
    exit(vmx, vcpu, ExitReason.InterruptWindow);
    expect(vmx.vmread32(F.VmEntryInterruptionInfo)).toBe(EXT(0x40));
  });

  it('a re-injected event comes first: the pending NMI waits for the NMI window', () => {
    const { vmx, vcpu } = setup(VNMI);
    vmx.fields.set(F.GuestRflags, 0x202);
    vmx.fields.set(F.IdtVectoringInfo, EXT(0x40));
    vcpu.raiseNmi();
    exit(vmx, vcpu, ExitReason.ExternalInterrupt);
    expect(vmx.vmread32(F.VmEntryInterruptionInfo)).toBe(EXT(0x40));
    expect(vmx.vmread32(F.PrimaryProcBasedVmExecControls) & ProcCtl.NmiWindowExiting).not.toBe(0);
    expect(vcpu.nmiIsPending).toBe(true);
  });

  it('an NMI whose delivery an exit interrupted is injected again, without virtual-NMI blocking', () => {
    const { vmx, vcpu } = setup(VNMI);
    vmx.fields.set(F.IdtVectoringInfo, (NMI | IntrInfo.NMI_UNBLOCKING) >>> 0);
    vmx.fields.set(
      F.GuestInterruptibilityState,
      Interruptibility.BlockingByNmi | Interruptibility.BlockingBySti,
    );
    exit(vmx, vcpu, ExitReason.ExternalInterrupt);
    expect(vmx.vmread32(F.VmEntryInterruptionInfo)).toBe(NMI);
    expect(vmx.vmread32(F.GuestInterruptibilityState)).toBe(Interruptibility.BlockingBySti);
    expect(vcpu.stats).toMatchObject({ reinjected: 1, nmisInjected: 0 });
  });

  it('an IRET that unblocked NMIs and faulted into an exit gets its virtual-NMI blocking back', () => {
    const { vmx, vcpu } = setup(VNMI);
    vmx.fields.set(F.VmExitInterruptionInfo, (NMI | IntrInfo.NMI_UNBLOCKING) >>> 0);
    exit(vmx, vcpu, ExitReason.ExceptionOrNmi);
    expect(vmx.vmread32(F.GuestInterruptibilityState)).toBe(Interruptibility.BlockingByNmi);
    // An EPT violation of the IRET's stack read (qualification bit 12) likewise, even if it then stops.
    const b = setup(VNMI);
    b.vmx.exitQualification = EptViolation.NMI_UNBLOCKING | EptViolation.DATA_READ;
    exit(b.vmx, b.vcpu, ExitReason.EptViolation);
    expect(b.vmx.vmread32(F.GuestInterruptibilityState)).toBe(Interruptibility.BlockingByNmi);
  });

  it('without virtual NMIs there is no NMI window: the NMI waits for a later exit, with a warning', () => {
    const { vmx, vcpu, warnings } = setup(PinCtl.NmiExiting);
    vmx.fields.set(F.GuestInterruptibilityState, Interruptibility.BlockingByMovSs);
    vcpu.raiseNmi();
    exit(vmx, vcpu);
    expect(vmx.vmread32(F.PrimaryProcBasedVmExecControls) & ProcCtl.NmiWindowExiting).toBe(0);
    expect(warnings.join()).toMatch(/virtual NMIs/);
    vmx.fields.set(F.GuestInterruptibilityState, 0);
    exit(vmx, vcpu);
    expect(vmx.vmread32(F.VmEntryInterruptionInfo)).toBe(NMI);
  });
});
