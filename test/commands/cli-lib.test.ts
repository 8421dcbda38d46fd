import { Chalk } from 'chalk';
import { describe, expect, it } from 'vitest';
import { formatError } from '../../src/cli-lib/errors.js';
import { formatPluginInfo, formatPluginList } from '../../src/cli-lib/plugins.js';
import { describeStop, formatStatsTable, formatSummary, statsJson } from '../../src/cli-lib/report.js';
import { parseStatsFlag } from '../../src/cli-lib/up.js';
import { formatMachineTree, formatScalar } from '../../src/cli-lib/validate.js';
import { VmmError, VmmErrors } from '../../src/core/errors.js';

const plain = new Chalk({ level: 0 });

describe('error reports', () => {
  it('prints every VmmError as FILE:LINE:COL: message with its hint, exit 2', () => {
    const errs = new VmmErrors([
      new VmmError('config-invalid', 'unknown key "prot"', {
        location: { file: 'm.yaml', line: 3, col: 7 },
        hint: 'did you mean "port"?',
      }),
      new VmmError('plugin-not-found', 'no plugin "uart"', { location: { plugin: 'com1' } }),
    ]);
    const f = formatError(errs, plain);
    expect(f.exitCode).toBe(2);
    expect(f.text).toBe(
      'm.yaml:3:7: unknown key "prot"\n  hint: did you mean "port"?\nplugin com1: no plugin "uart"',
    );
  });

  it('adds the stack only in debug', () => {
    const e = new VmmError('image', 'cannot read x.bin', { location: { file: 'x.bin' } });
    expect(formatError(e, plain).text).not.toMatch(/\n\s+at /);
    expect(formatError(e, plain, true).text).toMatch(/\n\s+at /);
  });

  it('calls anything else an internal error, exit 1', () => {
    const f = formatError(new TypeError('x is undefined'), plain);
    expect(f.exitCode).toBe(1);
    expect(f.text.split('\n')[0]).toBe('vmm: internal error: x is undefined');
  });
});

describe('stop summary and stats', () => {
  const stats = {
    machine: { virtualNs: 2_500_000_000, wallMs: 1250, instructions: 50_000_000 },
    com1: { txBytes: 1234, rxOverflows: 0, mode: 'fifo' },
  };

  it('describes each stop reason', () => {
    expect(describeStop({ kind: 'poweroff', code: 3, source: 'acpi-pm' })).toBe(
      'guest powered off with code 3 (acpi-pm)',
    );
    expect(
      describeStop({ kind: 'plugin-error', plugin: 'ahci', hook: 'start', error: new Error('boom') }),
    ).toBe('plugin ahci failed in start: boom');
    expect(describeStop({ kind: 'timeout', virtualNs: 1, wallMs: 2 })).toBe('timeout');
  });

  it('summarizes reason, virtual time, wall time and instructions', () => {
    expect(formatSummary({ kind: 'quit' }, stats)).toBe(
      'stopped: quit · virtual 2.500 s · wall 1.250 s · 50,000,000 instructions (40.0 MIPS)',
    );
  });

  it('prints a table grouped by section', () => {
    expect(formatStatsTable(stats).split('\n')).toEqual([
      'section  counter               value',
      'machine  virtualNs     2,500,000,000',
      '         wallMs                1,250',
      '         instructions     50,000,000',
      'com1     txBytes               1,234',
      '         rxOverflows               0',
      '         mode                   fifo',
    ]);
  });

  it('writes JSON with the reason, exit code and counters (errors as their message)', () => {
    const j = JSON.parse(
      statsJson({ kind: 'plugin-error', plugin: 'p', hook: 'run', error: new Error('bad') }, 5, stats),
    ) as Record<string, unknown>;
    expect(j).toEqual({
      reason: { kind: 'plugin-error', plugin: 'p', hook: 'run', error: 'bad' },
      exitCode: 5,
      stats,
    });
  });

  it('parses the --stats flag', () => {
    expect(parseStatsFlag(undefined)).toBeUndefined();
    expect(parseStatsFlag('table')).toEqual({ kind: 'table' });
    expect(parseStatsFlag('json')).toEqual({ kind: 'json' });
    expect(parseStatsFlag('json=out/s.json')).toEqual({ kind: 'json', file: 'out/s.json' });
    expect(() => parseStatsFlag('yaml')).toThrow(/--stats/);
  });
});

