/**
 * Intel VMX architectural constants (SDM Vol. 3C chapters 24-27 and appendices A, B, C): VMCS field
 * encodings, control bits, exit reasons, exit-qualification layouts, VM-instruction error numbers
 * and the capability MSRs. One definition of each; the vmx plugin, the ept plugin and the VMM
 * policies all import from here. Names follow the SDM.
 */
import { IA32_VMX_EPT_VPID_CAP } from './ept.js';

/** Capability MSR numbers (SDM Vol. 3C Appendix A; Vol. 4 Table 2-2). */
export const VmxMsr = {
  IA32_VMX_BASIC: 0x480,
  IA32_VMX_PINBASED_CTLS: 0x481,
  IA32_VMX_PROCBASED_CTLS: 0x482,
  IA32_VMX_EXIT_CTLS: 0x483,
  IA32_VMX_ENTRY_CTLS: 0x484,
  IA32_VMX_MISC: 0x485,
  IA32_VMX_CR0_FIXED0: 0x486,
  IA32_VMX_CR0_FIXED1: 0x487,
  IA32_VMX_CR4_FIXED0: 0x488,
  IA32_VMX_CR4_FIXED1: 0x489,
  IA32_VMX_VMCS_ENUM: 0x48a,
  IA32_VMX_PROCBASED_CTLS2: 0x48b,
  IA32_VMX_EPT_VPID_CAP: IA32_VMX_EPT_VPID_CAP,
  IA32_VMX_TRUE_PINBASED_CTLS: 0x48d,
  IA32_VMX_TRUE_PROCBASED_CTLS: 0x48e,
  IA32_VMX_TRUE_EXIT_CTLS: 0x48f,
  IA32_VMX_TRUE_ENTRY_CTLS: 0x490,
  IA32_VMX_VMFUNC: 0x491,
} as const;

/** IA32_VMX_BASIC bits above the revision identifier (SDM Vol. 3C A.1). */
export const VmxBasic = {
  /** Bits 44:32: bytes of the VMCS region. */
  REGION_SIZE_SHIFT: 32,
  /** Bit 48: physical addresses of VMX structures limited to 32 bits. */
  PHYS_ADDR_32: 48,
  DUAL_MONITOR: 49,
  /** Bits 53:50: memory type of VMX structures (6 = write-back). */
  MEMORY_TYPE_SHIFT: 50,
  /** Bit 54: VM exits due to INS/OUTS report the instruction-information field. */
  INS_OUTS_INFO: 54,
  /** Bit 55: the TRUE_* control MSRs exist (default-1 controls may be cleared). */
  TRUE_CTLS: 55,
  /** Bit 56: hardware exceptions may be injected without (or with) an error code regardless of vector. */
  NO_ERROR_CODE_CHECK: 56,
} as const;

/** IA32_VMX_MISC fields (SDM Vol. 3C A.6). */
export const VmxMisc = {
  /** Bits 4:0: the preemption timer counts down by 1 every 2^X TSC ticks. */
  PREEMPTION_TIMER_RATE_MASK: 0x1f,
  /** Bit 5: VM exits store EFER.LMA into the "IA-32e mode guest" entry control. */
  STORE_LMA: 1 << 5,
  /** Bits 8:6: activity states supported (HLT, shutdown, wait-for-SIPI). */
  ACTIVITY_HLT: 1 << 6,
  ACTIVITY_SHUTDOWN: 1 << 7,
  ACTIVITY_WAIT_SIPI: 1 << 8,
  /** Bits 24:16: number of CR3-target values. */
  CR3_TARGET_SHIFT: 16,
  /** Bits 27:25: recommended maximum MSR-list entries is 512 * (N + 1). */
  MSR_LIST_SHIFT: 25,
  /** Bit 29: VMWRITE may write every supported field, including the exit-information fields. */
  VMWRITE_ANY: 1 << 29,
  /** Bit 30: software interrupts/exceptions may be injected with instruction length 0. */
  INJECT_LEN0: 1 << 30,
} as const;

