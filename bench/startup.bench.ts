/**
 * Start-up latency: wall time from spawning `node bin/run.js up test/fixtures/machines/trivial.yaml`
 * to the first byte the guest writes on stdout (issue 2's target: under 300 ms), median of 5 runs.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { ROOT, type BenchResult } from './run.js';

const MACHINE = 'test/fixtures/machines/trivial.yaml';
const RUNS = 5;

interface Sample {
  firstByteMs: number;
  exitMs: number;
}

function once(args: string[]): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let first = NaN;
    let stderr = '';
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/run.js'), ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', () => {
      if (Number.isNaN(first)) first = performance.now() - t0;
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const exitMs = performance.now() - t0;
      if (Number.isNaN(first))
        reject(new Error(`no guest output (exit ${code}): ${stderr.trim().split('\n')[0] ?? ''}`));
      else resolve({ firstByteMs: first, exitMs });
    });
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

export async function run(): Promise<BenchResult[]> {
  if (!fs.existsSync(path.join(ROOT, 'dist/src/index.js')))
    return [{ name: 'first guest byte', value: NaN, unit: 'ms', note: 'not built: run npm run build' }];
  const help: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      const c = spawn(process.execPath, [path.join(ROOT, 'bin/run.js'), '--help'], {
        cwd: ROOT,
        stdio: 'ignore',
      });
      c.on('error', reject);
      c.on('close', () => resolve());
    });
    help.push(performance.now() - t0);
  }
  const out: BenchResult[] = [
    { name: 'vmm --help', value: median(help), unit: 'ms', note: `median of ${RUNS}` },
  ];
  if (!fs.existsSync(path.join(ROOT, MACHINE))) {
    out.push({
      name: 'first guest byte',
      value: NaN,
      unit: 'ms',
      note: `skipped: ${MACHINE} is not there yet`,
    });
    return out;
  }
  const samples: Sample[] = [];
  try {
    for (let i = 0; i < RUNS; i++) samples.push(await once(['up', MACHINE, '--quiet']));
  } catch (e) {
    out.push({ name: 'vmm up: first guest byte', value: NaN, unit: 'ms', note: (e as Error).message });
    return out;
  }
  out.push({
    name: 'vmm up: first guest byte',
    value: median(samples.map((s) => s.firstByteMs)),
    unit: 'ms',
    note: `median of ${RUNS}; target < 300`,
  });
  out.push({
    name: 'vmm up: exit',
    value: median(samples.map((s) => s.exitMs)),
    unit: 'ms',
    note: `median of ${RUNS}`,
  });
  return out;
}
