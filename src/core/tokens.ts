/**
 * Every DI token of the project, in one module (credo-ts's habit). Plugins name these in
 * `provides`/`needs`; the container wires each need to exactly one provider. A plugin that adds
 * a role adds its token here.
 */
import type { LocalApic } from '../devices/apic.js';
import type { CpuCore, InterruptController } from './cpu.js';
import { token } from './token.js';

export const Tokens = {
  /** The CPU that executes the machine's code. */
  Cpu: token<CpuCore>('cpu', 'the CPU that executes code (x86-64)'),
  /** What drives the CPU's INTR input: the local APIC, or the PIC on a machine without one. */
  InterruptController: token<InterruptController>(
    'interrupt-controller',
    "the CPU's interrupt source (INTR/INTA): a local APIC or a PIC",
  ),
  /** The local APIC: interrupt messages from I/O APICs, EOI broadcasts, and the APIC MSRs. */
  LocalApic: token<LocalApic>('local-apic', 'the local APIC (interrupt messages, APIC MSRs)'),
} as const;

export type { Token } from './token.js';
