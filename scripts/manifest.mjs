#!/usr/bin/env node
// Writes oclif.manifest.json from the compiled commands in dist/ (what `oclif manifest` does, without
// loading the oclif CLI). With --check, exits 1 if the checked-in manifest differs instead of writing.
import { Plugin } from '@oclif/core';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const file = join(root, 'oclif.manifest.json');

const plugin = new Plugin({
  root,
  type: 'core',
  ignoreManifest: true,
  errorOnManifestCreate: true,
  respectNoCacheDefault: true,
});
await plugin.load();
const text = JSON.stringify(plugin.manifest, null, 2) + '\n';

if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(file, 'utf8');
  } catch {
    // Missing counts as out of date.
  }
  if (current !== text) {
    console.error('oclif.manifest.json is out of date: run `npm run build` and commit it');
    process.exit(1);
  }
} else {
  writeFileSync(file, text);
  console.error(`oclif.manifest.json: ${Object.keys(plugin.manifest.commands).length} commands`);
}
