/**
 * MMIO emulation by the policy (mmio.ts), differentially: each instruction form runs twice in the
 * same guest, once on a guest RAM cell (executed by the CPU) and once on the same value in a guest
 * device's MMIO page (an EPT violation the policy emulates); registers, RFLAGS and the memory cell
 * afterwards must agree. The guest runs with paging off, 32-bit paging (4 MiB and 4 KiB pages) and
 * PAE paging, the device page reached through a linear address of its own.
 */
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RFLAGS } from '../../../src/x86/regs.js';
import { EptViolation } from '../../../src/x86/ept.js';
import { ExitReason } from '../../../src/x86/vmx.js';
import type { ExitHandler } from '../../../plugins/vmx/api.js';
import type { VmxEngine } from '../../../plugins/vmx/engine.js';
import { POWEROFF, RESULTS, finish, loadGuest, pluginInstance, runGuest } from './helpers.js';

const SCRATCH = resolve(import.meta.dirname, 'mmio-scratch.ts');
const DEVICE = `{ plugin: ${SCRATCH}, name: scratch, base: 0xfe000000 }`;
/** Guest RAM cell the CPU executes on. */
const RAM_CELL = 0x3000;
/** Offset of the cell in the device page. */
const CELL = 0x100;
/** Dwords recorded per run: EAX, ECX, EDX, RFLAGS, cell low, cell high. */
const RECORD = 6;
/** Flags compared (AF too: the emulated logic ops clear it, as the CPU model does). */
const FLAGS = RFLAGS.CF | RFLAGS.PF | RFLAGS.AF | RFLAGS.ZF | RFLAGS.SF | RFLAGS.OF;

interface Case {
  /** The instruction with M for the memory operand. */
  op: string;
  init?: [number, number];
  eax?: number;
  ecx?: number;
  edx?: number;
}

const hex = (n: number) => `0x${(n >>> 0).toString(16)}`;

const CASES: Case[] = [
  { op: 'mov M, ecx' },
  { op: 'mov M, cl' },
  { op: 'mov M, ch' },
  { op: 'mov M, cx' },
  { op: 'mov eax, M' },
  { op: 'mov al, M' },
  { op: 'mov dh, M' },
  { op: 'mov ax, M' },
  { op: 'mov dword ptr M, 0x87654321' },
  { op: 'mov byte ptr M, 0x9c' },
  { op: 'mov word ptr M, 0x8001' },
  { op: 'movzx eax, byte ptr M' },
  { op: 'movzx ecx, word ptr M' },
  { op: 'movsx eax, byte ptr M' },
  { op: 'movsx edx, word ptr M' },
  { op: 'movzx ax, byte ptr M' },
  { op: 'movsx cx, byte ptr M' },
  { op: 'or M, ecx' },
  { op: 'and M, edx' },
  { op: 'xor M, eax' },
  { op: 'xor M, ecx' },
  { op: 'or byte ptr M, 0x81' },
  { op: 'and dword ptr M, 0xffff00ff' },
  { op: 'xor word ptr M, 0x8000' },
  { op: 'and dword ptr M, -16' },
  { op: 'and byte ptr M, 0' },
  { op: 'or eax, M' },
  { op: 'and dl, M' },
  { op: 'xor cx, M' },
  { op: 'cmp M, ecx' },
  { op: 'cmp M, eax' },
  { op: 'cmp ecx, M', ecx: 0x7fffffff },
  { op: 'cmp M, edx', init: [0x7fffffff, 0], edx: 0x80000000 },
  { op: 'cmp byte ptr M, 0x80' },
  { op: 'cmp dword ptr M, -1' },
  { op: 'cmp word ptr M, 0x1234', init: [0x1234, 0] },
  { op: 'cmp al, M', eax: 0x10 },
  { op: 'test M, edx' },
  { op: 'test byte ptr M, 0x80' },
  { op: 'test dword ptr M, 0x100' },
  { op: 'test M, ecx', init: [0, 0] },
  { op: 'xchg M, eax' },
  { op: 'xchg M, cl' },
  { op: 'lock or dword ptr M, 2' },
];

/** Addressing forms for the device cell, taking turns; LIN is the page's linear address. */
const FORMS = [
  () => `[ebx+${CELL}]`,
  (lin: number) => `ds:[${hex(lin + CELL)}]`,
  () => `[ebx+esi*2+${CELL - 0x80}]`,
  () => `[ebp+${CELL}]`,
  () => `es:[ebx+esi*4]`,
];

