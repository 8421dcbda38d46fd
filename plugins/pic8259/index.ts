/**
 * pic8259: the PC's two cascaded 8259A interrupt controllers (master 0x20/0x21, slave 0xA0/0xA1
 * on master IR2) and the ELCR pair at 0x4D0/0x4D1. ISA IRQ lines 0-15 of the bus drive the inputs.
 * With a local APIC, the master's INT output drives LINT0 (virtual-wire mode) and the APIC asks
 * the pair for ExtINT vectors; without one, the pair is an InterruptController a CPU or a policy
 * can use directly (`Pic8259Pair`). The register model is in model.ts.
 */
import { z } from 'zod';
import type { PortDevice } from '../../src/core/bus.js';
import { definePlugin } from '../../src/core/plugin.js';
import { Tokens } from '../../src/core/tokens.js';
import { ELCR_PORT, MASTER_PORT, Pic8259Pair, SLAVE_PORT } from './model.js';

const port = (dflt: number, what: string) => z.number().int().min(0).max(0xfffe).default(dflt).describe(what);

export default definePlugin({
  name: 'pic8259',
  description: 'Intel 8259A master/slave pair (ICW/OCW programming, cascade, EOI, poll) with the ELCR',
  settings: z.object({
    'master-port': port(MASTER_PORT, 'I/O ports of the master (2 ports)'),
    'slave-port': port(SLAVE_PORT, 'I/O ports of the slave (2 ports)'),
    elcr: z
      .boolean()
      .default(true)
      .describe('claim the edge/level control registers ELCR1/ELCR2 at 0x4D0/0x4D1'),
  }),
  wants: [Tokens.LocalApic],
  create(ctx) {
    const s = ctx.settings;
    const pair = new Pic8259Pair();
    const chipPorts = (chip: 0 | 1): PortDevice => ({
      ioRead: (offset) => pair.ioRead(chip, offset),
      ioWrite: (offset, _size, value) => pair.ioWrite(chip, offset, value),
    });
    const elcr: PortDevice = {
      ioRead: (offset, size) =>
        size === 1 ? pair.readElcr(offset as 0 | 1) : pair.readElcr(0) | (pair.readElcr(1) << 8),
      ioWrite: (offset, size, value) => {
        if (size === 1) pair.writeElcr(offset as 0 | 1, value);
        else {
          pair.writeElcr(0, value & 0xff);
          pair.writeElcr(1, (value >>> 8) & 0xff);
        }
      },
    };
    return {
      attach() {
        const bus = ctx.bus;
        bus.addPorts(`${ctx.instanceName}.master`, s['master-port'], 2, chipPorts(0));
        bus.addPorts(`${ctx.instanceName}.slave`, s['slave-port'], 2, chipPorts(1));
        if (s.elcr) bus.addPorts(`${ctx.instanceName}.elcr`, ELCR_PORT, 2, elcr);
        bus.irq.connect((line, level) => pair.setIrq(line, level));
        const lapic = ctx.tryGet(Tokens.LocalApic);
        if (lapic) {
          pair.intr = (level) => lapic.setLint(0, level);
          lapic.setExtIntSource(pair);
        } else {
          ctx.log.debug('no local APIC: the pair is an InterruptController for whoever connects it');
        }
      },
      reset() {
        pair.reset();
      },
      stats: () => ({ ...pair.stats }),
      describe: () =>
        `master 0x${s['master-port'].toString(16)}, slave 0x${s['slave-port'].toString(16)}` +
        (s.elcr ? ', ELCR 0x4d0' : ''),
    };
  },
});
