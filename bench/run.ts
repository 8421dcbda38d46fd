/**
 * `npm run bench [-- NAME...] [--list] [--json]`: runs every bench/*.bench.ts (each exports
 * `run(): Promise<BenchResult[]>`) and prints one table. NAMEs pick benchmarks by substring of their
 * file name. Benchmarks measure; they never fail a build (a benchmark that cannot run says why).
 * bench/launch.mjs runs this file transpiled into dist/bench/, so the benchmarks measure the built
 * code in dist/ (their `../src/...` imports resolve there).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  note?: string;
}

const here = path.dirname(fileURLToPath(import.meta.url));

/** The package root (machines/, test/fixtures/): above bench/, or above dist/bench/ when built. */
export const ROOT = ((): string => {
  let d = path.resolve(here, '..');
  while (!fs.existsSync(path.join(d, 'package.json')) && path.dirname(d) !== d) d = path.dirname(d);
  return d;
})();

interface Args {
  names: string[];
  list: boolean;
  json: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { names: [], list: false, json: false };
  for (const x of argv) {
    if (x === '--list') a.list = true;
    else if (x === '--json') a.json = true;
    else if (x === '--help' || x === '-h') {
      process.stdout.write(
        'usage: npm run bench [-- [NAME...] [--list] [--json]]\n' +
          '  NAME    run the benchmarks whose file name contains NAME (default: all)\n' +
          '  --list  list the benchmarks and exit\n' +
          '  --json  print the results as JSON\n',
      );
      process.exit(0);
    } else if (x.startsWith('-')) {
      process.stderr.write(`bench: unknown option ${x}\n`);
      process.exit(2);
    } else a.names.push(x);
  }
  return a;
}

/** The newest .ts file under `dir` (recursively), as [mtimeMs, path]; [0, ''] when there is none. */
function newestSource(dir: string): [number, string] {
  let best: [number, string] = [0, ''];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      const sub = newestSource(p);
      if (sub[0] > best[0]) best = sub;
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) {
      const t = fs.statSync(p).mtimeMs;
      if (t > best[0]) best = [t, p];
    }
  }
  return best;
}

/** Why dist/ under `root` cannot be measured (not built, or older than a source), or null. */
export function staleness(root = ROOT): string | null {
  // tsc rewrites every output on each build; fast-up.js is the one bin/run.js compares too.
  let built: number;
  try {
    built = fs.statSync(path.join(root, 'dist/src/cli-lib/fast-up.js')).mtimeMs;
  } catch {
    return 'dist/ is not built';
  }
  for (const sub of ['src', 'plugins']) {
    const [t, p] = newestSource(path.join(root, sub));
    if (t > built) return `dist/ is older than ${path.relative(root, p)}`;
  }
  return null;
}

/** The benchmarks in `dir`: *.bench.ts in bench/, *.bench.js once transpiled into dist/bench/. */
export function discover(dir = here): { id: string; file: string }[] {
  return fs
    .readdirSync(dir)
    .filter((f) => /\.bench\.[jt]s$/.test(f))
    .sort()
    .map((f) => ({ id: f.replace(/\.bench\.[jt]s$/, ''), file: path.join(dir, f) }));
}

export function formatTable(rows: (BenchResult & { bench: string })[]): string {
  const cells = rows.map((r) => [
    r.bench,
    r.name,
    Number.isFinite(r.value) ? formatNumber(r.value) : '-',
    r.unit,
    r.note ?? '',
  ]);
  const header = ['benchmark', 'measure', 'value', 'unit', 'note'];
  const all = [header, ...cells];
  const w = header.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  return all
    .map((r) =>
      r
        .map((c, i) => (i === 2 ? c.padStart(w[i]!) : i === r.length - 1 ? c : c.padEnd(w[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function formatNumber(v: number): string {
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  return v >= 100 ? v.toFixed(1) : v.toPrecision(4);
}

export async function main(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  let benches = discover();
  if (args.names.length) benches = benches.filter((b) => args.names.some((n) => b.id.includes(n)));
  if (args.list) {
    for (const b of discover()) process.stdout.write(`${b.id}\n`);
    return;
  }
  if (benches.length === 0) {
    process.stderr.write(`bench: no benchmark matches ${args.names.join(', ')} (try --list)\n`);
    process.exit(2);
  }
  const rows: (BenchResult & { bench: string })[] = [];
  for (const b of benches) {
    process.stderr.write(`bench: ${b.id}...\n`);
    try {
      const mod = (await import(pathToFileURL(b.file).href)) as { run?: () => Promise<BenchResult[]> };
      if (typeof mod.run !== 'function') throw new Error('exports no run() function');
      for (const r of await mod.run()) rows.push({ bench: b.id, ...r });
    } catch (e) {
      rows.push({
        bench: b.id,
        name: '(failed)',
        value: NaN,
        unit: '',
        note: (e as Error).message ?? String(e),
      });
    }
  }
  process.stdout.write(args.json ? JSON.stringify(rows, null, 2) + '\n' : formatTable(rows) + '\n');
}
