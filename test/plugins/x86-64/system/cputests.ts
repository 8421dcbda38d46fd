/**
 * The system-level test programs (guests/cputests) run two ways: bare under QEMU (the oracle; its
 * transcripts are committed under expected/ so the comparison also runs where QEMU is absent) and
 * under vmm on machines/pc-multiboot.yaml. Where QEMU's TCG departs from the SDM, the expectation
 * replaces QEMU's line with the SDM's (QEMU_DIVERGENCES, each with the reason).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { MemoryConsole, loadMachine, type StopReason } from '../../../../src/index.js';
import { runQemu, type QemuTranscript } from '../../../guests/qemu-oracle.js';

export const ROOT = resolve(import.meta.dirname, '../../../..');
export const MACHINE = resolve(ROOT, 'machines/pc-multiboot.yaml');
export const EXPECTED_DIR = resolve(import.meta.dirname, 'expected');
/** The isa-debug-exit status of a program that ran to its end (guests/cputests/lib.h EXIT_PASS). */
export const PASS_STATUS = (0x10 << 1) | 1;
/**
 * QEMU's CPU for the oracle runs: the programs use SMEP, SMAP and 1 GiB pages unconditionally,
 * which vmm's CPU model advertises; `-hypervisor` hides TCG's hypervisor bit.
 */
export const QEMU_CPU = 'qemu64,+smep,+smap,+pdpe1gb,-hypervisor';

export interface CpuTest {
  name: string;
  /** The image, relative to the repository. */
  image: string;
}

export const CPU_TESTS: readonly CpuTest[] = [
  { name: 'long', image: 'guests/cputests/long.bin' },
  { name: 'paging', image: 'guests/cputests/paging.bin' },
  { name: 'protected', image: 'guests/cputests/protected.elf' },
  { name: 'real', image: 'guests/cputests/real.elf' },
];

export interface Divergence {
  /** The line as QEMU prints it. */
  qemu: string;
  /** The line the SDM asks for (what vmm must print). */
  sdm: string;
  why: string;
}

const IDT_ERR =
  'QEMU 7.2 TCG reports IDT gates as vector*16+2 in 64-bit mode; the SDM (6.13) says index = vector: vector*8+2';
const NO_MSR_CHECK =
  'QEMU TCG ignores this WRMSR/RDMSR instead of raising #GP(0) (SDM Vol. 4, Vol. 2B RDMSR/WRMSR)';

const RSVD_P =
  'QEMU 7.2 TCG clears P in the #PF error code of a reserved-bit fault; the SDM (4.7) sets P=0 only when a ' +
  'paging-structure entry was not present, so a reserved-bit violation reports P=1 with RSVD=1';
/** QEMU's reserved-bit #PF line with the P bit (error code bit 0) added. */
const rsvdWithP = (qemu: string): Divergence => ({
  qemu,
  sdm: qemu.replace(/err=0x([0-9a-f]+)/, (_, e: string) => `err=0x${(parseInt(e, 16) | 1).toString(16)}`),
  why: RSVD_P,
});

const NO_LIMIT_CHECK =
  'QEMU TCG does not check segment limits, types or null selectors on data and stack accesses in ' +
  'protected mode; the SDM (3.4.5, 5.3, 5.5, 6.15 #GP/#SS) faults with error code 0';
/** A segment-checked access QEMU lets through, with the exception the SDM raises. */
const limitCheck = (what: string, fault: '#GP' | '#SS'): Divergence => ({
  qemu: `${what}: no exception`,
  sdm: `${what}: ${fault} err=0x0`,
  why: NO_LIMIT_CHECK,
});

