/**
 * Small guests under the rvm-tutorial policy: 32-bit protected-mode programs (paging off) loaded as
 * Multiboot kernels by the policy itself (`kernel` setting), in a machine written to test/.tmp. A
 * program stores its results in guest RAM and powers off (16-bit 0x2000 to port 0x604); the test
 * reads guest RAM back through the host bus at the policy's guest RAM base.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { MemoryConsole, MemoryLog, loadMachine, type StopReason } from '../../../src/index.js';
import type { LoadedMachine } from '../../../src/api-types.js';
import type { VmxEngine } from '../../../plugins/vmx/engine.js';
import { assemble } from '../x86-64/helpers.js';

export const ROOT = resolve(import.meta.dirname, '../../..');
export const TMP = resolve(ROOT, 'test/.tmp/rvm-tutorial');
/** Where the policy puts guest RAM by default (the `ram-base` setting). */
export const RAM_BASE = 0x100_0000;
/** Where test programs store results (guest-physical). */
export const RESULTS = 0x1000;

/** The program's code starts here (after the Multiboot header). */
const LOAD = 0x10_0000;

/** Power off through the q35 PM1a control port (acpi-pm: SLP_TYP 0 | SLP_EN). */
export const POWEROFF = `
  mov dx, 0x604
  mov ax, 0x2000
  out dx, ax
1: jmp 1b
`;

/** Assemble a 32-bit program behind a Multiboot header (a.out kludge) and write it to test/.tmp. */
export function kernelFile(source: string): string {
  const text = `
.code32
mb_header:
  .long 0x1BADB002
  .long 0x00010000
  .long 0xE4514FFE
  .long ${LOAD}
  .long ${LOAD}
  .long 0
  .long 0
  .long start
start:
${source}
`;
  const bytes = assemble(text, LOAD);
  mkdirSync(TMP, { recursive: true });
  const file = join(TMP, `k-${createHash('sha256').update(bytes).digest('hex').slice(0, 12)}.bin`);
  writeFileSync(file, bytes);
  return file;
}

export interface MachineOptions {
  /** Extra policy settings (YAML flow mapping entries, e.g. `signature: ABCDEFGHIJKL`). */
  policy?: string;
  /** Extra guest devices (YAML flow mappings). */
  guestDevices?: string[];
  /** Leave out the host's local APIC (no kick path). */
  noHostApic?: boolean;
  guestMemory?: string;
}

/** A q35-like host with VMX and EPT, the policy running `kernel`. */
export function machineYaml(kernel: string, o: MachineOptions = {}): string {
  return `
host:
  memory: 64MiB
  cpu: { plugin: x86-64, features: [vmx, x2apic] }
  devices:
    - { plugin: hpet, name: hpet, base: 0xfed00000 }
    - { plugin: ioapic, name: ioapic, base: 0xfec00000 }
${o.noHostApic ? '' : '    - { plugin: lapic-timer, name: lapic, base: 0xfee00000 }\n'}vmm:
  virtualization: { plugin: vmx }
  nested-paging: { plugin: ept }
  policy: { plugin: rvm-tutorial, kernel: ${kernel}${o.policy ? `, ${o.policy}` : ''} }
guest:
  memory: ${o.guestMemory ?? '16MiB'}
  devices:
    - { plugin: uart16550, name: com1, port: 0x3f8, console: stdio }
    - { plugin: lapic-timer, name: guest-lapic, mmio: false, clock-mhz: 1000 }
    - { plugin: acpi-pm, port: 0x604 }
${(o.guestDevices ?? []).map((d) => `    - ${d}\n`).join('')}  passthrough: [hpet, ioapic${o.noHostApic ? '' : ', lapic'}]
`;
}

export interface GuestRun {
  stop: StopReason;
  console: string;
  log: string;
  loaded: LoadedMachine;
  /** Bytes of guest RAM. */
  read(gpa: number, length: number): Uint8Array;
  /** A little-endian dword of guest RAM. */
  u32(gpa: number): number;
  /** The policy's counters. */
  policy: Record<string, number | string>;
  vmx: VmxEngine;
}

/** Write the machine file for `source` and load it (not run). */
export async function loadGuest(
  source: string,
  o: MachineOptions = {},
): Promise<{ loaded: LoadedMachine; console: MemoryConsole; log: MemoryLog }> {
  const kernel = kernelFile(source);
  const yaml = machineYaml(kernel, o);
  const file = join(TMP, `m-${createHash('sha256').update(yaml).digest('hex').slice(0, 12)}.yaml`);
  writeFileSync(file, yaml);
  const console = new MemoryConsole();
  const log = new MemoryLog();
  const loaded = await loadMachine(file, { console, logSink: log.sink, noUserConfig: true });
  return { loaded, console, log };
}

/** Run a program to its stop (a safety net of 2 s guest time). */
export async function runGuest(source: string, o: MachineOptions = {}): Promise<GuestRun> {
  const { loaded, console, log } = await loadGuest(source, o);
  try {
    const stop = await loaded.run({ virtualTimeoutNs: 2_000_000_000, wallTimeoutMs: 60_000 });
    return finish(loaded, stop, console, log);
  } finally {
    await loaded.dispose();
  }
}

export function finish(
  loaded: LoadedMachine,
  stop: StopReason,
  console: MemoryConsole,
  log: MemoryLog,
): GuestRun {
  const bus = loaded.machine.hostBus;
  const stats = loaded.stats();
  return {
    stop,
    console: console.text(),
    log: log.text(),
    loaded,
    read: (gpa, length) => bus.readBytes(RAM_BASE + gpa, length),
    u32: (gpa) => bus.read(RAM_BASE + gpa, 4),
    policy: stats['rvm-tutorial'] ?? {},
    vmx: pluginInstance<VmxEngine>(loaded, 'vmx'),
  };
}

export function pluginInstance<T>(loaded: LoadedMachine, name: string): T {
  const p = loaded.machine.plugins.find((r) => r.instanceName === name);
  if (!p) throw new Error(`no plugin instance ${name}`);
  return p.instance as T;
}
