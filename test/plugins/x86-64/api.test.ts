/**
 * The CPU's interface for other plugins: triple fault as a stop, the state object round trip,
 * event injection, intercept hooks, and the diagnostic record of undefined opcodes.
 */
import { describe, expect, it } from 'vitest';
import { EventType } from '../../../src/x86/exceptions.js';
import { assemble, load, testMachine } from './helpers.js';

describe('x86-64 CPU interface', () => {
  it('stops on a triple fault with a register dump', () => {
    const m = testMachine();
    // An IVT limit of 0: #UD cannot be delivered (#GP), nor can #GP (#DF), nor #DF.
    load(m, 0x8000, assemble('.code16\n lidt [zero]\n ud2\nzero: .word 0\n .long 0\n', 0x8000));
    m.cpu.setEntry({ mode: 'real', ip: 0x8000 });
    m.run(1_000_000);
    expect(m.triple).toBe('triple fault: exception #GP while delivering #DF');
    expect(m.cpu.halted).toBe(true);
    expect(m.cpu.dumpState()).toMatch(/rip=0000000000008005 .* mode=real/);
  });

  it('round-trips its architectural state', () => {
    const m = testMachine();
    m.cpu.setEntry({ mode: 'protected', ip: 0x1234, regs: { eax: 0x2badb002, ebx: 0x9000 } });
    const s = m.cpu.getState();
    expect(s.gpr[0]).toBe(0x2badb002n);
    expect(s.gpr[3]).toBe(0x9000n);
    expect(s.cs).toMatchObject({ selector: 8, base: 0n, limit: 0xffffffff });
    s.gpr[15] = 0xfedcba9876543210n;
    s.rip = 0x4321n;
    s.rflags = 0x246n;
    m.cpu.setState(s);
    const t = m.cpu.getState();
    expect(t.gpr[15]).toBe(0xfedcba9876543210n);
    expect(t.rip).toBe(0x4321n);
    expect(t.rflags).toBe(0x246n);
  });

  it('delivers an injected event and lets hooks take instructions over', () => {
    const m = testMachine();
    // IVT[0x30] -> 0:0x9000, which reports and stops.
    load(m, 0x9000, assemble('.code16\n mov al, 0x30\n out 0xe9, al\n out 0xeb, al\n', 0x9000));
    m.ram.set([0x00, 0x90, 0x00, 0x00], 0x30 * 4);
    load(m, 0x8000, assemble('.code16\n cpuid\n hlt\n', 0x8000));
    m.cpu.setEntry({ mode: 'real', ip: 0x8000 });
    let leaves = 0;
    m.cpu.hooks.cpuid = (e) => {
      leaves++;
      m.cpu.rl[0] = 0x1234;
      m.cpu.rip = 0x8000 + e.length;
      return true;
    };
    m.cpu.hooks.hlt = () => {
      m.cpu.injectEvent(0x30, EventType.External);
      m.cpu.rip += 1;
      return true;
    };
    m.run(1_000_000);
    expect(leaves).toBe(1);
    expect(m.cpu.rl[0] & 0xffff).toBe(0x1230);
    expect(m.text()).toBe('0');
  });

  it('records undefined opcodes with their bytes and address', () => {
    const m = testMachine();
    m.ram.set([0x00, 0x91, 0x00, 0x00], 6 * 4); // #UD handler at 0:0x9100: stop
    load(m, 0x9100, assemble('.code16\n out 0xeb, al\n', 0x9100));
    load(m, 0x8000, assemble('.code16\n nop\n .byte 0x0f, 0x0b\n', 0x8000));
    m.cpu.setEntry({ mode: 'real', ip: 0x8000 });
    m.run(1_000_000);
    expect(m.done).toBe(true);
    expect(m.cpu.stats()).toMatchObject({ 'ud[0f 0b @ 0x8001]': 1 });
  });

  it('charges PAUSE its configured virtual time', () => {
    const m = testMachine();
    load(m, 0x8000, assemble('.code32\n mov ecx, 1000\n1: pause\n loop 1b\n out 0xeb, al\n', 0x8000));
    m.cpu.setEntry({ mode: 'protected', ip: 0x8000 });
    m.cpu.pauseNs = 40;
    m.run(1_000_000_000);
    expect(m.done).toBe(true);
    // 2002 instructions at 1 ns each, plus 1000 PAUSEs at 40 ns.
    expect(m.clock.now).toBe(2002 + 40_000);
  });

  it('skips the virtual time of an idle loop to the next timer, but not of a counting loop', () => {
    const m = testMachine();
    // Spin on a flag in memory until 10 ms of virtual time have passed (a timer sets it).
    load(m, 0x8000, assemble('.code32\n1: cmp byte ptr [0x9000], 0\n je 1b\n out 0xeb, al\n', 0x8000));
    m.cpu.setEntry({ mode: 'protected', ip: 0x8000 });
    const t = m.clock.createTimer('flag', () => (m.ram[0x9000] = 1));
    m.clock.arm(t, 10_000_000);
    for (let i = 0; i < 100 && !m.done; i++) {
      m.cpu.run(m.clock.nextDeadline());
      m.clock.fireDue();
    }
    expect(m.done).toBe(true);
    expect(m.cpu.instructionsRetired).toBeLessThan(1000);
    expect(m.cpu.stats().idleSkips).toBeGreaterThan(0);

    // A delay loop changes ECX every iteration: it runs in full.
    const d = testMachine();
    load(d, 0x8000, assemble('.code32\n mov ecx, 100000\n1: dec ecx\n jnz 1b\n out 0xeb, al\n', 0x8000));
    d.cpu.setEntry({ mode: 'protected', ip: 0x8000 });
    d.run(1_000_000_000);
    expect(d.cpu.instructionsRetired).toBe(200_002);
    expect(d.cpu.stats().idleSkips).toBe(0);
  });

  it('routes guest-physical accesses through the second-stage hook', () => {
    const m = testMachine();
    // Guest-physical 0x8000.. lives at host-physical 0x108000..; guest-physical 0x5000 is a violation.
    load(m, 0x108000, assemble('.code32\n mov eax, [0x4000]\n mov ebx, [0x5000]\n', 0x8000));
    m.ram.set([0x78, 0x56, 0x34, 0x12], 0x104000);
    m.cpu.setEntry({ mode: 'protected', ip: 0x8000 });
    const seen: string[] = [];
    m.cpu.hooks.translate = (r) => {
      if (r.gpa >= 0x5000 && r.gpa < 0x6000) {
        seen.push(`violation ${r.gpa.toString(16)} fetch=${r.fetch} write=${r.write}`);
        m.done = true;
        m.cpu.requestExit();
        return -1;
      }
      return r.gpa + 0x100000;
    };
    m.run(1_000_000);
    expect(m.cpu.rl[0]).toBe(0x12345678);
    expect(seen).toEqual(['violation 5000 fetch=false write=false']);
    // The faulting instruction did not complete: RIP still points at it.
    expect(m.cpu.rip).toBe(0x8005);
  });

  it('routes the local APIC MSRs to the APIC and raises #GP for unknown MSRs', () => {
    const m = testMachine();
    const writes: string[] = [];
    m.cpu.apic = {
      handlesMsr: (msr: number) => msr === 0x1b || (msr >= 0x800 && msr <= 0x8ff),
      readMsr: (msr: number) => ({ ok: msr !== 0x8ff, lo: msr === 0x802 ? 0x5000000 : 0xfee00900, hi: 0 }),
      writeMsr: (msr: number, lo: number, hi: number) => {
        writes.push(`${msr.toString(16)}=${hi.toString(16)}:${lo.toString(16)}`);
        return true;
      },
    } as unknown as NonNullable<typeof m.cpu.apic>;
    // IVT[13] -> 0:0x9000: report #GP and stop.
    m.ram.set([0x00, 0x90, 0x00, 0x00], 13 * 4);
    load(m, 0x9000, assemble('.code16\n mov eax, 13\n out 0xe4, eax\n out 0xeb, al\n', 0x9000));
    const src =
      '.code16\n mov ecx, 0x802\n rdmsr\n out 0xe4, eax\n mov ecx, 0x80b\n xor eax, eax\n xor edx, edx\n wrmsr\n' +
      ' mov ecx, 0xc0001234\n rdmsr\n';
    load(m, 0x8000, assemble(src, 0x8000));
    m.cpu.setEntry({ mode: 'real', ip: 0x8000 });
    m.run(1_000_000);
    expect(m.values).toEqual([0x5000000, 13]);
    expect(writes).toEqual(['80b=0:0']);
  });
});
