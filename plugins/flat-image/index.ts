/**
 * flat-image: puts raw bytes in memory and starts the CPU there — firmware images such as the
 * tutorial's 110-byte BIOS (real mode at 0000:8000), or a few hand-assembled instructions given
 * inline as hex for tests and demos.
 */
import { hex } from '../../src/core/addresses.js';
import { definePlugin } from '../../src/core/plugin.js';
import { Tokens } from '../../src/core/tokens.js';
import { filePath, physAddr, z } from '../../src/config/types.js';

const HEX = /^(?:[0-9a-fA-F]{2}\s*)+$/;

export default definePlugin({
  name: 'flat-image',
  description:
    'loads a raw binary (a file, or inline hex bytes) at a physical address and starts the CPU there',
  needs: [Tokens.Cpu],
  settings: z
    .object({
      file: filePath().optional().describe('the image file (raw bytes, no header)'),
      code: z
        .string()
        .regex(HEX, 'expected pairs of hex digits, e.g. "ba f8 03 b0 21 ee"')
        .optional()
        .describe('the image as inline hex bytes, instead of a file'),
      address: physAddr().default(0x8000).describe('physical address of the first byte'),
      entry: physAddr().optional().describe('first instruction (default: the load address)'),
      mode: z
        .enum(['real', 'protected', 'long'])
        .default('real')
        .describe('CPU mode at the entry: real (CS:IP with CS=0 unless cs is set) or flat 32-bit protected'),
      cs: z.number().int().min(0).max(0xffff).optional().describe('real mode: the code segment'),
    })
    .refine((s) => (s.file === undefined) !== (s.code === undefined), {
      message: 'give exactly one of file and code',
    }),
  create(ctx) {
    const s = ctx.settings;
    let size = 0;
    return {
      start() {
        const cpu = ctx.get(Tokens.Cpu);
        if (!cpu.setEntry) throw ctx.error('the CPU cannot be put in a boot state (no setEntry)');
        let bytes: Uint8Array;
        if (s.file !== undefined) {
          if (!ctx.host.exists(s.file)) throw ctx.error(`image file ${s.file} not found`, 'file');
          bytes = ctx.host.readFile(s.file);
        } else {
          bytes = new Uint8Array(Buffer.from(s.code!.replace(/\s+/g, ''), 'hex'));
        }
        const ram = ctx.machine.hostBus.ramAt(s.address);
        if (!ram || s.address + bytes.length > ram.base + ram.size) {
          throw ctx.error(`${bytes.length} bytes at ${hex(s.address)} do not fit in RAM`, 'address');
        }
        ctx.machine.hostBus.writeBytes(s.address, bytes);
        size = bytes.length;
        const entry = s.entry ?? s.address;
        if (s.mode === 'real') {
          const cs = s.cs ?? 0;
          const ip = entry - cs * 16;
          if (ip < 0 || ip > 0xffff)
            throw ctx.error(`entry ${hex(entry)} is not reachable from CS=${hex(cs)}`, 'entry');
          cpu.setEntry({ mode: 'real', cs, ip });
        } else {
          cpu.setEntry({ mode: s.mode, ip: entry });
        }
      },
      stats: () => ({ bytes: size }),
      describe: () => `${s.file ?? 'inline code'} at ${hex(s.address)}, ${s.mode} mode`,
    };
  },
});
