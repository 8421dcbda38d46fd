/** The logic of `vmm validate` and `vmm plugins` (the oclif commands only parse flags). */
import * as path from 'node:path';
import { stderrChalk } from '../host/log.js';
import { formatError } from './errors.js';
import { defaultMachineFile } from './paths.js';
import { formatPluginInfo, formatPluginList } from './plugins.js';
import { formatMachineTree } from './validate.js';

export interface CliIo {
  stdout?: { write(s: string): unknown };
  stderr?: { write(s: string): unknown };
  color?: boolean;
}

export interface ValidateOptions {
  file?: string;
  set?: readonly string[];
  shorthands?: Record<string, string | undefined>;
  json?: boolean;
  noUserConfig?: boolean;
  debug?: boolean;
}

function definedOnly(r: Record<string, string | undefined> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(r ?? {})) if (v !== undefined) out[k] = v;
  return out;
}

export async function runValidate(opts: ValidateOptions, io: CliIo = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  try {
    const { resolveMachine } = await import('../index.js');
    const resolved = await resolveMachine(opts.file ?? defaultMachineFile(), {
      set: opts.set ?? [],
      shorthands: definedOnly(opts.shorthands),
      noUserConfig: opts.noUserConfig,
    });
    if (opts.json) stdout.write(JSON.stringify(resolved, jsonReplacer, 2) + '\n');
    else stdout.write(formatMachineTree({ ...resolved, file: displayPath(resolved.file) }) + '\n');
    return 0;
  } catch (e) {
    const f = formatError(e, stderrChalk(io.color), opts.debug);
    stderr.write(f.text + '\n');
    return f.exitCode;
  }
}

/** A path as the user would type it: relative to the working directory when inside it. */
export function displayPath(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}

/** JSON for values a schema may produce that JSON.stringify cannot (bigint, byte arrays). */
function jsonReplacer(_key: string, v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Uint8Array) return `<${v.length} bytes>`;
  return v;
}

export interface PluginsOptions {
  name?: string;
  json?: boolean;
  debug?: boolean;
}

export async function runPlugins(opts: PluginsOptions, io: CliIo = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  try {
    const api = await import('../index.js');
    if (opts.name === undefined) {
      const ps = await api.listPlugins();
      stdout.write((opts.json ? JSON.stringify(ps, jsonReplacer, 2) : formatPluginList(ps)) + '\n');
    } else {
      const p = await api.pluginInfo(opts.name);
      stdout.write((opts.json ? JSON.stringify(p, jsonReplacer, 2) : formatPluginInfo(p)) + '\n');
    }
    return 0;
  } catch (e) {
    const f = formatError(e, stderrChalk(io.color), opts.debug);
    stderr.write(f.text + '\n');
    return f.exitCode;
  }
}
