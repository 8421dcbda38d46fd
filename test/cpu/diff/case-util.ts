/** Small helpers to build DiffCases by hand (self-tests) and in the generator. */
import type { DiffCase } from './emulator-adapter.js';
import { Layout, RFLAGS_FIXED } from './protocol.js';

/** Where RSP points by default: the middle of the stack window. */
export const STACK_TOP = Layout.stackAddr + Layout.stackSize / 2;

export const Reg = { AX: 0, CX: 1, DX: 2, BX: 3, SP: 4, BP: 5, SI: 6, DI: 7 } as const;

/** A case with zeroed registers and windows, RSP in the middle of the stack window. */
export function blankCase(mode: 64 | 32, code: ArrayLike<number> = []): DiffCase {
  const regs = new Array<bigint>(mode === 64 ? 16 : 8).fill(0n);
  regs[Reg.SP] = BigInt(STACK_TOP);
  return {
    mode,
    code: Uint8Array.from(code),
    codeAddr: Layout.codeAddr,
    regs,
    rflags: RFLAGS_FIXED,
    dataAddr: Layout.dataAddr,
    data: new Uint8Array(Layout.dataSize),
    stackAddr: Layout.stackAddr,
    stack: new Uint8Array(Layout.stackSize),
  };
}

export function cloneCase(c: DiffCase): DiffCase {
  return { ...c, code: c.code.slice(), regs: [...c.regs], data: c.data.slice(), stack: c.stack.slice() };
}

export function hex(v: bigint | number, width = 0): string {
  return '0x' + BigInt(v).toString(16).padStart(width, '0');
}
