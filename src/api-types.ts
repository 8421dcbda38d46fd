/**
 * The programmatic API's types (`import { loadMachine } from 'vmm'`), used by the CLI and the tests.
 */
import type { ConsoleBackend } from './core/console.js';
import type { HostServices } from './core/host.js';
import type { LogLevel, LogSink } from './core/log.js';
import type { Machine, RunOptions } from './core/machine.js';
import type { StopReason } from './core/stop.js';
import type { Token } from './core/token.js';

export interface LoadOptions {
  /** `--set path.to.key=value` overrides, applied after the file, its `extends` chain and user defaults. */
  set?: readonly string[];
  /**
   * Flag shorthands the machine file declares (`shorthands: { kernel: host.boot.kernel }`), given
   * as name -> value: `{ kernel: 'bench.elf' }` acts as `--set host.boot.kernel=bench.elf`.
   */
  shorthands?: Readonly<Record<string, string>>;
  /** Where `console: stdio` goes. Default: a MemoryConsole. */
  console?: ConsoleBackend;
  /** Host messages. Default: collected in memory. */
  logSink?: LogSink;
  logLevel?: LogLevel;
  /** Host file access. Default: Node's fs (src/host/node-host.ts). */
  host?: HostServices;
  /** Directory to search for cosmiconfig user defaults (`.vmmrc.yaml`, package.json "vmm"). Default: cwd. */
  configSearchFrom?: string;
  /** Skip loading user defaults (tests). */
  noUserConfig?: boolean;
  /** Clock mode override (`realtime` for interactive use). */
  clock?: 'deterministic' | 'realtime';
}

export interface ResolvedPlugin {
  /** Dotted path, e.g. `host.devices[1]`. */
  path: string;
  /** Instance name. */
  name: string;
  /** Plugin name (built-in) or the module path/package that provided it. */
  plugin: string;
  section: 'host' | 'vmm' | 'guest';
  settings: Record<string, unknown>;
  /** need token name -> providing instance name (absent for unmet optional wants). */
  wiring: Record<string, string>;
  provides: string[];
}

export interface LoadedMachine {
  readonly file: string;
  readonly machine: Machine;
  readonly plugins: readonly ResolvedPlugin[];
  /** Run to a stop reason (calls start hooks, runs, calls stop hooks). */
  run(opts?: RunOptions): Promise<StopReason>;
  /** The value a plugin provides for a token (the first provider, in declaration order), if any. */
  provided<T>(token: Token<T>): T | undefined;
  /** Per-section counters (machine core, buses, each plugin). */
  stats(): Record<string, Record<string, number | string>>;
  dispose(): Promise<void>;
}

export type { RunOptions, StopReason };
