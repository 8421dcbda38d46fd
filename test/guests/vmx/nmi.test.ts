/**
 * guests/vmxtests/exits.elf scenarios nmi, nmilint and nminest under the rvm-tutorial policy: the
 * guest APIC's NMIs (self-IPIs through the x2APIC or xAPIC ICR, LINT0 in NMI mode) reach the guest as injected virtual NMIs, one
 * at a time (virtual-NMI blocking until the handler's IRET, NMI-window exiting, SDM 25.2 and
 * 26.6), also with RFLAGS.IF=0; an NMI whose delivery an exit interrupted is injected again.
 */
import { describe, expect, it } from 'vitest';
import { EventType, Vector } from '../../../src/x86/exceptions.js';
import { IntrInfo } from '../../../src/x86/vmx.js';
import { PASS_STATUS, named, runScenario, type VmxRun } from './helpers.js';

const NMI_INFO = (IntrInfo.VALID | (EventType.Nmi << IntrInfo.TYPE_SHIFT) | Vector.NMI) >>> 0;
/** WRMSR's length (0F 30). */
const WRMSR_LEN = 2;

const passed = (r: VmxRun) => {
  expect(r.stop, r.console + r.log).toMatchObject({ kind: 'poweroff', code: PASS_STATUS });
  expect(r.console).toContain('done\n');
};

describe('vmxtests exits.elf: guest NMIs (virtual NMIs, NMI-window exiting)', () => {
  let r: VmxRun;
  it('a self-NMI arrives once; one sent inside the handler after its IRET; one with IF=0 at once', async () => {
    r = await runScenario('nmi');
    passed(r);
    for (const line of [
      'nmi: self 1 (x2apic)', // injected at the entry after the ICR write, before the next instruction
      'nmi: nested 3, inside 2, deepest 1', // held back while the first handler ran: never nested
      'nmi: cli 3 -> 4', // NMIs are not masked by RFLAGS.IF
      'nmi: log EXEXEXEX', // entry and return of each handler, strictly in turn
    ])
      expect(r.console).toContain(`${line}\n`);
    expect(r.policy).toMatchObject({ nmis: 4, nmisInjected: 4, nmiWindowExits: 1, reinjected: 0 });
  });

  it('the NMI sent inside the handler waits for an NMI-window exit (reason 8) right after the IRET', () => {
    const windows = named(r, 'NmiWindow');
    expect(windows).toHaveLength(1);
    const w = windows[0]!;
    expect(w.qual).toBe(0n);
    expect(w.len).toBeUndefined();
    // The two ICR writes before it: the outer one (its NMI's handler sent the inner one), then the
    // inner one. The handler's IRET returns past the outer WRMSR: the window opens there.
    const i = r.exits.indexOf(w);
    const [outer, inner] = r.exits
      .slice(0, i)
      .filter((e) => e.name === 'Wrmsr')
      .slice(-2);
    expect(r.exits[i - 1]).toBe(inner);
    expect(w.rip).toBe(outer!.rip + WRMSR_LEN);
    expect(inner!.rip).not.toBe(outer!.rip + WRMSR_LEN);
  });

  it('no NMI reaches the host: none exits as an NMI (injected events are not NMI exits)', () => {
    expect(named(r, 'ExceptionOrNmi')).toHaveLength(0);
  });

  it('the same through the xAPIC ICR (MMIO emulation): the NMI raised by the emulated write is injected', async () => {
    const x = await runScenario('nmi', [
      'vmm.policy.apic=xapic',
      'guest.devices[1].mmio=true',
      'guest.passthrough=[hpet, ioapic]',
    ]);
    passed(x);
    const expected = r.console.replace('(x2apic)', '(xapic)');
    expect(x.console).toBe(expected);
    expect(x.policy).toMatchObject({ nmis: 4, nmisInjected: 4, nmiWindowExits: 1 });
    expect(named(x, 'Wrmsr')).toHaveLength(0);
    // SVR and four ICR writes through the guest APIC's page.
    expect(x.policy['mmio.guest-lapic']).toBe(5);
    expect(named(x, 'NmiWindow')).toHaveLength(1);
  });

  it('LINT0 in NMI mode: the guest 8259 INTR edge (COM1 IRQ 4) is one NMI, injected at the OUT exit', async () => {
    const l = await runScenario('nmilint');
    passed(l);
    expect(l.console).toContain('nmilint: nmis 1\n');
    expect(l.policy).toMatchObject({ nmis: 1, nmisInjected: 1, nmiWindowExits: 0 });
  });

  it('an NMI whose delivery hits a read-only stack page is injected again and arrives once', async () => {
    const n = await runScenario('nminest', [
      'vmm.policy.ept-protect=[{gpa: 0x202000, size: 0x1000, access: r}]',
      'vmm.policy.ept-violation=unprotect',
    ]);
    passed(n);
    expect(n.console).toContain('nminest: nmis 1, deepest 1\n');
    const [v] = named(n, 'EptViolation');
    expect(v).toMatchObject({ gpa: 0x202ffc, idt: NMI_INFO });
    expect(v!.idterr).toBeUndefined();
    // The NMI was injected after the ICR write: the exit interrupted its delivery there.
    const icr = named(n, 'Wrmsr').at(-1)!;
    expect(v!.rip).toBe(icr.rip + WRMSR_LEN);
    expect(n.policy).toMatchObject({ nmis: 1, nmisInjected: 1, vectoringReinjected: 1, nmiWindowExits: 0 });
  });
});
