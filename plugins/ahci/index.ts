/**
 * ahci: an ICH9-style AHCI SATA controller (8086:2922, class 01/06/01) as a PCI function on
 * pci-host, with one ATA disk per port backed by a raw image file. ABAR (BAR5) holds the
 * registers (hba.ts); DMA goes through the host bus while the function is a bus master; the
 * interrupt is INTA, driven on one of the bus's IRQ lines (q35 routes 00:1f INTA to GSI 16).
 *
 * Images are never damaged by default: guest writes stay in a copy-on-write overlay. With
 * `persist: true` the file is opened for writing and the overlay is written back on FLUSH CACHE
 * and when the machine stops.
 */
import { hex } from '../../src/core/addresses.js';
import { IRQ_LINES } from '../../src/core/irq.js';
import { definePlugin } from '../../src/core/plugin.js';
import { Tokens } from '../../src/core/tokens.js';
import { filePath, physAddr, size, z } from '../../src/config/types.js';
import type { BlockController, BlockDiskInfo } from '../../src/devices/block.js';
import { formatPciAddress, parsePciSlot } from '../../src/devices/pci.js';
import { MmioBarMapping, PciCommand, PciConfigSpace } from '../pci-host/config-space.js';
import { buildImage } from './create-image.js';
import { DiskImage } from './disk-image.js';
import { Ahci, type AhciDiskSpec } from './hba.js';
import { MAX_PORTS } from './registers.js';

/** ICH9 SATA controller in AHCI mode (ICH9 datasheet §14.1; QEMU's ich9-ahci). */
export const ICH9_AHCI = {
  vendorId: 0x8086,
  deviceId: 0x2922,
  revisionId: 0x02,
  /** Mass storage, SATA, AHCI 1.0 programming interface. */
  classCode: [0x01, 0x06, 0x01],
  subsystemVendorId: 0x1af4,
  subsystemId: 0x1100,
  /** ABAR is BAR5. */
  abarIndex: 5,
  /** INTA#. */
  interruptPin: 1,
} as const;

const createSchema = z.strictObject({
  size: size()
    .default(64 * 1024 * 1024)
    .describe('image size (a multiple of 512 bytes), e.g. 64M'),
  fat: z
    .union([z.literal(12), z.literal(16), z.literal(32)])
    .optional()
    .describe('FAT type (12, 16 or 32); default chosen from the size'),
  label: z.string().max(11).optional().describe('volume label (up to 11 characters)'),
  files: z
    .record(z.string().min(1), filePath())
    .default({})
    .describe('name on the volume -> host file, e.g. { sample.bin: ../guests/sample/sample.bin }'),
});

const diskSchema = z.strictObject({
  image: filePath()
    .optional()
    .describe(
      'raw disk image file (its size in 512-byte sectors is the disk size); may be omitted with `create`',
    ),
  create: createSchema
    .optional()
    .describe(
      'make a FAT image from host files when `image` does not exist: written to `image` when it is named, ' +
        'else kept in memory for the run',
    ),
  persist: z
    .boolean()
    .default(false)
    .describe(
      'write guest writes back to the image (on FLUSH CACHE and at stop); default: keep them in memory',
    ),
  model: z
    .string()
    .max(40)
    .default('VMM HARDDISK')
    .describe('IDENTIFY DEVICE model number (up to 40 characters)'),
  serial: z
    .string()
    .max(20)
    .optional()
    .describe('IDENTIFY DEVICE serial number (up to 20 characters; default VMM-DISK-<port>)'),
  firmware: z
    .string()
    .max(8)
    .default('1.0')
    .describe('IDENTIFY DEVICE firmware revision (up to 8 characters)'),
});

