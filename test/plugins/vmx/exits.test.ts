import { describe, expect, it } from 'vitest';
import { EptViolation } from '../../../src/x86/ept.js';
import {
  DtInstrInfo,
  ExitReason,
  Interruptibility,
  PinCtl,
  Proc2Ctl,
  ProcCtl,
  VmcsField as F,
} from '../../../src/x86/vmx.js';
import { CODE, bench, guest, idtGate, type Bench } from './harness.js';

function addProc(b: Bench, bits: number): void {
  expect(
    b.vmx.vmwrite(
      F.PrimaryProcBasedVmExecControls,
      (b.vmx.vmread32(F.PrimaryProcBasedVmExecControls) | bits) >>> 0,
    ),
  ).toBe(0);
}

function go(b: Bench): void {
  expect(b.vmx.launch()).toEqual({ kind: 'entered' });
  b.m.run(1_000_000);
}

describe('VM exits with SDM exit information', () => {
  it('RDTSC exiting: RDTSC (16) and RDTSCP (51) exit, EDX:EAX untouched by the CPU', () => {
    const b = bench();
    addProc(b, ProcCtl.RdtscExiting);
    b.vmx.vmwrite(
      F.SecondaryProcBasedVmExecControls,
      b.vmx.vmread32(F.SecondaryProcBasedVmExecControls) | Proc2Ctl.EnableRdtscp,
    );
    guest(b, `mov eax, 0x11\n mov edx, 0x22\n rdtsc\n rdtscp\n out 0xeb, al`, (r) => {
      b.vmx.advanceRip();
      return r === ExitReason.Rdtscp ? 'stop' : undefined;
    });
    go(b);
    expect(b.exits.map((e) => [e.reason, e.len])).toEqual([
      [ExitReason.Rdtsc, 2],
      [ExitReason.Rdtscp, 3],
    ]);
    expect([b.vmx.getGpr32(0), b.vmx.getGpr32(2)]).toEqual([0x11, 0x22]);
  });

  it('descriptor-table exiting: instruction information (27.2.5) and the displacement as qualification', () => {
    const b = bench();
    b.vmx.vmwrite(
      F.SecondaryProcBasedVmExecControls,
      b.vmx.vmread32(F.SecondaryProcBasedVmExecControls) | Proc2Ctl.DescriptorTableExiting,
    );
    const info: number[] = [];
    guest(
      b,
      `mov ebx, 0x3000\n mov esi, 2\n sgdt [ebx+esi*4-8]\n lidt fs:[0x4000]\n sldt ax\n ltr word ptr [ebx]\n out 0xeb, al`,
      (r) => {
        info.push(b.vmx.vmread32(F.VmExitInstructionInfo));
        b.vmx.advanceRip();
        return r === ExitReason.LdtrTrAccess && info.length === 4 ? 'stop' : undefined;
      },
    );
    go(b);
    expect(b.exits.map((e) => [e.reason, e.qual])).toEqual([
      [ExitReason.GdtrIdtrAccess, -8],
      [ExitReason.GdtrIdtrAccess, 0x4000],
      [ExitReason.LdtrTrAccess, 0],
      [ExitReason.LdtrTrAccess, 0],
    ]);
    const A32 = 1 << DtInstrInfo.ADDRESS_SIZE_SHIFT;
    expect(info).toEqual([
      // SGDT [ebx+esi*4-8]: scale 2, DS, index ESI (6), base EBX (3), 32-bit operand, identity 0.
      2 |
        A32 |
        DtInstrInfo.OPERAND_SIZE_32 |
        (3 << DtInstrInfo.SEGMENT_SHIFT) |
        (6 << DtInstrInfo.INDEX_SHIFT) |
        (3 << DtInstrInfo.BASE_SHIFT),
      // LIDT fs:[0x4000]: FS, no index, no base, identity 3.
      A32 |
        DtInstrInfo.OPERAND_SIZE_32 |
        (4 << DtInstrInfo.SEGMENT_SHIFT) |
        DtInstrInfo.INDEX_INVALID |
        DtInstrInfo.BASE_INVALID |
        (3 << DtInstrInfo.IDENTITY_SHIFT),
      // SLDT ax: register operand EAX, identity 0.
      A32 | DtInstrInfo.REGISTER,
      // LTR [ebx]: DS, base EBX, identity 3.
      A32 |
        (3 << DtInstrInfo.SEGMENT_SHIFT) |
        DtInstrInfo.INDEX_INVALID |
        (3 << DtInstrInfo.BASE_SHIFT) |
        (3 << DtInstrInfo.IDENTITY_SHIFT),
    ]);
  });

  it('I/O: OUT imm8, OUT DX word, IN DX dword, REP OUTSB (qualification bits 2:0, 3, 4, 5, 6, 31:16)', () => {
    const b = bench();
    addProc(b, ProcCtl.UnconditionalIoExiting);
    guest(
      b,
      `out 0x80, al\n mov dx, 0x3f8\n out dx, ax\n in eax, dx\n mov esi, 0x2000\n mov ecx, 3\n rep outsb\n out 0xeb, al`,
      (r) => {
        b.vmx.advanceRip();
        return b.exits.length === 5 || r !== ExitReason.IoInstruction ? 'stop' : undefined;
      },
    );
    go(b);
    expect(b.exits.map((e) => [e.reason, e.qual.toString(16), e.len])).toEqual([
      [30, ((0x80 << 16) | 0x40).toString(16), 2],
      [30, ((0x3f8 << 16) | 1).toString(16), 2],
      [30, ((0x3f8 << 16) | 8 | 3).toString(16), 1],
      [30, ((0x3f8 << 16) | 0x30).toString(16), 2],
      [30, ((0xeb << 16) | 0x40).toString(16), 2],
    ]);
    // From the REP OUTSB exit (the later OUT imm8 does not define them): DS:ESI, 32-bit addresses, DS.
    expect(b.vmx.vmread(F.GuestLinearAddress)).toBe(0x2000n);
    expect(b.vmx.vmread(F.VmExitInstructionInfo)).toBe(BigInt((1 << 7) | (3 << 15)));
  });

  it('I/O bitmaps: only ports whose bit is set exit; the others reach the bus', () => {
    const b = bench();
    addProc(b, ProcCtl.UseIoBitmaps);
    b.vmx.vmwrite(F.IoBitmapA, 0x10000);
    b.vmx.vmwrite(F.IoBitmapB, 0x11000);
    b.m.ram[0x10000 + (0x80 >> 3)] = 1 << (0x80 & 7);
    b.m.ram[0x11000 + ((0x8001 & 0x7fff) >> 3)] = 1 << 1;
    guest(
      b,
      `mov eax, 0x41\n out 0xe9, al\n out 0x80, al\n mov dx, 0x8001\n in al, dx\n out 0xeb, al`,
      () => {
        b.vmx.advanceRip();
      },
    );
    go(b);
    expect(b.exits.map((e) => e.qual >>> 16)).toEqual([0x80, 0x8001]);
    expect(b.m.text()).toBe('A');
    expect(b.m.done).toBe(true);
  });

  it('CPUID (always), HLT exiting, VMCALL: reason and instruction length', () => {
    const b = bench();
    addProc(b, ProcCtl.HltExiting);
    guest(b, `cpuid\n hlt\n vmcall\n out 0xeb, al`, (r) => {
      b.vmx.advanceRip();
      return r === ExitReason.Vmcall ? 'stop' : undefined;
    });
    go(b);
    expect(b.exits.map((e) => [e.reason, e.len])).toEqual([
      [ExitReason.Cpuid, 2],
      [ExitReason.Hlt, 1],
      [ExitReason.Vmcall, 3],
    ]);
  });

  it('RDMSR/WRMSR with MSR bitmaps: low and high ranges, read and write halves', () => {
    const b = bench();
    addProc(b, ProcCtl.UseMsrBitmaps);
    b.vmx.vmwrite(F.MsrBitmap, 0x12000);
    const setBit = (off: number, msr: number) =>
      (b.m.ram[0x12000 + off + ((msr & 0x1fff) >> 3)]! |= 1 << (msr & 7));
    setBit(0x000, 0x1b); // read low
    setBit(0xc00, 0xc0000100); // write high (FS base)
    guest(
      b,
      `mov ecx, 0x1b\n rdmsr\n mov ecx, 0x174\n rdmsr\n xor eax, eax\n xor edx, edx\n mov ecx, 0xc0000100\n wrmsr\n rdmsr\n out 0xeb, al`,
      () => b.vmx.advanceRip(),
    );
    go(b);
    expect(b.exits.map((e) => [e.reason, e.len])).toEqual([
      [ExitReason.Rdmsr, 2],
      [ExitReason.Wrmsr, 2],
    ]);
  });

  it('CR0 guest/host mask and read shadow: MOV from CR0 reads the shadow, changing an owned bit exits', () => {
    const b = bench();
    b.vmx.vmwrite(F.Cr0GuestHostMask, 0x60000020); // NE | NW | CD
    b.vmx.vmwrite(F.Cr0ReadShadow, 0x20);
    guest(b, `mov eax, cr0\n out 0xe4, eax\n or eax, 0x40000000\n mov cr0, eax\n out 0xeb, al`, () =>
      b.vmx.advanceRip(),
    );
    go(b);
    expect(b.m.values).toEqual([0x31]);
    expect(b.exits).toHaveLength(1);
    expect(b.exits[0]).toMatchObject({ reason: ExitReason.CrAccess, qual: 0 | (0 << 4) | (0 << 8), len: 3 });
  });

  it('an exit on the instruction in an STI or MOV SS shadow saves the blocking (27.3.4); skipping the instruction ends it', () => {
    const b = bench();
    const seen: string[] = [];
    let first = true;
    // CPUID always exits. The second one sits in the STI shadow, the fourth in the MOV SS shadow.
    guest(b, `cpuid\n sti\n cpuid\n mov ax, ss\n mov ss, ax\n cpuid\n cpuid\n out 0xeb, al`, () => {
      const at = b.m.cpu.rip - CODE;
      const before = b.vmx.vmread32(F.GuestInterruptibilityState);
      // The exit in the STI shadow is resumed once without skipping CPUID: it runs in the shadow again.
      if (at === 3 && first) {
        first = false;
        seen.push(`${at}:${before}:again`);
        return;
      }
      b.vmx.advanceRip();
      seen.push(`${at}:${before}:${b.vmx.vmread32(F.GuestInterruptibilityState)}`);
    });
    go(b);
    const sti = Interruptibility.BlockingBySti;
    const movss = Interruptibility.BlockingByMovSs;
    expect(seen).toEqual(['0:0:0', `3:${sti}:again`, `3:${sti}:0`, `10:${movss}:0`, '12:0:0']);
    expect(b.m.values).toEqual([]);
  });

  it('exception bitmap: #UD exits with interruption information; #PF error-code mask/match', () => {
    const b = bench();
    b.vmx.vmwrite(F.ExceptionBitmap, 1 << 6);
    guest(b, `ud2\n out 0xeb, al`, () => {
      b.vmx.advanceRip();
      b.vmx.vmwrite(F.GuestRip, CODE + 2);
    });
    go(b);
    expect(b.exits[0]).toMatchObject({ reason: ExitReason.ExceptionOrNmi, qual: 0 });
    expect(b.vmx.vmread(F.VmExitInterruptionInfo)).toBe(BigInt(0x80000306));
  });

  describe('an IRET that unblocks NMIs and faults (NMI unblocking due to IRET, 27.2.2, 27.2.3)', () => {
    // A frame whose CS selector (0x50) is beyond the GDT limit: IRET raises #GP(0x50).
    const BAD_FRAME = `push 0x2\n push 0x50\n push ${CODE + 0x40}\n iretd\n .org 0x40\n out 0xeb, al`;

    for (const blocked of [true, false]) {
      it(`#GP exit: interruption information bit 12 is ${blocked ? 'set' : 'clear'} (virtual-NMI blocking ${blocked ? 'on' : 'off'})`, () => {
        const b = bench();
        b.vmx.vmwrite(
          F.PinBasedVmExecControls,
          b.vmx.vmread32(F.PinBasedVmExecControls) | PinCtl.NmiExiting | PinCtl.VirtualNmis,
        );
        b.vmx.vmwrite(F.GuestInterruptibilityState, blocked ? Interruptibility.BlockingByNmi : 0);
        b.vmx.vmwrite(F.ExceptionBitmap, 1 << 13);
        guest(b, BAD_FRAME, () => 'stop');
        go(b);
        expect(b.exits[0]).toMatchObject({ reason: ExitReason.ExceptionOrNmi });
        expect(b.vmx.vmread32(F.VmExitInterruptionInfo) >>> 0).toBe(
          (blocked ? 0x80001b0d : 0x80000b0d) >>> 0,
        );
        expect(b.vmx.vmread32(F.VmExitInterruptionErrorCode)).toBe(0x50);
        // The IRET unblocked NMIs although it faulted (SDM Vol. 3A 6.7.1).
        expect(b.vmx.vmread32(F.GuestInterruptibilityState) & Interruptibility.BlockingByNmi).toBe(0);
      });
    }

    it('EPT violation popping the frame: qualification bit 12 set', () => {
      const b = bench();
      b.vmx.vmwrite(
        F.PinBasedVmExecControls,
        b.vmx.vmread32(F.PinBasedVmExecControls) | PinCtl.NmiExiting | PinCtl.VirtualNmis,
      );
      b.vmx.vmwrite(F.GuestInterruptibilityState, Interruptibility.BlockingByNmi);
      b.ept.unmapped.add(0x6);
      guest(b, `mov esp, 0x6ff0\n iretd`, () => 'stop');
      go(b);
      expect(b.exits[0]?.reason).toBe(ExitReason.EptViolation);
      expect(b.exits[0]!.qual & EptViolation.NMI_UNBLOCKING).toBeTruthy();
      expect(b.exits[0]!.qual & EptViolation.DATA_READ).toBeTruthy();
      expect(b.exits[0]!.rip).toBe(CODE + 5); // at the IRET
    });
  });

  it('monitor trap flag: an exit after every instruction', () => {
    const b = bench();
    addProc(b, ProcCtl.MonitorTrapFlag);
    guest(b, `nop\n nop\n inc eax\n out 0xeb, al`, () => (b.exits.length >= 3 ? 'stop' : undefined));
    go(b);
    expect(b.exits.map((e) => [e.reason, e.rip - CODE])).toEqual([
      [ExitReason.MonitorTrapFlag, 1],
      [ExitReason.MonitorTrapFlag, 2],
      [ExitReason.MonitorTrapFlag, 3],
    ]);
  });

  it('VMX-preemption timer: exits after value * 2^rate TSC ticks of virtual time', () => {
    const b = bench();
    b.vmx.vmwrite(
      F.PinBasedVmExecControls,
      (b.vmx.vmread32(F.PinBasedVmExecControls) | PinCtl.ActivatePreemptionTimer) >>> 0,
    );
    b.vmx.vmwrite(F.VmxPreemptionTimerValue, 100);
    guest(b, `1: jmp 1b`, () => 'stop');
    const t0 = b.m.clock.now;
    expect(b.vmx.launch()).toEqual({ kind: 'entered' });
    for (let i = 0; i < 100 && !b.m.done; i++) {
      b.m.cpu.run(b.m.clock.now + 10_000);
      b.m.clock.fireDue();
    }
    expect(b.exits[0]?.reason).toBe(ExitReason.PreemptionTimerExpired);
    // 100 * 32 ticks at the CPU's TSC rate.
    const expectNs = (100 * 32 * 1000) / b.m.cpu.model.tscMhz;
    expect(b.m.clock.now - t0).toBeGreaterThanOrEqual(expectNs);
    expect(b.m.clock.now - t0).toBeLessThan(expectNs + 20_000);
  });

  it('event injection: #GP with error code reaches the guest handler', () => {
    const b = bench();
    idtGate(b, 13, CODE + 0x100);
    b.vmx.vmwrite(F.VmEntryInterruptionInfo, 0x80000b0d);
    b.vmx.vmwrite(F.VmEntryExceptionErrorCode, 0x18);
    guest(b, `out 0xeb, al\n .org 0x100\n pop eax\n out 0xe4, eax\n out 0xeb, al`);
    go(b);
    expect(b.m.values).toEqual([0x18]);
  });

  it('IDT-vectoring information: an EPT violation while delivering an injected interrupt', () => {
    const b = bench();
    idtGate(b, 0x30, CODE + 0x100);
    b.ept.unmapped.add(0x6); // the stack page (RSP 0x7000 pushes into 0x6xxx)
    b.vmx.vmwrite(F.GuestRflags, 0x202);
    b.vmx.vmwrite(F.VmEntryInterruptionInfo, 0x80000030);
    guest(b, `out 0xeb, al\n .org 0x100\n out 0xeb, al`, () => 'stop');
    go(b);
    expect(b.exits[0]?.reason).toBe(ExitReason.EptViolation);
    expect(b.exits[0]!.qual & EptViolation.DATA_WRITE).toBeTruthy();
    expect(b.vmx.vmread(F.IdtVectoringInfo)).toBe(0x80000030n);
    expect(Number(b.vmx.vmread(F.GuestPhysicalAddress)) >> 12).toBe(6);
  });

  it('exit statistics count per reason', () => {
    const b = bench();
    guest(b, `cpuid\n cpuid\n vmcall`, (r) => {
      b.vmx.advanceRip();
      return r === ExitReason.Vmcall ? 'stop' : undefined;
    });
    go(b);
    expect(b.vmx.exitStats().map((s) => [s.name, s.count])).toEqual([
      ['Cpuid', 2],
      ['Vmcall', 1],
    ]);
  });

  it('a handler that leaves RIP alone runs the instruction again; one that advances it goes on after it', () => {
    const b = bench();
    let n = 0;
    guest(b, `cpuid\n inc ebx\n cpuid\n vmcall`, (r) => {
      // The first CPUID exit resumes at the CPUID itself (no advance): it exits again.
      if (++n > 1) b.vmx.advanceRip();
      return r === ExitReason.Vmcall ? 'stop' : undefined;
    });
    b.m.cpu.rl[3] = 0;
    go(b);
    expect(b.exits.map((e) => [e.reason, e.rip - CODE])).toEqual([
      [ExitReason.Cpuid, 0],
      [ExitReason.Cpuid, 0],
      [ExitReason.Cpuid, 3],
      [ExitReason.Vmcall, 5],
    ]);
    expect(b.m.cpu.rl[3]).toBe(1); // INC EBX ran once
  });

  it('after an exit, a VMWRITE of guest state is checked at the resume (26.3): invalid CS is an entry failure', () => {
    const b = bench();
    guest(b, `cpuid\n cpuid\n vmcall`, (r) => {
      if (r === ExitReason.Cpuid) {
        b.vmx.advanceRip();
        // Code segment access rights of an expand-down data segment: invalid for CS (26.3.1.2).
        if (b.exits.length === 2) expect(b.vmx.vmwrite(F.GuestCsAccessRights, 0xc097)).toBe(0);
        return undefined;
      }
      return 'stop';
    });
    go(b);
    // The first exit resumes unchecked (nothing changed); the second one's VMWRITE fails the entry.
    expect(b.exits.map((e) => e.reason >>> 0)).toEqual([
      ExitReason.Cpuid,
      ExitReason.Cpuid,
      (ExitReason.EntryFailureGuestState | 0x8000_0000) >>> 0,
    ]);
  });

  it('after an exit, a VMWRITE of guest RIP is where the guest resumes', () => {
    const b = bench();
    guest(b, `cpuid\n vmcall\n cpuid\n vmcall`, (r) => {
      if (r === ExitReason.Cpuid && b.exits.length === 1) {
        expect(b.vmx.vmwrite(F.GuestRip, CODE + 5)).toBe(0); // skip to the second CPUID
        return undefined;
      }
      b.vmx.advanceRip();
      return r === ExitReason.Vmcall ? 'stop' : undefined;
    });
    go(b);
    expect(b.exits.map((e) => [e.reason, e.rip - CODE])).toEqual([
      [ExitReason.Cpuid, 0],
      [ExitReason.Cpuid, 5],
      [ExitReason.Vmcall, 7],
    ]);
  });
});
