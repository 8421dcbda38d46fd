/**
 * acpi-pm: the ICH9 ACPI power-management block of a q35 machine (PM1_STS/PM1_EN/PM1_CNT/PM1_TMR)
 * and the reset control register at 0xCF9. A guest powers off with PM1_CNT.SLP_EN and the S5 sleep
 * type (NimbOS: a 16-bit write of 0x2000 to port 0x604) and resets through RST_CNT.
 * The register model is in model.ts.
 */
import { z } from 'zod';
import { definePlugin } from '../../src/core/plugin.js';
import { AcpiPm, PM1_BLOCK_SIZE, PM1_CNT, QEMU_S5_SLP_TYP, RST_CNT_PORT, ResetControl } from './model.js';

const port = z
  .number()
  .int()
  .min(PM1_CNT)
  .max(0xffff - PM1_BLOCK_SIZE);

export default definePlugin({
  name: 'acpi-pm',
  description: 'ICH9 ACPI power management (PM1a control: S5 power-off, PM timer) and 0xCF9 reset control',
  settings: z.object({
    port: port
      .default(0x604)
      .describe('I/O port of PM1a_CNT (q35: PMBASE 0x600 + 4); the PM1 block spans PMBASE..PMBASE+11'),
    'pm1-block': z
      .boolean()
      .default(true)
      .describe(
        'claim the whole PM1 block (PM1_STS, PM1_EN, PM1_CNT, PM1_TMR); false: only PM1_CNT (2 bytes)',
      ),
    'pm-timer-bits': z
      .union([z.literal(24), z.literal(32)])
      .default(24)
      .describe('width of the 3.579545 MHz ACPI PM timer at PMBASE+8 (ICH9 and QEMU: 24)'),
    's5-slp-typ': z
      .number()
      .int()
      .min(0)
      .max(7)
      .default(QEMU_S5_SLP_TYP)
      .describe("the SLP_TYP value meaning S5 (soft off): QEMU's q35 \\_S5 says 0, the ICH9 datasheet 7"),
    'reset-port': z
      .boolean()
      .default(true)
      .describe('claim I/O port 0xCF9 (RST_CNT): writing bit 2 (RST_CPU) resets the machine'),
  }),
  create(ctx) {
    const s = ctx.settings;
    const stop = ctx.machine.stop.bind(ctx.machine);
    const pm = new AcpiPm({
      clock: ctx.machine.clock,
      stop,
      source: ctx.instanceName,
      s5SlpTyp: s['s5-slp-typ'],
      timerBits: s['pm-timer-bits'],
      warn: (m) => ctx.log.warn(m),
    });
    const rst = new ResetControl(stop, ctx.instanceName);
    const pmBase = s.port - PM1_CNT;
    return {
      attach() {
        if (s['pm1-block']) ctx.bus.addPorts(ctx.instanceName, pmBase, PM1_BLOCK_SIZE, pm);
        else
          ctx.bus.addPorts(ctx.instanceName, s.port, 2, {
            ioRead: (o, size) => pm.ioRead(PM1_CNT + o, size),
            ioWrite: (o, size, v) => pm.ioWrite(PM1_CNT + o, size, v),
          });
        if (s['reset-port']) ctx.bus.addPorts(`${ctx.instanceName}.RST_CNT`, RST_CNT_PORT, 1, rst);
      },
      reset() {
        pm.reset();
        rst.reset();
      },
      stats: () => ({ ...pm.stats, resets: rst.resets, ...pm.regs.stats }),
      describe: () =>
        `PM1a_CNT at port 0x${s.port.toString(16)}` + (s['reset-port'] ? ', RST_CNT at 0xcf9' : ''),
    };
  },
});
