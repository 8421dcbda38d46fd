/**
 * The MMIO instruction decoder against GNU as: each instruction is assembled for its code size, and
 * the decode must consume exactly the assembled bytes and name the operands written here by hand.
 */
import { describe, expect, it } from 'vitest';
import {
  AluKind,
  BASE_RIP,
  MemOp,
  NO_REG,
  decodeMemInsn,
  newMemInsn,
  type CodeSize,
  type MemInsn,
} from '../../src/x86/mem-insn.js';
import { Seg } from '../../src/x86/regs.js';
import { assemble } from '../plugins/x86-64/helpers.js';

function bytesOf(code: CodeSize, asm: string): Uint8Array {
  return assemble(`.code${code}\n${asm}\n`);
}

function dec(code: CodeSize, asm: string): MemInsn {
  const b = bytesOf(code, asm);
  const out = newMemInsn();
  const err = decodeMemInsn(b, b.length, code, out);
  expect(err, asm).toBeUndefined();
  expect(out.length, `${asm}: length`).toBe(b.length);
  return out;
}

function decErr(code: CodeSize, bytes: number[]): string {
  const out = newMemInsn();
  const err = decodeMemInsn(new Uint8Array(bytes), bytes.length, code, out);
  expect(err).toBeDefined();
  return err!;
}

describe('decodeMemInsn: MOV forms', () => {
  it('88/89/8A/8B with every operand size in 64-bit mode', () => {
    expect(dec(64, 'mov [rax], cl')).toMatchObject({ op: MemOp.Store, size: 1, reg: 1, base: 0 });
    expect(dec(64, 'mov [rax], cx')).toMatchObject({ op: MemOp.Store, size: 2, reg: 1 });
    expect(dec(64, 'mov [rax], ecx')).toMatchObject({ op: MemOp.Store, size: 4, reg: 1 });
    expect(dec(64, 'mov [rax], rcx')).toMatchObject({ op: MemOp.Store, size: 8, reg: 1 });
    expect(dec(64, 'mov r9b, [rbx]')).toMatchObject({
      op: MemOp.Load,
      size: 1,
      reg: 9,
      regHigh: false,
      base: 3,
    });
    expect(dec(64, 'mov r15, [r12]')).toMatchObject({ op: MemOp.Load, size: 8, reg: 15, base: 12 });
    expect(dec(64, 'mov r10d, [r13+8]')).toMatchObject({ size: 4, reg: 10, base: 13, disp: 8 });
  });

  it('byte registers 4-7: AH..BH without REX, SPL..DIL with it', () => {
    expect(dec(64, 'mov [rdx], ah')).toMatchObject({ reg: 0, regHigh: true, size: 1 });
    expect(dec(64, 'mov bh, [rdx]')).toMatchObject({ reg: 3, regHigh: true, op: MemOp.Load });
    expect(dec(64, 'mov [rdx], sil')).toMatchObject({ reg: 6, regHigh: false });
    expect(dec(32, 'mov ch, [eax]')).toMatchObject({ reg: 1, regHigh: true });
  });

  it('C6/C7 immediates: imm16 under 66, sign-extended imm32 for 64-bit stores', () => {
    expect(dec(64, 'mov byte ptr [rdi], 0x9c')).toMatchObject({ op: MemOp.StoreImm, size: 1, immLo: 0x9c });
    expect(dec(64, 'mov word ptr [rdi], 0x8123')).toMatchObject({ size: 2, immLo: 0x8123 });
    expect(dec(64, 'mov dword ptr [rdi+0x100], 0x87654321')).toMatchObject({
      size: 4,
      immLo: 0x87654321,
      immHi: 0,
      disp: 0x100,
    });
    expect(dec(64, 'mov qword ptr [rdi], -2')).toMatchObject({
      size: 8,
      immLo: 0xfffffffe,
      immHi: 0xffffffff,
    });
    expect(dec(64, 'mov qword ptr [rdi], 5')).toMatchObject({ size: 8, immLo: 5, immHi: 0 });
  });

  it('A0-A3 moffs: address-size wide offsets', () => {
    expect(dec(64, 'movabs eax, [0xfffffff0fee000b0]')).toMatchObject({
      op: MemOp.Load,
      moffs: true,
      reg: 0,
      size: 4,
      disp: 0xfee000b0,
      dispHi: 0xfffffff0,
      addrSize: 8,
    });
    expect(dec(64, 'movabs [0x1122334455667788], al')).toMatchObject({
      op: MemOp.Store,
      size: 1,
      dispHi: 0x11223344,
    });
    expect(dec(64, 'movabs rax, [0x10]')).toMatchObject({ size: 8 });
    expect(dec(32, 'mov [0xfee000b0], eax')).toMatchObject({
      op: MemOp.Store,
      moffs: true,
      disp: 0xfee000b0,
      addrSize: 4,
    });
    expect(dec(32, 'mov ax, [0x1234]')).toMatchObject({ size: 2, disp: 0x1234 });
    expect(dec(16, 'mov al, [0x1234]')).toMatchObject({ size: 1, addrSize: 2, disp: 0x1234 });
    // 67 in 64-bit mode: a 4-byte offset.
    const b = [0x67, 0xa1, 0x78, 0x56, 0x34, 0x12];
    const out = newMemInsn();
    expect(decodeMemInsn(new Uint8Array(b), b.length, 64, out)).toBeUndefined();
    expect(out).toMatchObject({ length: 6, addrSize: 4, disp: 0x12345678, dispHi: 0, size: 4 });
  });

  it('MOVZX and MOVSX: memory size from the opcode, register size from the prefixes', () => {
    expect(dec(64, 'movzx eax, byte ptr [rsi]')).toMatchObject({ op: MemOp.LoadZx, size: 1, regSize: 4 });
    expect(dec(64, 'movzx rax, word ptr [rsi]')).toMatchObject({ op: MemOp.LoadZx, size: 2, regSize: 8 });
    expect(dec(64, 'movzx cx, byte ptr [rsi]')).toMatchObject({ size: 1, regSize: 2, reg: 1 });
    expect(dec(64, 'movsx r8, byte ptr [rsi]')).toMatchObject({
      op: MemOp.LoadSx,
      size: 1,
      regSize: 8,
      reg: 8,
    });
    expect(dec(64, 'movsx edx, word ptr [rsi]')).toMatchObject({ op: MemOp.LoadSx, size: 2, regSize: 4 });
    // A byte register number 4-7 as a MOVZX destination is a word/dword register, never AH.
    expect(dec(32, 'movzx esp, byte ptr [eax]')).toMatchObject({ reg: 4, regHigh: false });
  });
});

