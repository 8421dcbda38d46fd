/** `vmm validate`: the resolved machine as a tree (plugins, settings after overrides, wiring). */
import type { ResolvedPlugin } from '../api-types.js';
import { renderTree, type TreeNode } from './tree.js';

export interface ResolvedMachineView {
  file: string;
  plugins: readonly ResolvedPlugin[];
  shorthands: Readonly<Record<string, string>>;
}

/** A scalar as it would be written in YAML; integers of 256 and up also in hex (ports, addresses). */
export function formatScalar(v: unknown): string {
  if (typeof v === 'number')
    return Number.isInteger(v) && v >= 256 ? `${v} (0x${v.toString(16)})` : String(v);
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
  if (isScalar(v)) return { label: `${key}: ${formatScalar(v)}` };
  if (Array.isArray(v)) {
    if (v.every(isScalar)) return { label: `${key}: [${v.map(formatScalar).join(', ')}]` };
    return { label: `${key}:`, children: v.map((x, i) => valueNode(`[${i}]`, x)) };
  }
  if (v instanceof Uint8Array) return { label: `${key}: <${v.length} bytes>` };
  const entries = settingNodes(v as Record<string, unknown>);
  return entries.length ? { label: `${key}:`, children: entries } : { label: `${key}: {}` };
}

export function pluginNode(p: ResolvedPlugin): TreeNode {
  const title = p.name === p.plugin ? p.name : `${p.name} (${p.plugin})`;
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
