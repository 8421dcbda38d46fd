/**
 * ioapic: the q35 I/O APIC at 0xFEC00000 with 24 pins. Bus IRQ line n drives pin n, except ISA
 * IRQ0 (the timer), which drives pin 2, as the MADT interrupt source override on PCs (and QEMU)
 * says. Messages go to the local APIC (LocalApic token), which broadcasts EOIs back.
 * The register model is in model.ts.
 */
import { z } from 'zod';
import { definePlugin } from '../../src/core/plugin.js';
import { Tokens } from '../../src/core/tokens.js';
import { IOAPIC_MMIO_SIZE, IOAPIC_PINS, IoApic } from './model.js';

export default definePlugin({
  name: 'ioapic',
  description: 'I/O APIC (82093AA / ICH9, 24 redirection entries) delivering to the local APIC',
  settings: z.object({
    base: z
      .number()
      .int()
      .min(0)
      .multipleOf(IOAPIC_MMIO_SIZE)
      .default(0xfec0_0000)
      .describe('physical address of the 4 KiB register page'),
    id: z.number().int().min(0).max(15).default(0).describe('I/O APIC ID after reset (IOAPICID bits 27:24)'),
    'irq0-to-gsi2': z
      .boolean()
      .default(true)
      .describe(
        'route ISA IRQ0 to pin 2 (the PC interrupt source override); false: line n is pin n for all n',
      ),
  }),
  wants: [Tokens.LocalApic],
  create(ctx) {
    const s = ctx.settings;
    const ioapic = new IoApic({ id: s.id, warn: (m) => ctx.log.warn(m) });
    const override = s['irq0-to-gsi2'];
    return {
      attach() {
        const lapic = ctx.tryGet(Tokens.LocalApic);
        if (lapic) {
          ioapic.lapic = lapic;
          lapic.onEoi((v) => ioapic.eoi(v));
        } else ctx.log.info('no local APIC in this machine: I/O APIC messages are counted, not delivered');
        ctx.bus.addMmio(ctx.instanceName, s.base, IOAPIC_MMIO_SIZE, ioapic);
        ctx.bus.irq.connect((line, level) => {
          if (line === 0 && override) ioapic.setPin(2, level);
          else if (line < IOAPIC_PINS) ioapic.setPin(line, level);
        });
      },
      reset() {
        ioapic.reset();
      },
      stats: () => ({ ...ioapic.stats, ...ioapic.regs.stats }),
      describe: () => `0x${s.base.toString(16)}, ${IOAPIC_PINS} pins`,
    };
  },
});
