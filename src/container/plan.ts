/**
 * From a machine file to a plan: the merged description, every plugin instance with its definition
 * and validated settings, and the wiring (each need -> one provider). Every problem is collected
 * and reported at once, each with its file position. Nothing here has side effects.
 */
import { dirname, resolve as resolvePath } from 'node:path';
import type { z } from 'zod';
import { VmmError, VmmErrors, displayPath } from '../core/errors.js';
import type { PluginDefinition } from '../core/plugin.js';
import type { Token } from '../core/token.js';
import { applySet, loadWithExtends, parseSet } from '../config/load.js';
import {
  fromPlain,
  getNode,
  locate,
  toPlain,
  type LMap,
  type LNode,
  type PathSeg,
  type Pos,
} from '../config/located.js';
import { INSTANCE_SLOTS, machineSchema, type MachineConfig, type Section } from '../config/machine-schema.js';
import { mergeNodes } from '../config/merge.js';
import { nearest } from '../config/suggest.js';
import { EMPTY_USER_CONFIG, loadUserConfig, type UserConfig } from '../config/user.js';
import { issuesToErrors, schemaAt, typeName } from '../config/validate.js';
import { allBuiltins, builtinNames, isPathRef, loadPlugin } from './registry.js';

export interface PlannedInstance {
  readonly path: readonly PathSeg[];
  readonly pathText: string;
  readonly section: Section;
  readonly name: string;
  readonly ref: string;
  readonly definition: PluginDefinition;
  readonly origin: string;
  readonly settings: Record<string, unknown>;
  readonly baseDir: string;
  /** Position of the `plugin:` value. */
  readonly pos: Pos;
  /** token name -> providing instance */
  readonly wiring: Map<string, PlannedInstance>;
}

export interface MachinePlan {
  readonly file: string;
  readonly config: MachineConfig;
  readonly instances: readonly PlannedInstance[];
  readonly userConfig: UserConfig;
}

export interface PlanOptions {
  set?: readonly string[];
  shorthands?: Readonly<Record<string, string>>;
  configSearchFrom?: string;
  noUserConfig?: boolean;
}

/** Sections a need looks in, in order; the first section with a provider decides. */
const LOOKUP: Record<Section, Section[]> = {
  host: ['host', 'vmm'],
  vmm: ['vmm', 'guest', 'host'],
  guest: ['guest', 'vmm', 'host'],
};

const toLocation = (pos: Pos) =>
  pos.line > 0 ? { file: pos.file, line: pos.line, col: pos.col } : { file: pos.file };

