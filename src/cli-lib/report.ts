/** The stop summary and the `--stats` table/JSON of `vmm up`. */
import type { StopReason } from '../core/stop.js';

export type Stats = Record<string, Record<string, number | string>>;

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** One phrase for why the machine stopped. */
export function describeStop(r: StopReason): string {
  switch (r.kind) {
    case 'poweroff':
      return `guest powered off with code ${r.code} (${r.source}${r.message ? `: ${r.message}` : ''})`;
    case 'reset':
      return `guest reset (${r.source})`;
    case 'fault':
      return `guest fault in ${r.source}: ${r.message}`;
    case 'timeout':
      return 'timeout';
    case 'quit':
      return 'quit';
    case 'idle':
      return `idle: ${r.message}`;
    case 'plugin-error':
      return `plugin ${r.plugin} failed in ${r.hook}: ${errorText(r.error)}`;
  }
}

const num = (v: number | string | undefined): number => (typeof v === 'number' ? v : Number(v ?? 0));

export function formatSeconds(s: number): string {
  if (s >= 100) return `${s.toFixed(1)} s`;
  if (s >= 1) return `${s.toFixed(3)} s`;
  return `${(s * 1000).toFixed(s >= 0.01 ? 1 : 3)} ms`;
}

export function groupDigits(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** `stopped: REASON · virtual T · wall T · N instructions (M MIPS)` */
export function formatSummary(r: StopReason, stats: Stats): string {
  const m = stats.machine ?? {};
  const virtualS = num(m.virtualNs) / 1e9;
  const wallS = num(m.wallMs) / 1e3;
  const instr = num(m.instructions);
  // A plugin error is printed in full on its own line before the summary.
  const why = r.kind === 'plugin-error' ? `plugin ${r.plugin} failed in ${r.hook}` : describeStop(r);
  const parts = [`stopped: ${why}`, `virtual ${formatSeconds(virtualS)}`, `wall ${formatSeconds(wallS)}`];
  let insn = `${groupDigits(instr)} instructions`;
  if (instr >= 1e6 && wallS > 0) insn += ` (${(instr / wallS / 1e6).toFixed(1)} MIPS)`;
  parts.push(insn);
  return parts.join(' · ');
}

function formatValue(v: number | string): string {
  if (typeof v === 'string') return v;
  return Number.isInteger(v) ? groupDigits(v) : v.toPrecision(6);
}

/**
 * Counters named `exits.REASON` (with `hostMs.REASON` when timed) form a per-exit-reason table:
 * count, share of all exits, host time. Everything else goes in the generic section/counter table.
 */
function exitTable(section: string, counters: Record<string, number | string>): string | undefined {
  const reasons = Object.keys(counters)
    .filter((k) => k.startsWith('exits.'))
    .map((k) => k.slice('exits.'.length));
  if (reasons.length === 0) return undefined;
  const count = (r: string) => num(counters[`exits.${r}`]);
  const timed = reasons.some((r) => counters[`hostMs.${r}`] !== undefined);
  const total = reasons.reduce((a, r) => a + count(r), 0);
  reasons.sort((a, b) => count(b) - count(a) || a.localeCompare(b));
  const pct = (n: number) => (total > 0 ? `${((100 * n) / total).toFixed(1)}%` : '-');
  const ms = (v: number) => v.toFixed(3);
  const rows: string[][] = [[`${section} exit reason`, 'count', 'share', ...(timed ? ['host ms'] : [])]];
  let totalMs = 0;
  for (const r of reasons) {
    const t = num(counters[`hostMs.${r}`]);
    totalMs += t;
    rows.push([r, groupDigits(count(r)), pct(count(r)), ...(timed ? [ms(t)] : [])]);
  }
  rows.push(['total', groupDigits(total), pct(total), ...(timed ? [ms(totalMs)] : [])]);
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  '))
    .join('\n');
}

const isExitKey = (k: string) => k.startsWith('exits.') || k.startsWith('hostMs.');

/** A plain-text table, one block per section; exit counters as their own table after it. */
export function formatStatsTable(stats: Stats): string {
  const rows: [string, string, string][] = [];
  const exitTables: string[] = [];
  for (const [section, counters] of Object.entries(stats)) {
    const et = exitTable(section, counters);
    if (et) exitTables.push(et);
    for (const [k, v] of Object.entries(counters))
      if (!(et && isExitKey(k))) rows.push([section, k, formatValue(v)]);
  }
  const header: [string, string, string] = ['section', 'counter', 'value'];
  const w = [0, 1, 2].map((i) => Math.max(header[i]!.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: [string, string, string]) =>
    `${r[0].padEnd(w[0]!)}  ${r[1].padEnd(w[1]!)}  ${r[2].padStart(w[2]!)}`.trimEnd();
  const out = [line(header)];
  let last = '';
  for (const r of rows) {
    out.push(line([r[0] === last ? '' : r[0], r[1], r[2]]));
    last = r[0];
  }
  return [out.join('\n'), ...exitTables].join('\n\n');
}

/** What `--stats=json` writes: the stop reason and every counter. */
export function statsJson(r: StopReason, exitCode: number, stats: Stats): string {
  const reason =
    r.kind === 'plugin-error'
      ? { kind: r.kind, plugin: r.plugin, hook: r.hook, error: errorText(r.error) }
      : r;
  return JSON.stringify({ reason, exitCode, stats }, null, 2) + '\n';
}
