/**
 * pci-host: a q35-like PCI host bridge. Configuration mechanism #1 at I/O ports 0xCF8 (CONFIG_ADDRESS,
 * dword accesses only, so a byte access to 0xCF9 still reaches the reset control register) and
 * 0xCFC-0xCFF (CONFIG_DATA). PCI function models (ahci, ...) register at a device/function number
 * through Tokens.PciHost; the bridge itself is function 00:00.0 (the Q35 MCH's identity).
 * Not modelled: PCI Express enhanced configuration (MMCONFIG), bridges and buses other than 0.
 */
import { z } from 'zod';
import { definePlugin } from '../../src/core/plugin.js';
import { Tokens } from '../../src/core/tokens.js';
import { PciConfigSpace } from './config-space.js';
import { CONFIG_ADDRESS_PORT, CONFIG_DATA_PORT, PciHostBridge } from './host.js';

/** The Q35 MCH (82G33 DRAM controller) as QEMU presents it: 8086:29C0, class 06/00/00. */
export const Q35_MCH = {
  vendorId: 0x8086,
  deviceId: 0x29c0,
  revisionId: 0x00,
  classCode: [0x06, 0x00, 0x00],
} as const;

export default definePlugin({
  name: 'pci-host',
  description: 'q35-like PCI host bridge: configuration mechanism #1 at 0xCF8/0xCFC, bus 0',
  provides: [Tokens.PciHost],
  settings: z.object({
    'host-bridge': z
      .boolean()
      .default(true)
      .describe('show the host bridge itself as function 00:00.0 (Q35 MCH, 8086:29C0, class 06/00/00)'),
  }),
  create(ctx) {
    const host = new PciHostBridge();
    const mch = ctx.settings['host-bridge']
      ? new PciConfigSpace(`${ctx.instanceName} 00:00.0`, { ...Q35_MCH, commandWritable: 0 }, (m) =>
          ctx.log.debug(m),
        )
      : undefined;
    if (mch) host.register(0, 0, mch, ctx.instanceName);
    ctx.provide(Tokens.PciHost, host);
    return {
      attach() {
        ctx.bus.addDwordPorts(`${ctx.instanceName}.CONFIG_ADDRESS`, CONFIG_ADDRESS_PORT, 4, host.addressPort);
        ctx.bus.addPorts(`${ctx.instanceName}.CONFIG_DATA`, CONFIG_DATA_PORT, 4, host.dataPort);
      },
      reset() {
        host.reset();
        mch?.reset();
      },
      stats: () => ({ ...host.stats }),
      describe: () => 'configuration mechanism #1 at 0xcf8/0xcfc' + (mch ? ', 00:00.0 Q35 MCH' : ''),
    };
  },
});