/* IA32_VMX_EPT_VPID_CAP bits and the EPT-violation qualification are in src/x86/ept.ts. */

/** Pin-based VM-execution controls (SDM Vol. 3C 24.6.1, Table 24-5). */
export const PinCtl = {
  ExternalInterruptExiting: 1 << 0,
  NmiExiting: 1 << 3,
  VirtualNmis: 1 << 5,
  ActivatePreemptionTimer: 1 << 6,
  ProcessPostedInterrupts: 1 << 7,
} as const;
/** Pin-based controls in the default1 class (SDM Vol. 3C A.3.1). */
export const PIN_DEFAULT1 = 0x16;

/** Primary processor-based VM-execution controls (SDM Vol. 3C 24.6.2, Table 24-6). */
export const ProcCtl = {
  InterruptWindowExiting: 1 << 2,
  UseTscOffsetting: 1 << 3,
  HltExiting: 1 << 7,
  InvlpgExiting: 1 << 9,
  MwaitExiting: 1 << 10,
  RdpmcExiting: 1 << 11,
  RdtscExiting: 1 << 12,
  Cr3LoadExiting: 1 << 15,
  Cr3StoreExiting: 1 << 16,
  ActivateTertiaryControls: 1 << 17,
  Cr8LoadExiting: 1 << 19,
  Cr8StoreExiting: 1 << 20,
  UseTprShadow: 1 << 21,
  NmiWindowExiting: 1 << 22,
  MovDrExiting: 1 << 23,
  UnconditionalIoExiting: 1 << 24,
  UseIoBitmaps: 1 << 25,
  MonitorTrapFlag: 1 << 27,
  UseMsrBitmaps: 1 << 28,
  MonitorExiting: 1 << 29,
  PauseExiting: 1 << 30,
  ActivateSecondaryControls: 1 << 31,
} as const;
/** Primary processor-based controls in the default1 class (SDM Vol. 3C A.3.2): 1, 4-6, 8, 13-16, 26. */
export const PROC_DEFAULT1 = 0x0401e172;

/** Secondary processor-based VM-execution controls (SDM Vol. 3C 24.6.2, Table 24-7). */
export const Proc2Ctl = {
  VirtualizeApicAccesses: 1 << 0,
  EnableEpt: 1 << 1,
  DescriptorTableExiting: 1 << 2,
  EnableRdtscp: 1 << 3,
  VirtualizeX2apicMode: 1 << 4,
  EnableVpid: 1 << 5,
  WbinvdExiting: 1 << 6,
  UnrestrictedGuest: 1 << 7,
  ApicRegisterVirtualization: 1 << 8,
  VirtualInterruptDelivery: 1 << 9,
  PauseLoopExiting: 1 << 10,
  RdrandExiting: 1 << 11,
  EnableInvpcid: 1 << 12,
  EnableVmFunctions: 1 << 13,
  VmcsShadowing: 1 << 14,
  RdseedExiting: 1 << 16,
  EnablePml: 1 << 17,
  EptViolationVe: 1 << 18,
  EnableXsavesXrstors: 1 << 20,
} as const;

/** Primary VM-exit controls (SDM Vol. 3C 24.7.1, Table 24-13). */
export const ExitCtl = {
  SaveDebugControls: 1 << 2,
  HostAddressSpaceSize: 1 << 9,
  LoadPerfGlobalCtrl: 1 << 12,
  AcknowledgeInterruptOnExit: 1 << 15,
  SavePat: 1 << 18,
  LoadPat: 1 << 19,
  SaveEfer: 1 << 20,
  LoadEfer: 1 << 21,
  SavePreemptionTimer: 1 << 22,
} as const;
/** Exit controls in the default1 class (SDM Vol. 3C A.4): 0-8, 10, 11, 13, 14, 16, 17. */
export const EXIT_DEFAULT1 = 0x00036dff;

