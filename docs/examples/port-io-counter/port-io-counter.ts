/**
 * A worked custom device: counts the guest's reads and writes to a range of I/O ports, per port,
 * and answers reads with a configurable value. Read docs/plugins.md alongside.
 */
import { definePlugin, port, z } from 'vmm';

export default definePlugin({
  name: 'port-io-counter',
  description: 'counts I/O port accesses in a range; reads return a fixed value',
  // The settings schema: validation, defaults, `vmm plugins` output and editor completion all come from it.
  settings: z.object({
    base: port().default(0x80).describe('first port of the range'),
    ports: z.number().int().min(1).max(256).default(1).describe('how many ports the device claims'),
    'read-value': z.number().int().min(0).max(0xffff_ffff).default(0xff).describe('what a read returns'),
    report: z.boolean().default(true).describe('log the counts when the machine stops'),
  }),
  create(ctx) {
    const { base, ports } = ctx.settings;
    const readValue = ctx.settings['read-value'];
    // Per-port counters in flat typed arrays: a device access is on the guest's hot path.
    const reads = new Float64Array(ports);
    const writes = new Float64Array(ports);
    let lastWrite = 0;
    return {
      attach() {
        // The bus hands the device offsets from `base`, never absolute port numbers.
        ctx.bus.addPorts(ctx.instanceName, base, ports, {
          ioRead(offset, size) {
            reads[offset]!++;
            return size === 4 ? readValue >>> 0 : readValue & ((1 << (size * 8)) - 1);
          },
          ioWrite(offset, _size, value) {
            writes[offset]!++;
            lastWrite = value;
          },
        });
      },
      reset() {
        reads.fill(0);
        writes.fill(0);
      },
      stop() {
        if (ctx.settings.report) ctx.log.info(`${sum(reads)} reads, ${sum(writes)} writes`);
      },
      stats: () => ({ reads: sum(reads), writes: sum(writes), 'last-write': lastWrite }),
      describe: () => `ports 0x${base.toString(16)}..0x${(base + ports - 1).toString(16)}`,
    };
  },
});

function sum(a: Float64Array): number {
  let s = 0;
  for (const v of a) s += v;
  return s;
}
