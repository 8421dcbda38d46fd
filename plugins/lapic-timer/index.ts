/**
 * lapic-timer: the local APIC with its timer, as the CPU's interrupt controller. One model
 * (model.ts) serves the xAPIC MMIO page and the x2APIC MSRs (the CPU routes IA32_APIC_BASE,
 * IA32_TSC_DEADLINE and 0x800-0x8FF to `readMsr`/`writeMsr` of the LocalApic token and raises #GP
 * when they say so). Register offsets and fields are in registers.ts.
 *
 * The CPU connects itself in its attach hook (`intc.connectCpu?.(cpu)`, see InterruptController):
 * this plugin does not want the Cpu token, which would close a wiring cycle with the CPU's wants.
 */
import { z } from 'zod';
import type { MmioRegion } from '../../src/core/bus.js';
import { isVmmError } from '../../src/core/errors.js';
import { definePlugin } from '../../src/core/plugin.js';
import { Tokens } from '../../src/core/tokens.js';
import { LocalApicModel } from './model.js';
import { APIC_PAGE_SIZE, DEFAULT_APIC_BASE_ADDRESS } from './registers.js';

export default definePlugin({
  name: 'lapic-timer',
  description:
    'local APIC (xAPIC MMIO page and x2APIC MSRs) with its one-shot, periodic and TSC-deadline timer',
  settings: z.object({
    base: z
      .number()
      .int()
      .min(0)
      .multipleOf(APIC_PAGE_SIZE)
      .default(DEFAULT_APIC_BASE_ADDRESS)
      .describe(
        'physical address of the xAPIC page after reset (the guest may move it through IA32_APIC_BASE)',
      ),
    mmio: z
      .boolean()
      .default(true)
      .describe('map the xAPIC page on the bus (false: MSR interface only, e.g. a guest that uses x2APIC)'),
    x2apic: z
      .boolean()
      .default(true)
      .describe('x2APIC mode available (CPUID.01H:ECX[21]): IA32_APIC_BASE.EXTD can be set'),
    'apic-id': z.number().int().min(0).max(0xfffe).default(0).describe('initial APIC ID (x2APIC ID)'),
    'clock-mhz': z
      .number()
      .positive()
      .default(1000)
      .describe('timer base clock in MHz before the divide configuration (the tutorial assumes 1000)'),
    'tsc-mhz': z
      .number()
      .positive()
      .default(3000)
      .describe("TSC frequency in MHz for IA32_TSC_DEADLINE; must match the CPU's TSC rate"),
  }),
  provides: [Tokens.LocalApic, Tokens.InterruptController],
  create(ctx) {
    const s = ctx.settings;
    const bus = ctx.bus;
    let region: MmioRegion | undefined;
    let attached = false;
    let remapFailures = 0;
    let intrRequests = 0;
    const apic: LocalApicModel = new LocalApicModel({
      clock: ctx.machine.clock,
      apicId: s['apic-id'],
      x2apic: s.x2apic,
      timerMhz: s['clock-mhz'],
      tscMhz: s['tsc-mhz'],
      baseAddress: s.base,
      onInterrupt: () => intrRequests++,
      onMmioChange: (base, enabled) => {
        if (!attached || !s.mmio) return;
        if (region) bus.removeRegion(region);
        region = undefined;
        if (!enabled) return;
        try {
          region = bus.addMmio(ctx.instanceName, base, APIC_PAGE_SIZE, apic);
        } catch (e) {
          // The guest moved the page onto something else: the page is then unreachable, as when
          // the chipset decodes the other device first. Guest misbehaviour: counted, not fatal.
          if (!isVmmError(e)) throw e;
          remapFailures++;
          ctx.log.warn(`xAPIC page moved to 0x${base.toString(16)}, which is taken: ${e.message}`);
        }
      },
      warn: (m) => ctx.log.warn(m),
    });
    ctx.provide(Tokens.LocalApic, apic);
    ctx.provide(Tokens.InterruptController, apic);
    return {
      attach() {
        attached = true;
        if (s.mmio) region = bus.addMmio(ctx.instanceName, apic.mmioBase, APIC_PAGE_SIZE, apic);
      },
      reset() {
        apic.reset();
      },
      stats: () => ({ ...apic.stats, ...apic.regs.stats, intrRequests, remapFailures }),
      describe: () =>
        (s.mmio ? `xAPIC page at 0x${s.base.toString(16)}, ` : '') +
        `x2APIC ${s.x2apic ? 'available' : 'absent'}, timer ${s['clock-mhz']} MHz`,
    };
  },
});
