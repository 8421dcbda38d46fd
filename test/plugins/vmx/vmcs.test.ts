import { describe, expect, it } from 'vitest';
import {
  FieldType,
  FieldWidth,
  PIN_DEFAULT1,
  PinCtl,
  Proc2Ctl,
  ProcCtl,
  VmInstructionError,
  VmcsField as F,
  VmxMsr,
  fieldType,
  fieldWidth,
} from '../../../src/x86/vmx.js';
import { FIELDS, VMCS_ENUM_MAX_INDEX } from '../../../plugins/vmx/vmcs.js';
import { VmxCaps } from '../../../plugins/vmx/caps.js';
import { bench } from './harness.js';

describe('VMCS encodings (SDM Appendix B)', () => {
  it('decodes width and type from the encoding bits', () => {
    expect(fieldWidth(F.GuestEsSelector)).toBe(FieldWidth.Bits16);
    expect(fieldWidth(F.IoBitmapA)).toBe(FieldWidth.Bits64);
    expect(fieldWidth(F.ExitReason)).toBe(FieldWidth.Bits32);
    expect(fieldWidth(F.GuestRip)).toBe(FieldWidth.Natural);
    expect(fieldType(F.ExitQualification)).toBe(FieldType.ExitInfo);
    expect(fieldType(F.HostRip)).toBe(FieldType.Host);
    expect(fieldType(F.GuestCr0)).toBe(FieldType.Guest);
    expect(fieldType(F.PinBasedVmExecControls)).toBe(FieldType.Control);
  });
  it('every field has an even encoding with reserved bit 12 clear, and slots are unique', () => {
    for (const f of FIELDS) {
      expect(f.encoding & 1, f.name).toBe(0);
      expect(f.encoding & 0x1000, f.name).toBe(0);
    }
    expect(new Set(FIELDS.map((f) => f.encoding)).size).toBe(FIELDS.length);
    expect(VMCS_ENUM_MAX_INDEX).toBe(0x17); // PreemptionTimerValue 0x482E -> index 0x17
  });
});

describe('VMREAD/VMWRITE access rules', () => {
  it('masks 16- and 32-bit fields to their width', () => {
    const { vmx } = bench();
    expect(vmx.vmwrite(F.VirtualProcessorId, 0x12345)).toBe(0);
    expect(vmx.vmread(F.VirtualProcessorId)).toBe(0x2345n);
    expect(vmx.vmwrite(F.ExceptionBitmap, 0x1_0000_0001n)).toBe(0);
    expect(vmx.vmread32(F.ExceptionBitmap)).toBe(1);
  });
  it('64-bit fields: full and high access types', () => {
    const { vmx } = bench();
    expect(vmx.vmwrite(F.TscOffset, 0x1122334455667788n)).toBe(0);
    expect(vmx.vmread(F.TscOffset + 1)).toBe(0x11223344n);
    expect(vmx.vmwrite(F.TscOffset + 1, 0xaabbccdd)).toBe(0);
    expect(vmx.vmread(F.TscOffset)).toBe(0xaabbccdd55667788n);
    expect(vmx.vmwrite64(F.IoBitmapA, 0x1000, 0)).toBe(0);
    expect(vmx.vmread(F.IoBitmapA)).toBe(0x1000n);
  });
  it('unsupported components fail with error 12', () => {
    const { vmx } = bench();
    expect(vmx.vmread(F.PostedInterruptDescriptorAddress)).toBeUndefined();
    expect(vmx.vmread(F.VmInstructionError)).toBe(BigInt(VmInstructionError.UnsupportedVmcsComponent));
    expect(vmx.vmwrite(0x7fff, 1)).toBe(VmInstructionError.UnsupportedVmcsComponent);
    expect(vmx.vmwrite(F.PmlAddress, 0)).toBe(12);
    expect(vmx.vmwrite(F.GuestRip + 1, 0)).toBe(12); // natural-width fields have no high access
    expect(vmx.vmread32(F.EptpIndex)).toBeNaN();
  });
  it('read-only fields fail with 13 unless IA32_VMX_MISC bit 29 is advertised', () => {
    const strict = bench({ vmwriteAny: false }).vmx;
    expect(strict.vmwrite(F.ExitQualification, 5)).toBe(VmInstructionError.VmwriteReadOnlyComponent);
    expect(strict.vmwrite(F.GuestPhysicalAddress, 5)).toBe(13);
    expect(strict.readCapability(VmxMsr.IA32_VMX_MISC)! & (1n << 29n)).toBe(0n);
    const any = bench({ vmwriteAny: true }).vmx;
    expect(any.vmwrite(F.ExitQualification, 5)).toBe(0);
    expect(any.vmread(F.ExitQualification)).toBe(5n);
    expect(any.readCapability(VmxMsr.IA32_VMX_MISC)! & (1n << 29n)).toBe(1n << 29n);
  });
});

