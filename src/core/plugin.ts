/**
 * The plugin contract. A plugin is a definition: a name, what it provides and needs (tokens), a
 * settings schema (zod: typed, with defaults and descriptions; it is also the documentation that
 * `vmm plugins NAME` prints and the source of the machine file's JSON Schema), and a factory.
 * Lifecycle, in order: create (dependency order) -> attach (claim ports, MMIO, IRQs) -> reset ->
 * start (load images) -> run -> stop (flush) -> dispose (reverse order).
 */
import type { z } from 'zod';
import type { Bus } from './bus.js';
import type { HostServices } from './host.js';
import type { Logger } from './log.js';
import type { MachineServices } from './machine-services.js';
import type { StopReason } from './stop.js';
import type { Token } from './token.js';

export type SettingsSchema = z.ZodObject;

export interface PluginContext<Settings> {
  /** Settings after defaults, cosmiconfig defaults and --set overrides, validated. */
  readonly settings: Settings;
  /** Instance name (the `name:` key, or the plugin name). */
  readonly instanceName: string;
  /** Dotted path of this instance in the machine description, e.g. `host.devices[2]`. */
  readonly path: string;
  /** Directory of the machine file that declared this instance (relative file settings resolve here). */
  readonly baseDir: string;
  /** The bus of the section this instance sits in (host or guest). */
  readonly bus: Bus;
  readonly machine: MachineServices;
  readonly host: HostServices;
  readonly log: Logger;
  /** A dependency this plugin declared in `needs` (or `wants`, then possibly undefined). */
  get<T>(token: Token<T>): T;
  tryGet<T>(token: Token<T>): T | undefined;
  /** Supply the value for one provided token (default: the instance returned by create). */
  provide<T>(token: Token<T>, value: T): void;
  /** A set-up error naming this plugin instance and, if given, one of its settings. */
  error(message: string, setting?: string, cause?: unknown): Error;
}

export interface PluginInstance {
  attach?(): void | Promise<void>;
  reset?(): void;
  start?(): void | Promise<void>;
  stop?(reason: StopReason): void | Promise<void>;
  dispose?(): void | Promise<void>;
  /** Counters for `--stats` and the stop summary. */
  stats?(): Record<string, number | string>;
  /** One line for `vmm validate`'s tree (what this instance is wired to). */
  describe?(): string;
}

export interface PluginDefinition<S extends SettingsSchema = SettingsSchema> {
  readonly name: string;
  readonly description: string;
  readonly settings: S;
  readonly provides?: readonly Token<unknown>[];
  readonly needs?: readonly Token<unknown>[];
  /** Optional dependencies: wired when exactly one provider exists. */
  readonly wants?: readonly Token<unknown>[];
  create(ctx: PluginContext<z.output<S>>): PluginInstance | Promise<PluginInstance>;
}

/** Identity function that gives a plugin definition its types. */
export function definePlugin<S extends SettingsSchema>(def: PluginDefinition<S>): PluginDefinition<S> {
  return def;
}

/** Structural check for a module's export (custom plugins are loaded from arbitrary files). */
export function isPluginDefinition(x: unknown): x is PluginDefinition {
  if (typeof x !== 'object' || x === null) return false;
  const d = x as Record<string, unknown>;
  return (
    typeof d.name === 'string' &&
    typeof d.create === 'function' &&
    typeof d.settings === 'object' &&
    d.settings !== null &&
    typeof (d.settings as { safeParse?: unknown }).safeParse === 'function'
  );
}