describe('decodeMemInsn: addressing', () => {
  it('SIB with scale, index and displacement; REX.X and REX.B extend them', () => {
    expect(dec(64, 'mov eax, [rbx+rcx*4+0x10]')).toMatchObject({ base: 3, index: 1, scale: 4, disp: 0x10 });
    expect(dec(64, 'mov eax, [r11+r14*8-0x80]')).toMatchObject({
      base: 11,
      index: 14,
      scale: 8,
      disp: -0x80,
    });
    expect(dec(64, 'mov eax, [rsp]')).toMatchObject({ base: 4, index: NO_REG, seg: Seg.SS });
    expect(dec(64, 'mov eax, [r12]')).toMatchObject({ base: 12, index: NO_REG });
    // r12 as an index: SIB index 100b with REX.X is R12, not "none".
    expect(dec(64, 'mov eax, [rax+r12*2]')).toMatchObject({ base: 0, index: 12, scale: 2 });
    expect(dec(64, 'mov eax, [rbp]')).toMatchObject({ base: 5, disp: 0, seg: Seg.SS });
    expect(dec(64, 'mov eax, [r13]')).toMatchObject({ base: 13, disp: 0 });
  });

  it('disp32 without a base: absolute (SIB) in 64-bit mode, sign-extended', () => {
    expect(dec(64, 'mov ecx, [0xfffffffffee000f0]')).toMatchObject({
      base: NO_REG,
      index: NO_REG,
      disp: 0xfee000f0 | 0,
    });
    expect(dec(64, 'mov eax, [rcx*8+0x1000]')).toMatchObject({
      base: NO_REG,
      index: 1,
      scale: 8,
      disp: 0x1000,
    });
  });

  it('RIP-relative in 64-bit mode, absolute disp32 in 32-bit mode', () => {
    expect(dec(64, 'mov eax, [rip+0x1234]')).toMatchObject({ base: BASE_RIP, disp: 0x1234 });
    expect(dec(64, 'mov dword ptr [rip-8], 7')).toMatchObject({
      base: BASE_RIP,
      disp: -8,
      immLo: 7,
      length: 10,
    });
    expect(dec(32, 'mov eax, dword ptr ds:[0x1234]')).toMatchObject({ base: NO_REG, disp: 0x1234 });
  });

  it('16-bit addressing: every r/m, BP-based defaults to SS', () => {
    const forms: [string, number, number, number][] = [
      ['[bx+si]', 3, 6, Seg.DS],
      ['[bx+di+4]', 3, 7, Seg.DS],
      ['[bp+si+0x200]', 5, 6, Seg.SS],
      ['[bp+di]', 5, 7, Seg.SS],
      ['[si]', 6, NO_REG, Seg.DS],
      ['[di-2]', 7, NO_REG, Seg.DS],
      ['[bp+1]', 5, NO_REG, Seg.SS],
      ['[bx]', 3, NO_REG, Seg.DS],
    ];
    for (const [m, base, index, seg] of forms) {
      expect(dec(16, `mov ax, ${m}`), m).toMatchObject({ base, index, seg, addrSize: 2, size: 2 });
    }
    expect(dec(16, 'mov ax, word ptr ds:[0x1234]')).toMatchObject({ base: NO_REG, disp: 0x1234 });
    expect(dec(16, 'mov ax, [bp+si-0x7000]')).toMatchObject({ disp: -0x7000 });
  });

  it('operand and address size prefixes switch 16/32 in either mode', () => {
    expect(dec(16, 'mov eax, [ebx+ecx*2]')).toMatchObject({
      size: 4,
      addrSize: 4,
      base: 3,
      index: 1,
      scale: 2,
    });
    expect(dec(32, 'mov ax, [bx+si]')).toMatchObject({ size: 2, addrSize: 2, base: 3, index: 6 });
    expect(dec(64, 'mov eax, [ebx]')).toMatchObject({ addrSize: 4, base: 3 });
    expect(dec(64, 'mov eax, [eip+0x10]')).toMatchObject({ addrSize: 4, base: BASE_RIP });
  });

  it('segment overrides', () => {
    expect(dec(64, 'mov eax, fs:[rax]')).toMatchObject({ seg: Seg.FS, segOverride: true });
    expect(dec(64, 'mov gs:[rbx], ecx')).toMatchObject({ seg: Seg.GS });
    expect(dec(32, 'mov eax, es:[ebp]')).toMatchObject({ seg: Seg.ES, segOverride: true });
    expect(dec(32, 'mov eax, [ebp]')).toMatchObject({ seg: Seg.SS, segOverride: false });
    expect(dec(16, 'mov al, cs:[0x10]')).toMatchObject({ seg: Seg.CS });
  });

  it('a REX prefix followed by a legacy prefix is ignored', () => {
    // 48 66 89 08: the REX.W before 66 does not count, so this is mov [rax], cx.
    const out = newMemInsn();
    expect(decodeMemInsn(new Uint8Array([0x48, 0x66, 0x89, 0x08]), 4, 64, out)).toBeUndefined();
    expect(out).toMatchObject({ size: 2, length: 4, reg: 1 });
    // 66 48 89 08: REX.W wins over 66.
    expect(decodeMemInsn(new Uint8Array([0x66, 0x48, 0x89, 0x08]), 4, 64, out)).toBeUndefined();
    expect(out).toMatchObject({ size: 8, length: 4 });
  });
});

