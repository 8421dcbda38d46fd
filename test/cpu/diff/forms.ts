/**
 * THE table of instruction forms the differential tests generate: one row per form, with its
 * encoding (the `gen` function drives the Builder), operand sizes, modes, CPUID requirement, the
 * flags the SDM leaves undefined (masked in the comparison), the flags it leaves unaffected (checked
 * against the host CPU by the generator suite) and the exceptions the form may raise by design.
 *
 * SDM references are to Intel SDM Vol. 2 instruction pages ("Flags Affected" sections).
 */
import { Reg, STACK_TOP } from './case-util.js';
import type { Builder, Mode, Operand, RegOp, Size } from './builder.js';
import type { FaultKind } from './emulator-adapter.js';
import { Feature, Flag, Layout } from './protocol.js';

const { CF, PF, AF, ZF, SF, OF } = Flag;
/** The six status flags. */
const STATUS = CF | PF | AF | ZF | SF | OF;

export interface Form {
  name: string;
  sizes: readonly Size[];
  modes?: readonly Mode[];
  /** Feature bit (protocol.ts Feature) the host must report, else the form is skipped. */
  feature?: number;
  /** Uses 8-bit registers whatever the operand size (MOVZX r, r/m8; SETcc). */
  byteRegs?: boolean;
  /** Flags undefined after the instruction (SDM "Flags Affected"); may depend on the case's values. */
  undef?: number | ((b: Builder, size: Size) => number);
  /** Flags the SDM says are not affected: the generator suite checks them on the host CPU. */
  keeps?: number;
  /** Exceptions the form raises by design (besides the #PF probes any memory form may make). */
  faults?: readonly FaultKind[];
  gen: (b: Builder, size: Size) => void;
}

const ALL_SIZES = [8, 16, 32, 64] as const;
const WIDE = [16, 32, 64] as const;

const op8 = (s: Size, b8: number, bv: number): number[] => [s === 8 ? b8 : bv];
const immBytes = (s: Size): number => (s === 8 ? 1 : s === 16 ? 2 : 4);
/** LOCK for a memory destination, sometimes (SDM LOCK: only with a memory destination). */
const lock = (b: Builder, rm: Operand): number[] => (rm.kind === 'mem' && b.rng.chance(0.3) ? [0xf0] : []);

/** Register operand with a random value, then the r/m operand (memory last: it owns its base/index). */
function regThenRm(b: Builder, s: Size, rmSize: Size = s): { r: RegOp; rm: Operand } {
  const r = b.reg(s);
  b.randomize(r);
  const rm = b.rm(rmSize);
  b.randomize(rm);
  return { r, rm };
}

// ---- ADD OR ADC SBB AND SUB XOR CMP (opcode group /digit; SDM "ADD" ... "CMP") ----
// AND/OR/XOR: "OF and CF cleared, SF ZF PF set, the state of AF is undefined".
const ALU: ReadonlyArray<[string, number, number]> = [
  ['add', 0, 0],
  ['or', 1, AF],
  ['adc', 2, 0],
  ['sbb', 3, 0],
  ['and', 4, AF],
  ['sub', 5, 0],
  ['xor', 6, AF],
  ['cmp', 7, 0],
];

function aluForms(): Form[] {
  const out: Form[] = [];
  for (const [m, n, undef] of ALU) {
    const canLock = m !== 'cmp';
    out.push(
      {
        name: `${m} r/m, r`,
        sizes: ALL_SIZES,
        undef,
        gen: (b, s) => {
          const { r, rm } = regThenRm(b, s);
          b.insn({
            op: op8(s, n * 8, n * 8 + 1),
            reg: r,
            rm,
            osize: s,
            prefixes: canLock ? lock(b, rm) : [],
          });
        },
      },
      {
        name: `${m} r, r/m`,
        sizes: ALL_SIZES,
        undef,
        gen: (b, s) => {
          const { r, rm } = regThenRm(b, s);
          b.insn({ op: op8(s, n * 8 + 2, n * 8 + 3), reg: r, rm, osize: s });
        },
      },
      {
        name: `${m} r/m, imm`,
        sizes: ALL_SIZES,
        undef,
        gen: (b, s) => {
          const rm = b.rm(s);
          b.randomize(rm);
          const sx8 = s !== 8 && b.rng.chance(0.5); // 83 /n ib: sign-extended imm8
          const bytes = sx8 ? 1 : immBytes(s);
          const op = s === 8 ? 0x80 : sx8 ? 0x83 : 0x81;
          const pre = canLock ? lock(b, rm) : [];
          b.insn({
            op: [op],
            reg: n,
            rm,
            osize: s,
            imm: { bytes, value: b.rng.edge(bytes * 8) },
            prefixes: pre,
          });
        },
      },
      {
        name: `${m} acc, imm`,
        sizes: ALL_SIZES,
        undef,
        gen: (b, s) => {
          b.randomize(b.fixed(Reg.AX, s));
          const bytes = immBytes(s);
          b.insn({
            op: op8(s, n * 8 + 4, n * 8 + 5),
            osize: s,
            imm: { bytes, value: b.rng.edge(bytes * 8) },
          });
        },
      },
      {
        // 82 /n ib is an alias of 80 /n in 32-bit mode and #UD in 64-bit mode (SDM Vol. 2 Table A-6 note).
        name: `${m} r/m8, imm8 (82)`,
        sizes: [8],
        undef,
        faults: ['UD'],
        gen: (b, s) => {
          const rm = b.rm(s);
          b.randomize(rm);
          if (b.mode === 64) b.mayFault = true;
          b.insn({ op: [0x82], reg: n, rm, osize: s, imm: { bytes: 1, value: b.rng.edge(8) } });
        },
      },
    );
  }
  return out;
}