/** VM-entry controls (SDM Vol. 3C 24.8.1, Table 24-15). */
export const EntryCtl = {
  LoadDebugControls: 1 << 2,
  Ia32eModeGuest: 1 << 9,
  EntryToSmm: 1 << 10,
  DeactivateDualMonitor: 1 << 11,
  LoadPerfGlobalCtrl: 1 << 13,
  LoadPat: 1 << 14,
  LoadEfer: 1 << 15,
} as const;
/** Entry controls in the default1 class (SDM Vol. 3C A.5): 0-8, 12. */
export const ENTRY_DEFAULT1 = 0x000011ff;

/** Field width, encoded in bits 14:13 of a field encoding (SDM Vol. 3C 24.11.2, Table 24-17). */
export const FieldWidth = { Bits16: 0, Bits64: 1, Bits32: 2, Natural: 3 } as const;
export type FieldWidth = (typeof FieldWidth)[keyof typeof FieldWidth];
/** Field type, bits 11:10: control, VM-exit information (read-only), guest state, host state. */
export const FieldType = { Control: 0, ExitInfo: 1, Guest: 2, Host: 3 } as const;
export type FieldType = (typeof FieldType)[keyof typeof FieldType];

export const fieldWidth = (enc: number): FieldWidth => ((enc >>> 13) & 3) as FieldWidth;
export const fieldType = (enc: number): FieldType => ((enc >>> 10) & 3) as FieldType;
/** Bit 0 of a 64-bit field's encoding selects its high 32 bits ("high" access type). */
export const fieldIsHighAccess = (enc: number): boolean =>
  fieldWidth(enc) === FieldWidth.Bits64 && (enc & 1) === 1;