function program(cases: Case[], lin: number, paging: string): string {
  const run = (c: Case, mem: string, regs: string) => {
    const [lo, hi] = c.init ?? [0x89abcdef, 0x01234567];
    const cellLo = mem === 'ram' ? `ds:[${RAM_CELL}]` : `[ebx+${CELL}]`;
    const cellHi = mem === 'ram' ? `ds:[${RAM_CELL + 4}]` : `[ebx+${CELL + 4}]`;
    return `
  mov dword ptr ${cellLo}, ${hex(lo)}
  mov dword ptr ${cellHi}, ${hex(hi)}
${regs}
  mov eax, ${hex(c.eax ?? 0x11223344)}
  mov ecx, ${hex(c.ecx ?? 0x89abcdef)}
  mov edx, ${hex(c.edx ?? 0xf0f0ff00)}
  cmp eax, ecx
  ${c.op.replace('M', mem === 'ram' ? `ds:[${RAM_CELL}]` : mem)}
  pushfd
  pop dword ptr [edi+12]
  mov [edi], eax
  mov [edi+4], ecx
  mov [edi+8], edx
  mov eax, ${cellLo}
  mov [edi+16], eax
  mov eax, ${cellHi}
  mov [edi+20], eax
  add edi, ${RECORD * 4}`;
  };
  const regs = `  mov ebx, ${hex(lin)}
  mov ebp, ${hex(lin)}
  mov esi, ${CELL / 4 === 0x40 ? 0x40 : 0}`;
  const body = cases
    .map((c, i) => run(c, 'ram', regs) + run(c, FORMS[i % FORMS.length]!(lin), regs))
    .join('\n');
  return `
  mov esp, 0x9000
  mov edi, ${RESULTS}
${paging}
${body}
${POWEROFF}
`;
}

/** Paging set-ups: the device page at 0xfe000000 appears at `lin`. */
const PAGING = {
  none: { lin: 0xfe000000, setup: '' },
  // 32-bit paging: 4 MiB identity page for 0-4 MiB (PSE), a page table mapping 0xc0400000 -> device.
  '32-bit': {
    lin: 0xc0400000,
    setup: `
  mov dword ptr ds:[0x4000], 0x83
  mov dword ptr ds:[0x4000 + 0x301 * 4], 0x5003
  mov dword ptr ds:[0x5000], 0xfe000003
  mov eax, cr4
  or eax, 0x10
  mov cr4, eax
  mov eax, 0x4000
  mov cr3, eax
  mov eax, cr0
  or eax, 0x80000000
  mov cr0, eax`,
  },
  // PAE: PDPT[0] -> PD (2 MiB identity page), PDPT[3] -> PD -> PT mapping 0xc0000000 -> device.
  PAE: {
    lin: 0xc0000000,
    setup: `
  mov dword ptr ds:[0x4000], 0x5001
  mov dword ptr ds:[0x4018], 0x6001
  mov dword ptr ds:[0x5000], 0x83
  mov dword ptr ds:[0x6000], 0x7003
  mov dword ptr ds:[0x7000], 0xfe000003
  mov eax, cr4
  or eax, 0x20
  mov cr4, eax
  mov eax, 0x4000
  mov cr3, eax
  mov eax, cr0
  or eax, 0x80000000
  mov cr0, eax`,
  },
} as const;

describe('rvm-tutorial: MMIO emulation (32-bit guest)', () => {
  for (const [name, p] of Object.entries(PAGING)) {
    it(`every form matches the CPU on RAM (paging: ${name})`, async () => {
      const r = await runGuest(program(CASES, p.lin, p.setup), { guestDevices: [DEVICE] });
      expect(r.stop, (r.stop as { message?: string }).message).toMatchObject({ kind: 'poweroff', code: 0 });
      for (let i = 0; i < CASES.length; i++) {
        const at = RESULTS + i * 2 * RECORD * 4;
        const got = (base: number) =>
          Array.from({ length: RECORD }, (_, k) => {
            const v = r.u32(base + k * 4) >>> 0;
            return k === 3 ? v & FLAGS : v;
          });
        expect(got(at + RECORD * 4), `${CASES[i]!.op} (form ${i % FORMS.length})`).toEqual(got(at));
      }
      // Every emulated access is counted, under the device's name; the device saw them all.
      const pol = r.policy;
      expect(pol['mmioExits']).toBeGreaterThanOrEqual(CASES.length * 5);
      expect(pol['mmio.scratch']).toBe(pol['mmioExits']);
      const dev = r.loaded.stats()['scratch']!;
      expect(Number(dev['reads']) + Number(dev['writes'])).toBeGreaterThanOrEqual(Number(pol['mmioExits']));
      expect(Number(r.vmx.exitStats().find((e) => e.name === 'EptViolation')?.count)).toBe(pol['mmioExits']);
    }, 60_000);
  }
});

