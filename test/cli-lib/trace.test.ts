/** `vmm up --trace exits[=FILE]` and `--stats` switching on exit timing, against a stand-in vmx plugin. */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { enableExitTiming, formatExit, parseTraceFlag, startTrace } from '../../src/cli-lib/trace.js';
import { loadMachine } from '../../src/index.js';

function machine(withVmx: boolean): string {
  mkdirSync('test/.tmp', { recursive: true });
  const dir = mkdtempSync(join(resolve('test/.tmp'), 'trace-'));
  const file = join(dir, 'm.yaml');
  const vmm = withVmx
    ? `vmm:\n  virtualization: { plugin: ${resolve('test/fixtures/plugins/fake-vmx.ts')} }\n`
    : '';
  writeFileSync(file, `host:\n  memory: 1MiB\n${vmm}`);
  return file;
}

describe('--trace exits', () => {
  it('parses its forms and refuses others', () => {
    expect(parseTraceFlag(undefined)).toBeUndefined();
    expect(parseTraceFlag('exits')).toEqual({ kind: 'exits' });
    expect(parseTraceFlag('exits=/tmp/x')).toEqual({ kind: 'exits', file: '/tmp/x' });
    expect(parseTraceFlag('exits+insn')).toEqual({ kind: 'exits', insn: true });
    expect(parseTraceFlag('exits+insn=/tmp/x')).toEqual({ kind: 'exits', insn: true, file: '/tmp/x' });
    for (const bad of ['instructions', 'exits+', 'exits=', 'exits+insns', 'insn'])
      expect(() => parseTraceFlag(bad)).toThrow("--trace takes 'exits', 'exits+insn', either with '=FILE'");
  });

  it('writes one line per exit, with the SDM reason names, to a file', async () => {
    const m = await loadMachine(machine(true), { noUserConfig: true });
    const out = join(resolve('test/.tmp'), `trace-${process.pid}.txt`);
    const t = await startTrace(m, { kind: 'exits', file: out }, process.stderr);
    if (typeof t === 'string') throw new Error(t);
    await m.run();
    t.close();
    expect(readFileSync(out, 'utf8')).toBe(
      'exit 1 t=1000ns IoInstruction qual=0x3f80000 rip=0x8010\n' +
        'exit 2 t=1000ns Cpuid qual=0x0 rip=0x8012\n' +
        'exit 3 t=1000ns EntryFailureGuestState (entry failure) qual=0x0 rip=0x8014\n',
    );
    await m.dispose();
  });

  it('writes to stderr when no file is named', async () => {
    const m = await loadMachine(machine(true), { noUserConfig: true });
    let text = '';
    const t = await startTrace(m, { kind: 'exits' }, { write: (s: string) => (text += s) });
    if (typeof t === 'string') throw new Error(t);
    await m.run();
    t.close();
    expect(text.split('\n').filter(Boolean)).toHaveLength(3);
    await m.dispose();
  });

  it('says so when the machine has no virtualization plugin', async () => {
    const m = await loadMachine(machine(false), { noUserConfig: true });
    expect(await startTrace(m, { kind: 'exits' }, process.stderr)).toMatch(/no virtualization plugin/);
    await m.dispose();
  });

  it('--stats switches on host timing per exit', async () => {
    const m = await loadMachine(machine(true), { noUserConfig: true });
    enableExitTiming(m);
    expect(m.stats()['fake-vmx']).toEqual({ timing: 1 });
    await m.dispose();
  });
});

describe('formatExit: the exit-information fields valid for the exit', () => {
  const none = {
    instructionLength: 0,
    instructionInfo: -1,
    guestLinear: -1,
    guestPhysical: -1,
    interruptionInfo: 0,
    interruptionErrorCode: -1,
    idtVectoringInfo: 0,
    idtVectoringErrorCode: -1,
  };
  it('prints only what is valid', () => {
    expect(formatExit({ reason: 10, qualification: 0, rip: 0x8000, ...none, instructionLength: 2 })).toBe(
      'Cpuid qual=0x0 rip=0x8000 len=2',
    );
    expect(
      formatExit({
        reason: 48,
        qualification: 0x18a,
        rip: 0x102069,
        ...none,
        guestLinear: 0x202ffc,
        guestPhysical: 0x202ffc,
        idtVectoringInfo: 0x80000b0e,
        idtVectoringErrorCode: 2,
      }),
    ).toBe('EptViolation qual=0x18a rip=0x102069 gla=0x202ffc gpa=0x202ffc idt=0x80000b0e idterr=0x2');
    expect(
      formatExit({
        reason: 0,
        qualification: 0,
        rip: 1,
        ...none,
        interruptionInfo: 0x80000b0d,
        interruptionErrorCode: 0,
      }),
    ).toBe('ExceptionOrNmi qual=0x0 rip=0x1 intr=0x80000b0d err=0x0');
  });
  it('a negative (sign-extended) qualification prints as 64 bits', () => {
    expect(
      formatExit({
        reason: 46,
        qualification: -40,
        rip: 0,
        ...none,
        instructionLength: 4,
        instructionInfo: 0x2c10880,
      }),
    ).toBe('GdtrIdtrAccess qual=0xffffffffffffffd8 rip=0x0 len=4 info=0x2c10880');
  });
});
