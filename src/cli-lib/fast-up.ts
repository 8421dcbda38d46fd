/**
 * A fast path for the common `vmm up [FILE] [flags]`: loading oclif costs about 100 ms of CPU at
 * every start, a third of the start-up budget (issue 2: first guest output within 300 ms). When the
 * arguments parse cleanly against the flags recorded in oclif.manifest.json, bin/run.js runs the
 * machine from here; anything unusual (help, errors, odd forms) declines and goes through oclif,
 * so oclif stays the one place that explains usage. A test checks both parsers agree.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { packageRoot } from './paths.js';
import { runUp, upOptions, type UpFlags, type UpOptions } from './up.js';

/** A flag as oclif.manifest.json records it. */
export interface ManifestFlag {
  name: string;
  type: 'boolean' | 'option';
  char?: string;
  multiple?: boolean;
  options?: readonly string[];
  allowNo?: boolean;
  default?: unknown;
}

export function readUpFlags(root = packageRoot()): Record<string, ManifestFlag> | undefined {
  try {
    const m = JSON.parse(fs.readFileSync(path.join(root, 'oclif.manifest.json'), 'utf8')) as {
      commands?: Record<string, { flags?: Record<string, ManifestFlag> }>;
    };
    return m.commands?.up?.flags;
  } catch {
    return undefined;
  }
}

/**
 * argv after `up` -> UpOptions, or undefined when the fast path declines (oclif then parses and
 * reports). Declines on help, `--`, grouped or attached short options, unknown flags, a second
 * positional, values outside a flag's options, and anything upOptions rejects.
 */
export function fastParseUp(
  argv: readonly string[],
  flags: Record<string, ManifestFlag>,
): UpOptions | undefined {
  if (argv.some((a) => a === '--' || a === '--help' || a === '-h' || /^-[^-]./.test(a))) return undefined;
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {};
  for (const f of Object.values(flags)) {
    if (f.allowNo) return undefined; // --no-X negation: leave it to oclif
    options[f.name] = {
      type: f.type === 'boolean' ? 'boolean' : 'string',
      ...(f.multiple ? { multiple: true } : {}),
      ...(f.char ? { short: f.char } : {}),
    };
  }
  const args = argv.map((a) => (a === '--stats' ? '--stats=table' : a));
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch {
    return undefined;
  }
  if (parsed.positionals.length > 1) return undefined;
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  for (const f of Object.values(flags)) {
    const v = values[f.name];
    if (v === undefined) {
      // oclif applies a flag's default when it is absent (the manifest records static ones).
      if (f.default !== undefined) values[f.name] = f.default as string | boolean | string[];
      continue;
    }
    // A string option given twice: oclif takes the last one; parseArgs too, but be strict anyway.
    if (typeof v === 'string' && v.startsWith('-')) return undefined;
    if (f.options && typeof v === 'string' && !f.options.includes(v)) return undefined;
  }
  try {
    return upOptions(parsed.positionals[0], values as UpFlags);
  } catch {
    return undefined;
  }
}

/** Run `vmm up` without oclif if the arguments allow; false means: go through oclif. */
export async function tryFastUp(argv: readonly string[]): Promise<boolean> {
  const flags = readUpFlags();
  const opts = flags && fastParseUp(argv, flags);
  if (!opts) return false;
  process.exitCode = await runUp(opts, { signals: true });
  // The machine is gone; if a plugin left a handle open (a timer, a socket), do not hang on it.
  setTimeout(() => process.exit(), 2000).unref();
  return true;
}
