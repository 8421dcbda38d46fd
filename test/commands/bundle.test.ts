/**
 * dist/bundle/ (scripts/bundle.mjs), which `vmm up` runs from: it runs a machine on its own, and
 * zod's translations still work though they load on demand.
 */
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT, ensureBuilt } from './cli-helpers.js';

type Api = typeof import('../../src/index.js');
let api: Api;

beforeAll(async () => {
  await ensureBuilt();
  api = (await import(pathToFileURL(path.join(ROOT, 'dist/bundle/src/index.js')).href)) as Api;
}, 300_000);

describe('the start-up bundle', () => {
  it('runs a machine', async () => {
    const console = new api.MemoryConsole();
    const m = await api.loadMachine(path.join(ROOT, 'test/fixtures/machines/trivial.yaml'), { console });
    const reason = await m.run();
    await m.dispose();
    expect(console.text()).toBe('!\n');
    expect(api.exitCodeFor(reason)).toBe(1);
  });

  it('loads a zod translation when asked for one', () => {
    const { z } = api;
    const message = (s: import('zod').ZodType) => s.safeParse(1).error?.issues[0]?.message;
    expect(message(z.string())).toMatch(/expected string, received number/);
    try {
      z.config(z.locales.de());
      expect(message(z.string())).toMatch(/^Ungültige Eingabe/);
    } finally {
      z.config(z.locales.en());
    }
  });
});