// ---- shifts and rotates (SDM "RCL/RCR/ROL/ROR", "SAL/SAR/SHL/SHR") ----
const SHIFTS: ReadonlyArray<[string, number]> = [
  ['rol', 0],
  ['ror', 1],
  ['rcl', 2],
  ['rcr', 3],
  ['shl', 4],
  ['shr', 5],
  ['sar', 7],
];

function pickCount(b: Builder, s: Size): number {
  return b.rng.chance(0.6)
    ? b.rng.pick([0, 1, 2, s - 1, s, s + 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 0xff])
    : b.rng.int(256);
}

/**
 * Undefined flags of a shift/rotate (count masked to 5 bits, 6 with REX.W):
 * - masked count 0: no flag is affected (all compared);
 * - rotates: only OF, and only when the masked count is not 1 ("OF is defined only for 1-bit rotates");
 * - SHL/SHR/SAR: AF undefined for a non-zero count; OF undefined unless the count is 1; CF undefined
 *   for SHL/SHR when the count is >= the operand size (8/16-bit operands only).
 */
function shiftUndef(name: string, count: number, s: Size): number {
  const masked = count & (s === 64 ? 63 : 31);
  if (masked === 0) return 0;
  const of = masked === 1 ? 0 : OF;
  if (name.startsWith('r')) return of;
  return AF | of | ((name === 'shl' || name === 'shr') && masked >= s ? CF : 0);
}

function shiftForms(): Form[] {
  const out: Form[] = [];
  for (const [m, n] of SHIFTS) {
    out.push(
      {
        name: `${m} r/m, 1`,
        sizes: ALL_SIZES,
        undef: (b, s) => shiftUndef(m, b.count, s),
        gen: (b, s) => {
          const rm = b.rm(s);
          b.randomize(rm);
          b.count = 1;
          b.insn({ op: op8(s, 0xd0, 0xd1), reg: n, rm, osize: s });
        },
      },
      {
        name: `${m} r/m, cl`,
        sizes: ALL_SIZES,
        undef: (b, s) => shiftUndef(m, b.count, s),
        gen: (b, s) => {
          b.reserve(Reg.CX);
          b.count = pickCount(b, s);
          b.setReg(b.fixed(Reg.CX, 8), BigInt(b.count));
          const rm = b.rm(s);
          b.randomize(rm);
          b.insn({ op: op8(s, 0xd2, 0xd3), reg: n, rm, osize: s });
        },
      },
      {
        name: `${m} r/m, imm8`,
        sizes: ALL_SIZES,
        undef: (b, s) => shiftUndef(m, b.count, s),
        gen: (b, s) => {
          const rm = b.rm(s);
          b.randomize(rm);
          b.count = pickCount(b, s);
          b.insn({ op: op8(s, 0xc0, 0xc1), reg: n, rm, osize: s, imm: { bytes: 1, value: BigInt(b.count) } });
        },
      },
    );
  }
  // SHLD/SHRD (SDM "SHLD", "SHRD"): count masked to 5 (6) bits; 0 leaves flags alone; for a 1-bit
  // shift OF is defined, else undefined; AF undefined; a count above the operand size (16-bit only)
  // leaves result and flags undefined: not generated.
  for (const [m, base] of [
    ['shld', 0xa4],
    ['shrd', 0xac],
  ] as const) {
    const undef = (b: Builder, s: Size): number => {
      const masked = b.count & (s === 64 ? 63 : 31);
      return masked === 0 ? 0 : AF | (masked === 1 ? 0 : OF);
    };
    const count = (b: Builder, s: Size): number => {
      const c = pickCount(b, s);
      return s === 16 && (c & 31) > 16 ? c & 15 : c;
    };
    out.push(
      {
        name: `${m} r/m, r, imm8`,
        sizes: WIDE,
        undef,
        gen: (b, s) => {
          const { r, rm } = regThenRm(b, s);
          b.count = count(b, s);
          b.insn({ op: [0x0f, base], reg: r, rm, osize: s, imm: { bytes: 1, value: BigInt(b.count) } });
        },
      },
      {
        name: `${m} r/m, r, cl`,
        sizes: WIDE,
        undef,
        gen: (b, s) => {
          b.reserve(Reg.CX);
          b.count = count(b, s);
          b.setReg(b.fixed(Reg.CX, 8), BigInt(b.count));
          const { r, rm } = regThenRm(b, s);
          b.insn({ op: [0x0f, base + 1], reg: r, rm, osize: s });
        },
      },
    );
  }
  return out;
}

