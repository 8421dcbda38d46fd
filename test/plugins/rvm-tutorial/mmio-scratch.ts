// Test plugin for the MMIO emulation tests: one 4 KiB page of byte-addressable scratch registers
// on its bus (any access size at any offset reads back what was written), counting accesses.
import { definePlugin, z } from 'vmm';

export default definePlugin({
  name: 'mmio-scratch',
  description: 'a page of read/write scratch registers at any access size (MMIO emulation test device)',
  settings: z.object({
    base: z
      .number()
      .int()
      .min(0)
      .multipleOf(4096)
      .default(0xfe00_0000)
      .describe('physical address of the page'),
  }),
  create(ctx) {
    const mem = new Uint8Array(4096);
    let reads = 0;
    let writes = 0;
    const dev = {
      mmioRead(offset: number, size: 1 | 2 | 4): number {
        reads++;
        let v = 0;
        for (let i = size - 1; i >= 0; i--) v = v * 256 + mem[offset + i]!;
        return v;
      },
      mmioWrite(offset: number, size: 1 | 2 | 4, value: number): void {
        writes++;
        for (let i = 0; i < size; i++) mem[offset + i] = (value >>> (8 * i)) & 0xff;
      },
    };
    return {
      attach() {
        ctx.bus.addMmio(ctx.instanceName, ctx.settings.base, 4096, dev);
      },
      stats: () => ({ reads, writes }),
    };
  },
});
