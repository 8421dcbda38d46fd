/**
 * A minimal stand-in for the container when testing one device plugin: a bus, a virtual clock, a
 * memory console and log, and a PluginContext over them. Tests then drive the device the way a
 * guest does, through the bus.
 */
import type { z } from 'zod';
import { Bus } from '../../src/core/bus.js';
import { VirtualClock } from '../../src/core/clock.js';
import { MemoryConsole } from '../../src/core/console.js';
import type { HostServices } from '../../src/core/host.js';
import { Logger, MemoryLog } from '../../src/core/log.js';
import type { MachineServices } from '../../src/core/machine-services.js';
import type {
  PluginContext,
  PluginDefinition,
  PluginInstance,
  SettingsSchema,
} from '../../src/core/plugin.js';
import type { StopReason } from '../../src/core/stop.js';
import type { Token } from '../../src/core/token.js';
import { machineSchema } from '../../src/config/machine-schema.js';

export class TestMachine implements MachineServices {
  readonly name = 'test';
  readonly config = machineSchema.parse({ host: {} });
  readonly clock = new VirtualClock();
  readonly hostBus = new Bus('host');
  readonly guestBus = undefined;
  readonly console = new MemoryConsole();
  readonly logs = new MemoryLog();
  readonly log = new Logger(this.logs.sink, 'debug');
  stopReason: StopReason | undefined;
  readonly provided = new Map<symbol, unknown>();

  stop(reason: StopReason): void {
    this.stopReason ??= reason;
  }
  addStats(): void {}

  /** What a token resolves to (a value provided by an added plugin, or one the test set). */
  get<T>(t: Token<T>): T {
    if (!this.provided.has(t.key)) throw new Error(`test harness: nothing provides ${t.name}`);
    return this.provided.get(t.key) as T;
  }

  /** Provide a token's value (e.g. a fake CPU) before adding the plugins that want it. */
  set<T>(t: Token<T>, value: T): void {
    this.provided.set(t.key, value);
  }

  /** Move virtual time forward by `ns` and fire every timer that became due. */
  advance(ns: number): void {
    this.clock.now += ns;
    this.clock.fireDue();
  }

  /** Create, attach and reset one plugin instance with the given settings (defaults applied). */
  async add<S extends SettingsSchema>(
    def: PluginDefinition<S>,
    settings: Partial<z.input<S>> = {},
    name: string = def.name,
  ): Promise<PluginInstance> {
    const parsed = def.settings.parse(settings) as z.output<S>;
    const provided = this.provided;
    const ctx: PluginContext<z.output<S>> = {
      settings: parsed,
      instanceName: name,
      path: `host.devices.${name}`,
      baseDir: '.',
      bus: this.hostBus,
      machine: this,
      host: undefined as unknown as HostServices,
      log: this.log.child(name),
      get<T>(t: Token<T>): T {
        if (!provided.has(t.key)) throw new Error(`test harness: nothing provides ${t.name}`);
        return provided.get(t.key) as T;
      },
      tryGet<T>(t: Token<T>): T | undefined {
        return provided.get(t.key) as T | undefined;
      },
      provide<T>(t: Token<T>, value: T): void {
        provided.set(t.key, value);
      },
      error(message: string, setting?: string): Error {
        return new Error(`plugin ${name}${setting ? ` setting ${setting}` : ''}: ${message}`);
      },
    };
    const inst = await def.create(ctx);
    for (const t of def.provides ?? []) if (!provided.has(t.key)) provided.set(t.key, inst);
    await inst.attach?.();
    inst.reset?.();
    return inst;
  }
}
