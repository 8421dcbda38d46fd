/**
 * How a variant overlays its base (`extends:`), how user defaults sit under a file, and how
 * `--set` sits over everything:
 * - maps merge key by key; a key set to null in the overlay removes it (`vmm: null` drops a section);
 * - lists of plugin instances merge by instance name (`name:`, or the plugin name): an overlay item
 *   with a known name updates that instance, `remove: true` deletes it, a new name is appended;
 * - any other list, and any scalar, is replaced.
 */
import type { LMap, LNode, LSeq } from './located.js';

export function mergeNodes(base: LNode, over: LNode): LNode {
  if (base.kind === 'map' && over.kind === 'map') return mergeMaps(base, over);
  if (base.kind === 'seq' && over.kind === 'seq' && isInstanceList(base) && isInstanceList(over)) {
    return mergeInstanceLists(base, over);
  }
  return over;
}

function mergeMaps(base: LMap, over: LMap): LMap {
  const entries = new Map(base.entries);
  for (const [k, e] of over.entries) {
    if (e.value.kind === 'scalar' && e.value.value === null) {
      entries.delete(k);
      continue;
    }
    const b = entries.get(k);
    entries.set(k, b ? { keyPos: e.keyPos, value: mergeNodes(b.value, e.value) } : e);
  }
  return { kind: 'map', pos: base.pos, entries };
}

/** The identity of a plugin instance in a list: its `name`, else its plugin name. */
export function instanceId(n: LNode): string | undefined {
  if (n.kind !== 'map') return undefined;
  const name = n.entries.get('name')?.value;
  if (name?.kind === 'scalar' && typeof name.value === 'string') return name.value;
  const plugin = n.entries.get('plugin')?.value;
  if (plugin?.kind === 'scalar' && typeof plugin.value === 'string') return plugin.value;
  return undefined;
}

const isInstanceList = (s: LSeq): boolean => s.items.every((i) => instanceId(i) !== undefined);

function mergeInstanceLists(base: LSeq, over: LSeq): LSeq {
  const items = [...base.items];
  for (const o of over.items) {
    const id = instanceId(o)!;
    const at = items.findIndex((b) => instanceId(b) === id);
    const remove = o.kind === 'map' ? o.entries.get('remove')?.value : undefined;
    if (remove?.kind === 'scalar' && remove.value === true) {
      if (at >= 0) items.splice(at, 1);
      continue;
    }
    if (at >= 0) items[at] = mergeNodes(items[at]!, o);
    else items.push(o);
  }
  return { kind: 'seq', pos: over.pos, items };
}
