/**
 * The machine description's own schema (everything but the plugins' settings, which each plugin's
 * schema checks). The slots that hold plugin instances are listed once here, for the container,
 * the validator and the JSON Schema generator alike.
 */
import { z } from 'zod';
import { physAddr, size } from './types.js';

/** A plugin instance: `plugin:` (a built-in name, a file path or a package), an optional `name:`, settings. */
export const instanceSchema = z.looseObject({
  plugin: z.string().min(1).describe('built-in plugin name, a path to a .ts/.js file, or a package name'),
  name: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9_-]*$/, 'names start with a letter and use letters, digits, - and _')
    .optional()
    .describe('instance name (default: the plugin name); variants refer to instances by it'),
});

export type Section = 'host' | 'vmm' | 'guest';

/** Where plugin instances may sit: [section, key, is a list]. */
export const INSTANCE_SLOTS: readonly { section: Section; key: string; list: boolean; role: string }[] = [
  { section: 'host', key: 'cpu', list: false, role: 'the CPU' },
  {
    section: 'host',
    key: 'boot',
    list: false,
    role: 'what puts the first code in memory (firmware or a boot loader)',
  },
  { section: 'host', key: 'devices', list: true, role: "the host machine's devices" },
  { section: 'vmm', key: 'virtualization', list: false, role: 'the virtualization extension model (vmx)' },
  { section: 'vmm', key: 'nested-paging', list: false, role: 'second-stage translation (ept)' },
  { section: 'vmm', key: 'loader', list: false, role: 'loads guest images (fat-loader)' },
  { section: 'vmm', key: 'policy', list: false, role: "the hypervisor's exit handling (rvm-tutorial)" },
  { section: 'guest', key: 'devices', list: true, role: "the guest's emulated devices" },
];

const slot = (role: string) => instanceSchema.optional().describe(role);
const slots = (role: string) => z.array(instanceSchema).default([]).describe(role);

export const machineSchema = z.strictObject({
  $schema: z.string().optional(),
  name: z.string().optional().describe('a short name for the machine'),
  description: z.string().optional().describe('what this machine is for'),
  extends: z
    .union([z.string(), z.array(z.string())])
    .optional()
    .describe('machine file(s) this one is a variant of, relative to this file'),
  shorthands: z
    .record(z.string().regex(/^[a-z][a-z0-9-]*$/), z.string())
    .optional()
    .describe('command-line flags that set a setting: { kernel: host.boot.kernel } makes --kernel X work'),
  clock: z
    .strictObject({
      mode: z
        .enum(['deterministic', 'realtime'])
        .default('deterministic')
        .describe('deterministic: virtual time only; realtime: virtual time paced to wall time'),
    })
    .default({ mode: 'deterministic' })
    .describe('virtual clock'),
  host: z
    .strictObject({
      memory: size()
        .default(128 * 1024 * 1024)
        .describe('host RAM, from physical address 0'),
      cpu: slot('the CPU'),
      boot: slot('firmware or a boot loader'),
      devices: slots("the host machine's devices"),
    })
    .describe('the physical machine'),
  vmm: z
    .strictObject({
      virtualization: slot('the virtualization extension model (vmx)'),
      'nested-paging': slot('second-stage translation (ept)'),
      loader: slot('loads guest images'),
      policy: slot("the hypervisor's exit handling"),
    })
    .optional()
    .describe('the hypervisor: virtualization model, nested paging, loader and policy'),
  guest: z
    .strictObject({
      memory: size()
        .default(16 * 1024 * 1024)
        .describe('guest RAM, from guest-physical address 0'),
      entry: z
        .strictObject({
          mode: z
            .enum(['real', 'protected', 'long'])
            .default('real')
            .describe('CPU mode at the first instruction'),
          ip: physAddr().default(0x8000).describe('first instruction (guest-physical)'),
        })
        .default({ mode: 'real', ip: 0x8000 })
        .describe("the guest vCPU's start"),
      devices: slots("the guest's emulated devices"),
      passthrough: z
        .array(z.string())
        .default([])
        .describe('host devices (instance names) whose MMIO pages the guest reaches directly'),
    })
    .optional()
    .describe('the virtual machine the hypervisor runs'),
});

export type MachineConfig = z.output<typeof machineSchema>;
export type GuestConfig = NonNullable<MachineConfig['guest']>;
