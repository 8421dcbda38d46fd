/**
 * Test helpers for the x86-64 CPU: assemble GNU-as source into a flat binary (cached under
 * test/.tmp by content hash), and a bare machine (RAM + a result port) to run it on.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Bus } from '../../../src/core/bus.js';
import { VirtualClock } from '../../../src/core/clock.js';
import type { InterruptController } from '../../../src/core/cpu.js';
import { X86_64 } from '../../../plugins/x86-64/cpu.js';

const TMP = join(import.meta.dirname, '..', '..', '.tmp', 'x86-64');

/**
 * Assemble `source` (Intel syntax unless it says otherwise) linked at `org` into raw bytes.
 * `.code16`/`.code32`/`.code64` directives in the source select the mode.
 */
export function assemble(source: string, org = 0): Uint8Array {
  return assembleWithSymbols(source, org).bytes;
}

export interface Assembled {
  bytes: Uint8Array;
  /** Symbol name -> address (from the linked ELF). */
  sym: Record<string, number>;
}

export function assembleWithSymbols(source: string, org = 0): Assembled {
  const text = `.intel_syntax noprefix\n${source}\n`;
  const key = createHash('sha256').update(`${org}\n${text}`).digest('hex').slice(0, 16);
  mkdirSync(TMP, { recursive: true });
  const bin = join(TMP, `${key}.bin`);
  if (!existsSync(bin)) {
    const src = join(TMP, `${key}.s`);
    const obj = join(TMP, `${key}.o`);
    const elf = join(TMP, `${key}.elf`);
    writeFileSync(src, text);
    execFileSync('as', ['--64', '-o', obj, src]);
    execFileSync('ld', ['-m', 'elf_x86_64', '-Ttext', `0x${org.toString(16)}`, '-e', '0', '-o', elf, obj]);
    execFileSync('objcopy', ['-O', 'binary', '-j', '.text', elf, bin]);
    writeFileSync(join(TMP, `${key}.sym`), execFileSync('nm', [elf]));
  }
  const sym: Record<string, number> = {};
  for (const line of readFileSync(join(TMP, `${key}.sym`), 'utf8').split('\n')) {
    const [addr, , name] = line.trim().split(/\s+/);
    if (addr && name) sym[name] = parseInt(addr, 16);
  }
  return { bytes: new Uint8Array(readFileSync(bin)), sym };
}

/** Ports the guest writes results to: OUT to 0xE9 appends a character, OUT to 0xE4 a dword. */
export const DEBUG_PORT = 0xe9;
export const VALUE_PORT = 0xe4;
/** Writing to this port stops the run (the test's "exit"). */
export const DONE_PORT = 0xeb;

export interface TestMachine {
  bus: Bus;
  clock: VirtualClock;
  cpu: X86_64;
  ram: Uint8Array;
  text: () => string;
  values: number[];
  done: boolean;
  /** Run until the guest writes DONE_PORT, halts with IF=0, or `maxNs` virtual ns pass. */
  run(maxNs?: number): void;
  triple: string | undefined;
}

export interface MachineOptions {
  ramSize?: number;
  intc?: InterruptController;
}

export function testMachine(opts: MachineOptions = {}): TestMachine {
  const bus = new Bus('test');
  const ram = bus.addRam('ram', 0, opts.ramSize ?? 0x400000).data;
  const clock = new VirtualClock();
  const cpu = new X86_64(bus, clock);
  let text = '';
  const m: TestMachine = {
    bus,
    clock,
    cpu,
    ram,
    text: () => text,
    values: [],
    done: false,
    triple: undefined,
    run(maxNs = 50_000_000) {
      const end = clock.now + maxNs;
      while (!m.done && m.triple === undefined && clock.now < end) {
        cpu.run(Math.min(end, clock.now + 100_000));
        if (cpu.halted) {
          if (!(cpu.getFlags() & 0x200) || opts.intc === undefined) break;
          clock.now += 1000;
          cpu.interruptRequested();
        }
      }
    },
  };
  bus.addPorts('debug', 0xe0, 16, {
    ioRead: () => 0,
    ioWrite: (off, _size, v) => {
      if (off + 0xe0 === DEBUG_PORT) text += String.fromCharCode(v & 0xff);
      else if (off + 0xe0 === VALUE_PORT) m.values.push(v >>> 0);
      else if (off + 0xe0 === DONE_PORT) {
        m.done = true;
        cpu.requestExit();
      }
    },
  });
  cpu.intc = opts.intc;
  cpu.onTripleFault = (msg) => {
    m.triple = msg;
  };
  cpu.reset();
  return m;
}

/** Load bytes at a physical address. */
export function load(m: TestMachine, addr: number, bytes: Uint8Array): void {
  m.ram.set(bytes, addr);
  // As a loader does: decoded code over the range is dropped.
  const r = m.bus.ramAt(addr);
  if (r !== undefined && bytes.length > 0) m.bus.noteRamWrite(r, addr - r.base, bytes.length);
}