// ---- 64-bit guest: 4-level paging, 8-byte accesses, REX registers, RIP-relative, moffs64 ----------

/** Device page aliases in the 64-bit guest: a 4 KiB page in the top PML4 entry, a 1 GiB page, a 4 KiB page near the code. */
const ALIAS_HIGH = 0xffffff8000000000n;
const ALIAS_1G = 0xfe000000n;
const ALIAS_LOW = 0x200000n;
const ALIASES = [ALIAS_HIGH, ALIAS_1G, ALIAS_LOW];
/** Qwords recorded per run: RAX, RCX, RDX, R9, RFLAGS, the cell. */
const RECORD64 = 6;
/** Where helpers.ts loads the program (mb_header). */
const LOAD = 0x10_0000;

const LONG_MODE = `
  mov esp, 0x9000
  mov dword ptr ds:[0x10000], 0x11003
  mov dword ptr ds:[0x10000 + 511 * 8], 0x13003
  mov dword ptr ds:[0x11000], 0x12003
  mov dword ptr ds:[0x11000 + 3 * 8], 0xc0000083
  mov dword ptr ds:[0x12000], 0x83
  mov dword ptr ds:[0x12008], 0x16003
  mov dword ptr ds:[0x16000], 0xfe000003
  mov dword ptr ds:[0x13000], 0x14003
  mov dword ptr ds:[0x14000], 0x15003
  mov dword ptr ds:[0x15000], 0xfe000003
  mov eax, cr4
  or eax, 0x20
  mov cr4, eax
  mov eax, 0x10000
  mov cr3, eax
  mov ecx, 0xc0000080
  rdmsr
  or eax, 0x100
  wrmsr
  mov eax, cr0
  or eax, 0x80000000
  mov cr0, eax
  lgdt [gdtr64]
  .byte 0xea
  .long long_mode
  .word 0x08
.balign 8
gdt64:
  .quad 0
  .quad 0x00af9b000000ffff
  .quad 0x00cf93000000ffff
gdtr64:
  .word 23
  .long gdt64
.code64
long_mode:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov edi, ${RESULTS}
`;

interface Case64 {
  op: string;
  /** Forms that need the cell's absolute address (disp32, moffs, RIP-relative) use the low alias. */
  form?: (cell: string) => string;
}

const CASES64: Case64[] = [
  { op: 'mov M, rcx' },
  { op: 'mov rax, M' },
  { op: 'mov M, r9' },
  { op: 'mov r9, M' },
  { op: 'mov M, r9d' },
  { op: 'mov M, sil' },
  { op: 'mov ah, M' },
  { op: 'mov M, cx' },
  { op: 'mov qword ptr M, -2' },
  { op: 'mov qword ptr M, 0x7fffffff' },
  { op: 'movzx rax, byte ptr M' },
  { op: 'movsx rcx, word ptr M' },
  { op: 'movsx rdx, byte ptr M' },
  { op: 'movzx r9d, word ptr M' },
  { op: 'or M, rcx' },
  { op: 'and M, rdx' },
  { op: 'xor rax, M' },
  { op: 'and qword ptr M, -0x80000000' },
  { op: 'cmp M, rcx' },
  { op: 'cmp rcx, M' },
  { op: 'cmp qword ptr M, -3' },
  { op: 'test M, rdx' },
  { op: 'xchg M, r9' },
  { op: 'mov rax, M', form: (cell) => `[rip + ${cell}]` },
  { op: 'mov qword ptr M, 0x1234', form: (cell) => `[rip + ${cell}]` },
  { op: 'mov M, ecx', form: (cell) => `ds:[${cell}]` },
  { op: 'movabs rax, M', form: (cell) => `[${cell}]` },
  { op: 'movabs M, eax', form: (cell) => `[${cell}]` },
  { op: 'mov rcx, M', form: () => '[r13+rsi*8]' },
  { op: 'mov M, edx', form: () => '[rbx+r14*2+0x80]' },
];

