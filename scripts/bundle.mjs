#!/usr/bin/env node
// Bundles the compiled `vmm up` path (dist/src/cli-lib/fast-up.js, dist/src/index.js and every
// built-in plugin, with zod, yaml and tsyringe) into dist/bundle/, which bin/run.js prefers: Node
// resolves and links ~150 small ESM/CJS modules in a few large ones much faster (issue 2: first
// guest output within 300 ms). Code splitting keeps one copy of each module, so built-in plugins
// and the core share classes and tokens. Layout mirrors dist/ (src/..., plugins/NAME/index.js);
// shared chunks go to src/container/. cosmiconfig and jiti stay outside: they load only when a
// user configuration or a custom plugin needs them. zod's translations other than English are
// half of zod's source; they load on first use instead (zodLocalesOnDemand).
import * as esbuild from 'esbuild';
import { copyFileSync, existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const out = join(dist, 'bundle');

const plugins = readdirSync(join(dist, 'plugins'))
  .map((d) => join(dist, 'plugins', d, 'index.js'))
  .filter((f) => existsSync(f));

/**
 * zod's `z.locales` re-exports ~50 translations (360 kB of the 750 kB zod bundle, all of it parsed
 * at every start). Keep `en` (zod's default) in the bundle; every other `z.locales.X()` requires
 * zod's CommonJS build of that one file when called, which returns the same kind of value.
 */
const zodLocalesOnDemand = {
  name: 'zod-locales-on-demand',
  setup(build) {
    build.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, (args) => {
      const names = [
        ...readFileSync(args.path, 'utf8').matchAll(/export \{ default as (\w+) \} from "\.\/([\w-]+)\.js"/g),
      ];
      const exports = readFileSync(args.path, 'utf8').match(/^export /gm)?.length ?? 0;
      if (!names.some(([, n]) => n === 'en') || names.length !== exports)
        throw new Error(`zod-locales-on-demand: ${args.path} is not a list of \`export { default as X }\``);
      const lines = [
        "import { createRequire } from 'node:module';",
        "export { default as en } from './en.js';",
        'const load = createRequire(import.meta.url);',
        // The CommonJS build sets module.exports to the locale function itself.
        'const onDemand = (file) => (...args) => {',
        '  const m = load(`zod/v4/locales/${file}.cjs`);',
        '  return (m.default ?? m)(...args);',
        '};',
      ];
      for (const [, name, file] of names)
        if (name !== 'en') lines.push(`export const ${name} = onDemand(${JSON.stringify(file)});`);
      return { contents: lines.join('\n'), loader: 'js', resolveDir: dirname(args.path) };
    });
  },
};

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
  external: ['cosmiconfig', 'jiti', 'iced-x86'],
  // CommonJS dependencies (yaml, tsyringe) call require() for Node built-ins.
  banner: {
    js: "import { createRequire as __vmmCreateRequire } from 'node:module'; const require = __vmmCreateRequire(import.meta.url);",
  },
  plugins: [zodLocalesOnDemand],
  // `node --enable-source-maps` then shows src/*.ts positions (through tsc's maps) in stack traces.
  sourcemap: true,
  logLevel: 'warning',
});
copyFileSync(join(dist, 'src/container/vmm-api.cjs'), join(out, 'src/container/vmm-api.cjs'));
