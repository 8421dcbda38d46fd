/**
 * System-level behaviour of the x86-64 CPU, driven by a small guest (assembled with GNU as): real
 * mode -> protected mode -> long mode, then exceptions with their error codes and CR2, privilege
 * changes (IRETQ to ring 3, INT from ring 3 through the TSS stack, SYSCALL/SYSRET), and external
 * interrupts. The guest reports through port 0xE4 (dwords) and 0xE9 (characters).
 */
import { describe, expect, it } from 'vitest';
import type { InterruptController } from '../../../src/core/cpu.js';
import { assembleWithSymbols, load, testMachine } from './helpers.js';

const ORG = 0x7c00;
const GDT = 0x1000;
const IDT = 0x2000;
const TSS = 0x3000;
const PML4 = 0x10000;
const STACK0 = 0x90000;
const IST1 = 0x70000;

const SOURCE = String.raw`
.code16
start:
  cli
  xor ax, ax
  mov ds, ax
  mov ss, ax
  mov sp, 0x7000
  mov al, 'R'
  out 0xe9, al
  lgdt [gdtr]
  mov eax, cr0
  or eax, 1
  mov cr0, eax
  .byte 0x66, 0xea
  .long pm32
  .word 0x08
.code32
pm32:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov esp, 0x80000
  mov al, 'P'
  out 0xe9, al
  mov eax, cr4
  or eax, 0x20
  mov cr4, eax
  mov eax, 0x10000
  mov cr3, eax
  mov ecx, 0xc0000080
  rdmsr
  or eax, 0x901
  wrmsr
  mov eax, cr0
  or eax, 0x80010000
  mov cr0, eax
  .byte 0xea
  .long lm64
  .word 0x18
.code64
lm64:
  mov ax, 0x20
  mov ss, ax
  mov rsp, 0x80000
  mov al, 'L'
  out 0xe9, al
  lidt [idtr]
  mov ax, 0x40
  ltr ax

  # 1: #UD
  mov qword ptr [resume], offset after_ud
  ud2
after_ud:
  # 2: #DE
  mov qword ptr [resume], offset after_de
  xor ecx, ecx
  div ecx
after_de:
  # 3: #PF read of a not-present page
  mov qword ptr [resume], offset after_pf1
  mov rax, [0x600010]
after_pf1:
  # 4: #PF write to a read-only page (CR0.WP=1)
  mov qword ptr [resume], offset after_pf2
  mov byte ptr [0x400123], 1
after_pf2:
  # 5: #GP on a non-canonical address
  mov qword ptr [resume], offset after_gp
  mov rax, 0x0000800000000000
  mov rax, [rax]
after_gp:
  # 6: INT3 returns after itself
  int3
  # 7: SYSCALL set-up and a drop to ring 3 with IRETQ
  mov ecx, 0xc0000081
  mov eax, 0
  mov edx, 0x00280018
  wrmsr
  mov ecx, 0xc0000082
  mov rax, offset syscall_entry
  mov rdx, rax
  shr rdx, 32
  wrmsr
  mov ecx, 0xc0000084
  mov eax, 0x200
  xor edx, edx
  wrmsr
  push 0x33
  push 0x60000
  push 0x202
  push 0x3b
  push offset user
  iretq
user:
`;

// Ring 3 cannot do OUT (IOPL 0, no bitmap): it reports through INT 0x80 with EAX.
const USER = String.raw`
  mov eax, 0x1111
  int 0x80
  mov qword ptr [resume], offset u1
  hlt
u1:
  mov eax, 0x2222
  int 0x80
  mov qword ptr [resume], offset u2
  mov rax, [0x200000]
u2:
  mov eax, 0x3333
  int 0x80
  mov qword ptr [resume], offset u3
  int 0x81
u3:
  mov eax, 0x4444
  syscall
  mov eax, 0x5555
  int 0x80
  mov eax, 99
  syscall
`;

const KERNEL = String.raw`
syscall_entry:
  push rcx
  push r11
  out 0xe4, eax
  mov ebx, eax
  mov rax, rsp
  out 0xe4, eax
  mov eax, ebx
  pop r11
  pop rcx
  cmp eax, 99
  je finish
  sysretq
finish:
  sti
  hlt
  mov al, 'D'
  out 0xe9, al
  out 0xeb, al
  hlt

.macro HANDLER vec, err
h\vec:
  .if \err == 0
  push 0
  .endif
  push rax
  mov eax, \vec
  out 0xe4, eax
  mov rax, [rsp+8]
  out 0xe4, eax
  .if \vec == 14
  mov rax, cr2
  out 0xe4, eax
  .endif
  .if \vec == 128
  mov rax, [rsp]
  out 0xe4, eax
  mov rax, [rsp+24]
  out 0xe4, eax
  mov rax, rsp
  out 0xe4, eax
  .endif
  mov rax, [resume]
  test rax, rax
  jz 1f
  mov [rsp+16], rax
  mov qword ptr [resume], 0
1:
  pop rax
  add rsp, 8
  iretq
.endm
  HANDLER 0, 0
  HANDLER 3, 0
  HANDLER 6, 0
  HANDLER 8, 1
  HANDLER 13, 1
  HANDLER 14, 1
  HANDLER 32, 0
  HANDLER 128, 0

.align 8
resume: .quad 0
gdtr: .word 0x4f
  .long ${GDT}
idtr: .word 0xfff
  .quad ${IDT}
`;

