/**
 * The rvm-tutorial policy with small guest programs (32-bit protected mode, loaded by the policy as
 * Multiboot kernels): what the guest sees of CPUID, port I/O, the x2APIC MSRs, timer injection and
 * the exit-count hypercall, and how the run ends (power-off, EPT violation, string I/O, triple fault).
 */
import { describe, expect, it } from 'vitest';
import { exitCodeFor } from '../../../src/index.js';
import { signatureDwords } from '../../../plugins/rvm-tutorial/cpuid.js';
import { POWEROFF, RESULTS, runGuest } from './helpers.js';

const store4 = (off: number) => `
  mov [edi+${off}], eax
  mov [edi+${off + 4}], ebx
  mov [edi+${off + 8}], ecx
  mov [edi+${off + 12}], edx
`;

const CPUID_PROGRAM = `
  mov edi, ${RESULTS}
  xor eax, eax
  cpuid
${store4(0)}
  mov eax, 1
  cpuid
${store4(16)}
  mov eax, 0x40000000
  cpuid
${store4(32)}
  mov eax, 0x16
  xor ecx, ecx
  cpuid
${store4(48)}
${POWEROFF}
`;

/** An IDT at 0x2000 (256 gates), a stack, and `gate VECTOR, HANDLER` to fill a 32-bit interrupt gate. */
const IDT_SETUP = `
  mov esp, 0x9000
  lidt [idtr]
  jmp after_idt
.macro gate vector, handler
  mov eax, offset \\handler
  mov ebx, 0x2000 + \\vector * 8
  mov [ebx], ax
  mov word ptr [ebx+2], 0x08
  mov word ptr [ebx+4], 0x8e00
  shr eax, 16
  mov [ebx+6], ax
.endm
idtr:
  .word 0x7ff
  .long 0x2000
after_idt:
`;

const wrmsr = (msr: number, value: number) => `
  mov ecx, ${msr}
  mov eax, ${value}
  xor edx, edx
  wrmsr
`;

/** The guest APIC timer: software-enabled, divide by 1, periodic on vector 0xF0 every `ticks` ns. */
const TIMER_SETUP = (ticks: number) => `
  gate 0xf0, timer_handler
${wrmsr(0x80f, 0x1ff)}
${wrmsr(0x83e, 0xb)}
${wrmsr(0x832, 0x200f0)}
${wrmsr(0x838, ticks)}
`;

/** Counts interrupts at RESULTS+0x10 and writes the x2APIC EOI. */
const TIMER_HANDLER = `
timer_handler:
  inc dword ptr [${RESULTS + 0x10}]
  push eax
  push ecx
  push edx
${wrmsr(0x80b, 0)}
  pop edx
  pop ecx
  pop eax
  iretd
`;

describe('rvm-tutorial: CPUID', () => {
  it('hides VMX, sets the hypervisor and x2APIC bits, answers 0x40000000, leaves 0x16 out', async () => {
    const r = await runGuest(CPUID_PROGRAM);
    expect(r.stop).toMatchObject({ kind: 'poweroff', code: 0 });
    // Leaf 0: the host model's vendor (GenuineIntel) and a maximum basic leaf below 0x16.
    expect([r.u32(RESULTS + 4), r.u32(RESULTS + 12), r.u32(RESULTS + 8)]).toEqual(
      signatureDwords('GenuineIntel'),
    );
    expect(r.u32(RESULTS)).toBeLessThan(0x16);
    const ecx1 = r.u32(RESULTS + 24);
    expect(ecx1 & (1 << 5)).toBe(0); // VMX hidden although the host CPU has it
    expect(ecx1 & (1 << 21)).not.toBe(0); // x2APIC forced on
    expect(ecx1 >>> 31).toBe(1); // hypervisor present
    expect(r.u32(RESULTS + 28) & (1 << 9)).not.toBe(0); // APIC
    expect(r.u32(RESULTS + 32)).toBe(0x40000000);
    expect([r.u32(RESULTS + 36), r.u32(RESULTS + 40), r.u32(RESULTS + 44)]).toEqual(
      signatureDwords('RVMRVMRVMRVM'),
    );
    expect(r.u32(RESULTS + 48)).not.toBe(3000); // no frequency leaf
    expect(r.vmx.exitStats().find((e) => e.name === 'Cpuid')?.count).toBe(4);
  });

  it('reports leaf 0x16 from the TSC rate and another signature when configured', async () => {
    const r = await runGuest(CPUID_PROGRAM, { policy: 'cpuid-16h: true, signature: KVMKVMKVMXYZ' });
    expect(r.stop).toMatchObject({ kind: 'poweroff', code: 0 });
    expect(r.u32(RESULTS)).toBe(0x16);
    expect([r.u32(RESULTS + 48), r.u32(RESULTS + 52), r.u32(RESULTS + 56)]).toEqual([3000, 3000, 100]);
    expect([r.u32(RESULTS + 36), r.u32(RESULTS + 40), r.u32(RESULTS + 44)]).toEqual(
      signatureDwords('KVMKVMKVMXYZ'),
    );
  });
});

