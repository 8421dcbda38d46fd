/**
 * uart16550: a PC16550D serial port (COM1 by default) whose output goes to a console backend and
 * whose input comes from it, through a bounded host buffer. The register model is in model.ts; a
 * VMM policy can instantiate `Uart16550` directly as a guest's emulated port.
 */
import { z } from 'zod';
import { definePlugin } from '../../src/core/plugin.js';
import { IRQ_LINES } from '../../src/core/irq.js';
import { UART_PORTS, Uart16550 } from './model.js';

export default definePlugin({
  name: 'uart16550',
  description: 'TI PC16550D UART (16-byte FIFOs, DLAB, loopback) on an I/O port range and an IRQ line',
  settings: z.object({
    port: z
      .number()
      .int()
      .min(0)
      .max(0x10000 - UART_PORTS)
      .default(0x3f8)
      .describe('first of the 8 I/O ports (COM1 0x3F8, COM2 0x2F8)'),
    irq: z
      .number()
      .int()
      .min(0)
      .max(IRQ_LINES - 1)
      .default(4)
      .describe('ISA IRQ line the INTR output drives (COM1 4, COM2 3)'),
    console: z
      .enum(['stdio', 'none'])
      .default('stdio')
      .describe("where output goes and input comes from: the machine's console, or nowhere"),
    'input-buffer': z
      .number()
      .int()
      .min(1)
      .max(1 << 24)
      .default(4096)
      .describe(
        'bytes of host input held until the guest reads them; beyond this, input is dropped and counted',
      ),
  }),
  create(ctx) {
    const s = ctx.settings;
    const console = s.console === 'stdio' ? ctx.machine.console : undefined;
    const bus = ctx.bus;
    const uart = new Uart16550({
      // A fresh one-byte array per byte: backends may keep the buffer they are given.
      output: console ? (b) => console.write(Uint8Array.of(b)) : () => {},
      irq: (level) => bus.irq.set(s.irq, level),
      clock: ctx.machine.clock,
      inputBufferSize: s['input-buffer'],
      warn: (m) => ctx.log.warn(m),
    });
    return {
      attach() {
        bus.addPorts(ctx.instanceName, s.port, UART_PORTS, uart);
        console?.setInputHandler((data) => uart.receive(data));
      },
      reset() {
        uart.reset();
      },
      stop() {
        console?.setInputHandler(undefined);
      },
      stats: () => ({ ...uart.stats, inputPending: uart.pendingInput }),
      describe: () =>
        `ports 0x${s.port.toString(16)}-0x${(s.port + 7).toString(16)}, IRQ ${s.irq}, console ${s.console}`,
    };
  },
});