describe('validate tree', () => {
  it('shows sections, instances, wiring and settings', () => {
    const text = formatMachineTree({
      file: 'm.yaml',
      shorthands: { kernel: 'host.boot.kernel' },
      plugins: [
        {
          path: 'host.devices[0]',
          name: 'com1',
          plugin: 'uart16550',
          section: 'host',
          settings: { port: 0x3f8, irq: 4, console: 'stdio', fifo: { size: 16 } },
          wiring: { 'interrupt-controller': 'pic' },
          provides: ['serial'],
        },
        {
          path: 'guest.devices[0]',
          name: 'acpi-pm',
          plugin: 'acpi-pm',
          section: 'guest',
          settings: { memory: 16 * 1024 * 1024, features: ['s5', 'reset'] },
          wiring: {},
          provides: [],
        },
      ],
    });
    expect(text).toBe(
      [
        'm.yaml',
        '├─ host',
        '│  └─ com1: uart16550',
        '│     ├─ at host.devices[0]',
        '│     ├─ provides: serial',
        '│     ├─ wired to:',
        '│     │  └─ interrupt-controller -> pic',
        '│     └─ settings:',
        '│        ├─ port: 1016 (0x3f8)',
        '│        ├─ irq: 4',
        '│        ├─ console: stdio',
        '│        └─ fifo:',
        '│           └─ size: 16',
        '├─ guest',
        '│  └─ acpi-pm',
        '│     ├─ at guest.devices[0]',
        '│     └─ settings:',
        '│        ├─ memory: 16777216 (16 MiB)',
        '│        └─ features: [s5, reset]',
        '└─ shorthands',
        '   └─ --kernel -> host.boot.kernel',
      ].join('\n'),
    );
  });

  it('quotes strings that need it', () => {
    expect(formatScalar('> ')).toBe('"> "');
    expect(formatScalar('')).toBe('""');
    expect(formatScalar('disk.img')).toBe('disk.img');
  });
});

describe('plugins listing', () => {
  it('lists sorted by name in aligned columns', () => {
    expect(
      formatPluginList([
        { name: 'uart16550', description: 'a UART', provides: [], needs: [], wants: [] },
        { name: 'hpet', description: 'timer', provides: ['hpet', 'clock'], needs: [], wants: [] },
      ]),
    ).toBe(
      'NAME       PROVIDES     DESCRIPTION\nhpet       hpet, clock  timer\nuart16550  -            a UART',
    );
  });

  it("prints a plugin's settings with defaults", () => {
    const text = formatPluginInfo({
      name: 'uart16550',
      description: 'a UART',
      provides: [],
      needs: ['interrupt-controller'],
      wants: [],
      settings: [
        { key: 'port', type: 'port', default: 0x3f8, description: 'base port' },
        { key: 'console', type: 'string' },
      ],
    });
    expect(text.split('\n')).toEqual([
      'uart16550: a UART',
      '',
      'provides: -',
      'needs:    interrupt-controller',
      'wants:    -',
      '',
      'settings:',
      '  KEY      TYPE    DEFAULT  DESCRIPTION',
      '  port     port    0x3f8    base port',
      '  console  string  -',
    ]);
  });
});

describe('exit-reason table', () => {
  it('turns exits.REASON/hostMs.REASON counters into count, share and host time, largest first', () => {
    const text = formatStatsTable({
      machine: { virtualNs: 5 },
      vmx: {
        'exits.Cpuid': 250,
        'exits.IoInstruction': 750,
        'hostMs.Cpuid': 1.5,
        'hostMs.IoInstruction': 3.25,
        exits: 1000,
        entryFailures: 0,
      },
    });
    expect(text.split('\n')).toEqual([
      'section  counter        value',
      'machine  virtualNs          5',
      'vmx      exits          1,000',
      '         entryFailures      0',
      '',
      'vmx exit reason  count   share  host ms',
      'IoInstruction      750   75.0%    3.250',
      'Cpuid              250   25.0%    1.500',
      'total            1,000  100.0%    4.750',
    ]);
  });

  it('leaves out the host time column when exits are not timed', () => {
    const text = formatStatsTable({ vmx: { 'exits.Hlt': 3, exits: 3 } });
    expect(text.split('\n').slice(-3)).toEqual([
      'vmx exit reason  count   share',
      'Hlt                  3  100.0%',
      'total                3  100.0%',
    ]);
  });
});
