/**
 * `vmm up`: load a machine, run it on the terminal, report why it stopped. Everything the command
 * does lives here so tests can call it with their own streams.
 */
import * as fs from 'node:fs';
import type { LoadOptions } from '../api-types.js';
import type { LogLevel } from '../core/log.js';
import { exitCodeFor, type StopReason } from '../core/stop.js';
import { createStderrLogSink, stderrChalk } from '../host/log.js';
import { nodeHost } from '../host/node-host.js';
import { StdioConsole, type InputStream, type OutputStream } from '../host/stdio-console.js';
import { formatError } from './errors.js';
import { defaultMachineFile } from './paths.js';
import { enableExitTiming, parseTraceFlag, startTrace, type TraceOutput } from './trace.js';
import { describeStop, formatStatsTable, formatSummary, statsJson } from './report.js';

/** Where `--stats` goes: a table on stderr, JSON on stdout, or JSON in a file. */
export type StatsOutput = { kind: 'table' } | { kind: 'json'; file?: string };

export interface UpOptions {
  file?: string;
  set?: readonly string[];
  shorthands?: Record<string, string>;
  /** Wall-clock limit in seconds. */
  timeout?: number;
  logLevel?: LogLevel;
  quiet?: boolean;
  stats?: StatsOutput;
  trace?: TraceOutput;
  clock?: 'deterministic' | 'realtime';
  /** Skip cosmiconfig user defaults. */
  noUserConfig?: boolean;
}

export interface UpIo {
  stdin?: InputStream;
  stdout?: OutputStream & { write(data: Uint8Array | string): unknown };
  stderr?: { write(s: string): unknown };
  color?: boolean;
  /** Install SIGINT/SIGTERM/SIGHUP handlers and an exit hook (the CLI does; tests calling in-process don't). */
  signals?: boolean;
}

/** Parse the `--stats` flag's value: `table` (bare flag), `json`, or `json=FILE`. */
export function parseStatsFlag(v: string | undefined): StatsOutput | undefined {
  if (v === undefined) return undefined;
  if (v === '' || v === 'table') return { kind: 'table' };
  if (v === 'json') return { kind: 'json' };
  if (v.startsWith('json=') && v.length > 5) return { kind: 'json', file: v.slice(5) };
  throw new Error(`--stats takes no value, 'table', 'json' or 'json=FILE' (got '${v}')`);
}

/** Shorthand flags (`--kernel X`) as LoadOptions.shorthands, leaving out the ones not given. */
export function collectShorthands(flags: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(flags)) if (v !== undefined) out[k] = v;
  return out;
}

/** `--timeout SECONDS`: a positive number. */
export function parseTimeout(s: string): number {
  const n = Number(s);
  if (s.trim() === '' || !Number.isFinite(n) || n <= 0)
    throw new Error(`--timeout expects a positive number of seconds, got '${s}'`);
  return n;
}

/** The flags of `vmm up` once parsed (by oclif, or by the fast path in fast-up.ts). */
export interface UpFlags {
  set?: string[];
  timeout?: string;
  'log-level'?: LogLevel;
  quiet?: boolean;
  stats?: string;
  trace?: string;
  clock?: 'deterministic' | 'realtime';
  kernel?: string;
  append?: string;
  initrd?: string;
  disk?: string;
  'no-user-config'?: boolean;
}

/** Parsed flags -> UpOptions. Throws an Error with a usage message for a bad `--stats` or `--timeout`. */
export function upOptions(file: string | undefined, f: UpFlags): UpOptions {
  return {
    file,
    set: f.set ?? [],
    shorthands: collectShorthands({ kernel: f.kernel, append: f.append, initrd: f.initrd, disk: f.disk }),
    timeout: f.timeout === undefined ? undefined : parseTimeout(f.timeout),
    logLevel: f['log-level'],
    quiet: f.quiet ?? false,
    stats: parseStatsFlag(f.stats),
    trace: parseTraceFlag(f.trace),
    clock: f.clock,
    noUserConfig: f['no-user-config'] ?? false,
  };
}