function program64(): string {
  const run = (c: Case64, i: number, mmio: boolean) => {
    const alias = ALIASES[i % ALIASES.length]!;
    const cell = mmio ? alias + BigInt(CELL) : BigInt(RAM_CELL);
    // Absolute forms reach the device through the low alias (disp32 and rel32 range).
    const abs = mmio ? ALIAS_LOW + BigInt(CELL) : BigInt(RAM_CELL);
    const absolute = c.form !== undefined && !c.form('CELL').startsWith('[r');
    const base = absolute ? abs : cell;
    // A symbol, so that [rip + CELL] is assembled relative to the instruction.
    const mem = c.form ? c.form(mmio ? 'DEV_CELL' : 'RAM_CELL') : '[rbx+0x100]';
    return `
  movabs rbx, 0x${(base - 0x100n).toString(16)}
  movabs r13, 0x${(base - 0x100n).toString(16)}
  mov esi, 0x20
  mov r14d, 0x40
  movabs rax, 0x89abcdef01234567
  mov qword ptr [rbx+0x100], 0
  mov dword ptr [rbx+0x100], 0x89abcdef
  mov dword ptr [rbx+0x104], 0xfedcba98
  movabs rax, 0x1122334455667788
  movabs rcx, 0x89abcdef01234567
  mov edx, 0xf0f0ff00
  movabs r9, 0x0123456789abcdef
  cmp rax, rcx
  ${c.op.replace('M', mem)}
  pushfq
  pop qword ptr [rdi+32]
  mov [rdi], rax
  mov [rdi+8], rcx
  mov [rdi+16], rdx
  mov [rdi+24], r9
  mov rax, [rbx+0x100]
  mov [rdi+40], rax
  add rdi, ${RECORD64 * 8}`;
  };
  return `${LONG_MODE}
# Relative to mb_header (the load address, helpers.ts) so that [rip + X] is assembled PC-relative.
.set RAM_CELL, mb_header - ${LOAD - RAM_CELL}
.set DEV_CELL, mb_header + ${Number(ALIAS_LOW) + CELL - LOAD}
${CASES64.map((c, i) => run(c, i, false) + run(c, i, true)).join('\n')}
${POWEROFF}
`;
}

describe('rvm-tutorial: MMIO emulation (64-bit guest, 4-level paging)', () => {
  it('8-byte, REX, RIP-relative and moffs64 forms match the CPU on RAM, through 4 KiB and 1 GiB pages', async () => {
    const r = await runGuest(program64(), { guestDevices: [DEVICE] });
    expect(r.stop, JSON.stringify(r.stop)).toMatchObject({ kind: 'poweroff', code: 0 });
    for (let i = 0; i < CASES64.length; i++) {
      const at = RESULTS + i * 2 * RECORD64 * 8;
      const got = (base: number) =>
        Array.from({ length: RECORD64 * 2 }, (_, k) => {
          const v = r.u32(base + k * 4) >>> 0;
          return k === 8 ? v & FLAGS : v;
        });
      expect(got(at + RECORD64 * 8), `${CASES64[i]!.op} (${i})`).toEqual(got(at));
    }
    // 8-byte accesses are two 4-byte device accesses.
    expect(Number(r.loaded.stats()['scratch']!['reads'])).toBeGreaterThan(Number(r.policy['mmioReads']));
    expect(r.policy['mmio.scratch']).toBe(r.policy['mmioExits']);
  }, 60_000);
});