describe('rvm-tutorial: port I/O', () => {
  it('dispatches to the guest devices, merges IN by size, reads unknown ports as all ones', async () => {
    const r = await runGuest(`
  mov edi, ${RESULTS}
  mov dx, 0x3ff
  mov al, 0xa5
  out dx, al
  mov eax, 0x12345678
  in al, dx
  mov [edi], eax
  mov eax, 0x11112222
  mov dx, 0x1234
  in ax, dx
  mov [edi+4], eax
  mov eax, 0x33333333
  in eax, dx
  mov [edi+8], eax
  mov al, 0x55
  out 0x80, al
  mov dx, 0x3fb
  mov al, 0x1b
  out dx, al
  mov eax, 0xaaaaaa00
  in al, dx
  mov [edi+12], eax
${POWEROFF}
`);
    expect(r.stop).toMatchObject({ kind: 'poweroff', code: 0 });
    expect(r.u32(RESULTS) >>> 0).toBe(0x123456a5); // COM1 scratch register, AL only
    expect(r.u32(RESULTS + 4) >>> 0).toBe(0x1111ffff); // unknown port, AX only
    expect(r.u32(RESULTS + 8) >>> 0).toBe(0xffffffff);
    expect(r.u32(RESULTS + 12) >>> 0).toBe(0xaaaaaa1b); // COM1 LCR as written
    const bus = r.loaded.stats()['guest-bus']!;
    expect(bus.unmappedPortReads).toBe(2);
    expect(bus.unmappedPortWrites).toBe(1);
    expect(r.log).toContain('unmapped I/O port 0x0080');
    expect(r.policy).toMatchObject({ ioIn: 4, ioOut: 4 }); // the power-off OUT included
  });

  it('emulates string I/O (REP OUTSB to COM1; the details are in string-io.test.ts)', async () => {
    const r = await runGuest(`
  mov dword ptr [${RESULTS}], 0x0a6b6f
  mov esi, ${RESULTS}
  mov ecx, 3
  mov dx, 0x3f8
  rep outsb
  mov [${RESULTS + 4}], ecx
  mov [${RESULTS + 8}], esi
${POWEROFF}
`);
    expect(r.stop).toMatchObject({ kind: 'poweroff', code: 0 });
    expect(r.console).toBe('ok\n');
    expect(r.u32(RESULTS + 4)).toBe(0);
    expect(r.u32(RESULTS + 8)).toBe(RESULTS + 3);
    expect(r.policy).toMatchObject({ stringIoExits: 1, stringIoElements: 3 });
  });
});

