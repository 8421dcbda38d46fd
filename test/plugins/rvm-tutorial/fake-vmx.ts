import type { Vmx } from '../../../plugins/vmx/api.js';

/**
 * A scripted Vmx for unit tests of the policy's exit handlers: VMCS fields in a map, GPRs as
 * bigints, only the methods the handlers under test use (`asVmx` for their constructors).
 */
export class FakeVmx {
  readonly fields = new Map<number, bigint>();
  readonly gpr = new Array<bigint>(16).fill(0n);
  advanced = 0;
  exitQualification = 0;
  exitInstructionLength = 0;
  get asVmx(): Vmx {
    return this as unknown as Vmx;
  }
  vmread(f: number): bigint | undefined {
    return this.fields.get(f) ?? 0n;
  }
  vmread32(f: number): number {
    return Number((this.fields.get(f) ?? 0n) & 0xffff_ffffn);
  }
  vmwrite(f: number, v: number | bigint): void {
    this.fields.set(f, BigInt(v));
  }
  getGpr(n: number): bigint {
    return this.gpr[n]!;
  }
  getGpr32(n: number): number {
    return Number(this.gpr[n]! & 0xffff_ffffn);
  }
  setGpr(n: number, v: bigint): void {
    this.gpr[n] = BigInt.asUintN(64, v);
  }
  setGprPart(n: number, size: 1 | 2 | 4, v: number): void {
    const mask = size === 4 ? 0xffff_ffffn : size === 2 ? 0xffffn : 0xffn;
    this.gpr[n] = size === 4 ? BigInt(v >>> 0) : (this.gpr[n]! & ~mask) | (BigInt(v) & mask);
  }
  advanceRip(): void {
    this.advanced++;
  }
}