describe('rvm-tutorial: MMIO emulation stops and settings', () => {
  it('an instruction fetch from a device page stops cleanly', async () => {
    const r = await runGuest(
      `
  mov eax, 0xfe000000
  jmp eax
${POWEROFF}
`,
      { guestDevices: [DEVICE] },
    );
    expect(r.stop.kind).toBe('fault');
    expect((r.stop as { message: string }).message).toContain(
      'the guest executes from MMIO of scratch at GPA 0xfe000000',
    );
  });

  it('an access running off the end of the device page stops with the instruction and GPA', async () => {
    const r = await runGuest(
      `
  mov eax, ds:[0xfe000ffe]
${POWEROFF}
`,
      { guestDevices: [DEVICE] },
    );
    expect(r.stop.kind).toBe('fault');
    const m = (r.stop as { message: string }).message;
    expect(m).toContain("crosses the end of scratch's MMIO range");
    expect(m).toContain('a1 fe 0f 00 fe (load, 4 bytes)');
    expect(m).toContain('GPA 0xfe000ffe');
  });

  it('apic: xapic clears CPUID.01H:ECX[21] and leaves the guest APIC in xAPIC mode; x2apic sets both', async () => {
    const source = `
  mov eax, 1
  cpuid
  mov [${RESULTS}], ecx
  mov ecx, 0x1b
  rdmsr
  mov [${RESULTS + 4}], eax
${POWEROFF}
`;
    const x = await runGuest(source, { policy: 'apic: xapic' });
    expect(x.stop).toMatchObject({ kind: 'poweroff' });
    expect(x.u32(RESULTS) & (1 << 21)).toBe(0);
    expect(x.u32(RESULTS + 4) & 0xc00).toBe(0x800); // EN, not EXTD
    const x2 = await runGuest(source);
    expect(x2.u32(RESULTS) & (1 << 21)).not.toBe(0);
    expect(x2.u32(RESULTS + 4) & 0xc00).toBe(0xc00);
  });

  it('a guest device on a passed-through page is refused when the guest starts', async () => {
    await expect(
      runGuest(POWEROFF, { guestDevices: ['{ plugin: hpet, name: ghpet, base: 0xfec00000 }'] }),
    ).rejects.toThrow(
      'guest.passthrough: host device "ioapic" at 0xfec00000 overlaps the MMIO page of guest device "ghpet"',
    );
  });

  it('a segment base applies in 32-bit code (ES based at the device page)', async () => {
    const r = await runGuest(
      `
  lgdt [gdtr]
  mov ax, 0x18
  mov es, ax
  mov dword ptr ds:[0xfe000100], 0x5eed1234
  mov eax, es:[0x100]
  mov [${RESULTS}], eax
  mov dword ptr es:[0x104], 0xabcdef01
  mov eax, ds:[0xfe000104]
  mov [${RESULTS + 4}], eax
  mov ax, 0x10
  mov es, ax
${POWEROFF}
.balign 8
gdt:
  .quad 0
  .quad 0x00cf9b000000ffff
  .quad 0x00cf93000000ffff
  .quad 0xfe4093000000ffff
gdtr:
  .word 31
  .long gdt
`,
      { guestDevices: [DEVICE] },
    );
    expect(r.stop, JSON.stringify(r.stop)).toMatchObject({ kind: 'poweroff' });
    expect(r.u32(RESULTS) >>> 0).toBe(0x5eed1234);
    expect(r.u32(RESULTS + 4) >>> 0).toBe(0xabcdef01);
    expect(r.policy['mmio.scratch']).toBe(4);
    // The exit summary at the stop names the device.
    expect(r.log).toMatch(
      /guest powered off: \d+ VM exits \(.*EptViolation 4 .*\); MMIO emulated: scratch 4/,
    );
  });

  it('an exit whose read/write bits disagree with the decoded instruction stops cleanly', async () => {
    const { loaded, console, log } = await loadGuest(
      `
  mov eax, ds:[0xfe000100]
${POWEROFF}
`,
      { guestDevices: [DEVICE] },
    );
    try {
      // Report the load as a write: the policy must notice that MOV EAX, [mem] does not write.
      const vmx = pluginInstance<VmxEngine>(loaded, 'vmx');
      const engine = vmx as unknown as { handler: ExitHandler };
      const started = loaded.run({ virtualTimeoutNs: 2_000_000_000 });
      const policy = engine.handler;
      engine.handler = (v) => {
        if (vmx.exitReason === ExitReason.EptViolation) vmx.exitQualification |= EptViolation.DATA_WRITE;
        policy(v);
      };
      const r = finish(loaded, await started, console, log);
      expect(r.stop.kind).toBe('fault');
      expect((r.stop as { message: string }).message).toMatch(
        /MMIO emulation: the exit reports a write \(qualification 0x[0-9a-f]+\), the instruction a1 00 01 00 fe \(load, 4 bytes\) at RIP/,
      );
    } finally {
      await loaded.dispose();
    }
  });
});
