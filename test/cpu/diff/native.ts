/**
 * Builds the native runner (test/cpu/native/runner.c) with gcc into test/.tmp/cpu-diff/, once per
 * source hash, and runs batches of cases on it (one short-lived process per batch).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DiffCase } from './emulator-adapter.js';
import { decodeHello, decodeResults, encodeCases } from './protocol.js';
import type { Hello, NativeResult } from './protocol.js';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '../../..');
const source = join(repoRoot, 'test/cpu/native/runner.c');
const outDir = join(repoRoot, 'test/.tmp/cpu-diff');

const FLAGS: Record<64 | 32, string[]> = {
  64: ['-O2', '-Wall', '-Wextra', '-U_FORTIFY_SOURCE'],
  // Absolute addressing in the inline assembly: no PIE for the 32-bit build.
  32: ['-m32', '-O2', '-Wall', '-Wextra', '-U_FORTIFY_SOURCE', '-fno-pie', '-no-pie'],
};

/** Compile the runner for a mode (cached by source+flags hash). Throws with gcc's output on failure. */
export function buildRunner(mode: 64 | 32): string {
  const src = readFileSync(source);
  const hash = createHash('sha256').update(src).update(FLAGS[mode].join(' ')).digest('hex').slice(0, 16);
  const exe = join(outDir, `runner${mode}-${hash}`);
  if (existsSync(exe)) return exe;
  mkdirSync(outDir, { recursive: true });
  // Build to a private name and rename: parallel test workers may race here.
  const tmp = `${exe}.${process.pid}.tmp`;
  try {
    execFileSync('gcc', [...FLAGS[mode], '-o', tmp, source], { stdio: 'pipe' });
  } catch (e) {
    const stderr = (e as { stderr?: Buffer }).stderr?.toString() ?? String(e);
    const hint = mode === 32 ? ' (the 32-bit build needs gcc-multilib: apt-get install -y gcc-multilib)' : '';
    throw new Error(`cannot build the ${mode}-bit native runner${hint}:\n${stderr}`);
  }
  renameSync(tmp, exe);
  return exe;
}

export class NativeRunner {
  readonly hello: Hello;

  private constructor(
    readonly mode: 64 | 32,
    private readonly exe: string,
  ) {
    this.hello = decodeHello(this.exec(Buffer.alloc(0)));
    if (this.hello.mode !== mode) throw new Error(`runner built for ${mode} reports mode ${this.hello.mode}`);
  }

  static create(mode: 64 | 32): NativeRunner {
    return new NativeRunner(mode, buildRunner(mode));
  }

  hasFeature(bit: number): boolean {
    return (this.hello.features & bit) !== 0;
  }

  run(cases: readonly DiffCase[]): NativeResult[] {
    for (const c of cases) {
      if (c.mode !== this.mode) throw new Error(`a mode-${c.mode} case sent to the ${this.mode}-bit runner`);
    }
    return decodeResults(this.exec(encodeCases(cases)), cases).results;
  }

  runOne(c: DiffCase): NativeResult {
    const [r] = this.run([c]);
    if (!r) throw new Error('native runner returned no result');
    return r;
  }

  private exec(input: Buffer): Buffer {
    const p = spawnSync(this.exe, [], { input, maxBuffer: 1 << 30, timeout: 300_000 });
    if (p.error) throw p.error;
    if (p.status !== 0) {
      throw new Error(`native runner exited with ${p.status ?? p.signal}: ${p.stderr.toString()}`);
    }
    return p.stdout;
  }
}