describe('capability MSRs (SDM Appendix A)', () => {
  const caps = new VmxCaps({
    revisionId: 0x12,
    preemptionTimerRate: 7,
    vmwriteAnyField: true,
    ept: true,
    unrestrictedGuest: true,
    vpid: true,
    hide: ['HltExiting'],
  });
  const r = (m: number) => caps.readMsr(m)!;
  const lo = (v: bigint) => Number(v & 0xffffffffn);
  const hi = (v: bigint) => Number(v >> 32n);
  it('every must-be-1 bit is allowed to be 1, and TRUE MSRs relax only default1 bits', () => {
    for (const [plain, tru] of [
      [VmxMsr.IA32_VMX_PINBASED_CTLS, VmxMsr.IA32_VMX_TRUE_PINBASED_CTLS],
      [VmxMsr.IA32_VMX_PROCBASED_CTLS, VmxMsr.IA32_VMX_TRUE_PROCBASED_CTLS],
      [VmxMsr.IA32_VMX_EXIT_CTLS, VmxMsr.IA32_VMX_TRUE_EXIT_CTLS],
      [VmxMsr.IA32_VMX_ENTRY_CTLS, VmxMsr.IA32_VMX_TRUE_ENTRY_CTLS],
    ]) {
      const p = r(plain),
        t = r(tru);
      expect((lo(p) & ~hi(p)) >>> 0).toBe(0);
      expect((lo(t) & ~lo(p)) >>> 0).toBe(0);
      expect(hi(t)).toBe(hi(p));
    }
    expect(lo(r(VmxMsr.IA32_VMX_PINBASED_CTLS))).toBe(PIN_DEFAULT1);
    expect(lo(r(VmxMsr.IA32_VMX_TRUE_PROCBASED_CTLS)) & ProcCtl.Cr3LoadExiting).toBe(0);
    expect(lo(r(VmxMsr.IA32_VMX_PROCBASED_CTLS)) & ProcCtl.Cr3LoadExiting).toBe(ProcCtl.Cr3LoadExiting);
  });
  it('advertises the implemented controls and hides what the settings hide', () => {
    const proc = hi(r(VmxMsr.IA32_VMX_PROCBASED_CTLS));
    expect(proc & ProcCtl.HltExiting).toBe(0);
    expect(proc & ProcCtl.UnconditionalIoExiting).toBe(ProcCtl.UnconditionalIoExiting);
    expect(proc & ProcCtl.RdtscExiting).toBe(ProcCtl.RdtscExiting);
    expect(proc & ProcCtl.RdpmcExiting).toBe(0); // not implemented: not offered
    expect(hi(r(VmxMsr.IA32_VMX_PINBASED_CTLS)) & PinCtl.ActivatePreemptionTimer).toBeTruthy();
    expect(hi(r(VmxMsr.IA32_VMX_PROCBASED_CTLS2)) & Proc2Ctl.UnrestrictedGuest).toBeTruthy();
    expect(Number(r(VmxMsr.IA32_VMX_MISC) & 0x1fn)).toBe(7);
    expect(r(VmxMsr.IA32_VMX_BASIC) & 0x7fffffffn).toBe(0x12n);
    expect((r(VmxMsr.IA32_VMX_BASIC) >> 55n) & 1n).toBe(1n);
    expect(caps.readMsr(0x10)).toBeUndefined();
  });
  it('without a nested-paging plugin there is no EPT, no unrestricted guest and no EPT capability', () => {
    const c = new VmxCaps({
      revisionId: 1,
      preemptionTimerRate: 5,
      vmwriteAnyField: false,
      ept: false,
      unrestrictedGuest: true,
      vpid: false,
      hide: [],
    });
    const p2 = hi(c.readMsr(VmxMsr.IA32_VMX_PROCBASED_CTLS2)!);
    expect(p2 & (Proc2Ctl.EnableEpt | Proc2Ctl.UnrestrictedGuest | Proc2Ctl.EnableVpid)).toBe(0);
    expect(c.readMsr(VmxMsr.IA32_VMX_EPT_VPID_CAP)).toBe(0n);
  });
  it('CR0/CR4 fixed bits: FIXED0 within FIXED1, PE/NE/PG and VMXE fixed to 1', () => {
    expect(Number(r(VmxMsr.IA32_VMX_CR0_FIXED0) & ~r(VmxMsr.IA32_VMX_CR0_FIXED1))).toBe(0);
    expect(r(VmxMsr.IA32_VMX_CR0_FIXED0)).toBe(0x80000021n);
    expect(r(VmxMsr.IA32_VMX_CR4_FIXED0)).toBe(0x2000n);
  });
});
