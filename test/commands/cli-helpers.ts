/**
 * Running the real `vmm` binary in tests: make sure dist/ is built from the current sources (once,
 * under a lock, since test files run in parallel processes), then spawn `node bin/run.js`.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const FIXTURES = path.join(ROOT, 'test/fixtures/cli');
const BIN = path.join(ROOT, 'bin/run.js');
const BUILT = path.join(ROOT, 'dist/src/index.js');
const LOCK = path.join(ROOT, 'test/.tmp/build.lock');

function newestSource(dir: string): number {
  let newest = 0;
  if (!fs.existsSync(dir)) return 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

function stale(): boolean {
  if (!fs.existsSync(BUILT)) return true;
  const built = fs.statSync(BUILT).mtimeMs;
  return newestSource(path.join(ROOT, 'src')) > built || newestSource(path.join(ROOT, 'plugins')) > built;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Build dist/ and the manifest if any source is newer than the build (what `npm run build` does). */
export async function ensureBuilt(): Promise<void> {
  fs.mkdirSync(path.dirname(LOCK), { recursive: true });
  for (;;) {
    if (!stale()) return;
    try {
      fs.mkdirSync(LOCK);
    } catch {
      // Another test process is building; a lock older than 5 minutes is left over from a crash.
      const age = Date.now() - (fs.statSync(LOCK, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > 300_000) fs.rmSync(LOCK, { recursive: true, force: true });
      await sleep(250);
      continue;
    }
    try {
      // The steps of `npm run build`, except that a failing tsc does not stop the rest: tsc emits
      // even when it reports type errors (which are the typecheck step's business).
      const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
        scripts: Record<string, string>;
      };
      for (const step of pkg.scripts.build!.split('&&').map((x) => x.trim())) {
        const r = spawnSync('sh', ['-c', step], {
          cwd: ROOT,
          encoding: 'utf8',
          env: { ...process.env, PATH: `${path.join(ROOT, 'node_modules/.bin')}:${process.env.PATH ?? ''}` },
        });
        if (r.status !== 0 && !(step.startsWith('tsc ') && fs.existsSync(BUILT)))
          throw new Error(`build step failed: ${step}\n${r.stdout}${r.stderr}`);
      }
      fs.utimesSync(BUILT, new Date(), new Date());
      return;
    } finally {
      fs.rmSync(LOCK, { recursive: true, force: true });
    }
  }
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Written to stdin, which is then closed; `null` leaves stdin open (closed at exit). */
  input?: string | null;
  cwd?: string;
  env?: Record<string, string>;
  /** Kill the process after this long (a safety net; tests never assert on time). */
  killAfterMs?: number;
  /** How stdout is decoded (default utf8; latin1 maps guest bytes 1:1 to characters). */
  encoding?: 'utf8' | 'latin1';
}

export interface CliProcess {
  readonly stdin: NodeJS.WritableStream;
  kill(signal: NodeJS.Signals): void;
  /** Resolves once stdout contains `text`. */
  waitForStdout(text: string): Promise<void>;
  readonly done: Promise<CliResult>;
}

/** Start `node bin/run.js ...args` with piped stdio; the caller drives stdin. */
export function spawnCli(args: readonly string[], opts: CliOptions = {}): CliProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1', ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let waiters: { text: string; resolve: () => void }[] = [];
  child.stdout.setEncoding(opts.encoding ?? 'utf8').on('data', (d: string) => {
    stdout += d;
    waiters = waiters.filter((w) => (stdout.includes(w.text) ? (w.resolve(), false) : true));
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const killer = setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs ?? 30_000);
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(killer);
      for (const w of waiters) w.resolve();
      resolve({ code, stdout, stderr });
    });
  });
  return {
    stdin: child.stdin,
    kill: (sig) => child.kill(sig),
    waitForStdout: (text) =>
      stdout.includes(text) ? Promise.resolve() : new Promise((resolve) => waiters.push({ text, resolve })),
    done,
  };
}

/** Run `node bin/run.js ...args` and collect its output. */
export function runCli(args: readonly string[], opts: CliOptions = {}): Promise<CliResult> {
  const p = spawnCli(args, opts);
  if (opts.input !== null) p.stdin.end(opts.input ?? '');
  return p.done;
}

export const fixture = (name: string) => path.join(FIXTURES, name);
