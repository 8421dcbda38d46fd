/**
 * hpet: the q35 High Precision Event Timer at 0xFED00000: 100 MHz, 64-bit main counter, 3 timers,
 * legacy replacement capable. Timer interrupts go to the bus's IRQ lines (legacy: IRQ0 and IRQ8;
 * otherwise the line named by Tn_INT_ROUTE_CNF), where the PIC and the I/O APIC listen.
 * The register model is in model.ts.
 */
import { z } from 'zod';
import { IRQ_LINES } from '../../src/core/irq.js';
import { definePlugin } from '../../src/core/plugin.js';
import { DEFAULT_INT_ROUTE_CAP, HPET_MMIO_SIZE, Hpet } from './model.js';

export default definePlugin({
  name: 'hpet',
  description:
    'IA-PC HPET 1.0a: 100 MHz 64-bit main counter, 3 timers (one-shot/periodic), legacy and I/O APIC routing',
  settings: z.object({
    base: z
      .number()
      .int()
      .min(0)
      .multipleOf(HPET_MMIO_SIZE)
      .default(0xfed0_0000)
      .describe('physical address of the register page'),
    'int-route-cap': z
      .number()
      .int()
      .min(0)
      .max(0xffff_ffff)
      .default(DEFAULT_INT_ROUTE_CAP)
      .describe('Tn_INT_ROUTE_CAP: bit n set = I/O APIC input n allowed (ICH9: inputs 20-23)'),
  }),
  create(ctx) {
    const s = ctx.settings;
    let outOfRange = 0;
    const hpet = new Hpet({
      clock: ctx.machine.clock,
      setIrq: (line, level) => {
        if (line < IRQ_LINES) ctx.bus.irq.set(line, level);
        else outOfRange++; // a route beyond the bus's lines: the interrupt goes nowhere
      },
      intRouteCap: s['int-route-cap'],
      warn: (m) => ctx.log.warn(m),
    });
    return {
      attach() {
        ctx.bus.addMmio(ctx.instanceName, s.base, HPET_MMIO_SIZE, hpet);
      },
      reset() {
        hpet.reset();
      },
      stats: () => ({ ...hpet.stats, ...hpet.regs.stats, routesOutOfRange: outOfRange }),
      describe: () => `0x${s.base.toString(16)}, 100 MHz, 3 timers`,
    };
  },
});
