/**
 * IN/OUT and CPUID on the interpreter's fast path: with intercept hooks installed (a VM exit's
 * path), the fast path calls them with the same events, at the same RIP and instruction count, as
 * the general decoder; a declined I/O runs on the bus; a hook that moves RIP elsewhere is a
 * transfer; a hook that leaves an event pending ends the run. Without hooks, CPUID answers come
 * from the model (computed once per leaf, afresh for a new model object).
 */
import { describe, expect, it } from 'vitest';
import type { CpuidEvent, IoEvent } from '../../../plugins/x86-64/hooks.js';
import { assembleWithSymbols, load, testMachine, type TestMachine } from './helpers.js';

const CODE = 0x8000;

/** EBP counts the loop down (CPUID writes EAX, EBX, ECX, EDX). */
const PROGRAM = `.code32
  mov ebp, 40
1:
  mov eax, ebp
  out 0x80, al
  in al, 0x81
  add ebx, eax
  mov dx, 0x82
  out dx, eax
  in eax, dx
  add esi, eax
  out dx, al
  mov eax, ebp
  and eax, 3
  xor ecx, ecx
  cpuid
  add esi, ebx
  add edi, ecx
  out 0x90, al
  inc esi
skipped:
  out 0x91, al
  in eax, 0x80
  add edi, eax
  dec ebp
  jnz 1b
  out 0xeb, al
`;

/**
 * Translatable code around the exiting instructions, so that translated blocks call the hooks:
 * registers a hook writes are used after it, a flag written before a hook is read after it.
 */
const BLOCK_PROGRAM = `.code32
  mov ebp, 300
1:
  mov eax, ebp
  and eax, 3
  xor ecx, ecx
  cpuid
  add esi, ebx
  add edi, ecx
  mov eax, ebp
  out 0x80, al
  in al, 0x81
  add esi, eax
  mov edx, 0x82
  out dx, al
  in eax, dx
  add edi, eax
  mov eax, ebp
  and eax, 7
  cmp eax, 3
  jnz 2f
  out 0x90, al
  inc esi
skipped:
2:
  out 0x91, al
  adc esi, 0
  dec ebp
  jnz 1b
  out 0xeb, al
`;

interface Run {
  log: string[];
  /** Blocks translated. */
  blocks: number;
  state: string;
  general: number;
  busWrites: number[];
}

function run(fast: boolean, program = PROGRAM): Run {
  const m = testMachine();
  const { bytes, sym } = assembleWithSymbols(program, CODE);
  load(m, CODE, bytes);
  m.cpu.setEntry({ mode: 'protected', ip: CODE });
  m.cpu.fastPath = fast;
  const cpu = m.cpu;
  const log: string[] = [];
  const busWrites: number[] = [];
  let reads = 0;
  m.bus.addPorts('declined', 0x82, 4, {
    ioRead: () => 0x1000 + reads++,
    ioWrite: (_off, size, v) => busWrites.push(size, v >>> 0),
  });
  const where = (): string => `rip=${cpu.rip.toString(16)} n=${cpu.instructionsRetired}`;
  cpu.hooks.io = (e: IoEvent): boolean => {
    log.push(
      `io ${e.port.toString(16)} ${e.size} ${e.input ? 'in' : 'out'} ${e.immediate ? 'imm' : 'dx'} len=${e.length} ${where()}`,
    );
    if (e.port === 0x82 || e.port >= 0xe0) return false; // declined: the bus does it (0xeb: done)
    if (e.input) cpu.rl[0] = e.size === 4 ? 0x7654321 + e.port : (cpu.rl[0]! & ~0xff) | 0x5a;
    // Port 0x90: resume past the next instruction (a transfer), as a handler changing RIP would.
    cpu.rip = e.port === 0x90 ? sym['skipped']! : cpu.rip + e.length;
    return true;
  };
  cpu.hooks.cpuid = (e: CpuidEvent): boolean => {
    log.push(`cpuid ${e.leaf} ${e.subleaf} len=${e.length} ${where()}`);
    cpu.rl[0] = e.leaf * 3;
    cpu.rl[3] = 0x100 + e.leaf;
    cpu.rl[1] = 0x200;
    cpu.rl[2] = 0;
    cpu.rip += e.length;
    return true;
  };
  let general = 0;
  const step = cpu.step.bind(cpu);
  cpu.step = (): void => {
    general++;
    step();
  };
  m.run();
  expect(m.done).toBe(true);
  const regs = Array.from(cpu.rl.slice(0, 8), (v) => (v >>> 0).toString(16)).join(' ');
  return {
    log,
    blocks: cpu.blockStats.compiled,
    state: `${regs} fl=${cpu.getFlags().toString(16)} rip=${cpu.rip.toString(16)} n=${cpu.instructionsRetired}`,
    general,
    busWrites,
  };
}