/** VMCS field encodings (SDM Vol. 3C Appendix B). 64-bit fields: the "full" encoding; +1 is "high". */
export const VmcsField = {
  // B.1.1 16-bit control fields
  VirtualProcessorId: 0x0000,
  PostedInterruptNotificationVector: 0x0002,
  EptpIndex: 0x0004,
  // B.1.2 16-bit guest-state fields
  GuestEsSelector: 0x0800,
  GuestCsSelector: 0x0802,
  GuestSsSelector: 0x0804,
  GuestDsSelector: 0x0806,
  GuestFsSelector: 0x0808,
  GuestGsSelector: 0x080a,
  GuestLdtrSelector: 0x080c,
  GuestTrSelector: 0x080e,
  GuestInterruptStatus: 0x0810,
  PmlIndex: 0x0812,
  // B.1.3 16-bit host-state fields
  HostEsSelector: 0x0c00,
  HostCsSelector: 0x0c02,
  HostSsSelector: 0x0c04,
  HostDsSelector: 0x0c06,
  HostFsSelector: 0x0c08,
  HostGsSelector: 0x0c0a,
  HostTrSelector: 0x0c0c,
  // B.2.1 64-bit control fields
  IoBitmapA: 0x2000,
  IoBitmapB: 0x2002,
  MsrBitmap: 0x2004,
  VmExitMsrStoreAddress: 0x2006,
  VmExitMsrLoadAddress: 0x2008,
  VmEntryMsrLoadAddress: 0x200a,
  ExecutiveVmcsPointer: 0x200c,
  PmlAddress: 0x200e,
  TscOffset: 0x2010,
  VirtualApicAddress: 0x2012,
  ApicAccessAddress: 0x2014,
  PostedInterruptDescriptorAddress: 0x2016,
  VmFunctionControls: 0x2018,
  EptPointer: 0x201a,
  EoiExitBitmap0: 0x201c,
  EoiExitBitmap1: 0x201e,
  EoiExitBitmap2: 0x2020,
  EoiExitBitmap3: 0x2022,
  EptpListAddress: 0x2024,
  VmreadBitmap: 0x2026,
  VmwriteBitmap: 0x2028,
  VirtualizationExceptionInfoAddress: 0x202a,
  XssExitingBitmap: 0x202c,
  // B.2.2 64-bit read-only data field
  GuestPhysicalAddress: 0x2400,
  // B.2.3 64-bit guest-state fields
  VmcsLinkPointer: 0x2800,
  GuestIa32Debugctl: 0x2802,
  GuestIa32Pat: 0x2804,
  GuestIa32Efer: 0x2806,
  GuestIa32PerfGlobalCtrl: 0x2808,
  GuestPdpte0: 0x280a,
  GuestPdpte1: 0x280c,
  GuestPdpte2: 0x280e,
  GuestPdpte3: 0x2810,
  // B.2.4 64-bit host-state fields
  HostIa32Pat: 0x2c00,
  HostIa32Efer: 0x2c02,
  HostIa32PerfGlobalCtrl: 0x2c04,
  // B.3.1 32-bit control fields
  PinBasedVmExecControls: 0x4000,
  PrimaryProcBasedVmExecControls: 0x4002,
  ExceptionBitmap: 0x4004,
  PageFaultErrorCodeMask: 0x4006,
  PageFaultErrorCodeMatch: 0x4008,
  Cr3TargetCount: 0x400a,
  PrimaryVmExitControls: 0x400c,
  VmExitMsrStoreCount: 0x400e,
  VmExitMsrLoadCount: 0x4010,
  VmEntryControls: 0x4012,
  VmEntryMsrLoadCount: 0x4014,
  VmEntryInterruptionInfo: 0x4016,
  VmEntryExceptionErrorCode: 0x4018,
  VmEntryInstructionLength: 0x401a,
  TprThreshold: 0x401c,
  SecondaryProcBasedVmExecControls: 0x401e,
  PleGap: 0x4020,
  PleWindow: 0x4022,
  // B.3.2 32-bit read-only data fields
  VmInstructionError: 0x4400,
  ExitReason: 0x4402,
  VmExitInterruptionInfo: 0x4404,
  VmExitInterruptionErrorCode: 0x4406,
  IdtVectoringInfo: 0x4408,
  IdtVectoringErrorCode: 0x440a,
  VmExitInstructionLength: 0x440c,
  VmExitInstructionInfo: 0x440e,
  // B.3.3 32-bit guest-state fields
  GuestEsLimit: 0x4800,
  GuestCsLimit: 0x4802,
  GuestSsLimit: 0x4804,
  GuestDsLimit: 0x4806,
  GuestFsLimit: 0x4808,
  GuestGsLimit: 0x480a,
  GuestLdtrLimit: 0x480c,
  GuestTrLimit: 0x480e,
  GuestGdtrLimit: 0x4810,
  GuestIdtrLimit: 0x4812,
  GuestEsAccessRights: 0x4814,
  GuestCsAccessRights: 0x4816,
  GuestSsAccessRights: 0x4818,
  GuestDsAccessRights: 0x481a,
  GuestFsAccessRights: 0x481c,
  GuestGsAccessRights: 0x481e,
  GuestLdtrAccessRights: 0x4820,
  GuestTrAccessRights: 0x4822,
  GuestInterruptibilityState: 0x4824,
  GuestActivityState: 0x4826,
  GuestSmbase: 0x4828,
  GuestIa32SysenterCs: 0x482a,
  VmxPreemptionTimerValue: 0x482e,
  // B.3.4 32-bit host-state field
  HostIa32SysenterCs: 0x4c00,
  // B.4.1 natural-width control fields
  Cr0GuestHostMask: 0x6000,
  Cr4GuestHostMask: 0x6002,
  Cr0ReadShadow: 0x6004,
  Cr4ReadShadow: 0x6006,
  Cr3TargetValue0: 0x6008,
  Cr3TargetValue1: 0x600a,
  Cr3TargetValue2: 0x600c,
  Cr3TargetValue3: 0x600e,
  // B.4.2 natural-width read-only data fields
  ExitQualification: 0x6400,
  IoRcx: 0x6402,
  IoRsi: 0x6404,
  IoRdi: 0x6406,
  IoRip: 0x6408,
  GuestLinearAddress: 0x640a,
  // B.4.3 natural-width guest-state fields
  GuestCr0: 0x6800,
  GuestCr3: 0x6802,
  GuestCr4: 0x6804,
  GuestEsBase: 0x6806,
  GuestCsBase: 0x6808,
  GuestSsBase: 0x680a,
  GuestDsBase: 0x680c,
  GuestFsBase: 0x680e,
  GuestGsBase: 0x6810,
  GuestLdtrBase: 0x6812,
  GuestTrBase: 0x6814,
  GuestGdtrBase: 0x6816,
  GuestIdtrBase: 0x6818,
  GuestDr7: 0x681a,
  GuestRsp: 0x681c,
  GuestRip: 0x681e,
  GuestRflags: 0x6820,
  GuestPendingDebugExceptions: 0x6822,
  GuestIa32SysenterEsp: 0x6824,
  GuestIa32SysenterEip: 0x6826,
  // B.4.4 natural-width host-state fields
  HostCr0: 0x6c00,
  HostCr3: 0x6c02,
  HostCr4: 0x6c04,
  HostFsBase: 0x6c06,
  HostGsBase: 0x6c08,
  HostTrBase: 0x6c0a,
  HostGdtrBase: 0x6c0c,
  HostIdtrBase: 0x6c0e,
  HostIa32SysenterEsp: 0x6c10,
  HostIa32SysenterEip: 0x6c12,
  HostRsp: 0x6c14,
  HostRip: 0x6c16,
} as const;

