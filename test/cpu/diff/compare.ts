/**
 * Comparator (native vs emulated result, with the form's masks), minimizer (shrinks a failing case
 * toward zeros and ones while the mismatch persists) and the readable mismatch report.
 */
import { cloneCase, hex } from './case-util.js';
import { disassemble } from './disasm.js';
import type { DiffCase, DiffResult, Emulate } from './emulator-adapter.js';
import type { GenCase } from './generator.js';
import type { NativeRunner } from './native.js';
import { Flag, toDiffResult } from './protocol.js';

export interface Difference {
  field: string;
  native: string;
  emulated: string;
}

const REG64 = [
  'RAX',
  'RCX',
  'RDX',
  'RBX',
  'RSP',
  'RBP',
  'RSI',
  'RDI',
  'R8',
  'R9',
  'R10',
  'R11',
  'R12',
  'R13',
  'R14',
  'R15',
];
const REG32 = ['EAX', 'ECX', 'EDX', 'EBX', 'ESP', 'EBP', 'ESI', 'EDI'];
const regName = (mode: 64 | 32, i: number): string => (mode === 64 ? REG64 : REG32)[i] ?? `R${i}`;

export interface Masks {
  compareFlags: number;
  regUndef: ReadonlyMap<number, bigint>;
}

export function flagString(f: number): string {
  const names = Object.entries(Flag)
    .filter(([, bit]) => (f & bit) !== 0)
    .map(([n]) => n);
  return `${hex(f)} [${names.join(' ')}]`;
}

export function compareResults(c: DiffCase, m: Masks, native: DiffResult, emu: DiffResult): Difference[] {
  const out: Difference[] = [];
  const nf = native.fault;
  const ef = emu.fault;
  const faultStr = (f: DiffResult['fault']): string => (f ? `#${f.kind} at ${hex(f.rip)}` : 'none');
  if (!nf !== !ef || (nf && ef && (nf.kind !== ef.kind || nf.rip !== ef.rip))) {
    out.push({ field: 'exception', native: faultStr(nf), emulated: faultStr(ef) });
  } else if (nf && ef) {
    if (ef.vector !== undefined && nf.vector !== ef.vector) {
      out.push({ field: 'vector', native: String(nf.vector), emulated: String(ef.vector) });
    }
    if (nf.kind === 'PF' && ef.addr !== undefined && nf.addr !== ef.addr) {
      out.push({ field: 'CR2', native: hex(nf.addr ?? 0n), emulated: hex(ef.addr) });
    }
  }
  if (emu.regs.length !== native.regs.length) {
    out.push({ field: 'regs.length', native: String(native.regs.length), emulated: String(emu.regs.length) });
  }
  const width = c.mode === 64 ? 16 : 8;
  const all = c.mode === 64 ? 0xffff_ffff_ffff_ffffn : 0xffff_ffffn;
  for (let i = 0; i < native.regs.length; i++) {
    const mask = all & ~(m.regUndef.get(i) ?? 0n);
    const n = native.regs[i]! & mask;
    const e = (emu.regs[i] ?? 0n) & mask;
    if (n !== e) out.push({ field: regName(c.mode, i), native: hex(n, width), emulated: hex(e, width) });
  }
  if (((native.rflags ^ emu.rflags) & m.compareFlags) !== 0) {
    out.push({
      field: `RFLAGS (compared ${flagString(m.compareFlags)})`,
      native: flagString(native.rflags & m.compareFlags),
      emulated: flagString(emu.rflags & m.compareFlags),
    });
  }
  for (const [name, n, e, base] of [
    ['data', native.data, emu.data, c.dataAddr],
    ['stack', native.stack, emu.stack, c.stackAddr],
  ] as const) {
    if (Buffer.compare(n, e) === 0) continue;
    let shown = 0;
    for (let i = 0; i < n.length && shown < 8; i++) {
      if (n[i] !== e[i]) {
        out.push({
          field: `${name}[${hex(base + i)}]`,
          native: hex(n[i] ?? 0, 2),
          emulated: hex(e[i] ?? 0, 2),
        });
        shown++;
      }
    }
  }
  return out;
}

/** Run one case both ways and compare. */
export function check(runner: NativeRunner, emulate: Emulate, c: DiffCase, m: Masks): Difference[] {
  return compareResults(c, m, toDiffResult(runner.runOne(c)), emulate(cloneCase(c)));
}