/** Run `vmm up`; resolves with the process exit code. */
export async function runUp(opts: UpOptions, io: UpIo = {}): Promise<number> {
  const stderr = io.stderr ?? process.stderr;
  const stdout = io.stdout ?? process.stdout;
  const c = stderrChalk(io.color);
  const logLevel: LogLevel = opts.logLevel ?? (opts.quiet ? 'warn' : 'info');
  const debug = logLevel === 'debug' || logLevel === 'trace';
  const file = opts.file ?? defaultMachineFile();

  let quit: () => void = () => {};
  const console_ = new StdioConsole({
    stdin: io.stdin,
    stdout,
    stderr,
    onQuit: () => quit(),
  });

  const cleanups: (() => void)[] = [];
  const cleanup = () => {
    for (const f of cleanups.splice(0)) f();
  };

  let loaded;
  try {
    const { loadMachine } = await import('../index.js');
    const load: LoadOptions = {
      set: opts.set ?? [],
      shorthands: opts.shorthands ?? {},
      console: console_,
      logSink: createStderrLogSink({ stream: stderr, color: io.color }),
      logLevel,
      host: nodeHost,
      noUserConfig: opts.noUserConfig,
    };
    if (opts.clock) load.clock = opts.clock;
    loaded = await loadMachine(file, load);
  } catch (e) {
    const f = formatError(e, c, debug);
    stderr.write(f.text + '\n');
    return f.exitCode;
  }

  const machine = loaded.machine;
  quit = () => machine.stop({ kind: 'quit' });
  if (opts.stats) enableExitTiming(loaded);
  if (opts.trace) {
    const t = await startTrace(loaded, opts.trace, stderr);
    if (typeof t === 'string') {
      stderr.write(`${c.red.bold('vmm: error:')} ${t}\n`);
      await loaded.dispose().catch(() => {});
      return 2;
    }
    cleanups.push(() => t.close());
  }

  if (io.signals) {
    let interrupts = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      interrupts++;
      if (interrupts > 1) {
        // The machine did not stop on the first request (stuck in a hook): give up now.
        console_.restoreTerminal();
        process.exit(sig === 'SIGINT' ? 130 : 143);
      }
      machine.stop({ kind: 'quit' });
    };
    const onExit = () => console_.restoreTerminal();
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.on(s, onSignal);
      cleanups.push(() => process.off(s, onSignal));
    }
    process.on('exit', onExit);
    cleanups.push(() => process.off('exit', onExit));
  }

  let reason: StopReason;
  try {
    console_.start();
    const runOpts = opts.timeout === undefined ? {} : { wallTimeoutMs: opts.timeout * 1000 };
    reason = await loaded.run(runOpts);
  } catch (e) {
    console_.close();
    cleanup();
    const f = formatError(e, c, debug);
    stderr.write(f.text + '\n');
    await loaded.dispose().catch(() => {});
    return f.exitCode;
  }
  console_.close();
  cleanup();

  const code = exitCodeFor(reason);
  // On a terminal, stdout and stderr share the screen: start host lines on a line of their own.
  const tty = (s: unknown) => (s as { isTTY?: boolean }).isTTY === true;
  if (tty(stdout) && tty(stderr) && console_.lastByte >= 0 && console_.lastByte !== 0x0a) stderr.write('\n');
  const stats = loaded.stats();
  if (reason.kind === 'fault' && reason.state) stderr.write(reason.state.replace(/\n?$/, '\n'));
  if (reason.kind === 'plugin-error') {
    const f = formatError(reason.error, c, debug);
    stderr.write(`${c.red.bold('vmm: error:')} ${describeStop(reason)}\n`);
    if (debug) stderr.write(f.text + '\n');
  }
  if (!opts.quiet) stderr.write(`${c.cyan('vmm:')} ${formatSummary(reason, stats)}\n`);
  if (opts.stats?.kind === 'table') stderr.write(formatStatsTable(stats) + '\n');
  else if (opts.stats?.kind === 'json') {
    const json = statsJson(reason, code, stats);
    if (opts.stats.file) {
      try {
        fs.writeFileSync(opts.stats.file, json);
      } catch (e) {
        stderr.write(
          `${c.red.bold('vmm: error:')} cannot write ${opts.stats.file}: ${(e as Error).message}\n`,
        );
      }
    } else stdout.write(json);
  }
  try {
    await loaded.dispose();
  } catch (e) {
    stderr.write(formatError(e, c, debug).text + '\n');
  }
  return code;
}
