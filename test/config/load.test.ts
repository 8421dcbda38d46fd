/**
 * Machine descriptions that load: extends and instance-list merging, --set overrides typed by the
 * schema, flag shorthands, user defaults from cosmiconfig, and wiring through the container.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadMachine, resolveMachine, VmmErrors } from '../../src/index.js';

const PLUGINS = resolve('test/fixtures/plugins');

function workdir(files: Record<string, string>): string {
  mkdirSync('test/.tmp', { recursive: true });
  const dir = mkdtempSync(join(resolve('test/.tmp'), 'config-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text.replaceAll('PLUGINS', PLUGINS));
  }
  return dir;
}

const BASE = `
name: base
host:
  memory: 1MiB
  devices:
    - { plugin: PLUGINS/port-counter.ts, name: a, port: 0x80 }
    - { plugin: PLUGINS/port-counter.ts, name: b, port: 0x90, count: 2 }
    - { plugin: PLUGINS/port-counter.ts, name: c, port: 0xa0 }
`;

const settingsOf = async (file: string, opts = {}) =>
  Object.fromEntries(
    (await resolveMachine(file, { noUserConfig: true, ...opts })).plugins.map((p) => [p.name, p.settings]),
  );

describe('extends', () => {
  it('merges instance lists by name: update, remove, append', async () => {
    const dir = workdir({
      'base.yaml': BASE,
      'variant.yaml': `
extends: base.yaml
host:
  devices:
    - { name: b, count: 4 }
    - { name: c, remove: true }
    - { plugin: PLUGINS/port-counter.ts, name: d, port: 0xb0 }
`,
    });
    expect(await settingsOf(join(dir, 'variant.yaml'))).toEqual({
      a: { port: 0x80, count: 1 },
      b: { port: 0x90, count: 4 },
      d: { port: 0xb0, count: 1 },
    });
  });

  it('drops a section set to null and reports errors in the base file at their own positions', async () => {
    const dir = workdir({
      'base.yaml': BASE.replace('count: 2 }', 'count: 99 }'),
      'variant.yaml': 'extends: base.yaml\nname: v\n',
    });
    const line = BASE.replace('count: 2 }', 'count: 99 }').replaceAll('PLUGINS', PLUGINS).split('\n')[6]!;
    const col = line.indexOf('count: 99') + 'count: '.length + 1;
    await expect(resolveMachine(join(dir, 'variant.yaml'), { noUserConfig: true })).rejects.toThrow(
      `base.yaml:7:${col}: count for port-counter (host.devices[1]): number 99 is too large (maximum 16)`,
    );
  });
});

describe('--set', () => {
  it('types values through the schema: hex numbers, by instance name or index', async () => {
    const dir = workdir({ 'm.yaml': BASE });
    const s = await settingsOf(join(dir, 'm.yaml'), {
      set: ['host.devices.a.port=0x2f8', 'host.devices[2].count=3'],
    });
    expect(s.a).toEqual({ port: 0x2f8, count: 1 });
    expect(s.c).toEqual({ port: 0xa0, count: 3 });
  });

  it('reports a wrongly typed value against the --set argument', async () => {
    const dir = workdir({ 'm.yaml': BASE });
    const err = await resolveMachine(join(dir, 'm.yaml'), {
      noUserConfig: true,
      set: ['host.devices.b.count=lots'],
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmmErrors);
    expect((err as VmmErrors).errors.map((e) => e.format())).toEqual([
      '--set host.devices.b.count=lots: count for port-counter (host.devices[1]): expected a number, got the string "lots"',
    ]);
  });

  it('names the items a list has when the instance name is wrong', async () => {
    const dir = workdir({ 'm.yaml': BASE });
    await expect(
      resolveMachine(join(dir, 'm.yaml'), { noUserConfig: true, set: ['host.devices.zz.port=1'] }),
    ).rejects.toThrow('no item "zz" in host.devices (it has: a, b, c)');
  });

  it('rejects an argument without =', async () => {
    const dir = workdir({ 'm.yaml': BASE });
    await expect(
      resolveMachine(join(dir, 'm.yaml'), { noUserConfig: true, set: ['host.memory'] }),
    ).rejects.toThrow('expected PATH=VALUE');
  });
});

describe('shorthands', () => {
  it('turn flags into settings, and unknown flags into an error listing the known ones', async () => {
    const dir = workdir({
      'm.yaml': BASE + 'shorthands:\n  first-port: host.devices.a.port\n',
    });
    expect((await settingsOf(join(dir, 'm.yaml'), { shorthands: { 'first-port': '0x60' } })).a.port).toBe(
      0x60,
    );
    await expect(
      resolveMachine(join(dir, 'm.yaml'), { noUserConfig: true, shorthands: { kernel: 'x' } }),
    ).rejects.toThrow('--kernel: this machine has no such shorthand');
  });
});

describe('user defaults (cosmiconfig)', () => {
  it('apply under the machine file, per plugin name, from .vmmrc.yaml', async () => {
    const dir = workdir({
      'm.yaml': BASE.replace('name: a, port: 0x80', 'name: a'),
      '.vmmrc.yaml': 'defaults:\n  port-counter:\n    port: 0x3f0\n    count: 2\n',
    });
    const plugins = (await resolveMachine(join(dir, 'm.yaml'), { configSearchFrom: dir })).plugins;
    const s = Object.fromEntries(plugins.map((p) => [p.name, p.settings]));
    expect(s.a).toEqual({ port: 0x3f0, count: 2 }); // both from the defaults
    expect(s.b).toEqual({ port: 0x90, count: 2 }); // the file wins
  });

  it('report a bad default at its position in the user configuration', async () => {
    const dir = workdir({
      'm.yaml': BASE,
      '.vmmrc.yaml': 'defaults:\n  port-counter:\n    cuont: 2\n',
    });
    await expect(resolveMachine(join(dir, 'm.yaml'), { configSearchFrom: dir })).rejects.toThrow(
      /\.vmmrc\.yaml:3:5: unknown setting "cuont" for port-counter/,
    );
  });

  it('add plugin search folders', async () => {
    const dir = workdir({
      'lib/widget/index.ts': `export { default } from '${PLUGINS}/widget.ts';\n`,
      'm.yaml': `host:\n  memory: 1MiB\n  devices:\n    - { plugin: widget, label: hi }\n    - { plugin: ${PLUGINS}/needs-widget.ts }\n`,
      'package.json': JSON.stringify({ name: 'x', vmm: { plugins: ['./lib'] } }),
    });
    const m = await loadMachine(join(dir, 'm.yaml'), { configSearchFrom: dir });
    expect(m.plugins.find((p) => p.name === 'needs-widget')?.wiring).toEqual({ widget: 'widget' });
    expect(m.stats()['needs-widget']).toEqual({ label: 'hi' });
    await m.dispose();
  });
});

describe('wiring through the container', () => {
  it('gives each plugin the provider the plan chose, and devices claim their ports', async () => {
    const dir = workdir({ 'm.yaml': BASE });
    const m = await loadMachine(join(dir, 'm.yaml'), { noUserConfig: true });
    m.machine.hostBus.ioWrite(0x91, 1, 0);
    expect(m.machine.hostBus.ioRead(0xa0, 1)).toBe(1);
    expect(m.machine.hostBus.ioRead(0x70, 1)).toBe(0xff); // unmapped: all ones, counted
    const st = m.stats();
    expect(st.b).toEqual({ reads: 0, writes: 1 });
    expect(st.c).toEqual({ reads: 1, writes: 0 });
    expect(st['host-bus']!.unmappedPortReads).toBe(1);
    await m.dispose();
  });
});

describe('a missing provider', () => {
  it('is reported at the plugin, with the built-in plugins that would provide it', async () => {
    const dir = workdir({ 'm.yaml': 'host:\n  memory: 1MiB\n  boot: { plugin: flat-image, code: "f4" }\n' });
    const err = await resolveMachine(join(dir, 'm.yaml'), { noUserConfig: true }).catch((e: unknown) => e);
    expect((err as VmmErrors).errors.map((e) => [e.format(), e.hint])).toEqual([
      [
        expect.stringMatching(
          /m\.yaml:3:19: flat-image \(host\.boot\) needs a cpu \(.*\), but no plugin in this machine provides one$/,
        ),
        'add a plugin that provides cpu: x86-64',
      ],
    ]);
  });
});
