/**
 * A configuration tree whose every node remembers where it came from (file, line, column), so
 * that errors found after `extends` merging, user defaults and `--set` overrides still point at the
 * text the user wrote.
 */
import {
  isMap,
  isScalar,
  isSeq,
  isAlias,
  type LineCounter,
  type Node as YamlNode,
  type Document,
} from 'yaml';
import { VmmError } from '../core/errors.js';

export interface Pos {
  file: string;
  line: number;
  col: number;
}

export type LNode = LMap | LSeq | LScalar;

export interface LMap {
  kind: 'map';
  pos: Pos;
  entries: Map<string, { keyPos: Pos; value: LNode }>;
}
export interface LSeq {
  kind: 'seq';
  pos: Pos;
  items: LNode[];
}
export interface LScalar {
  kind: 'scalar';
  pos: Pos;
  value: string | number | boolean | null;
  /** The text as typed, for values from the command line (a string setting keeps `0x60` as written). */
  raw?: string;
}

export function posOf(
  file: string,
  lc: LineCounter,
  node: { range?: [number, number, number] | null } | null,
): Pos {
  const offset = node?.range?.[0] ?? 0;
  const lp = lc.linePos(offset);
  return { file, line: lp.line, col: lp.col };
}

/** Convert a parsed YAML document into located nodes. Anchors and aliases are expanded. */
export function fromYaml(doc: Document, file: string, lc: LineCounter): LNode {
  const root = doc.contents as YamlNode | null;
  if (root === null) return { kind: 'map', pos: { file, line: 1, col: 1 }, entries: new Map() };
  return convert(root, doc, file, lc, 0);
}

function convert(node: YamlNode, doc: Document, file: string, lc: LineCounter, depth: number): LNode {
  const pos = posOf(file, lc, node);
  if (depth > 64) throw new VmmError('config-invalid', 'nesting too deep', { location: pos });
  if (isAlias(node)) return convert(node.resolve(doc) as YamlNode, doc, file, lc, depth + 1);
  if (isMap(node)) {
    const entries = new Map<string, { keyPos: Pos; value: LNode }>();
    for (const pair of node.items) {
      const keyNode = pair.key as YamlNode | null;
      const keyPos = keyNode ? posOf(file, lc, keyNode) : pos;
      const key = isScalar(keyNode) ? keyNode.value : keyNode;
      if (typeof key !== 'string' && typeof key !== 'number') {
        throw new VmmError('config-syntax', 'keys must be plain names', { location: keyPos });
      }
      const k = String(key);
      if (k === '<<')
        throw new VmmError('config-syntax', 'merge keys (<<) are not supported; use extends:', {
          location: keyPos,
        });
      const valueNode = pair.value as YamlNode | null;
      const value: LNode = valueNode
        ? convert(valueNode, doc, file, lc, depth + 1)
        : { kind: 'scalar', pos: keyPos, value: null };
      entries.set(k, { keyPos, value });
    }
    return { kind: 'map', pos, entries };
  }
  if (isSeq(node)) {
    return {
      kind: 'seq',
      pos,
      items: node.items.map((i) =>
        i ? convert(i as YamlNode, doc, file, lc, depth + 1) : { kind: 'scalar', pos, value: null },
      ),
    };
  }
  if (isScalar(node)) {
    const v = node.value;
    if (typeof v === 'bigint') {
      throw new VmmError('config-invalid', `number ${String(v)} is too large`, { location: pos });
    }
    if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') {
      return { kind: 'scalar', pos, value: v };
    }
    return { kind: 'scalar', pos, value: String(v) };
  }
  throw new VmmError('config-syntax', 'unsupported YAML node', { location: pos });
}

/** Build a located node from a plain value (for --set overrides and user defaults). */
export function fromPlain(value: unknown, pos: Pos): LNode {
  if (Array.isArray(value)) return { kind: 'seq', pos, items: value.map((v) => fromPlain(v, pos)) };
  if (value !== null && typeof value === 'object') {
    const entries = new Map<string, { keyPos: Pos; value: LNode }>();
    for (const [k, v] of Object.entries(value)) entries.set(k, { keyPos: pos, value: fromPlain(v, pos) });
    return { kind: 'map', pos, entries };
  }
  if (value === undefined || value === null) return { kind: 'scalar', pos, value: null };
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
    return { kind: 'scalar', pos, value };
  }
  return { kind: 'scalar', pos, value: String(value) };
}

export function toPlain(n: LNode): unknown {
  switch (n.kind) {
    case 'scalar':
      return n.value;
    case 'seq':
      return n.items.map(toPlain);
    case 'map': {
      const o: Record<string, unknown> = {};
      for (const [k, e] of n.entries) o[k] = toPlain(e.value);
      return o;
    }
  }
}

export type PathSeg = string | number;

export const formatPath = (path: readonly PathSeg[]): string =>
  path.reduce<string>((s, seg) => (typeof seg === 'number' ? `${s}[${seg}]` : s ? `${s}.${seg}` : seg), '');

/**
 * The position for a path: the value's node when it exists (or its key when `atKey`), else the
 * deepest existing ancestor.
 */
export function locate(root: LNode, path: readonly PathSeg[], atKey = false): Pos {
  let node: LNode = root;
  let keyPos: Pos | undefined;
  for (const seg of path) {
    if (node.kind === 'map' && typeof seg === 'string' && node.entries.has(seg)) {
      const e = node.entries.get(seg)!;
      keyPos = e.keyPos;
      node = e.value;
    } else if (node.kind === 'seq' && typeof seg === 'number' && seg < node.items.length) {
      keyPos = undefined;
      node = node.items[seg]!;
    } else {
      return node.pos;
    }
  }
  return atKey && keyPos ? keyPos : node.pos;
}

export function getNode(root: LNode, path: readonly PathSeg[]): LNode | undefined {
  let node: LNode | undefined = root;
  for (const seg of path) {
    if (node?.kind === 'map' && typeof seg === 'string') node = node.entries.get(seg)?.value;
    else if (node?.kind === 'seq' && typeof seg === 'number') node = node.items[seg];
    else return undefined;
  }
  return node;
}
