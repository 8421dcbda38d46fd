/**
 * Legacy modes of the x86-64 CPU, driven by a small guest: a real-mode software interrupt through
 * the IVT and string instructions with REP and DF, then 32-bit protected mode with a segment limit
 * fault, 32-bit paging (4 KiB and 4 MiB pages, A/D bits, WP, INVLPG and stale TLB entries), and a
 * trip to ring 3 through IRET with the TSS ESP0 stack switch on the way back.
 */
import { describe, expect, it } from 'vitest';
import { assembleWithSymbols, load, testMachine } from './helpers.js';

const ORG = 0x8000;
const GDT = 0x1000;
const IDT = 0x2000;
const TSS = 0x3000;
const PD = 0x20000;
const PT = 0x21000;
const ESP0 = 0x90000;

const SOURCE = String.raw`
.code16
start:
  cli
  xor ax, ax
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov sp, 0x7000
  mov word ptr [0x100], offset r_int
  mov word ptr [0x102], 0
  mov ax, 0x1234
  int 0x40
  # REP STOSB forwards, REP MOVSW backwards, REPE CMPSB stops at the first difference.
  cld
  mov di, 0x600
  mov al, 0x5a
  mov cx, 7
  rep stosb
  mov byte ptr [0x700], cl
  std
  mov si, 0x604
  mov di, 0x654
  mov cx, 3
  rep movsw
  cld
  mov byte ptr [0x652], 0x11
  mov si, 0x650
  mov di, 0x600
  mov cx, 6
  repe cmpsb
  mov byte ptr [0x701], cl
  mov word ptr [0x702], si
  lgdt [gdtr]
  mov eax, cr0
  or eax, 1
  mov cr0, eax
  .byte 0x66, 0xea
  .long pm32
  .word 0x08
r_int:
  mov byte ptr [0x710], 'I'
  mov word ptr [0x712], ax
  iret

.code32
pm32:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov esp, 0x80000
  lidt [idtr]
  mov ax, 0x38
  ltr ax
  # real-mode results
  mov eax, [0x600]
  out 0xe4, eax
  mov eax, [0x650]
  out 0xe4, eax
  mov eax, [0x700]
  out 0xe4, eax
  mov eax, [0x710]
  out 0xe4, eax
  # segment limit: FS limit 0xfff
  mov ax, 0x18
  mov fs, ax
  mov dword ptr [resume], offset after_lim
  mov eax, fs:[0xffe]
after_lim:
  # 32-bit paging with PSE and WP
  mov eax, cr4
  or eax, 0x10
  mov cr4, eax
  mov eax, ${PD}
  mov cr3, eax
  mov eax, cr0
  or eax, 0x80010000
  mov cr0, eax
  mov dword ptr [resume], offset after_np
  mov eax, [0x800010]
after_np:
  mov dword ptr [resume], offset after_ro
  mov byte ptr [0x400010], 1
after_ro:
  # A and D bits of PTE 5 after a write
  mov byte ptr [0x5000], 7
  mov eax, [${PT} + 5 * 4]
  and eax, 0x60
  out 0xe4, eax
  # Remap page 6 to frame 7 without INVLPG: the TLB keeps the old translation.
  mov dword ptr [0x6000], 0x66
  mov dword ptr [0x7000], 0x77
  mov eax, [0x6000]
  mov dword ptr [${PT} + 6 * 4], 0x7003
  mov eax, [0x6000]
  out 0xe4, eax
  invlpg [0x6000]
  mov eax, [0x6000]
  out 0xe4, eax
  # INVLPG of any 4 KiB of a 4 MiB page drops the whole translation.
  mov eax, [0x400000]
  mov dword ptr [${PD} + 4], 0x800081
  invlpg [0x401000]
  mov eax, [0x400000]
  out 0xe4, eax
  # ring 3 through IRET: SS, ESP, EFLAGS, CS, EIP (DPL-0 data segments would be nulled)
  mov ax, 0x2b
  mov ds, ax
  mov es, ax
  push 0x2b
  push 0x70000
  push 0x2
  push 0x23
  push offset user
  iret
user:
  mov eax, 0x1111
  int 0x80
  mov dword ptr [resume], offset u1
  cli
u1:
  mov eax, 99
  int 0x80

h13:
  push eax
  mov eax, 13
  out 0xe4, eax
  mov eax, [esp+4]
  out 0xe4, eax
  jmp resume_it
h14:
  push eax
  mov eax, 14
  out 0xe4, eax
  mov eax, [esp+4]
  out 0xe4, eax
  mov eax, cr2
  out 0xe4, eax
resume_it:
  mov eax, ss:[resume]
  mov [esp+8], eax
  pop eax
  add esp, 4
  iret
h128:
  out 0xe4, eax
  cmp eax, 99
  je done
  mov eax, [esp+4]
  out 0xe4, eax
  mov eax, esp
  out 0xe4, eax
  iret
done:
  mov al, 'D'
  out 0xe9, al
  out 0xeb, al
  hlt

.align 4
resume: .long 0
gdtr: .word 0x3f
  .long ${GDT}
idtr: .word 0x7ff
  .long ${IDT}
`;

