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
import { POWEROFF, RESULTS, runGuest } from './helpers.js';

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
