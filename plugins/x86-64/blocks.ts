/**
 * Translated basic blocks: a straight run of common instructions (32-bit register ALU, MOV,
 * shifts, INC/DEC, MOVZX/MOVSX, CMOVcc, TEST, loads and stores through [base] or [base+disp8],
 * REX forms of some of them, ending at a Jcc/JMP or before the first other instruction) compiled
 * once into a JavaScript function. Registers live in locals for the whole block; flags are kept as
 * the last writer's operands in locals and stored into the CPU's lazy-flag fields only where
 * something outside the block could look (a memory access that may fault, the block's exit), and
 * flag readers inside the block (ADC/SBB, INC/DEC, Jcc, CMOVcc) test them inline when the writer
 * is known.
 *
 * A block is keyed by where its bytes sit in host RAM (the fetch window's buffer and position) and
 * by the code size (64-bit mode or 32-bit code segment), never by a linear address: a change of
 * paging, EPT or CS base re-translates RIP to the bytes first, so it cannot reach a block decoded
 * from other bytes. Its page is marked in the RAM region's codePages, so every other writer
 * (bus.noteRamWrite: DMA, loaders, the policy) and the CPU's own stores (no write TLB entry for a
 * code page: stores take the slow path, which reports them) drop the page's blocks. A store inside
 * a block ends the block when it invalidated code, so the next instruction is decoded afresh.
 * Blocks never cross the fetch window (one page), so an instruction straddling two pages is left to
 * the general path. A block whose branch goes back to its own start runs its passes in one call.
 */
import type { RamRegion } from '../../src/core/bus.js';
import { Lazy } from './core.js';

/**
 * Executes a block: returns the next RIP; `cpu.icount` advanced by the instructions retired, at
 * most `budget` (a block that branches back to its own start runs again while another pass fits).
 */
export type BlockFn = (cpu: unknown, rl: Int32Array, rh: Int32Array, rip: number, budget: number) => number;

export interface Block {
  /** Key: window position * 2 + (64-bit mode ? 1 : 0). */
  key: number;
  buf: Uint8Array;
  /** Physical page number of the bytes (for invalidation). */
  page: number;
  /** Instructions (0: nothing to run here: the first instruction is not translated). */
  n: number;
  /** Bytes from the block start to the end of its last instruction. */
  bytes: number;
  valid: boolean;
  /** The block ends with a branch back to its own start, and runs its passes in one call. */
  loops: boolean;
  fn: BlockFn;
}

const NO_FN: BlockFn = (_c, _l, _h, rip) => rip;

/** A block that is not there (kept so the miss is not compiled again). */
export function emptyBlock(key: number, buf: Uint8Array, page: number): Block {
  return { key, buf, page, n: 0, bytes: 0, valid: true, loops: false, fn: NO_FN };
}

/** Longest block, in instructions. */
const MAX_INSNS = 64;

// Lazy-flag kinds as the generated code stores them: core.ts's Lazy, the one definition.
const K_ADD = Lazy.Add,
  K_ADC = Lazy.Adc,
  K_SUB = Lazy.Sub,
  K_SBB = Lazy.Sbb,
  K_LOGIC = Lazy.Logic,
  K_INC = Lazy.Inc,
  K_DEC = Lazy.Dec,
  K_SHIFT = Lazy.Shift;

const s8 = (v: number): number => (v << 24) >> 24;

/**
 * Compile the block at buf[p], with its bytes inside [p, end). Returns null when the first
 * instruction is not one this translates.
 */
