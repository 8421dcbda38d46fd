/** `vmm validate`: the resolved machine as a tree (plugins, settings after overrides, wiring). */
import type { ResolvedPlugin } from '../api-types.js';
import { renderTree, type TreeNode } from './tree.js';

export interface ResolvedMachineView {
  file: string;
  plugins: readonly ResolvedPlugin[];
  shorthands: Readonly<Record<string, string>>;
}

const ADDRESS_KEY = /port|base|addr|^ip$|entry|offset|mask|^0x/i;
const SIZE_KEY = /size|memory|ram/i;

function sizeUnit(v: number): string | undefined {
  for (const [unit, n] of [
    ['GiB', 2 ** 30],
    ['MiB', 2 ** 20],
    ['KiB', 2 ** 10],
  ] as const) {
    if (v >= n && v % n === 0) return `${v / n} ${unit}`;
  }
  return undefined;
}

/**
 * A scalar as it would be written in YAML. Integers under keys that look like ports or addresses
 * are also shown in hex, and under keys that look like sizes in KiB/MiB/GiB.
 */
export function formatScalar(v: unknown, key = ''): string {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0) return String(v);
    if (SIZE_KEY.test(key)) {
      const u = sizeUnit(v);
      if (u) return `${v} (${u})`;
    }
    if (ADDRESS_KEY.test(key) && v >= 10) return `${v} (0x${v.toString(16)})`;
    return String(v);
  }
  if (typeof v === 'bigint') return `${v} (0x${v.toString(16)})`;
  if (typeof v === 'string') return /^[\w./@:+-]+$/.test(v) && v !== '' ? v : JSON.stringify(v);
  if (v === undefined) return '(unset)';
  if (v === null) return 'null';
  return String(v);
}

const isScalar = (v: unknown) => v === null || (typeof v !== 'object' && typeof v !== 'function');

function settingNodes(obj: Record<string, unknown>): TreeNode[] {
  return Object.entries(obj).map(([k, v]) => valueNode(k, v));
}

function valueNode(key: string, v: unknown): TreeNode {
  if (isScalar(v)) return { label: `${key}: ${formatScalar(v, key)}` };
  if (Array.isArray(v)) {
    if (v.every(isScalar)) return { label: `${key}: [${v.map((x) => formatScalar(x, key)).join(', ')}]` };
    return { label: `${key}:`, children: v.map((x, i) => valueNode(`[${i}]`, x)) };
  }
  if (v instanceof Uint8Array) return { label: `${key}: <${v.length} bytes>` };
  const entries = settingNodes(v as Record<string, unknown>);
  return entries.length ? { label: `${key}:`, children: entries } : { label: `${key}: {}` };
}

export function pluginNode(p: ResolvedPlugin): TreeNode {
  const title = p.name === p.plugin ? p.name : `${p.name}: ${p.plugin}`;
  const children: TreeNode[] = [{ label: `at ${p.path}` }];
  if (p.provides.length) children.push({ label: `provides: ${p.provides.join(', ')}` });
  const wires = Object.entries(p.wiring);
  if (wires.length)
    children.push({
      label: 'wired to:',
      children: wires.map(([need, by]) => ({ label: `${need} -> ${by}` })),
    });
  const settings = settingNodes(p.settings);
  children.push(settings.length ? { label: 'settings:', children: settings } : { label: 'settings: (none)' });
  return { label: title, children };
}

export function formatMachineTree(m: ResolvedMachineView): string {
  const sections: TreeNode[] = [];
  for (const section of ['host', 'vmm', 'guest'] as const) {
    const ps = m.plugins.filter((p) => p.section === section);
    if (ps.length) sections.push({ label: section, children: ps.map(pluginNode) });
  }
  const sh = Object.entries(m.shorthands);
  if (sh.length)
    sections.push({ label: 'shorthands', children: sh.map(([k, v]) => ({ label: `--${k} -> ${v}` })) });
  return renderTree({ label: m.file, children: sections });
}
