/**
 * Encoder/decoder of the native runner's binary records. The format is described once, in the
 * header comment of test/cpu/native/runner.c; the offsets below follow it field by field, and the
 * HELLO record is checked against the constants here, so a drift fails loudly.
 */
import type { DiffCase, DiffFault, DiffResult, FaultKind } from './emulator-adapter.js';

export const PROTO_VERSION = 1;
const MAGIC_HELLO = 0x49484456; // 'VDHI'
const MAGIC_CASE = 0x53434456; // 'VDCS'
const MAGIC_RESULT = 0x53524456; // 'VDRS'
const HELLO_SIZE = 64;
const CASE_HDR = 152;
const RESULT_HDR = 184;
const NREGS = 16;

/** Fixed windows (mirrors runner.c; verified against the HELLO record). */
export const Layout = {
  codeAddr: 0x1000_0000,
  codeSize: 0x1000,
  dataAddr: 0x2000_0000,
  dataSize: 0x1000,
  stackAddr: 0x3000_0000,
  stackSize: 0x1000,
  /** Room the runner needs after the code for its trailer. */
  trailerMax: 16,
} as const;

/** RFLAGS bits (SDM Vol. 1 3.4.3). */
export const Flag = {
  CF: 1 << 0,
  PF: 1 << 2,
  AF: 1 << 4,
  ZF: 1 << 6,
  SF: 1 << 7,
  DF: 1 << 10,
  OF: 1 << 11,
} as const;
/** The flags a case sets and the comparison looks at: CF PF AF ZF SF DF OF. */
export const ARITH_FLAGS = 0xcd5;
/** Bit 1 (reserved, reads 1) and IF (set in user mode). */
export const RFLAGS_FIXED = 0x202;

/** Host CPU features reported by the runner (CPUID bits listed in runner.c). */
export const Feature = {
  LZCNT: 1 << 0,
  BMI1: 1 << 1,
  POPCNT: 1 << 2,
  CX16: 1 << 3,
  BMI2: 1 << 4,
  ADX: 1 << 5,
  MOVBE: 1 << 6,
} as const;

export interface Hello {
  mode: 64 | 32;
  features: number;
  vendor: string;
}

export type NativeStatus = 'done' | 'signal' | 'timeout';

export interface NativeResult {
  status: NativeStatus;
  signo: number;
  /** Exception vector as reported by the kernel (ucontext trapno). */
  trapno: number;
  err: number;
  siCode: number;
  addr: bigint;
  rip: bigint;
  rflags: number;
  regs: bigint[];
  data: Uint8Array;
  stack: Uint8Array;
}

/** Serialise cases as CASE records. Windows are sent as their one non-zero byte range. */
export function encodeCases(cases: readonly DiffCase[]): Buffer {
  const parts: Buffer[] = [];
  for (const c of cases) {
    if (c.code.length > Layout.codeSize - Layout.trailerMax) throw new Error('case code too long');
    if (c.data.length !== Layout.dataSize || c.stack.length !== Layout.stackSize) {
      throw new Error('case windows must be exactly the window size');
    }
    const [dLo, dHi] = nonZeroRange(c.data);
    const [sLo, sHi] = nonZeroRange(c.stack);
    const b = Buffer.alloc(CASE_HDR + c.code.length + (dHi - dLo) + (sHi - sLo));
    b.writeUInt32LE(MAGIC_CASE, 0);
    b.writeUInt16LE(c.code.length, 4);
    b.writeUInt16LE(dLo, 6);
    b.writeUInt16LE(dHi - dLo, 8);
    b.writeUInt16LE(sLo, 10);
    b.writeUInt16LE(sHi - sLo, 12);
    b.writeBigUInt64LE(BigInt(c.rflags >>> 0), 16);
    for (let i = 0; i < NREGS; i++) {
      b.writeBigUInt64LE(BigInt.asUintN(64, c.regs[i] ?? 0n), 24 + 8 * i);
    }
    let o = CASE_HDR;
    b.set(c.code, o);
    o += c.code.length;
    b.set(c.data.subarray(dLo, dHi), o);
    o += dHi - dLo;
    b.set(c.stack.subarray(sLo, sHi), o);
    parts.push(b);
  }
  return Buffer.concat(parts);
}

function nonZeroRange(a: Uint8Array): [number, number] {
  let lo = 0;
  let hi = a.length;
  while (lo < hi && a[lo] === 0) lo++;
  while (hi > lo && a[hi - 1] === 0) hi--;
  return [lo, hi];
}

