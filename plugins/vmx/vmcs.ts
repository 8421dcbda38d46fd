/**
 * The VMCS: every supported field (SDM Vol. 3C Appendix B) with its width and access rules, stored
 * as 32-bit halves. Encodings map to storage slots through a flat table built once (no Map look-up
 * on VMREAD/VMWRITE). While the vCPU runs the guest, guest-state fields are not stored here: the
 * vmx engine installs accessors that read and write the live CPU registers (`live`).
 */
import {
  FieldType,
  FieldWidth,
  VmcsField,
  VmInstructionError,
  fieldType,
  fieldWidth,
  type VmcsFieldName,
} from '../../src/x86/vmx.js';

/**
 * Fields of features this model does not implement (posted interrupts, APIC virtualization, PML,
 * VM functions, VMCS shadowing, EPT-violation #VE, XSAVES, pause-loop exiting, SMM, perf counters):
 * the SDM says a field exists only when its feature does, so VMREAD/VMWRITE of them fail with
 * VM-instruction error 12.
 */
const UNSUPPORTED: readonly VmcsFieldName[] = [
  'PostedInterruptNotificationVector',
  'EptpIndex',
  'GuestInterruptStatus',
  'PmlIndex',
  'ExecutiveVmcsPointer',
  'PmlAddress',
  'VirtualApicAddress',
  'ApicAccessAddress',
  'PostedInterruptDescriptorAddress',
  'VmFunctionControls',
  'EoiExitBitmap0',
  'EoiExitBitmap1',
  'EoiExitBitmap2',
  'EoiExitBitmap3',
  'EptpListAddress',
  'VmreadBitmap',
  'VmwriteBitmap',
  'VirtualizationExceptionInfoAddress',
  'XssExitingBitmap',
  'TprThreshold',
  'PleGap',
  'PleWindow',
  'GuestSmbase',
  'GuestIa32PerfGlobalCtrl',
  'HostIa32PerfGlobalCtrl',
];

export interface FieldDef {
  readonly name: VmcsFieldName;
  readonly encoding: number;
  readonly width: FieldWidth;
  readonly type: FieldType;
  readonly slot: number;
}

/** Every supported field, in Appendix B order. */
export const FIELDS: readonly FieldDef[] = (() => {
  const out: FieldDef[] = [];
  for (const [name, enc] of Object.entries(VmcsField) as [VmcsFieldName, number][]) {
    if (UNSUPPORTED.includes(name)) continue;
    out.push({ name, encoding: enc, width: fieldWidth(enc), type: fieldType(enc), slot: out.length });
  }
  return out;
})();

/** Highest field index (bits 9:1 of an encoding) among supported fields, for IA32_VMX_VMCS_ENUM. */
export const VMCS_ENUM_MAX_INDEX = FIELDS.reduce((m, f) => Math.max(m, (f.encoding >>> 1) & 0x1ff), 0);

const ENC_LIMIT = 0x8000;
/** Encoding -> slot, -1 for unsupported; "high" encodings of 64-bit fields map to the slot too. */
const SLOT = new Int16Array(ENC_LIMIT).fill(-1);
for (const f of FIELDS) {
  SLOT[f.encoding] = f.slot;
  if (f.width === FieldWidth.Bits64) SLOT[f.encoding + 1] = f.slot;
}

/** The slot of a supported field encoding, or -1. Bits above 14 and bit 12 are reserved (must be 0). */
export function slotOf(enc: number): number {
  if (enc < 0 || enc >= ENC_LIMIT || !Number.isInteger(enc)) return -1;
  return SLOT[enc]!;
}

/** Guest-state field accessors onto the live CPU (the vmx engine provides them). */
export interface LiveField {
  /** Read the field into `vmcs.rdLo`/`vmcs.rdHi`. */
  read(v: Vmcs): void;
  write(lo: number, hi: number): void;
}

/** 16-bit fields keep 16 bits, 32-bit fields 32; 64-bit and natural-width fields keep both halves. */
const LO_MASK = [0xffff, -1, -1, -1];
const HAS_HI = [false, true, false, true];

export class Vmcs {
  readonly lo = new Int32Array(FIELDS.length);
  readonly hi = new Int32Array(FIELDS.length);
  /** Per slot: the live accessor used while `isLive`. Only guest-state slots have one. */
  readonly live: (LiveField | null)[] = new Array<LiveField | null>(FIELDS.length).fill(null);
  isLive = false;
  /** Launch state (SDM Vol. 3C 24.1): "clear" until a VMLAUNCH succeeds. */
  launched = false;
  /** Result of the last read (two halves). */
  rdLo = 0;
  rdHi = 0;
  /** Set by every VMWRITE to a control, host or guest field (entry re-checks only when dirty). */
  dirty = true;

  /** Read a slot into rdLo/rdHi (no access checks; the engine's own fast path). */
  readSlot(slot: number): void {
    if (this.isLive) {
      const l = this.live[slot];
      if (l != null) {
        l.read(this);
        return;
      }
    }
    this.rdLo = this.lo[slot]!;
    this.rdHi = this.hi[slot]!;
  }

  /** Write a slot, masking to the field's width (no access checks). */
  writeSlot(slot: number, lo: number, hi: number): void {
    const w = FIELDS[slot]!.width;
    lo &= LO_MASK[w]!;
    hi = HAS_HI[w] ? hi | 0 : 0;
    if (this.isLive) {
      const l = this.live[slot];
      if (l != null) {
        l.write(lo, hi);
        return;
      }
    }
    this.lo[slot] = lo;
    this.hi[slot] = hi;
  }

  /** The low 32 bits of a field by encoding (no access checks: callers pass a VmcsField constant). */
  get32(enc: number): number {
    this.readSlot(SLOT[enc]!);
    return this.rdLo;
  }

  set32(enc: number, v: number): void {
    this.writeSlot(SLOT[enc]!, v, 0);
  }

  /** A field as an unsigned bigint. */
  get64(enc: number): bigint {
    this.readSlot(SLOT[enc]!);
    return (BigInt(this.rdHi >>> 0) << 32n) | BigInt(this.rdLo >>> 0);
  }

  /** A field as a number (exact below 2^53; natural-width addresses are below 2^48 plus sign). */
  getNum(enc: number): number {
    this.readSlot(SLOT[enc]!);
    return (this.rdHi >>> 0) * 4294967296 + (this.rdLo >>> 0);
  }

  set64(enc: number, v: bigint): void {
    const u = BigInt.asUintN(64, v);
    this.writeSlot(SLOT[enc]!, Number(u & 0xffffffffn) | 0, Number(u >> 32n) | 0);
  }

  /** Clear every field (VMCLEAR leaves the data undefined; zero is a clean choice). */
  clear(): void {
    this.lo.fill(0);
    this.hi.fill(0);
    this.launched = false;
    this.dirty = true;
  }
}

/** Access check for VMREAD/VMWRITE: 0 if allowed, else the VM-instruction error. */
export function accessError(enc: number, write: boolean, vmwriteAny: boolean): number {
  const slot = slotOf(enc);
  if (slot < 0) return VmInstructionError.UnsupportedVmcsComponent;
  if (write && !vmwriteAny && FIELDS[slot]!.type === FieldType.ExitInfo)
    return VmInstructionError.VmwriteReadOnlyComponent;
  return 0;
}
