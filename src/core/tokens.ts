/**
 * Every DI token of the project, in one module (credo-ts's habit). Plugins name these in
 * `provides`/`needs`; the container wires each need to exactly one provider. A plugin that adds
 * a role adds its token here.
 */
import type { LocalApic } from '../devices/apic.js';
import type { BlockController } from '../devices/block.js';
import type { PciHost } from '../devices/pci.js';
import type { CpuCore, InterruptController } from './cpu.js';
import type { GuestMemory } from './guest-memory.js';
import type { NestedPaging } from './nested-paging.js';
import type { Vmx } from '../../plugins/vmx/api.js';
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
  /** Second-stage translation for a virtualization plugin (ept). */
  NestedPaging: token<NestedPaging>(
    'nested-paging',
    'second-stage translation from tables in host memory (EPT): violations, INVEPT',
  ),
  /** The PCI host bridge: configuration mechanism #1 and the registry of PCI functions. */
  PciHost: token<PciHost>('pci-host', 'the PCI host bridge (configuration space at 0xCF8/0xCFC)'),
  /** A disk controller (ahci): which disks it has and where it sits on PCI. */
  BlockController: token<BlockController>('block-controller', 'a disk controller with disks (ahci)'),
  /** Guest-physical memory for loaders; provided by the VMM policy (the host bus when absent). */
  GuestMemory: token<GuestMemory>(
    'guest-memory',
    'guest-physical memory that loaders write (the VMM policy)',
  ),
  /** Hardware virtualization for a VMM policy (vmx): VMCS, VM entry/exit, exit handler. */
  Virtualization: token<Vmx>('virtualization', 'hardware virtualization (VMX): VMCS, VM entry and exit'),
} as const;

export type { Token } from './token.js';
