/**
 * multiboot: boots a Multiboot 1 kernel the way `qemu -kernel` does. Loads the kernel (ELF32,
 * ELF64, or any format through the a.out kludge) and its modules into RAM, writes the information
 * structure (memory bounds, memory map, command line, modules), and starts the CPU in the machine
 * state of section 3.2: flat 32-bit protected mode, paging and interrupts off, EAX = 0x2BADB002,
 * EBX = the structure's address.
 */
import { basename } from 'node:path';
import { hex } from '../../src/core/addresses.js';
import { definePlugin } from '../../src/core/plugin.js';
import { Tokens } from '../../src/core/tokens.js';
import { fileList, filePath, uint, z } from '../../src/config/types.js';
import { buildInfo } from './info.js';
import { MULTIBOOT_BOOTLOADER_MAGIC, MbHeaderFlag, parseKernel, type KernelImage } from './image.js';

const PAGE = 4096;
const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

export default definePlugin({
  name: 'multiboot',
  description: 'loads a Multiboot 1 kernel and its modules and starts the CPU as a Multiboot loader would',
  needs: [Tokens.Cpu],
  settings: z.object({
    kernel: filePath().describe(
      'the kernel image (ELF32, ELF64, or with the a.out kludge); on the command line --kernel FILE',
    ),
    cmdline: z
      .string()
      .default('')
      .describe('the kernel command line (the kernel sees "FILE-NAME ARGS", as with GRUB and QEMU)'),
    modules: fileList().describe('modules: "FILE [ARGS]" each; on the command line --initrd a,b'),
    'loader-name': z.string().default('vmm').describe('boot_loader_name in the information structure'),
    // ESP is 32 bits: a larger value would be cut silently.
    stack: uint(32)
      .default(0x7000)
      .describe(
        'ESP at entry: Multiboot leaves it undefined, but QEMU enters with its option ROM stack (about 0x6f00) and some kernels push before loading their own',
      ),
  }),
  create(ctx) {
    const s = ctx.settings;
    let image: KernelImage | undefined;
    const loaded: string[] = [];
    return {
      start() {
        const cpu = ctx.get(Tokens.Cpu);
        if (!cpu.setEntry) throw ctx.error('the CPU cannot be put in a boot state (no setEntry)');
        if (!ctx.host.exists(s.kernel)) throw ctx.error(`kernel file ${s.kernel} not found`, 'kernel');
        const bytes = ctx.host.readFile(s.kernel);
        image = parseKernel(s.kernel, bytes);
        const bus = ctx.machine.hostBus;
        const inRam = (addr: number, size: number) => {
          const r = bus.ramAt(addr);
          return r !== undefined && addr + size <= r.base + r.size;
        };
        for (const seg of image.segments) {
          if (!inRam(seg.addr, seg.memSize)) {
            throw ctx.error(
              `kernel segment ${hex(seg.addr)}..${hex(seg.addr + seg.memSize - 1)} is outside RAM ` +
                `(host.memory is ${ctx.machine.config.host.memory / 1048576} MiB)`,
              'kernel',
            );
          }
          bus.writeBytes(seg.addr, seg.data);
          if (seg.memSize > seg.data.length) {
            bus.writeBytes(seg.addr + seg.data.length, new Uint8Array(seg.memSize - seg.data.length));
          }
        }
        loaded.push(
          `${basename(s.kernel)} (${image.format}) at ${hex(image.segments[0]!.addr)}, entry ${hex(image.entry)}`,
        );

        // Modules follow the kernel, page aligned (always, whether or not header flag 0 asks for it).
        let next = alignUp(image.end, PAGE);
        const modules: { start: number; end: number; string: string }[] = [];
        for (const spec of s.modules) {
          const sp = spec.search(/\s/);
          const file = sp < 0 ? spec : spec.slice(0, sp);
          if (!ctx.host.exists(file)) throw ctx.error(`module file ${file} not found`, 'modules');
          const data = ctx.host.readFile(file);
          if (!inRam(next, Math.max(1, data.length))) {
            throw ctx.error(
              `module ${file} (${data.length} bytes) does not fit in RAM at ${hex(next)}`,
              'modules',
            );
          }
          bus.writeBytes(next, data);
          modules.push({ start: next, end: next + data.length, string: spec });
          loaded.push(`module ${basename(file)} at ${hex(next)} (${data.length} bytes)`);
          next = alignUp(next + data.length, PAGE);
        }

        const mem = ctx.machine.config.host.memory;
        const lowRam = bus.ramAt(0);
        const lowTop = lowRam ? lowRam.base + lowRam.size : 0;
        const info = buildInfo({
          at: next,
          lowTop,
          highSize: Math.max(0, mem - lowTop),
          // GRUB and QEMU put the kernel's name first; kernels skip the first word.
          cmdline: s.cmdline ? `${basename(s.kernel)} ${s.cmdline}` : basename(s.kernel),
          modules,
          loaderName: s['loader-name'],
        });
        if (!inRam(next, info.size))
          throw ctx.error(`no room in RAM for the multiboot information at ${hex(next)}`);
        bus.writeBytes(next, info.bytes);
        if (image.flags & MbHeaderFlag.VideoMode)
          ctx.log.debug('kernel asks for a video mode: running without one');

        cpu.setEntry({
          mode: 'protected',
          ip: image.entry,
          regs: { eax: MULTIBOOT_BOOTLOADER_MAGIC, ebx: next, esp: s.stack },
        });
        ctx.log.debug(`loaded ${loaded.join('; ')}; information at ${hex(next)}`);
      },
      stats: () => ({ loaded: loaded.join('; ') }),
      describe: () => `kernel ${s.kernel}${s.cmdline ? ` "${s.cmdline}"` : ''}`,
    };
  },
});
