/** `vmm plugins [NAME]`: the registry as a list, or one plugin's settings schema. */

export interface PluginSummary {
  name: string;
  description: string;
  provides: string[];
  needs: string[];
  wants: string[];
}

export interface PluginSettingInfo {
  key: string;
  type: string;
  default?: unknown;
  description?: string;
}

export interface PluginDetails extends PluginSummary {
  settings: PluginSettingInfo[];
}

/** Columns padded to their widest cell; the last column is not padded. */
export function formatColumns(rows: string[][]): string {
  const n = Math.max(0, ...rows.map((r) => r.length));
  const w = Array.from({ length: n }, (_, i) => Math.max(0, ...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(w[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

const list = (xs: readonly string[]) => (xs.length ? xs.join(', ') : '-');

export function formatPluginList(ps: readonly PluginSummary[]): string {
  const sorted = [...ps].sort((a, b) => a.name.localeCompare(b.name));
  return formatColumns([
    ['NAME', 'PROVIDES', 'DESCRIPTION'],
    ...sorted.map((p) => [p.name, list(p.provides), p.description]),
  ]);
}

export function formatDefault(v: unknown): string {
  if (v === undefined) return '-';
  if (typeof v === 'number' && Number.isInteger(v) && v >= 256) return `0x${v.toString(16)}`;
  if (typeof v === 'string') return v === '' ? '""' : v;
  return JSON.stringify(v);
}

export function formatPluginInfo(p: PluginDetails): string {
  const out = [
    `${p.name}: ${p.description}`,
    '',
    `provides: ${list(p.provides)}`,
    `needs:    ${list(p.needs)}`,
    `wants:    ${list(p.wants)}`,
    '',
  ];
  if (p.settings.length === 0) out.push('settings: (none)');
  else {
    out.push('settings:');
    const rows = [['  KEY', 'TYPE', 'DEFAULT', 'DESCRIPTION']];
    for (const s of p.settings)
      rows.push([`  ${s.key}`, s.type, formatDefault(s.default), s.description ?? '']);
    out.push(formatColumns(rows));
  }
  return out.join('\n');
}
