import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT, ensureBuilt, fixture, runCli, spawnCli } from './cli-helpers.js';

beforeAll(ensureBuilt);

const TICKS3 = '> tick 1\n> tick 2\n> tick 3\n';

describe('vmm up', () => {
  it('runs a machine: guest output alone on stdout, the summary on stderr, exit code = power-off code', async () => {
    const r = await runCli(['up', fixture('ticker.yaml')]);
    expect(r.stdout).toBe(TICKS3);
    expect(r.stderr).toMatch(
      /^vmm: stopped: guest powered off with code 0 \(ticker\) · virtual 1\.500 ms · wall .* · 0 instructions\n$/,
    );
    expect(r.code).toBe(0);
  });

  it('--set overrides are typed by the schema and change the run', async () => {
    const r = await runCli([
      'up',
      fixture('ticker.yaml'),
      '--set',
      'host.devices.ticker.ticks=2',
      '--set',
      'host.devices.ticker.code=7',
    ]);
    expect(r.stdout).toBe('> tick 1\n> tick 2\n');
    expect(r.stderr).toContain('powered off with code 7');
    expect(r.code).toBe(7);
  });

  it('a --set value of the wrong type is bad input: exit 2, nothing on stdout', async () => {
    const r = await runCli(['up', fixture('ticker.yaml'), '--set', 'host.devices.ticker.ticks=many']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('expected a number');
  });

  it('--quiet leaves stderr empty on a clean run', async () => {
    const r = await runCli(['up', fixture('ticker.yaml'), '--quiet']);
    expect(r.stdout).toBe(TICKS3);
    expect(r.stderr).toBe('');
  });

  it('reports every error of a bad machine file as FILE:LINE:COL with a hint, exit 2, no stack', async () => {
    const file = 'test/fixtures/cli/bad.yaml'; // named as given, relative to the working directory
    const r = await runCli(['up', file]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines[0]).toBe(`${file}:5:45: unknown setting "prefx" for line-sink (host.devices[0])`);
    expect(lines[1]).toBe('  hint: did you mean "prefix"?');
    expect(lines[2]).toMatch(
      new RegExp(`^${file.replace(/[.]/g, '\\.')}:7:14: ticks for ticker .*expected a number`),
    );
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });

  it('shows the stack trace of bad input only with --log-level debug', async () => {
    const r = await runCli(['up', fixture('bad.yaml'), '--log-level', 'debug']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^\s+at /m);
  });

  it('names a missing machine file', async () => {
    const r = await runCli(['up', fixture('no-such-machine.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no-such-machine.yaml');
    expect(r.stdout).toBe('');
  });

  it('passes piped stdin to the guest console', async () => {
    const r = await runCli(['up', fixture('echo.yaml')], { input: 'hello\nq' });
    expect(r.stdout).toBe('HELLO\nQ');
    expect(r.code).toBe(0);
  });

  it('stops as idle (exit 3) when piped input ends and nothing else can happen', async () => {
    const r = await runCli(['up', fixture('echo.yaml')], { input: 'abc\n' });
    expect(r.stdout).toBe('ABC\n');
    expect(r.stderr).toContain('stopped: idle');
    expect(r.code).toBe(3);
  });

  it('--timeout stops a machine that would run for ever with exit code 124', async () => {
    const r = await runCli(['up', fixture('echo.yaml'), '--timeout', '0.3'], { input: null });
    expect(r.stderr).toContain('stopped: timeout');
    expect(r.code).toBe(124);
  });

  it('--stats prints every counter as a table on stderr', async () => {
    const r = await runCli(['up', fixture('ticker.yaml'), '--stats']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(TICKS3);
    expect(r.stderr).toMatch(/^section +counter +value$/m);
    expect(r.stderr).toMatch(/^ticker +ticks +3$/m);
  });

  it('--stats=json writes the stop reason and counters as JSON after the guest output', async () => {
    const r = await runCli(['up', fixture('ticker.yaml'), '--stats=json', '--quiet']);
    expect(r.stdout.startsWith(TICKS3)).toBe(true);
    const j = JSON.parse(r.stdout.slice(TICKS3.length)) as {
      reason: { kind: string; code: number };
      exitCode: number;
      stats: Record<string, Record<string, number>>;
    };
    expect(j.reason).toMatchObject({ kind: 'poweroff', code: 0 });
    expect(j.exitCode).toBe(0);
    expect(j.stats.ticker!.ticks).toBe(3);
    expect(j.stats.machine!.virtualNs).toBe(1_500_000);
  });

  it('--stats=json=FILE writes the JSON to a file and keeps stdout for the guest', async () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-stats-')), 'stats.json');
    const r = await runCli(['up', fixture('ticker.yaml'), `--stats=json=${out}`]);
    expect(r.stdout).toBe(TICKS3);
    const j = JSON.parse(fs.readFileSync(out, 'utf8')) as { stats: Record<string, Record<string, number>> };
    expect(j.stats.sink!.prefixLength).toBe(2);
  });

  it('takes plugin defaults from .vmmrc.yaml in the working directory, unless --no-user-config', async () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-rc-'));
    fs.writeFileSync(path.join(cwd, '.vmmrc.yaml'), 'defaults:\n  ticker: { code: 9 }\n');
    const withRc = await runCli(['up', fixture('ticker.yaml'), '-q'], { cwd });
    expect(withRc.code).toBe(9);
    const without = await runCli(['up', fixture('ticker.yaml'), '-q', '--no-user-config'], { cwd });
    expect(without.code).toBe(0);
  });

  it('rejects an unknown --stats format and an unknown flag as usage errors', async () => {
    expect((await runCli(['up', fixture('ticker.yaml'), '--stats=xml'])).code).toBe(2);
    expect((await runCli(['up', fixture('ticker.yaml'), '--no-such-flag'])).code).toBe(2);
  });
});

describe('vmm up: stops from outside and from plugins', () => {
  it('a plugin that throws while running stops the machine with exit code 5 and says so', async () => {
    const r = await runCli(['up', fixture('ticker.yaml'), '--set', 'host.devices.ticker.fail-at=2']);
    expect(r.stdout).toBe('> tick 1\n');
    expect(r.stderr).toMatch(/^vmm: error: plugin .* failed in .*: ticker broke at tick 2$/m);
    expect(r.code).toBe(5);
  });

  it('a guest fault prints the state dump on stderr and exits with 4', async () => {
    const r = await runCli(['up', fixture('ticker.yaml'), '--set', 'host.devices.ticker.end=fault', '-q']);
    expect(r.stdout).toBe(TICKS3);
    expect(r.stderr).toBe('TICKS=3\nRIP=0000000000008000\n');
    expect(r.code).toBe(4);
    const loud = await runCli(['up', fixture('ticker.yaml'), '--set', 'host.devices.ticker.end=fault']);
    expect(loud.stderr).toContain('stopped: guest fault in ticker: triple fault');
  });

  it('a guest reset ends the run with exit 0', async () => {
    const r = await runCli(['up', fixture('ticker.yaml'), '--set', 'host.devices.ticker.end=reset']);
    expect(r.stderr).toContain('stopped: guest reset (ticker)');
    expect(r.code).toBe(0);
  });

  it('SIGINT quits a piped session cleanly (exit 0, summary says quit)', async () => {
    const child = spawnCli(['up', fixture('echo.yaml')]);
    child.stdin.write('x');
    await child.waitForStdout('X');
    child.kill('SIGINT');
    const r = await child.done;
    expect(r.stdout).toBe('X');
    expect(r.stderr).toContain('stopped: quit');
    expect(r.code).toBe(0);
  });
});

const hasPython = spawnSync('python3', ['-c', 'import pty'], { stdio: 'ignore' }).status === 0;

describe.skipIf(!hasPython)('vmm up on a terminal', () => {
  function session(args: string[], steps: { wait?: string; send: string }[], after?: string) {
    let argv = [process.execPath, path.join(ROOT, 'bin/run.js'), ...args];
    if (after) argv = ['sh', '-c', `"$@"; ${after}`, 'sh', ...argv];
    const spec = { argv, steps };
    const r = spawnSync('python3', [path.join(ROOT, 'test/commands/pty-session.py'), JSON.stringify(spec)], {
      cwd: ROOT,
      encoding: 'latin1',
      env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1' },
    });
    return JSON.parse(r.stdout) as { output: string; code: number | null };
  }

  it('raw mode: keys go to the guest, C-a h helps, C-a C-a sends C-a, C-a x quits with exit 0', () => {
    const r = session(
      ['up', fixture('echo.yaml'), '--set', 'host.devices.sink.banner=ready'],
      [
        { wait: 'ready', send: 'ab' },
        { wait: 'AB', send: '\x01h' },
        { wait: 'C-a x', send: '\x01\x01c' },
        { wait: '\x01C', send: '\x01x' },
      ],
    );
    // Raw mode: no line discipline, so "ab" reached the guest without Enter and was not echoed by the tty.
    expect(r.output).toContain('AB');
    expect(r.output).not.toContain('ab');
    expect(r.output).toContain('C-a x    exit the emulator');
    expect(r.output).toContain('\x01C');
    expect(r.output).toContain('stopped: quit');
    expect(r.code).toBe(0);
  });

  it('gives the terminal back (line discipline and echo on) after C-a x', () => {
    const r = session(
      ['up', fixture('echo.yaml'), '--set', 'host.devices.sink.banner=ready'],
      [{ wait: 'ready', send: '\x01x' }],
      'echo; stty -a',
    );
    const stty = r.output.slice(r.output.indexOf('stopped: quit'));
    expect(stty).toMatch(/(^|\s)icanon(\s|$)/m);
    expect(stty).toMatch(/(^|\s)echo(\s|$)/m);
    expect(stty).toMatch(/(^|\s)isig(\s|$)/m);
  });
});