function w32(ram: Uint8Array, a: number, v: number): void {
  ram[a] = v;
  ram[a + 1] = v >>> 8;
  ram[a + 2] = v >>> 16;
  ram[a + 3] = v >>> 24;
}

function desc(base: number, limit: number, access: number, flags: number): [number, number] {
  return [
    ((base & 0xffff) << 16) | (limit & 0xffff),
    ((base >>> 16) & 0xff) | (access << 8) | (limit & 0xf0000) | (flags << 20) | (base & 0xff000000),
  ];
}

describe('x86-64 legacy modes', () => {
  it('runs real mode, 32-bit protected mode, 32-bit paging and ring 3 as the SDM says', () => {
    const m = testMachine({ ramSize: 0x1000000 });
    const { bytes, sym } = assembleWithSymbols(SOURCE, ORG);
    load(m, ORG, bytes);
    const ram = m.ram;
    const gdt: [number, number][] = [
      [0, 0],
      desc(0, 0xfffff, 0x9b, 0xc), // 0x08 code
      desc(0, 0xfffff, 0x93, 0xc), // 0x10 data
      desc(0, 0xfff, 0x93, 0x4), // 0x18 data, byte-granular limit 0xfff
      desc(0, 0xfffff, 0xfb, 0xc), // 0x20 user code
      desc(0, 0xfffff, 0xf3, 0xc), // 0x28 user data
      [0, 0],
      desc(TSS, 0x67, 0x89, 0), // 0x38 32-bit TSS
    ];
    gdt.forEach(([lo, hi], i) => {
      w32(ram, GDT + i * 8, lo);
      w32(ram, GDT + i * 8 + 4, hi);
    });
    w32(ram, TSS + 4, ESP0);
    w32(ram, TSS + 8, 0x10);
    for (const [vec, name, dpl] of [
      [13, 'h13', 0],
      [14, 'h14', 0],
      [0x80, 'h128', 3],
    ] as const) {
      const a = sym[name]!;
      w32(ram, IDT + vec * 8, (0x08 << 16) | (a & 0xffff));
      w32(ram, IDT + vec * 8 + 4, (a & 0xffff0000) | 0x8e00 | (dpl << 13));
    }
    // PDE 0 -> page table (user, RW), 4 KiB identity pages 0..4 MiB; PDE 1: 4 MiB page, read-only.
    w32(ram, PD, PT | 7);
    w32(ram, PD + 4, 0x400000 | 0x81);
    for (let i = 0; i < 1024; i++) w32(ram, PT + i * 4, (i << 12) | 7);
    w32(ram, 0x400000, 0x1111);
    w32(ram, 0x800000, 0x2222);
    m.cpu.loadSeg(1, 0);
    m.cpu.rip = ORG;
    m.run(10_000_000);
    expect(m.triple).toBeUndefined();
    expect(m.text()).toBe('D');
    const h = (n: number): string => '0x' + n.toString(16);
    expect(m.values.map(h)).toEqual(
      [
        // STOSB x7 of 0x5a at 0x600
        0x5a5a5a5a,
        // MOVSW backwards copied 0x600..0x605 to 0x650..0x655; then 0x652 was changed to 0x11
        0x5a115a5a,
        // CX after REP STOSB (0); CX and SI after REPE CMPSB stopped at the third byte
        0x06530300,
        // the real-mode INT 0x40 handler saw AX=0x1234
        0x12340049,
        // #GP(0) for FS:[0xFFE] dword beyond the 0xFFF limit
        13,
        0,
        // #PF not present (error 0), #PF write to a read-only 4 MiB page with WP (P|W)
        14,
        0,
        0x800010,
        14,
        3,
        0x400010,
        // A and D set in the PTE after a write
        0x60,
        // stale translation before INVLPG, the new one after
        0x66,
        0x77,
        // the 4 MiB page's new frame after INVLPG of another 4 KiB inside it
        0x2222,
        // INT 0x80 from ring 3: EAX, saved CS (RPL 3), ESP on the TSS stack (5 dwords pushed)
        0x1111,
        0x23,
        ESP0 - 20,
        // CLI at CPL 3 with IOPL 0: #GP(0)
        13,
        0,
        99,
      ].map(h),
    );
  });
});