describe('rvm-tutorial: MSRs', () => {
  it('IA32_APIC_BASE reads EN|EXTD, x2APIC registers reach the guest APIC, a refused write is #GP(0)', async () => {
    const r = await runGuest(`
${IDT_SETUP}
  gate 13, gp_handler
  mov edi, ${RESULTS}
  mov ecx, 0x1b
  rdmsr
  mov [edi], eax
  mov [edi+4], edx
  mov ecx, 0x803
  rdmsr
  mov [edi+8], eax
${wrmsr(0x808, 0x20)}
  rdmsr
  mov [edi+12], eax
${wrmsr(0x802, 0)}
  mov dword ptr [${RESULTS + 0x100}], 1
${POWEROFF}
gp_handler:
  pop eax
  mov [${RESULTS + 0x104}], eax
  mov eax, [esp]
  mov [${RESULTS + 0x108}], eax
  mov dword ptr [${RESULTS + 0x100}], 0x6b6b
${POWEROFF}
`);
    expect(r.stop).toMatchObject({ kind: 'poweroff', code: 0 });
    expect(r.u32(RESULTS) >>> 0).toBe((0xfee00000 | 0x800 | 0x400 | 0x100) >>> 0); // base | EN | EXTD | BSP
    expect(r.u32(RESULTS + 4)).toBe(0);
    expect(r.u32(RESULTS + 8) & 0xff).toBeGreaterThanOrEqual(0x10); // an integrated APIC's version
    expect(r.u32(RESULTS + 12)).toBe(0x20); // TPR written and read back
    expect(r.u32(RESULTS + 0x100)).toBe(0x6b6b); // the #GP handler ran, not the next instruction
    expect(r.u32(RESULTS + 0x104)).toBe(0); // error code 0
    expect(r.read(r.u32(RESULTS + 0x108), 2)).toEqual(Uint8Array.of(0x0f, 0x30)); // at the WRMSR
    expect(r.policy.gpInjected).toBe(1);
  });
});

describe('rvm-tutorial: timer interrupt injection', () => {
  it('coalesces expiries while IF=0 and injects one through the interrupt window', async () => {
    const r = await runGuest(`
${IDT_SETUP}
${TIMER_SETUP(10_000)}
  mov ecx, 50000
1: dec ecx
  jnz 1b
  sti
  nop
  cli
  mov eax, [${RESULTS + 0x10}]
  mov [${RESULTS}], eax
${wrmsr(0x838, 0)}
${POWEROFF}
${TIMER_HANDLER}
`);
    expect(r.stop).toMatchObject({ kind: 'poweroff', code: 0 });
    // About 10 timer periods passed with IF=0: the APIC's IRR holds one, so exactly one arrives.
    expect(r.u32(RESULTS)).toBe(1);
    expect(r.policy).toMatchObject({ injected: 1, windowOpened: 1 });
    expect(r.vmx.exitStats().find((e) => e.name === 'InterruptWindow')?.count).toBe(1);
  });

  it('delivers ticks while the guest runs without exits (the host-APIC kick)', async () => {
    const program = `
${IDT_SETUP}
${TIMER_SETUP(10_000)}
  sti
  mov ecx, 100000
1: dec ecx
  jnz 1b
  cli
  mov eax, [${RESULTS + 0x10}]
  mov [${RESULTS}], eax
${wrmsr(0x838, 0)}
${POWEROFF}
${TIMER_HANDLER}
`;
    const r = await runGuest(program);
    expect(r.stop).toMatchObject({ kind: 'poweroff', code: 0 });
    // 200 us of spinning at a 10 us period.
    const ticks = r.u32(RESULTS);
    expect(ticks).toBeGreaterThanOrEqual(15);
    expect(ticks).toBeLessThanOrEqual(21);
    expect(r.policy.injected).toBe(ticks);
    expect(r.policy.kicks).toBeGreaterThanOrEqual(ticks);
    expect(r.vmx.exitStats().find((e) => e.name === 'ExternalInterrupt')?.count).toBeGreaterThanOrEqual(
      ticks,
    );

    // Without a host APIC to kick the vCPU, nothing interrupts a loop that never exits.
    const bare = await runGuest(program, { noHostApic: true });
    expect(bare.stop).toMatchObject({ kind: 'poweroff', code: 0 });
    expect(bare.u32(RESULTS)).toBe(0);
    expect(bare.log).toContain('no host local APIC');
  });
});

