/**
 * Reading machine files: YAML with positions, `extends` chains, and `--set` overrides, into one
 * located tree (src/config/located.ts). Schema checks come after, in src/config/validate.ts.
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve as resolvePath } from 'node:path';
import { LineCounter, parseDocument, parse as parseYaml } from 'yaml';
import { VmmError, displayPath } from '../core/errors.js';
import { fromPlain, fromYaml, getNode, type LMap, type LNode, type Pos } from './located.js';
import { instanceId, mergeNodes } from './merge.js';

const MAX_EXTENDS_DEPTH = 16;

/** Parse one YAML file into a located tree (no `extends` processing). Every syntax error is reported. */
export function parseMachineFile(file: string, text?: string): LNode {
  let source: string;
  try {
    source = text ?? readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (e as Error).message;
    throw new VmmError('config-file', `cannot read machine file: ${why}`, { location: { file }, cause: e });
  }
  const lc = new LineCounter();
  const doc = parseDocument(source, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw doc.errors.map((err) => {
      const lp = err.linePos?.[0] ?? lc.linePos(err.pos[0]);
      const first = err.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      return new VmmError('config-syntax', `YAML syntax: ${first}`, {
        location: { file, line: lp.line, col: lp.col },
      });
    });
  }
  const root = fromYaml(doc, file, lc);
  if (root.kind !== 'map') {
    throw new VmmError('config-invalid', 'a machine description must be a mapping (key: value lines)', {
      location: root.pos,
    });
  }
  return root;
}

/** Load a machine file and everything it extends, merged (base first). */
export function loadWithExtends(file: string, chain: string[] = [], from?: Pos): LNode {
  const abs = resolvePath(file);
  if (chain.includes(abs)) {
    const cycle = [...chain, abs].map(displayPath).join(' -> ');
    throw new VmmError('config-invalid', `extends cycle: ${cycle}`, { location: from ?? { file } });
  }
  if (chain.length >= MAX_EXTENDS_DEPTH) {
    throw new VmmError('config-invalid', `extends chain deeper than ${MAX_EXTENDS_DEPTH}`, {
      location: from ?? { file },
    });
  }
  const root = parseMachineFile(abs) as LMap;
  const ext = root.entries.get('extends');
  if (!ext) return root;
  const bases: { name: string; pos: Pos }[] = [];
  if (ext.value.kind === 'scalar' && typeof ext.value.value === 'string') {
    bases.push({ name: ext.value.value, pos: ext.value.pos });
  } else if (ext.value.kind === 'seq') {
    for (const i of ext.value.items) {
      if (i.kind === 'scalar' && typeof i.value === 'string') bases.push({ name: i.value, pos: i.pos });
      else throw new VmmError('config-invalid', 'extends: expected a file name', { location: i.pos });
    }
  } else {
    throw new VmmError('config-invalid', 'extends: expected a file name or a list of file names', {
      location: ext.value.pos,
    });
  }
  let merged: LNode | undefined;
  for (const b of bases) {
    const baseFile = resolvePath(dirname(abs), b.name);
    let exists = false;
    try {
      exists = statSync(baseFile).isFile();
    } catch {
      exists = false;
    }
    if (!exists) {
      throw new VmmError(
        'config-file',
        `extends: no such file ${b.name} (looked for ${displayPath(baseFile)})`,
        {
          location: b.pos,
        },
      );
    }
    const base = loadWithExtends(baseFile, [...chain, abs], b.pos);
    merged = merged ? mergeNodes(merged, base) : base;
  }
  const own: LMap = { ...root, entries: new Map(root.entries) };
  own.entries.delete('extends');
  return mergeNodes(merged!, own);
}

/** One `--set path=value` override, parsed. */
export interface SetOverride {
  raw: string;
  path: string[];
  value: unknown;
  /** The value's text before YAML typing. */
  text: string;
}

export function parseSet(raw: string): SetOverride {
  const eq = raw.indexOf('=');
  const where = { file: `--set ${raw}` };
  if (eq <= 0) {
    throw new VmmError('usage', 'expected PATH=VALUE, e.g. --set host.cpu.mips=500', { location: where });
  }
  const pathText = raw.slice(0, eq).trim();
  const path: string[] = [];
  for (const part of pathText.split('.')) {
    const m = /^([^[\]]+)((?:\[\d+\])*)$/.exec(part);
    if (!m) throw new VmmError('usage', `malformed path "${pathText}"`, { location: where });
    path.push(m[1]!);
    for (const idx of m[2]!.matchAll(/\[(\d+)\]/g)) path.push(`[${idx[1]}]`);
  }
  const text = raw.slice(eq + 1);
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch {
    value = text;
  }
  return { raw, path, value: value === undefined ? null : value, text };
}

/**
 * Apply an override to the tree. Path segments into a list are an index (`devices[1]` or
 * `devices.1`) or an instance name (`devices.com1`).
 */
export function applySet(root: LNode, o: SetOverride): LNode {
  const pos: Pos = { file: `--set ${o.raw}`, line: 0, col: 0 };
  const setIn = (node: LNode | undefined, i: number): LNode => {
    if (i === o.path.length) {
      const n = fromPlain(o.value, pos);
      if (n.kind === 'scalar') n.raw = o.text;
      return n;
    }
    const seg = o.path[i]!;
    if (node?.kind === 'seq') {
      const idx = /^\[?(\d+)\]?$/.exec(seg);
      let at = idx ? Number(idx[1]) : node.items.findIndex((it) => instanceId(it) === seg);
      if (at < 0 || at >= node.items.length) {
        const names = node.items.map((it) => instanceId(it) ?? '?').join(', ');
        throw new VmmError(
          'usage',
          `no item "${seg}" in ${o.path.slice(0, i).join('.')} (it has: ${names || 'none'})`,
          {
            location: { file: pos.file },
          },
        );
      }
      if (idx) at = Number(idx[1]);
      const items = [...node.items];
      items[at] = setIn(items[at], i + 1);
      return { ...node, items };
    }
    const map: LMap = node?.kind === 'map' ? node : { kind: 'map', pos, entries: new Map() };
    const entries = new Map(map.entries);
    const cur = entries.get(seg);
    entries.set(seg, { keyPos: cur?.keyPos ?? pos, value: setIn(cur?.value, i + 1) });
    return { ...map, entries };
  };
  return setIn(root, 0);
}

export { getNode };