export async function planMachine(file: string, opts: PlanOptions = {}): Promise<MachinePlan> {
  const abs = resolvePath(file);
  let userConfig = EMPTY_USER_CONFIG;
  if (!opts.noUserConfig) {
    try {
      userConfig = await loadUserConfig(opts.configSearchFrom ?? process.cwd());
    } catch (e) {
      throw asErrors(e);
    }
  }

  let root: LNode;
  try {
    root = loadWithExtends(abs);
  } catch (e) {
    throw asErrors(e);
  }

  // Shorthand flags become --set overrides through the machine's `shorthands:` table.
  const sets = [...(opts.shorthands ? shorthandSets(root, opts.shorthands) : []), ...(opts.set ?? [])];
  for (const raw of sets) root = applySet(root, parseSet(raw));

  const errors: VmmError[] = [];
  const plain = toPlain(root);
  const parsed = machineSchema.safeParse(plain, { reportInput: true });
  if (!parsed.success) {
    errors.push(
      ...issuesToErrors(parsed.error.issues, { root, base: [], keyWord: 'key', schema: machineSchema }),
    );
  }

  // Collect instances from the slots.
  interface Raw {
    path: PathSeg[];
    section: Section;
    node: LMap;
  }
  const raws: Raw[] = [];
  for (const s of INSTANCE_SLOTS) {
    const n = getNode(root, [s.section, s.key]);
    if (!n) continue;
    if (s.list && n.kind === 'seq') {
      n.items.forEach((item, i) => {
        if (item.kind === 'map') raws.push({ path: [s.section, s.key, i], section: s.section, node: item });
      });
    } else if (!s.list && n.kind === 'map') {
      raws.push({ path: [s.section, s.key], section: s.section, node: n });
    }
  }

  const instances: PlannedInstance[] = [];
  const byName = new Map<string, PlannedInstance>();
  const knownBuiltins = builtinNames();
  const planOne = async (r: Raw): Promise<void> => {
    const pluginNode = r.node.entries.get('plugin')?.value;
    if (pluginNode?.kind !== 'scalar' || typeof pluginNode.value !== 'string') return; // schema reported it
    const ref = pluginNode.value;
    const baseDir = pluginNode.pos.file.startsWith('--set') ? dirname(abs) : dirname(pluginNode.pos.file);
    let definition: PluginDefinition;
    let origin: string;
    try {
      ({ definition, origin } = await loadPlugin(ref, baseDir, userConfig.pluginDirs));
    } catch (e) {
      if (e instanceof VmmError) {
        const near =
          !isPathRef(ref) && e.code === 'plugin-not-found' ? nearest(ref, knownBuiltins) : undefined;
        errors.push(
          new VmmError(e.code, e.message, {
            location: toLocation(pluginNode.pos),
            hint: near
              ? `did you mean "${near}"? (vmm plugins lists them)`
              : (e.hint ??
                (e.code === 'plugin-not-found' && !isPathRef(ref)
                  ? 'vmm plugins lists the built-in plugins'
                  : undefined)),
            cause: e.cause,
          }),
        );
        return;
      }
      throw e;
    }
    const nameNode = r.node.entries.get('name')?.value;
    const name =
      nameNode?.kind === 'scalar' && typeof nameNode.value === 'string' ? nameNode.value : definition.name;

    // Settings: plugin defaults < user defaults < machine file (with extends and --set).
    let node: LNode = r.node;
    const userDefaults = userConfig.defaults[definition.name];
    if (userDefaults) {
      const defPos = userConfig.root
        ? locate(userConfig.root, ['defaults', definition.name])
        : { file: userConfig.file ?? 'user configuration', line: 0, col: 0 };
      node = mergeNodes(fromPlain(userDefaults, defPos), node);
    }
    const schema = strictOf(definition.settings);
    node = finishValues(node, schema);
    const settingsPlain = toPlain(node) as Record<string, unknown>;
    delete settingsPlain.plugin;
    delete settingsPlain.name;
    delete settingsPlain.remove;
    const res = schema.safeParse(settingsPlain, { reportInput: true });
    const pathText = formatPathText(r.path);
    if (!res.success) {
      errors.push(
        ...issuesToErrors(res.error.issues, {
          root: withNode(root, r.path, node),
          base: r.path,
          keyWord: 'setting',
          subject: `${definition.name} (${pathText})`,
          schema,
          plugin: name,
        }),
      );
      return;
    }
    instances.push({
      path: r.path,
      pathText,
      section: r.section,
      name,
      ref,
      definition,
      origin,
      settings: res.data as Record<string, unknown>,
      baseDir,
      pos: pluginNode.pos,
      wiring: new Map(),
    });
  };
  // One at a time, in declaration order: a module loader (jiti) may hand a half-initialised module
  // to concurrent imports of the same file.
  for (const r of raws) await planOne(r);

  for (const inst of instances) {
    const prior = byName.get(inst.name);
    if (prior) {
      errors.push(
        new VmmError(
          'config-invalid',
          `two plugin instances are named "${inst.name}" (the other is ${prior.pathText} at ${fmtPos(prior.pos)})`,
          { location: toLocation(inst.pos), hint: 'give one of them a different name: key' },
        ),
      );
    } else byName.set(inst.name, inst);
  }

  // Wiring.
  for (const inst of instances) {
    const needs = [
      ...(inst.definition.needs ?? []).map((t) => [t, true] as const),
      ...(inst.definition.wants ?? []).map((t) => [t, false] as const),
    ];
    for (const [tok, required] of needs) {
      let found: PlannedInstance[] = [];
      for (const sec of LOOKUP[inst.section]) {
        found = instances.filter((p) => p !== inst && p.section === sec && provides(p.definition, tok));
        if (found.length > 0) break;
      }
      if (found.length === 1) inst.wiring.set(tok.name, found[0]!);
      else if (found.length === 0 && required) {
        errors.push(
          new VmmError(
            'wiring-missing',
            `${inst.name} (${inst.pathText}) needs ${article(tok.name)} (${tok.description}), but no plugin in this machine provides one`,
            { location: toLocation(inst.pos), hint: await providerHint(tok) },
          ),
        );
      } else if (found.length > 1) {
        const list = found.map((f) => `${f.name} (${f.pathText})`).join(' and ');
        errors.push(
          new VmmError(
            'wiring-ambiguous',
            `${inst.name} (${inst.pathText}) needs one ${tok.name}, but ${found.length} plugins provide one: ${list}`,
            {
              location: toLocation(inst.pos),
              hint: 'remove one of them, or move one into another section',
            },
          ),
        );
      }
    }
  }

  // Cycles.
  const state = new Map<PlannedInstance, 1 | 2>();
  const stack: PlannedInstance[] = [];
  const reported = new Set<string>();
  const visit = (n: PlannedInstance): void => {
    if (state.get(n) === 2) return;
    if (state.get(n) === 1) {
      const cyc = [...stack.slice(stack.indexOf(n)), n];
      const key = cyc
        .map((c) => c.name)
        .sort()
        .join();
      if (!reported.has(key)) {
        reported.add(key);
        errors.push(
          new VmmError('wiring-cycle', `dependency cycle: ${cyc.map((c) => c.name).join(' -> ')}`, {
            location: toLocation(cyc[0]!.pos),
            hint: 'a plugin cannot need, directly or indirectly, something it provides',
          }),
        );
      }
      return;
    }
    state.set(n, 1);
    stack.push(n);
    for (const dep of n.wiring.values()) visit(dep);
    stack.pop();
    state.set(n, 2);
  };
  instances.forEach(visit);

  if (errors.length > 0) throw new VmmErrors(sortErrors(errors));
  return { file: abs, config: parsed.data!, instances: topoOrder(instances), userConfig };
}