export function decodeHello(b: Buffer): Hello {
  if (b.length < HELLO_SIZE || b.readUInt32LE(0) !== MAGIC_HELLO) throw new Error('native runner: no HELLO');
  const version = b.readUInt32LE(4);
  if (version !== PROTO_VERSION) throw new Error(`native runner: protocol ${version}, want ${PROTO_VERSION}`);
  const mode = b.readUInt32LE(8);
  if (mode !== 64 && mode !== 32) throw new Error(`native runner: bad mode ${mode}`);
  const got = [
    Number(b.readBigUInt64LE(16)),
    Number(b.readBigUInt64LE(24)),
    Number(b.readBigUInt64LE(32)),
    b.readUInt32LE(40),
    b.readUInt32LE(44),
    b.readUInt32LE(48),
  ];
  const want = [
    Layout.codeAddr,
    Layout.dataAddr,
    Layout.stackAddr,
    Layout.codeSize,
    Layout.dataSize,
    Layout.stackSize,
  ];
  if (got.some((v, i) => v !== want[i])) {
    throw new Error(`native runner layout ${got.join(',')} differs from protocol.ts ${want.join(',')}`);
  }
  return {
    mode,
    features: b.readUInt32LE(12),
    vendor: b.toString('latin1', 52, 64).replace(/\0+$/, ''),
  };
}

/** Decode the runner's output: HELLO, then one RESULT per case (windows rebuilt from the diffs). */
export function decodeResults(
  b: Buffer,
  cases: readonly DiffCase[],
): { hello: Hello; results: NativeResult[] } {
  const hello = decodeHello(b);
  const results: NativeResult[] = [];
  let o = HELLO_SIZE;
  for (const c of cases) {
    if (o + RESULT_HDR > b.length || b.readUInt32LE(o) !== MAGIC_RESULT) {
      throw new Error(`native runner: missing or corrupt result #${results.length}`);
    }
    const status = b.readUInt32LE(o + 4);
    const nregs = c.mode === 64 ? 16 : 8;
    const regs: bigint[] = [];
    for (let i = 0; i < nregs; i++) regs.push(b.readBigUInt64LE(o + 48 + 8 * i));
    const dLo = b.readUInt16LE(o + 176);
    const dLen = b.readUInt16LE(o + 178);
    const sLo = b.readUInt16LE(o + 180);
    const sLen = b.readUInt16LE(o + 182);
    const data = c.data.slice();
    data.set(b.subarray(o + RESULT_HDR, o + RESULT_HDR + dLen), dLo);
    const stack = c.stack.slice();
    stack.set(b.subarray(o + RESULT_HDR + dLen, o + RESULT_HDR + dLen + sLen), sLo);
    results.push({
      status: status === 0 ? 'done' : status === 1 ? 'signal' : 'timeout',
      signo: b.readUInt32LE(o + 8),
      trapno: b.readUInt32LE(o + 12),
      err: b.readUInt32LE(o + 16),
      siCode: b.readInt32LE(o + 20),
      addr: b.readBigUInt64LE(o + 24),
      rip: b.readBigUInt64LE(o + 32),
      rflags: Number(b.readBigUInt64LE(o + 40) & 0xffff_ffffn),
      regs,
      data,
      stack,
    });
    o += RESULT_HDR + dLen + sLen;
  }
  if (o !== b.length) throw new Error(`native runner: ${b.length - o} unexpected trailing bytes`);
  return { hello, results };
}

/** Exception vectors (SDM Vol. 3A 6.3.1, Table 6-1). */
export const Vector = { DE: 0, BP: 3, OF: 4, UD: 6, SS: 12, GP: 13, PF: 14, AC: 17 } as const;

export function faultKind(vector: number): FaultKind {
  switch (vector) {
    case Vector.DE:
      return 'DE';
    case Vector.UD:
      return 'UD';
    case Vector.GP:
      return 'GP';
    case Vector.PF:
      return 'PF';
    case Vector.BP:
      return 'BP';
    default:
      return 'other';
  }
}

/** The native result in the emulator's terms. A watchdog timeout is a harness error, not a result. */
export function toDiffResult(r: NativeResult): DiffResult {
  if (r.status === 'timeout') throw new Error('native runner: case timed out (generator produced a hang)');
  const out: DiffResult = { regs: r.regs, rflags: r.rflags, data: r.data, stack: r.stack };
  if (r.status === 'signal') {
    const fault: DiffFault = { kind: faultKind(r.trapno), rip: r.rip, vector: r.trapno };
    if (r.trapno === Vector.PF) fault.addr = r.addr;
    out.fault = fault;
  }
  return out;
}