// ---- unary group 3 and INC/DEC (SDM "NOT", "NEG", "MUL", "IMUL", "DIV", "IDIV", "INC", "DEC") ----
function unaryForms(): Form[] {
  const mulDivDest = (b: Builder, s: Size): void => {
    b.randomize(b.fixed(Reg.AX, s === 8 ? 16 : s));
    if (s !== 8) b.randomize(b.fixed(Reg.DX, s));
  };
  const out: Form[] = [
    {
      name: 'not r/m',
      sizes: ALL_SIZES,
      keeps: STATUS, // "Flags Affected: None"
      gen: (b, s) => {
        const rm = b.rm(s);
        b.randomize(rm);
        b.insn({ op: op8(s, 0xf6, 0xf7), reg: 2, rm, osize: s, prefixes: lock(b, rm) });
      },
    },
    {
      name: 'neg r/m',
      sizes: ALL_SIZES,
      gen: (b, s) => {
        const rm = b.rm(s);
        b.randomize(rm);
        b.insn({ op: op8(s, 0xf6, 0xf7), reg: 3, rm, osize: s, prefixes: lock(b, rm) });
      },
    },
    {
      name: 'test r/m, r',
      sizes: ALL_SIZES,
      undef: AF, // "OF and CF cleared; SF ZF PF set; AF undefined"
      gen: (b, s) => {
        const { r, rm } = regThenRm(b, s);
        b.insn({ op: op8(s, 0x84, 0x85), reg: r, rm, osize: s });
      },
    },
    {
      name: 'test r/m, imm',
      sizes: ALL_SIZES,
      undef: AF,
      gen: (b, s) => {
        const rm = b.rm(s);
        b.randomize(rm);
        const n = immBytes(s);
        b.insn({ op: op8(s, 0xf6, 0xf7), reg: 0, rm, osize: s, imm: { bytes: n, value: b.rng.edge(n * 8) } });
      },
    },
    {
      name: 'test acc, imm',
      sizes: ALL_SIZES,
      undef: AF,
      gen: (b, s) => {
        b.randomize(b.fixed(Reg.AX, s));
        const n = immBytes(s);
        b.insn({ op: op8(s, 0xa8, 0xa9), osize: s, imm: { bytes: n, value: b.rng.edge(n * 8) } });
      },
    },
    {
      // "CF and OF set when the upper half of the result is non-zero; SF ZF AF PF undefined"
      name: 'mul r/m',
      sizes: ALL_SIZES,
      undef: SF | ZF | AF | PF,
      gen: (b, s) => {
        mulDivDest(b, s);
        const rm = b.rm(s);
        b.randomize(rm);
        b.insn({ op: op8(s, 0xf6, 0xf7), reg: 4, rm, osize: s });
      },
    },
    {
      name: 'imul r/m',
      sizes: ALL_SIZES,
      undef: SF | ZF | AF | PF,
      gen: (b, s) => {
        mulDivDest(b, s);
        const rm = b.rm(s);
        b.randomize(rm);
        b.insn({ op: op8(s, 0xf6, 0xf7), reg: 5, rm, osize: s });
      },
    },
    {
      name: 'imul r, r/m',
      sizes: WIDE,
      undef: SF | ZF | AF | PF,
      gen: (b, s) => {
        const { r, rm } = regThenRm(b, s);
        b.insn({ op: [0x0f, 0xaf], reg: r, rm, osize: s });
      },
    },
    {
      name: 'imul r, r/m, imm',
      sizes: WIDE,
      undef: SF | ZF | AF | PF,
      gen: (b, s) => {
        const { r, rm } = regThenRm(b, s);
        const ib = b.rng.chance(0.5);
        const n = ib ? 1 : immBytes(s);
        b.insn({ op: [ib ? 0x6b : 0x69], reg: r, rm, osize: s, imm: { bytes: n, value: b.rng.edge(n * 8) } });
      },
    },
  ];
  // DIV/IDIV: "CF OF SF ZF AF PF undefined"; #DE for a zero divisor or a quotient too large.
  for (const [m, n] of [
    ['div', 6],
    ['idiv', 7],
  ] as const) {
    out.push({
      name: `${m} r/m`,
      sizes: ALL_SIZES,
      undef: STATUS,
      faults: ['DE'],
      gen: (b, s) => {
        b.mayFault = true;
        b.reserve(Reg.AX, Reg.DX);
        const rm = b.rm(s);
        const divisor = b.randomize(rm);
        const lo = b.rng.edge(s);
        let hi: bigint;
        const mask = (1n << BigInt(s)) - 1n;
        if (b.rng.chance(0.7)) {
          // mostly a quotient that fits
          if (m === 'div') hi = divisor === 0n ? 0n : (b.rng.u64() & mask) % divisor;
          else hi = (lo >> BigInt(s - 1)) & 1n ? mask : 0n;
        } else hi = b.rng.edge(s);
        if (s === 8) b.setReg(b.fixed(Reg.AX, 16), (hi << 8n) | lo);
        else {
          b.setReg(b.fixed(Reg.AX, s), lo);
          b.setReg(b.fixed(Reg.DX, s), hi);
        }
        b.insn({ op: op8(s, 0xf6, 0xf7), reg: n, rm, osize: s });
      },
    });
  }
  // INC/DEC: "CF not affected; OF SF ZF AF PF set according to the result".
  for (const [m, n] of [
    ['inc', 0],
    ['dec', 1],
  ] as const) {
    out.push(
      {
        name: `${m} r/m`,
        sizes: ALL_SIZES,
        keeps: CF,
        gen: (b, s) => {
          const rm = b.rm(s);
          b.randomize(rm);
          b.insn({ op: op8(s, 0xfe, 0xff), reg: n, rm, osize: s, prefixes: lock(b, rm) });
        },
      },
      {
        // 40+r / 48+r: only outside 64-bit mode (they are REX prefixes there).
        name: `${m} r (short)`,
        sizes: [16, 32],
        modes: [32],
        keeps: CF,
        gen: (b, s) => {
          const r = b.reg(s);
          b.randomize(r);
          b.insn({ op: [0x40 + n * 8], opreg: r.reg, osize: s });
        },
      },
    );
  }
  return out;
}

