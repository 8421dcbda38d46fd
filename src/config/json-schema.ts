/**
 * The JSON Schema for machine files (schema/machine.schema.json), generated from the machine
 * schema and every built-in plugin's settings, so that yaml-language-server completes and checks
 * machine files in an editor. A test keeps the checked-in file in sync.
 */
import { z } from 'zod';
import type { PluginDefinition } from '../core/plugin.js';
import { INSTANCE_SLOTS, instanceSchema, machineSchema } from './machine-schema.js';

type Json = Record<string, unknown>;

function toJson(s: z.ZodType): Json {
  const j = z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) as Json;
  delete j.$schema;
  return j;
}

export function machineJsonSchema(plugins: readonly PluginDefinition[]): Json {
  const root = toJson(machineSchema);
  const base = toJson(instanceSchema) as { properties: Record<string, Json> };
  const variants: Json[] = [...plugins]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((p) => {
      const settings = toJson(p.settings) as { properties?: Record<string, Json> };
      return {
        type: 'object',
        title: p.name,
        description: p.description,
        properties: {
          plugin: { const: p.name, description: p.description },
          name: base.properties.name,
          remove: { type: 'boolean', description: 'in a variant: drop this instance from the base machine' },
          ...(settings.properties ?? {}),
        },
        required: ['plugin'],
        additionalProperties: false,
      };
    });
  variants.push({
    type: 'object',
    title: 'custom plugin',
    description: 'a plugin from a file (./my-device.ts) or a package; its own schema checks the settings',
    properties: {
      plugin: { type: 'string', not: { enum: plugins.map((p) => p.name) } },
      name: base.properties.name,
    },
    required: ['plugin'],
  });
  const defs = { instance: { anyOf: variants } };
  const props = root.properties as Record<string, { properties?: Record<string, Json> } & Json>;
  for (const slot of INSTANCE_SLOTS) {
    const section = props[slot.section]!;
    const sectionProps = section.properties!;
    const ref = { $ref: '#/$defs/instance' };
    const prior = sectionProps[slot.key]!;
    sectionProps[slot.key] = slot.list
      ? { type: 'array', items: ref, description: prior.description }
      : { ...ref, description: prior.description };
  }
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://vmm.invalid/schema/machine.schema.json',
    title: 'vmm machine description',
    ...root,
    $defs: defs,
  };
}
