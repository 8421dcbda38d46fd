/**
 * The programmatic API: `import { loadMachine } from 'vmm'`. The CLI is built on it, and so are the
 * tests. Custom plugins import `definePlugin`, `z` and `Tokens` from here.
 */
import type { LoadOptions, LoadedMachine, ResolvedPlugin } from './api-types.js';
import { NodeHost } from './host/node-host.js';
import { buildMachine, resolvedOf } from './container/build.js';
import { planMachine } from './container/plan.js';
import { allBuiltins, loadBuiltin } from './container/registry.js';
import { VmmError } from './core/errors.js';
import { describeSchema, objectKeys, schemaAt, typeName } from './config/validate.js';
import type { PluginDefinition } from './core/plugin.js';

export type { LoadOptions, LoadedMachine, ResolvedPlugin, RunOptions, StopReason } from './api-types.js';
export {
  definePlugin,
  type PluginContext,
  type PluginDefinition,
  type PluginInstance,
} from './core/plugin.js';
export { Tokens } from './core/tokens.js';
export { token, type Token } from './core/token.js';
export { VmmError, VmmErrors, isVmmError } from './core/errors.js';
export { exitCodeFor } from './core/stop.js';
export { MemoryConsole, NullConsole, type ConsoleBackend } from './core/console.js';
export { Bus, type MmioDevice, type PortDevice } from './core/bus.js';
export { VirtualClock, Timer } from './core/clock.js';
export { MemoryLog, Logger } from './core/log.js';
export { z, size, port, physAddr, uint } from './config/types.js';
export type { Machine } from './core/machine.js';

/** Resolve a machine file without building it: the validated plan, for `vmm validate`. */
export async function resolveMachine(
  file: string,
  opts: LoadOptions = {},
): Promise<{ file: string; plugins: ResolvedPlugin[]; shorthands: Record<string, string> }> {
  const plan = await planMachine(file, opts);
  return {
    file: plan.file,
    plugins: plan.instances.map(resolvedOf),
    shorthands: plan.config.shorthands ?? {},
  };
}

/** Load, validate, wire and assemble a machine, ready to run. */
export async function loadMachine(file: string, opts: LoadOptions = {}): Promise<LoadedMachine> {
  const plan = await planMachine(file, opts);
  return buildMachine(plan, opts, opts.host ?? new NodeHost());
}

export interface PluginSummary {
  name: string;
  description: string;
  provides: string[];
  needs: string[];
  wants: string[];
}

export interface SettingInfo {
  key: string;
  type: string;
  default?: unknown;
  description?: string;
}

const summary = (d: PluginDefinition): PluginSummary => ({
  name: d.name,
  description: d.description,
  provides: (d.provides ?? []).map((t) => t.name),
  needs: (d.needs ?? []).map((t) => t.name),
  wants: (d.wants ?? []).map((t) => t.name),
});

/** Every built-in plugin. */
export async function listPlugins(): Promise<PluginSummary[]> {
  return (await allBuiltins()).map(summary);
}

/** One built-in plugin with its settings: type, default and description. */
export async function pluginInfo(name: string): Promise<PluginSummary & { settings: SettingInfo[] }> {
  const def = await loadBuiltin(name);
  if (!def)
    throw new VmmError('plugin-not-found', `unknown plugin "${name}"`, { hint: 'vmm plugins lists them' });
  const defaults = def.settings.safeParse({});
  const settings = objectKeys(def.settings).map((key) => {
    const s = schemaAt(def.settings, [key]);
    const info: SettingInfo = { key, type: typeName(s) };
    const dflt = defaults.success ? (defaults.data as Record<string, unknown>)[key] : undefined;
    if (dflt !== undefined) info.default = dflt;
    const desc = describeSchema(s);
    if (desc) info.description = desc;
    return info;
  });
  return { ...summary(def), settings };
}