// ---- bit instructions (SDM "BT", "BTS", "BTR", "BTC", "BSF", "BSR", "TZCNT", "LZCNT", "POPCNT") ----
function bitForms(): Form[] {
  const out: Form[] = [];
  for (const [m, n] of [
    ['bt', 4],
    ['bts', 5],
    ['btr', 6],
    ['btc', 7],
  ] as const) {
    // "CF holds the selected bit; ZF unaffected; OF SF AF PF undefined."
    const undef = OF | SF | AF | PF;
    const pre = (b: Builder, rm: Operand): number[] => (m === 'bt' ? [] : lock(b, rm));
    out.push(
      {
        name: `${m} r/m, r`,
        sizes: WIDE,
        undef,
        keeps: ZF,
        gen: (b, s) => {
          const r = b.reg(s);
          b.reserve(r.reg); // the bit offset is set after the memory operand's base/index
          const rm = b.rm(s, 0.5, { spread: Layout.dataSize, align: s / 8 });
          if (rm.kind === 'mem') {
            // Memory form: the bit offset is a signed s-bit value and may reach far beyond the
            // operand ("bit offset ... -2^31 to 2^31-1"); keep it inside the data window.
            const lo = -rm.off * 8;
            const hi = (Layout.dataSize - rm.off) * 8 - s;
            let off = b.rng.chance(0.5) ? b.rng.range(-s, 2 * s) : b.rng.range(lo, hi);
            if (s === 16) off = Math.max(-32768, Math.min(32767, off));
            b.setReg(r, BigInt.asUintN(s, BigInt(off)));
            b.randomize(rm);
          } else {
            b.randomize(r);
            b.randomize(rm);
          }
          b.insn({ op: [0x0f, 0xa3 + (n - 4) * 8], reg: r, rm, osize: s, prefixes: pre(b, rm) });
        },
      },
      {
        name: `${m} r/m, imm8`,
        sizes: WIDE,
        undef,
        keeps: ZF,
        gen: (b, s) => {
          const rm = b.rm(s);
          b.randomize(rm);
          const imm = b.rng.chance(0.5) ? b.rng.int(s) : b.rng.int(256);
          b.insn({
            op: [0x0f, 0xba],
            reg: n,
            rm,
            osize: s,
            imm: { bytes: 1, value: BigInt(imm) },
            prefixes: pre(b, rm),
          });
        },
      },
    );
  }
  // BSF/BSR: "ZF set if the source is 0, else cleared; CF OF SF AF PF undefined". A zero source
  // leaves the destination undefined (SDM); Intel and AMD both leave it unchanged in practice (AMD
  // documents it), but the comparison masks it.
  for (const [m, opc] of [
    ['bsf', 0xbc],
    ['bsr', 0xbd],
  ] as const) {
    out.push({
      name: `${m} r, r/m`,
      sizes: WIDE,
      undef: CF | OF | SF | AF | PF,
      gen: (b, s) => {
        const r = b.reg(s);
        b.randomize(r);
        const rm = b.rm(s);
        b.src = b.rng.chance(0.15) ? 0n : b.rng.edge(s);
        b.set(rm, b.src);
        if (b.get(rm) === 0n) b.regUndef.set(r.reg, b.wordMask);
        b.insn({ op: [0x0f, opc], reg: r, rm, osize: s });
      },
    });
  }
  // TZCNT/LZCNT: "CF set if the source is 0; ZF set if the result is 0; OF SF PF AF undefined".
  // Without BMI1/LZCNT the same bytes execute as BSF/BSR: the rows need the feature.
  out.push(
    {
      name: 'tzcnt r, r/m',
      sizes: WIDE,
      feature: Feature.BMI1,
      undef: OF | SF | PF | AF,
      gen: (b, s) => {
        const { r, rm } = regThenRm(b, s);
        b.insn({ op: [0x0f, 0xbc], reg: r, rm, osize: s, mandatory: 0xf3 });
      },
    },
    {
      name: 'lzcnt r, r/m',
      sizes: WIDE,
      feature: Feature.LZCNT,
      undef: OF | SF | PF | AF,
      gen: (b, s) => {
        const { r, rm } = regThenRm(b, s);
        b.insn({ op: [0x0f, 0xbd], reg: r, rm, osize: s, mandatory: 0xf3 });
      },
    },
    {
      // "OF SF ZF AF CF PF cleared, then ZF set if the source is 0": all defined.
      name: 'popcnt r, r/m',
      sizes: WIDE,
      feature: Feature.POPCNT,
      gen: (b, s) => {
        const { r, rm } = regThenRm(b, s);
        b.insn({ op: [0x0f, 0xb8], reg: r, rm, osize: s, mandatory: 0xf3 });
      },
    },
  );
  return out;
}

