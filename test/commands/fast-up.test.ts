/**
 * `vmm up` has two parsers: oclif's, and the fast path that skips loading oclif (src/cli-lib/fast-up.ts).
 * For the usual command lines both must give the same options; for anything else the fast path
 * must decline so that oclif reports the problem.
 */
import { parse } from '@oclif/core/parser';
import { describe, expect, it } from 'vitest';
import { fastParseUp, readUpFlags } from '../../src/cli-lib/fast-up.js';
import { upOptions, type UpFlags } from '../../src/cli-lib/up.js';
import Up from '../../src/commands/up.js';
import { ROOT, ensureBuilt, fixture, runCli } from './cli-helpers.js';

async function viaOclif(argv: string[]) {
  const out = await parse(
    argv.map((a) => (a === '--stats' ? '--stats=table' : a)),
    { flags: Up.flags, args: Up.args, strict: true },
  );
  return upOptions(out.args.file as string | undefined, out.flags as UpFlags);
}

const manifestFlags = readUpFlags(ROOT)!;

const COMMON: string[][] = [
  [],
  ['m.yaml'],
  ['m.yaml', '--set', 'a.b=1', '--set', 'c[0].d=x y'],
  ['--set', 'a=1', 'm.yaml'],
  ['-s', 'a=1', 'm.yaml', '-q'],
  ['m.yaml', '--stats'],
  ['--stats', 'm.yaml'],
  ['m.yaml', '--stats=json'],
  ['m.yaml', '--stats=json=out/stats.json', '--quiet'],
  ['m.yaml', '--timeout', '2.5', '--log-level', 'debug'],
  ['m.yaml', '--timeout=30', '--log-level=trace'],
  [
    'machines/pc-multiboot.yaml',
    '--kernel',
    'k.elf',
    '--append',
    'console=ttyS0 phase=alu',
    '--initrd',
    'a.bin,b.bin',
  ],
  ['m.yaml', '--clock=realtime', '--no-user-config'],
  ['m.yaml', '--set=guest.memory=32MiB'],
];

const UNUSUAL: string[][] = [
  ['--help'],
  ['m.yaml', '-h'],
  ['m.yaml', '-qs', 'a=1'],
  ['m.yaml', '-sa=1'],
  ['m.yaml', '--bogus'],
  ['a.yaml', 'b.yaml'],
  ['m.yaml', '--log-level', 'loud'],
  ['m.yaml', '--clock', 'fast'],
  ['m.yaml', '--timeout', '0'],
  ['m.yaml', '--timeout', 'soon'],
  ['m.yaml', '--stats=xml'],
  ['--', 'm.yaml'],
  ['m.yaml', '--set'],
  ['m.yaml', '--kernel', '--quiet'],
];

describe('vmm up fast path', () => {
  it('knows the flags of up from the manifest', () => {
    expect(Object.keys(manifestFlags).sort()).toEqual(Object.keys(Up.flags).sort());
  });

  it.each(COMMON)('parses %j exactly as oclif does', async (...argv) => {
    const fast = fastParseUp(argv, manifestFlags);
    expect(fast, 'the fast path declined a common command line').toBeDefined();
    expect(fast).toEqual(await viaOclif(argv));
  });

  it.each(UNUSUAL)('declines %j (oclif explains it)', (...argv) => {
    expect(fastParseUp(argv, manifestFlags)).toBeUndefined();
  });
});

describe('vmm up without the fast path', () => {
  it('runs the same machine the same way through oclif', async () => {
    await ensureBuilt();
    const args = ['up', '--set', 'host.devices.ticker.ticks=2', fixture('ticker.yaml'), '--stats=json', '-q'];
    const fast = await runCli(args);
    const slow = await runCli(args, { env: { VMM_NO_FAST_PATH: '1' } });
    expect(fast.code).toBe(0);
    expect(slow.code).toBe(0);
    const strip = (s: string) => s.replace(/"wallMs": \d+/g, '"wallMs": 0');
    expect(strip(slow.stdout)).toBe(strip(fast.stdout));
    expect(fast.stdout.startsWith('> tick 1\n> tick 2\n{')).toBe(true);
    expect(slow.stderr).toBe(fast.stderr);
  });
});
