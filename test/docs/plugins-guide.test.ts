/** The plugin author's guide's worked example (docs/examples/port-io-counter) loads and works. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadMachine, MemoryLog, pluginInfo, resolveMachine } from '../../src/index.js';

const MACHINE = 'docs/examples/port-io-counter/machine.yaml';

describe('docs/plugins.md worked example', () => {
  it('loads from its YAML file, claims its ports and counts accesses', async () => {
    const log = new MemoryLog();
    const m = await loadMachine(MACHINE, { noUserConfig: true, logSink: log.sink });
    const bus = m.machine.hostBus;
    bus.ioWrite(0x80, 1, 0x12);
    bus.ioWrite(0x82, 2, 0x3456);
    bus.ioWrite(0x83, 2, 0x7777); // straddles the end of the range: unmapped, dropped
    expect(bus.ioRead(0x81, 1)).toBe(0x42);
    expect(bus.ioRead(0x84, 1)).toBe(0xff); // outside the range: unmapped
    expect(m.stats()['post-codes']).toEqual({ reads: 1, writes: 2, 'last-write': 0x3456 });
    const reason = await m.run({ virtualTimeoutNs: 1 });
    expect(reason.kind).toBe('timeout');
    expect(log.text()).toContain('post-codes: 1 reads, 2 writes');
    await m.dispose();
  });

  it('is described by its schema in the resolved machine', async () => {
    const r = await resolveMachine(MACHINE, { noUserConfig: true });
    expect(r.plugins).toEqual([
      expect.objectContaining({
        name: 'post-codes',
        path: 'host.devices[0]',
        settings: { base: 0x80, ports: 4, 'read-value': 0x42, report: true },
      }),
    ]);
  });

  it('is the code the guide shows', () => {
    const guide = readFileSync('docs/plugins.md', 'utf8');
    expect(guide).toContain('docs/examples/port-io-counter/port-io-counter.ts');
    expect(guide).toContain("import { definePlugin, port, z } from 'vmm';");
  });

  it('built-in plugins describe their settings the same way', async () => {
    const info = await pluginInfo('uart16550');
    expect(info.settings.map((s) => s.key)).toContain('port');
    expect(info.settings.every((s) => typeof s.description === 'string' && s.description.length > 0)).toBe(
      true,
    );
  });
});
