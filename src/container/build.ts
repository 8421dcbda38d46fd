/**
 * From a plan to a running machine: a tsyringe child container per machine holds every plugin
 * instance under its own key; each instance is created in dependency order with a context whose
 * `get(token)` resolves the provider the plan wired it to. Then attach and reset.
 */
import 'reflect-metadata';
import { container as rootContainer, type DependencyContainer } from 'tsyringe';
import type { LoadOptions, LoadedMachine, ResolvedPlugin } from '../api-types.js';
import { MemoryConsole } from '../core/console.js';
import { VmmError } from '../core/errors.js';
import type { HostServices } from '../core/host.js';
import { Logger, MemoryLog } from '../core/log.js';
import { Machine, wrapPluginError, type PluginRecord } from '../core/machine.js';
import type { PluginContext, PluginInstance } from '../core/plugin.js';
import type { Token } from '../core/token.js';
import { Tokens } from '../core/tokens.js';
import type { MachinePlan, PlannedInstance } from './plan.js';

/** The RAM below 4 GiB ends here on a q35-like machine (the rest goes above 4 GiB). */
const LOW_RAM_LIMIT = 0xb000_0000;
const FOUR_GIB = 2 ** 32;

const instanceKey = (name: string, tok: Token<unknown>) => Symbol.for(`vmm:instance:${name}:${tok.name}`);
const MACHINE_KEY = Symbol.for('vmm:machine');

export async function buildMachine(
  plan: MachinePlan,
  opts: LoadOptions,
  host: HostServices,
): Promise<LoadedMachine> {
  const log = new Logger(opts.logSink ?? new MemoryLog().sink, opts.logLevel ?? 'info');
  const machine = new Machine({
    name: plan.config.name ?? plan.file,
    clockMode: opts.clock ?? plan.config.clock.mode,
    console: opts.console ?? new MemoryConsole(),
    log,
    host,
    withGuest: plan.config.guest !== undefined,
    config: plan.config,
  });

  const mem = plan.config.host.memory;
  if (mem > 0) {
    machine.hostBus.addRam('host-ram', 0, Math.min(mem, LOW_RAM_LIMIT));
    if (mem > LOW_RAM_LIMIT) machine.hostBus.addRam('host-ram-high', FOUR_GIB, mem - LOW_RAM_LIMIT);
  }

  const di: DependencyContainer = rootContainer.createChildContainer();
  di.register(MACHINE_KEY, { useValue: machine });

  for (const inst of plan.instances) {
    const record = await createInstance(inst, machine, host, di);
    machine.plugins.push(record);
  }

  const cpuProvider = plan.instances.find(
    (i) => i.section === 'host' && (i.definition.provides ?? []).some((t) => t.key === Tokens.Cpu.key),
  );
  if (cpuProvider) machine.cpu = di.resolve(instanceKey(cpuProvider.name, Tokens.Cpu));

  try {
    await machine.assemble();
  } catch (e) {
    await machine.dispose().catch(() => undefined);
    throw e;
  }

  const plugins = plan.instances.map(resolvedOf);
  return {
    file: plan.file,
    machine,
    plugins,
    run: (o) => machine.run(o),
    provided<T>(tok: Token<T>): T | undefined {
      const p = plan.instances.find((i) => (i.definition.provides ?? []).some((t) => t.key === tok.key));
      return p ? di.resolve<T>(instanceKey(p.name, tok)) : undefined;
    },
    stats: () => machine.stats(),
    dispose: () => machine.dispose(),
  };
}

async function createInstance(
  inst: PlannedInstance,
  machine: Machine,
  host: HostServices,
  di: DependencyContainer,
): Promise<PluginRecord> {
  const provided = new Map<symbol, unknown>();
  const declared = inst.definition.provides ?? [];
  const wiredTo = (tok: Token<unknown>) => inst.wiring.get(tok.name);
  const bus = inst.section === 'guest' ? machine.guestBus! : machine.hostBus;
  const where = inst.pos;
  const ctx: PluginContext<Record<string, unknown>> = {
    settings: inst.settings,
    instanceName: inst.name,
    path: inst.pathText,
    baseDir: inst.baseDir,
    bus,
    machine,
    host,
    log: machine.log.child(inst.name),
    get<T>(tok: Token<T>): T {
      const v = this.tryGet(tok);
      if (v === undefined) {
        throw new VmmError(
          'wiring-missing',
          `${inst.name} asked for ${tok.name}, which it did not declare in needs/wants or which no plugin provides`,
        );
      }
      return v;
    },
    tryGet<T>(tok: Token<T>): T | undefined {
      const p = wiredTo(tok);
      if (!p) return undefined;
      const key = instanceKey(p.name, tok);
      return di.isRegistered(key) ? di.resolve<T>(key) : undefined;
    },
    provide<T>(tok: Token<T>, value: T): void {
      if (!declared.some((d) => d.key === tok.key)) {
        throw new VmmError(
          'plugin-invalid',
          `${inst.name} provides ${tok.name}, which its definition does not declare`,
        );
      }
      provided.set(tok.key, value);
    },
    error(message: string, setting?: string, cause?: unknown): Error {
      return new VmmError(
        'plugin-invalid',
        `${inst.name} (${inst.definition.name})${setting ? `, setting ${setting}` : ''}: ${message}`,
        {
          location: {
            file: inst.pos.file,
            ...(inst.pos.line > 0 ? { line: inst.pos.line, col: inst.pos.col } : {}),
            plugin: inst.name,
            ...(setting ? { path: `${inst.pathText}.${setting}` } : {}),
          },
          cause,
        },
      );
    },
  };
  const stub = {
    definition: inst.definition,
    instanceName: inst.name,
    path: inst.pathText,
    where,
    settings: inst.settings,
    instance: {},
    wiring: {},
  } as PluginRecord;
  let instance: PluginInstance;
  try {
    instance = await inst.definition.create(ctx);
  } catch (e) {
    if (e instanceof VmmError && e.location?.file) throw e;
    throw wrapPluginError(stub, 'create', e);
  }
  if (typeof instance !== 'object' || instance === null) {
    throw wrapPluginError(stub, 'create', new Error('create() returned no instance object'));
  }
  for (const tok of declared) {
    di.register(instanceKey(inst.name, tok), {
      useValue: provided.has(tok.key) ? provided.get(tok.key) : instance,
    });
  }
  const wiring: Record<string, string> = {};
  for (const [k, v] of inst.wiring) wiring[k] = v.name;
  return { ...stub, instance, wiring };
}

export function resolvedOf(i: PlannedInstance): ResolvedPlugin {
  const wiring: Record<string, string> = {};
  for (const [k, v] of i.wiring) wiring[k] = v.name;
  return {
    path: i.pathText,
    name: i.name,
    plugin: i.origin === 'built-in' ? i.definition.name : `${i.definition.name} (${i.ref})`,
    section: i.section,
    settings: i.settings,
    wiring,
    provides: (i.definition.provides ?? []).map((t) => t.name),
  };
}
