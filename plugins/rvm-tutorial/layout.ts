/**
 * Where the policy puts things in host RAM, and what the guest reaches through EPT: guest RAM as
 * one block of host RAM, the EPT paging structures and the MSR bitmap after it, and the host
 * devices' MMIO pages passed through 1:1 (TUTORIAL-SYSTEM.md "The reference hypervisor's VMX
 * set-up", EPT). Pure functions over the machine description, so tests can check them alone.
 */
import { hex } from '../../src/core/addresses.js';
import type { MachineConfig } from '../../src/config/machine-schema.js';

const PAGE = 4096;
const MIB = 1024 * 1024;
const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

/** Default MMIO bases of the host devices a guest may reach directly (q35). */
export const PASSTHROUGH_DEFAULT_BASE: Readonly<Record<string, number>> = {
  ioapic: 0xfec0_0000,
  hpet: 0xfed0_0000,
  'lapic-timer': 0xfee0_0000,
};

/** fat-loader's defaults (plugins/fat-loader/index.ts `scratch`, `scratch-size`). */
const LOADER_SCRATCH_DEFAULT = 0x700_0000;
const LOADER_SCRATCH_SIZE_DEFAULT = 256 * 1024;

export interface HostLayout {
  /** Host-physical base of guest RAM (guest-physical 0). */
  ramBase: number;
  ramSize: number;
  /** EPT paging structures. */
  eptBase: number;
  eptSize: number;
  /** The 4 KiB MSR bitmap (SDM 24.6.9). */
  msrBitmap: number;
  /** First byte after everything the policy uses. */
  end: number;
}

/**
 * Lay out guest RAM, EPT tables and the MSR bitmap from `ramBase`. Tables: a PML4, a PDPT and PD per
 * GiB, a PT per 2 MiB of guest RAM (4 KiB pages), plus a few for the passthrough pages.
 */
export function planLayout(ramBase: number, ramSize: number): HostLayout {
  const gib = Math.ceil(ramSize / 2 ** 30);
  const tablePages = 1 + 2 * (gib + 1) + Math.ceil(ramSize / (2 * MIB)) + 8;
  const eptBase = alignUp(ramBase + ramSize, PAGE);
  const eptSize = tablePages * PAGE;
  const msrBitmap = eptBase + eptSize;
  return { ramBase, ramSize, eptBase, eptSize, msrBitmap, end: msrBitmap + PAGE };
}

/** Why the layout does not fit the host (undefined when it does). */
export function layoutProblem(l: HostLayout, hostRam: number, config: MachineConfig): string | undefined {
  if (l.ramBase % (2 * MIB) !== 0) return `the guest RAM base ${hex(l.ramBase)} is not 2 MiB aligned`;
  if (l.end > hostRam) {
    return (
      `guest RAM (${l.ramSize / MIB} MiB at ${hex(l.ramBase)}) and the EPT tables need host RAM up to ` +
      `${hex(l.end)}, but host.memory is ${hex(hostRam)} bytes`
    );
  }
  const loader = config.vmm?.loader;
  if (loader?.plugin === 'fat-loader') {
    const scratch = typeof loader.scratch === 'number' ? loader.scratch : LOADER_SCRATCH_DEFAULT;
    const size =
      typeof loader['scratch-size'] === 'number' ? loader['scratch-size'] : LOADER_SCRATCH_SIZE_DEFAULT;
    if (scratch < l.end && l.ramBase < scratch + size) {
      return (
        `guest RAM and EPT tables (${hex(l.ramBase)}..${hex(l.end - 1)}) overlap the loader's scratch area ` +
        `(${hex(scratch)}..${hex(scratch + size - 1)}): move one of them (vmm.policy.ram-base or vmm.loader.scratch)`
      );
    }
  }
  return undefined;
}

export interface PassthroughPage {
  /** The host device instance. */
  name: string;
  base: number;
}

/**
 * The MMIO bases of `guest.passthrough` (host device instance names). Throws a message naming the
 * unknown instance; the caller turns it into a plugin error.
 */
export function passthroughBases(config: MachineConfig): PassthroughPage[] {
  const names = config.guest?.passthrough ?? [];
  const devices = config.host.devices;
  return names.map((name) => {
    const dev = devices.find((d) => (d.name ?? d.plugin) === name);
    if (!dev) {
      const known = devices.map((d) => d.name ?? d.plugin).join(', ');
      throw new Error(
        `guest.passthrough names "${name}", but no host device has that name (host devices: ${known})`,
      );
    }
    const base = typeof dev.base === 'number' ? dev.base : PASSTHROUGH_DEFAULT_BASE[dev.plugin];
    if (base === undefined) {
      throw new Error(
        `guest.passthrough: host device "${name}" (${dev.plugin}) has no MMIO base this policy knows; give it a base:`,
      );
    }
    return { name, base };
  });
}
