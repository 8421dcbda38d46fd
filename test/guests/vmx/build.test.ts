// guests/vmxtests/exits.elf must be exactly what its sources build to (as test/guests/build.test.ts
// checks for the BIOS and the sample guest): rebuild into a temp directory and compare.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const GUESTS = resolve(import.meta.dirname, '../../../guests');
const DIR = join(GUESTS, 'vmxtests');

function firstLine(cmd: string): string | null {
  const r = spawnSync(cmd, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n')[0]! : null;
}

/** Why the rebuild cannot be compared here (another toolchain), or null. */
function skipReason(): string | null {
  for (const tool of ['make', 'objcopy', 'gcc', 'ld']) if (!firstLine(tool)) return `${tool} not found`;
  const recorded = readFileSync(join(GUESTS, 'TOOLCHAIN'), 'utf8').trim();
  const present = `${firstLine('gcc')}\n${firstLine('ld')}`;
  return recorded === present
    ? null
    : `the images were built with\n${recorded}\nbut this machine has\n${present}`;
}

const reason = skipReason();
if (reason) console.warn(`[vmxtests] skipping the reproducibility test: ${reason}`);

describe.skipIf(reason !== null)('guests/vmxtests is reproducible', () => {
  const out = mkdtempSync(join(tmpdir(), 'vmm-vmxtests-'));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('rebuilds exits.elf and exits64.bin byte for byte, without build paths', () => {
    const r = spawnSync('make', ['-s', '-C', DIR, `OUT=${out}`], { encoding: 'utf8' });
    expect(r.stderr, r.stderr).toBe('');
    expect(r.status).toBe(0);
    for (const image of ['exits.elf', 'exits64.bin']) {
      const committed = readFileSync(join(DIR, image));
      const rebuilt = readFileSync(join(out, image));
      expect(Buffer.compare(rebuilt, committed), `${image} differs from its rebuild`).toBe(0);
      const text = committed.toString('latin1');
      expect(text.includes(GUESTS)).toBe(false);
      expect(text.includes(out)).toBe(false);
    }
  });
});
