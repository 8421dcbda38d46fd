/**
 * Finding plugin definitions: built-ins (one folder each under plugins/), folders from the user's
 * configuration (`plugins:` in .vmmrc.yaml), files named by path in a machine file (TypeScript
 * files load through jiti, so no build step is needed on the user's side) and packages.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, isAbsolute, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { VmmError, displayPath } from '../core/errors.js';
import { isPluginDefinition, type PluginDefinition } from '../core/plugin.js';

const here = dirname(fileURLToPath(import.meta.url));
/** `.ts` when running from source (tests), `.js` when running the build. */
const ownExt = extname(fileURLToPath(import.meta.url));

/**
 * The tree this module belongs to: the package (running from source), dist/ (the build) or
 * dist/bundle/ (the start-up bundle, scripts/bundle.mjs, where this code may sit in a chunk at
 * another depth): the nearest folder up from here holding plugins/ next to src/.
 */
function treeRoot(): string {
  for (let dir = here; ;) {
    if (existsSync(join(dir, 'plugins')) && existsSync(join(dir, 'src'))) return dir;
    const up = dirname(dir);
    if (up === dir) return resolvePath(here, '..', '..');
    dir = up;
  }
}
const ROOT = treeRoot();
/** <package>/plugins, <package>/dist/plugins in the build, dist/bundle/plugins in the bundle. */
export const BUILTIN_DIR = join(ROOT, 'plugins');
/** The package's own entry module, which custom plugins import as 'vmm' (through the shim). */
const OWN_ENTRY = join(ROOT, 'src', `index${ownExt}`);
const API_SHIM = join(ROOT, 'src', 'container', 'vmm-api.cjs');
const API_KEY = Symbol.for('vmm:api');

export interface PluginSource {
  definition: PluginDefinition;
  /** `built-in`, or the file the definition came from. */
  origin: string;
}

const builtinCache = new Map<string, PluginDefinition>();

function indexFile(dir: string): string | undefined {
  for (const ext of [ownExt, '.ts', '.js']) {
    const f = join(dir, `index${ext}`);
    if (existsSync(f)) return f;
  }
  return undefined;
}

/** Names of the built-in plugins (folder names). */
export function builtinNames(): string[] {
  if (!existsSync(BUILTIN_DIR)) return [];
  return readdirSync(BUILTIN_DIR)
    .filter((d) => {
      const p = join(BUILTIN_DIR, d);
      return statSync(p).isDirectory() && indexFile(p) !== undefined;
    })
    .sort();
}

export async function loadBuiltin(name: string): Promise<PluginDefinition | undefined> {
  const cached = builtinCache.get(name);
  if (cached) return cached;
  if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) return undefined;
  const file = indexFile(join(BUILTIN_DIR, name));
  if (!file) return undefined;
  const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  const def = pickDefinition(mod);
  if (!def) {
    throw new VmmError('plugin-invalid', `built-in plugin ${name} does not export a plugin definition`);
  }
  if (def.name !== name) {
    throw new VmmError('plugin-invalid', `built-in plugin folder ${name} exports a plugin named ${def.name}`);
  }
  builtinCache.set(name, def);
  return def;
}

function pickDefinition(mod: Record<string, unknown>): PluginDefinition | undefined {
  for (const c of [
    mod,
    mod.default,
    mod.plugin,
    (mod.default as Record<string, unknown> | undefined)?.default,
  ]) {
    if (isPluginDefinition(c)) return c;
  }
  return undefined;
}

/** Whether a `plugin:` value names a file rather than a built-in or a package. */
export const isPathRef = (ref: string): boolean =>
  ref.startsWith('./') || ref.startsWith('../') || isAbsolute(ref) || /\.(m?[jt]s)$/.test(ref);

type Jiti = { import: (id: string) => Promise<unknown> };
let jiti: Jiti | undefined;

async function importModule(file: string): Promise<Record<string, unknown>> {
  if (!jiti) {
    const g = globalThis as Record<symbol, unknown>;
    g[API_KEY] ??= await import(pathToFileURL(OWN_ENTRY).href);
    const { createJiti } = await import('jiti');
    jiti = createJiti(import.meta.url, {
      alias: { vmm: API_SHIM },
      interopDefault: true,
      moduleCache: false,
      fsCache: false,
    }) as Jiti;
  }
  return (await jiti.import(file)) as Record<string, unknown>;
}

/**
 * Resolve a `plugin:` reference from a machine file in `baseDir`. Throws VmmError with the reason
 * (the caller adds the file position).
 */
export async function loadPlugin(
  ref: string,
  baseDir: string,
  searchDirs: readonly string[],
): Promise<PluginSource> {
  if (isPathRef(ref)) {
    const file = resolvePath(baseDir, ref);
    if (!existsSync(file)) {
      throw new VmmError(
        'plugin-not-found',
        `plugin file ${ref} not found (looked for ${displayPath(file)})`,
      );
    }
    return { definition: await loadFile(file, ref), origin: file };
  }
  const builtin = await loadBuiltin(ref);
  if (builtin) return { definition: builtin, origin: 'built-in' };
  for (const dir of searchDirs) {
    for (const cand of [
      join(dir, ref, 'index.ts'),
      join(dir, ref, 'index.js'),
      join(dir, `${ref}.ts`),
      join(dir, `${ref}.js`),
    ]) {
      if (existsSync(cand)) return { definition: await loadFile(cand, ref), origin: cand };
    }
  }
  let resolved: string | undefined;
  try {
    resolved = createRequire(join(baseDir, 'noop.js')).resolve(ref);
  } catch {
    resolved = undefined;
  }
  if (resolved) return { definition: await loadFile(resolved, ref), origin: resolved };
  throw new VmmError('plugin-not-found', `unknown plugin "${ref}"`);
}

async function loadFile(file: string, ref: string): Promise<PluginDefinition> {
  let mod: Record<string, unknown>;
  try {
    mod = await importModule(file);
  } catch (e) {
    throw new VmmError('plugin-load', `plugin ${ref} failed to load: ${loadFailure(e, file)}`, { cause: e });
  }
  const def = pickDefinition(mod);
  if (!def) {
    throw new VmmError(
      'plugin-invalid',
      `plugin ${ref} does not export a plugin definition (export default definePlugin({ name, settings, create }))`,
    );
  }
  return def;
}

/** Every built-in definition (for `vmm plugins`). */
export async function allBuiltins(): Promise<PluginDefinition[]> {
  const out: PluginDefinition[] = [];
  for (const n of builtinNames()) {
    const d = await loadBuiltin(n);
    if (d) out.push(d);
  }
  return out;
}

/** One line saying why a module failed to load, with the place in the module when known. */
function loadFailure(e: unknown, file: string): string {
  const text = e instanceof Error ? e.message : String(e);
  const [first = '', ...rest] = text.split('\n').map((l) => l.trim());
  let where = rest.find((l) => /:\d+:\d+$/.test(l));
  if (!where && e instanceof Error && e.stack) {
    const frame = e.stack.split('\n').find((l) => l.includes(file));
    const m = frame ? /(\/[^\s()]+:\d+:\d+)/.exec(frame) : null;
    where = m?.[1];
  }
  const msg = first.replace(/^(Error: )?ParseError: /, 'syntax error: ');
  return where ? `${msg} (${displayPath(where)})` : msg;
}
