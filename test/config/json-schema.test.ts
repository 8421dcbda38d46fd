/**
 * schema/machine.schema.json is generated from the machine schema and the built-in plugins'
 * schemas. This test fails when it is out of date; `npm run schema` rewrites it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { machineJsonSchema } from '../../src/config/json-schema.js';
import { allBuiltins } from '../../src/container/registry.js';

const FILE = 'schema/machine.schema.json';

describe('machine JSON Schema', () => {
  it('is in sync with the schemas of the machine and of every built-in plugin', async () => {
    const text = JSON.stringify(machineJsonSchema(await allBuiltins()), null, 2) + '\n';
    if (process.env.VMM_UPDATE_SCHEMA === '1') writeFileSync(FILE, text);
    expect(readFileSync(FILE, 'utf8'), 'schema/machine.schema.json is stale: run npm run schema').toBe(text);
  });

  it('names every built-in plugin and refuses unknown settings for them', async () => {
    const schema = JSON.parse(readFileSync(FILE, 'utf8')) as {
      $defs: { instance: { anyOf: { title: string; additionalProperties?: boolean }[] } };
    };
    const titles = schema.$defs.instance.anyOf.map((v) => v.title);
    for (const d of await allBuiltins()) expect(titles).toContain(d.name);
    for (const v of schema.$defs.instance.anyOf.filter((x) => x.title !== 'custom plugin')) {
      expect(v.additionalProperties).toBe(false);
    }
  });

  it('is referenced by every shipped machine file', () => {
    for (const f of readdirSync('machines').filter((x) => x.endsWith('.yaml'))) {
      const text = readFileSync(`machines/${f}`, 'utf8');
      expect(text.split('\n')[0], f).toBe('# yaml-language-server: $schema=../schema/machine.schema.json');
      expect(() => parse(text)).not.toThrow();
    }
  });
});