describe('rvm-tutorial: VMCALL', () => {
  it('answers the exit-count hypercall and steps over other VMCALLs', async () => {
    const r = await runGuest(`
  mov eax, 0x564d4d00
  vmcall
  mov [${RESULTS}], eax
  mov eax, 0x12345
  vmcall
  mov [${RESULTS + 4}], eax
  mov eax, 0x564d4d00
  vmcall
  mov [${RESULTS + 8}], eax
${POWEROFF}
`);
    expect(r.stop).toMatchObject({ kind: 'poweroff', code: 0 });
    expect(r.u32(RESULTS)).toBe(1);
    expect(r.u32(RESULTS + 4)).toBe(0x12345);
    expect(r.u32(RESULTS + 8)).toBe(3);
    expect(r.policy.exits).toBe(4); // and the power-off OUT
  });
});

describe('rvm-tutorial: stops', () => {
  it('powers off with exit code 0 and a one-line summary', async () => {
    const r = await runGuest(`
  xor eax, eax
  cpuid
${POWEROFF}
`);
    expect(r.stop).toMatchObject({ kind: 'poweroff', code: 0, source: 'acpi-pm' });
    expect(exitCodeFor(r.stop)).toBe(0);
    expect(r.log).toContain('Starting virtualization...');
    expect(r.log).toContain('Running guest...');
    expect(r.log).toMatch(
      /guest powered off: 2 VM exits \((IoInstruction|Cpuid) 1 50\.0%, (Cpuid|IoInstruction) 1 50\.0%\)/,
    );
  });

  it('an access outside guest RAM and the passthrough pages stops with the GPA and the guest state', async () => {
    const r = await runGuest(`
  mov eax, [0x2000000]
${POWEROFF}
`);
    expect(r.stop.kind).toBe('fault');
    const s = r.stop as { message: string; state?: string };
    expect(s.message).toContain('EPT violation: guest read at GPA 0x2000000');
    expect(s.state).toMatch(/rip=0+1000[0-9a-f]{2}/);
    expect(exitCodeFor(r.stop)).toBe(4);
  });

  it('an instruction the MMIO emulation does not know stops with its bytes, RIP, GPA and the state', async () => {
    const r = await runGuest(
      `
  mov ebx, 0xfe000010
  add [ebx], eax
${POWEROFF}
`,
      { guestDevices: ['{ plugin: hpet, name: ghpet, base: 0xfe000000 }'] },
    );
    expect(r.stop.kind).toBe('fault');
    const s = r.stop as { message: string; state?: string };
    expect(s.message).toContain('MMIO emulation: instruction 01 03');
    expect(s.message).toMatch(/at RIP 0x1000[0-9a-f]{2} \(32-bit code\) accessing ghpet at GPA 0xfe000010/);
    expect(s.state).toContain('rip=');
    expect(exitCodeFor(r.stop)).toBe(4);
  });

  it('emulates a read of a guest device page (the guest HPET reads like the host one)', async () => {
    const r = await runGuest(
      `
  mov eax, [0xfed00000]
  mov [${RESULTS}], eax
  mov ebx, 0xfe000000
  mov eax, [ebx]
  mov [${RESULTS + 4}], eax
${POWEROFF}
`,
      { guestDevices: ['{ plugin: hpet, name: ghpet, base: 0xfe000000 }'] },
    );
    expect(r.stop).toMatchObject({ kind: 'poweroff' });
    // GCAP_ID low dword: passed-through host HPET and emulated guest HPET agree, and it is not all ones.
    expect(r.u32(RESULTS + 4)).toBe(r.u32(RESULTS));
    expect(r.u32(RESULTS) >>> 0).not.toBe(0xffffffff);
    expect(r.policy).toMatchObject({ mmioExits: 1, mmioReads: 1, 'mmio.ghpet': 1 });
  });

  it('a triple fault stops with a register dump', async () => {
    const r = await runGuest(`
  lidt [bad_idt]
  int3
${POWEROFF}
bad_idt:
  .word 0
  .long 0
`);
    expect(r.stop.kind).toBe('fault');
    const s = r.stop as { message: string; state?: string };
    expect(s.message).toContain('guest triple fault');
    expect(s.state).toContain('rflags=');
  });
});
