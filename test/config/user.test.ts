/**
 * The cheap pre-check before cosmiconfig: it may say "maybe" too often, never "no" when cosmiconfig
 * would find a user configuration.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { loadUserConfig, mayHaveUserConfig } from '../../src/config/user.js';

let root: string;

function dir(files: Record<string, string>): string {
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(root, name, '..'), { recursive: true });
    writeFileSync(join(root, name), text);
  }
  return root;
}

beforeEach(() => {
  mkdirSync('test/.tmp', { recursive: true });
  root = mkdtempSync(join(resolve('test/.tmp'), 'user-'));
  // Neither the working directory nor the real per-user folder may decide the answer.
  mkdirSync(join(root, 'cwd'));
  vi.spyOn(process, 'cwd').mockReturnValue(join(root, 'cwd'));
  vi.stubEnv('XDG_CONFIG_HOME', join(root, 'xdg'));
});
afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

describe('mayHaveUserConfig', () => {
  it('says no when nothing up the tree can hold a configuration', async () => {
    const d = dir({ 'a/b/m.yaml': '', 'a/package.json': '{"name":"x","bin":{"vmm":"y"}}' });
    // Only when no search place above root has one: the test tree sits inside the vmm checkout,
    // whose package.json has no `vmm` key.
    expect(mayHaveUserConfig(join(d, 'a/b'))).toBe(false);
    expect(await loadUserConfig(join(d, 'a/b'))).toMatchObject({ file: undefined, pluginDirs: [] });
  });

  it.each([
    ['a/.vmmrc', ''],
    ['a/.vmmrc.yaml', 'defaults: {}\n'],
    ['a/.vmmrc.yml', 'defaults: {}\n'],
    ['a/.vmmrc.json', '{}'],
    ['a/package.json', '{"vmm":{}}'],
    ['a/package.json', '{not json'],
    ['cwd/package.json', '{"cosmiconfig":{"searchPlaces":["x"]}}'],
    ['cwd/package.yaml', 'cosmiconfig: {}\n'],
    ['cwd/.config/config.json', '{}'],
    ['xdg/vmm/config.yaml', 'defaults: {}\n'],
  ])('says maybe for %s', (file, text) => {
    const d = dir({ 'a/b/m.yaml': '', [file]: text });
    expect(mayHaveUserConfig(join(d, 'a/b'))).toBe(true);
  });

  it('hands a found file to cosmiconfig', async () => {
    const d = dir({ 'a/b/m.yaml': '', 'a/.vmmrc.yaml': 'plugins: [ ./lib ]\n' });
    const c = await loadUserConfig(join(d, 'a/b'));
    expect(c.file).toBe(join(d, 'a/.vmmrc.yaml'));
    expect(c.pluginDirs).toEqual([join(d, 'a/lib')]);
  });
});