/** 8-byte code/data descriptor: flat 4 GiB with the given access byte and flags nibble. */
function desc(access: number, flags: number): [number, number] {
  return [0x0000ffff, 0x000f0000 | (access << 8) | (flags << 20)];
}

function w32(ram: Uint8Array, a: number, v: number): void {
  ram[a] = v;
  ram[a + 1] = v >>> 8;
  ram[a + 2] = v >>> 16;
  ram[a + 3] = v >>> 24;
}

function setup(intc?: InterruptController) {
  const m = testMachine(intc ? { intc } : {});
  const { bytes, sym } = assembleWithSymbols(SOURCE + USER + KERNEL, ORG);
  load(m, ORG, bytes);
  const ram = m.ram;
  // GDT: null, code32, data, code64, data64, user code32, user data, user code64, TSS.
  const gdt: [number, number][] = [
    [0, 0],
    desc(0x9b, 0xc),
    desc(0x93, 0xc),
    desc(0x9b, 0xa),
    desc(0x93, 0xc),
    desc(0xfb, 0xc),
    desc(0xf3, 0xc),
    desc(0xfb, 0xa),
  ];
  gdt.forEach(([lo, hi], i) => {
    w32(ram, GDT + i * 8, lo);
    w32(ram, GDT + i * 8 + 4, hi);
  });
  // 64-bit TSS at 0x40: base TSS, limit 0x67, type 9.
  w32(ram, GDT + 0x40, (TSS << 16) | 0x67);
  w32(ram, GDT + 0x44, 0x00008900 | ((TSS >>> 16) & 0xff));
  w32(ram, TSS + 4, STACK0); // RSP0
  w32(ram, TSS + 0x24, IST1); // IST1
  // IDT: 64-bit interrupt gates; vector 0x80 has DPL 3, #DF uses IST1.
  for (const [vec, name] of [
    [0, 'h0'],
    [3, 'h3'],
    [6, 'h6'],
    [8, 'h8'],
    [13, 'h13'],
    [14, 'h14'],
    [32, 'h32'],
    [128, 'h128'],
    [0x81, 'h128'],
  ] as const) {
    const a = sym[name]!;
    const dpl = vec === 128 || vec === 3 ? 3 : 0;
    w32(ram, IDT + vec * 16, (0x18 << 16) | (a & 0xffff));
    w32(ram, IDT + vec * 16 + 4, (a & 0xffff0000) | 0x8e00 | (dpl << 13) | (vec === 8 ? 1 : 0));
  }
  // Page tables: 2 MiB pages for 0..8 MiB; 0-2 MiB user RW, 2-4 MiB supervisor, 4-6 MiB read-only,
  // 6-8 MiB not present.
  w32(ram, PML4, (PML4 + 0x1000) | 7);
  w32(ram, PML4 + 0x1000, (PML4 + 0x2000) | 7);
  w32(ram, PML4 + 0x2000, 0x000000 | 0x87);
  w32(ram, PML4 + 0x2008, 0x200000 | 0x83);
  w32(ram, PML4 + 0x2010, 0x400000 | 0x85);
  m.cpu.loadSeg(1, 0);
  m.cpu.rip = ORG;
  return { m, sym };
}

describe('x86-64 modes, exceptions and privilege changes', () => {
  it('boots from real mode to long mode and reports exceptions exactly', () => {
    let pending = false;
    const intc: InterruptController = {
      hasPendingInterrupt: () => pending,
      acknowledgeInterrupt: () => {
        pending = false;
        return 0x20;
      },
    };
    const { m } = setup(intc);
    // Raise an interrupt once the guest halts with IF=1 (the "finish" path).
    const run = m.run.bind(m);
    m.run = (ns) => {
      run(ns);
      if (!m.done && m.cpu.halted) {
        pending = true;
        m.cpu.interruptRequested();
        run(ns);
      }
    };
    m.run(10_000_000);
    expect(m.triple).toBeUndefined();
    expect(m.text()).toBe('RPLD');
    const v = m.values;
    const h = (n: number): string => '0x' + n.toString(16);
    expect(v.map(h)).toEqual(
      [
        // #UD, error 0 (pushed by the stub)
        6,
        0,
        // #DE
        0,
        0,
        // #PF read not present: error 0, CR2
        14,
        0,
        0x600010,
        // #PF write to read-only: P|W
        14,
        3,
        0x400123,
        // #GP(0) non-canonical
        13,
        0,
        // #BP
        3,
        0,
        // INT 0x80 from ring 3: vector, "error" 0, EAX, saved CS (RPL 3), RSP on the TSS stack
        128,
        0,
        0x1111,
        0x3b,
        STACK0 - 56,
        // HLT at CPL 3: #GP(0)
        13,
        0,
        128,
        0,
        0x2222,
        0x3b,
        STACK0 - 56,
        // user read of a supervisor page: #PF P|U
        14,
        5,
        0x200000,
        128,
        0,
        0x3333,
        0x3b,
        STACK0 - 56,
        // INT 0x81 through a DPL-0 gate from ring 3: #GP(0x81*8+2)
        13,
        0x81 * 8 + 2,
        // SYSCALL: EAX and the (unchanged, user) RSP after two pushes
        0x4444,
        0x60000 - 16,
        128,
        0,
        0x5555,
        0x3b,
        STACK0 - 56,
        0x63,
        0x60000 - 16,
        // the external interrupt after STI; HLT
        32,
        0,
      ].map(h),
    );
  });
});
