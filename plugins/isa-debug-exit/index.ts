/**
 * isa-debug-exit: QEMU's debug exit device. A write of value v to its port stops the machine with
 * exit status (v << 1) | 1, so a test guest can report success or failure in the process status
 * (QEMU's convention: status 1 cannot be confused with a clean QEMU exit of 0).
 */
import { z } from 'zod';
import { definePlugin } from '../../src/core/plugin.js';
import { IsaDebugExit } from './model.js';

export default definePlugin({
  name: 'isa-debug-exit',
  description: "QEMU's isa-debug-exit: writing v to the port stops the machine with status v*2+1",
  settings: z.object({
    iobase: z
      .number()
      .int()
      .min(0)
      .max(0xfffc)
      .default(0xf4)
      .describe('I/O port of the device (QEMU default 0xF4)'),
    iosize: z
      .union([z.literal(1), z.literal(2), z.literal(4)])
      .default(1)
      .describe('number of ports claimed (1, 2 or 4); a write of any width within them exits'),
  }),
  create(ctx) {
    const dev = new IsaDebugExit(ctx.machine.stop.bind(ctx.machine), ctx.instanceName);
    return {
      attach() {
        ctx.bus.addPorts(ctx.instanceName, ctx.settings.iobase, ctx.settings.iosize, dev);
      },
      stats: () => ({ writes: dev.writes }),
      describe: () => `port 0x${ctx.settings.iobase.toString(16)} (${ctx.settings.iosize} byte(s))`,
    };
  },
});
