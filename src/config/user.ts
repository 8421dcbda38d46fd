/**
 * User defaults, found by cosmiconfig: `.vmmrc.yaml` (or .vmmrc, .vmmrc.json, .vmmrc.yml,
 * vmm.config.js) or a `vmm` key in package.json, searched upward from the working directory.
 *   defaults: { uart16550: { input-buffer: 8192 } }   # per-plugin setting defaults
 *   plugins: [ ./my-plugins ]                          # extra folders searched for `plugin: NAME`
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { VmmError } from '../core/errors.js';
import { fromPlain, type LNode } from './located.js';
import { issuesToErrors } from './validate.js';

export const userConfigSchema = z.strictObject({
  defaults: z
    .record(z.string(), z.record(z.string(), z.unknown()))
    .default({})
    .describe('per-plugin setting defaults, by plugin name'),
  plugins: z
    .array(z.string())
    .default([])
    .describe('extra folders searched for plugins named in machine files'),
});

export interface UserConfig {
  file: string | undefined;
  defaults: Record<string, Record<string, unknown>>;
  pluginDirs: string[];
  /** Located tree of the file (for error positions), when it was YAML. */
  root: LNode | undefined;
}

export const EMPTY_USER_CONFIG: UserConfig = {
  file: undefined,
  defaults: {},
  pluginDirs: [],
  root: undefined,
};

const SEARCH_PLACES = ['package.json', '.vmmrc', '.vmmrc.yaml', '.vmmrc.yml', '.vmmrc.json'];

/** Whether package.json at `file` exists and has a top-level `key` (unreadable or malformed: maybe). */
function packageJsonHas(file: string, key: string): boolean {
  if (!existsSync(file)) return false;
  try {
    const pj = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    return typeof pj !== 'object' || pj === null || Object.hasOwn(pj, key);
  } catch {
    return true;
  }
}

/** The per-user configuration folder cosmiconfig also searches (env-paths' `config` for 'vmm'). */
function globalConfigDir(): string {
  const home = homedir();
  if (process.platform === 'darwin') return join(home, 'Library', 'Preferences', 'vmm');
  if (process.platform === 'win32')
    return join(process.env.APPDATA ?? join(home, 'AppData', 'Roaming'), 'vmm', 'Config');
  return join(process.env.XDG_CONFIG_HOME ?? join(home, '.config'), 'vmm');
}

/**
 * Whether cosmiconfig could find anything from `searchFrom`: a few existsSync calls instead of
 * loading cosmiconfig (~25 ms of `vmm up` start-up, issue 2). Errs towards yes: when anything it
 * might read exists (a search place upward, its meta configuration in the working directory, the
 * per-user folder), cosmiconfig does the real search.
 */
export function mayHaveUserConfig(searchFrom: string): boolean {
  const cwd = process.cwd();
  if (packageJsonHas(join(cwd, 'package.json'), 'cosmiconfig')) return true;
  if (existsSync(join(cwd, 'package.yaml')) || existsSync(join(cwd, '.config'))) return true;
  if (existsSync(globalConfigDir())) return true;
  for (let dir = resolvePath(searchFrom); ;) {
    for (const place of SEARCH_PLACES) {
      const f = join(dir, place);
      if (place === 'package.json' ? packageJsonHas(f, 'vmm') : existsSync(f)) return true;
    }
    const up = dirname(dir);
    if (up === dir) return false;
    dir = up;
  }
}

export async function loadUserConfig(searchFrom: string): Promise<UserConfig> {
  if (!mayHaveUserConfig(searchFrom)) return EMPTY_USER_CONFIG;
  const { cosmiconfig } = await import('cosmiconfig');
  const explorer = cosmiconfig('vmm', {
    searchPlaces: SEARCH_PLACES,
    stopDir: resolvePath(searchFrom, '/'),
  });
  let found: { filepath: string; config: unknown } | null;
  try {
    found = await explorer.search(searchFrom);
  } catch (e) {
    const file = (e as { filepath?: string }).filepath;
    throw new VmmError('config-syntax', `user configuration: ${(e as Error).message.split('\n')[0]}`, {
      location: file ? { file } : {},
      cause: e,
    });
  }
  if (!found) return EMPTY_USER_CONFIG;
  let root: LNode = fromPlain(found.config, { file: found.filepath, line: 0, col: 0 });
  if (/\.(ya?ml)$|\.vmmrc$/.test(found.filepath)) {
    try {
      const { parseMachineFile } = await import('./load.js');
      root = parseMachineFile(found.filepath);
    } catch {
      // keep the position-less tree; cosmiconfig already parsed it
    }
  }
  const parsed = userConfigSchema.safeParse(found.config ?? {}, { reportInput: true });
  if (!parsed.success) {
    const errs = issuesToErrors(parsed.error.issues, {
      root,
      base: [],
      keyWord: 'key',
      subject: 'the user configuration',
      schema: userConfigSchema,
    });
    throw errs;
  }
  return {
    file: found.filepath,
    defaults: parsed.data.defaults,
    pluginDirs: parsed.data.plugins.map((p) => resolvePath(dirname(found.filepath), p)),
    root,
  };
}