/** Guest segment base fields in segment-register order (ES, CS, SS, DS, FS, GS: Seg in regs.ts). */
export const GUEST_SEGMENT_BASE = [
  VmcsField.GuestEsBase,
  VmcsField.GuestCsBase,
  VmcsField.GuestSsBase,
  VmcsField.GuestDsBase,
  VmcsField.GuestFsBase,
  VmcsField.GuestGsBase,
] as const;
export type VmcsFieldName = keyof typeof VmcsField;

/** Basic exit reasons (SDM Vol. 3C Appendix C, Table C-1). */
export const ExitReason = {
  ExceptionOrNmi: 0,
  ExternalInterrupt: 1,
  TripleFault: 2,
  InitSignal: 3,
  StartupIpi: 4,
  IoSmi: 5,
  OtherSmi: 6,
  InterruptWindow: 7,
  NmiWindow: 8,
  TaskSwitch: 9,
  Cpuid: 10,
  Getsec: 11,
  Hlt: 12,
  Invd: 13,
  Invlpg: 14,
  Rdpmc: 15,
  Rdtsc: 16,
  Rsm: 17,
  Vmcall: 18,
  Vmclear: 19,
  Vmlaunch: 20,
  Vmptrld: 21,
  Vmptrst: 22,
  Vmread: 23,
  Vmresume: 24,
  Vmwrite: 25,
  Vmxoff: 26,
  Vmxon: 27,
  CrAccess: 28,
  MovDr: 29,
  IoInstruction: 30,
  Rdmsr: 31,
  Wrmsr: 32,
  EntryFailureGuestState: 33,
  EntryFailureMsrLoading: 34,
  Mwait: 36,
  MonitorTrapFlag: 37,
  Monitor: 39,
  Pause: 40,
  EntryFailureMachineCheck: 41,
  TprBelowThreshold: 43,
  ApicAccess: 44,
  VirtualizedEoi: 45,
  GdtrIdtrAccess: 46,
  LdtrTrAccess: 47,
  EptViolation: 48,
  EptMisconfiguration: 49,
  Invept: 50,
  Rdtscp: 51,
  PreemptionTimerExpired: 52,
  Invvpid: 53,
  Wbinvd: 54,
  Xsetbv: 55,
  ApicWrite: 56,
  Rdrand: 57,
  Invpcid: 58,
  Vmfunc: 59,
  Encls: 60,
  Rdseed: 61,
  PmlFull: 62,
  Xsaves: 63,
  Xrstors: 64,
} as const;
export type ExitReason = (typeof ExitReason)[keyof typeof ExitReason];
/** Bit 31 of the exit-reason field: VM-entry failure (SDM Vol. 3C 24.9.1). */
export const EXIT_REASON_ENTRY_FAILURE = 0x8000_0000;

