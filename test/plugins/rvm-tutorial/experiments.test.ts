/**
 * Experiments.exception: an intercepted exception is reflected into the guest, combined with the
 * event whose delivery it interrupted as SDM Vol. 3A 6.15 Table 6-5 says (double fault, shutdown).
 */
import { describe, expect, it } from 'vitest';
import { EventType, Vector } from '../../../src/x86/exceptions.js';
import { ExitReason, IntrInfo, VmcsField as F } from '../../../src/x86/vmx.js';
import {
  EXIT_SWITCH_NAMES,
  Experiments,
  type ExitSwitches,
  type ExperimentHost,
} from '../../../plugins/rvm-tutorial/experiments.js';
import { FakeVmx } from './fake-vmx.js';

const hw = (vector: number, err: boolean): number =>
  IntrInfo.VALID |
  (EventType.HardwareException << IntrInfo.TYPE_SHIFT) |
  vector |
  (err ? IntrInfo.DELIVER_ERROR_CODE : 0);

function experiments(): { x: Experiments; faults: string[] } {
  const faults: string[] = [];
  const host: ExperimentHost = {
    tsc: () => 0,
    tscAux: () => 0,
    invalidatePage: () => {},
    setCr2: () => {},
    readTpr: undefined,
    writeTpr: undefined,
    unprotectPage: () => {},
    primaryControls: () => 0,
    setPrimaryControls: () => {},
    paging: () => true,
    paePaging: () => false,
    longMode: () => false,
    log: { info: () => {}, warn: () => {} },
    fault: (m) => void faults.push(m),
  };
  const x = new Experiments(
    {
      exits: Object.fromEntries(EXIT_SWITCH_NAMES.map((n) => [n, false])) as unknown as ExitSwitches,
      monitorTrap: 0,
      preemptionTimer: undefined,
      exceptionBitmap: [Vector.GP, Vector.PF],
      pfErrorCodeMask: 0,
      pfErrorCodeMatch: 0,
      eptProtect: [],
      eptViolation: 'stop',
    },
    host,
  );
  return { x, faults };
}

/** An exception exit for `vector` (error code 0x18) during delivery of `first` (or none). */
function exceptionExit(
  vector: number,
  first: number | undefined,
): { x: Experiments; vmx: FakeVmx; faults: string[] } {
  const { x, faults } = experiments();
  const vmx = new FakeVmx();
  vmx.vmwrite(F.VmExitInterruptionInfo, hw(vector, true));
  vmx.vmwrite(F.VmExitInterruptionErrorCode, 0x18);
  vmx.vmwrite(F.IdtVectoringInfo, first === undefined ? 0 : hw(first, true));
  return { x, vmx, faults };
}

describe('rvm-tutorial experiments: reflected exceptions', () => {
  it('a #GP alone goes back with its error code', () => {
    const { x, vmx, faults } = exceptionExit(Vector.GP, undefined);
    expect(x.handle(vmx.asVmx, ExitReason.ExceptionOrNmi)).toBe(true);
    expect(vmx.vmread32(F.VmEntryInterruptionInfo)).toBe(hw(Vector.GP, true) >>> 0);
    expect(vmx.vmread32(F.VmEntryExceptionErrorCode)).toBe(0x18);
    expect(faults).toEqual([]);
  });

  it('a #GP while delivering a #PF becomes #DF with error code 0', () => {
    const { x, vmx } = exceptionExit(Vector.GP, Vector.PF);
    expect(x.handle(vmx.asVmx, ExitReason.ExceptionOrNmi)).toBe(true);
    expect(vmx.vmread32(F.VmEntryInterruptionInfo)).toBe(hw(Vector.DF, true) >>> 0);
    expect(vmx.vmread32(F.VmEntryExceptionErrorCode)).toBe(0);
    expect(x.stats.doubleFaults).toBe(1);
  });

  it('a #GP or #PF while delivering a #DF is a shutdown, not a second #DF', () => {
    for (const vector of [Vector.GP, Vector.PF]) {
      const { x, vmx, faults } = exceptionExit(vector, Vector.DF);
      expect(x.handle(vmx.asVmx, ExitReason.ExceptionOrNmi)).toBe(false);
      expect(faults[0]).toMatch(/triple fault/);
      expect(vmx.fields.has(F.VmEntryInterruptionInfo)).toBe(false);
    }
  });
});
