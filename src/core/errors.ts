/**
 * The one error class for set-up and host failures (bad YAML, bad plugin modules, bad images).
 * Guest misbehaviour never throws: it is answered as the hardware would and counted.
 */
export type ErrorCode =
  | 'config-syntax'
  | 'config-invalid'
  | 'config-file'
  | 'plugin-not-found'
  | 'plugin-load'
  | 'plugin-invalid'
  | 'plugin-hook'
  | 'wiring-missing'
  | 'wiring-ambiguous'
  | 'wiring-cycle'
  | 'bus-conflict'
  | 'image'
  | 'disk'
  | 'usage'
  | 'internal';

/** Where an error came from: a source position in a machine file, or a plugin and setting. */
export interface ErrorLocation {
  file?: string;
  line?: number;
  col?: number;
  plugin?: string;
  /** Dotted path in the machine description, e.g. `host.devices[2].port`. */
  path?: string;
}

export class VmmError extends Error {
  readonly code: ErrorCode;
  readonly location: ErrorLocation | undefined;
  readonly hint: string | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { location?: ErrorLocation; hint?: string; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'VmmError';
    this.code = code;
    this.location = opts.location;
    this.hint = opts.hint;
  }

  /** `FILE:LINE:COL: message` (or `plugin NAME: message`), as printed by the CLI. */
  format(): string {
    const loc = this.location;
    let prefix = '';
    if (loc?.file) {
      prefix = displayPath(loc.file);
      if (loc.line !== undefined) prefix += `:${loc.line}:${loc.col ?? 1}`;
      prefix += ': ';
    } else if (loc?.plugin) {
      prefix = `plugin ${loc.plugin}: `;
    }
    return prefix + this.message;
  }
}

/**
 * A path as the user should read it: relative to the working directory when it is below it.
 * Pseudo-files such as `--set a.b=1` pass through.
 */
export function displayPath(p: string): string {
  if (!p.startsWith('/')) return p;
  const cwd = typeof process === 'undefined' ? '' : process.cwd();
  return cwd && p.startsWith(cwd + '/') ? p.slice(cwd.length + 1) : p;
}

/** Several errors found at once (validation reports every problem, not just the first). */
export class VmmErrors extends Error {
  readonly errors: VmmError[];
  constructor(errors: VmmError[]) {
    super(errors.map((e) => e.format()).join('\n'));
    this.name = 'VmmErrors';
    this.errors = errors;
  }
}

export const isVmmError = (e: unknown): e is VmmError | VmmErrors =>
  e instanceof VmmError || e instanceof VmmErrors;