describe('decodeMemInsn: ALU, TEST, XCHG', () => {
  it('AND/OR/XOR with memory destination or source', () => {
    expect(dec(64, 'and [rax], ecx')).toMatchObject({
      op: MemOp.AluStore,
      alu: AluKind.And,
      size: 4,
      reg: 1,
    });
    expect(dec(64, 'or [rax], bl')).toMatchObject({ op: MemOp.AluStore, alu: AluKind.Or, size: 1, reg: 3 });
    expect(dec(64, 'xor rdx, [rax]')).toMatchObject({ op: MemOp.AluLoad, alu: AluKind.Xor, size: 8, reg: 2 });
    expect(dec(64, 'and dword ptr [rax], 0xfffffeff')).toMatchObject({
      op: MemOp.AluStore,
      alu: AluKind.And,
      hasImm: true,
      immLo: 0xfffffeff,
    });
    expect(dec(64, 'or qword ptr [rax], 0x10')).toMatchObject({
      alu: AluKind.Or,
      size: 8,
      immLo: 0x10,
      immHi: 0,
    });
    expect(dec(64, 'xor word ptr [rax], -1')).toMatchObject({ alu: AluKind.Xor, size: 2, immLo: 0xffff });
    expect(dec(64, 'lock or dword ptr [rax], 1')).toMatchObject({ lock: true, op: MemOp.AluStore });
  });

  it('CMP both ways and with immediates, TEST, XCHG', () => {
    expect(dec(64, 'cmp [rax], ecx')).toMatchObject({ op: MemOp.CmpMem, reg: 1 });
    expect(dec(64, 'cmp ecx, [rax]')).toMatchObject({ op: MemOp.CmpReg, reg: 1 });
    expect(dec(64, 'cmp byte ptr [rax], 0x80')).toMatchObject({ op: MemOp.CmpMem, size: 1, immLo: 0x80 });
    expect(dec(64, 'cmp qword ptr [rax], -3')).toMatchObject({
      size: 8,
      immLo: 0xfffffffd,
      immHi: 0xffffffff,
    });
    expect(dec(64, 'test dword ptr [rax], 0x100')).toMatchObject({
      op: MemOp.Test,
      hasImm: true,
      immLo: 0x100,
    });
    expect(dec(64, 'test [rax], dl')).toMatchObject({ op: MemOp.Test, size: 1, reg: 2 });
    expect(dec(64, 'xchg [rax], esi')).toMatchObject({ op: MemOp.Xchg, size: 4, reg: 6 });
  });
});