export function compileBlock(
  buf: Uint8Array,
  p: number,
  end: number,
  m64: boolean,
): { fn: BlockFn; n: number; bytes: number; loops: boolean } | null {
  const used = new Set<number>();
  const out: string[] = [];
  /** Compile-time kind of the last flag writer in the block (0: the CPU's fields are current). */
  let fk = 0;
  /** The writer was 64-bit (INC/DEC with REX.W only). */
  let fw = false;
  /** The CPU's lazy-flag fields hold the last writer already. */
  let stored = true;
  let n = 0;
  let q = p;
  let ended = false;
  /** The block ends with a branch back to its own start: it loops in place (see branch()). */
  let loops = false;

  const A = (r: number): string => {
    used.add(r);
    return `a${r}`;
  };
  const H = (r: number): string => {
    used.add(r);
    return `h${r}`;
  };
  /** The store of the pending flags, for a path that leaves the block (no state change here). */
  const flagsCode = (): string => {
    if (stored || fk === 0) return '';
    if (fw)
      return `cpu.lfOp=${fk};cpu.lfSz=8;cpu.lfR=fR;cpu.lfRH=fRH;cpu.lfA=fA;cpu.lfAH=fAH;cpu.lfB=fB;cpu.lfBH=0;cpu.lfC=fC;`;
    return `cpu.lfOp=${fk};cpu.lfSz=4;cpu.lfR=fR;cpu.lfA=fA;cpu.lfB=fB;cpu.lfC=fC;`;
  };
  /** The same in the block's straight-line code: later code finds the fields current. */
  const storeFlags = (): string => {
    const c = flagsCode();
    stored = true;
    return c;
  };
  const carry = (): string => {
    switch (fk) {
      case 0:
        return 'cpu.carry()';
      case K_LOGIC:
        return '0';
      case K_ADD:
        return '((fR>>>0)<(fA>>>0)?1:0)';
      case K_ADC:
        return '((fC?(fR>>>0)<=(fA>>>0):(fR>>>0)<(fA>>>0))?1:0)';
      case K_SUB:
        return '((fA>>>0)<(fB>>>0)?1:0)';
      case K_SBB:
        return '((fC?(fA>>>0)<=(fB>>>0):(fA>>>0)<(fB>>>0))?1:0)';
      default:
        return 'fC'; // INC/DEC keep CF, shifts shift it out
    }
  };
  /** A condition (Jcc/CMOVcc low nibble) as an expression; may first emit a flag store. */
  const cond = (cc: number): string => {
    const neg = (cc & 1) !== 0;
    let e: string;
    switch (cc >> 1) {
      case 1:
        if (fk === 0) return `cpu.cond(${cc})`;
        e = `(${carry()}!==0)`;
        break;
      case 2:
        if (fk === 0) return `cpu.condFast(${cc})`;
        e = fw ? '((fR|fRH)===0)' : '(fR===0)';
        break;
      case 3:
        if (fk === 0) return `cpu.cond(${cc})`;
        e = `(${carry()}!==0||${fw ? '(fR|fRH)===0' : 'fR===0'})`;
        break;
      case 4:
        if (fk === 0) return `cpu.cond(${cc})`;
        e = fw ? '(fRH<0)' : '(fR<0)';
        break;
      default:
        out.push(storeFlags());
        return `cpu.cond(${cc})`;
    }
    return neg ? `!${e}` : e;
  };
  const setFlags = (kind: number): void => {
    fk = kind;
    fw = false;
    stored = false;
  };
  /** The rip of the instruction at offset o from the block start. */
  const ripAt = (o: number): string => (m64 ? `(rip+${o})` : `((rip+${o})>>>0)`);
  /** Leave after `k` instructions at offset o (flags stored, registers written back). */
  const exit = (k: number, o: string): string => `${flagsCode()}WB;cpu.icount=ic0+${k};return ${o};`;

  /** A 32-bit ALU operation dst = dst op src (src an expression), op as ModRM.reg of group 1. */
  const alu = (op: number, d: number, src: string): void => {
    const a = A(d);
    switch (op) {
      case 0:
      case 5:
      case 7:
        out.push(`fA=${a};fB=${src};fR=(fA${op === 0 ? '+' : '-'}fB)|0;`);
        setFlags(op === 0 ? K_ADD : K_SUB);
        break;
      case 2:
      case 3:
        out.push(
          `fC=${carry()};fA=${a};fB=${src};fR=(fA${op === 2 ? '+' : '-'}fB${op === 2 ? '+' : '-'}fC)|0;`,
        );
        setFlags(op === 2 ? K_ADC : K_SBB);
        break;
      default:
        out.push(`fR=${a}${op === 1 ? '|' : op === 4 ? '&' : '^'}${src};`);
        setFlags(K_LOGIC);
    }
    if (op !== 7) out.push(`${a}=fR;${H(d)}=0;`);
  };

  while (n < MAX_INSNS && !ended) {
    const o = q - p;
    // Room for the longest form translated here (REX + 0F B6 + ModRM + disp8, or 81 /r Id + REX).
    if (q + 8 > end) break;
    let b = buf[q];
    let rex = 0;
    let len = 0;
    if (m64 && (b & 0xf0) === 0x40) {
      rex = b;
      b = buf[q + 1];
      len = 1;
    }
    const m = buf[q + len + 1];
    const reg = ((m >> 3) & 7) | ((rex & 4) << 1);
    const rm = (m & 7) | ((rex & 1) << 3);
    const w = (rex & 8) !== 0;
    let ok = true;
    if (
      rex !== 0 &&
      (b === 0x0f
        ? buf[q + 2] !== 0xb6
        : !(
            b === 0xff ||
            (b >= 0x88 && b <= 0x8b) ||
            (!w && (b & 0xc7) <= 3 && b < 0x40) ||
            (!w && b === 0x85) ||
            (!w && (b === 0x81 || b === 0x83))
          ))
    )
      ok = false;
    else if ((b & 0xc4) === 0 && (b & 7) <= 3 && b < 0x40 && (b & 1) === 1) {
      // op Ev,Gv / Gv,Ev, register operands, 32-bit.
      if (m < 0xc0) ok = false;
      else {
        const op = b >> 3;
        if (b & 2) alu(op, reg, A(rm));
        else alu(op, rm, A(reg));
        len += 2;
      }
    } else if (rex === 0 && (b & 0xc7) === 5 && b < 0x40) {
      alu(b >> 3, 0, String(buf[q + 1] | (buf[q + 2] << 8) | (buf[q + 3] << 16) | (buf[q + 4] << 24)));
      len = 5;
    } else if (b === 0x81 || b === 0x83) {
      if (m < 0xc0) ok = false;
      else {
        const i = q + len + 2;
        const imm =
          b === 0x83 ? s8(buf[i]) : buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24);
        alu((m >> 3) & 7, rm, String(imm));
        len += b === 0x83 ? 3 : 6;
      }
    } else if (b === 0x85) {
      if (m < 0xc0) ok = false;
      else {
        out.push(`fR=${A(rm)}&${A(reg)};`);
        setFlags(K_LOGIC);
        len += 2;
      }
    } else if (!m64 && b >= 0x40 && b <= 0x4f) {
      incDec(b & 7, b >= 0x48, false);
      len = 1;
    } else if (b === 0xff) {
      if (m < 0xc0 || m >= 0xd0) ok = false;
      else {
        incDec(rm, m >= 0xc8, w);
        len += 2;
      }
    } else if (b === 0x90 && rex === 0) {
      len = 1;
    } else if (b >= 0xb8 && b <= 0xbf && rex === 0) {
      const v = buf[q + 1] | (buf[q + 2] << 8) | (buf[q + 3] << 16) | (buf[q + 4] << 24);
      out.push(`${A(b & 7)}=${v};${H(b & 7)}=0;`);
      len = 5;
    } else if ((b === 0x89 || b === 0x8b) && m >= 0xc0) {
      const d = b === 0x8b ? reg : rm;
      const s = b === 0x8b ? rm : reg;
      out.push(`${A(d)}=${A(s)};${H(d)}=${w ? H(s) : '0'};`);
      len += 2;
    } else if ((b === 0xc1 || b === 0xd1 || b === 0xd3) && rex === 0) {
      const op = (m >> 3) & 7;
      if (m < 0xc0 || op < 4) ok = false;
      else if (b === 0xd3) {
        // Count in CL: a zero count leaves the flags alone, so the CPU's shift32 decides.
        out.push(storeFlags());
        out.push(`${A(rm)}=cpu.shift32(${op},${A(rm)},${A(1)});${H(rm)}=0;`);
        fk = 0;
        fw = false;
        stored = true;
        len = 2;
      } else {
        const cnt = (b === 0xd1 ? 1 : buf[q + 2]) & 31;
        const a = A(rm);
        if (cnt !== 0) {
          if (op === 5) out.push(`fC=(${a}>>>${cnt - 1})&1;fB=${a}>>>31;fR=(${a}>>>${cnt})|0;`);
          else if (op === 7) out.push(`fC=(${a}>>${cnt - 1})&1;fB=0;fR=${a}>>${cnt};`);
          else out.push(`fC=(${a}>>>${32 - cnt})&1;fR=${a}<<${cnt};fB=(fR>>>31)^fC;`);
          out.push(`${a}=fR;`);
          setFlags(K_SHIFT);
        }
        out.push(`${H(rm)}=0;`);
        len = b === 0xc1 ? 3 : 2;
      }
    } else if (rex === 0 && b === 0x0f && buf[q + 1] === 0xa2) {
      exitInsn(o, 0xa2, 0, 2);
      len = 2;
    } else if (b === 0x0f) {
      const b2 = buf[q + len + 1];
      const m2 = buf[q + len + 2];
      const g = ((m2 >> 3) & 7) | ((rex & 4) << 1);
      const e = (m2 & 7) | ((rex & 1) << 3);
      if (rex === 0 && b2 >= 0x80 && b2 <= 0x8f) {
        const rel = buf[q + 2] | (buf[q + 3] << 8) | (buf[q + 4] << 16) | (buf[q + 5] << 24);
        branch(o, 6, rel, b2 & 15);
        len = 6;
      } else if (m2 < 0xc0) {
        if (b2 === 0xb6) {
          const l = memOp(0x1b6, q + len + 2, rex, o);
          if (l === 0) ok = false;
          else len += 2 + l;
        } else ok = false;
      } else if (rex === 0 && b2 >= 0x40 && b2 <= 0x4f) {
        out.push(`if(${cond(b2 & 15)})${A(g)}=${A(e)};${H(g)}=0;`);
        len = 3;
      } else if (rex === 0 && (b2 === 0xb6 || b2 === 0xbe)) {
        const v = e < 4 ? `(${A(e)}&255)` : `((${A(e - 4)}>>>8)&255)`;
        out.push(`${A(g)}=${b2 === 0xbe ? `(${v}<<24)>>24` : v};${H(g)}=0;`);
        len = 3;
      } else if (rex === 0 && (b2 === 0xb7 || b2 === 0xbf)) {
        const v = `(${A(e)}&65535)`;
        out.push(`${A(g)}=${b2 === 0xbf ? `(${v}<<16)>>16` : v};${H(g)}=0;`);
        len = 3;
      } else ok = false;
    } else if (b >= 0x88 && b <= 0x8b && m < 0xc0) {
      const l = memOp(b, q + len + 1, rex, o);
      if (l === 0) ok = false;
      else len += 1 + l;
    } else if (rex === 0 && ((b >= 0xe4 && b <= 0xe7) || (b >= 0xec && b <= 0xef))) {
      len = b < 0xe8 ? 2 : 1;
      exitInsn(o, b, buf[q + 1], len);
    } else if (rex === 0 && b >= 0x70 && b <= 0x7f) {
      branch(o, 2, s8(buf[q + 1]), b & 15);
      len = 2;
    } else if (rex === 0 && b === 0xeb) {
      branch(o, 2, s8(buf[q + 1]), -1);
      len = 2;
    } else if (rex === 0 && b === 0xe9) {
      branch(o, 5, buf[q + 1] | (buf[q + 2] << 8) | (buf[q + 3] << 16) | (buf[q + 4] << 24), -1);
      len = 5;
    } else ok = false;
    if (!ok) break;
    q += len;
    n++;
  }
  // One straight-line instruction is no gain over the interpreter's fast path (a block is a call).
  if (n === 0 || (n === 1 && !ended)) return null;
  if (!ended) out.push(exit(n, ripAt(q - p)));

  function incDec(r: number, dec: boolean, wide: boolean): void {
    const a = A(r);
    const h = H(r);
    out.push(`fC=${carry()};fA=${a};fB=1;fR=(${a}${dec ? '-' : '+'}1)|0;`);
    if (wide) {
      out.push(`fAH=${h};fRH=${dec ? `${a}===0?(${h}-1)|0:${h}` : `${a}===-1?(${h}+1)|0:${h}`};${h}=fRH;`);
    } else out.push(`${h}=0;`);
    out.push(`${a}=fR;`);
    setFlags(dec ? K_DEC : K_INC);
    fw = wide;
  }

  /**
   * CPUID or IN/OUT AL/eAX (imm8 or DX port) at offset o: what a VMX guest exits on. The CPU's
   * exitInsn calls the intercept hook with the registers and flags in the register file; the
   * block leaves before the instruction when it is not done there, after it when the hook left
   * RIP elsewhere or the state changed under the block, and otherwise goes on with the registers
   * as the hook (the VMM's exit handler) left them.
   */
  function exitInsn(o: number, op: number, imm: number, l: number): void {
    out.push(storeFlags());
    out.push(`WB;cpu.icount=ic0+${n};r=cpu.exitInsn(${op},${imm},${ripAt(o)},${p + o},${l});`);
    out.push(`if(r<0)return ${ripAt(o)};`);
    out.push(`if(r>0||cpu.codeGen!==g0){cpu.icount=ic0+${n + 1};return cpu.rip;}RL;`);
    // The hook may have changed the flags: readers after it ask the CPU.
    fk = 0;
    fw = false;
    stored = true;
  }

  /** A taken-or-not near branch at offset o of length l; cc -1 for JMP. Ends the block. */
  function branch(o: number, l: number, rel: number, cc: number): void {
    const c = cc < 0 ? 'true' : cond(cc);
    // The target is checked before the branch retires; one that would fault is left to the
    // general path, which runs the branch again.
    const check = m64 ? 'if(t<-140737488355328||t>=140737488355328)' : 't>>>=0;if(t>cpu.sLimit[1])';
    // A loop onto the block's own start (a delay, copy or polling loop) runs its next pass here,
    // with what the caller checks between blocks: the spin check of every taken branch back (the
    // caller does not repeat it for a looping block), no event waiting, no code dropped, and room
    // in the budget for a whole pass. The state between passes is that of a return (flags and
    // registers stored), so a pass starts as a call would.
    loops = o + l + rel === 0;
    const next = loops
      ? `ic0+=${n + 1};cpu.icount=ic0;if(cpu.idleSkip)cpu.backEdge(t);` +
        `if(cpu.eventCheck||cpu.codeGen!==g0||ic0-icStart>budget-${n + 1})return t;continue;`
      : `cpu.icount=ic0+${n + 1};return t;`;
    out.push(`if(${c}){let t=rip+${o + l + rel};${check}{${exit(n, ripAt(o))}}${flagsCode()}WB;${next}}`);
    out.push(exit(n + 1, ripAt(o + l)));
    ended = true;
  }

  /**
   * MOV 88-8B / MOVZX (0x1b6) through [base] or [base+disp8] (no SIB, no RIP-relative): the ModRM
   * at buf[i]. Returns the bytes from the ModRM on (0: not such a form).
   */
  function memOp(op: number, i: number, rx: number, o: number): number {
    const mm = buf[i];
    const mod = mm >> 6;
    const r0 = mm & 7;
    if (mod === 2 || r0 === 4 || (mod === 0 && r0 === 5)) return 0;
    const base = r0 | ((rx & 1) << 3);
    const g = ((mm >> 3) & 7) | ((rx & 4) << 1);
    const disp = mod === 1 ? s8(buf[i + 1]) : 0;
    const wide = op === 0x89 || op === 0x8b;
    const size = wide ? (rx & 8 ? 8 : 4) : 1;
    const write = op < 0x8a;
    // The access may fault: the CPU's state is that of this instruction's start.
    out.push(storeFlags());
    // Under a second-stage hook (a VMX guest) the access may exit to the policy, which runs inside
    // it and reads and writes the guest's registers: they must be in the register file first, and
    // not be overwritten with the block's copies when the instruction is abandoned (catch below).
    out.push(`cpu.ip0=${ripAt(o)};cpu.icount=ic0+${n};if(s2){WB;}`);
    const lin = `cpu.dataLin(${r0 === 5 ? 2 : 3},${A(base)},${H(base)},${disp},${size},${write},${m64})`;
    // Without REX, byte registers 4-7 are AH CH DH BH.
    const high = (op === 0x88 || op === 0x8a) && rx === 0 && g >= 4;
    const a = A(high ? g - 4 : g);
    switch (op) {
      case 0x88:
        out.push(`cpu.write8(${lin},${high ? `(${a}>>>8)&255` : `${a}&255`});`);
        break;
      case 0x89:
        out.push(size === 8 ? `cpu.write64(${lin},${a},${H(g)});` : `cpu.write32(${lin},${a});`);
        break;
      case 0x8a:
        out.push(high ? `${a}=(${a}&-65281)|(cpu.read8(${lin})<<8);` : `${a}=(${a}&-256)|cpu.read8(${lin});`);
        break;
      case 0x8b:
        out.push(
          size === 8 ? `${a}=cpu.read64(${lin});${H(g)}=cpu.hi;` : `${a}=cpu.read32(${lin});${H(g)}=0;`,
        );
        break;
      default:
        out.push(`${a}=cpu.read8(${lin});${H(g)}=0;`);
    }
    const l = mod === 1 ? 2 : 1;
    // A store that dropped decoded code (this block's, perhaps) ends the block after itself.
    if (write) out.push(`if(cpu.codeGen!==g0||cpu.eventCheck){${exit(n + 1, ripAt(o + (i - (p + o)) + l))}}`);
    return l;
  }

  const regs = [...used].sort((x, y) => x - y);
  const load = regs.map((r) => `let a${r}=rl[${r}],h${r}=rh[${r}];`).join('');
  const wb = regs.map((r) => `rl[${r}]=a${r};rh[${r}]=h${r};`).join('');
  const reload = regs.map((r) => `a${r}=rl[${r}];h${r}=rh[${r}];`).join('');
  const body = out.join('').replaceAll('WB;', wb).replaceAll('RL;', reload);
  // A looping block keeps its registers in the locals from pass to pass (each pass stores them
  // where anything else could look, as a single pass does).
  const src = loops
    ? `'use strict';${load}let fR=0,fA=0,fB=0,fC=0,fRH=0,fAH=0,r=0;const icStart=cpu.icount,g0=cpu.codeGen,` +
      `s2=cpu.hooks.translate!==null;let ic0=icStart;try{for(;;){${body}}}catch(e){if(!s2){${wb}}throw e;}`
    : `'use strict';${load}let fR=0,fA=0,fB=0,fC=0,fRH=0,fAH=0,r=0;const ic0=cpu.icount,g0=cpu.codeGen,` +
      `s2=cpu.hooks.translate!==null;try{${body}}catch(e){if(!s2){${wb}}throw e;}`;
  const fn = new Function('cpu', 'rl', 'rh', 'rip', 'budget', src) as BlockFn;
  return { fn, n, bytes: q - p, loops };
}

/** Mark a RAM page as holding decoded code (bus.noteRamWrite then reports writes to it). */
export function markCodePage(region: RamRegion, physPage: number): void {
  region.codePages[physPage - region.base / 4096] = 1;
}
