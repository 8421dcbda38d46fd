/**
 * guests/vmxtests/exits.elf under the rvm-tutorial policy with the experiment settings that make
 * its instructions exit: what the guest observes (the policy performed each instruction for it),
 * and the exit information the trace recorded (SDM Vol. 3C 27.2): reason, qualification,
 * instruction length and information, guest-linear/physical address, interruption and
 * IDT-vectoring information. Also VM-entry failures for settings that cannot work.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EventType, Vector } from '../../../src/x86/exceptions.js';
import { EptViolation as EptQual } from '../../../src/x86/ept.js';
import { CrQual, DrQual, DtInstrInfo, IntrInfo, IoQual } from '../../../src/x86/vmx.js';
import { KICK_VECTOR } from '../../../plugins/rvm-tutorial/index.js';
import { KERNEL64, PASS_STATUS, named, runScenario, type Exit, type VmxRun } from './helpers.js';

const intr = (type: number, vector: number, err = false) =>
  (IntrInfo.VALID | (type << IntrInfo.TYPE_SHIFT) | vector | (err ? IntrInfo.DELIVER_ERROR_CODE : 0)) >>> 0;

const passed = (r: VmxRun) => {
  expect(r.stop, r.console + r.log).toMatchObject({ kind: 'poweroff', code: PASS_STATUS });
  expect(r.console).toContain('done\n');
};

const ALL_EXITS =
  'vmm.policy.exits={hlt: true, invlpg: true, rdtsc: true, cr3-load: true, cr3-store: true, mov-dr: true, descriptor-table: true}';

describe('vmxtests exits.elf: instructions the policy performs for the guest', () => {
  let r: VmxRun;
  it('runs to its end with every exiting switch on, seeing what bare hardware shows', async () => {
    r = await runScenario('instr', [ALL_EXITS]);
    passed(r);
    for (const line of [
      'cpuid 0x40000000: RVMR',
      'tpr: 0x20',
      'vmcall: exit count moves',
      'lsr: 0x60',
      'outs: rep outsb',
      'ins: 0x60 0x60',
      'rdtsc: moves, tsc_aux 0',
      'invlpg: done',
      'cr3: 0x5000',
      'dr0: 0x1234',
      'sgdt: limit 0xbf base gdt, sidt limit 0x7ff, sldt 0x0, str 0x28',
      'hlt: woken, ticks 1',
      'window: ticks 1 -> 2',
    ])
      expect(r.console).toContain(`${line}\n`);
    expect(r.policy).toMatchObject({
      hlt: 1,
      invlpg: 1,
      rdtsc: 2,
      cr3Load: 2,
      cr3Store: 2,
      movDr: 2,
      stringIoExits: 3,
    });
  });

  it('the same program without the switches prints the same', async () => {
    const bare = await runScenario('instr', []);
    passed(bare);
    expect(bare.console).toBe(r.console);
    for (const name of ['Hlt', 'Invlpg', 'Rdtsc', 'Rdtscp', 'MovDr', 'GdtrIdtrAccess', 'LdtrTrAccess'])
      expect(named(bare, name), name).toHaveLength(0);
  });

  it('records instruction lengths of CPUID, RDMSR/WRMSR, VMCALL, HLT, RDTSC, RDTSCP, INVLPG', () => {
    const lens = (name: string) => [...new Set(named(r, name).map((e) => e.len))];
    expect(lens('Cpuid')).toEqual([2]);
    expect(lens('Rdmsr')).toEqual([2]);
    expect(lens('Wrmsr')).toEqual([2]);
    expect(lens('Vmcall')).toEqual([3]);
    expect(lens('Hlt')).toEqual([1]);
    expect(lens('Rdtsc')).toEqual([2]);
    expect(lens('Rdtscp')).toEqual([3]);
    const [inv] = named(r, 'Invlpg');
    expect(inv).toMatchObject({ len: 3, qual: 0x123000n });
  });

  it('--trace exits+insn disassembles the exiting instruction at the guest RIP', () => {
    const insns = (name: string) => [...new Set(named(r, name).map((e) => e.insn))];
    expect(insns('Cpuid')).toEqual(['cpuid']);
    expect(insns('Rdtsc')).toEqual(['rdtsc']);
    expect(insns('Rdtscp')).toEqual(['rdtscp']);
    expect(insns('Hlt')).toEqual(['hlt']);
    expect(insns('Vmcall')).toEqual(['vmcall']);
    expect(insns('Invlpg')).toEqual(['invlpg [eax]']);
    expect(insns('Wrmsr')).toEqual(['wrmsr']);
    expect(insns('Rdmsr')).toEqual(['rdmsr']);
    // The string I/O exits name their forms (OUTSB with REP, INSB).
    const strings = named(r, 'IoInstruction').filter((e) => Number(e.qual) & IoQual.STRING);
    expect(strings.map((e) => e.insn)).toEqual(['rep outsb dx,[esi]', 'insb [edi],dx', 'insb [edi],dx']);
    expect(insns('MovDr')).toEqual(['mov dr0,eax', 'mov eax,dr0']);
    expect(insns('CrAccess')).toEqual(['mov ebx,cr3', 'mov cr3,eax', 'mov eax,cr3', 'mov cr3,ebx']);
    expect(insns('GdtrIdtrAccess')).toContain('sgdt [ebp-28h]');
  });

  it('INS/OUTS: string and REP bits, port, instruction information and guest-linear address', () => {
    const strings = named(r, 'IoInstruction').filter((e) => Number(e.qual) & IoQual.STRING);
    expect(strings).toHaveLength(3);
    const [outs, ins1, ins2] = strings as [Exit, Exit, Exit];
    const q = Number(outs.qual);
    expect(q >>> IoQual.PORT_SHIFT).toBe(0x3f8);
    expect(q & (IoQual.IN | IoQual.REP | IoQual.SIZE_MASK)).toBe(IoQual.REP);
    // 32-bit addresses (1 in bits 9:7), OUTS from DS (3 in bits 17:15); INS always writes ES:EDI.
    expect(outs.info).toBe((1 << 7) | (3 << 15));
    expect(ins1.info).toBe(1 << 7);
    expect(Number(ins1.qual) & (IoQual.IN | IoQual.REP)).toBe(IoQual.IN);
    expect(Number(ins1.qual) >>> IoQual.PORT_SHIFT).toBe(0x3fd);
    expect(outs.gla).toBeGreaterThanOrEqual(0x100000);
    expect(ins2.gla).toBe(ins1.gla! + 1);
  });

  it('MOV CR3 and MOV DR: qualification names the register, the direction and the GPR', () => {
    const cr = named(r, 'CrAccess').map((e) => Number(e.qual));
    const cr3 = cr.filter((q) => (q & CrQual.CR_MASK) === 3);
    expect(cr3.map((q) => (q >>> CrQual.ACCESS_SHIFT) & 3)).toEqual([
      CrQual.AccessMovFromCr,
      CrQual.AccessMovToCr,
      CrQual.AccessMovFromCr,
      CrQual.AccessMovToCr,
    ]);
    const dr = named(r, 'MovDr').map((e) => Number(e.qual));
    expect(dr.map((q) => q & (DrQual.DR_MASK | DrQual.FROM_DR))).toEqual([0, DrQual.FROM_DR]);
    // mov %reg,%dr0 then mov %dr0,%reg: the same register carries the value.
    expect(dr[0]! >>> DrQual.GPR_SHIFT).toBeLessThan(8);
  });

  it('descriptor-table exits: identity, operand form and a monitor-trap step after each', () => {
    const dt = r.exits.filter((e) => e.name === 'GdtrIdtrAccess' || e.name === 'LdtrTrAccess');
    // rt32: LGDT (entry), LIDT, LTR, LLDT; the program: SGDT, LGDT, SIDT, LIDT, SLDT, STR.
    const id = (e: Exit) => (e.info! >>> DtInstrInfo.IDENTITY_SHIFT) & 3;
    expect(dt.map((e) => `${e.name === 'LdtrTrAccess' ? 'LT' : 'GI'}${id(e)}`)).toEqual([
      'GI2',
      'GI3',
      'LT3',
      'LT2',
      'GI0',
      'GI2',
      'GI1',
      'GI3',
      'LT0',
      'LT1',
    ]);
    for (const e of dt) {
      expect((e.info! >>> DtInstrInfo.ADDRESS_SIZE_SHIFT) & 7, 'address size 32').toBe(1);
      const register = (e.info! & DtInstrInfo.REGISTER) !== 0;
      if (e.name === 'LdtrTrAccess') expect(register).toBe(true);
      else expect(e.info! & DtInstrInfo.OPERAND_SIZE_32).toBeTruthy();
      // The policy runs the instruction under the monitor trap flag: the next exit is right after it.
      const next = r.exits[r.exits.indexOf(e) + 1]!;
      expect(next).toMatchObject({ name: 'MonitorTrapFlag', rip: e.rip + e.len! });
    }
  });

  it('HLT waits for the timer: the kick is an external-interrupt exit, then the interrupt window', () => {
    const hlt = named(r, 'Hlt')[0]!;
    const after = r.exits[r.exits.indexOf(hlt) + 1]!;
    expect(after.name).toBe('ExternalInterrupt');
    expect(after.intr).toBe(intr(EventType.External, KICK_VECTOR));
    expect(after.rip).toBe(hlt.rip + 1);
    expect(named(r, 'InterruptWindow').length).toBeGreaterThanOrEqual(1);
    expect(r.policy.injected).toBe(2);
  });
});

describe('vmxtests exits64.bin: MOV CR8, MOV CR3 and SGDT in 64-bit mode', () => {
  it('CR8 is the guest TPR[7:4]; a reserved CR8 bit is #GP; CR3 and SGDT carry 64 bits', async () => {
    const r = await runScenario(
      '',
      [
        'vmm.policy.exits={cr8-load: true, cr8-store: true, cr3-load: true, cr3-store: true, descriptor-table: true}',
      ],
      KERNEL64,
    );
    passed(r);
    for (const line of ['cr8: 0x5, tpr 0x50', 'mov cr8, 0x10: #GP err=0x0', 'cr3: pml4', 'sgdt: base gdt'])
      expect(r.console).toContain(`${line}\n`);
    const cr8 = named(r, 'CrAccess')
      .map((e) => Number(e.qual))
      .filter((q) => (q & CrQual.CR_MASK) === 8);
    // MOV to CR8 (5), MOV from CR8, MOV to CR8 (0), MOV to CR8 (0x10: #GP, the policy injects it).
    expect(cr8.map((q) => (q >>> CrQual.ACCESS_SHIFT) & 3)).toEqual([
      CrQual.AccessMovToCr,
      CrQual.AccessMovFromCr,
      CrQual.AccessMovToCr,
      CrQual.AccessMovToCr,
    ]);
    expect(r.policy).toMatchObject({ cr8Load: 3, cr8Store: 1 });
    // SGDT in 64-bit mode: 64-bit address size (2) in the instruction information.
    const sgdt = named(r, 'GdtrIdtrAccess').filter(
      (e) => ((e.info! >>> DtInstrInfo.IDENTITY_SHIFT) & 3) === 0,
    );
    expect(sgdt).toHaveLength(1);
    expect((sgdt[0]!.info! >>> DtInstrInfo.ADDRESS_SIZE_SHIFT) & 7).toBe(2);
    // --trace exits+insn decodes 64-bit code at a 64-bit RIP.
    expect(sgdt[0]!.insn).toBe('sgdt [rsp+6]');
    expect(named(r, 'CrAccess').map((e) => e.insn)).toEqual([
      'mov cr3,eax', // before long mode
      'mov cr8,rax',
      'mov rsi,cr8',
      'mov cr8,rax',
      'mov cr8,rdi',
      'mov rax,cr3',
      'mov cr3,rax',
    ]);
  });
});

describe('vmxtests exits.elf: intercepted exceptions are reflected into the guest', () => {
  const expected = (c: string) =>
    [
      'read 0x40000000: #PF err=0x0 cr2=0x40000000',
      'write 0x40001000: #PF err=0x2 cr2=0x40001000',
      'int3: #BP err=0x0',
      'ud2: #UD err=0x0',
      'mov fs, 0x1238: #GP err=0x1238',
    ].forEach((l) => expect(c).toContain(`${l}\n`));

  it('#PF with CR2 and error code, #BP after the INT3, #UD, #GP with its selector error code', async () => {
    const r = await runScenario('except', ['vmm.policy.exception-bitmap=[14, 3, 6, 13]']);
    passed(r);
    expected(r.console);
    expect(r.console).toMatch(/int3 eip after: yes/);
    const ex = named(r, 'ExceptionOrNmi');
    expect(ex.map((e) => [e.intr, e.err, e.qual])).toEqual([
      [intr(EventType.HardwareException, Vector.PF, true), 0, 0x40000000n],
      [intr(EventType.HardwareException, Vector.PF, true), 2, 0x40001000n],
      [intr(EventType.SoftwareException, Vector.BP), undefined, 0n],
      [intr(EventType.HardwareException, Vector.UD), undefined, 0n],
      [intr(EventType.HardwareException, Vector.GP, true), 0x1238, 0n],
    ]);
    // INT3 exits at the instruction with its length (27.3.3); none happened during delivery.
    expect(ex[2]!.len).toBe(1);
    for (const e of ex) expect(e.idt).toBeUndefined();
    expect(r.policy.exceptionsReflected).toBe(5);
  });

  it('PFEC mask/match: only the write fault exits; the read fault reaches the guest directly', async () => {
    const r = await runScenario('except', [
      'vmm.policy.exception-bitmap=[14]',
      'vmm.policy.pf-error-code-mask=2',
      'vmm.policy.pf-error-code-match=2',
    ]);
    passed(r);
    expected(r.console);
    expect(named(r, 'ExceptionOrNmi').map((e) => e.err)).toEqual([2]);
  });

  it('without the bitmap nothing exits and the guest sees the same', async () => {
    const r = await runScenario('except');
    passed(r);
    expected(r.console);
    expect(named(r, 'ExceptionOrNmi')).toHaveLength(0);
  });
});

describe('vmxtests exits.elf: EPT permissions', () => {
  const RO =
    'vmm.policy.ept-protect=[{gpa: 0x200000, size: 0x1000, access: r}, {gpa: 0x201000, size: 0x1000, access: rw}]';

  it('a write to a read-only page stops the run cleanly, naming GPA and access', async () => {
    const r = await runScenario('ept', [RO]);
    expect(r.stop.kind).toBe('fault');
    expect(r.stop.kind === 'fault' && r.stop.message).toMatch(
      /EPT violation: guest write at GPA 0x200000 in the EPT-protected range 0x200000\+0x1000 \(r; page r--\)/,
    );
    expect(r.console).toContain('ro read: 0x0\n');
    expect(r.console).not.toContain('ro write');
    const v = r.exits.at(-1)!;
    expect(v).toMatchObject({ name: 'EptViolation', gpa: 0x200000, gla: 0x200000 });
    const q = Number(v.qual);
    expect(q & (EptQual.DATA_READ | EptQual.DATA_WRITE | EptQual.INSTRUCTION_FETCH)).toBe(EptQual.DATA_WRITE);
    expect(q & (EptQual.READABLE | EptQual.WRITABLE | EptQual.EXECUTABLE)).toBe(EptQual.READABLE);
    expect(q & (EptQual.LINEAR_VALID | EptQual.LINEAR_TRANSLATION)).toBe(
      EptQual.LINEAR_VALID | EptQual.LINEAR_TRANSLATION,
    );
  });

  for (const pageSize of ['4K', '2M'])
    it(`${pageSize} pages: lifting the protection resumes the write and the fetch`, async () => {
      const r = await runScenario('ept', [
        RO,
        'vmm.policy.ept-violation=unprotect',
        `vmm.policy.page-size=${pageSize}`,
      ]);
      passed(r);
      expect(r.console).toContain('ro write: 0xabcd\n');
      expect(r.console).toContain('nx call: 0x5a\n');
      const [w, x] = named(r, 'EptViolation') as [Exit, Exit];
      expect(named(r, 'EptViolation')).toHaveLength(2);
      expect(w.gpa).toBe(0x200000);
      expect(x).toMatchObject({ gpa: 0x201000, rip: 0x201000, gla: 0x201000 });
      const qx = Number(x.qual);
      expect(qx & EptQual.INSTRUCTION_FETCH).toBeTruthy();
      expect(qx & (EptQual.READABLE | EptQual.WRITABLE | EptQual.EXECUTABLE)).toBe(
        EptQual.READABLE | EptQual.WRITABLE,
      );
      expect(r.policy).toMatchObject({ eptProtectViolations: 2, eptUnprotected: 2 });
    });

  it('refuses ept-protect ranges that are not whole pages of guest RAM', async () => {
    await expect(
      runScenario('ept', ['vmm.policy.ept-protect=[{gpa: 0x200800, size: 0x1000, access: r}]']),
    ).rejects.toThrow(/ept-protect\[0\]: 0x200800\+0x1000 must be 4 KiB aligned pages inside guest RAM/);
  });

  it('1G pages need guest RAM in whole GiB', async () => {
    await expect(runScenario('ept', ['vmm.policy.page-size=1G'])).rejects.toThrow(/1G EPT pages need/);
  });
});

describe('vmxtests exits.elf: IDT-vectoring information', () => {
  it('an interrupt whose delivery hits a read-only stack page is injected again and arrives once', async () => {
    const r = await runScenario('vector', [
      'vmm.policy.ept-protect=[{gpa: 0x202000, size: 0x1000, access: r}]',
      'vmm.policy.ept-violation=unprotect',
    ]);
    passed(r);
    expect(r.console).toContain('vector: ticks 1\n');
    const [v] = named(r, 'EptViolation');
    expect(v).toMatchObject({ gpa: 0x202ffc, idt: intr(EventType.External, 0x40) });
    expect(v!.idterr).toBeUndefined();
    // The exit interrupted the delivery: RIP is where the interrupt returns to (the CLI after
    // `sti; hlt`), not the HLT before it.
    expect(v!.insn).toBe('cli');
    expect(r.policy.vectoringReinjected).toBe(1);
  });
});

describe('--trace exits+insn where the instruction cannot be read', () => {
  it('a jump to a guest-physical address EPT does not map: the violation names why, the run stops cleanly', async () => {
    // A Multiboot kernel (a.out kludge, loaded at 1 MiB): mov eax, 0x40000000; jmp eax. Guest RAM
    // ends below 1 GiB, so the fetch there is an EPT violation with nothing to show at RIP.
    const LOAD = 0x100000;
    const magic = 0x1badb002;
    const flags = 0x10000;
    const kernel = Buffer.alloc(32 + 7);
    [magic, flags, -(magic + flags) >>> 0, LOAD, LOAD, 0, 0, LOAD + 32].forEach((w, i) =>
      kernel.writeUInt32LE(w >>> 0, i * 4),
    );
    kernel.set([0xb8, 0x00, 0x00, 0x00, 0x40, 0xff, 0xe0], 32);
    mkdirSync('test/.tmp', { recursive: true });
    const file = join(mkdtempSync(join(resolve('test/.tmp'), 'jump-')), 'jump.bin');
    writeFileSync(file, kernel);
    const r = await runScenario('', [], file);
    expect(r.stop.kind).toBe('fault');
    expect(r.stop.kind === 'fault' && r.stop.message).toMatch(
      /instruction fetch at GPA 0x40000000 .*neither guest RAM nor a passthrough page/,
    );
    const v = r.exits.at(-1)!;
    expect(v).toMatchObject({ name: 'EptViolation', rip: 0x40000000, gpa: 0x40000000 });
    expect(Number(v.qual) & EptQual.INSTRUCTION_FETCH).toBeTruthy();
    expect(v.insn).toBe('? (guest-physical 0x40000000 is not mapped by EPT)');
  });
});

describe('vmxtests exits.elf: preemption timer, monitor trap flag, triple fault', () => {
  it('the preemption timer expires over and over, re-armed at each entry; the guest is unaffected', async () => {
    const bare = await runScenario('spin');
    const r = await runScenario('spin', ['vmm.policy.preemption-timer=2000']);
    passed(r);
    expect(r.console).toBe(bare.console);
    const p = named(r, 'PreemptionTimerExpired');
    expect(p.length).toBeGreaterThan(10);
    expect(r.policy.preemptionTimer).toBe(p.length);
    for (const e of p) expect(e.len).toBeUndefined();
  });

  it('monitor-trap: N exits after the first N instructions, at their successors', async () => {
    const r = await runScenario('spin', ['vmm.policy.monitor-trap=5']);
    passed(r);
    const mtf = named(r, 'MonitorTrapFlag');
    expect(mtf).toHaveLength(5);
    expect(r.exits.slice(0, 5).map((e) => e.name)).toEqual(Array(5).fill('MonitorTrapFlag'));
    for (let i = 1; i < 5; i++) expect(mtf[i]!.rip).toBeGreaterThan(mtf[i - 1]!.rip);
  });

  it('a triple fault exits and stops the run cleanly', async () => {
    const r = await runScenario('triple');
    expect(r.stop.kind).toBe('fault');
    expect(r.stop.kind === 'fault' && r.stop.message).toContain('guest triple fault');
    expect(r.exits.at(-1)!.name).toBe('TripleFault');
  });
});

describe('VM-entry failures for settings that cannot work', () => {
  it('no unrestricted guest with paging off: entry failure, invalid guest state (SDM 26.3.1.1)', async () => {
    await expect(runScenario('spin', ['vmm.policy.unrestricted-guest=false'])).rejects.toThrow(
      /VMLAUNCH failed: VM-entry failure, exit reason 0x80000021 \(EntryFailureGuestState/,
    );
  });

  it('a control the capability MSRs do not allow, written as desired: VM-instruction error 7', async () => {
    await expect(
      runScenario('spin', [
        'vmm.policy.controls=as-desired',
        'vmm.virtualization.hide=[HltExiting]',
        'vmm.policy.exits={hlt: true}',
      ]),
    ).rejects.toThrow(/VMLAUNCH failed: VM-instruction error 7 \(EntryInvalidControlFields/);
  });

  it('the same, adjusted to the capability MSRs: the policy names the missing control', async () => {
    await expect(
      runScenario('spin', ['vmm.virtualization.hide=[HltExiting]', 'vmm.policy.exits={hlt: true}']),
    ).rejects.toThrow(/does not offer the primary processor-based controls 0x80/);
  });
});