/** Simplifications of a case: registers and flags toward 0/1, window bytes toward 0. */
function candidates(c: DiffCase): DiffCase[] {
  const out: DiffCase[] = [];
  const push = (f: (d: DiffCase) => boolean): void => {
    const d = cloneCase(c);
    if (f(d)) out.push(d);
  };
  c.regs.forEach((v, i) => {
    if (i === 4) return; // RSP/ESP: keep the stack pointer
    // Strictly smaller values only, so the greedy search cannot cycle.
    for (const nv of [0n, 1n, v & 0xffff_ffffn, v & 0xffffn, v & 0xffn, v >> 1n]) {
      if (nv < v) {
        push((d) => {
          d.regs[i] = nv;
          return true;
        });
      }
    }
  });
  for (const bit of Object.values(Flag)) {
    if (c.rflags & bit) push((d) => ((d.rflags &= ~bit), true));
  }
  for (const w of ['data', 'stack'] as const) {
    for (let size = c[w].length; size >= 16; size /= 4) {
      for (let o = 0; o < c[w].length; o += size) {
        if (c[w].subarray(o, o + size).some((x) => x !== 0)) push((d) => (d[w].fill(0, o, o + size), true));
      }
    }
    let n = 0;
    for (let o = 0; o < c[w].length && n < 48; o++) {
      const x = c[w][o]!;
      if (x > 1) {
        n++;
        push((d) => ((d[w][o] = 1), true));
      }
    }
  }
  return out;
}

/**
 * Greedy shrink: each round runs all candidates natively in one batch, keeps the first that still
 * mismatches in one of the originally differing fields. The masks stay those of the original case.
 */
export function minimize(runner: NativeRunner, emulate: Emulate, c0: DiffCase, m: Masks): DiffCase {
  const fieldsOf = (ds: Difference[]): Set<string> => new Set(ds.map((d) => d.field.replace(/\[.*$/, '')));
  const want = fieldsOf(check(runner, emulate, c0, m));
  let c = c0;
  for (let round = 0; round < 60; round++) {
    const cands = candidates(c);
    if (cands.length === 0) break;
    const natives = runner.run(cands);
    let next: DiffCase | undefined;
    for (let i = 0; i < cands.length && !next; i++) {
      const r = natives[i]!;
      if (r.status === 'timeout') continue;
      let emu: DiffResult;
      try {
        emu = emulate(cloneCase(cands[i]!));
      } catch {
        continue;
      }
      const ds = compareResults(cands[i]!, m, toDiffResult(r), emu);
      if ([...fieldsOf(ds)].some((f) => want.has(f))) next = cands[i];
    }
    if (!next) break;
    c = next;
  }
  return c;
}

function stateLines(c: DiffCase, regs: readonly bigint[], rflags: number, mark: Set<string>): string[] {
  const width = c.mode === 64 ? 16 : 8;
  const lines: string[] = [];
  const cells = regs.map((v, i) => {
    const n = regName(c.mode, i);
    return `${mark.has(n) ? '>>' : '  '}${n.padEnd(3)}=${hex(v, width)}`;
  });
  for (let i = 0; i < cells.length; i += 4) lines.push('    ' + cells.slice(i, i + 4).join(' '));
  lines.push(`    RFLAGS=${flagString(rflags)}`);
  return lines;
}

function windowLines(name: string, base: number, bytes: Uint8Array): string[] {
  const lines: string[] = [];
  for (let o = 0; o < bytes.length; o += 16) {
    const row = bytes.subarray(o, o + 16);
    if (row.every((x) => x === 0)) continue;
    lines.push(
      `    ${name} ${hex(base + o, 8)}: ${Buffer.from(row).toString('hex').replace(/(..)/g, '$1 ')}`,
    );
  }
  return lines.length > 24 ? [...lines.slice(0, 24), `    ... (${lines.length - 24} more rows)`] : lines;
}

/** The readable report of a mismatch (after minimizing). */
export function report(
  g: GenCase,
  c: DiffCase,
  native: DiffResult,
  emu: DiffResult,
  diffs: Difference[],
  seed: number,
): string {
  const mark = new Set(diffs.map((d) => d.field));
  const fault = (r: DiffResult): string =>
    r.fault
      ? `  exception #${r.fault.kind} (vector ${r.fault.vector ?? '?'}) at RIP ${hex(r.fault.rip)}`
      : '  completed';
  return [
    `=== CPU mismatch: ${g.form.name} /${g.size}, ${c.mode}-bit mode; reproduce: VMM_DIFF_SEED=${seed} (case #${g.index}) ===`,
    `code ${Buffer.from(c.code).toString('hex')} at ${hex(c.codeAddr)}:`,
    disassemble(c.code, c.mode, c.codeAddr),
    'initial state (minimized):',
    ...stateLines(c, c.regs, c.rflags, new Set()),
    ...windowLines('data ', c.dataAddr, c.data),
    ...windowLines('stack', c.stackAddr, c.stack),
    'native (host CPU):',
    fault(native),
    ...stateLines(c, native.regs, native.rflags, mark),
    'emulated:',
    fault(emu),
    ...stateLines(c, emu.regs, emu.rflags, mark),
    'differences (undefined flags/results masked):',
    ...diffs.map((d) => `  >> ${d.field}: native ${d.native}, emulated ${d.emulated}`),
  ].join('\n');
}
