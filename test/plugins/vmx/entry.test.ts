import { describe, expect, it } from 'vitest';
import {
  EXIT_REASON_ENTRY_FAILURE,
  EntryCtl,
  ExitCtl,
  ExitReason,
  PinCtl,
  Proc2Ctl,
  ProcCtl,
  VmInstructionError,
  VmcsField as F,
} from '../../../src/x86/vmx.js';
import { bench } from './harness.js';

const CTL = VmInstructionError.EntryInvalidControlFields;
const HOST = VmInstructionError.EntryInvalidHostStateFields;
const GUEST = {
  kind: 'entry-failure',
  exitReason: (ExitReason.EntryFailureGuestState | EXIT_REASON_ENTRY_FAILURE) >>> 0,
};

/** Apply one change to a valid VMCS and launch. */
function launchWith(change: (w: (f: number, v: number | bigint) => void, r: (f: number) => number) => void) {
  const { vmx } = bench();
  change(
    (f, v) => expect(vmx.vmwrite(f, v)).toBe(0),
    (f) => vmx.vmread32(f),
  );
  return vmx.launch();
}

describe('VM entry', () => {
  it('the bench VMCS is valid; VMLAUNCH twice fails with 4, VMRESUME before launch with 5', () => {
    const { vmx } = bench();
    expect(vmx.resume()).toEqual({ kind: 'vmfail', error: VmInstructionError.VmresumeNonLaunchedVmcs });
    expect(vmx.launch()).toEqual({ kind: 'entered' });
    expect(vmx.launch()).toEqual({ kind: 'vmfail', error: VmInstructionError.VmlaunchNonClearVmcs });
    vmx.vmclear();
    expect(vmx.launch()).toEqual({ kind: 'entered' });
  });

  describe('26.2.1 control checks fail with VM-instruction error 7', () => {
    const cases: [string, Parameters<typeof launchWith>[0]][] = [
      [
        'a pin control outside allowed-1',
        (w, r) => w(F.PinBasedVmExecControls, r(F.PinBasedVmExecControls) | PinCtl.ProcessPostedInterrupts),
      ],
      ['a default1 pin bit cleared', (w) => w(F.PinBasedVmExecControls, 0)],
      [
        'RDPMC exiting (not implemented)',
        (w, r) =>
          w(F.PrimaryProcBasedVmExecControls, r(F.PrimaryProcBasedVmExecControls) | ProcCtl.RdpmcExiting),
      ],
      [
        'a secondary control outside allowed-1',
        (w, r) =>
          w(
            F.SecondaryProcBasedVmExecControls,
            r(F.SecondaryProcBasedVmExecControls) | Proc2Ctl.VirtualizeApicAccesses,
          ),
      ],
      ['CR3-target count above 4', (w) => w(F.Cr3TargetCount, 5)],
      [
        'an unaligned I/O bitmap',
        (w, r) => {
          w(F.PrimaryProcBasedVmExecControls, r(F.PrimaryProcBasedVmExecControls) | ProcCtl.UseIoBitmaps);
          w(F.IoBitmapA, 0x1234);
        },
      ],
      [
        'an MSR bitmap above the physical-address width',
        (w, r) => {
          w(F.PrimaryProcBasedVmExecControls, r(F.PrimaryProcBasedVmExecControls) | ProcCtl.UseMsrBitmaps);
          w(F.MsrBitmap, 2n ** 41n);
        },
      ],
      [
        'virtual NMIs without NMI exiting',
        (w, r) => w(F.PinBasedVmExecControls, r(F.PinBasedVmExecControls) | PinCtl.VirtualNmis),
      ],
      [
        'NMI-window exiting without virtual NMIs',
        (w, r) =>
          w(F.PrimaryProcBasedVmExecControls, r(F.PrimaryProcBasedVmExecControls) | ProcCtl.NmiWindowExiting),
      ],
      [
        'VPID 0 with VPID enabled',
        (w, r) =>
          w(F.SecondaryProcBasedVmExecControls, r(F.SecondaryProcBasedVmExecControls) | Proc2Ctl.EnableVpid),
      ],
      ['EPTP memory type 2', (w) => w(F.EptPointer, 0x500000 | (3 << 3) | 2)],
      ['EPTP walk length 5', (w) => w(F.EptPointer, 0x500000 | (4 << 3) | 6)],
      [
        'unrestricted guest without EPT',
        (w) => w(F.SecondaryProcBasedVmExecControls, Proc2Ctl.UnrestrictedGuest),
      ],
      [
        'save preemption timer without the timer',
        (w, r) => w(F.PrimaryVmExitControls, r(F.PrimaryVmExitControls) | ExitCtl.SavePreemptionTimer),
      ],
      ['an MSR-load count (MSR areas are not implemented)', (w) => w(F.VmEntryMsrLoadCount, 1)],
      ['injection type 1 (reserved)', (w) => w(F.VmEntryInterruptionInfo, 0x80000100 | 32)],
      ['NMI injection with vector 3', (w) => w(F.VmEntryInterruptionInfo, 0x80000200 | 3)],
      ['#GP injection without an error code', (w) => w(F.VmEntryInterruptionInfo, 0x80000300 | 13)],
      ['#UD injection with an error code', (w) => w(F.VmEntryInterruptionInfo, 0x80000b00 | 6)],
      ['injection with reserved bits 30:12', (w) => w(F.VmEntryInterruptionInfo, 0x80010000 | 32)],
      [
        'an error code with bits 31:16 set',
        (w) => {
          w(F.VmEntryInterruptionInfo, 0x80000b00 | 13);
          w(F.VmEntryExceptionErrorCode, 0x10000);
        },
      ],
      [
        'software interrupt with instruction length 0',
        (w) => w(F.VmEntryInterruptionInfo, 0x80000400 | 0x80),
      ],
      [
        'software interrupt with instruction length 16',
        (w) => {
          w(F.VmEntryInterruptionInfo, 0x80000400 | 0x80);
          w(F.VmEntryInstructionLength, 16);
        },
      ],
    ];
    for (const [name, change] of cases)
      it(name, () => expect(launchWith(change)).toEqual({ kind: 'vmfail', error: CTL }));
  });

  describe('26.2.2/26.2.3 host-state checks fail with VM-instruction error 8', () => {
    const cases: [string, Parameters<typeof launchWith>[0]][] = [
      ['host CR0.PG clear', (w, r) => w(F.HostCr0, r(F.HostCr0) & 0x7fffffff)],
      ['host CR4.VMXE clear', (w) => w(F.HostCr4, 0x20)],
      ['host CR4.PAE clear', (w) => w(F.HostCr4, 0x2000)],
      ['host CR3 beyond the address width', (w) => w(F.HostCr3, 2n ** 45n)],
      ['host CS selector 0', (w) => w(F.HostCsSelector, 0)],
      ['host TR selector 0', (w) => w(F.HostTrSelector, 0)],
      ['host DS selector with RPL 3', (w) => w(F.HostDsSelector, 0x13)],
      [
        'host address-space size 0',
        (w, r) => w(F.PrimaryVmExitControls, r(F.PrimaryVmExitControls) & ~ExitCtl.HostAddressSpaceSize),
      ],
      ['non-canonical host RIP', (w) => w(F.HostRip, 0x0000_8000_0000_0000n)],
      [
        'invalid host PAT with load PAT',
        (w, r) => {
          w(F.PrimaryVmExitControls, r(F.PrimaryVmExitControls) | ExitCtl.LoadPat);
          w(F.HostIa32Pat, 2n);
        },
      ],
      [
        'host EFER.LMA clear with load EFER',
        (w, r) => {
          w(F.PrimaryVmExitControls, r(F.PrimaryVmExitControls) | ExitCtl.LoadEfer);
          w(F.HostIa32Efer, 0n);
        },
      ],
    ];
    for (const [name, change] of cases)
      it(name, () => expect(launchWith(change)).toEqual({ kind: 'vmfail', error: HOST }));
  });

  describe('26.3 guest-state checks fail with exit reason 33 (bit 31 set)', () => {
    const cases: [string, Parameters<typeof launchWith>[0]][] = [
      ['CR0.NE clear (a FIXED0 bit; the check is effective)', (w) => w(F.GuestCr0, 0x11)],
      ['CR0.PG without PE', (w) => w(F.GuestCr0, 0x80000030)],
      ['CR0 with a FIXED1-clear bit', (w) => w(F.GuestCr0, 0x31 | 0x100)],
      ['CR4.VMXE clear', (w) => w(F.GuestCr4, 0)],
      ['CR4 with an unsupported bit', (w) => w(F.GuestCr4, 0x2000 | (1 << 22))],
      [
        'PE and PG clear without unrestricted guest',
        (w) => {
          w(F.SecondaryProcBasedVmExecControls, Proc2Ctl.EnableEpt);
          w(F.GuestCr0, 0x30);
        },
      ],
      [
        'IA-32e mode guest with paging off',
        (w, r) => w(F.VmEntryControls, r(F.VmEntryControls) | EntryCtl.Ia32eModeGuest),
      ],
      [
        'EFER.LMA disagreeing with IA-32e mode guest',
        (w, r) => {
          w(F.VmEntryControls, r(F.VmEntryControls) | EntryCtl.LoadEfer);
          w(F.GuestIa32Efer, 0x500);
        },
      ],
      [
        'invalid guest PAT',
        (w, r) => {
          w(F.VmEntryControls, r(F.VmEntryControls) | EntryCtl.LoadPat);
          w(F.GuestIa32Pat, 3n);
        },
      ],
      ['TR selector with TI set', (w) => w(F.GuestTrSelector, 4)],
      ['TR unusable', (w) => w(F.GuestTrAccessRights, 0x1008b)],
      ['TR type 9 (available TSS)', (w) => w(F.GuestTrAccessRights, 0x89)],
      [
        'CS type 3 data without unrestricted guest',
        (w) => {
          w(F.SecondaryProcBasedVmExecControls, Proc2Ctl.EnableEpt);
          w(F.GuestCr0, 0x80000031);
          w(F.GuestCsAccessRights, 0xc093);
        },
      ],
      ['SS type 11 (code)', (w) => w(F.GuestSsAccessRights, 0xc09b)],
      ['DS not accessed', (w) => w(F.GuestDsAccessRights, 0xc092)],
      ['DS not present', (w) => w(F.GuestDsAccessRights, 0xc013)],
      ['limit 0xFFF00 with G=1 (low 12 bits not all ones)', (w) => w(F.GuestEsLimit, 0xfff00)],
      ['limit above 1 MiB with G=0', (w) => w(F.GuestFsAccessRights, 0x4093)],
      ['reserved access-rights bits', (w) => w(F.GuestGsAccessRights, 0xc193)],
      ['LDTR usable with type 3', (w) => w(F.GuestLdtrAccessRights, 0x83)],
      ['non-canonical FS base', (w) => w(F.GuestFsBase, 0x0000_8000_0000_0000n)],
      ['GDTR limit above 16 bits', (w) => w(F.GuestGdtrLimit, 0x10000)],
      ['RIP above 4 GiB outside 64-bit mode', (w) => w(F.GuestRip, 0x1_0000_0000n)],
      ['RFLAGS bit 1 clear', (w) => w(F.GuestRflags, 0)],
      ['RFLAGS reserved bit 3', (w) => w(F.GuestRflags, 0xa)],
      ['external-interrupt injection with IF=0', (w) => w(F.VmEntryInterruptionInfo, 0x80000000 | 0x30)],
      ['activity state 3 (wait-for-SIPI, not advertised)', (w) => w(F.GuestActivityState, 3)],
      ['blocking by STI with IF=0', (w) => w(F.GuestInterruptibilityState, 1)],
      [
        'blocking by STI and MOV SS',
        (w) => {
          w(F.GuestRflags, 0x202);
          w(F.GuestInterruptibilityState, 3);
        },
      ],
      [
        'blocking by MOV SS with activity HLT',
        (w) => {
          w(F.GuestInterruptibilityState, 2);
          w(F.GuestActivityState, 1);
        },
      ],
      [
        'NMI injection with virtual-NMI blocking',
        (w, r) => {
          w(F.PinBasedVmExecControls, r(F.PinBasedVmExecControls) | PinCtl.NmiExiting | PinCtl.VirtualNmis);
          w(F.GuestInterruptibilityState, 8);
          w(F.VmEntryInterruptionInfo, 0x80000202);
        },
      ],
      ['reserved interruptibility bits', (w) => w(F.GuestInterruptibilityState, 0x20)],
    ];
    for (const [name, change] of cases)
      it(name, () => expect(launchWith(change)).toMatchObject({ ...GUEST, qualification: 0 }));
    it('without virtual NMIs, an NMI may be injected with blocking by NMI (SDM 26.3.1.5 note)', () => {
      const r = launchWith((w) => {
        w(F.GuestInterruptibilityState, 8);
        w(F.VmEntryInterruptionInfo, 0x80000202);
      });
      expect(r).toEqual({ kind: 'entered' });
    });
    it('a VMCS link pointer other than all ones: qualification 4', () => {
      expect(launchWith((w) => w(F.VmcsLinkPointer, 0x1000n))).toMatchObject({ ...GUEST, qualification: 4 });
    });
    it('the failure is recorded in the exit-reason field', () => {
      const { vmx } = bench();
      vmx.vmwrite(F.GuestCr4, 0);
      vmx.launch();
      expect(vmx.vmread(F.ExitReason)).toBe(0x80000021n);
      expect(vmx.inGuest).toBe(false);
    });
  });
});