// ---- exchange and compare-exchange (SDM "XCHG", "XADD", "CMPXCHG", "CMPXCHG8B/CMPXCHG16B") ----
function xchgForms(): Form[] {
  return [
    {
      name: 'xchg r/m, r',
      sizes: ALL_SIZES,
      keeps: STATUS,
      gen: (b, s) => {
        const { r, rm } = regThenRm(b, s);
        b.insn({ op: op8(s, 0x86, 0x87), reg: r, rm, osize: s, prefixes: lock(b, rm) });
      },
    },
    {
      // 90+r; 90 without REX.B is NOP (no zero-extension of RAX in 64-bit mode).
      name: 'xchg acc, r (90+r)',
      sizes: WIDE,
      keeps: STATUS,
      gen: (b, s) => {
        b.randomize(b.fixed(Reg.AX, s));
        const r = b.rng.chance(0.1) ? b.fixed(Reg.AX, s) : b.reg(s);
        b.randomize(r);
        b.insn({ op: [0x90], opreg: r.reg, osize: s });
      },
    },
    {
      name: 'xadd r/m, r',
      sizes: ALL_SIZES,
      gen: (b, s) => {
        const { r, rm } = regThenRm(b, s);
        b.insn({ op: [0x0f, s === 8 ? 0xc0 : 0xc1], reg: r, rm, osize: s, prefixes: lock(b, rm) });
      },
    },
    {
      // Flags as CMP of the accumulator with the destination.
      name: 'cmpxchg r/m, r',
      sizes: ALL_SIZES,
      gen: (b, s) => {
        b.reserve(Reg.AX);
        const { r, rm } = regThenRm(b, s);
        const acc = b.fixed(Reg.AX, s);
        if (b.rng.chance(0.5)) b.setReg(acc, b.get(rm));
        else b.randomize(acc);
        b.insn({ op: [0x0f, s === 8 ? 0xb0 : 0xb1], reg: r, rm, osize: s, prefixes: lock(b, rm) });
      },
    },
    {
      // "ZF set if equal; CF PF AF SF OF unaffected."
      name: 'cmpxchg8b m64',
      sizes: [32],
      keeps: CF | PF | AF | SF | OF,
      gen: (b) => {
        b.reserve(Reg.AX, Reg.DX, Reg.CX, Reg.BX);
        const m = b.mem(64);
        const v = b.rng.chance(0.5) ? b.get(m) : b.rng.edge(64);
        b.setReg(b.fixed(Reg.AX, 32), v);
        b.setReg(b.fixed(Reg.DX, 32), v >> 32n);
        b.randomize(b.fixed(Reg.BX, 32));
        b.randomize(b.fixed(Reg.CX, 32));
        b.insn({ op: [0x0f, 0xc7], reg: 1, rm: m, osize: null, prefixes: lock(b, m) });
      },
    },
    {
      // "#GP(0) if the memory operand is not 16-byte aligned."
      name: 'cmpxchg16b m128',
      sizes: [64],
      modes: [64],
      feature: Feature.CX16,
      keeps: CF | PF | AF | SF | OF,
      faults: ['GP'],
      gen: (b) => {
        b.reserve(Reg.AX, Reg.DX, Reg.CX, Reg.BX);
        const misalign = b.rng.chance(0.1);
        if (misalign) b.mayFault = true;
        const m = b.mem(64, { align: misalign ? 1 : 16, spread: 48 });
        const lo = b.get(m);
        let hi = 0n;
        for (let i = 15; i >= 8; i--) hi = (hi << 8n) | BigInt(b.c.data[m.off + i] ?? 0);
        const eq = b.rng.chance(0.5);
        b.setReg(b.fixed(Reg.AX, 64), eq ? lo : b.rng.edge(64));
        b.setReg(b.fixed(Reg.DX, 64), eq ? hi : b.rng.edge(64));
        b.randomize(b.fixed(Reg.BX, 64));
        b.randomize(b.fixed(Reg.CX, 64));
        b.insn({ op: [0x0f, 0xc7], reg: 1, rm: m, osize: 64, prefixes: lock(b, m) });
      },
    },
    {
      // CMPXCHG8B with a register operand: #UD ("If the destination operand is not a memory location").
      name: 'cmpxchg8b reg (#UD)',
      sizes: [32],
      faults: ['UD'],
      gen: (b) => {
        b.mayFault = true;
        b.insn({ op: [0x0f, 0xc7], reg: 1, rm: b.reg(32), osize: null });
      },
    },
  ];
}