function provides(def: PluginDefinition, tok: Token<unknown>): boolean {
  return (def.provides ?? []).some((p) => p.key === tok.key);
}

function topoOrder(instances: PlannedInstance[]): PlannedInstance[] {
  const out: PlannedInstance[] = [];
  const done = new Set<PlannedInstance>();
  const visit = (n: PlannedInstance) => {
    if (done.has(n)) return;
    done.add(n);
    for (const d of n.wiring.values()) visit(d);
    out.push(n);
  };
  instances.forEach(visit);
  return out;
}

/** Plugin schemas are checked strictly, so a misspelt setting is an error, not silently dropped. */
function strictOf(s: z.ZodObject): z.ZodType {
  const maybe = s as unknown as { strict?: () => z.ZodType };
  return typeof maybe.strict === 'function' ? maybe.strict() : s;
}

/**
 * Last touches before validation, driven by the setting types:
 * - values from the command line are typed as YAML (`0x60` is a number), except where the setting
 *   is a string: there the text stays as typed (`--kernel 0x60` names a file called 0x60);
 * - file settings become absolute: relative to the machine file that wrote them, or to the
 *   working directory for values from the command line;
 * - a list of files given on the command line as one string splits at commas (`--initrd a,b`).
 */
function finishValues(node: LNode, schema: z.ZodType, path: PathSeg[] = []): LNode {
  const kind = typeName(schemaAt(schema, path));
  if (node.kind === 'scalar') {
    const fromCli = node.pos.file.startsWith('--set');
    let value = node.value;
    if (
      node.raw !== undefined &&
      typeof value !== 'string' &&
      ['string', 'file', 'file-with-args', 'list-of-files'].includes(kind)
    ) {
      value = node.raw;
    }
    if (kind === 'list-of-files' && typeof value === 'string') {
      const items = value.split(',').filter((x) => x.trim() !== '');
      return finishValues(
        {
          kind: 'seq',
          pos: node.pos,
          items: items.map((v) => ({ kind: 'scalar', pos: node.pos, value: v.trim() })),
        },
        schema,
        path,
      );
    }
    if ((kind === 'file' || kind === 'file-with-args') && typeof value === 'string') {
      const base = fromCli ? process.cwd() : dirname(node.pos.file);
      if (kind === 'file') value = resolvePath(base, value);
      else {
        const sp = value.search(/\s/);
        value = sp < 0 ? resolvePath(base, value) : resolvePath(base, value.slice(0, sp)) + value.slice(sp);
      }
    }
    return value === node.value ? node : { ...node, value };
  }
  if (node.kind === 'seq')
    return { ...node, items: node.items.map((n, i) => finishValues(n, schema, [...path, i])) };
  const entries = new Map(node.entries);
  for (const [k, e] of entries) entries.set(k, { ...e, value: finishValues(e.value, schema, [...path, k]) });
  return { ...node, entries };
}