describe('decodeMemInsn: what it refuses', () => {
  it('register operands, unknown opcodes, REP, LOCK on a load', () => {
    expect(decErr(64, [0x89, 0xc8])).toContain('no memory operand');
    expect(decErr(64, [0x01, 0x08])).toContain('not one this decoder emulates');
    expect(decErr(64, [0x0f, 0x0b])).toContain('0f 0b');
    expect(decErr(64, [0x81, 0x00, 1, 0, 0, 0])).toContain('not one this decoder emulates'); // ADD
    expect(decErr(64, [0xf3, 0x89, 0x08])).toContain('not one this decoder emulates');
    expect(decErr(64, [0xf0, 0x8b, 0x08])).toContain('LOCK');
    expect(decErr(32, [0x48, 0x89, 0x08])).toContain('48 89 08'); // DEC EAX outside 64-bit mode
  });

  it('truncated instructions and more than 15 bytes of prefixes', () => {
    expect(decErr(64, [0x8b])).toContain('truncated');
    expect(decErr(64, [0x8b, 0x80, 0x00])).toContain('truncated'); // disp32 cut short
    expect(decErr(64, [0xc7, 0x00, 0x01])).toContain('truncated'); // imm32 cut short
    expect(decErr(64, [0x48])).toContain('truncated');
    expect(decErr(64, Array<number>(16).fill(0x66))).toContain('longer than 15');
  });
});
