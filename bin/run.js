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
// fast-up.js is compared because tsc rewrites it on every build and nothing else touches it.
function fastUpModule() {
  const plain = '../dist/src/cli-lib/fast-up.js';
  const bundled = new URL('../dist/bundle/src/cli-lib/fast-up.js', import.meta.url);
  if (process.env.VMM_NO_BUNDLE) return plain;
  try {
    if (statSync(bundled).mtimeMs >= statSync(new URL(plain, import.meta.url)).mtimeMs) return bundled.href;
  } catch {
    // No bundle.
  }
  return plain;
}