// ---- data movement (SDM "MOV", "MOVZX", "MOVSX/MOVSXD", "LEA", "CBW/CWDE/CDQE", "CWD/CDQ/CQO",
// "BSWAP", "XLAT"): no flags affected ----
function moveForms(): Form[] {
  return [
    {
      name: 'mov r/m, r',
      sizes: ALL_SIZES,
      keeps: STATUS,
      gen: (b, s) => {
        const { r, rm } = regThenRm(b, s);
        b.insn({ op: op8(s, 0x88, 0x89), reg: r, rm, osize: s });
      },
    },
    {
      name: 'mov r, r/m',
      sizes: ALL_SIZES,
      keeps: STATUS,
      gen: (b, s) => {
        const { r, rm } = regThenRm(b, s);
        b.insn({ op: op8(s, 0x8a, 0x8b), reg: r, rm, osize: s });
      },
    },
    {
      name: 'mov r/m, imm',
      sizes: ALL_SIZES,
      keeps: STATUS,
      gen: (b, s) => {
        const rm = b.rm(s);
        b.randomize(rm);
        const n = immBytes(s);
        b.insn({ op: op8(s, 0xc6, 0xc7), reg: 0, rm, osize: s, imm: { bytes: n, value: b.rng.edge(n * 8) } });
      },
    },
    {
      // B0+r ib, B8+r iw/id, and with REX.W the only 64-bit immediate (io).
      name: 'mov r, imm (B0+r/B8+r)',
      sizes: ALL_SIZES,
      keeps: STATUS,
      gen: (b, s) => {
        const r = b.reg(s);
        b.randomize(r);
        const n = s / 8;
        b.insn({
          op: [s === 8 ? 0xb0 : 0xb8],
          opreg: r.reg,
          osize: s,
          imm: { bytes: n, value: b.rng.edge(s) },
        });
      },
    },
    {
      // A0-A3: moffs is as wide as the address size (8 bytes in 64-bit mode, 4 with 0x67 or in 32-bit mode).
      name: 'mov acc, moffs / moffs, acc',
      sizes: ALL_SIZES,
      keeps: STATUS,
      gen: (b, s) => {
        b.randomize(b.fixed(Reg.AX, s));
        const off = b.rng.range(0x200, 0xe00);
        b.fillData(off - 8, off + 16);
        const store = b.rng.chance(0.5);
        const a32 = b.mode === 64 && b.rng.chance(0.3);
        const opc = (store ? 0xa2 : 0xa0) + (s === 8 ? 0 : 1);
        b.insn({
          op: [opc],
          osize: s,
          prefixes: a32 ? [0x67] : [],
          imm: { bytes: b.mode === 64 && !a32 ? 8 : 4, value: BigInt(Layout.dataAddr + off) },
        });
      },
    },
    {
      name: 'movzx r, r/m8',
      sizes: WIDE,
      byteRegs: true,
      keeps: STATUS,
      gen: (b, s) => {
        const { r, rm } = regThenRm(b, s, 8);
        b.insn({ op: [0x0f, 0xb6], reg: r, rm, osize: s });
      },
    },
    {
      name: 'movzx r, r/m16',
      sizes: [32, 64],
      keeps: STATUS,
      gen: (b, s) => {
        const { r, rm } = regThenRm(b, s, 16);
        b.insn({ op: [0x0f, 0xb7], reg: r, rm, osize: s });
      },
    },
    {
      name: 'movsx r, r/m8',
      sizes: WIDE,
      byteRegs: true,
      keeps: STATUS,
      gen: (b, s) => {
        const { r, rm } = regThenRm(b, s, 8);
        b.insn({ op: [0x0f, 0xbe], reg: r, rm, osize: s });
      },
    },
    {
      name: 'movsx r, r/m16',
      sizes: [32, 64],
      keeps: STATUS,
      gen: (b, s) => {
        const { r, rm } = regThenRm(b, s, 16);
        b.insn({ op: [0x0f, 0xbf], reg: r, rm, osize: s });
      },
    },
    {
      // 63 /r: MOVSXD in 64-bit mode only (ARPL elsewhere). Without REX.W a plain 32-bit move.
      name: 'movsxd r, r/m32',
      sizes: [32, 64],
      modes: [64],
      keeps: STATUS,
      gen: (b, s) => {
        const { r, rm } = regThenRm(b, s, 32);
        b.insn({ op: [0x63], reg: r, rm, osize: s });
      },
    },
    {
      // Every addressing form: SIB with all scales, disp8/disp32, RIP-relative, 0x67 (32-bit
      // addresses in 64-bit mode, 16-bit addresses in 32-bit mode). No memory access.
      name: 'lea r, m',
      sizes: WIDE,
      keeps: STATUS,
      gen: (b, s) => {
        const r = b.reg(s);
        b.randomize(r);
        b.insn({ op: [0x8d], reg: r, rm: b.mem(s, { access: false }), osize: s });
      },
    },
    {
      name: 'lea r, reg (#UD)',
      sizes: [32],
      faults: ['UD'],
      gen: (b, s) => {
        b.mayFault = true;
        b.insn({ op: [0x8d], reg: b.reg(s), rm: b.reg(s), osize: s });
      },
    },
    {
      name: 'cbw/cwde/cdqe',
      sizes: WIDE,
      keeps: STATUS,
      gen: (b, s) => {
        b.randomize(b.fixed(Reg.AX, s));
        b.insn({ op: [0x98], osize: s });
      },
    },
    {
      name: 'cwd/cdq/cqo',
      sizes: WIDE,
      keeps: STATUS,
      gen: (b, s) => {
        b.randomize(b.fixed(Reg.AX, s));
        b.insn({ op: [0x99], osize: s });
      },
    },
    {
      // 16-bit BSWAP is undefined (SDM "BSWAP"): not generated.
      name: 'bswap r',
      sizes: [32, 64],
      keeps: STATUS,
      gen: (b, s) => {
        const r = b.rng.chance(0.1) ? b.fixed(Reg.SP, s) : b.reg(s);
        if (r.reg !== Reg.SP) b.randomize(r);
        b.insn({ op: [0x0f, 0xc8], opreg: r.reg, osize: s });
      },
    },
    {
      // AL := [rBX + zero-extended AL]
      name: 'xlat',
      sizes: [8],
      keeps: STATUS,
      gen: (b) => {
        b.randomize(b.fixed(Reg.AX, 8));
        const off = b.rng.range(0x200, 0xd00);
        b.fillData(off, off + 256);
        b.c.regs[Reg.BX] = BigInt(Layout.dataAddr + off) | (b.mode === 64 ? b.rng.u64() & ~0xffff_ffffn : 0n);
        const a32 = b.mode === 64 && b.rng.chance(0.5);
        if (b.mode === 64 && !a32) b.c.regs[Reg.BX] = BigInt(Layout.dataAddr + off);
        b.insn({ op: [0xd7], prefixes: a32 ? [0x67] : [] });
      },
    },
    {
      // Multi-byte NOP 0F 1F /0: the memory operand is not accessed.
      name: 'nop r/m',
      sizes: [16, 32],
      keeps: STATUS,
      gen: (b, s) => {
        b.insn({
          op: [0x0f, 0x1f],
          reg: 0,
          rm: b.rng.chance(0.7) ? b.mem(s, { access: false }) : b.reg(s),
          osize: s,
        });
      },
    },
  ];
}

// ---- conditions (SDM "SETcc", "CMOVcc", "Jcc") ----
function condForms(): Form[] {
  return [
    {
      // The ModRM.reg field is ignored by SETcc (SDM "SETcc").
      name: 'setcc r/m8',
      sizes: [8],
      byteRegs: true,
      keeps: STATUS,
      gen: (b) => {
        const rm = b.rm(8);
        b.randomize(rm);
        b.insn({ op: [0x0f, 0x90 + b.rng.int(16)], reg: b.rng.int(8), rm, osize: 8 });
      },
    },
    {
      // A 32-bit CMOV zero-extends the destination in 64-bit mode even when the condition is false;
      // a memory source is read (and may fault) either way.
      name: 'cmovcc r, r/m',
      sizes: WIDE,
      keeps: STATUS,
      gen: (b, s) => {
        const { r, rm } = regThenRm(b, s);
        b.insn({ op: [0x0f, 0x40 + b.rng.int(16)], reg: r, rm, osize: s });
      },
    },
    {
      // A short forward Jcc over a marker MOV: the outcome shows in the marker register.
      name: 'jcc rel8/rel32',
      sizes: [32],
      keeps: STATUS,
      gen: (b) => {
        const cc = b.rng.int(16);
        if (b.rng.chance(0.5)) b.raw(0x70 + cc, 5);
        else b.raw(0x0f, 0x80 + cc, 5, 0, 0, 0);
        marker(b);
      },
    },
    {
      name: 'jmp rel8/rel32',
      sizes: [32],
      keeps: STATUS,
      gen: (b) => {
        if (b.rng.chance(0.5)) b.raw(0xeb, 5);
        else b.raw(0xe9, 5, 0, 0, 0);
        marker(b);
      },
    },
  ];
}

/** One of EAX..EDI except ESP (encodable without REX). */
const lowReg = (b: Builder): number => b.rng.pick([0, 1, 2, 3, 5, 6, 7]);

