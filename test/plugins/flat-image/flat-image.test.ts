/** flat-image: raw bytes land at their address and the CPU starts where and how the settings say. */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadMachine, resolveMachine } from '../../../src/index.js';

const FAKE_CPU = resolve('test/fixtures/plugins/fake-cpu.ts');

function machine(boot: string, files: Record<string, Uint8Array> = {}): string {
  mkdirSync('test/.tmp', { recursive: true });
  const dir = mkdtempSync(join(resolve('test/.tmp'), 'flat-'));
  for (const [n, d] of Object.entries(files)) writeFileSync(join(dir, n), d);
  const file = join(dir, 'm.yaml');
  writeFileSync(
    file,
    `host:\n  memory: 1MiB\n  cpu: { plugin: ${FAKE_CPU} }\n  boot: { plugin: flat-image, ${boot} }\n`,
  );
  return file;
}

async function boot(file: string) {
  const m = await loadMachine(file, { noUserConfig: true });
  await m.run({ virtualTimeoutNs: 1 });
  return { m, entry: (m.machine.cpu as unknown as { entry: unknown }).entry };
}

describe('flat-image', () => {
  it('loads a file and starts in real mode at CS:IP', async () => {
    const bios = new Uint8Array([0xfa, 0xfc, 0x31, 0xc0]);
    const { m, entry } = await boot(machine('file: bios.bin, address: 0x8000', { 'bios.bin': bios }));
    expect(m.machine.hostBus.readBytes(0x8000, 4)).toEqual(bios);
    expect(entry).toEqual({ mode: 'real', cs: 0, ip: 0x8000 });
    await m.dispose();
  });

  it('loads inline hex code, with a segment and an entry of its own', async () => {
    const { m, entry } = await boot(
      machine('code: "90 90 f4", address: 0xf0000, cs: 0xf000, entry: 0xf0002'),
    );
    expect(m.machine.hostBus.readBytes(0xf0000, 3)).toEqual(new Uint8Array([0x90, 0x90, 0xf4]));
    expect(entry).toEqual({ mode: 'real', cs: 0xf000, ip: 2 });
    await m.dispose();
  });

  it('starts flat protected mode when asked', async () => {
    const { m, entry } = await boot(
      machine('code: "f4", address: 0x100000, mode: protected'.replace('0x100000', '0x10000')),
    );
    expect(entry).toEqual({ mode: 'protected', ip: 0x10000 });
    await m.dispose();
  });

  it.each([
    ['neither file nor code', 'address: 0x8000', 'flat-image (host.boot): give exactly one of file and code'],
    ['bad hex', 'code: "9g"', 'code for flat-image (host.boot): expected pairs of hex digits'],
  ])('rejects %s at validation', async (_w, boot, msg) => {
    await expect(resolveMachine(machine(boot), { noUserConfig: true })).rejects.toThrow(msg);
  });

  it.each([
    ['a missing file', 'file: nope.bin', 'image file'],
    ['an image beyond RAM', 'code: "90 90", address: 0xfffff', 'do not fit in RAM'],
    ['an entry CS cannot reach', 'code: "90", address: 0x20000', 'is not reachable from CS=0x0'],
  ])('refuses %s when starting', async (_w, boot, msg) => {
    await expect(boot_(machine(boot))).rejects.toThrow(msg);
  });
});

const boot_ = boot;
