#!/usr/bin/env node
// `npm run bench [-- NAME...]`: measures the built code, what `vmm` users run. The benchmarks
// (bench/*.ts) are transpiled with esbuild into dist/bench/, where their `../src/...` and
// `../plugins/...` imports resolve to tsc's output in dist/; no TypeScript loader is involved (a
// loader such as jiti transforms every module and understates the speed). dist/ must be built and
// newer than every source file under src/ and plugins/, or the run stops and says so.
import * as esbuild from 'esbuild';
import { mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

async function main() {
  const src = join(root, 'bench');
  const out = join(root, 'dist/bench');
  mkdirSync(out, { recursive: true });
  const files = readdirSync(src).filter((f) => f.endsWith('.ts'));
  await esbuild.build({
    entryPoints: files.map((f) => join(src, f)),
    outdir: out,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    bundle: false,
    logLevel: 'warning',
  });
  const run = await import(pathToFileURL(join(out, 'run.js')).href);
  const why = run.staleness(root);
  if (why !== null) {
    process.stderr.write(
      `bench: ${why}: run \`npm run build\` first (the benchmarks measure the built code)\n`,
    );
    process.exit(1);
  }
  await run.main(process.argv.slice(2));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
