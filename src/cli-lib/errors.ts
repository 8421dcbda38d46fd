/**
 * How the CLI reports failures: bad input (any VmmError) as `FILE:LINE:COL: message` lines, each
 * with its hint, exit code 2 and no stack trace unless asked; anything else as an internal error.
 */
import type { ChalkInstance } from 'chalk';
import { VmmError, VmmErrors } from '../core/errors.js';

/** Exit code for bad input (machine files, plugins, images, usage). */
export const EXIT_BAD_INPUT = 2;
/** Exit code for a failure of vmm itself. */
export const EXIT_INTERNAL = 1;

export interface FormattedError {
  text: string;
  exitCode: number;
}

function formatOne(e: VmmError, c: ChalkInstance): string {
  const full = e.format();
  const prefix = full.endsWith(e.message) ? full.slice(0, full.length - e.message.length) : '';
  const body = prefix ? full.slice(prefix.length) : full;
  let line = `${c.bold(prefix)}${c.red(body)}`;
  if (e.hint) line += `\n  ${c.cyan('hint:')} ${e.hint}`;
  return line;
}

function stackOf(e: unknown): string {
  const parts: string[] = [];
  let cur: unknown = e;
  for (let depth = 0; cur !== undefined && depth < 5; depth++) {
    parts.push(cur instanceof Error ? (cur.stack ?? String(cur)) : String(cur));
    cur = cur instanceof Error ? cur.cause : undefined;
    if (cur !== undefined) parts.push('caused by:');
  }
  return parts.join('\n');
}

export function formatError(e: unknown, c: ChalkInstance, debug = false): FormattedError {
  if (e instanceof VmmErrors || e instanceof VmmError) {
    const list = e instanceof VmmErrors ? e.errors : [e];
    let text = list.map((x) => formatOne(x, c)).join('\n');
    if (debug) text += '\n' + c.dim(list.map(stackOf).join('\n'));
    const internal = list.length > 0 && list.every((x) => x.code === 'internal');
    return { text, exitCode: internal ? EXIT_INTERNAL : EXIT_BAD_INPUT };
  }
  const message = e instanceof Error ? e.message : String(e);
  let text = `${c.red.bold('vmm: internal error:')} ${message}`;
  text += debug
    ? '\n' + c.dim(stackOf(e))
    : `\n  ${c.cyan('hint:')} run with --log-level debug for the stack trace`;
  return { text, exitCode: EXIT_INTERNAL };
}