export default definePlugin({
  name: 'ahci',
  description: 'ICH9 AHCI SATA controller (PCI 8086:2922) with one ATA disk per port on a raw image',
  provides: [Tokens.BlockController],
  needs: [Tokens.PciHost],
  settings: z.object({
    addr: z
      .string()
      .refine((s) => parsePciSlot(s) !== undefined, 'a PCI slot is DEVICE.FUNCTION in hex, e.g. 1f.2')
      .default('1f.2')
      .describe('PCI device.function on bus 0 (q35: 1f.2)'),
    abar: physAddr()
      .default(0xfebf_0000)
      .describe(
        'ABAR (BAR5) as firmware leaves it, memory decoding on; 0: unassigned, for software to program',
      ),
    irq: z
      .number()
      .int()
      .min(0)
      .max(IRQ_LINES - 1)
      .default(16)
      .describe('bus IRQ line that INTA drives (q35: GSI 16); also the Interrupt Line register at reset'),
    ports: z.number().int().min(1).max(MAX_PORTS).default(6).describe('implemented ports (ICH9: 6)'),
    disks: z.array(diskSchema).max(MAX_PORTS).default([]).describe('the disk on each port, from port 0'),
  }),
  create(ctx) {
    const s = ctx.settings;
    const slot = parsePciSlot(s.addr)!;
    if (s.disks.length > s.ports) {
      throw ctx.error(`${s.disks.length} disks but only ${s.ports} ports (one disk per port)`, 'disks');
    }
    const size = Ahci.mmioSize(s.ports);
    if (s.abar % size !== 0) {
      throw ctx.error(`ABAR ${hex(s.abar)} is not aligned to the BAR's size (${hex(size)})`, 'abar');
    }
    const bus = ctx.machine.hostBus;
    const images: DiskImage[] = [];
    const specs: (AhciDiskSpec | undefined)[] = [];
    const disks: BlockDiskInfo[] = [];
    const controller: BlockController = {
      kind: 'ahci',
      pci: { bus: 0, device: slot.device, function: slot.function },
      disks,
    };
    ctx.provide(Tokens.BlockController, controller);

    const config = new PciConfigSpace(
      `${ctx.instanceName} ${formatPciAddress(controller.pci)}`,
      {
        ...ICH9_AHCI,
        bars: [undefined, undefined, undefined, undefined, undefined, { kind: 'mem32', size }],
        interruptLine: s.irq,
      },
      (m) => ctx.log.debug(m),
    );
    const hba = new Ahci({
      ports: s.ports,
      disks: specs,
      dma: bus,
      busMaster: () => config.busMaster,
      setInterrupt: (pending) => config.setInterrupt(pending),
      warn: (m) => ctx.log.warn(m),
    });
    const mapping = new MmioBarMapping(ctx.bus, ctx.instanceName, size, hba, (m) => ctx.log.warn(m));
    let attached = false;
    config.onDecodeChange = () => {
      if (!attached) return;
      mapping.update(config.memoryBar(ICH9_AHCI.abarIndex));
      hba.busMasterChanged();
    };
    config.onIntx = (level) => ctx.bus.irq.set(s.irq, level);

    return {
      async attach() {
        for (const [port, d] of s.disks.entries()) {
          let image: DiskImage;
          const name = d.image ?? `(in memory: ${Object.keys(d.create?.files ?? {}).join(', ') || 'empty'})`;
          if (d.image === undefined && d.create === undefined) {
            throw ctx.error('a disk needs `image` (a file) or `create` (a recipe)', `disks[${port}]`);
          }
          if (d.image === undefined && d.persist) {
            throw ctx.error('persist: true needs `image`, the file to write to', `disks[${port}].persist`);
          }
          let created: Uint8Array | undefined;
          if (d.create && (d.image === undefined || !ctx.host.exists(d.image))) {
            try {
              created = await buildImage(ctx.host, d.create);
            } catch (e) {
              throw ctx.error(
                `cannot create the disk image: ${e instanceof Error ? e.message : String(e)}`,
                `disks[${port}].create`,
                e,
              );
            }
            if (d.image !== undefined) {
              ctx.host.writeFile(d.image, created);
              ctx.log.info(`created disk image ${d.image} (${Object.keys(d.create.files).join(', ')})`);
              created = undefined;
            }
          }
          try {
            image = created
              ? DiskImage.inMemory(name, created)
              : DiskImage.open(ctx.host, d.image!, d.persist);
          } catch (e) {
            throw ctx.error(e instanceof Error ? e.message : String(e), `disks[${port}].image`, e);
          }
          images.push(image);
          if (image.trailingBytes !== 0) {
            ctx.log.warn(
              `disk image ${name}: the last ${image.trailingBytes} bytes are not a whole sector and are not used`,
            );
          }
          specs[port] = {
            image,
            model: d.model,
            serial: d.serial ?? `VMM-DISK-${port}`,
            firmware: d.firmware,
          };
          disks.push({ port, image: name, sectors: image.sectors });
        }
        ctx.get(Tokens.PciHost).register(slot.device, slot.function, config, ctx.instanceName);
        attached = true;
      },
      reset() {
        config.reset();
        if (s.abar !== 0) {
          config.setBar(ICH9_AHCI.abarIndex, s.abar);
          config.setCommand(PciCommand.MemorySpace);
        }
        hba.reset();
      },
      stop() {
        for (const img of images) img.flush();
      },
      dispose() {
        for (const img of images) img.close();
      },
      stats: () => {
        const out: Record<string, number> = { ...hba.stats, barConflicts: mapping.conflicts };
        for (const d of disks) {
          const st = specs[d.port]!.image.stats;
          out[`port${d.port}.sectorsRead`] = st.sectorsRead;
          out[`port${d.port}.sectorsWritten`] = st.sectorsWritten;
          out[`port${d.port}.overlayChunks`] = st.overlayChunks;
        }
        return out;
      },
      describe: () =>
        `PCI ${formatPciAddress(controller.pci)}, ABAR ${s.abar ? hex(s.abar) : 'unassigned'}, IRQ ${s.irq}, ` +
        `${s.disks.length} disk(s)` +
        (s.disks.length
          ? `: ${s.disks.map((d, i) => `port ${i} ${d.image ?? 'created in memory'}${d.persist ? ' (persist)' : ''}`).join(', ')}`
          : ''),
    };
  },
});

export { Ahci } from './hba.js';
export { DiskImage } from './disk-image.js';
