/**
 * oclif.manifest.json is checked in (oclif reads it instead of importing every command at start-up);
 * it must describe the commands as their sources declare them. `npm run build` regenerates it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from '@oclif/core';
import { describe, expect, it } from 'vitest';
import { ROOT } from './cli-helpers.js';

interface ManifestFlag {
  name: string;
  type: 'boolean' | 'option';
  char?: string;
  multiple?: boolean;
  options?: string[];
}
interface ManifestCommand {
  id: string;
  summary?: string;
  description?: string;
  flags: Record<string, ManifestFlag>;
  args: Record<string, { name: string }>;
}

function commandFiles(dir: string, prefix = ''): { id: string; file: string }[] {
  const out: { id: string; file: string }[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...commandFiles(p, `${prefix}${e.name}:`));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
      out.push({ id: prefix + e.name.replace(/\.ts$/, ''), file: p });
  }
  return out;
}

describe('oclif.manifest.json', () => {
  const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'oclif.manifest.json'), 'utf8')) as {
    commands: Record<string, ManifestCommand>;
  };
  const files = commandFiles(path.join(ROOT, 'src/commands'));

  it('lists exactly the commands in src/commands', () => {
    expect(Object.keys(manifest.commands).sort()).toEqual(files.map((f) => f.id).sort());
  });

  it.each(files)('$id: flags, args and texts match the source', async ({ id, file }) => {
    const mod = (await import(file)) as { default: typeof Command };
    const cmd = mod.default;
    const m = manifest.commands[id]!;
    expect(m, `${id} missing from the manifest`).toBeDefined();
    expect(m.summary).toBe(cmd.summary);
    expect(m.description).toBe(cmd.description);
    expect(Object.keys(m.args)).toEqual(Object.keys(cmd.args ?? {}));
    const flags = cmd.flags ?? {};
    expect(Object.keys(m.flags).sort()).toEqual(Object.keys(flags).sort());
    for (const [name, f] of Object.entries(flags)) {
      const mf = m.flags[name]!;
      expect(mf.type, name).toBe(f.type);
      expect(mf.char, name).toBe(f.char);
      expect(Boolean(mf.multiple), name).toBe(Boolean((f as { multiple?: boolean }).multiple));
      expect(mf.options, name).toEqual((f as { options?: readonly string[] }).options);
    }
  });
});