/** Exit-reason names for statistics and traces (index: basic exit reason). */
export const EXIT_REASON_NAMES: readonly string[] = (() => {
  const names: string[] = [];
  for (const [k, v] of Object.entries(ExitReason)) names[v] = k;
  return names;
})();

/** VM-instruction error numbers (SDM Vol. 3C 31.4, Table 31-1). */
export const VmInstructionError = {
  VmcallInVmxRoot: 1,
  VmclearInvalidAddress: 2,
  VmclearVmxonPointer: 3,
  VmlaunchNonClearVmcs: 4,
  VmresumeNonLaunchedVmcs: 5,
  VmresumeAfterVmxoff: 6,
  EntryInvalidControlFields: 7,
  EntryInvalidHostStateFields: 8,
  VmptrldInvalidAddress: 9,
  VmptrldVmxonPointer: 10,
  VmptrldIncorrectRevision: 11,
  UnsupportedVmcsComponent: 12,
  VmwriteReadOnlyComponent: 13,
  VmxonInVmxRoot: 15,
  EntryInvalidExecutiveVmcsPointer: 16,
  EntryNonLaunchedExecutiveVmcs: 17,
  EntryExecutiveVmcsPointerNotVmxon: 18,
  VmcallNonClearVmcs: 19,
  VmcallInvalidExitControls: 20,
  VmcallIncorrectMsegRevision: 22,
  VmxoffUnderDualMonitor: 23,
  VmcallInvalidSmmMonitorFeatures: 24,
  EntryInvalidExecControlsInExecutiveVmcs: 25,
  EntryEventsBlockedByMovSs: 26,
  InvalidInveptInvvpidOperand: 28,
} as const;
export type VmInstructionError = (typeof VmInstructionError)[keyof typeof VmInstructionError];

/** Exit qualification for VM-entry failures (SDM Vol. 3C 27.8): 0 default, 2 MSR load, 3 NMI injection blocked, 4 VMCS link pointer. */
export const EntryFailureQualification = {
  Default: 0,
  PdpteLoad: 2,
  NmiInjection: 3,
  VmcsLinkPointer: 4,
} as const;

/** Interruption-information fields (VM-entry, VM-exit, IDT-vectoring; SDM Vol. 3C 24.8.3, 24.9.2). */
export const IntrInfo = {
  VECTOR_MASK: 0xff,
  TYPE_SHIFT: 8,
  TYPE_MASK: 0x700,
  DELIVER_ERROR_CODE: 1 << 11,
  /** VM-exit interruption information and exit qualification: NMI unblocking due to IRET. */
  NMI_UNBLOCKING: 1 << 12,
  VALID: 0x8000_0000,
} as const;
/** Interruption type 7 (other event) for MTF injection; types 0-6 are EventType (src/x86/exceptions.ts). */
export const INTR_TYPE_OTHER = 7;

/** Guest interruptibility state (SDM Vol. 3C 24.4.2, Table 24-3). */
export const Interruptibility = {
  BlockingBySti: 1 << 0,
  BlockingByMovSs: 1 << 1,
  BlockingBySmi: 1 << 2,
  BlockingByNmi: 1 << 3,
  EnclaveInterruption: 1 << 4,
} as const;

/** Guest activity state (SDM Vol. 3C 24.4.2). */
export const ActivityState = { Active: 0, Hlt: 1, Shutdown: 2, WaitForSipi: 3 } as const;

