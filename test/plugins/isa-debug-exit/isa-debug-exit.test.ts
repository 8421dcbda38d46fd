import { describe, expect, it } from 'vitest';
import isaDebugExit from '../../../plugins/isa-debug-exit/index.js';
import { TestMachine } from '../../devices/harness.js';

describe('isa-debug-exit', () => {
  it('stops with status v*2+1 on a byte write to 0xF4', async () => {
    const m = new TestMachine();
    await m.add(isaDebugExit);
    expect(m.hostBus.ioRead(0xf4, 1)).toBe(0);
    expect(m.stopReason).toBeUndefined();
    m.hostBus.ioWrite(0xf4, 1, 0x10);
    expect(m.stopReason).toMatchObject({ kind: 'poweroff', code: 0x21, source: 'isa-debug-exit' });
  });

  it('takes 32-bit writes when iosize is 4 and truncates narrower ones', async () => {
    const m = new TestMachine();
    await m.add(isaDebugExit, { iobase: 0x501, iosize: 4 });
    m.hostBus.ioWrite(0x501, 2, 0x1_0003);
    expect(m.stopReason).toMatchObject({ code: 7 });
    const m2 = new TestMachine();
    await m2.add(isaDebugExit, { iosize: 4 });
    m2.hostBus.ioWrite(0xf4, 4, 0x100);
    expect(m2.stopReason).toMatchObject({ code: 0x201 });
  });
});
