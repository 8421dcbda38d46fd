/**
 * The README's main job from the command line: `vmm up` with no machine file runs the bundled
 * machines/q35-sample.yaml, and piped input drives the sample shell non-interactively (the line
 * the issue gives: `printf 'hello\npoweroff\n' | vmm up`). Runs the built CLI (bin/run.js over
 * dist/, rebuilt first when stale), from an empty directory so no user defaults apply. One boot of
 * the sample guest: about 10 s.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT, ensureBuilt, runCli } from '../commands/cli-helpers.js';

beforeAll(ensureBuilt, 300_000);

describe('vmm up (no machine file)', () => {
  it("runs the sample guest from piped input: printf 'hello\\npoweroff\\n' | vmm up", async () => {
    mkdirSync(join(ROOT, 'test/.tmp'), { recursive: true });
    const cwd = mkdtempSync(join(ROOT, 'test/.tmp/e2e-up-'));
    const r = await runCli(['up'], {
      cwd,
      input: 'hello\npoweroff\n',
      encoding: 'latin1',
      killAfterMs: 150_000,
    }).finally(() => rmSync(cwd, { recursive: true, force: true }));
    const out = r.stdout.replace(/\r\n/g, '\n');
    expect(r.code, r.stderr).toBe(0);
    expect(out).toContain('vmm sample shell: type help\n>> hello\n[1] started hello\n');
    expect(out).toContain('Hello from ring 3! I am pid 1, running at CPL 3.\n');
    expect(out).toContain('[1] exited with code 0\n>> poweroff\nPowering off.\n');
    expect(r.stderr).toContain('fat-loader: loaded sample.bin');
    expect(r.stderr).toMatch(/stopped: guest powered off with code 0/);
  }, 200_000);
});
