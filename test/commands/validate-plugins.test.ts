import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, fixture, runCli } from './cli-helpers.js';

beforeAll(ensureBuilt);

describe('vmm validate', () => {
  it('prints the resolved machine as a tree: instances, wiring, settings after defaults', async () => {
    const r = await runCli(['validate', 'test/fixtures/cli/ticker.yaml']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const out = r.stdout;
    expect(out.split('\n')[0]).toBe('test/fixtures/cli/ticker.yaml');
    expect(out).toContain('└─ host\n');
    expect(out).toMatch(/├─ sink: line-sink.*\n.*at host\.devices\[0\]\n.*provides: line-sink\n/);
    expect(out).toMatch(/└─ ticker: ticker.*\n.*at host\.devices\[1\]\n.*wired to:\n.*line-sink -> sink\n/);
    expect(out).toContain('ticks: 3\n');
    expect(out).toContain('period-us: 500\n');
    // A default that the file does not spell out:
    expect(out).toContain('code: 0\n');
  });

  it('shows --set overrides in the tree', async () => {
    const r = await runCli(['validate', fixture('ticker.yaml'), '--set', 'host.devices.ticker.code=9']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('code: 9\n');
    expect(r.stdout).not.toContain('code: 0\n');
  });

  it('--json gives the same resolution for scripts', async () => {
    const r = await runCli(['validate', fixture('ticker.yaml'), '--json']);
    const j = JSON.parse(r.stdout) as {
      plugins: { name: string; settings: Record<string, unknown>; wiring: Record<string, string> }[];
    };
    expect(j.plugins.map((p) => p.name)).toEqual(['sink', 'ticker']);
    expect(j.plugins[1]!.wiring).toEqual({ 'line-sink': 'sink' });
    expect(j.plugins[1]!.settings).toEqual({
      ticks: 3,
      'period-us': 500,
      code: 0,
      end: 'poweroff',
      'fail-at': 0,
    });
  });

  it("works on the plugin guide's custom device example", async () => {
    const r = await runCli(['validate', 'docs/examples/port-io-counter/machine.yaml']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ {3}└─ post-codes: port-io-counter .*\n.*at host\.devices\[0\]\n/m);
    expect(r.stdout).toContain('base: 128 (0x80)\n');
  });

  it('reports every error with exit code 2 and prints no tree', async () => {
    const r = await runCli(['validate', 'test/fixtures/cli/bad.yaml']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.match(/^test\/fixtures\/cli\/bad\.yaml:\d+:\d+: /gm)).toHaveLength(2);
  });
});

describe('vmm plugins', () => {
  it('lists the built-in plugins with what they provide', async () => {
    const json = await runCli(['plugins', '--json']);
    expect(json.code).toBe(0);
    const list = JSON.parse(json.stdout) as { name: string; provides: string[] }[];
    expect(list.length).toBeGreaterThan(0);
    const r = await runCli(['plugins']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME +PROVIDES +DESCRIPTION$/);
    expect(lines.slice(1).map((l) => l.split(/ +/)[0])).toEqual(list.map((p) => p.name).sort());
  });

  it("prints one plugin's settings with type, default and description", async () => {
    const list = JSON.parse((await runCli(['plugins', '--json'])).stdout) as { name: string }[];
    const name = list[0]!.name;
    const info = JSON.parse((await runCli(['plugins', name, '--json'])).stdout) as {
      name: string;
      settings: { key: string; type: string; description?: string }[];
    };
    expect(info.name).toBe(name);
    const r = await runCli(['plugins', name]);
    expect(r.code).toBe(0);
    expect(r.stdout.startsWith(`${name}: `)).toBe(true);
    for (const s of info.settings) {
      expect(r.stdout).toMatch(
        new RegExp(`^  ${s.key} +${s.type.replace(/[|()[\]{}.*+?^$\\]/g, '\\$&')} `, 'm'),
      );
    }
  });

  it('an unknown plugin name is an error with exit code 2', async () => {
    const r = await runCli(['plugins', 'no-such-plugin']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('no-such-plugin');
  });
});

describe('vmm --help', () => {
  it('lists every command', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    for (const c of ['up', 'validate', 'plugins']) expect(r.stdout).toMatch(new RegExp(`^  ${c} `, 'm'));
  });

  it('vmm help COMMAND and -h show the same help as --help', async () => {
    const ref = await runCli(['up', '--help']);
    expect(ref.stdout).toContain('USAGE\n  $ vmm up [FILE]');
    expect((await runCli(['help', 'up'])).stdout).toBe(ref.stdout);
    expect((await runCli(['up', '-h'])).stdout).toBe(ref.stdout);
    const disk = await runCli(['help', 'disk', 'create']);
    expect(disk.stdout).toContain('$ vmm disk create IMAGE --size SIZE');
  });
});
