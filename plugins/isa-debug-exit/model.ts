/**
 * QEMU's isa-debug-exit device (hw/misc/debugexit.c): a write of value v stops the machine with
 * exit status (v << 1) | 1, so a test guest can report success or failure in the process status
 * (status 1 and up cannot be confused with a clean exit of 0).
 */
import type { PortDevice } from '../../src/core/bus.js';
import type { StopReason } from '../../src/core/stop.js';

/** The status a write of `value` produces (QEMU hw/misc/debugexit.c semantics). */
export const debugExitStatus = (value: number): number => value * 2 + 1;

export class IsaDebugExit implements PortDevice {
  writes = 0;
  constructor(
    private readonly stop: (reason: StopReason) => void,
    private readonly source: string,
  ) {}
  /** Reads return 0 (the device only has a write side). */
  ioRead(): number {
    return 0;
  }
  ioWrite(_offset: number, size: 1 | 2 | 4, value: number): void {
    this.writes++;
    const v = size === 4 ? value >>> 0 : value & ((1 << (size * 8)) - 1);
    this.stop({
      kind: 'poweroff',
      code: debugExitStatus(v),
      source: this.source,
      message: `isa-debug-exit ${v}`,
    });
  }
}
