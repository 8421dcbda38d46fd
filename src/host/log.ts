/**
 * The CLI's LogSink: host messages as `vmm: message` lines on stderr (never stdout, which belongs
 * to the guest's console), coloured by level when stderr is a terminal.
 */
import { Chalk, chalkStderr, type ChalkInstance } from 'chalk';
import type { LogLevel, LogSink } from '../core/log.js';

export interface StderrLogOptions {
  /** Where lines go (default process.stderr). */
  stream?: { write(s: string): unknown };
  /** Force colours on or off (default: chalk's detection for stderr, which honours NO_COLOR/FORCE_COLOR). */
  color?: boolean;
}

export function formatLogLine(c: ChalkInstance, level: LogLevel, source: string, message: string): string {
  const from = source && source !== 'vmm' ? `${source}: ` : '';
  switch (level) {
    case 'error':
      return `${c.red.bold('vmm: error:')} ${from}${message}`;
    case 'warn':
      return `${c.yellow('vmm: warning:')} ${from}${message}`;
    case 'info':
      return `${c.cyan('vmm:')} ${from}${message}`;
    case 'debug':
    case 'trace':
      return c.dim(`vmm: ${level}: ${from}${message}`);
  }
}

export function stderrChalk(color?: boolean): ChalkInstance {
  if (color === undefined) return chalkStderr;
  return new Chalk({ level: color ? 1 : 0 });
}

export function createStderrLogSink(opts: StderrLogOptions = {}): LogSink {
  const stream = opts.stream ?? process.stderr;
  const c = stderrChalk(opts.color);
  return (level, source, message) => {
    stream.write(formatLogLine(c, level, source, message) + '\n');
  };
}