export const QEMU_DIVERGENCES: Readonly<Record<string, readonly Divergence[]>> = {
  long: [
    {
      qemu: '#UD with its gate not present: #NP err=0x62',
      sdm: '#UD with its gate not present: #NP err=0x33',
      why: `${IDT_ERR}; EXT (bit 0) is set because the #NP arose while delivering an exception (SDM 6.13)`,
    },
    {
      qemu: 'ring 3 int3 (gate dpl 0): #GP err=0x32',
      sdm: 'ring 3 int3 (gate dpl 0): #GP err=0x1a',
      why: IDT_ERR,
    },
    {
      qemu: 'ring 3 int 0x41 (gate dpl 0): #GP err=0x412',
      sdm: 'ring 3 int 0x41 (gate dpl 0): #GP err=0x20a',
      why: IDT_ERR,
    },
    {
      qemu: 'rdmsr 0xc0001234 (unknown): no exception',
      sdm: 'rdmsr 0xc0001234 (unknown): #GP err=0x0',
      why: NO_MSR_CHECK,
    },
    {
      qemu: 'wrmsr efer reserved bit 2: no exception',
      sdm: 'wrmsr efer reserved bit 2: #GP err=0x0',
      why: NO_MSR_CHECK,
    },
    {
      qemu: 'wrmsr gs.base non-canonical: no exception',
      sdm: 'wrmsr gs.base non-canonical: #GP err=0x0',
      why: NO_MSR_CHECK,
    },
    {
      qemu: 'selector 0x23: lar 0xc0f200, lsl 0xffffffff, verr 1, verw 1',
      sdm: 'selector 0x23: lar 0xc0f300, lsl 0xffffffff, verr 1, verw 1',
      why:
        'IRETQ to ring 3 loaded SS=0x23 from this descriptor, and loading a segment register sets the ' +
        "descriptor's accessed bit (SDM Vol. 3A 3.4.5.1); QEMU 7.2 sets it only for MOV/POP to a segment register",
    },
  ],
  paging: [
    'read, pte bit 51 set: #PF err=0x8 cr2=0x804020700c',
    'write, pte bit 51 set: #PF err=0xa cr2=0x804020700d',
    'user read, pte bit 51 set: #PF err=0xc cr2=0x804020700e',
    'read through a pde with bit 51 set: #PF err=0x8 cr2=0x804060000f',
    'read, 2m pde bit 13 set: #PF err=0x8 cr2=0x8040400010',
    'read, 1g pdpte bit 13 set: #PF err=0x8 cr2=0x8080000011',
    'read, pml4e ps set: #PF err=0x8 cr2=0x10000000012',
    'fetch, pte bit 51 set: #PF err=0x18 cr2=0x8040207000',
    'efer.nxe=0: read of a page with bit 63 set: #PF err=0x8 cr2=0x8040204013',
  ].map(rsvdWithP),
  protected: [
    {
      qemu: '#UD with its gate not present: #NP err=0x32',
      sdm: '#UD with its gate not present: #NP err=0x33',
      why: 'EXT (bit 0) is set because the #NP arose while delivering an exception (SDM 6.13); QEMU 7.2 clears it',
    },
    {
      qemu: 'ring 3 misaligned dword read, cr0.am=1 eflags.ac=1: vector 0x80',
      sdm: 'ring 3 misaligned dword read, cr0.am=1 eflags.ac=1: #AC err=0x0',
      why: 'QEMU TCG does not implement alignment checking; the SDM (6.15, #AC) raises #AC(0) at CPL 3 with CR0.AM and EFLAGS.AC set',
    },
    limitCheck('read dword at 0xffd, limit 0xfff', '#GP'),
    limitCheck('read byte at 0x1000, limit 0xfff', '#GP'),
    limitCheck('g=1 limit 0: read byte at 0x1000', '#GP'),
    limitCheck('read-only data: write', '#GP'),
    limitCheck('readable code in fs: write', '#GP'),
    limitCheck('null fs: read', '#GP'),
    limitCheck('expand-down b=1 limit 0xfff: read at 0x800', '#GP'),
    limitCheck('expand-down b=1 limit 0xfff: read at 0xfff', '#GP'),
    limitCheck('expand-down b=1: dword at 0xfffffffe', '#GP'),
    limitCheck('expand-down b=0 limit 0xfff: read at 0x10000', '#GP'),
    limitCheck('expand-down b=0: dword at 0xfffe', '#GP'),
    limitCheck('ss limit: read at esp (beyond)', '#SS'),
    {
      qemu: '  (no fault)',
      sdm: '  at k_ss_access_i+0',
      why: `${NO_LIMIT_CHECK} (the faulting instruction)`,
    },
    limitCheck('expand-down ss: read at esp-0x1800 (below the limit)', '#SS'),
    {
      qemu: 'ltr of null: no exception',
      sdm: 'ltr of null: #GP err=0x0',
      why: 'QEMU TCG loads a null selector into TR; the SDM (Vol. 2A LTR) raises #GP(0)',
    },
    ...[
      '  read, 4m pde bit 21 set: #PF err=0x8 cr2=0x40800019',
      '  efer.nxe=0: read of a page with bit 63 set: #PF err=0x8 cr2=0x4000501a',
      '  read, pte bit 51 set: #PF err=0x8 cr2=0x4000601b',
      '  write, pte bit 51 set: #PF err=0xa cr2=0x4000601c',
      '  read, 2m pde bit 13 set: #PF err=0x8 cr2=0x4040001d',
    ].map(rsvdWithP),
    {
      qemu: '  mov cr3, a pdpte with reserved bit 1: no exception',
      sdm: '  mov cr3, a pdpte with reserved bit 1: #GP err=0x0',
      why:
        'QEMU TCG does not load PAE PDPTEs at MOV CR3; the SDM (4.4.1) does, and a present PDPTE with a ' +
        'reserved bit set makes the MOV #GP(0)',
    },
    {
      qemu: '  pdpte cleared in memory, no mov cr3: read: #PF err=0x0 cr2=0x4000001f',
      sdm: '  pdpte cleared in memory, no mov cr3: read: no exception',
      why:
        'QEMU TCG reads PAE PDPTEs from memory on every walk; the SDM (4.4.1) translates through the PDPTE ' +
        'registers loaded by the last MOV CR3, so a PDPTE changed in memory has no effect until then',
    },
    {
      qemu: '  4k write: pdpte 0x21 pde A- pte AD',
      sdm: '  4k write: pdpte 0x1 pde A- pte AD',
      why:
        'QEMU TCG sets bit 5 in a PAE PDPTE; the SDM (4.4.1, Table 4-8) makes bits 8:5 reserved there and ' +
        'loads the PDPTEs into registers at MOV CR3, so the processor never writes them',
    },
  ],
  real: [
    {
      qemu: '  word read at ds:0xffff: no exception',
      sdm: '  word read at ds:0xffff: #GP, saved ip at rm_wrap+0',
      why:
        'QEMU TCG does not check the 64 KiB real-mode segment limit; the SDM (Vol. 3A 21.1.3, Vol. 2 real-address ' +
        'mode exceptions) raises #GP when an operand crosses offset 0xFFFF',
    },
  ],
};

