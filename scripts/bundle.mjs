#!/usr/bin/env node
// Bundles the compiled `vmm up` path (dist/src/cli-lib/fast-up.js, dist/src/index.js and every
// built-in plugin, with zod, yaml and tsyringe) into dist/bundle/, which bin/run.js prefers: Node
// resolves and links ~150 small ESM/CJS modules in a few large ones much faster (issue 2: first
// guest output within 300 ms). Code splitting keeps one copy of each module, so built-in plugins
// and the core share classes and tokens. Layout mirrors dist/ (src/..., plugins/NAME/index.js);
// shared chunks go to src/container/. cosmiconfig and jiti stay outside: they load only when a
// user configuration or a custom plugin needs them.
import * as esbuild from 'esbuild';
import { copyFileSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const out = join(dist, 'bundle');

const plugins = readdirSync(join(dist, 'plugins'))
  .map((d) => join(dist, 'plugins', d, 'index.js'))
  .filter((f) => existsSync(f));

rmSync(out, { recursive: true, force: true });
await esbuild.build({
  entryPoints: [join(dist, 'src/cli-lib/fast-up.js'), join(dist, 'src/index.js'), ...plugins],
  outbase: dist,
  outdir: out,
  chunkNames: 'src/container/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['cosmiconfig', 'jiti'],
  // CommonJS dependencies (yaml, tsyringe) call require() for Node built-ins.
  banner: {
    js: "import { createRequire as __vmmCreateRequire } from 'node:module'; const require = __vmmCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
copyFileSync(join(dist, 'src/container/vmm-api.cjs'), join(out, 'src/container/vmm-api.cjs'));
