/**
 * x86-64: the CPU plugin. Real, protected (16/32-bit) and long mode, paging, exceptions and
 * interrupts, the general-purpose and system instruction sets; no x87/SSE yet (their opcodes raise
 * #NM/#UD as the architecture says, and CPUID does not advertise them).
 *
 * The instance is an X86_64 (cpu.ts): the machine's CpuCore, and for a virtualization plugin the
 * architectural state (getState/setState), event injection (injectEvent) and intercept hooks
 * (`hooks`, see hooks.ts). Use `isX86Cpu` on what Tokens.Cpu resolves to.
 *
 * Decisions worth knowing:
 * - x87/MMX/SSE: not implemented and not advertised (CPUID.1:EDX FPU/MMX/FXSR/SSE/SSE2 clear, even
 *   though long mode normally implies SSE2). x87 opcodes raise #NM when CR0.EM or CR0.TS is set,
 *   else #UD; SSE opcodes raise #UD. CR4.OSFXSR/OSXMMEXCPT may still be set (kernels set them
 *   unconditionally) and change nothing.
 * - TZCNT/LZCNT/POPCNT behave as on current hardware (LZCNT and POPCNT are advertised; TZCNT is the
 *   F3-prefixed BSF of BMI1, which is not advertised because the VEX-encoded BMI1 forms are missing).
 * - Flags the SDM leaves undefined match the host CPU of the differential suite where it observes
 *   them (an AMD EPYC here), otherwise the common Intel behaviour.
 * - Unknown MSRs, reserved EFER bits and non-canonical base/entry MSR values raise #GP as the SDM
 *   says (QEMU TCG accepts some of them); IDT error codes carry the vector in bits 15:3 and EXT.
 * - Not implemented (recorded in stats() as unimplemented[...] and answered with #GP): hardware
 *   task switching (task gates, JMP/CALL to a TSS, IRET with NT), virtual-8086 mode, debug-register
 *   breakpoints (DR0-7 are storage only; TF single-step works), PCID, SMM.
 */
import { z } from 'zod';
import type { CpuCore } from '../../src/core/cpu.js';
import { definePlugin } from '../../src/core/plugin.js';
import { Tokens } from '../../src/core/tokens.js';
import { X86_64 } from './cpu.js';

export { X86_64 } from './cpu.js';
export type { ArchState, SegmentState, TableRegister } from './cpu.js';
export type { CpuHooks } from './hooks.js';

/** Features another plugin implements that CPUID may advertise when that plugin is present. */
export const OPTIONAL_FEATURES = ['apic', 'x2apic', 'vmx', 'tsc-deadline', 'hypervisor', 'de'] as const;

export function isX86Cpu(cpu: CpuCore | undefined): cpu is X86_64 {
  return cpu instanceof X86_64;
}

export default definePlugin({
  name: 'x86-64',
  description: 'x86-64 CPU interpreter: real/protected/long mode, paging, interrupts, system instructions',
  provides: [Tokens.Cpu],
  wants: [Tokens.InterruptController, Tokens.LocalApic],
  settings: z.object({
    vendor: z
      .string()
      .length(12)
      .default('GenuineIntel')
      .describe('CPUID vendor string (12 characters); Intel semantics are implemented whatever it says'),
    family: z
      .number()
      .int()
      .min(0)
      .max(0x10e)
      .default(6)
      .describe('CPUID.1:EAX family (extended family added above 15)'),
    model: z
      .number()
      .int()
      .min(0)
      .max(255)
      .default(0x3a)
      .describe('CPUID.1:EAX model (extended model in bits 7:4)'),
    stepping: z.number().int().min(0).max(15).default(9).describe('CPUID.1:EAX stepping'),
    brand: z
      .string()
      .max(47)
      .default('vmm x86-64 interpreter')
      .describe('CPUID 80000002h-80000004h brand string'),
    features: z
      .array(z.enum(OPTIONAL_FEATURES))
      .default([])
      .describe(
        'CPUID features implemented by other plugins, advertised only when listed: apic (also implied by a ' +
          'local APIC), x2apic, vmx, tsc-deadline, hypervisor, de (CR4.DE)',
      ),
    'tsc-mhz': z
      .number()
      .positive()
      .default(3000)
      .describe(
        'TSC rate: RDTSC returns virtual nanoseconds * tsc-mhz / 1000 (keep equal to the local APIC setting)',
      ),
    'ns-per-instruction': z
      .number()
      .positive()
      .default(1)
      .describe(
        'virtual time per retired instruction (REP iterations count one each). 1 ns models a 1 GIPS CPU: ' +
          "close to real hardware for timer-driven guests, and a guest's busy-wait on a timer costs as " +
          'many emulated instructions as it would cycles/3 on a 3 GHz host',
      ),
    'pause-ns': z
      .number()
      .min(0)
      .default(40)
      .describe(
        'virtual time a PAUSE instruction takes on top of ns-per-instruction (Skylake and later: ~140 cycles, ' +
          'about 40 ns): spin-wait loops that use PAUSE reach their deadline in fewer emulated instructions',
      ),
    'idle-skip': z
      .boolean()
      .default(true)
      .describe(
        'when a loop iteration changes no register, flag or memory and touches no device or TSC (an idle ' +
          'spin waiting for an interrupt), jump virtual time to the next timer deadline instead of spinning',
      ),
    start: z
      .enum(['reset-vector', 'flat32'])
      .default('reset-vector')
      .describe(
        'state after reset: reset-vector (real mode at F000:FFF0, the power-on state) or flat32 (protected ' +
          'mode, flat segments, paging off, at `entry`: what a loader sets up)',
      ),
    entry: z.number().int().min(0).max(0xffffffff).default(0x100000).describe('EIP for start: flat32'),
  }),
  create(ctx) {
    const s = ctx.settings;
    const cpu = new X86_64(ctx.bus, ctx.machine.clock);
    const features: string[] = [...s.features];
    cpu.model = {
      vendor: s.vendor,
      family: s.family,
      model: s.model,
      stepping: s.stepping,
      brand: s.brand,
      features,
      tscMhz: s['tsc-mhz'],
    };
    cpu.nsPerInsn = s['ns-per-instruction'];
    cpu.pauseNs = s['pause-ns'];
    cpu.idleSkip = s['idle-skip'];
    cpu.onTripleFault = (message) =>
      ctx.machine.stop({ kind: 'fault', message, state: cpu.dumpState(), source: ctx.instanceName });
    const baseReset = cpu.reset.bind(cpu);
    cpu.reset = () => {
      baseReset();
      if (s.start === 'flat32') cpu.enterFlat32(s.entry);
    };
    const stats = cpu.stats.bind(cpu);
    return Object.assign(cpu, {
      attach() {
        cpu.intc = ctx.tryGet(Tokens.InterruptController);
        cpu.intc?.connectCpu?.(cpu);
        cpu.apic = ctx.tryGet(Tokens.LocalApic);
        if (cpu.apic !== undefined && !features.includes('apic')) features.push('apic');
      },
      stats,
      describe: () =>
        `${s.vendor} family ${s.family} model ${s.model}, ${s['ns-per-instruction']} ns/instruction, TSC ${s['tsc-mhz']} MHz` +
        (cpu.intc ? '' : ', no interrupt controller'),
    });
  },
});
