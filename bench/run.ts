/**
 * `npm run bench [-- NAME...] [--list] [--json]`: runs every bench/*.bench.ts (each exports
 * `run(): Promise<BenchResult[]>`) and prints one table. NAMEs pick benchmarks by substring of their
 * file name. Benchmarks measure; they never fail a build (a benchmark that cannot run says why).
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

export function discover(dir = here): { id: string; file: string }[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.bench.ts'))
    .sort()
    .map((f) => ({ id: f.replace(/\.bench\.ts$/, ''), file: path.join(dir, f) }));
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

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
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

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