/** mov r32, imm32 (5 bytes). */
function marker(b: Builder): void {
  b.raw(0xb8 + lowReg(b), ...[0, 0, 0, 0].map(() => b.rng.int(256)));
}

// ---- LOOP/JrCXZ (SDM "LOOP/LOOPcc", "JCXZ/JECXZ/JRCXZ"): count register RCX, or ECX with 0x67 ----
function loopForms(): Form[] {
  const rcx = (b: Builder): void => {
    const v = b.rng.pick([0n, 1n, 2n, 0x1_0000_0000n, 0x1_0000_0001n, 0xffff_ffffn, b.rng.edge(64)]);
    b.c.regs[Reg.CX] = v & b.wordMask;
  };
  const a32 = (b: Builder): number[] => (b.mode === 64 && b.rng.chance(0.4) ? [0x67] : []);
  return [
    {
      name: 'loop/loope/loopne/jrcxz forward',
      sizes: [32],
      keeps: STATUS,
      gen: (b) => {
        b.reserve(Reg.CX);
        rcx(b);
        b.raw(...a32(b), 0xe0 + b.rng.int(4), 5);
        marker(b);
      },
    },
    {
      // mov ecx, n ; L: inc eax ; cmp eax, edx ; loop(ne) L  -- a real backward loop of 1..6 turns
      name: 'loop backward',
      sizes: [32],
      undef: 0,
      gen: (b) => {
        b.reserve(Reg.CX);
        b.randomize(b.fixed(Reg.AX, 32));
        b.c.regs[Reg.DX] = (b.c.regs[Reg.AX]! + BigInt(b.rng.int(8))) & 0xffff_ffffn;
        const n = b.rng.range(1, 6);
        b.raw(0xb9, n, 0, 0, 0, 0xff, 0xc0, 0x39, 0xd0);
        b.raw(b.rng.pick([0xe0, 0xe1, 0xe2]), 0xfa);
      },
    },
  ];
}

// ---- flag instructions (SDM "CLC", "STC", "CMC", "CLD", "STD", "LAHF", "SAHF", "PUSHF") ----
function flagForms(): Form[] {
  return [
    {
      name: 'clc/stc/cmc/cld/std',
      sizes: [32],
      gen: (b) => b.raw(b.rng.pick([0xf8, 0xf9, 0xf5, 0xfc, 0xfd])),
    },
    {
      // LAHF: AH := SF:ZF:0:AF:0:PF:1:CF; SAHF loads SF ZF AF PF CF from AH.
      name: 'lahf/sahf',
      sizes: [32],
      gen: (b) => {
        b.randomize({ kind: 'reg', reg: 4, size: 8, high8: true });
        b.raw(b.rng.pick([0x9e, 0x9f]));
      },
    },
    {
      name: 'pushf',
      sizes: [16, 32, 64],
      keeps: STATUS,
      gen: (b, s) => {
        b.insn({ op: [0x9c], osize: s === 16 ? 16 : null });
      },
    },
  ];
}

// ---- stack (SDM "PUSH", "POP", "ENTER", "LEAVE", "CALL", "RET") ----
/** Stack operand sizes: 64 or 16 in 64-bit mode, 32 or 16 in 32-bit mode. */
const STACK = [16, 32, 64] as const;
const stackSizeOk = (b: Builder, s: Size): boolean => (b.mode === 64 ? s !== 32 : s !== 64);

function stackForms(): Form[] {
  const fixSize = (b: Builder, s: Size): Size => (stackSizeOk(b, s) ? s : b.mode);
  return [
    {
      name: 'push r',
      sizes: STACK,
      keeps: STATUS,
      gen: (b, s0) => {
        const s = fixSize(b, s0);
        const r = b.rng.chance(0.1) ? b.fixed(Reg.SP, s) : b.reg(s);
        if (r.reg !== Reg.SP) b.randomize(r);
        b.insn({ op: [0x50], opreg: r.reg, osize: s, default64: true });
      },
    },
    {
      name: 'pop r',
      sizes: STACK,
      keeps: STATUS,
      gen: (b, s0) => {
        const s = fixSize(b, s0);
        const r = b.rng.chance(0.1) ? b.fixed(Reg.SP, s) : b.reg(s);
        b.insn({ op: [0x58], opreg: r.reg, osize: s, default64: true });
      },
    },
    {
      name: 'push imm',
      sizes: STACK,
      keeps: STATUS,
      gen: (b, s0) => {
        const s = fixSize(b, s0);
        const ib = b.rng.chance(0.5);
        const n = ib ? 1 : s === 16 ? 2 : 4;
        b.insn({
          op: [ib ? 0x6a : 0x68],
          osize: s,
          default64: true,
          imm: { bytes: n, value: b.rng.edge(n * 8) },
        });
      },
    },
    {
      name: 'push m',
      sizes: STACK,
      keeps: STATUS,
      gen: (b, s0) => {
        const s = fixSize(b, s0);
        const m = b.mem(s, { avoid: [Reg.SP] });
        b.randomize(m);
        b.insn({ op: [0xff], reg: 6, rm: m, osize: s, default64: true });
      },
    },
    {
      name: 'pop m',
      sizes: STACK,
      keeps: STATUS,
      gen: (b, s0) => {
        const s = fixSize(b, s0);
        const m = b.mem(s, { avoid: [Reg.SP] });
        b.insn({ op: [0x8f], reg: 0, rm: m, osize: s, default64: true });
      },
    },
    {
      // ENTER size, level: level 0..3 copies frame pointers from [rBP - k*width] (RBP in the stack window).
      name: 'enter',
      sizes: STACK,
      keeps: STATUS,
      gen: (b, s0) => {
        const s = fixSize(b, s0);
        b.c.regs[Reg.BP] = BigInt(STACK_TOP + b.rng.range(0, 0x100)) & ~7n;
        const level = b.rng.pick([0, 0, 1, 1, 2, 3, 33]);
        b.insn({
          op: [0xc8],
          osize: s === b.mode ? null : s,
          default64: true,
          imm: { bytes: 3, value: BigInt(b.rng.range(0, 0x100) | (level << 16)) },
        });
      },
    },
    {
      name: 'leave',
      sizes: STACK,
      keeps: STATUS,
      gen: (b, s0) => {
        const s = fixSize(b, s0);
        b.c.regs[Reg.BP] = BigInt(STACK_TOP + b.rng.range(-0x40, 0x100)) & (b.rng.chance(0.9) ? ~7n : ~0n);
        b.insn({ op: [0xc9], osize: s === b.mode ? null : s, default64: true });
      },
    },
    {
      // call over a marker, then pop the pushed return address into a register.
      name: 'call rel32 + pop',
      sizes: [32],
      keeps: STATUS,
      gen: (b) => {
        b.raw(0xe8, 5, 0, 0, 0);
        marker(b);
        b.raw(0x58 + lowReg(b));
      },
    },
    {
      // push the end address, ret (or ret imm16) to it over a marker.
      name: 'ret / ret imm16',
      sizes: [32],
      keeps: STATUS,
      gen: (b) => {
        const withImm = b.rng.chance(0.5);
        const end = Layout.codeAddr + 5 + (withImm ? 3 : 1) + 5;
        b.raw(0x68, end & 0xff, (end >> 8) & 0xff, (end >> 16) & 0xff, end >>> 24);
        if (withImm) b.raw(0xc2, b.rng.pick([0, 8, 16]), 0);
        else b.raw(0xc3);
        marker(b);
      },
    },
  ];
}