/** CR LF to LF, and no trailing blank line. */
export const normalize = (text: string): string => text.replace(/\r\n/g, '\n').replace(/\n+$/, '\n');

export const expectedFile = (t: CpuTest): string => resolve(EXPECTED_DIR, `${t.name}.txt`);

/** QEMU's committed transcript with the SDM's lines in place of QEMU's known departures. */
export function expectation(t: CpuTest, qemuText: string): string {
  const lines = normalize(qemuText).split('\n');
  for (const d of QEMU_DIVERGENCES[t.name] ?? []) {
    const i = lines.indexOf(d.qemu);
    if (i < 0) throw new Error(`${t.name}: the QEMU transcript no longer has the line "${d.qemu}"`);
    lines[i] = d.sdm;
  }
  return lines.join('\n');
}

export function readExpected(t: CpuTest): string {
  return readFileSync(expectedFile(t), 'latin1');
}

export async function runUnderQemu(t: CpuTest): Promise<QemuTranscript> {
  return runQemu({
    kernel: resolve(ROOT, t.image),
    cpu: QEMU_CPU,
    memory: '128M',
    debugExit: true,
    timeoutMs: 60_000,
  });
}

export interface VmmRun {
  text: string;
  stop: StopReason;
}

/** Boots the program on machines/pc-multiboot.yaml and returns what COM1 printed. */
export async function runUnderVmm(
  t: CpuTest,
  shorthands: Readonly<Record<string, string>> = {},
): Promise<VmmRun> {
  const console = new MemoryConsole();
  const m = await loadMachine(MACHINE, {
    shorthands: { kernel: resolve(ROOT, t.image), ...shorthands },
    console,
    noUserConfig: true,
  });
  try {
    // Safety nets only: a program ends by itself in well under a second of guest time.
    const stop = await m.run({ virtualTimeoutNs: 20_000_000_000, wallTimeoutMs: 120_000 });
    return { text: normalize(console.text()), stop };
  } finally {
    await m.dispose();
  }
}

/** Empty when equal; otherwise the first differing line with its neighbours. */
export function firstDifference(expected: string, actual: string): string {
  const a = expected.split('\n');
  const b = actual.split('\n');
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) {
      const ctx = a.slice(Math.max(0, i - 2), i).map((l) => `    ${l}`);
      return [
        `first difference at line ${i + 1}:`,
        ...ctx,
        `  - expected: ${a[i] ?? '(end of output)'}`,
        `  + vmm:      ${b[i] ?? '(end of output)'}`,
      ].join('\n');
    }
  }
  return '';
}