describe('x86-64 fast path with I/O and CPUID hooks', () => {
  it('calls the hooks as the general decoder does, in the same order and state', () => {
    const fast = run(true);
    const slow = run(false);
    // Per iteration: four hooked I/Os, three declined ones, one CPUID, and OUT 0x91.
    expect(fast.log.length).toBe(40 * 9 + 1); // and the final OUT 0xEB, declined
    expect(fast.log.filter((l) => l.startsWith('cpuid')).length).toBe(40);
    expect(fast.log).toEqual(slow.log);
    expect(fast.state).toBe(slow.state);
    expect(fast.busWrites).toEqual(slow.busWrites);
    expect(fast.busWrites.length).toBe(40 * 4);
    // The fast path really took them: the general decoder ran far fewer instructions.
    expect(fast.general).toBeLessThan(slow.general / 4);
  });

  it('calls them from translated blocks as the general decoder does', () => {
    const fast = run(true, BLOCK_PROGRAM);
    const slow = run(false, BLOCK_PROGRAM);
    expect(fast.blocks).toBeGreaterThan(0);
    expect(fast.log.filter((l) => l.startsWith('cpuid')).length).toBe(300);
    expect(fast.log).toEqual(slow.log);
    expect(fast.state).toBe(slow.state);
    expect(fast.busWrites).toEqual(slow.busWrites);
    expect(fast.general).toBeLessThan(slow.general / 4);
  });

  it('without hooks, runs IN/OUT on the port devices as the general decoder does; an earlier timer a device arms cuts the run short', () => {
    const runBare = (fast: boolean, program: string) => {
      const m = testMachine();
      load(m, CODE, assembleWithSymbols(program, CODE).bytes);
      m.cpu.setEntry({ mode: 'protected', ip: CODE });
      m.cpu.fastPath = fast;
      const cpu = m.cpu;
      const log: string[] = [];
      let reads = 0;
      // A timer a port write arms 2 ns (instructions) ahead unless armed, as a PIT the guest programs
      // would: the run must end right after the OUT to fire on time.
      const fired: string[] = [];
      let armed = false;
      const timer = m.clock.createTimer('device', () => {
        armed = false;
        fired.push(`${cpu.instructionsRetired}`);
      });
      m.clock.setEarlierListener(() => cpu.requestExit());
      m.bus.addPorts('dev', 0x80, 0x20, {
        ioRead: (off, size) => {
          log.push(`in ${(0x80 + off).toString(16)} ${size} n=${cpu.instructionsRetired}`);
          return (0x1000 + reads++) & (size === 4 ? 0xffffffff : 0xff);
        },
        ioWrite: (off, size, v) => {
          log.push(
            `out ${(0x80 + off).toString(16)} ${size} ${(v >>> 0).toString(16)} n=${cpu.instructionsRetired}`,
          );
          if (off === 0x10 && !armed) {
            armed = true;
            m.clock.arm(timer, m.clock.now + 2);
          }
        },
      });
      let general = 0;
      const step = cpu.step.bind(cpu);
      cpu.step = (): void => {
        general++;
        step();
      };
      for (let i = 0; i < 100_000 && !m.done; i++) {
        cpu.run(Math.min(m.clock.nextDeadline(), m.clock.now + 100_000));
        m.clock.fireDue();
      }
      expect(m.done).toBe(true);
      const regs = Array.from(cpu.rl.slice(0, 8), (v) => (v >>> 0).toString(16)).join(' ');
      return {
        log,
        fired,
        general,
        blocks: cpu.blockStats.compiled,
        state: `${regs} n=${cpu.instructionsRetired}`,
      };
    };
    // Their OUT 0x90 arms the timer (each pass of PROGRAM, every eighth of BLOCK_PROGRAM).
    for (const program of [PROGRAM, BLOCK_PROGRAM]) {
      const fast = runBare(true, program);
      const slow = runBare(false, program);
      expect(fast.log).toEqual(slow.log);
      expect(fast.fired).toEqual(slow.fired);
      expect(fast.fired.length).toBeGreaterThan(10);
      expect(fast.state).toBe(slow.state);
      expect(fast.general).toBeLessThan(slow.general / 4);
      if (program === BLOCK_PROGRAM) expect(fast.blocks).toBeGreaterThan(0);
    }
  });

  it('leaves an I/O that may fault its permission check to the general path (no hook call)', () => {
    const results: string[] = [];
    for (const fast of [true, false]) {
      const m: TestMachine = testMachine();
      load(m, CODE, assembleWithSymbols('.code32\n nop\n out 0x80, al\n out 0xeb, al\n', CODE).bytes);
      m.cpu.setEntry({ mode: 'protected', ip: CODE });
      m.cpu.fastPath = fast;
      // CPL 3 (CS.RPL) with IOPL 0: the TSS I/O bitmap decides, before any intercept (SDM Vol. 1
      // 19.5.2). The reset TR is a busy TSS at 0 with limit 0xFFFF: map base 0x100, port 0x80 denied.
      m.ram.set([0x00, 0x01], 0x66);
      m.ram[0x100 + (0x80 >> 3)] = 1;
      m.cpu.sSel[1] = 0x1b;
      m.cpu.updateMode();
      expect(m.cpu.cpl).toBe(3);
      let calls = 0;
      m.cpu.hooks.io = () => {
        calls++;
        return false;
      };
      m.cpu.hooks.exceptionBitmap = 1 << 13;
      m.cpu.hooks.exception = (e) => {
        results.push(
          `#${e.vector} error ${e.errorCode} rip=${m.cpu.rip.toString(16)} n=${m.cpu.instructionsRetired}`,
        );
        m.done = true;
        m.cpu.requestExit();
        return true;
      };
      m.run();
      expect(calls).toBe(0);
    }
    expect(results).toEqual([`#13 error 0 rip=${(CODE + 1).toString(16)} n=2`, results[0]]);
  });

  it('answers CPUID from the model without hooks, per leaf and subleaf, and follows a new model', () => {
    const src = `.code32
      xor ecx, ecx
      xor eax, eax
      cpuid
      out 0xe4, eax
      mov eax, ebx
      out 0xe4, eax
      mov eax, 7
      mov ecx, 0
      cpuid
      mov eax, ebx
      out 0xe4, eax
      mov eax, 7
      mov ecx, 1
      cpuid
      mov eax, ebx
      out 0xe4, eax
      mov eax, 0x20
      xor ecx, ecx
      cpuid
      mov eax, ebx
      out 0xe4, eax
      mov eax, 0x80000002
      cpuid
      out 0xe4, eax
      out 0xeb, al
    `;
    const answers = (fast: boolean, vendor?: string): number[] => {
      const m = testMachine();
      load(m, CODE, assembleWithSymbols(src, CODE).bytes);
      m.cpu.fastPath = fast;
      const once = (): number[] => {
        m.values.length = 0;
        m.done = false;
        m.cpu.setEntry({ mode: 'protected', ip: CODE });
        m.run();
        return [...m.values];
      };
      once(); // fills the cache
      if (vendor !== undefined) m.cpu.model = { ...m.cpu.model, vendor };
      return once();
    };
    const plain = answers(true);
    expect(plain).toEqual(answers(false));
    expect(plain[0]).toBe(7); // highest basic leaf
    expect(plain[2]).toBe((1 << 7) | (1 << 20)); // leaf 7/0: SMEP, SMAP
    expect(plain[3]).toBe(0); // leaf 7/1
    expect(plain[4]).toBe(plain[2]); // leaf 0x20 answers as the highest basic leaf (7), subleaf 0
    const amd = answers(true, 'AuthenticAMD');
    expect(amd[1]).toBe(0x68747541); // "Auth"
    expect(plain[1]).toBe(0x756e6547); // "Genu"
  });
});
