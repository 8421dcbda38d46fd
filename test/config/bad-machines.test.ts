/**
 * The bad-machine corpus: every file under test/fixtures/bad/ must fail with exactly these
 * errors (`FILE:LINE:COL: message`, then the hint in brackets). One row per file; a new bad file
 * without a row fails the suite, so the corpus and its expectations stay together.
 */
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadMachine, VmmError, VmmErrors } from '../../src/index.js';

const DIR = 'test/fixtures/bad';

const EXPECTED: [file: string, errors: string[]][] = [
  [
    'extends-cycle-a.yaml',
    [
      'test/fixtures/bad/extends-cycle-b.yaml:1:10: extends cycle: test/fixtures/bad/extends-cycle-a.yaml -> test/fixtures/bad/extends-cycle-b.yaml -> test/fixtures/bad/extends-cycle-a.yaml',
    ],
  ],
  [
    'bad-enum.yaml',
    [
      'test/fixtures/bad/bad-enum.yaml:2:9: clock.mode: the string "realtim" is not one of deterministic, realtime  [hint: did you mean "realtime"?]',
    ],
  ],
  [
    'bad-instance-name.yaml',
    [
      'test/fixtures/bad/bad-instance-name.yaml:4:51: host.devices[0].name: names start with a letter and use letters, digits, - and _',
    ],
  ],
  [
    'bad-size-unit.yaml',
    [
      'test/fixtures/bad/bad-size-unit.yaml:2:11: host.memory: "12XB" is not a size (examples: 16MiB, 64M, 0x1000000)',
    ],
  ],
  [
    'devices-not-a-list.yaml',
    [
      "test/fixtures/bad/devices-not-a-list.yaml:3:12: host.devices: expected a list, got a mapping  [hint: host.devices: the host machine's devices]",
    ],
  ],
  [
    'duplicate-name.yaml',
    [
      'test/fixtures/bad/duplicate-name.yaml:5:17: two plugin instances are named "dup" (the other is host.devices[0] at test/fixtures/bad/duplicate-name.yaml:4:17)  [hint: give one of them a different name: key]',
    ],
  ],
  [
    'extends-missing.yaml',
    [
      'test/fixtures/bad/extends-missing.yaml:1:10: extends: no such file no-such-base.yaml (looked for test/fixtures/bad/no-such-base.yaml)',
    ],
  ],
  [
    'missing-plugin-file.yaml',
    [
      'test/fixtures/bad/missing-plugin-file.yaml:4:15: plugin file ./does-not-exist.ts not found (looked for test/fixtures/bad/does-not-exist.ts)',
    ],
  ],
  [
    'missing-plugin-key.yaml',
    [
      'test/fixtures/bad/missing-plugin-key.yaml:4:7: missing key "host.devices[0].plugin": expected a string  [hint: host.devices[0].plugin: built-in plugin name, a path to a .ts/.js file, or a package name]',
    ],
  ],
  [
    'negative-size.yaml',
    [
      'test/fixtures/bad/negative-size.yaml:2:11: host.memory: "-4096" is not a size (examples: 16MiB, 64M, 0x1000000)',
    ],
  ],
  [
    'not-a-mapping.yaml',
    ['test/fixtures/bad/not-a-mapping.yaml:1:1: a machine description must be a mapping (key: value lines)'],
  ],
  [
    'number-not-integer.yaml',
    [
      'test/fixtures/bad/number-not-integer.yaml:5:14: count for port-counter (host.devices[0]): expected an integer, got number 2.5  [hint: count: number of ports]',
    ],
  ],
  [
    'number-too-large.yaml',
    [
      'test/fixtures/bad/number-too-large.yaml:5:13: port for port-counter (host.devices[0]): number 65536 is too large (maximum 0xffff)  [hint: port: first port]',
    ],
  ],
  [
    'number-too-small.yaml',
    [
      'test/fixtures/bad/number-too-small.yaml:5:14: count for port-counter (host.devices[0]): number 0 is too small (minimum 1)  [hint: count: number of ports]',
    ],
  ],
  [
    'plugin-no-export.yaml',
    [
      'test/fixtures/bad/plugin-no-export.yaml:4:15: plugin ../plugins/no-definition.ts does not export a plugin definition (export default definePlugin({ name, settings, create }))',
    ],
  ],
  [
    'plugin-syntax-error.yaml',
    [
      'test/fixtures/bad/plugin-syntax-error.yaml:4:15: plugin ../plugins/broken-syntax.ts failed to load: syntax error: Unexpected token (test/fixtures/plugins/broken-syntax.ts:7:42)',
    ],
  ],
  [
    'plugin-throws.yaml',
    [
      'test/fixtures/bad/plugin-throws.yaml:4:15: plugin ../plugins/throws-on-load.ts failed to load: this module refuses to load (test/fixtures/plugins/throws-on-load.ts:2:7)',
    ],
  ],
  [
    'port-conflict.yaml',
    [
      'test/fixtures/bad/port-conflict.yaml:5:17: b (port-counter, host.devices[1]) failed in attach: b: I/O port 0x0082 is already claimed by a on host',
    ],
  ],
  [
    'several-errors.yaml',
    [
      'test/fixtures/bad/several-errors.yaml:4:54: unknown setting "prot" for port-counter (host.devices[0])  [hint: did you mean "port"?]',
      'test/fixtures/bad/several-errors.yaml:5:61: count for port-counter (host.devices[1]): number 99 is too large (maximum 16)  [hint: count: number of ports]',
      'test/fixtures/bad/several-errors.yaml:6:1: unknown key "bogus"  [hint: valid keys: name, description, extends, shorthands, clock, host, vmm, guest]',
    ],
  ],
  [
    'unknown-host-key.yaml',
    ['test/fixtures/bad/unknown-host-key.yaml:2:3: unknown key "memroy"  [hint: did you mean "memory"?]'],
  ],
  [
    'unknown-plugin.yaml',
    [
      'test/fixtures/bad/unknown-plugin.yaml:4:15: unknown plugin "uart1655"  [hint: did you mean "uart16550"? (vmm plugins lists them)]',
    ],
  ],
  [
    'unknown-setting.yaml',
    [
      'test/fixtures/bad/unknown-setting.yaml:5:7: unknown setting "prot" for port-counter (host.devices[0])  [hint: did you mean "port"?]',
    ],
  ],
  [
    'unknown-top-key.yaml',
    [
      'test/fixtures/bad/unknown-top-key.yaml:1:1: missing key "host": expected a mapping  [hint: host: the physical machine]',
      'test/fixtures/bad/unknown-top-key.yaml:1:1: unknown key "hots"  [hint: did you mean "host"?]',
    ],
  ],
  [
    'wiring-ambiguous.yaml',
    [
      'test/fixtures/bad/wiring-ambiguous.yaml:4:15: needs-widget (host.devices[0]) needs one widget, but 2 plugins provide one: w1 (host.devices[1]) and w2 (host.devices[2])  [hint: remove one of them, or move one into another section]',
    ],
  ],
  [
    'wiring-cycle.yaml',
    [
      'test/fixtures/bad/wiring-cycle.yaml:4:15: dependency cycle: cycle-a -> cycle-b -> cycle-a  [hint: a plugin cannot need, directly or indirectly, something it provides]',
    ],
  ],
  [
    'wiring-missing.yaml',
    [
      'test/fixtures/bad/wiring-missing.yaml:4:15: needs-widget (host.devices[0]) needs a widget (a test widget), but no plugin in this machine provides one  [hint: add a plugin that provides widget (vmm plugins shows what each plugin provides)]',
    ],
  ],
  [
    'wrong-type-bool.yaml',
    [
      'test/fixtures/bad/wrong-type-bool.yaml:5:14: count for port-counter (host.devices[0]): expected a number, got boolean true  [hint: count: number of ports]',
    ],
  ],
  [
    'wrong-type-string.yaml',
    [
      'test/fixtures/bad/wrong-type-string.yaml:5:13: port for port-counter (host.devices[0]): expected a port, got the string "eighty"  [hint: port: first port]',
    ],
  ],
  [
    'yaml-bad-indent.yaml',
    [
      'test/fixtures/bad/yaml-bad-indent.yaml:2:11: YAML syntax: Nested mappings are not allowed in compact mappings',
      'test/fixtures/bad/yaml-bad-indent.yaml:2:11: YAML syntax: Implicit keys need to be on a single line',
    ],
  ],
  [
    'yaml-duplicate-key.yaml',
    ['test/fixtures/bad/yaml-duplicate-key.yaml:3:1: YAML syntax: Map keys must be unique'],
  ],
  [
    'yaml-unclosed-flow.yaml',
    [
      'test/fixtures/bad/yaml-unclosed-flow.yaml:6:1: YAML syntax: Flow sequence in block collection must be sufficiently indented and end with a ]',
    ],
  ],
];

async function errorsOf(file: string): Promise<string[]> {
  try {
    const m = await loadMachine(`${DIR}/${file}`, { noUserConfig: true });
    await m.dispose();
    return [];
  } catch (e) {
    const errs = e instanceof VmmErrors ? e.errors : e instanceof VmmError ? [e] : undefined;
    if (!errs) throw e;
    return errs.map((x) => x.format() + (x.hint ? `  [hint: ${x.hint}]` : ''));
  }
}

describe('bad machine files', () => {
  it('has an expectation for every file in the corpus, and at least 20 files', () => {
    const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThanOrEqual(20);
    const listed = EXPECTED.map(([f]) => f);
    // extends-cycle-b.yaml is only the other half of a cycle.
    expect(files.filter((f) => !listed.includes(f)).sort()).toEqual(['extends-cycle-b.yaml']);
  });

  it.each(EXPECTED)('%s', async (file, expected) => {
    expect(await errorsOf(file)).toEqual(expected);
  });
});
