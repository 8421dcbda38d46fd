/**
 * fat-loader: reads files from a FAT12/16/32 volume on the AHCI disk and places them in memory, as
 * the tutorial's hypervisor loads rvm-bios.bin and nimbos.bin from disk.img. The disk is read
 * through the modelled controller by a small AHCI driver (ahci-driver.ts): PCI enumeration, port
 * start, commands in host RAM (the `scratch` area), polled completion.
 *
 * Where the bytes go: guest-physical memory, through the GuestMemory a VMM policy provides (guest
 * RAM is a block of host RAM that nested paging maps). Without one (a bare machine), the addresses
 * are host-physical and the files are written to the host bus; they must then lie in host RAM and
 * outside the scratch area.
 */
import { hex } from '../../src/core/addresses.js';
import { gpa } from '../../src/core/addresses.js';
import { definePlugin } from '../../src/core/plugin.js';
import { Tokens } from '../../src/core/tokens.js';
import { physAddr, size, z } from '../../src/config/types.js';
import { AhciDriver, MIN_SCRATCH } from './ahci-driver.js';
import { openFat } from './fat/index.js';

export default definePlugin({
  name: 'fat-loader',
  description: 'loads files from a FAT volume on the AHCI disk (read through the HBA) into guest memory',
  needs: [Tokens.BlockController],
  wants: [Tokens.GuestMemory],
  settings: z.object({
    files: z
      .record(z.string().min(1), physAddr())
      .default({})
      .describe('file path on the volume -> guest-physical load address, e.g. { nimbos.bin: 0x200000 }'),
    partition: z
      .number()
      .int()
      .min(0)
      .max(3)
      .optional()
      .describe('MBR partition slot (0-3); default: a bare volume, else the first FAT partition'),
    port: z
      .number()
      .int()
      .min(0)
      .max(31)
      .optional()
      .describe('AHCI port of the disk (default: the first port with a disk)'),
    scratch: physAddr()
      .default(0x700_0000)
      .describe(
        'host RAM the driver uses for its command list, FIS area, command table and buffer (4 KiB aligned)',
      ),
    'scratch-size': size()
      .default(256 * 1024)
      .describe(`size of the scratch area (at least ${MIN_SCRATCH} bytes; bigger means fewer commands)`),
  }),
  create(ctx) {
    const s = ctx.settings;
    const loaded: string[] = [];
    let commands = 0;
    return {
      async start() {
        const ctl = ctx.get(Tokens.BlockController);
        const guest = ctx.tryGet(Tokens.GuestMemory);
        const bus = ctx.machine.hostBus;
        const scratchEnd = s.scratch + s['scratch-size'];
        const ram = bus.ramAt(s.scratch);
        if (s.scratch % 0x1000 !== 0 || !ram || scratchEnd > ram.base + ram.size) {
          throw ctx.error(
            `the scratch area ${hex(s.scratch)}..${hex(scratchEnd - 1)} is not 4 KiB aligned host RAM ` +
              `(host.memory is ${hex(ctx.machine.config.host.memory)} bytes)`,
            'scratch',
          );
        }
        if (s['scratch-size'] < MIN_SCRATCH) {
          throw ctx.error(`at least ${MIN_SCRATCH} bytes are needed`, 'scratch-size');
        }
        const disk = s.port === undefined ? ctl.disks[0] : ctl.disks.find((d) => d.port === s.port);
        if (!disk) {
          throw ctx.error(
            s.port === undefined ? `${ctl.kind} has no disk` : `${ctl.kind} has no disk on port ${s.port}`,
            s.port === undefined ? undefined : 'port',
          );
        }
        const driver = AhciDriver.open({
          bus,
          scratch: s.scratch,
          scratchSize: s['scratch-size'],
          pci: ctl.pci,
          port: disk.port,
          name: disk.image,
          log: (m) => ctx.log.debug(m),
        });
        try {
          const volume = await openFat(driver, s.partition === undefined ? {} : { partition: s.partition });
          for (const [path, addr] of Object.entries(s.files)) {
            const data = await volume.readFile(path);
            const end = addr + data.length;
            const setting = `files["${path}"]`;
            if (guest) {
              if (end > guest.size) {
                throw ctx.error(
                  `${path} (${data.length} bytes) at ${hex(addr)} ends past guest memory (${hex(guest.size)} bytes)`,
                  setting,
                );
              }
              guest.write(gpa(addr), data);
            } else {
              const r = bus.ramAt(addr);
              if (data.length > 0 && (!r || end > r.base + r.size)) {
                throw ctx.error(
                  `${path} (${data.length} bytes) at ${hex(addr)} does not fit in host RAM`,
                  setting,
                );
              }
              if (addr < scratchEnd && s.scratch < end) {
                throw ctx.error(
                  `${path} at ${hex(addr)}..${hex(end - 1)} overlaps the driver's scratch area at ${hex(s.scratch)}`,
                  setting,
                );
              }
              bus.writeBytes(addr, data);
            }
            const line = `loaded ${path} (${data.length} bytes) at ${hex(addr)}`;
            loaded.push(line.slice('loaded '.length));
            ctx.log.info(line);
          }
        } finally {
          commands = driver.commands;
          driver.close();
        }
      },
      stats: () => ({ loaded: loaded.join('; '), diskCommands: commands }),
      describe: () =>
        Object.entries(s.files)
          .map(([f, a]) => `${f} -> ${hex(a)}`)
          .join(', ') || 'no files',
    };
  },
});
