#!/usr/bin/env node
// The `vmm` command. Commands are compiled to dist/ by `npm run build` (run by `npm install`), and
// oclif.manifest.json lets oclif find a command without importing the others.
import { existsSync, statSync } from 'node:fs';
import { URL } from 'node:url';

if (!existsSync(new URL('../dist/src/index.js', import.meta.url))) {
  process.stderr.write('vmm: not built yet: run `npm run build` in the package (npm install does it)\n');
  process.exit(1);
}

const argv = process.argv.slice(2);

// `vmm up` starts a machine without loading oclif when its arguments parse cleanly (start-up time;
// see src/cli-lib/fast-up.ts). Anything else, and every error, goes through oclif.
if (argv[0] === 'up' && !process.env.VMM_NO_FAST_PATH) {
  const { tryFastUp } = await import(fastUpModule());
  if (!(await tryFastUp(argv.slice(1)))) await runOclif();
} else {
  await runOclif();
}

async function runOclif() {
  const { execute } = await import('@oclif/core/execute');
  await execute({ dir: import.meta.url });
}

// dist/bundle/ (scripts/bundle.mjs) loads in a few large modules instead of ~150 small ones; used
// unless it is missing or older than the compiled sources (a `tsc` run without the bundle step).
function fastUpModule() {
  const bundled = new URL('../dist/bundle/src/cli-lib/fast-up.js', import.meta.url);
  if (process.env.VMM_NO_BUNDLE) return '../dist/src/cli-lib/fast-up.js';
  try {
    const built = statSync(new URL('../dist/src/index.js', import.meta.url)).mtimeMs;
    if (statSync(new URL('../dist/bundle/src/index.js', import.meta.url)).mtimeMs >= built)
      return bundled.href;
  } catch {
    // No bundle.
  }
  return '../dist/src/cli-lib/fast-up.js';
}
