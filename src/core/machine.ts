/**
 * A machine: the buses, the virtual clock, the console, the plugin instances, and the run loop.
 * The container (src/container) builds one from a resolved machine description.
 */
import { Bus } from './bus.js';
import { VirtualClock, type ClockMode } from './clock.js';
import type { ConsoleBackend } from './console.js';
import type { CpuCore } from './cpu.js';
import { VmmError } from './errors.js';
import type { HostServices } from './host.js';
import type { Logger } from './log.js';
import type { MachineServices } from './machine-services.js';
import type { PluginDefinition, PluginInstance } from './plugin.js';
import type { StopReason } from './stop.js';
import type { MachineConfig } from '../config/machine-schema.js';

export interface PluginRecord {
  readonly definition: PluginDefinition;
  readonly instanceName: string;
  /** Dotted path in the machine description. */
  readonly path: string;
  /** Where the instance was declared (its `plugin:` key), for error messages. */
  readonly where: { file: string; line: number; col: number };
  readonly settings: Record<string, unknown>;
  readonly instance: PluginInstance;
  /** Token names this instance was wired to: need -> provider instance name. */
  readonly wiring: Record<string, string>;
}

export interface MachineOptions {
  name: string;
  clockMode: ClockMode;
  console: ConsoleBackend;
  log: Logger;
  host: HostServices;
  withGuest: boolean;
  /** The validated machine description. */
  config: MachineConfig;
}

export interface RunOptions {
  /** Stop after this much wall time (ms). */
  wallTimeoutMs?: number;
  /** Stop when virtual time reaches this (ns). */
  virtualTimeoutNs?: number;
  /** Longest stretch of virtual time the CPU runs before the loop looks around (ns). */
  sliceNs?: number;
  /** How often (wall ms) the loop gives Node's event loop a turn (console input, signals). */
  yieldEveryMs?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const turn = () => new Promise<void>((r) => setImmediate(r));

export class Machine implements MachineServices {
  readonly name: string;
  readonly clock: VirtualClock;
  readonly hostBus: Bus;
  readonly guestBus: Bus | undefined;
  readonly console: ConsoleBackend;
  readonly log: Logger;
  readonly host: HostServices;
  readonly config: MachineConfig;
  cpu: CpuCore | undefined;
  readonly plugins: PluginRecord[] = [];
  private readonly statSources: { section: string; read: () => Record<string, number | string> }[] = [];
  private _stopReason: StopReason | undefined;
  /** Wall time spent in run(), ms. */
  wallMs = 0;
  private started = false;

  constructor(opts: MachineOptions) {
    this.name = opts.name;
    this.clock = new VirtualClock(opts.clockMode);
    this.hostBus = new Bus('host');
    this.guestBus = opts.withGuest ? new Bus('guest') : undefined;
    this.console = opts.console;
    this.log = opts.log;
    this.host = opts.host;
    this.config = opts.config;
    const warnUnmapped = (m: string) => this.log.warn(m);
    this.hostBus.onUnmapped = warnUnmapped;
    if (this.guestBus) this.guestBus.onUnmapped = warnUnmapped;
    this.clock.setEarlierListener(() => this.cpu?.requestExit());
  }

  get stopReason(): StopReason | undefined {
    return this._stopReason;
  }

  stop(reason: StopReason): void {
    if (this._stopReason) return;
    this._stopReason = reason;
    this.cpu?.requestExit();
  }

  addStats(section: string, read: () => Record<string, number | string>): void {
    this.statSources.push({ section, read });
  }

  /** Every counter: the core's own, then each plugin's, then the extra sources. */
  stats(): Record<string, Record<string, number | string>> {
    const out: Record<string, Record<string, number | string>> = {};
    out.machine = {
      virtualNs: this.clock.now,
      wallMs: Math.round(this.wallMs),
      instructions: this.cpu?.instructionsRetired ?? 0,
    };
    for (const [bus, b] of [
      ['host-bus', this.hostBus],
      ['guest-bus', this.guestBus],
    ] as const) {
      if (b) out[bus] = { ...b.stats };
    }
    for (const p of this.plugins) {
      const s = p.instance.stats?.();
      if (s && Object.keys(s).length > 0) out[p.instanceName] = s;
    }
    for (const s of this.statSources) out[s.section] = { ...(out[s.section] ?? {}), ...s.read() };
    return out;
  }

  /** Call one lifecycle hook on every instance (reverse order for stop/dispose); errors name the plugin. */
  async callHook(hook: 'attach' | 'start' | 'stop' | 'dispose', reason?: StopReason): Promise<void> {
    const order = hook === 'stop' || hook === 'dispose' ? [...this.plugins].reverse() : this.plugins;
    for (const p of order) {
      const fn = p.instance[hook];
      if (!fn) continue;
      try {
        await fn.call(p.instance, reason as StopReason);
      } catch (e) {
        throw wrapPluginError(p, hook, e);
      }
    }
  }