/** Exit qualification for I/O instructions (SDM Vol. 3C 27.2.1, Table 27-5). */
export const IoQual = {
  /** Bits 2:0: size of access minus 1 (0 = 1 byte, 1 = 2 bytes, 3 = 4 bytes). */
  SIZE_MASK: 0x7,
  /** Bit 3: direction, 1 = IN. */
  IN: 1 << 3,
  STRING: 1 << 4,
  REP: 1 << 5,
  /** Bit 6: operand encoding, 1 = immediate. */
  IMMEDIATE: 1 << 6,
  PORT_SHIFT: 16,
} as const;

/** Exit qualification for control-register accesses (SDM Vol. 3C 27.2.1, Table 27-3). */
export const CrQual = {
  CR_MASK: 0xf,
  ACCESS_SHIFT: 4,
  AccessMovToCr: 0,
  AccessMovFromCr: 1,
  AccessClts: 2,
  AccessLmsw: 3,
  /** Bit 6: LMSW operand type, 1 = memory. */
  LMSW_MEMORY: 1 << 6,
  GPR_SHIFT: 8,
  LMSW_DATA_SHIFT: 16,
} as const;

/** Exit qualification for MOV DR (SDM Vol. 3C 27.2.1, Table 27-4). */
export const DrQual = {
  DR_MASK: 0x7,
  /** Bit 4: direction, 1 = MOV from DR. */
  FROM_DR: 1 << 4,
  GPR_SHIFT: 8,
} as const;

/** VM-exit instruction-information field for INS/OUTS (SDM Vol. 3C 27.2.5, Table 27-8). */
export const IoInstrInfo = {
  /** Bits 9:7: address size, 0 = 16, 1 = 32, 2 = 64 bits. */
  ADDRESS_SIZE_SHIFT: 7,
  /** Bits 17:15: segment register (OUTS; INS always ES). */
  SEGMENT_SHIFT: 15,
} as const;

/**
 * VM-exit instruction information for LGDT/LIDT/SGDT/SIDT and LLDT/LTR/SLDT/STR (SDM Vol. 3C 27.2.5,
 * Tables 27-10 and 27-11). The exit qualification holds the displacement.
 */
export const DtInstrInfo = {
  /** Bits 1:0: scaling (index * 2^n). */
  SCALE_MASK: 0x3,
  /** Bits 6:3 (LDTR/TR, register operand): the register. */
  REG1_SHIFT: 3,
  /** Bits 9:7: address size, 0 = 16, 1 = 32, 2 = 64 bits. */
  ADDRESS_SIZE_SHIFT: 7,
  /** Bit 10 (LDTR/TR): 1 = register operand. */
  REGISTER: 1 << 10,
  /** Bit 11 (GDTR/IDTR): operand size, 1 = 32 bits. */
  OPERAND_SIZE_32: 1 << 11,
  /** Bits 17:15: segment register. */
  SEGMENT_SHIFT: 15,
  /** Bits 21:18 index register, bit 22 index invalid. */
  INDEX_SHIFT: 18,
  INDEX_INVALID: 1 << 22,
  /** Bits 26:23 base register, bit 27 base invalid. */
  BASE_SHIFT: 23,
  BASE_INVALID: 1 << 27,
  /** Bits 29:28: 0 SGDT/SLDT, 1 SIDT/STR, 2 LGDT/LLDT, 3 LIDT/LTR. */
  IDENTITY_SHIFT: 28,
} as const;

/** MSR bitmap layout (SDM Vol. 3C 24.6.9): four 1-KiB bitmaps in one 4-KiB page. */
export const MsrBitmap = {
  READ_LOW: 0x000,
  READ_HIGH: 0x400,
  WRITE_LOW: 0x800,
  WRITE_HIGH: 0xc00,
  LOW_LAST: 0x1fff,
  HIGH_FIRST: 0xc000_0000,
  HIGH_LAST: 0xc000_1fff,
} as const;

/** The VMCS link pointer value that disables VMCS shadowing checks (SDM Vol. 3C 26.3.1.5). */
export const VMCS_LINK_POINTER_NONE = 0xffff_ffff_ffff_ffffn;