// ---- string instructions (SDM "MOVS", "STOS", "LODS", "SCAS", "CMPS", "REP/REPE/REPNE") ----
function stringForms(): Form[] {
  const ops: ReadonlyArray<[string, number, boolean]> = [
    ['movs', 0xa4, true],
    ['cmps', 0xa6, true],
    ['stos', 0xaa, false],
    ['lods', 0xac, true],
    ['scas', 0xae, false],
  ];
  return ops.map(([m, opc, usesSi]) => ({
    name: `${m} (rep/repe/repne, DF=0/1)`,
    sizes: ALL_SIZES,
    keeps: m === 'cmps' || m === 'scas' ? 0 : STATUS,
    gen: (b: Builder, s: Size) => {
      // F2 (REPNE) is defined only for CMPS/SCAS.
      const rep = b.rng.pick(m === 'cmps' || m === 'scas' ? [[], [0xf3], [0xf2]] : [[], [0xf3]]);
      const a32 = b.mode === 64 && b.rng.chance(0.3);
      const high = a32 ? b.rng.u64() & ~0xffff_ffffn : 0n; // ignored with 32-bit addresses
      const count = BigInt(b.rng.int(7));
      b.c.regs[Reg.CX] = (rep.length ? count : b.rng.edge(b.mode)) | (a32 ? high : 0n);
      b.c.regs[Reg.SI] = BigInt(Layout.dataAddr + b.rng.range(0x300, 0x500)) | high;
      b.c.regs[Reg.DI] = BigInt(Layout.dataAddr + b.rng.range(0xa00, 0xc00)) | high;
      b.fillData(0x2c0, 0x540);
      b.fillData(0x9c0, 0xc40);
      // With a few equal bytes REPE/REPNE CMPS and SCAS stop at different places.
      if (b.rng.chance(0.5)) b.c.data.copyWithin(0xa00, 0x300, 0x540);
      b.randomize(b.fixed(Reg.AX, s));
      const seg =
        usesSi && b.rng.chance(0.2)
          ? [b.rng.pick(b.mode === 64 ? [0x2e, 0x36, 0x3e, 0x26] : [0x36, 0x3e, 0x26])]
          : [];
      b.insn({ op: [s === 8 ? opc : opc + 1], osize: s, prefixes: [...rep, ...seg, ...(a32 ? [0x67] : [])] });
    },
  }));
}

// ---- prefixes that must fault ----
function prefixFaultForms(): Form[] {
  return [
    {
      // LOCK with a register destination or a non-lockable instruction: #UD (SDM "LOCK").
      name: 'lock misuse (#UD)',
      sizes: [32],
      faults: ['UD'],
      gen: (b, s) => {
        b.mayFault = true;
        const r = b.reg(s);
        const rm = b.rng.chance(0.5) ? b.reg(s) : b.mem(s);
        const opc = rm.kind === 'reg' ? b.rng.pick([0x01, 0x09, 0x29, 0x31]) : b.rng.pick([0x89, 0x8b, 0x85]);
        b.insn({ op: [opc], reg: r, rm, osize: s, prefixes: [0xf0] });
      },
    },
    {
      // INTO: #OF (a trap, vector 4) when OF=1 outside 64-bit mode; #UD in 64-bit mode.
      name: 'into',
      sizes: [32],
      faults: ['UD', 'other'],
      gen: (b) => {
        b.mayFault = true;
        b.raw(0xce);
      },
    },
  ];
}

/** The table. */
export const FORMS: readonly Form[] = [
  ...aluForms(),
  ...shiftForms(),
  ...unaryForms(),
  ...bitForms(),
  ...xchgForms(),
  ...moveForms(),
  ...condForms(),
  ...loopForms(),
  ...flagForms(),
  ...stackForms(),
  ...stringForms(),
  ...prefixFaultForms(),
];

/** Operand sizes of a form that exist in a mode (no 64-bit operands outside 64-bit mode). */
export function sizesIn(form: Form, mode: Mode): Size[] {
  return form.sizes.filter((s) => mode === 64 || s !== 64);
}