  reset(): void {
    for (const p of this.plugins) {
      try {
        p.instance.reset?.();
      } catch (e) {
        throw wrapPluginError(p, 'reset', e);
      }
    }
    this.cpu?.reset();
  }

  /** Attach, reset and start every plugin (the container calls this once). */
  async assemble(): Promise<void> {
    await this.callHook('attach');
    this.reset();
  }

  /** Run until a stop reason. Calls the plugins' start hooks first and their stop hooks at the end. */
  async run(opts: RunOptions = {}): Promise<StopReason> {
    if (this.started) throw new VmmError('internal', 'a machine runs once; build a new one to run again');
    this.started = true;
    const sliceNs = opts.sliceNs ?? 1_000_000;
    const yieldEvery = opts.yieldEveryMs ?? 20;
    const vLimit = opts.virtualTimeoutNs ?? Infinity;
    const wallStart = this.host.wallMs();
    const wallLimit = opts.wallTimeoutMs === undefined ? Infinity : wallStart + opts.wallTimeoutMs;
    const realtime = this.clock.mode === 'realtime';
    const vStart = this.clock.now;
    let lastYield = wallStart;
    // A plugin that cannot start (a missing or broken image) is bad input, not a guest event:
    // the caller gets the error, naming the plugin, and the machine never runs.
    await this.callHook('start');
    const clock = this.clock;
    const cpu = this.cpu;
    while (!this._stopReason) {
      const deadline = Math.min(clock.nextDeadline(), clock.now + sliceNs, vLimit);
      try {
        if (cpu && !cpu.halted) cpu.run(deadline);
        else if (clock.nextDeadline() !== Infinity || vLimit !== Infinity) {
          // Halted (or no CPU): nothing runs until the next event, so time jumps there (in realtime
          // mode the pacing below makes the jump take its wall time).
          clock.now = Math.max(clock.now, Math.min(clock.nextDeadline(), vLimit));
        }
        clock.fireDue();
      } catch (e) {
        this.stop(pluginErrorReason(e));
        break;
      }
      if (clock.now >= vLimit) {
        this.stop({ kind: 'timeout', virtualNs: clock.now, wallMs: this.host.wallMs() - wallStart });
        break;
      }
      const wall = this.host.wallMs();
      if (wall >= wallLimit) {
        this.stop({ kind: 'timeout', virtualNs: clock.now, wallMs: wall - wallStart });
        break;
      }
      const idle = (!cpu || cpu.halted) && clock.nextDeadline() === Infinity;
      if (idle) {
        if (this.console.inputEnded && vLimit === Infinity && wallLimit === Infinity) {
          this.stop({ kind: 'idle', message: 'the CPU is halted with no timer armed and no input to come' });
          break;
        }
        await sleep(5); // wait for input (the console's handler wakes the CPU through its IRQ)
        lastYield = this.host.wallMs();
        continue;
      }
      if (realtime) {
        const ahead = (clock.now - vStart) / 1e6 - (wall - wallStart);
        if (ahead > 2) {
          await sleep(Math.min(ahead, 50));
          lastYield = this.host.wallMs();
          continue;
        }
      }
      if (wall - lastYield >= yieldEvery) {
        await turn();
        lastYield = this.host.wallMs();
      }
    }
    this.wallMs += this.host.wallMs() - wallStart;
    const reason = this._stopReason!;
    try {
      await this.callHook('stop', reason);
    } catch (e) {
      this.log.error(e instanceof VmmError ? e.format() : String(e));
    }
    return reason;
  }

  async dispose(): Promise<void> {
    await this.callHook('dispose');
  }
}

function pluginErrorReason(e: unknown): StopReason {
  if (e instanceof PluginHookError)
    return { kind: 'plugin-error', plugin: e.plugin, hook: e.hook, error: e.cause };
  return { kind: 'plugin-error', plugin: '(unknown)', hook: 'run', error: e };
}

/** A failure inside a plugin's hook, naming the plugin instance and the hook. */
export class PluginHookError extends VmmError {
  readonly plugin: string;
  readonly hook: string;
  constructor(p: PluginRecord, hook: string, cause: unknown) {
    const inner =
      cause instanceof VmmError ? cause.format() : cause instanceof Error ? cause.message : String(cause);
    const w = p.where;
    super('plugin-hook', `${p.instanceName} (${p.definition.name}, ${p.path}) failed in ${hook}: ${inner}`, {
      cause,
      location: {
        file: w.file,
        ...(w.line > 0 ? { line: w.line, col: w.col } : {}),
        plugin: p.instanceName,
        path: p.path,
      },
    });
    this.plugin = p.instanceName;
    this.hook = hook;
  }
}

export function wrapPluginError(p: PluginRecord, hook: string, e: unknown): VmmError {
  if (e instanceof PluginHookError) return e;
  if (e instanceof VmmError && e.location?.file) return e;
  return new PluginHookError(p, hook, e);
}