function withNode(root: LNode, path: readonly PathSeg[], node: LNode): LNode {
  // Positions for settings that came from user defaults live in `node`; splice it into the tree.
  const set = (n: LNode, i: number): LNode => {
    if (i === path.length) return node;
    const seg = path[i]!;
    if (n.kind === 'map' && typeof seg === 'string') {
      const e = n.entries.get(seg);
      if (!e) return n;
      const entries = new Map(n.entries);
      entries.set(seg, { keyPos: e.keyPos, value: set(e.value, i + 1) });
      return { ...n, entries };
    }
    if (n.kind === 'seq' && typeof seg === 'number' && n.items[seg]) {
      const items = [...n.items];
      items[seg] = set(items[seg]!, i + 1);
      return { ...n, items };
    }
    return n;
  };
  return set(root, 0);
}

function shorthandSets(root: LNode, values: Readonly<Record<string, string>>): string[] {
  const table = getNode(root, ['shorthands']);
  const out: string[] = [];
  for (const [flag, value] of Object.entries(values)) {
    const target = table?.kind === 'map' ? table.entries.get(flag)?.value : undefined;
    if (target?.kind !== 'scalar' || typeof target.value !== 'string') {
      const have = table?.kind === 'map' ? [...table.entries.keys()].map((k) => `--${k}`).join(', ') : '';
      throw new VmmErrors([
        new VmmError('usage', `--${flag}: this machine has no such shorthand`, {
          location: { file: root.pos.file },
          hint: have
            ? `its shorthands: ${have}`
            : 'it declares no shorthands (shorthands: in the machine file)',
        }),
      ]);
    }
    // A value is a string unless it is a list of files (--initrd a,b).
    out.push(`${target.value}=${value}`);
  }
  return out;
}

export function formatPathText(path: readonly PathSeg[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

const fmtPos = (p: Pos) => (p.line > 0 ? `${displayPath(p.file)}:${p.line}:${p.col}` : displayPath(p.file));
const article = (w: string) => (/^[aeiou]/.test(w) ? `an ${w}` : `a ${w}`);

/** Name the built-in plugins that provide a token (only loaded on this error path). */
async function providerHint(tok: Token<unknown>): Promise<string> {
  const names = (await allBuiltins()).filter((d) => provides(d, tok)).map((d) => d.name);
  return names.length > 0
    ? `add a plugin that provides ${tok.name}: ${names.join(', ')}`
    : `add a plugin that provides ${tok.name} (vmm plugins shows what each plugin provides)`;
}

function sortErrors(errs: VmmError[]): VmmError[] {
  return [...errs].sort((a, b) => {
    const fa = a.location?.file ?? '';
    const fb = b.location?.file ?? '';
    if (fa !== fb) return fa < fb ? -1 : 1;
    return (
      (a.location?.line ?? 0) - (b.location?.line ?? 0) || (a.location?.col ?? 0) - (b.location?.col ?? 0)
    );
  });
}

function asErrors(e: unknown): unknown {
  if (Array.isArray(e) && e.every((x) => x instanceof VmmError)) return new VmmErrors(e as VmmError[]);
  if (e instanceof VmmError) return new VmmErrors([e]);
  return e;
}
