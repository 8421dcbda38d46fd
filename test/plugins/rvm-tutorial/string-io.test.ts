/**
 * INS/OUTS emulation by the policy (string-io.ts) in 32-bit guests: REP and single forms, DF,
 * 16-bit address size, element sizes, long REPs in slices, a buffer reached through the guest's
 * paging across a page boundary, #PF to the guest when its paging refuses the buffer, and the clean
 * stop when EPT does not map it.
 */
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exitCodeFor } from '../../../src/index.js';
import { MAX_PER_EXIT } from '../../../plugins/rvm-tutorial/string-io.js';
import { POWEROFF, RESULTS, runGuest } from './helpers.js';

/** COM1's scratch register (16550 SCR): reads back the last byte written. */
const SCR = 0x3ff;
const BUF = RESULTS + 0x100;
/** The guest's IDT (for its #PF handler). */
const IDT = RESULTS + 0x800;

describe('rvm-tutorial: string I/O', () => {
  it('REP INSB fills ES:EDI from the port; single INSB; EDI and ECX as the CPU leaves them', async () => {
    const r = await runGuest(`
  mov dx, ${SCR}
  mov al, 0x5a
  out dx, al
  mov edi, ${BUF}
  mov ecx, 3
  rep insb
  mov [${RESULTS}], edi
  mov [${RESULTS + 4}], ecx
  mov al, 0xa7
  out dx, al
  insb
  mov [${RESULTS + 8}], edi
${POWEROFF}
`);
    expect(r.stop).toMatchObject({ kind: 'poweroff', code: 0 });
    expect(Array.from(r.read(BUF, 5))).toEqual([0x5a, 0x5a, 0x5a, 0xa7, 0]);
    expect(r.u32(RESULTS)).toBe(BUF + 3);
    expect(r.u32(RESULTS + 4)).toBe(0);
    expect(r.u32(RESULTS + 8)).toBe(BUF + 4);
    expect(r.policy).toMatchObject({ stringIoExits: 2, stringIoElements: 4 });
    expect(r.log).toContain('; string I/O: 4 elements');
  });

  it('OUTS backwards with DF=1, and word/dword elements', async () => {
    const r = await runGuest(`
  mov dword ptr [${BUF}], 0x6f6b0a
  mov esi, ${BUF + 2}
  mov ecx, 3
  mov dx, 0x3f8
  std
  rep outsb
  cld
  mov [${RESULTS}], esi
  mov dword ptr [${BUF + 8}], 0x11223344
  mov esi, ${BUF + 8}
  mov dx, 0x80
  outsd
  outsw
  mov [${RESULTS + 4}], esi
${POWEROFF}
`);
    expect(r.stop).toMatchObject({ kind: 'poweroff', code: 0 });
    expect(r.console).toBe('ok\n');
    expect(r.u32(RESULTS)).toBe(BUF - 1);
    expect(r.u32(RESULTS + 4)).toBe(BUF + 8 + 6);
    // Port 0x80 is unmapped on the guest bus: both writes are counted there.
    expect(r.loaded.stats()['guest-bus']!['unmappedPortWrites']).toBe(2);
    expect(r.policy).toMatchObject({ stringIoElements: 5 });
  });

  it('a 16-bit address size uses SI and CX only', async () => {
    const r = await runGuest(`
  mov dword ptr [${BUF}], 0x0a6968
  mov esi, ${0xabcd0000 + BUF}
  mov ecx, 0x55550003
  mov dx, 0x3f8
  .byte 0x67
  rep outsb
  mov [${RESULTS}], esi
  mov [${RESULTS + 4}], ecx
${POWEROFF}
`);
    expect(r.stop).toMatchObject({ kind: 'poweroff', code: 0 });
    expect(r.console).toBe('hi\n');
    expect(r.u32(RESULTS) >>> 0).toBe(0xabcd0000 + BUF + 3);
    expect(r.u32(RESULTS + 4) >>> 0).toBe(0x55550000);
  });

  it(`a long REP runs in slices of ${MAX_PER_EXIT}; a zero count moves nothing`, async () => {
    const n = MAX_PER_EXIT + 904;
    const r = await runGuest(`
  mov esi, ${BUF}
  mov ecx, ${n}
  mov dx, 0x80
  rep outsb
  mov [${RESULTS}], esi
  mov [${RESULTS + 4}], ecx
  rep outsb
${POWEROFF}
`);
    expect(r.stop).toMatchObject({ kind: 'poweroff', code: 0 });
    expect(r.u32(RESULTS)).toBe(BUF + n);
    expect(r.u32(RESULTS + 4)).toBe(0);
    // Two slices; the zero-count REP completes in the CPU model without an exit.
    expect(r.policy).toMatchObject({ stringIoExits: 2, stringIoElements: n });
    expect(r.loaded.stats()['guest-bus']!['unmappedPortWrites']).toBe(n);
  });

  it('INS through 32-bit paging across a page boundary, then #PF to the guest at an unmapped page', async () => {
    const r = await runGuest(`
  mov esp, ${IDT}
  lea eax, [pf]
  mov word ptr ds:[${IDT} + 14 * 8], ax
  mov word ptr ds:[${IDT} + 14 * 8 + 2], cs
  mov word ptr ds:[${IDT} + 14 * 8 + 4], 0x8e00
  shr eax, 16
  mov word ptr ds:[${IDT} + 14 * 8 + 6], ax
  lidt [idtr]
  mov dword ptr ds:[0x4000], 0x83
  mov dword ptr ds:[0x4000 + 0x301 * 4], 0x5003
  mov dword ptr ds:[0x5000], 0x6003
  mov dword ptr ds:[0x5004], 0x8003
  mov eax, cr4
  or eax, 0x10
  mov cr4, eax
  mov eax, 0x4000
  mov cr3, eax
  mov eax, cr0
  or eax, 0x80000000
  mov cr0, eax
  mov dx, ${SCR}
  mov al, 0x3c
  out dx, al
  mov edi, 0xc0400ffe
  mov ecx, 4
  rep insb
  mov [${RESULTS}], edi
  mov edi, 0xc0402000
  mov ecx, 3
  rep insb
  mov dword ptr [${RESULTS} + 4], 0xbad
${POWEROFF}
pf:
  pop eax
  mov [${RESULTS} + 4], eax
  mov eax, cr2
  mov [${RESULTS} + 8], eax
  mov [${RESULTS} + 12], edi
  mov [${RESULTS} + 16], ecx
${POWEROFF}
idtr:
  .word 0x7ff
  .long ${IDT}
`);
    expect(r.stop).toMatchObject({ kind: 'poweroff', code: 0 });
    expect(Array.from(r.read(0x6ffe, 2))).toEqual([0x3c, 0x3c]);
    expect(Array.from(r.read(0x8000, 3))).toEqual([0x3c, 0x3c, 0]);
    expect(r.u32(RESULTS) >>> 0).toBe(0xc0401002);
    // #PF(W), not present; CR2 the operand; the faulting REP INSB left EDI and ECX as they were.
    expect(r.u32(RESULTS + 4)).toBe(2);
    expect(r.u32(RESULTS + 8) >>> 0).toBe(0xc0402000);
    expect(r.u32(RESULTS + 12) >>> 0).toBe(0xc0402000);
    expect(r.u32(RESULTS + 16)).toBe(3);
    expect(r.policy).toMatchObject({ pageFaultsInjected: 1 });
  });

  it('INS to an address EPT does not map stops cleanly with the guest state', async () => {
    const r = await runGuest(`
  mov dx, ${SCR}
  mov edi, 0xe0000000
  insb
${POWEROFF}
`);
    expect(r.stop.kind).toBe('fault');
    const s = r.stop as { message: string; state?: string };
    expect(s.message).toContain('string I/O (INS, port 0x03ff, size 1): the memory operand at es:0xe0000000');
    expect(s.message).toContain('is not mapped by EPT');
    expect(s.state).toContain('rip=');
    expect(exitCodeFor(r.stop)).toBe(4);
  });

  it('OUTS with a segment override reads through that segment, here from a guest device page', async () => {
    const r = await runGuest(
      `
  mov dword ptr ds:[0xfe000100], 0x0a6b6f
  lgdt [gdtr]
  mov ax, 0x18
  mov es, ax
  mov esi, 0x100
  mov ecx, 3
  mov dx, 0x3f8
  rep outs dx, byte ptr es:[esi]
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
      {
        guestDevices: [
          `{ plugin: ${resolve(import.meta.dirname, 'mmio-scratch.ts')}, name: scratch, base: 0xfe000000 }`,
        ],
      },
    );
    expect(r.stop, JSON.stringify(r.stop)).toMatchObject({ kind: 'poweroff', code: 0 });
    expect(r.console).toBe('ok\n');
    expect(r.loaded.stats()['scratch']!['reads']).toBe(3);
  });
});
