/**
 * The x86-64 CPU, part 3: instruction decoding and execution, and the run loop.
 *
 * The interpreter decodes straight from guest memory through a fetch window (the current code
 * page's RAM, found through the TLB's execute tags), so self-modifying and freshly loaded code is
 * always seen as written. Every instruction fetches all of its bytes (prefixes, ModRM, SIB,
 * displacement, immediates) before it touches memory, so RIP-relative addresses are known and a
 * fault leaves the architectural state of the faulting instruction untouched.
 *
 * The common forms (register ALU/MOV/shifts/INC/DEC/CMOVcc/MOVZX/MOVSX, MOV/MOVZX through [base] or
 * [base+disp8], Jcc/JMP) run on a fast path (fastRun) that decodes them from the same window with RIP
 * and the window position in locals; everything else, and every instruction while TF is set or an
 * event waits, goes through step(). Hot branch targets of the fast path run as translated blocks
 * (blocks.ts), which are dropped when their page is written (see there).
 */
import type { Bus, RamRegion } from '../../src/core/bus.js';
import type { VirtualClock } from '../../src/core/clock.js';
import type { InterruptController } from '../../src/core/cpu.js';
import { EventType, Vector } from '../../src/x86/exceptions.js';
import { CR0, CR4, RFLAGS } from '../../src/x86/regs.js';
import { SegAttr } from '../../src/x86/descriptor.js';
import { Acc, FAULT, Lazy, PARITY, TWO32, TWO48 } from './core.js';
import { CpuSystem, CS, DS, ES, FS, GS, SegOk, SS } from './system.js';
import type { CpuModel } from './system.js';
import { compileBlock, emptyBlock, markCodePage } from './blocks.js';
import type { Block } from './blocks.js';
import type {
  CpuidEvent,
  CrAccessEvent,
  DrAccessEvent,
  DescriptorTableEvent,
  InvlpgEvent,
  IoEvent,
  MsrEvent,
  VmxOpcode,
} from './hooks.js';

const MASK = [0, 0xff, 0xffff, 0, -1, 0, 0, 0, -1];
const SIGN = [0, 0x80, 0x8000, 0, 0x80000000, 0, 0, 0, 0x80000000];
/** REP iterations done per step before the instruction is restarted (lets events in). */
const REP_CHUNK = 1024;
/** Translated blocks kept at most (each holds a compiled function). */
const MAX_BLOCKS = 32768;
/** Slots of the direct-mapped table of recently used blocks (a power of two). */
const RECENT_BLOCKS = 256;

// The lazy-flag kinds the arithmetic helpers record, as module constants: a loader that reaches
// imported bindings through a proxy (jiti, for plugins loaded from source, and the test runner)
// would otherwise pay a trap on every ALU instruction. Compiled builds inline the const enum.
const LAZY_ADD = Lazy.Add;
const LAZY_ADC = Lazy.Adc;
const LAZY_SUB = Lazy.Sub;
const LAZY_SBB = Lazy.Sbb;
const LAZY_LOGIC = Lazy.Logic;
const LAZY_INC = Lazy.Inc;
const LAZY_DEC = Lazy.Dec;
const LAZY_SHIFT = Lazy.Shift;
const SEGOK_READ = SegOk.Read;
const SEGOK_WRITE = SegOk.Write;
const SEGOK_EXPAND_DOWN = SegOk.ExpandDown;

/** Opcodes that accept LOCK (SDM Vol. 2A LOCK), 1-byte map and 0F map. */
const LOCK1 = new Uint8Array(256);
const LOCK2 = new Uint8Array(256);
for (const op of [0x00, 0x01, 0x08, 0x09, 0x10, 0x11, 0x18, 0x19, 0x20, 0x21, 0x28, 0x29, 0x30, 0x31])
  LOCK1[op] = 1;
for (const op of [0x80, 0x81, 0x82, 0x83, 0x86, 0x87, 0xf6, 0xf7, 0xfe, 0xff]) LOCK1[op] = 1;
for (const op of [0xab, 0xb3, 0xbb, 0xba, 0xb0, 0xb1, 0xc0, 0xc1, 0xc7]) LOCK2[op] = 1;

/** 64x64 -> 128 unsigned multiply helpers (16-bit limbs, exact in doubles). */
function mulHi32(a: number, b: number): number {
  a >>>= 0;
  b >>>= 0;
  const aL = a & 0xffff,
    aH = a >>> 16,
    bL = b & 0xffff,
    bH = b >>> 16;
  const t = aL * bL;
  const m1 = aH * bL + (t >>> 16);
  const m2 = aL * bH + (m1 & 0xffff);
  return (aH * bH + Math.floor(m1 / 65536) + Math.floor(m2 / 65536)) >>> 0;
}

export class X86Cpu extends CpuSystem {
  intc: InterruptController | undefined;
  exitReq = false;

  // ---- decode state of the current instruction (also read by VMX hooks) ----
  ip0 = 0;
  osz = 4;
  asz = 4;
  /** Segment override (0-5) or -1. */
  segOv = -1;
  rex = 0;
  rep = 0;
  lock = false;
  p66 = false;
  mod = 0;
  reg = 0;
  rm = 0;
  eaLo = 0;
  eaHi = 0;
  eaSeg = DS;
  private eaBase = -1;
  private eaIdx = -1;
  private eaScale = 0;
  private eaDisp = 0;
  private eaRip = false;
  private rmwLin = 0;

  // ---- fetch window ----
  private fBuf: Uint8Array = new Uint8Array(0);
  private fPos = 0;
  private fEnd = 0;
  /** Linear address of fBuf[fPos0]. */
  private fLin0 = NaN;
  private fPos0 = 0;
  /** fPos at the start of the current instruction (adjusted when the window moves). */
  private iStart = 0;
  /** Physical page number of the window's bytes. */
  private fPhysPage = -1;

  // ---- reusable hook events ----
  private readonly ioEv: IoEvent = {
    port: 0,
    size: 1,
    input: false,
    string: false,
    rep: false,
    immediate: false,
    length: 0,
  };
  private readonly msrEv: MsrEvent = { msr: 0, write: false, valueLo: 0, valueHi: 0, length: 0 };
  private readonly cpuidEv: CpuidEvent = { leaf: 0, subleaf: 0, length: 0 };
  private readonly crEv: CrAccessEvent = { cr: 0, kind: 'mov-to', gpr: 0, valueLo: 0, valueHi: 0, length: 0 };
  private readonly drEv: DrAccessEvent = { dr: 0, write: false, gpr: 0, length: 0 };
  private readonly invlpgEv: InvlpgEvent = { address: 0, length: 0 };
  private readonly dtEv: DescriptorTableEvent = {
    identity: 0,
    ldtrTr: false,
    reg: -1,
    base: -1,
    index: -1,
    scale: 0,
    segment: 0,
    addressSize: 4,
    operandSize: 4,
    displacement: 0,
    length: 0,
  };

  constructor(bus: Bus, clock: VirtualClock) {
    super(bus, clock);
    bus.onCodeWrite((page) => this.dropCodePage(page));
  }

  // =============================================================================================
  // Translated blocks (blocks.ts)
  // =============================================================================================

  /** Translate hot branch targets into blocks (tests turn it off to compare). */
  blocksOn = true;
  /** Bumped whenever decoded code is dropped (a block's store checks it to stop). */
  codeGen = 0;
  private readonly blocks = new Map<number, Block>();
  private readonly pageBlocks = new Map<number, Block[]>();
  /** Times each physical page had its code dropped; pages that keep changing are not translated. */
  private readonly pageDrops = new Map<number, number>();
  /**
   * Recently used blocks, direct-mapped by window position: a loop's few targets (say, the loop
   * head and the instruction after a VM exit) each stay one array load away from the Map.
   */
  private readonly recentBlk: Block[] = new Array<Block>(RECENT_BLOCKS).fill(
    emptyBlock(-1, new Uint8Array(0), -1),
  );
  /** Arrivals at branch targets not yet translated, by a hash of the window position. */
  private readonly hot = new Uint8Array(4096);
  readonly blockStats = { compiled: 0, dropped: 0 };

  /** The block at buf[p] (compiled once the target is hot), or null to interpret. */
  private findBlock(buf: Uint8Array, p: number, m64: boolean): Block | null {
    const key = p * 2 + (m64 ? 1 : 0);
    const slot = (p ^ (p >>> 7)) & (RECENT_BLOCKS - 1);
    let blk = this.recentBlk[slot]!;
    if (blk.key !== key || blk.buf !== buf || !blk.valid) {
      const b = this.blocks.get(key);
      if (b === undefined || b.buf !== buf) return this.blocksOn ? this.newBlock(buf, p, m64, key) : null;
      blk = b;
      this.recentBlk[slot] = b;
    }
    return blk.n !== 0 ? blk : null;
  }

  private newBlock(buf: Uint8Array, p: number, m64: boolean, key: number): Block | null {
    const h = (p ^ (p >>> 12)) & 4095;
    if (++this.hot[h] < 16) return null;
    this.hot[h] = 0;
    const page = this.fPhysPage;
    if (page < 0 || (this.pageDrops.get(page) ?? 0) > 64) return null;
    const region = this.bus.ramAt(page * 4096);
    if (region === undefined || region.data !== buf) return null;
    if (this.blocks.size >= MAX_BLOCKS) this.dropAllBlocks();
    const c = compileBlock(buf, p, this.fEnd, m64);
    const blk: Block =
      c === null
        ? emptyBlock(key, buf, page)
        : { key, buf, page, n: c.n, bytes: c.bytes, valid: true, loops: c.loops, fn: c.fn };
    const old = this.blocks.get(key);
    if (old !== undefined) old.valid = false;
    this.blocks.set(key, blk);
    let list = this.pageBlocks.get(page);
    if (list === undefined) {
      list = [];
      this.pageBlocks.set(page, list);
    }
    list.push(blk);
    if (c !== null) {
      this.blockStats.compiled++;
      if (region.codePages[page - region.base / 4096] === 0) {
        markCodePage(region, page);
        // Stores to the page must now take the slow path, which reports them.
        const base = page * 4096;
        for (let i = 0; i < this.tlbPhys.length; i++)
          if (this.tlbPhys[i] === base) {
            this.tagWS[i] = -1;
            this.tagWU[i] = -1;
          }
      }
    }
    this.recentBlk[(p ^ (p >>> 7)) & (RECENT_BLOCKS - 1)] = blk;
    return c === null ? null : blk;
  }

  /** Start the cache afresh (it reached MAX_BLOCKS: a guest that ran much code once). */
  private dropAllBlocks(): void {
    for (const b of this.blocks.values()) b.valid = false;
    this.blocks.clear();
    this.pageBlocks.clear();
    this.codeGen++;
  }

  /** Drop the blocks decoded from a physical page (its bytes changed: bus.noteRamWrite). */
  dropCodePage(page: number): void {
    const list = this.pageBlocks.get(page);
    if (list === undefined) return;
    this.pageBlocks.delete(page);
    for (const b of list) {
      b.valid = false;
      if (this.blocks.get(b.key) === b) this.blocks.delete(b.key);
    }
    this.blockStats.dropped += list.length;
    this.pageDrops.set(page, (this.pageDrops.get(page) ?? 0) + 1);
    this.codeGen++;
  }

  // =============================================================================================
  // Run loop
  // =============================================================================================

  run(deadlineNs: number): void {
    if (this.shutdown) {
      this.halted = true;
      return;
    }
    this.rebaseClock();
    this.runDeadline = deadlineNs;
    this.exitReq = false;
    const ns = this.nsPerInsn;
    for (;;) {
      if (this.eventCheck && this.serviceEvents()) break;
      const now = this.clockBase + (this.icount - this.icountBase) * ns + this.stallNs;
      if (now >= deadlineNs) break;
      this.execute(Math.min(Math.ceil((deadlineNs - now) / ns), 1_000_000));
    }
    this.syncClock();
  }

  /** Execute up to n instructions, stopping early when an event needs a look. */
  execute(n: number): void {
    try {
      while (n > 0) {
        // A run of fast-path instructions (none of them can set TF or owe a #DB). With an event
        // already waiting (e.g. an interrupt shadow) one general step comes first, as before.
        if (this.fValid && this.fastPath && !this.eventCheck && (this.fl & 0x100) === 0 && !this.dbPending) {
          const k = this.fastRun(n);
          if (k > 0) {
            n -= k;
            if (this.eventCheck || n <= 0) return;
          }
        }
        n--;
        this.ip0 = this._rip;
        this.jmp = false;
        const tf = this.fl & 0x100; // RFLAGS.TF
        this.step();
        if (!this.jmp) {
          this._rip = this.nextRip();
          this.seq = true;
        }
        this.icount++;
        if (tf !== 0 || this.dbPending) this.singleStepTrap(tf !== 0);
        if (this.eventCheck) return;
      }
    } catch (e) {
      if (e !== FAULT) throw e;
      this.icount++;
      if (this.fVec >= 0) {
        this.rip = this.ip0;
        this.raiseException(this.fVec, this.fErr, EventType.HardwareException, 0);
        this.invalidateFetch();
      } // else a hook took the event over (a VM exit)
      this.iretUnblockedNmi = false;
    }
  }

  /** Run the common register forms on the fast path (fastStep); tests turn it off to compare. */
  fastPath = true;

  /**
   * Up to n instructions of a few common register-only forms (ALU, MOV, shifts, INC/DEC,
   * MOVZX/MOVSX, CMOVcc, Jcc/JMP) with no prefix and a 32-bit operand size, in 32-bit or 64-bit
   * code, decoded straight from the fetch window without the general prefix and ModRM machinery,
   * with RIP and the window position in locals. None of them can fault once its bytes are in the
   * window (a branch whose target would fault is left to the general path). Stops before the first
   * other instruction (the window left at it), after a transfer out of the window, or when an event
   * needs a look; returns the number of instructions retired.
   */
  private fastRun(n: number): number {
    const m64 = this.mode64;
    if (!m64 && !this.cs32) return 0;
    let rip = this._rip;
    const csBase = this.sBaseLo[CS];
    const pos0 = this.fPos0;
    const lin0 = this.fLin0;
    const size = this.fEnd - pos0;
    let p: number;
    if (this.seq) p = this.fPos;
    else {
      // After a transfer: continue in the same window when the target lies in it (as beginFetch).
      let lin: number;
      if (m64) {
        if (rip < 0 || rip >= 140737488355328) return 0;
        lin = rip;
      } else lin = (csBase + rip) >>> 0;
      const d = lin - lin0;
      if (!(d >= 0 && d < size)) return 0;
      p = (pos0 + d) | 0;
      this.fPos = p;
      this.seq = true;
    }
    const buf = this.fBuf;
    // Room for the longest form handled here (7 bytes): shorter windows take the general path.
    const last = this.fEnd - 7;
    const rl = this.rl;
    const rh = this.rh;
    let k = 0;
    let counted = 0;
    let ip = rip;
    // At a branch target (and on entry) a translated block may take over.
    let landed = true;
    outer: while (k < n && p <= last) {
      if (landed) {
        landed = false;
        const blk = this.findBlock(buf, p, m64);
        if (blk !== null && k + blk.n <= n && p + blk.bytes <= this.fEnd) {
          this.icount += k - counted;
          const before = this.icount;
          const start = rip;
          const t = blk.fn(this, rl, rh, rip, n - k);
          const done = this.icount - before;
          if (done !== 0) {
            k += done;
            counted = k;
            ip = start;
            rip = t;
            // A jump back to the block or before it: the loop check of the taken-branch path below
            // (a looping block made it for its own branch back).
            if (t <= start && this.idleSkip && !(t === start && blk.loops)) this.backEdge(t);
            if (this.eventCheck) {
              p = -1;
              break;
            }
            const d = (m64 ? t : (csBase + t) >>> 0) - lin0;
            if (!(d >= 0 && d < size)) {
              p = -1;
              break;
            }
            p = (pos0 + d) | 0;
            landed = true;
            continue;
          }
        }
      }
      const b = buf[p];
      let len: number;
      let jump = false;
      let rel = 0;
      switch (b) {
        // op Ev,Gv / Gv,Ev (ADD OR ADC SBB AND SUB XOR CMP), register operands only.
        case 0x01:
        case 0x09:
        case 0x11:
        case 0x19:
        case 0x21:
        case 0x29:
        case 0x31:
        case 0x39:
        case 0x03:
        case 0x0b:
        case 0x13:
        case 0x1b:
        case 0x23:
        case 0x2b:
        case 0x33:
        case 0x3b: {
          const m = buf[p + 1];
          if (m < 0xc0) break outer;
          const op = b >> 3;
          let d = m & 7,
            s = (m >> 3) & 7;
          if (b & 2) {
            d = s;
            s = m & 7;
          }
          const r = this.alu32(op, rl[d], rl[s]);
          if (op !== 7) {
            rl[d] = r;
            rh[d] = 0;
          }
          len = 2;
          break;
        }
        // op eAX,Id
        case 0x05:
        case 0x0d:
        case 0x15:
        case 0x1d:
        case 0x25:
        case 0x2d:
        case 0x35:
        case 0x3d: {
          const op = b >> 3;
          const imm = buf[p + 1] | (buf[p + 2] << 8) | (buf[p + 3] << 16) | (buf[p + 4] << 24);
          const r = this.alu32(op, rl[0], imm);
          if (op !== 7) {
            rl[0] = r;
            rh[0] = 0;
          }
          len = 5;
          break;
        }
        case 0x40:
        case 0x41:
        case 0x42:
        case 0x43:
        case 0x44:
        case 0x45:
        case 0x46:
        case 0x47:
        case 0x48:
        case 0x49:
        case 0x4a:
        case 0x4b:
        case 0x4c:
        case 0x4d:
        case 0x4e:
        case 0x4f: {
          if (m64) {
            // REX: W selects 64-bit operands, R and B extend ModRM.reg and ModRM.rm.
            const b1 = buf[p + 1];
            let op = 0,
              mi = 0;
            if (b1 >= 0x88 && b1 <= 0x8b) {
              op = b1;
              mi = p + 2;
            } else if (b1 === 0x0f && buf[p + 2] === 0xb6) {
              op = 0x1b6;
              mi = p + 3;
            }
            if (op !== 0 && buf[mi] < 0xc0) {
              // A load or store through memory (as the unprefixed forms below).
              this.ip0 = rip;
              this._rip = rip;
              this.fPos = p;
              this.icount += k - counted;
              counted = k;
              len = this.fastMem(op, buf[mi], buf[mi + 1], true, b);
              if (len === 0) break outer;
              len += mi - p - 1;
              break;
            }
            len = this.fastRex(b, buf, p);
            if (len === 0) break outer;
            break;
          }
          const n = b & 7;
          rl[n] = this.incDec32(rl[n], b >= 0x48);
          rh[n] = 0;
          len = 1;
          break;
        }
        case 0x70:
        case 0x71:
        case 0x72:
        case 0x73:
        case 0x74:
        case 0x75:
        case 0x76:
        case 0x77:
        case 0x78:
        case 0x79:
        case 0x7a:
        case 0x7b:
        case 0x7c:
        case 0x7d:
        case 0x7e:
        case 0x7f:
          len = 2;
          if (this.condFast(b & 15)) {
            jump = true;
            rel = (buf[p + 1] << 24) >> 24;
          }
          break;
        case 0xeb:
          len = 2;
          jump = true;
          rel = (buf[p + 1] << 24) >> 24;
          break;
        case 0xe9:
          len = 5;
          jump = true;
          rel = buf[p + 1] | (buf[p + 2] << 8) | (buf[p + 3] << 16) | (buf[p + 4] << 24);
          break;
        case 0x81:
        case 0x83: {
          const m = buf[p + 1];
          if (m < 0xc0) break outer;
          const op = (m >> 3) & 7;
          const d = m & 7;
          let imm: number;
          if (b === 0x83) {
            imm = (buf[p + 2] << 24) >> 24;
            len = 3;
          } else {
            imm = buf[p + 2] | (buf[p + 3] << 8) | (buf[p + 4] << 16) | (buf[p + 5] << 24);
            len = 6;
          }
          const r = this.alu32(op, rl[d], imm);
          if (op !== 7) {
            rl[d] = r;
            rh[d] = 0;
          }
          break;
        }
        case 0x85: {
          const m = buf[p + 1];
          if (m < 0xc0) break outer;
          this.alu32(4, rl[m & 7], rl[(m >> 3) & 7]);
          len = 2;
          break;
        }
        case 0x88:
        case 0x8a:
        case 0x89:
        case 0x8b: {
          const m = buf[p + 1];
          if (m < 0xc0) {
            // A load or store through [base] or [base+disp8]: may fault, so the state is current.
            this.ip0 = rip;
            this._rip = rip;
            this.fPos = p;
            this.icount += k - counted; // the catch in execute counts a faulting instruction
            counted = k;
            len = this.fastMem(b, m, buf[p + 2], m64, 0);
            if (len === 0) break outer;
            break;
          }
          if (b < 0x89) break outer;
          let d = m & 7,
            s = (m >> 3) & 7;
          if (b === 0x8b) {
            d = s;
            s = m & 7;
          }
          rl[d] = rl[s];
          rh[d] = 0;
          len = 2;
          break;
        }
        case 0x90:
          len = 1;
          break;
        case 0xb8:
        case 0xb9:
        case 0xba:
        case 0xbb:
        case 0xbc:
        case 0xbd:
        case 0xbe:
        case 0xbf: {
          const n = b & 7;
          rl[n] = buf[p + 1] | (buf[p + 2] << 8) | (buf[p + 3] << 16) | (buf[p + 4] << 24);
          rh[n] = 0;
          len = 5;
          break;
        }
        // Group 2 by Ib, by 1, by CL.
        case 0xc1:
        case 0xd1:
        case 0xd3: {
          const m = buf[p + 1];
          if (m < 0xc0) break outer;
          let cnt: number;
          if (b === 0xc1) {
            cnt = buf[p + 2];
            len = 3;
          } else {
            cnt = b === 0xd1 ? 1 : rl[1] & 0xff;
            len = 2;
          }
          const d = m & 7;
          rl[d] = this.shift32((m >> 3) & 7, rl[d], cnt);
          rh[d] = 0;
          break;
        }
        case 0xff: {
          const m = buf[p + 1];
          if (m < 0xc0 || m >= 0xd0) break outer; // INC/DEC Ev only
          const d = m & 7;
          rl[d] = this.incDec32(rl[d], m >= 0xc8);
          rh[d] = 0;
          len = 2;
          break;
        }
        case 0x0f: {
          const b2 = buf[p + 1];
          if (b2 >= 0x80 && b2 <= 0x8f) {
            len = 6;
            if (this.condFast(b2 & 15)) {
              jump = true;
              rel = buf[p + 2] | (buf[p + 3] << 8) | (buf[p + 4] << 16) | (buf[p + 5] << 24);
            }
            break;
          }
          if (b2 === 0xa2) {
            // CPUID: a hook (a VM exit) takes it over as from the general path; else the model answers.
            this.icount += k - counted;
            counted = k;
            const r = this.exitInsn(0xa2, 0, rip, p, 2);
            this.icount++;
            if (r > 0) return k + 1;
            counted = k + 1;
            len = 2;
            break;
          }
          const m = buf[p + 2];
          if (m < 0xc0) {
            if (b2 !== 0xb6) break outer;
            // MOVZX Gv,Eb from [base] or [base+disp8] (as MOV above).
            this.ip0 = rip;
            this._rip = rip;
            this.fPos = p;
            this.icount += k - counted; // the catch in execute counts a faulting instruction
            counted = k;
            len = this.fastMem(0x1b6, m, buf[p + 3], m64, 0);
            if (len === 0) break outer;
            len++;
            break;
          }
          const g = (m >> 3) & 7;
          const e = m & 7;
          if (b2 >= 0x40 && b2 <= 0x4f) {
            // CMOVcc: a 32-bit destination is written (zero-extended) even when the condition fails.
            if (this.condFast(b2 & 15)) rl[g] = rl[e];
            rh[g] = 0;
          } else if (b2 === 0xb6 || b2 === 0xbe) {
            // MOVZX/MOVSX Gv,Eb: without REX, r/m 4-7 name AH CH DH BH.
            const v = e < 4 ? rl[e] & 0xff : (rl[e - 4] >>> 8) & 0xff;
            rl[g] = b2 === 0xbe ? (v << 24) >> 24 : v;
            rh[g] = 0;
          } else if (b2 === 0xb7 || b2 === 0xbf) {
            const v = rl[e] & 0xffff;
            rl[g] = b2 === 0xbf ? (v << 16) >> 16 : v;
            rh[g] = 0;
          } else break outer;
          len = 3;
          break;
        }
        // IN/OUT AL/eAX with an imm8 or DX port, taken over by an I/O hook (exitInsn).
        case 0xe4:
        case 0xe5:
        case 0xe6:
        case 0xe7:
        case 0xec:
        case 0xed:
        case 0xee:
        case 0xef: {
          len = b < 0xe8 ? 2 : 1;
          this.icount += k - counted;
          counted = k;
          const r = this.exitInsn(b, buf[p + 1], rip, p, len);
          if (r < 0) break outer;
          this.icount++;
          if (r > 0) return k + 1; // (exitInsn set eventCheck: execute() leaves too)
          counted = k + 1;
          break;
        }
        default:
          break outer;
      }
      if (!jump) {
        ip = rip;
        p = (p + len) | 0;
        rip = m64 ? rip + len : (rip + len) >>> 0;
        k++;
        continue;
      }
      // A taken near branch (operand size 32 or 64): a target that faults is left to the general path.
      let t = rip + len + rel;
      if (m64) {
        if (t < -140737488355328 || t >= 140737488355328) break;
      } else {
        t >>>= 0;
        if (t > this.sLimit[CS]) break;
      }
      ip = rip;
      rip = t;
      k++;
      if (rel < 0 && this.idleSkip) {
        // backEdge reads the instruction count (virtual time).
        this.icount += k - counted;
        counted = k;
        this.backEdge(t);
        if (this.eventCheck) {
          p = -1;
          break;
        }
      }
      const d = (m64 ? t : (csBase + t) >>> 0) - lin0;
      if (!(d >= 0 && d < size)) {
        p = -1;
        break;
      }
      p = (pos0 + d) | 0;
      landed = true;
    }
    this.icount += k - counted;
    this.ip0 = ip;
    if (p < 0)
      this.rip = rip; // left the window: the general path finds the target
    else {
      this.fPos = p;
      this._rip = rip;
    }
    return k;
  }

  /**
   * IN/OUT AL/eAX (opcode `op`, imm8 port `imm`) or CPUID (`op` 0xA2) from the fast path or a
   * translated block, at `rip` (window position `pos`, `len` bytes), with the registers and flags
   * in the CPU and the instructions before it counted. An intercept hook (a VM exit) is called as
   * from the general path; CPUID without one is answered by the model; an I/O without a hook, or
   * one the hook declines (its I/O-bitmap bit is clear), goes to the bus. Returns -1 when it is not
   * done here (an I/O permission check that could fault: the general path runs it); 0 when it is
   * done and the caller goes on from the next instruction with the state it holds (RIP is the
   * next instruction, in the same fetch window, nothing needs a look: a VM exit whose handler
   * advanced RIP and resumed); 1 when it is done and the caller must leave (RIP is whatever the
   * hook left; eventCheck is set, so execute() leaves too). The caller counts the instruction as
   * retired unless -1.
   */
  exitInsn(op: number, imm: number, rip: number, pos: number, len: number): number {
    const rl = this.rl;
    if (op === 0xa2) {
      const hook = this.hooks.cpuid;
      if (hook === null) {
        this.cpuidToRegs(rl[0] >>> 0, rl[1] >>> 0);
        return 0;
      }
      this.hookPrep(rip, pos, len);
      const e = this.cpuidEv;
      e.leaf = rl[0] >>> 0;
      e.subleaf = rl[1] >>> 0;
      e.length = len;
      if (!hook(e)) {
        this.cpuidToRegs(rl[0] >>> 0, rl[1] >>> 0);
        return 0;
      }
    } else {
      // Above IOPL the TSS I/O permission bitmap decides, and may fault: the general path checks it.
      if (this.pe && (this.v86 || this.cpl > ((this.fl >> 12) & 3))) return -1;
      const hook = this.hooks.io;
      this.hookPrep(rip, pos, len);
      const immediate = op < 0xe8;
      const port = immediate ? imm : rl[2] & 0xffff;
      const size = op & 1 ? 4 : 1;
      const input = (op & 2) === 0;
      if (hook === null || !this.ioHook(hook, port, size, input, false, false, immediate, len)) {
        // No hook, or it declined (no VM exit): the port devices run the instruction, as on bare
        // hardware. A device that raises an interrupt or arms an earlier timer says so itself.
        this._rip = this.mode64 ? rip + len : (rip + len) >>> 0;
        this.portIoBare(port, size, input);
      }
    }
    // Taken over (as took() after the general path).
    const next = this.mode64 ? rip + len : (rip + len) >>> 0;
    const seq = this._rip === next;
    this.seq = seq;
    if (
      seq &&
      !this.eventCheck &&
      this.fValid &&
      this.fBuf === this.hookBuf &&
      this.fLin0 === this.hookLin0 &&
      (this.fl & 0x100) === 0 &&
      !this.dbPending
    )
      return 0;
    // The caller's view (RIP, window, locals) is stale: a look at events makes every caller leave.
    this.eventCheck = true;
    return 1;
  }

  /** The CPU's state at an instruction exitInsn hands to a hook, as the general path leaves it. */
  private hookPrep(rip: number, pos: number, len: number): void {
    this.ip0 = rip;
    this._rip = rip;
    this.iStart = pos;
    this.fPos = (pos + len) | 0;
    this.seq = true;
    this.hookBuf = this.fBuf;
    this.hookLin0 = this.fLin0;
  }

  /** The fetch window when a hook was called (exitInsn: is it still the one after?). */
  private hookBuf: Uint8Array | null = null;
  private hookLin0 = NaN;

  /**
   * alu() for a 32-bit operation on the fast path, all eight inline. Only what the lazy-flag
   * getters read for a 32-bit size is recorded (the high halves matter for size 8 only; a logic
   * result needs no operands).
   */
  private alu32(op: number, a: number, b: number): number {
    let r: number;
    switch (op) {
      case 0:
        r = (a + b) | 0;
        this.lfOp = LAZY_ADD;
        this.lfA = a;
        this.lfB = b;
        break;
      case 2: {
        const c = this.carry();
        r = (a + b + c) | 0;
        this.lfOp = LAZY_ADC;
        this.lfC = c;
        this.lfA = a;
        this.lfB = b;
        break;
      }
      case 3: {
        const c = this.carry();
        r = (a - b - c) | 0;
        this.lfOp = LAZY_SBB;
        this.lfC = c;
        this.lfA = a;
        this.lfB = b;
        break;
      }
      case 5:
      case 7:
        r = (a - b) | 0;
        this.lfOp = LAZY_SUB;
        this.lfA = a;
        this.lfB = b;
        break;
      case 1:
        r = a | b;
        this.lfOp = LAZY_LOGIC;
        break;
      case 4:
        r = a & b;
        this.lfOp = LAZY_LOGIC;
        break;
      default:
        r = a ^ b;
        this.lfOp = LAZY_LOGIC;
    }
    this.lfSz = 4;
    this.lfR = r;
    return r;
  }

  /** CF for ADC/SBB/INC/DEC on the fast path: the kinds that keep it in lfC need no getCF(). */
  carry(): number {
    const op = this.lfOp;
    if (op >= LAZY_INC) return this.lfC; // INC, DEC (preserved CF), shifts (CF out)
    if (op === LAZY_LOGIC) return 0;
    return this.getCF();
  }

  /** 32-bit INC/DEC (CF preserved, SDM Vol. 2A INC/DEC). */
  private incDec32(a: number, dec: boolean): number {
    const c = this.carry();
    const r = dec ? (a - 1) | 0 : (a + 1) | 0;
    this.lfOp = dec ? LAZY_DEC : LAZY_INC;
    this.lfSz = 4;
    this.lfR = r;
    this.lfA = a;
    this.lfB = 1;
    this.lfC = c;
    return r;
  }

  /** 32-bit group 2 on the fast path: SHL/SHR/SAL/SAR inline (as shift()), rotates through shift(). */
  shift32(op: number, a: number, cnt: number): number {
    cnt &= 31;
    if (cnt === 0) return a; // flags unaffected
    if (op < 4) return this.shift(op, 4, a, 0, cnt);
    let r: number, cf: number, of: number;
    if (op === 5) {
      cf = (a >>> (cnt - 1)) & 1;
      r = (a >>> cnt) | 0;
      of = a >>> 31;
    } else if (op === 7) {
      cf = (a >> (cnt - 1)) & 1;
      r = a >> cnt;
      of = 0;
    } else {
      cf = (a >>> (32 - cnt)) & 1;
      r = a << cnt;
      of = (r >>> 31) ^ cf;
    }
    // As shift(): OF (0/1) in lfB, CF in lfC; AF reads as clear for Shift without lfA.
    this.lfOp = LAZY_SHIFT;
    this.lfSz = 4;
    this.lfR = r;
    this.lfB = of;
    this.lfC = cf;
    return r;
  }

  /** cond() with the ZF tests (JE/JNE) of a 32-bit result inline. */
  condFast(cc: number): boolean {
    if (cc >> 1 === 2 && this.lfOp !== 0 && this.lfSz === 4) return (this.lfR === 0) !== ((cc & 1) !== 0);
    return this.cond(cc);
  }

  /**
   * Linear address of a data access at base (lo, hi) + disp through DS or SS (fast path, blocks):
   * segLin's checks inline for the common case; #AC (CPL 3, size > 1) and every failing check go
   * through segLin, which faults as the general path does.
   */
  dataLin(
    seg: number,
    lo: number,
    hi: number,
    disp: number,
    size: number,
    write: boolean,
    m64: boolean,
  ): number {
    const noAc = size === 1 || this.cpl !== 3;
    if (m64) {
      const s = (lo >>> 0) + disp;
      const h = (hi + (s >= TWO32 ? 1 : s < 0 ? -1 : 0)) | 0;
      // DS and SS have no base in 64-bit mode (SDM Vol. 3A 3.4.4): a canonical offset is the address.
      if (noAc && (h + 0x8000) >>> 16 === 0) return (h & 0xffff) * TWO32 + (s >>> 0);
      return this.segLin(seg, s | 0, h, size, write);
    }
    const off = (lo + disp) >>> 0;
    const ok = this.sOk[seg];
    if (
      noAc &&
      (ok & (write ? SEGOK_WRITE : SEGOK_READ)) !== 0 &&
      (ok & SEGOK_EXPAND_DOWN) === 0 &&
      off + size - 1 <= this.sLimit[seg]
    )
      return (this.sBaseLo[seg] + off) >>> 0;
    return this.segLin(seg, off | 0, 0, size, write);
  }

  /**
   * MOV Eb,Gb / Ev,Gv / Gb,Eb / Gv,Ev (88-8B) and MOVZX Gv,Eb (0x1b6) with a [base] or
   * [base+disp8] operand (no SIB, no RIP-relative), no operand-size prefix; `rex` (64-bit mode, or
   * 0) extends the registers and W makes MOV 64-bit. Returns the length counted from the opcode
   * byte (0: not such a form, nothing done). Faults as the general path does.
   */
  private fastMem(op: number, m: number, d8: number, m64: boolean, rex: number): number {
    const mod = m >> 6;
    const rm = m & 7;
    if (mod === 2 || rm === 4 || (mod === 0 && rm === 5)) return 0;
    const base = rm | ((rex & 1) << 3);
    const g = ((m >> 3) & 7) | ((rex & 4) << 1);
    const disp = mod === 1 ? (d8 << 24) >> 24 : 0;
    const seg = rm === 5 ? SS : DS;
    const wide = op === 0x89 || op === 0x8b;
    const size = wide ? (rex & 8 ? 8 : 4) : 1;
    const rl = this.rl;
    const rh = this.rh;
    const lin = this.dataLin(seg, rl[base], rh[base], disp, size, op < 0x8a, m64);
    // Without REX, byte registers 4-7 are AH CH DH BH.
    const high = rex === 0 && g >= 4;
    switch (op) {
      case 0x88:
        this.write8(lin, (high ? rl[g - 4] >>> 8 : rl[g]) & 0xff);
        break;
      case 0x89:
        if (size === 8) this.write64(lin, rl[g], rh[g]);
        else this.write32(lin, rl[g]);
        break;
      case 0x8a: {
        const v = this.read8(lin);
        if (high) rl[g - 4] = (rl[g - 4] & ~0xff00) | (v << 8);
        else rl[g] = (rl[g] & ~0xff) | v;
        break;
      }
      case 0x8b:
        if (size === 8) {
          rl[g] = this.read64(lin);
          rh[g] = this.hi;
        } else {
          rl[g] = this.read32(lin);
          rh[g] = 0;
        }
        break;
      default:
        rl[g] = this.read8(lin);
        rh[g] = 0;
    }
    return mod === 1 ? 3 : 2;
  }

  /**
   * A REX-prefixed register form on the fast path (64-bit mode): ALU, TEST, MOV, INC/DEC, group 1
   * by Ib/Id and group 2 with register operands. Returns its length, or 0 (nothing done) for
   * anything else.
   */
  private fastRex(rex: number, buf: Uint8Array, p: number): number {
    const b = buf[p + 1];
    const m = buf[p + 2];
    if (m < 0xc0) return 0;
    const w = (rex & 8) !== 0;
    const e = (m & 7) | ((rex & 1) << 3);
    const g = ((m >> 3) & 7) | ((rex & 4) << 1);
    const rl = this.rl;
    const rh = this.rh;
    switch (b) {
      case 0x01:
      case 0x09:
      case 0x11:
      case 0x19:
      case 0x21:
      case 0x29:
      case 0x31:
      case 0x39:
      case 0x03:
      case 0x0b:
      case 0x13:
      case 0x1b:
      case 0x23:
      case 0x2b:
      case 0x33:
      case 0x3b: {
        const op = b >> 3;
        const d = b & 2 ? g : e;
        const s = b & 2 ? e : g;
        const r = w ? this.alu(op, 8, rl[d], rh[d], rl[s], rh[s]) : this.alu32(op, rl[d], rl[s]);
        if (op !== 7) {
          rl[d] = r;
          rh[d] = w ? this.hi : 0;
        }
        return 3;
      }
      case 0x81:
      case 0x83: {
        const op = (m >> 3) & 7;
        let imm: number, len: number;
        if (b === 0x83) {
          imm = (buf[p + 3] << 24) >> 24;
          len = 4;
        } else {
          imm = buf[p + 3] | (buf[p + 4] << 8) | (buf[p + 5] << 16) | (buf[p + 6] << 24);
          len = 7;
        }
        const r = w ? this.alu(op, 8, rl[e], rh[e], imm, imm >> 31) : this.alu32(op, rl[e], imm);
        if (op !== 7) {
          rl[e] = r;
          rh[e] = w ? this.hi : 0;
        }
        return len;
      }
      case 0x85:
        if (w) this.alu(4, 8, rl[e], rh[e], rl[g], rh[g]);
        else this.alu32(4, rl[e], rl[g]);
        return 3;
      case 0x89:
      case 0x8b: {
        const d = b === 0x8b ? g : e;
        const s = b === 0x8b ? e : g;
        rl[d] = rl[s];
        rh[d] = w ? rh[s] : 0;
        return 3;
      }
      case 0xc1:
      case 0xd1:
      case 0xd3: {
        const cnt = b === 0xc1 ? buf[p + 3] : b === 0xd1 ? 1 : rl[1] & 0xff;
        if (w) {
          rl[e] = this.shift((m >> 3) & 7, 8, rl[e], rh[e], cnt);
          rh[e] = this.hi;
        } else {
          rl[e] = this.shift32((m >> 3) & 7, rl[e], cnt);
          rh[e] = 0;
        }
        return b === 0xc1 ? 4 : 3;
      }
      case 0xff:
        if (m >= 0xd0) return 0; // INC/DEC Ev only
        if (w) {
          rl[e] = this.incDec(8, rl[e], rh[e], m >= 0xc8);
          rh[e] = this.hi;
        } else {
          rl[e] = this.incDec32(rl[e], m >= 0xc8);
          rh[e] = 0;
        }
        return 3;
      default:
        return 0;
    }
  }

  /** A single-step #DB is owed after the next instruction (TF was set on a MOV SS / POP SS). */
  dbPending = false;
  /** The current instruction loaded SS (MOV/POP SS) with TF set: its trap waits one instruction. */
  movSsNow = false;
  /** The current instruction was INT n/INT3/INTO with TF set: no single-step trap follows it. */
  softIntNow = false;

  /** The single-step trap after an instruction that began with TF=1 (SDM Vol. 3B 17.3.1.4). */
  private singleStepTrap(tf: boolean): void {
    if (this.softIntNow) {
      this.softIntNow = false;
      return;
    }
    if (this.movSsNow) {
      this.movSsNow = false;
      if (tf) this.dbPending = true;
      return;
    }
    this.dbPending = false;
    this.dr[6] = (this.dr[6] | 0x4000) >>> 0;
    this.raiseException(Vector.DB, -1, EventType.HardwareException, 0);
    this.invalidateFetch();
    this.eventCheck = true;
  }

  /** Look at pending events at an instruction boundary; returns true when run() must return. */
  serviceEvents(): boolean {
    this.eventCheck = false;
    if (this.shutdown) {
      this.halted = true;
      return true;
    }
    this.deliverInjected();
    if (this.hooks.boundary !== null && this.hooks.boundary()) {
      this.invalidateFetch();
      this.deliverInjected();
      return this.exitReq || this.halted;
    }
    if (this.shadow > 0) {
      if (--this.shadow === 0) this.shadowInsn = this.icount;
      this.eventCheck = true;
    } else {
      if (this.nmiPending && !this.nmiBlocked) {
        this.nmiPending = false;
        this.halted = false;
        this.raiseException(Vector.NMI, -1, EventType.Nmi, 0);
        this.invalidateFetch();
      }
      if (this.fl & RFLAGS.IF) {
        if (this.hooks.interruptWindow !== null && this.hooks.interruptWindow()) {
          this.invalidateFetch();
          this.deliverInjected();
          return this.exitReq || this.halted;
        }
        const ic = this.intc;
        if (ic !== undefined && ic.hasPendingInterrupt()) {
          this.halted = false;
          if (this.hooks.externalInterrupt === null || !this.hooks.externalInterrupt()) {
            this.syncClock();
            const v = ic.acknowledgeInterrupt();
            this.raiseException(v & 0xff, -1, EventType.External, 0);
          } else this.deliverInjected();
          this.invalidateFetch();
        }
      }
    }
    if (this.exitReq) {
      this.exitReq = false;
      return true;
    }
    return this.halted;
  }

  /**
   * VM-entry event injection (injectEvent) is delivered before the next instruction, also when the
   * entry happened at this boundary (a VM exit taken here), and again when a VM exit during the
   * delivery injected it anew (IDT-vectoring re-injection).
   */
  private deliverInjected(): void {
    while (this.injVector >= 0) {
      const v = this.injVector;
      this.injVector = -1;
      this.halted = false;
      // An injected #PF leaves CR2 as the VMM set it (CR2 is not guest state in the VMCS; VM entry
      // delivers the event, SDM Vol. 3C 26.5.1, without writing CR2); a #PF raised while
      // delivering it sets CR2 as usual.
      if (v === Vector.PF) this.fAddr = this.cr2 < 0 ? this.cr2 + TWO48 : this.cr2;
      this.raiseException(v, this.injError, this.injType, this.injLength);
      this.invalidateFetch();
    }
  }

  requestExit(): void {
    this.exitReq = true;
    this.eventCheck = true;
  }

  interruptRequested(): void {
    this.eventCheck = true;
    if (this.halted && !this.shutdown && this.fl & RFLAGS.IF && this.intc?.hasPendingInterrupt())
      this.halted = false;
  }

  nmi(): void {
    this.nmiPending = true;
    this.eventCheck = true;
    if (!this.shutdown) this.halted = false;
  }

  /** Queue an event for delivery before the next instruction (VM-entry event injection). */
  injectEvent(vector: number, type: EventType, errorCode = -1, length = 0): void {
    this.injVector = vector;
    this.injType = type;
    this.injError = errorCode;
    this.injLength = length;
    this.eventCheck = true;
    this.halted = false;
  }

  // =============================================================================================
  // Fetch
  // =============================================================================================

  /** Forget the fetch window (its page may be remapped); the current instruction's bytes stay valid. */
  invalidateFetch(): void {
    this.fLin0 = NaN;
    this.fValid = false;
  }

  /** The fetch window is usable (cleared whenever translations or CS may have changed). */
  private fValid = false;

  override flushTlb(keepGlobal = false): void {
    super.flushTlb(keepGlobal);
    this.invalidateFetch();
  }

  override flushTlbPage(lin: number): void {
    super.flushTlbPage(lin);
    this.invalidateFetch();
  }

  override updateMode(): void {
    super.updateMode();
    this.invalidateFetch();
  }

  /** Linear address of the current RIP (faults if outside CS or non-canonical). */
  private ripLin(rip: number): number {
    if (this.mode64) {
      if (rip < -140737488355328 || rip >= 140737488355328) this.gp(0);
      return rip < 0 ? rip + TWO48 : rip;
    }
    if (rip > this.sLimit[CS]) this.gp(0);
    return (this.sBaseLo[CS] + rip) >>> 0;
  }

  /** Start fetching an instruction at RIP. */
  private beginFetch(): void {
    const rip = this.rip;
    let lin: number;
    if (this.mode64) {
      if (rip >= 0 && rip < 140737488355328) lin = rip;
      else lin = this.ripLin(rip);
    } else lin = (this.sBaseLo[CS] + rip) >>> 0;
    const d = lin - this.fLin0;
    if (d >= 0 && d < this.fEnd - this.fPos0) {
      this.fPos = (this.fPos0 + d) | 0;
      this.iStart = this.fPos;
      return;
    }
    this.refill(lin, rip);
    this.iStart = this.fPos;
  }

  /** Point the fetch window at the page holding `lin` (rip: its offset in CS, for limit checks). */
  private refill(lin: number, rip: number): void {
    if (!this.mode64 && rip > this.sLimit[CS]) this.gp(0);
    if (this.mode64 && (rip < -140737488355328 || rip >= 140737488355328)) this.gp(0);
    const i = (lin >>> 12) & 2047;
    const page = lin - (lin & 0xfff);
    let buf: Uint8Array | null;
    let off: number;
    if (this.tX[i] === page) {
      buf = this.tlbMem[i];
      off = this.tlbOff[i];
      this.fPhysPage = this.tlbPhys[i] / 4096;
    } else {
      const phys = this.tlbFill(lin, Acc.Fetch);
      this.fPhysPage = Math.floor(phys / 4096);
      buf = this.fillMem;
      off = (this.fillOff - (phys % 4096)) | 0;
      if (buf === null) {
        // Executing from MMIO or unmapped space: a one-byte window read through the bus.
        this.fBuf = this.oneByte;
        this.oneByte[0] = this.mmioRead(phys, 1);
        this.fPos = 0;
        this.fPos0 = 0;
        this.fEnd = 1;
        this.fLin0 = NaN;
        this.fValid = false;
        return;
      }
    }
    let len = 4096 - (lin & 0xfff);
    if (!this.mode64) {
      const room = this.sLimit[CS] - rip + 1;
      if (room < len) len = room;
    }
    this.fBuf = buf;
    this.fValid = true;
    // Integer fields (V8 keeps them untagged; a double here slows every fetch).
    this.fPos = (off + (lin & 0xfff)) | 0;
    this.fPos0 = this.fPos;
    this.fEnd = (this.fPos + len) | 0;
    this.fLin0 = lin;
  }

  private readonly oneByte = new Uint8Array(1);

  fetch8(): number {
    if (this.fPos < this.fEnd) return this.fBuf[this.fPos++];
    return this.fetchSlow();
  }

  private fetchSlow(): number {
    const n = this.fPos - this.iStart;
    if (n >= 15) this.gp(0);
    const rip = this.ip0 + n;
    let lin: number;
    if (this.mode64) lin = this.ripLin(rip);
    else {
      const r = this.cs32 ? rip >>> 0 : rip & 0xffff;
      if (r > this.sLimit[CS]) this.gp(0);
      lin = (this.sBaseLo[CS] + r) >>> 0;
    }
    this.refill(lin, this.mode64 ? rip : rip >>> 0);
    this.iStart = (this.fPos - n) | 0;
    return this.fBuf[this.fPos++];
  }

  fetch16(): number {
    const a = this.fetch8();
    return a | (this.fetch8() << 8);
  }

  fetch32(): number {
    const a = this.fetch8() | (this.fetch8() << 8);
    return a | (this.fetch8() << 16) | (this.fetch8() << 24);
  }

  /** Immediate of operand size (Iz): 16 or 32 bits, sign-extended into `hi` for osz 8. */
  fetchIz(): number {
    if (this.osz === 2) return this.fetch16();
    const v = this.fetch32();
    this.hi = v >> 31;
    return v;
  }

  /** Bytes of the current instruction fetched so far. */
  get ilen(): number {
    return this.fPos - this.iStart;
  }

  /** The RIP after the current instruction (all bytes fetched). */
  nextRip(): number {
    const r = this.ip0 + (this.fPos - this.iStart);
    if (this.mode64) return r;
    return this.cs32 ? r >>> 0 : r & 0xffff;
  }

  // =============================================================================================
  // ModRM and effective addresses
  // =============================================================================================

  modrm(): void {
    const b = this.fetch8();
    const mod = b >> 6;
    this.mod = mod;
    this.reg = ((b >> 3) & 7) | ((this.rex & 4) << 1);
    if (mod === 3) {
      this.rm = (b & 7) | ((this.rex & 1) << 3);
      if (this.lock) this.undef();
      return;
    }
    const rm = b & 7;
    this.rm = rm;
    this.eaRip = false;
    this.eaIdx = -1;
    this.eaScale = 0;
    if (this.asz === 2) {
      // 16-bit forms (SDM Vol. 2A Table 2-1).
      let disp = 0;
      if (mod === 1) disp = (this.fetch8() << 24) >> 24;
      else if (mod === 2) disp = this.fetch16();
      switch (rm) {
        case 0:
          this.eaBase = 3;
          this.eaIdx = 6;
          break;
        case 1:
          this.eaBase = 3;
          this.eaIdx = 7;
          break;
        case 2:
          this.eaBase = 5;
          this.eaIdx = 6;
          break;
        case 3:
          this.eaBase = 5;
          this.eaIdx = 7;
          break;
        case 4:
          this.eaBase = 6;
          break;
        case 5:
          this.eaBase = 7;
          break;
        case 6:
          if (mod === 0) {
            this.eaBase = -1;
            disp = this.fetch16();
          } else this.eaBase = 5;
          break;
        default:
          this.eaBase = 3;
      }
      this.eaDisp = disp;
      this.eaSeg = this.segOv >= 0 ? this.segOv : this.eaBase === 5 ? SS : DS;
      return;
    }
    let base = rm;
    if (rm === 4) {
      const sib = this.fetch8();
      const idx = ((sib >> 3) & 7) | ((this.rex & 2) << 2);
      if (idx !== 4) {
        this.eaIdx = idx;
        this.eaScale = sib >> 6;
      }
      base = sib & 7;
      if (base === 5 && mod === 0) {
        this.eaBase = -1;
        this.eaDisp = this.fetch32();
        this.eaSeg = this.segOv >= 0 ? this.segOv : DS;
        return;
      }
      base |= (this.rex & 1) << 3;
    } else if (rm === 5 && mod === 0) {
      this.eaBase = -1;
      this.eaDisp = this.fetch32();
      this.eaRip = this.mode64;
      this.eaSeg = this.segOv >= 0 ? this.segOv : DS;
      return;
    } else base |= (this.rex & 1) << 3;
    this.eaBase = base;
    this.eaDisp = mod === 1 ? (this.fetch8() << 24) >> 24 : mod === 2 ? this.fetch32() : 0;
    this.eaSeg = this.segOv >= 0 ? this.segOv : (base & 7) === 4 || (base & 7) === 5 ? SS : DS;
  }

  /** Compute eaLo/eaHi (the offset) from the decoded ModRM; call after all bytes are fetched. */
  calcEa(): void {
    const asz = this.asz;
    const disp = this.eaDisp;
    if (asz === 8) {
      let lo = disp >>> 0;
      let hi = disp >> 31;
      if (this.eaRip) {
        const nr = this.nextRip();
        const s = lo + (nr >>> 0);
        hi = (hi + (Math.floor(nr / TWO32) | 0) + (s >= TWO32 ? 1 : 0)) | 0;
        lo = s >>> 0;
      }
      const b = this.eaBase;
      if (b >= 0) {
        const s = lo + (this.rl[b] >>> 0);
        hi = (hi + this.rh[b] + (s >= TWO32 ? 1 : 0)) | 0;
        lo = s >>> 0;
      }
      const x = this.eaIdx;
      if (x >= 0) {
        const sc = this.eaScale;
        const xl = this.rl[x];
        const il = (xl << sc) >>> 0;
        const ih = sc === 0 ? this.rh[x] : (this.rh[x] << sc) | (xl >>> (32 - sc));
        const s = lo + il;
        hi = (hi + ih + (s >= TWO32 ? 1 : 0)) | 0;
        lo = s >>> 0;
      }
      this.eaLo = lo | 0;
      this.eaHi = hi;
      return;
    }
    let v = disp;
    if (this.eaRip) v += this.nextRip();
    if (this.eaBase >= 0) v += this.rl[this.eaBase];
    if (this.eaIdx >= 0) v += this.rl[this.eaIdx] << this.eaScale;
    this.eaLo = asz === 4 ? v | 0 : v & 0xffff;
    this.eaHi = 0;
  }

  /** Linear address of the memory operand for an access of `size`. */
  memLin(size: number, write: boolean): number {
    this.calcEa();
    return this.segLin(this.eaSeg, this.eaLo, this.eaHi, size, write);
  }

  /** Linear address of the memory operand displaced by `add` bytes (64-bit add on the offset). */
  memLinAt(add: number, size: number, write: boolean): number {
    this.calcEa();
    let lo = this.eaLo,
      hi = this.eaHi;
    if (add !== 0) {
      const s = (lo >>> 0) + add;
      lo = s | 0;
      if (this.asz === 8) hi = (hi + Math.floor(s / TWO32)) | 0;
      else if (this.asz === 2) lo &= 0xffff;
    }
    return this.segLin(this.eaSeg, lo, hi, size, write);
  }

  readE(size: number): number {
    if (this.mod === 3) return this.getReg(this.rm, size, this.rex !== 0);
    return this.readN(this.memLin(size, false), size);
  }

  writeE(size: number, v: number, vh: number): void {
    if (this.mod === 3) this.setReg(this.rm, size, this.rex !== 0, v, vh);
    else this.writeN(this.memLin(size, true), size, v, vh);
  }

  /** Read for read-modify-write: memory operands are checked for writing once. */
  rmwRead(size: number): number {
    if (this.mod === 3) return this.getReg(this.rm, size, this.rex !== 0);
    const lin = this.memLin(size, true);
    this.rmwLin = lin;
    return this.readN(lin, size);
  }

  rmwWrite(size: number, v: number, vh: number): void {
    if (this.mod === 3) this.setReg(this.rm, size, this.rex !== 0, v, vh);
    else this.writeN(this.rmwLin, size, v, vh);
  }

  // =============================================================================================
  // Arithmetic
  // =============================================================================================

  /** The eight ALU operations of opcodes 00-3F and group 1 (ADD OR ADC SBB AND SUB XOR CMP). */
  alu(op: number, sz: number, a: number, ah: number, b: number, bh: number): number {
    let r = 0,
      rh = 0;
    switch (op) {
      case 0: // ADD
        if (sz === 8) {
          const s = (a >>> 0) + (b >>> 0);
          r = s | 0;
          rh = (ah + bh + (s >= TWO32 ? 1 : 0)) | 0;
        } else r = (a + b) & MASK[sz];
        this.setLazy(LAZY_ADD, sz, r, rh, a, ah, b, bh);
        break;
      case 2: {
        // ADC
        const c = this.carry();
        if (sz === 8) {
          const s = (a >>> 0) + (b >>> 0) + c;
          r = s | 0;
          rh = (ah + bh + (s >= TWO32 ? 1 : 0)) | 0;
        } else r = (a + b + c) & MASK[sz];
        this.setLazy(LAZY_ADC, sz, r, rh, a, ah, b, bh);
        this.lfC = c;
        break;
      }
      case 3: {
        // SBB
        const c = this.carry();
        if (sz === 8) {
          const s = (a >>> 0) - (b >>> 0) - c;
          r = s | 0;
          rh = (ah - bh - (s < 0 ? 1 : 0)) | 0;
        } else r = (a - b - c) & MASK[sz];
        this.setLazy(LAZY_SBB, sz, r, rh, a, ah, b, bh);
        this.lfC = c;
        break;
      }
      case 5:
      case 7: // SUB, CMP
        if (sz === 8) {
          const s = (a >>> 0) - (b >>> 0);
          r = s | 0;
          rh = (ah - bh - (s < 0 ? 1 : 0)) | 0;
        } else r = (a - b) & MASK[sz];
        this.setLazy(LAZY_SUB, sz, r, rh, a, ah, b, bh);
        break;
      case 1:
        r = a | b;
        rh = ah | bh;
        this.setLazy(LAZY_LOGIC, sz, r, rh, 0, 0, 0, 0);
        break;
      case 4:
        r = a & b;
        rh = ah & bh;
        this.setLazy(LAZY_LOGIC, sz, r, rh, 0, 0, 0, 0);
        break;
      default:
        r = a ^ b;
        rh = ah ^ bh;
        this.setLazy(LAZY_LOGIC, sz, r, rh, 0, 0, 0, 0);
    }
    this.hi = rh;
    return r;
  }

  private incDec(sz: number, a: number, ah: number, dec: boolean): number {
    const c = this.carry();
    let r: number,
      rh = 0;
    if (dec) {
      if (sz === 8) {
        r = (a - 1) | 0;
        rh = a === 0 ? (ah - 1) | 0 : ah;
      } else r = (a - 1) & MASK[sz];
      this.setLazy(LAZY_DEC, sz, r, rh, a, ah, 1, 0);
    } else {
      if (sz === 8) {
        r = (a + 1) | 0;
        rh = a === -1 ? (ah + 1) | 0 : ah;
      } else r = (a + 1) & MASK[sz];
      this.setLazy(LAZY_INC, sz, r, rh, a, ah, 1, 0);
    }
    this.lfC = c;
    this.hi = rh;
    return r;
  }

  /** Bit k (0..63) of a value of size sz. */
  private static bit(lo: number, hi: number, k: number): number {
    return k < 32 ? (lo >>> k) & 1 : (hi >>> (k - 32)) & 1;
  }

  /** Group 2: ROL ROR RCL RCR SHL SHR SAL SAR (SDM Vol. 2B SAL/SAR/SHL/SHR, RCL/RCR/ROL/ROR). */
  shift(op: number, sz: number, a: number, ah: number, cnt: number): number {
    const bits = sz * 8;
    cnt &= sz === 8 ? 63 : 31;
    if (cnt === 0) {
      this.hi = ah;
      return a;
    }
    if (sz !== 8 && op >= 4) {
      // SHL/SHR/SAR up to 32 bits: results and CF/OF here, SF ZF PF lazily.
      const u = sz === 4 ? a >>> 0 : a;
      let r: number, cf: number, of: number;
      if (op === 5) {
        cf = cnt <= bits ? (u >>> (cnt - 1)) & 1 : 0;
        r = cnt >= 32 ? 0 : u >>> cnt;
        of = (u >>> (bits - 1)) & 1;
      } else if (op === 7) {
        const sx = (u << (32 - bits)) >> (32 - bits);
        cf = (sx >> (cnt > 31 ? 31 : cnt - 1)) & 1;
        r = (cnt >= 32 ? sx >> 31 : sx >> cnt) & MASK[sz];
        of = 0;
      } else {
        cf = cnt <= bits ? (u >>> (bits - cnt)) & 1 : 0;
        r = (cnt >= 32 ? 0 : u << cnt) & MASK[sz];
        of = ((r >>> (bits - 1)) & 1) ^ cf;
      }
      this.setLazy(LAZY_SHIFT, sz, r, 0, 0, 0, of, 0);
      this.lfC = cf;
      this.hi = 0;
      return r;
    }
    const hi = sz === 8 ? ah : 0;
    const lo = sz === 4 ? a >>> 0 : a;
    let rl = 0,
      rh = 0,
      cf = 0,
      of = 0;
    switch (op) {
      case 0: // ROL
      case 1: {
        // ROR
        const n = cnt % bits;
        if (n === 0) {
          rl = lo;
          rh = hi;
        } else if (op === 0) {
          this.shl(lo, hi, n, sz);
          rl = this.tl;
          rh = this.th;
          this.shr(lo, hi, bits - n, sz);
          rl |= this.tl;
          rh |= this.th;
        } else {
          this.shr(lo, hi, n, sz);
          rl = this.tl;
          rh = this.th;
          this.shl(lo, hi, bits - n, sz);
          rl |= this.tl;
          rh |= this.th;
        }
        rl &= MASK[sz];
        if (op === 0) {
          cf = rl & 1;
          of = X86Cpu.bit(rl, rh, bits - 1) ^ cf;
        } else {
          cf = X86Cpu.bit(rl, rh, bits - 1);
          of = cf ^ X86Cpu.bit(rl, rh, bits - 2);
        }
        this.flushFlags();
        this.fl = (this.fl & ~(RFLAGS.CF | RFLAGS.OF)) | cf | (of ? RFLAGS.OF : 0);
        this.hi = rh;
        return sz === 4 ? rl | 0 : rl;
      }
      case 2: // RCL
      case 3: {
        // RCR: rotate through CF, a (bits+1)-bit rotation.
        const n = sz === 8 || sz === 4 ? cnt : cnt % (bits + 1);
        let c = this.getCF();
        rl = lo;
        rh = hi;
        for (let k = 0; k < n; k++) {
          if (op === 2) {
            const out = X86Cpu.bit(rl, rh, bits - 1);
            this.shl(rl, rh, 1, sz);
            rl = this.tl | c;
            rh = this.th;
            c = out;
          } else {
            const out = rl & 1;
            this.shr(rl, rh, 1, sz);
            rl = this.tl;
            rh = this.th;
            if (c) {
              if (bits === 64) rh |= 0x80000000;
              else rl |= SIGN[sz];
            }
            c = out;
          }
        }
        rl &= MASK[sz];
        cf = c;
        if (op === 2) of = X86Cpu.bit(rl, rh, bits - 1) ^ cf;
        else of = X86Cpu.bit(rl, rh, bits - 1) ^ X86Cpu.bit(rl, rh, bits - 2);
        this.flushFlags();
        this.fl = (this.fl & ~(RFLAGS.CF | RFLAGS.OF)) | cf | (of ? RFLAGS.OF : 0);
        this.hi = rh;
        return sz === 4 ? rl | 0 : rl;
      }
      case 4:
      case 6: // SHL/SAL
        cf = cnt <= bits ? X86Cpu.bit(lo, hi, bits - cnt) : 0;
        this.shl(lo, hi, cnt, sz);
        rl = this.tl & MASK[sz];
        rh = this.th;
        of = X86Cpu.bit(rl, rh, bits - 1) ^ cf;
        break;
      case 5: // SHR
        cf = cnt <= bits ? X86Cpu.bit(lo, hi, cnt - 1) : 0;
        this.shr(lo, hi, cnt, sz);
        rl = this.tl;
        rh = this.th;
        of = X86Cpu.bit(lo, hi, bits - 1);
        break;
      default: {
        // SAR
        const neg = X86Cpu.bit(lo, hi, bits - 1);
        cf = cnt <= bits ? X86Cpu.bit(lo, hi, cnt - 1) : neg;
        this.sar(lo, hi, cnt, sz);
        rl = this.tl & MASK[sz];
        rh = this.th;
        of = 0;
      }
    }
    this.setArith(cf | (of ? RFLAGS.OF : 0) | this.szp(rl, rh, sz));
    this.hi = rh;
    return sz === 4 ? rl | 0 : rl;
  }

  private tl = 0;
  private th = 0;

  /** Logical shifts of a value (64-bit pair or a 32-bit-or-less unsigned value), result in tl/th. */
  private shl(lo: number, hi: number, n: number, sz: number): void {
    if (sz !== 8) {
      this.tl = n >= 32 ? 0 : lo << n;
      this.th = 0;
      return;
    }
    if (n === 0) {
      this.tl = lo;
      this.th = hi;
    } else if (n < 32) {
      this.th = (hi << n) | (lo >>> (32 - n));
      this.tl = lo << n;
    } else if (n < 64) {
      this.th = lo << (n - 32);
      this.tl = 0;
    } else {
      this.tl = 0;
      this.th = 0;
    }
  }

  private shr(lo: number, hi: number, n: number, sz: number): void {
    if (sz !== 8) {
      this.tl = n >= 32 ? 0 : (lo >>> 0) >>> n;
      this.th = 0;
      return;
    }
    if (n === 0) {
      this.tl = lo;
      this.th = hi;
    } else if (n < 32) {
      this.tl = (lo >>> n) | (hi << (32 - n));
      this.th = hi >>> n;
    } else if (n < 64) {
      this.tl = hi >>> (n - 32);
      this.th = 0;
    } else {
      this.tl = 0;
      this.th = 0;
    }
  }

  private sar(lo: number, hi: number, n: number, sz: number): void {
    if (sz !== 8) {
      const bits = sz * 8;
      const s = (lo << (32 - bits)) >> (32 - bits); // sign-extend to 32
      this.tl = n >= 32 ? s >> 31 : s >> n;
      this.th = 0;
      return;
    }
    if (n === 0) {
      this.tl = lo;
      this.th = hi;
    } else if (n < 32) {
      this.tl = (lo >>> n) | (hi << (32 - n));
      this.th = hi >> n;
    } else {
      this.tl = hi >> (n >= 64 ? 31 : n - 32);
      this.th = hi >> 31;
    }
  }

  /** SHLD/SHRD (SDM Vol. 2B): dst shifted with bits from src. */
  private shiftDouble(
    left: boolean,
    sz: number,
    d: number,
    dh: number,
    s: number,
    sh: number,
    cnt: number,
  ): number {
    cnt &= sz === 8 ? 63 : 31;
    if (cnt === 0) {
      this.hi = dh;
      return d;
    }
    const bits = sz * 8;
    if (sz === 2 && cnt > 16) {
      // Undefined result for 16-bit counts above 16; compute as a 48-bit shift like Intel does.
      const wide = left ? ((d << 16) | s) >>> 0 : ((s << 16) | d) >>> 0;
      const v3l = left ? wide : wide;
      let r: number, cf: number;
      if (left) {
        // 32-bit value d:s rotated with s repeated (Intel concatenates dst:src:dst).
        const x = BigInt(d) * 2n ** 32n + BigInt(s) * 65536n + BigInt(d);
        r = Number((x >> BigInt(48 - cnt)) & 0xffffn);
        cf = Number((x >> BigInt(48 - cnt)) & 0x10000n) ? 1 : 0;
      } else {
        const x = BigInt(d) + BigInt(s) * 65536n + BigInt(d) * 2n ** 32n;
        r = Number((x >> BigInt(cnt)) & 0xffffn);
        cf = Number((x >> BigInt(cnt - 1)) & 1n);
      }
      void v3l;
      const of = ((r ^ d) & 0x8000) !== 0 ? RFLAGS.OF : 0;
      this.setArith(cf | of | this.szp(r, 0, 2));
      this.hi = 0;
      return r;
    }
    let rl: number, rh: number, cf: number;
    if (left) {
      cf = X86Cpu.bit(sz === 4 ? d >>> 0 : d, dh, bits - cnt);
      this.shl(sz === 4 ? d >>> 0 : d, dh, cnt, sz);
      rl = this.tl;
      rh = this.th;
      this.shr(sz === 4 ? s >>> 0 : s, sh, bits - cnt, sz);
      rl |= this.tl;
      rh |= this.th;
      if (sz === 2) {
        rl = ((d << cnt) | (s >>> (16 - cnt))) & 0xffff;
      }
    } else {
      cf = X86Cpu.bit(sz === 4 ? d >>> 0 : d, dh, cnt - 1);
      this.shr(sz === 4 ? d >>> 0 : d, dh, cnt, sz);
      rl = this.tl;
      rh = this.th;
      this.shl(sz === 4 ? s >>> 0 : s, sh, bits - cnt, sz);
      rl |= this.tl;
      rh |= this.th;
    }
    rl &= MASK[sz];
    const of =
      (X86Cpu.bit(rl, rh, bits - 1) ^ X86Cpu.bit(sz === 4 ? d >>> 0 : d, dh, bits - 1)) !== 0 ? RFLAGS.OF : 0;
    this.setArith(cf | of | this.szp(rl, rh, sz));
    this.hi = rh;
    return sz === 4 ? rl | 0 : rl;
  }

  /** Unsigned 64x64 multiply: result words in m0..m3 (least significant first). */
  private m0 = 0;
  private m1 = 0;
  private m2 = 0;
  private m3 = 0;

  private mul64(al: number, ah: number, bl: number, bh: number): void {
    // Four 32x32 partial products, accumulated with carries in doubles.
    const ll = Math.imul(al, bl) >>> 0,
      llh = mulHi32(al, bl);
    const lh = Math.imul(al, bh) >>> 0,
      lhh = mulHi32(al, bh);
    const hl = Math.imul(ah, bl) >>> 0,
      hlh = mulHi32(ah, bl);
    const hh = Math.imul(ah, bh) >>> 0,
      hhh = mulHi32(ah, bh);
    this.m0 = ll | 0;
    const w1 = llh + lh + hl;
    this.m1 = (w1 % TWO32) | 0;
    const w2 = Math.floor(w1 / TWO32) + lhh + hlh + hh;
    this.m2 = (w2 % TWO32) | 0;
    this.m3 = (Math.floor(w2 / TWO32) + hhh) | 0;
  }

  /** Signed 64x64 multiply into m0..m3. */
  private imul64(al: number, ah: number, bl: number, bh: number): void {
    this.mul64(al, ah, bl, bh);
    // Signed correction: subtract b<<64 if a < 0 and a<<64 if b < 0.
    let hl = this.m2 >>> 0,
      hh = this.m3 >>> 0;
    if (ah < 0) {
      const s = hl - (bl >>> 0);
      hh = (hh - (bh >>> 0) - (s < 0 ? 1 : 0)) >>> 0;
      hl = s >>> 0;
    }
    if (bh < 0) {
      const s = hl - (al >>> 0);
      hh = (hh - (ah >>> 0) - (s < 0 ? 1 : 0)) >>> 0;
      hl = s >>> 0;
    }
    this.m2 = hl | 0;
    this.m3 = hh | 0;
  }

  /** Flags after MUL/IMUL (CF=OF from overflow; SF ZF PF from the low result as Intel; AF 0). */
  private mulFlags(overflow: boolean, lo: number, hi: number, sz: number): void {
    this.setArith((overflow ? RFLAGS.CF | RFLAGS.OF : 0) | this.szp(lo, hi, sz));
  }

  // =============================================================================================
  // Helpers for registers by address size (string instructions, LOOP, JCXZ)
  // =============================================================================================

  private regA(n: number): number {
    const a = this.asz;
    if (a === 2) return this.rl[n] & 0xffff;
    if (a === 4) return this.rl[n] >>> 0;
    return this.rh[n] * TWO32 + (this.rl[n] >>> 0);
  }

  private addRegA(n: number, d: number): void {
    const a = this.asz;
    if (a === 2) this.rl[n] = (this.rl[n] & ~0xffff) | ((this.rl[n] + d) & 0xffff);
    else if (a === 4) {
      this.rl[n] = (this.rl[n] + d) | 0;
      this.rh[n] = 0;
    } else {
      const s = (this.rl[n] >>> 0) + d;
      this.rl[n] = s | 0;
      if (s >= TWO32) this.rh[n] = (this.rh[n] + 1) | 0;
      else if (s < 0) this.rh[n] = (this.rh[n] - 1) | 0;
    }
  }

  /** Whether the count register (by address size) is zero. */
  private countZero(): boolean {
    const a = this.asz;
    if (a === 2) return (this.rl[1] & 0xffff) === 0;
    if (a === 4) return this.rl[1] === 0;
    return (this.rl[1] | this.rh[1]) === 0;
  }

  /** Linear address of [seg:rSI] or [ES:rDI] for a string element. */
  private strLin(seg: number, n: number, size: number, write: boolean): number {
    const a = this.asz;
    const lo = a === 2 ? this.rl[n] & 0xffff : this.rl[n];
    const hi = a === 8 ? this.rh[n] : 0;
    return this.segLin(seg, lo, hi, size, write);
  }

  // =============================================================================================
  // Control transfer helpers
  // =============================================================================================

  /** Near jump to next + rel (rel a signed number). */
  private jumpRel(rel: number): void {
    const t = this.nextRip() + rel;
    this.setRipNear(t);
    // The branch itself is counted after it: the spin check's virtual time includes it.
    if (rel < 0 && this.idleSkip) this.backEdge(t, 1);
  }

  // ---- idle-loop detection ----
  /** Skip virtual time in loops that provably wait for an event (see backEdge). */
  idleSkip = true;
  private spinTarget = NaN;
  private spinCount = 0;
  private readonly spinSnap = new Int32Array(34);
  private spinSide = 0;
  /** The deadline of the current run() (time never skips past it). */
  private runDeadline = 0;

  /**
   * A taken backward branch. When a loop comes back to the same target with every register, the
   * flags and memory unchanged (no write, MMIO, port or TSC access in the iteration), its state is
   * a fixed point: on a machine with one CPU it can only leave the loop through an event, so
   * virtual time jumps to the run deadline (the next timer) instead of spinning there. Also called
   * by a translated block that loops onto its own start.
   */
  backEdge(target: number, uncounted = 0): void {
    if (target !== this.spinTarget) {
      this.spinTarget = target;
      this.spinCount = 0;
      return;
    }
    const c = ++this.spinCount;
    if (c < 64) return;
    const snap = this.spinSnap;
    if (c === 64) {
      for (let i = 0; i < 16; i++) {
        snap[i] = this.rl[i];
        snap[16 + i] = this.rh[i];
      }
      snap[32] = this.getFlags();
      this.spinSide = this.sideEffects;
      return;
    }
    this.spinCount = 0;
    if (this.sideEffects !== this.spinSide || snap[32] !== this.getFlags()) return;
    for (let i = 0; i < 16; i++) if (snap[i] !== this.rl[i] || snap[16 + i] !== this.rh[i]) return;
    const now = this.clockBase + (this.icount + uncounted - this.icountBase) * this.nsPerInsn + this.stallNs;
    if (this.runDeadline > now && this.runDeadline !== Infinity) {
      this.stallNs += this.runDeadline - now;
      this.counters.idleSkips++;
      this.eventCheck = true;
    }
  }

  /** Set RIP for a near transfer, truncating to the operand size and checking the target. */
  private setRipNear(t: number): void {
    if (this.mode64) {
      if (t < -140737488355328 || t >= 140737488355328) {
        // Wrap-around forms (rel crossing 2^64) are normalised first.
        if (t >= 18446603336221196288) t -= 18446744073709551616;
        if (t < -140737488355328 || t >= 140737488355328) this.gp(0);
      }
      this.rip = t;
      return;
    }
    t = this.osz === 2 ? t & 0xffff : t >>> 0;
    if (t > this.sLimit[CS]) this.gp(0);
    this.rip = t;
  }

  /** Set RIP from a 64-bit register-pair target (JMP/CALL indirect, RET). */
  private setRipAbs(lo: number, hi: number): void {
    if (this.mode64) {
      if ((hi + 0x8000) >>> 16 !== 0) this.gp(0);
      this.rip = hi * TWO32 + (lo >>> 0);
      return;
    }
    const t = this.osz === 2 ? lo & 0xffff : lo >>> 0;
    if (t > this.sLimit[CS]) this.gp(0);
    this.rip = t;
  }

  /** Stack operand size for PUSH/POP and near branches. */
  private stackOsz(): number {
    if (this.mode64) return this.p66 ? 2 : 8;
    return this.osz;
  }

  /** Push the return address for a near CALL. */
  private pushRip(size: number): void {
    const nr = this.nextRip();
    this.push(nr >>> 0, Math.floor(nr / TWO32) | 0, size);
  }

  // =============================================================================================
  // Diagnostics
  // =============================================================================================

  /** #UD for an invalid or unimplemented encoding, recorded with its bytes and address. */
  undef(): never {
    let bytes = '';
    try {
      const n = Math.min(Math.max(this.ilen, 1), 15);
      for (let k = 0; k < n; k++) {
        const lin = this.mode64 ? this.ripLin(this.ip0 + k) : (this.sBaseLo[CS] + this.ip0 + k) >>> 0;
        bytes += this.read8(lin).toString(16).padStart(2, '0') + ' ';
      }
    } catch {
      bytes += '?? ';
    }
    this.note(this.undefinedOps, `${bytes.trim()} @ ${this.formatRip(this.ip0)}`);
    return this.fault(Vector.UD);
  }

  formatRip(r: number): string {
    const lo = r >>> 0;
    const hi = Math.floor(r / TWO32) >>> 0;
    return '0x' + (hi ? hi.toString(16) + lo.toString(16).padStart(8, '0') : lo.toString(16));
  }

  /** x87/SSE/MMX opcodes: #NM when CR0.EM or CR0.TS says so, #UD otherwise (not implemented). */
  private fpuOrSse(x87: boolean): never {
    if (x87 && this.cr0 & (CR0.EM | CR0.TS)) this.fault(Vector.NM);
    if (!x87 && this.cr0 & CR0.TS && this.cr4 & CR4.OSFXSR && !(this.cr0 & CR0.EM)) this.fault(Vector.NM);
    return this.undef();
  }

  // =============================================================================================
  // The instruction step
  // =============================================================================================

  step(): void {
    // Straight-line code continues in the same fetch window without recomputing RIP's address.
    if (this.seq && this.fValid) this.iStart = this.fPos;
    else this.beginFetch();
    let b = this.fetch8();
    const m64 = this.mode64;
    let osz16 = false,
      asz16 = false;
    this.segOv = -1;
    this.rex = 0;
    this.rep = 0;
    this.lock = false;
    // Prefixes (SDM Vol. 2A 2.1.1); a REX must come last or it is ignored.
    for (;;) {
      switch (b) {
        case 0x66:
          osz16 = true;
          this.rex = 0;
          b = this.fetch8();
          continue;
        case 0x67:
          asz16 = true;
          this.rex = 0;
          b = this.fetch8();
          continue;
        case 0x26:
        case 0x2e:
        case 0x36:
        case 0x3e:
          // In 64-bit mode ES/CS/SS/DS overrides are ignored (null prefixes).
          if (!m64) this.segOv = (b >> 3) & 3;
          this.rex = 0;
          b = this.fetch8();
          continue;
        case 0x64:
        case 0x65:
          this.segOv = b - 0x60;
          this.rex = 0;
          b = this.fetch8();
          continue;
        case 0xf0:
          this.lock = true;
          this.rex = 0;
          b = this.fetch8();
          continue;
        case 0xf2:
        case 0xf3:
          this.rep = b;
          this.rex = 0;
          b = this.fetch8();
          continue;
        default:
          if (m64 && (b & 0xf0) === 0x40) {
            this.rex = b;
            b = this.fetch8();
            continue;
          }
      }
      break;
    }
    if (this.fPos - this.iStart > 15) this.gp(0);
    this.p66 = osz16;
    if (m64) {
      this.osz = this.rex & 8 ? 8 : osz16 ? 2 : 4;
      this.asz = asz16 ? 4 : 8;
    } else {
      const d = this.cs32;
      this.osz = d !== osz16 ? 4 : 2;
      this.asz = d !== asz16 ? 4 : 2;
    }
    if (this.lock && (b === 0x0f ? false : LOCK1[b] === 0)) this.undef();
    this.exec1(b);
  }

  private opAlu(b: number): void {
    const osz = this.osz;
    const op = b >> 3;
    const form = b & 7;
    const sz = form & 1 ? osz : 1;
    const rexp = this.rex !== 0;
    if (form >= 4) {
      let imm: number,
        immh = 0;
      if (sz === 1) imm = this.fetch8();
      else {
        imm = this.fetchIz();
        immh = this.hi;
      }
      const a = this.getReg(0, sz, rexp);
      const ah = this.hi;
      const r = this.alu(op, sz, a, ah, imm, immh);
      if (op !== 7) this.setReg(0, sz, rexp, r, this.hi);
      return;
    }
    this.modrm();
    if (form < 2) {
      const s = this.getReg(this.reg, sz, rexp);
      const sh = this.hi;
      if (this.mod === 3) {
        const a = this.getReg(this.rm, sz, rexp);
        const r = this.alu(op, sz, a, this.hi, s, sh);
        if (op !== 7) this.setReg(this.rm, sz, rexp, r, this.hi);
      } else if (op === 7) {
        const a = this.readN(this.memLin(sz, false), sz);
        this.alu(op, sz, a, this.hi, s, sh);
      } else {
        const lin = this.memLin(sz, true);
        const a = this.readN(lin, sz);
        const r = this.alu(op, sz, a, this.hi, s, sh);
        this.writeN(lin, sz, r, this.hi);
      }
    } else {
      const s = this.readE(sz);
      const sh = this.hi;
      const a = this.getReg(this.reg, sz, rexp);
      const r = this.alu(op, sz, a, this.hi, s, sh);
      if (op !== 7) this.setReg(this.reg, sz, rexp, r, this.hi);
    }
    return;
  }

  private opPush(b: number): void {
    const n = (b & 7) | ((this.rex & 1) << 3);
    const s = this.stackOsz();
    const v = this.getReg(n, s, true);
    this.push(v, this.hi, s);
    return;
  }

  private opPop(b: number): void {
    const n = (b & 7) | ((this.rex & 1) << 3);
    const s = this.stackOsz();
    const v = this.pop(s);
    this.setReg(n, s, true, v, this.hi);
    return;
  }

  private opJcc8(b: number): void {
    const rel = (this.fetch8() << 24) >> 24;
    if (this.cond(b & 15)) this.jumpRel(rel);
    else this.rip = this.nextRip();
    return;
  }

  private opGroup1(b: number): void {
    const osz = this.osz;
    const m64 = this.mode64;
    if (b === 0x82 && m64) this.undef();
    this.modrm();
    const sz = b & 1 ? osz : 1;
    let imm: number,
      immh = 0;
    if (b === 0x81) {
      imm = this.fetchIz();
      immh = this.hi;
    } else if (b === 0x83) {
      imm = (this.fetch8() << 24) >> 24;
      immh = imm >> 31;
      if (sz !== 4 && sz !== 8) imm &= MASK[sz];
    } else imm = this.fetch8();
    const op = this.reg & 7;
    if (this.lock && op === 7) this.undef();
    if (op === 7) {
      const a = this.readE(sz);
      this.alu(7, sz, a, this.hi, imm, immh);
      return;
    }
    const a = this.rmwRead(sz);
    const r = this.alu(op, sz, a, this.hi, imm, immh);
    this.rmwWrite(sz, r, this.hi);
    return;
  }

  private opTest(b: number): void {
    const osz = this.osz;
    this.modrm();
    const sz = b & 1 ? osz : 1;
    const s = this.getReg(this.reg, sz, this.rex !== 0);
    const sh = this.hi;
    const a = this.readE(sz);
    this.alu(4, sz, a, this.hi, s, sh);
    return;
  }

  private opMovStore(b: number): void {
    const osz = this.osz;
    this.modrm();
    const sz = b & 1 ? osz : 1;
    const v = this.getReg(this.reg, sz, this.rex !== 0);
    this.writeE(sz, v, this.hi);
    return;
  }

  private opMovLoad(b: number): void {
    const osz = this.osz;
    this.modrm();
    const sz = b & 1 ? osz : 1;
    const v = this.readE(sz);
    this.setReg(this.reg, sz, this.rex !== 0, v, this.hi);
    return;
  }

  private opLea(_b: number): void {
    const osz = this.osz;
    this.modrm();
    if (this.mod === 3) this.undef();
    this.calcEa();
    if (osz === 8) this.setReg(this.reg, 8, true, this.eaLo, this.eaHi);
    else this.setReg(this.reg, osz, true, osz === 2 ? this.eaLo & 0xffff : this.eaLo, 0);
    return;
  }

  private opMovImm(b: number): void {
    const osz = this.osz;
    const n = (b & 7) | ((this.rex & 1) << 3);
    if (osz === 8) {
      const lo = this.fetch32();
      this.setReg(n, 8, true, lo, this.fetch32());
    } else this.setReg(n, osz, true, osz === 2 ? this.fetch16() : this.fetch32(), 0);
    return;
  }

  private opShift(b: number): void {
    const osz = this.osz;
    this.modrm();
    const sz = b & 1 ? osz : 1;
    const cnt = b < 0xd0 ? this.fetch8() : b < 0xd2 ? 1 : this.rl[1] & 0xff;
    const a = this.rmwRead(sz);
    const r = this.shift(this.reg & 7, sz, a, this.hi, cnt);
    this.rmwWrite(sz, r, this.hi);
    return;
  }

  private opCallRel(_b: number): void {
    const osz = this.osz;
    const m64 = this.mode64;
    const s = m64 ? 8 : osz;
    const rel = s === 2 ? (this.fetch16() << 16) >> 16 : this.fetch32();
    const target = this.nextRip() + rel;
    const save = this.rl[4],
      saveh = this.rh[4];
    this.pushRip(s);
    try {
      this.setRipNear(target);
    } catch (e) {
      this.rl[4] = save;
      this.rh[4] = saveh;
      throw e;
    }
    return;
  }

  private opRet(b: number): void {
    const m64 = this.mode64;
    const imm = b === 0xc2 ? this.fetch16() : 0;
    const s = this.stackOsz();
    const save = this.rl[4],
      saveh = this.rh[4];
    const lo = this.pop(m64 ? (s === 2 ? 2 : 8) : s);
    const hi = this.hi;
    try {
      if (m64) {
        if (s === 2) this.setRipNear(lo & 0xffff);
        else this.setRipAbs(lo, hi);
      } else this.setRipAbs(lo, 0);
    } catch (e) {
      this.rl[4] = save;
      this.rh[4] = saveh;
      throw e;
    }
    this.addSp(imm);
    return;
  }

  private opJcc32(b: number): void {
    const osz = this.osz;
    const rel = !this.mode64 && osz === 2 ? (this.fetch16() << 16) >> 16 : this.fetch32();
    if (this.cond(b & 15)) this.jumpRel(rel);
    else this.rip = this.nextRip();
    return;
  }

  private opMovx(b: number): void {
    const osz = this.osz;
    this.modrm();
    const ssz = b & 1 ? 2 : 1;
    let v = this.readE(ssz);
    if (b >= 0xbe) v = ssz === 1 ? (v << 24) >> 24 : (v << 16) >> 16;
    this.setReg(this.reg, osz, true, osz === 2 ? v & 0xffff : v, v >> 31);
    return;
  }

  private opCmov(b: number): void {
    const osz = this.osz;
    this.modrm();
    const v = this.readE(osz);
    const vh = this.hi;
    if (this.cond(b & 15)) this.setReg(this.reg, osz, true, v, vh);
    else if (osz === 4) this.rh[this.reg] = 0; // a 32-bit CMOV always zero-extends
    return;
  }

  /** One-byte opcode map (SDM Vol. 2D Table A-2). */
  private exec1(b: number): void {
    const osz = this.osz;
    const m64 = this.mode64;
    switch (b) {
      // ---- ALU forms: op Eb,Gb / Ev,Gv / Gb,Eb / Gv,Ev / AL,Ib / eAX,Iz ----
      case 0x00:
      case 0x01:
      case 0x02:
      case 0x03:
      case 0x04:
      case 0x05:
      case 0x08:
      case 0x09:
      case 0x0a:
      case 0x0b:
      case 0x0c:
      case 0x0d:
      case 0x10:
      case 0x11:
      case 0x12:
      case 0x13:
      case 0x14:
      case 0x15:
      case 0x18:
      case 0x19:
      case 0x1a:
      case 0x1b:
      case 0x1c:
      case 0x1d:
      case 0x20:
      case 0x21:
      case 0x22:
      case 0x23:
      case 0x24:
      case 0x25:
      case 0x28:
      case 0x29:
      case 0x2a:
      case 0x2b:
      case 0x2c:
      case 0x2d:
      case 0x30:
      case 0x31:
      case 0x32:
      case 0x33:
      case 0x34:
      case 0x35:
      case 0x38:
      case 0x39:
      case 0x3a:
      case 0x3b:
      case 0x3c:
      case 0x3d: {
        this.opAlu(b);
        return;
      }
      case 0x06:
      case 0x0e:
      case 0x16:
      case 0x1e:
        if (m64) this.undef();
        this.push(this.sSel[b >> 3], 0, osz);
        return;
      case 0x07:
      case 0x17:
      case 0x1f: {
        if (m64) this.undef();
        const save = this.rl[4];
        const v = this.pop(osz) & 0xffff;
        try {
          this.loadSeg(b >> 3, v);
        } catch (e) {
          this.rl[4] = save;
          throw e;
        }
        if (b === 0x17) {
          this.shadow = 1;
          this.shadowBySti = false;
          this.eventCheck = true;
          if (this.fl & RFLAGS.TF) this.movSsNow = true;
        }
        return;
      }
      case 0x0f:
        this.exec2();
        return;
      case 0x27:
      case 0x2f:
      case 0x37:
      case 0x3f:
        if (m64) this.undef();
        this.bcd(b);
        return;
      case 0x40:
      case 0x41:
      case 0x42:
      case 0x43:
      case 0x44:
      case 0x45:
      case 0x46:
      case 0x47:
      case 0x48:
      case 0x49:
      case 0x4a:
      case 0x4b:
      case 0x4c:
      case 0x4d:
      case 0x4e:
      case 0x4f: {
        // INC/DEC r16/r32 (only outside 64-bit mode: there these bytes are REX).
        const n = b & 7;
        const r = this.incDec(osz, this.getReg(n, osz, false), 0, b >= 0x48);
        this.setReg(n, osz, false, r, 0);
        return;
      }
      case 0x50:
      case 0x51:
      case 0x52:
      case 0x53:
      case 0x54:
      case 0x55:
      case 0x56:
      case 0x57: {
        this.opPush(b);
        return;
      }
      case 0x58:
      case 0x59:
      case 0x5a:
      case 0x5b:
      case 0x5c:
      case 0x5d:
      case 0x5e:
      case 0x5f: {
        this.opPop(b);
        return;
      }
      case 0x60: {
        if (m64) this.undef();
        const sp = this.getReg(4, osz, false);
        const save = this.rl[4];
        try {
          for (let n = 0; n < 8; n++) this.push(n === 4 ? sp : this.getReg(n, osz, false), 0, osz);
        } catch (e) {
          this.rl[4] = save;
          throw e;
        }
        return;
      }
      case 0x61: {
        if (m64) this.undef();
        const save = this.rl[4];
        const vals = this.popaBuf;
        try {
          for (let n = 7; n >= 0; n--) vals[n] = this.pop(osz);
        } catch (e) {
          this.rl[4] = save;
          throw e;
        }
        for (let n = 7; n >= 0; n--) if (n !== 4) this.setReg(n, osz, false, vals[n], 0);
        return;
      }
      case 0x62: {
        // BOUND (EVEX in 64-bit mode: not supported).
        if (m64) this.undef();
        this.modrm();
        if (this.mod === 3) this.undef();
        const idx = this.getReg(this.reg, osz, false);
        const lo = this.readN(this.memLin(osz, false), osz);
        const hi = this.readN(this.memLinAt(osz, osz, false), osz);
        const sx = (v: number): number => (osz === 2 ? (v << 16) >> 16 : v | 0);
        if (sx(idx) < sx(lo) || sx(idx) > sx(hi)) this.fault(Vector.BR);
        return;
      }
      case 0x63: {
        this.modrm();
        if (m64) {
          // MOVSXD
          const v = this.readE(4);
          if (osz === 8) this.setReg(this.reg, 8, true, v, v >> 31);
          else this.setReg(this.reg, osz, true, v, 0);
          return;
        }
        // ARPL (protected mode only)
        if (!this.pe || this.v86) this.undef();
        const d = this.rmwRead(2);
        const s = this.getReg(this.reg, 2, false);
        this.flushFlags();
        if ((d & 3) < (s & 3)) {
          this.rmwWrite(2, (d & ~3) | (s & 3), 0);
          this.fl |= RFLAGS.ZF;
        } else this.fl &= ~RFLAGS.ZF;
        return;
      }
      case 0x68: {
        const s = this.stackOsz();
        const v = s === 2 ? this.fetch16() : this.fetch32();
        this.push(v, v >> 31, s);
        return;
      }
      case 0x6a: {
        const v = (this.fetch8() << 24) >> 24;
        this.push(v, v >> 31, this.stackOsz());
        return;
      }
      case 0x69:
      case 0x6b: {
        this.modrm();
        let imm: number, immh: number;
        if (b === 0x6b) {
          imm = (this.fetch8() << 24) >> 24;
          immh = imm >> 31;
        } else {
          imm = osz === 2 ? (this.fetch16() << 16) >> 16 : this.fetch32();
          immh = imm >> 31;
        }
        const a = this.readE(osz);
        this.imulTrunc(this.reg, osz, a, this.hi, imm, immh);
        return;
      }
      case 0x6c:
      case 0x6d:
      case 0x6e:
      case 0x6f:
        this.stringIo(b);
        return;
      case 0x70:
      case 0x71:
      case 0x72:
      case 0x73:
      case 0x74:
      case 0x75:
      case 0x76:
      case 0x77:
      case 0x78:
      case 0x79:
      case 0x7a:
      case 0x7b:
      case 0x7c:
      case 0x7d:
      case 0x7e:
      case 0x7f: {
        this.opJcc8(b);
        return;
      }
      case 0x80:
      case 0x81:
      case 0x82:
      case 0x83: {
        this.opGroup1(b);
        return;
      }
      case 0x84:
      case 0x85: {
        this.opTest(b);
        return;
      }
      case 0x86:
      case 0x87: {
        this.modrm();
        const sz = b & 1 ? osz : 1;
        const rexp = this.rex !== 0;
        const s = this.getReg(this.reg, sz, rexp);
        const sh = this.hi;
        const a = this.rmwRead(sz);
        const ah = this.hi;
        this.rmwWrite(sz, s, sh);
        this.setReg(this.reg, sz, rexp, a, ah);
        return;
      }
      case 0x88:
      case 0x89: {
        this.opMovStore(b);
        return;
      }
      case 0x8a:
      case 0x8b: {
        this.opMovLoad(b);
        return;
      }
      case 0x8c: {
        this.modrm();
        const sr = this.reg & 7;
        if (sr > 5) this.undef();
        const v = this.sSel[sr];
        if (this.mod === 3) this.setReg(this.rm, osz === 2 ? 2 : osz, true, v, 0);
        else this.writeN(this.memLin(2, true), 2, v, 0);
        return;
      }
      case 0x8d: {
        this.opLea(b);
        return;
      }
      case 0x8e: {
        this.modrm();
        const sr = this.reg & 7;
        if (sr === CS || sr > 5) this.undef();
        const v = this.readE(2);
        this.loadSeg(sr, v);
        if (sr === SS) {
          this.shadow = 1;
          this.shadowBySti = false;
          this.eventCheck = true;
          if (this.fl & RFLAGS.TF) this.movSsNow = true;
        }
        return;
      }
      case 0x8f: {
        this.modrm();
        if ((this.reg & 7) !== 0) this.undef();
        const s = this.stackOsz();
        const save = this.rl[4],
          saveh = this.rh[4];
        const v = this.pop(s);
        const vh = this.hi;
        if (this.mod === 3) {
          this.setReg(this.rm, s, true, v, vh);
          return;
        }
        // The address is computed with the incremented RSP (SDM POP).
        try {
          this.writeN(this.memLin(s, true), s, v, vh);
        } catch (e) {
          this.rl[4] = save;
          this.rh[4] = saveh;
          throw e;
        }
        return;
      }
      case 0x90:
        if (this.rex & 1) {
          this.xchgAcc(8);
          return;
        }
        // NOP; F3 90 is PAUSE: a spin-wait hint that takes `pauseNs` of virtual time.
        if (this.rep === 0xf3 && this.pauseNs > 0) {
          this.stallNs += this.pauseNs;
          this.eventCheck = true;
        }
        return;
      case 0x91:
      case 0x92:
      case 0x93:
      case 0x94:
      case 0x95:
      case 0x96:
      case 0x97:
        this.xchgAcc((b & 7) | ((this.rex & 1) << 3));
        return;
      case 0x98:
        if (osz === 2) this.setReg(0, 2, false, (this.rl[0] << 24) >> 24, 0);
        else if (osz === 4) this.setReg(0, 4, false, (this.rl[0] << 16) >> 16, 0);
        else this.setReg(0, 8, false, this.rl[0], this.rl[0] >> 31);
        return;
      case 0x99:
        if (osz === 2) this.setReg(2, 2, false, (this.rl[0] << 16) >> 31, 0);
        else if (osz === 4) this.setReg(2, 4, false, this.rl[0] >> 31, 0);
        else this.setReg(2, 8, false, this.rh[0] >> 31, this.rh[0] >> 31);
        return;
      case 0x9a: {
        if (m64) this.undef();
        const off = osz === 2 ? this.fetch16() : this.fetch32();
        const sel = this.fetch16();
        const nr = this.nextRip();
        this.farCall(sel, off, 0, osz, nr, 0);
        return;
      }
      case 0x9b:
        // WAIT/FWAIT: #NM when CR0.MP and CR0.TS; otherwise a no-op (no x87 state to wait for).
        if ((this.cr0 & (CR0.MP | CR0.TS)) === (CR0.MP | CR0.TS)) this.fault(Vector.NM);
        return;
      case 0x9c: {
        if (this.v86 && ((this.fl >> 12) & 3) < 3) this.gp(0);
        const s = this.stackOsz();
        // VM and RF are cleared in the pushed image (SDM PUSHF).
        this.push(this.getFlags() & 0xfcffff, 0, s);
        return;
      }
      case 0x9d:
        this.popf();
        return;
      case 0x9e:
        this.flushFlags();
        this.fl = (this.fl & ~0xd5) | ((this.rl[0] >> 8) & 0xd5) | 2;
        return;
      case 0x9f:
        this.rl[0] = (this.rl[0] & ~0xff00) | (((this.getFlags() & 0xd7) | 2) << 8);
        return;
      case 0xa0:
      case 0xa1:
      case 0xa2:
      case 0xa3: {
        // MOV with a moffs operand (address-size wide).
        const sz = b & 1 ? osz : 1;
        let lo: number,
          hi = 0;
        if (this.asz === 8) {
          lo = this.fetch32();
          hi = this.fetch32();
        } else lo = this.asz === 4 ? this.fetch32() : this.fetch16();
        const seg = this.segOv >= 0 ? this.segOv : DS;
        if (b < 0xa2) {
          const v = this.readN(this.segLin(seg, lo, hi, sz, false), sz);
          this.setReg(0, sz, false, v, this.hi);
        } else {
          const v = this.getReg(0, sz, false);
          this.writeN(this.segLin(seg, lo, hi, sz, true), sz, v, this.hi);
        }
        return;
      }
      case 0xa4:
      case 0xa5:
      case 0xa6:
      case 0xa7:
      case 0xaa:
      case 0xab:
      case 0xac:
      case 0xad:
      case 0xae:
      case 0xaf:
        this.stringOp(b);
        return;
      case 0xa8:
      case 0xa9: {
        const sz = b & 1 ? osz : 1;
        let imm: number,
          immh = 0;
        if (sz === 1) imm = this.fetch8();
        else {
          imm = this.fetchIz();
          immh = this.hi;
        }
        const a = this.getReg(0, sz, false);
        this.alu(4, sz, a, this.hi, imm, immh);
        return;
      }
      case 0xb0:
      case 0xb1:
      case 0xb2:
      case 0xb3:
      case 0xb4:
      case 0xb5:
      case 0xb6:
      case 0xb7:
        this.setReg((b & 7) | ((this.rex & 1) << 3), 1, this.rex !== 0, this.fetch8(), 0);
        return;
      case 0xb8:
      case 0xb9:
      case 0xba:
      case 0xbb:
      case 0xbc:
      case 0xbd:
      case 0xbe:
      case 0xbf: {
        this.opMovImm(b);
        return;
      }
      case 0xc0:
      case 0xc1:
      case 0xd0:
      case 0xd1:
      case 0xd2:
      case 0xd3: {
        this.opShift(b);
        return;
      }
      case 0xc2:
      case 0xc3: {
        this.opRet(b);
        return;
      }
      case 0xc4:
      case 0xc5: {
        // LES/LDS; VEX prefixes in 64-bit mode (not implemented: no AVX advertised).
        if (m64) this.undef();
        this.modrm();
        if (this.mod === 3) this.undef();
        this.loadFarPointer(b === 0xc4 ? ES : DS);
        return;
      }
      case 0xc6:
      case 0xc7: {
        this.modrm();
        if ((this.reg & 7) !== 0) this.undef();
        const sz = b & 1 ? osz : 1;
        let imm: number,
          immh = 0;
        if (sz === 1) imm = this.fetch8();
        else {
          imm = this.fetchIz();
          immh = this.hi;
        }
        this.writeE(sz, imm, immh);
        return;
      }
      case 0xc8:
        this.enter();
        return;
      case 0xc9: {
        // LEAVE: RSP = RBP, then pop RBP.
        const s = this.stackOsz();
        const save = this.rl[4],
          saveh = this.rh[4];
        if (m64) {
          this.rl[4] = this.rl[5];
          this.rh[4] = this.rh[5];
        } else if (this.ss32) this.rl[4] = this.rl[5];
        else this.rl[4] = (this.rl[4] & ~0xffff) | (this.rl[5] & 0xffff);
        try {
          const v = this.pop(s);
          this.setReg(5, s, true, v, this.hi);
        } catch (e) {
          this.rl[4] = save;
          this.rh[4] = saveh;
          throw e;
        }
        return;
      }
      case 0xca:
      case 0xcb: {
        const imm = b === 0xca ? this.fetch16() : 0;
        this.farReturn(osz, imm);
        return;
      }
      case 0xcc:
        this.rip = this.nextRip();
        this.softInt(Vector.BP, EventType.SoftwareException);
        return;
      case 0xcd: {
        const v = this.fetch8();
        this.rip = this.nextRip();
        if (this.v86 && ((this.fl >> 12) & 3) < 3) {
          this.rip = this.ip0;
          this.gp(0);
        }
        this.softInt(v, EventType.SoftwareInterrupt);
        return;
      }
      case 0xce:
        if (m64) this.undef();
        this.rip = this.nextRip();
        if (this.getOF()) this.softInt(Vector.OF, EventType.SoftwareException);
        return;
      case 0xcf:
        this.iret(osz);
        return;
      case 0xd4: {
        if (m64) this.undef();
        const base = this.fetch8();
        if (base === 0) this.fault(Vector.DE);
        const al = this.rl[0] & 0xff;
        const r = al % base;
        this.rl[0] = (this.rl[0] & ~0xffff) | (Math.floor(al / base) << 8) | r;
        this.setArith(this.szp(r, 0, 1));
        return;
      }
      case 0xd5: {
        if (m64) this.undef();
        const base = this.fetch8();
        const r = ((this.rl[0] & 0xff) + ((this.rl[0] >> 8) & 0xff) * base) & 0xff;
        this.rl[0] = (this.rl[0] & ~0xffff) | r;
        this.setArith(this.szp(r, 0, 1));
        return;
      }
      case 0xd6:
        // SALC (undocumented; reserved in 64-bit mode).
        if (m64) this.undef();
        this.rl[0] = (this.rl[0] & ~0xff) | (this.getCF() ? 0xff : 0);
        return;
      case 0xd7: {
        const seg = this.segOv >= 0 ? this.segOv : DS;
        const a = this.asz;
        let lo: number,
          hi = 0;
        if (a === 8) {
          const s = (this.rl[3] >>> 0) + (this.rl[0] & 0xff);
          lo = s | 0;
          hi = (this.rh[3] + (s >= TWO32 ? 1 : 0)) | 0;
        } else
          lo = a === 4 ? (this.rl[3] + (this.rl[0] & 0xff)) | 0 : (this.rl[3] + (this.rl[0] & 0xff)) & 0xffff;
        const v = this.read8(this.segLin(seg, lo, hi, 1, false));
        this.rl[0] = (this.rl[0] & ~0xff) | v;
        return;
      }
      case 0xd8:
      case 0xd9:
      case 0xda:
      case 0xdb:
      case 0xdc:
      case 0xdd:
      case 0xde:
      case 0xdf:
        this.modrm();
        this.fpuOrSse(true);
        return;
      case 0xe0:
      case 0xe1:
      case 0xe2: {
        const rel = (this.fetch8() << 24) >> 24;
        this.addRegA(1, -1);
        let take = !this.countZero();
        if (b === 0xe0) take = take && this.getZF() === 0;
        else if (b === 0xe1) take = take && this.getZF() !== 0;
        if (take) this.jumpRel(rel);
        else this.rip = this.nextRip();
        return;
      }
      case 0xe3: {
        const rel = (this.fetch8() << 24) >> 24;
        if (this.countZero()) this.jumpRel(rel);
        else this.rip = this.nextRip();
        return;
      }
      case 0xe4:
      case 0xe5:
      case 0xe6:
      case 0xe7: {
        const port = this.fetch8();
        this.portIo(port, b & 1 ? (osz === 2 ? 2 : 4) : 1, b < 0xe6, true);
        return;
      }
      case 0xec:
      case 0xed:
      case 0xee:
      case 0xef:
        this.portIo(this.rl[2] & 0xffff, b & 1 ? (osz === 2 ? 2 : 4) : 1, b < 0xee, false);
        return;
      case 0xe8: {
        this.opCallRel(b);
        return;
      }
      case 0xe9: {
        const rel = !m64 && osz === 2 ? (this.fetch16() << 16) >> 16 : this.fetch32();
        this.jumpRel(rel);
        return;
      }
      case 0xea: {
        if (m64) this.undef();
        const off = osz === 2 ? this.fetch16() : this.fetch32();
        const sel = this.fetch16();
        this.farJump(sel, off, 0);
        return;
      }
      case 0xeb: {
        const rel = (this.fetch8() << 24) >> 24;
        this.jumpRel(rel);
        return;
      }
      case 0xf1:
        // INT1 / ICEBP: a privileged software exception (no DPL check).
        this.rip = this.nextRip();
        this.raiseException(Vector.DB, -1, EventType.PrivilegedSoftwareException, this.ilen);
        this.invalidateFetch();
        this.eventCheck = true;
        return;
      case 0xf4:
        if (this.cpl !== 0) this.gp(0);
        if (this.hooks.hlt !== null && this.hooks.hlt(this.ilen)) return this.took();
        this.rip = this.nextRip();
        this.halted = true;
        this.eventCheck = true;
        return;
      case 0xf5:
        this.setCF(this.getCF() ^ 1);
        return;
      case 0xf6:
      case 0xf7:
        this.group3(b & 1 ? osz : 1);
        return;
      case 0xf8:
        this.setCF(0);
        return;
      case 0xf9:
        this.setCF(1);
        return;
      case 0xfa:
        if (this.pe && this.cpl > ((this.fl >> 12) & 3)) this.gp(0);
        this.fl &= ~RFLAGS.IF;
        return;
      case 0xfb:
        if (this.pe && this.cpl > ((this.fl >> 12) & 3)) this.gp(0);
        if (!(this.fl & RFLAGS.IF)) {
          this.fl |= RFLAGS.IF;
          this.shadow = 1;
          this.shadowBySti = true;
        }
        this.eventCheck = true;
        return;
      case 0xfc:
        this.fl &= ~RFLAGS.DF;
        return;
      case 0xfd:
        this.fl |= RFLAGS.DF;
        return;
      case 0xfe: {
        this.modrm();
        const op = this.reg & 7;
        if (op > 1) this.undef();
        const a = this.rmwRead(1);
        this.rmwWrite(1, this.incDec(1, a, 0, op === 1), 0);
        return;
      }
      case 0xff:
        this.group5();
        return;
      default:
        this.undef();
    }
  }

  private readonly popaBuf = new Int32Array(8);

  /**
   * A hook took the instruction over: leave RIP as the hook set it. When that is the next
   * instruction (an exit handler advanced RIP by the instruction's length), fetching goes on from
   * the window as after any instruction; anything else is a transfer.
   */
  private took(): void {
    this.jmp = true;
    this.seq = this._rip === this.nextRip();
  }

  private xchgAcc(n: number): void {
    const osz = this.osz;
    const a = this.getReg(0, osz, true);
    const ah = this.hi;
    const v = this.getReg(n, osz, true);
    this.setReg(0, osz, true, v, this.hi);
    this.setReg(n, osz, true, a, ah);
  }

  /** Two- and three-operand IMUL: dst = truncate(a * b), CF=OF when truncation lost bits. */
  private imulTrunc(dst: number, sz: number, a: number, ah: number, b: number, bh: number): void {
    if (sz === 8) {
      this.imul64(a, ah, b, bh);
      const lo = this.m0,
        hi = this.m1;
      const ov = !(this.m2 === hi >> 31 && this.m3 === hi >> 31);
      this.setReg(dst, 8, true, lo, hi);
      this.mulFlags(ov, lo, hi, 8);
      return;
    }
    if (sz === 4) {
      const lo = Math.imul(a, b);
      const full = (a | 0) * (b | 0);
      const ov = full !== lo;
      this.setReg(dst, 4, true, lo, 0);
      this.mulFlags(ov, lo, 0, 4);
      return;
    }
    const p = ((a << 16) >> 16) * ((b << 16) >> 16);
    const lo = p & 0xffff;
    this.setReg(dst, 2, true, lo, 0);
    this.mulFlags(p !== (lo << 16) >> 16, lo, 0, 2);
  }

  /** Group 3: TEST NOT NEG MUL IMUL DIV IDIV. */
  private group3(sz: number): void {
    this.modrm();
    const op = this.reg & 7;
    if (this.lock && op !== 2 && op !== 3) this.undef();
    if (op === 0 || op === 1) {
      let imm: number,
        immh = 0;
      if (sz === 1) imm = this.fetch8();
      else {
        imm = this.fetchIz();
        immh = this.hi;
      }
      const a = this.readE(sz);
      this.alu(4, sz, a, this.hi, imm, immh);
      return;
    }
    if (op === 2) {
      const a = this.rmwRead(sz);
      this.rmwWrite(sz, ~a & MASK[sz], ~this.hi);
      return;
    }
    if (op === 3) {
      const a = this.rmwRead(sz);
      const r = this.alu(5, sz, 0, 0, a, sz === 8 ? this.hi : 0);
      this.rmwWrite(sz, r, this.hi);
      return;
    }
    const s = this.readE(sz);
    const sh = this.hi;
    switch (op) {
      case 4: // MUL
        if (sz === 1) {
          const p = (this.rl[0] & 0xff) * s;
          this.rl[0] = (this.rl[0] & ~0xffff) | p;
          this.mulFlags(p > 0xff, p & 0xff, 0, 1);
        } else if (sz === 2) {
          const p = (this.rl[0] & 0xffff) * s;
          this.setReg(0, 2, false, p & 0xffff, 0);
          this.setReg(2, 2, false, p >>> 16, 0);
          this.mulFlags(p > 0xffff, p & 0xffff, 0, 2);
        } else if (sz === 4) {
          const lo = Math.imul(this.rl[0], s);
          const hi = mulHi32(this.rl[0], s) | 0;
          this.setReg(0, 4, false, lo, 0);
          this.setReg(2, 4, false, hi, 0);
          this.mulFlags(hi !== 0, lo, 0, 4);
        } else {
          this.mul64(this.rl[0], this.rh[0], s, sh);
          this.rl[0] = this.m0;
          this.rh[0] = this.m1;
          this.rl[2] = this.m2;
          this.rh[2] = this.m3;
          this.mulFlags((this.m2 | this.m3) !== 0, this.m0, this.m1, 8);
        }
        return;
      case 5: // IMUL one operand
        if (sz === 1) {
          const p = ((this.rl[0] << 24) >> 24) * ((s << 24) >> 24);
          this.rl[0] = (this.rl[0] & ~0xffff) | (p & 0xffff);
          this.mulFlags(p !== (p << 24) >> 24, p & 0xff, 0, 1);
        } else if (sz === 2) {
          const p = ((this.rl[0] << 16) >> 16) * ((s << 16) >> 16);
          this.setReg(0, 2, false, p & 0xffff, 0);
          this.setReg(2, 2, false, (p >> 16) & 0xffff, 0);
          this.mulFlags(p !== (p << 16) >> 16, p & 0xffff, 0, 2);
        } else if (sz === 4) {
          const a = this.rl[0];
          this.imul64(a, a >> 31, s, s >> 31);
          this.setReg(0, 4, false, this.m0, 0);
          this.setReg(2, 4, false, this.m1, 0);
          this.mulFlags(this.m1 !== this.m0 >> 31, this.m0, 0, 4);
        } else {
          this.imul64(this.rl[0], this.rh[0], s, sh);
          const ov = !(this.m2 === this.m1 >> 31 && this.m3 === this.m1 >> 31);
          this.rl[0] = this.m0;
          this.rh[0] = this.m1;
          this.rl[2] = this.m2;
          this.rh[2] = this.m3;
          this.mulFlags(ov, this.m0, this.m1, 8);
        }
        return;
      case 6:
        this.div(sz, s, sh, false);
        return;
      default:
        this.div(sz, s, sh, true);
    }
  }

  /** DIV/IDIV (SDM Vol. 2A): #DE on a zero divisor or a quotient that does not fit. */
  private div(sz: number, s: number, sh: number, signed: boolean): void {
    if (sz === 1) {
      const dvd = this.rl[0] & 0xffff;
      if (s === 0) this.fault(Vector.DE);
      let q: number, r: number;
      if (signed) {
        const n = (dvd << 16) >> 16,
          d = (s << 24) >> 24;
        q = Math.trunc(n / d);
        r = n - q * d;
        if (q > 127 || q < -128) this.fault(Vector.DE);
      } else {
        q = Math.floor(dvd / s);
        r = dvd - q * s;
        if (q > 0xff) this.fault(Vector.DE);
      }
      this.rl[0] = (this.rl[0] & ~0xffff) | ((r & 0xff) << 8) | (q & 0xff);
      return;
    }
    if (sz === 2) {
      const dvd = ((this.rl[2] & 0xffff) << 16) | (this.rl[0] & 0xffff);
      if (s === 0) this.fault(Vector.DE);
      let q: number, r: number;
      if (signed) {
        const d = (s << 16) >> 16;
        q = Math.trunc(dvd / d);
        r = dvd - q * d;
        if (q > 32767 || q < -32768) this.fault(Vector.DE);
      } else {
        const u = dvd >>> 0;
        q = Math.floor(u / s);
        r = u - q * s;
        if (q > 0xffff) this.fault(Vector.DE);
      }
      this.setReg(0, 2, false, q & 0xffff, 0);
      this.setReg(2, 2, false, r & 0xffff, 0);
      return;
    }
    if (sz === 4) {
      if (s === 0) this.fault(Vector.DE);
      let q: number, r: number;
      if (!signed && this.rl[2] === 0) {
        const u = this.rl[0] >>> 0,
          d = s >>> 0;
        q = Math.floor(u / d);
        r = u - q * d;
      } else if (signed && this.rl[2] === this.rl[0] >> 31) {
        const n = this.rl[0],
          d = s | 0;
        if (n === -2147483648 && d === -1) this.fault(Vector.DE);
        q = Math.trunc(n / d);
        r = n - q * d;
      } else {
        let n = (BigInt(this.rl[2] >>> 0) << 32n) | BigInt(this.rl[0] >>> 0);
        let d = BigInt(s >>> 0);
        if (signed) {
          n = BigInt.asIntN(64, n);
          d = BigInt.asIntN(32, d);
        }
        const bq = n / d;
        const br = n % d;
        if (signed ? bq > 0x7fffffffn || bq < -0x80000000n : bq > 0xffffffffn) this.fault(Vector.DE);
        q = Number(BigInt.asIntN(32, bq));
        r = Number(BigInt.asIntN(32, br));
      }
      this.setReg(0, 4, false, q, 0);
      this.setReg(2, 4, false, r, 0);
      return;
    }
    if ((s | sh) === 0) this.fault(Vector.DE);
    let n =
      (BigInt(this.rh[2] >>> 0) << 96n) |
      (BigInt(this.rl[2] >>> 0) << 64n) |
      (BigInt(this.rh[0] >>> 0) << 32n) |
      BigInt(this.rl[0] >>> 0);
    let d = (BigInt(sh >>> 0) << 32n) | BigInt(s >>> 0);
    if (signed) {
      n = BigInt.asIntN(128, n);
      d = BigInt.asIntN(64, d);
    }
    const q = n / d;
    const r = n % d;
    if (signed ? q > 0x7fffffffffffffffn || q < -0x8000000000000000n : q > 0xffffffffffffffffn)
      this.fault(Vector.DE);
    this.rl[0] = Number(BigInt.asIntN(32, q));
    this.rh[0] = Number(BigInt.asIntN(32, q >> 32n));
    this.rl[2] = Number(BigInt.asIntN(32, r));
    this.rh[2] = Number(BigInt.asIntN(32, r >> 32n));
  }

  /** Group 5: INC DEC CALL CALLF JMP JMPF PUSH. */
  private group5(): void {
    this.modrm();
    const op = this.reg & 7;
    const osz = this.osz;
    const m64 = this.mode64;
    if (this.lock && op > 1) this.undef();
    switch (op) {
      case 0:
      case 1: {
        const a = this.rmwRead(osz);
        this.rmwWrite(osz, this.incDec(osz, a, this.hi, op === 1), this.hi);
        return;
      }
      case 2: {
        const s = m64 ? 8 : osz;
        const lo = this.readE(s);
        const hi = s === 8 ? this.hi : 0;
        const save = this.rl[4],
          saveh = this.rh[4];
        this.pushRip(s);
        try {
          this.setRipAbs(lo, hi);
        } catch (e) {
          this.rl[4] = save;
          this.rh[4] = saveh;
          throw e;
        }
        return;
      }
      case 4: {
        const s = m64 ? 8 : osz;
        const lo = this.readE(s);
        this.setRipAbs(lo, s === 8 ? this.hi : 0);
        return;
      }
      case 3:
      case 5: {
        if (this.mod === 3) this.undef();
        const lo = this.readN(this.memLin(osz, false), osz);
        const hi = osz === 8 ? this.hi : 0;
        const sel = this.readN(this.memLinAt(osz, 2, false), 2);
        if (op === 5) this.farJump(sel, osz === 2 ? lo & 0xffff : lo, hi);
        else {
          const nr = this.nextRip();
          this.farCall(sel, osz === 2 ? lo & 0xffff : lo, hi, osz, nr >>> 0, Math.floor(nr / TWO32) | 0);
        }
        return;
      }
      case 6: {
        const s = this.stackOsz();
        const v = this.readE(s);
        this.push(v, this.hi, s);
        return;
      }
      default:
        this.undef();
    }
  }

  private popf(): void {
    const s = this.stackOsz();
    if (this.v86 && ((this.fl >> 12) & 3) < 3) this.gp(0);
    const v = this.pop(s);
    // Which bits POPF may change depends on CPL and IOPL (SDM POPF, Table 4-15).
    let mask = 0x00004dd5 | RFLAGS.AC | RFLAGS.ID;
    const iopl = (this.fl >> 12) & 3;
    if (!this.pe || this.cpl === 0) mask |= RFLAGS.IOPL | RFLAGS.IF;
    else if (this.cpl <= iopl) mask |= RFLAGS.IF;
    if (s === 2) mask &= 0xffff;
    this.flushFlags();
    const old = this.fl;
    this.fl = ((old & ~mask) | (v & mask) | 2) & ~RFLAGS.RF;
    if (this.fl & RFLAGS.IF && !(old & RFLAGS.IF)) this.eventCheck = true;
    if ((old ^ this.fl) & RFLAGS.AC && this.cr4 & CR4.SMAP) this.eventCheck = true;
  }

  private softInt(vec: number, type: EventType): void {
    if (this.fl & RFLAGS.TF) this.softIntNow = true;
    this.raiseException(vec, -1, type, this.ilen);
    this.invalidateFetch();
    this.eventCheck = true;
  }

  private loadFarPointer(seg: number): void {
    const osz = this.osz;
    const off = this.readN(this.memLin(osz, false), osz);
    const offh = this.hi;
    const sel = this.readN(this.memLinAt(osz, 2, false), 2);
    this.loadSeg(seg, sel);
    this.setReg(this.reg, osz, true, off, offh);
    if (seg === SS) {
      this.shadow = 0;
    }
  }

  private enter(): void {
    const size = this.fetch16();
    const level = this.fetch8() & 31;
    const s = this.stackOsz();
    const save = this.rl[4],
      saveh = this.rh[4],
      saveBp = this.rl[5],
      saveBph = this.rh[5];
    try {
      const bp = this.getReg(5, s, true);
      this.push(bp, this.hi, s);
      const ftLo = this.getReg(4, s === 2 ? 2 : this.mode64 ? 8 : this.ss32 ? 4 : 2, true);
      const ftHi = this.hi;
      if (level > 0) {
        let bpl = this.rl[5],
          bph = this.rh[5];
        for (let i = 1; i < level; i++) {
          // Copy the enclosing frame pointers from [rBP - i*size].
          const d = s;
          if (this.mode64) {
            const x = (bpl >>> 0) - d;
            bpl = x | 0;
            if (x < 0) bph = (bph - 1) | 0;
          } else if (this.ss32) bpl = (bpl - d) | 0;
          else bpl = (bpl & ~0xffff) | ((bpl - d) & 0xffff);
          const lin = this.mode64
            ? this.segLin(SS, bpl, bph, d, false)
            : this.segLin(SS, this.ss32 ? bpl : bpl & 0xffff, 0, d, false);
          const v = this.readN(lin, d);
          this.push(v, this.hi, s);
        }
        this.push(ftLo, ftHi, s);
      }
      this.setReg(5, s === 2 ? 2 : this.mode64 ? 8 : this.ss32 ? 4 : 2, true, ftLo, ftHi);
      // RSP -= size
      if (this.mode64) {
        const x = (this.rl[4] >>> 0) - size;
        this.rl[4] = x | 0;
        if (x < 0) this.rh[4] = (this.rh[4] - 1) | 0;
      } else if (this.ss32) this.rl[4] = (this.rl[4] - size) | 0;
      else this.rl[4] = (this.rl[4] & ~0xffff) | ((this.rl[4] - size) & 0xffff);
      // The final stack pointer must be writable (SDM ENTER: #SS/#PF on the new top).
      const top = this.mode64
        ? this.segLin(SS, this.rl[4], this.rh[4], 1, true)
        : this.segLin(SS, this.ss32 ? this.rl[4] : this.rl[4] & 0xffff, 0, 1, true);
      if (size > 0) this.probeWrite(top, 1);
    } catch (e) {
      this.rl[4] = save;
      this.rh[4] = saveh;
      this.rl[5] = saveBp;
      this.rh[5] = saveBph;
      throw e;
    }
  }

  /** DAA DAS AAA AAS (SDM Vol. 2A). */
  private bcd(b: number): void {
    let al = this.rl[0] & 0xff;
    const cf = this.getCF();
    const af = this.getAF() !== 0;
    let ncf = 0,
      naf = 0;
    switch (b) {
      case 0x27: {
        // DAA
        const old = al;
        if ((al & 0xf) > 9 || af) {
          // CF also takes the carry out of AL + 6 (SDM DAA).
          if (al + 6 > 0xff) ncf = 1;
          al = (al + 6) & 0xff;
          naf = RFLAGS.AF;
        }
        if (old > 0x99 || cf) {
          al = (al + 0x60) & 0xff;
          ncf = 1;
        }
        this.rl[0] = (this.rl[0] & ~0xff) | al;
        this.setArith(ncf | naf | this.szp(al, 0, 1) | (~old & al & 0x80 ? RFLAGS.OF : 0));
        return;
      }
      case 0x2f: {
        // DAS
        const old = al;
        if ((al & 0xf) > 9 || af) {
          // CF also takes the borrow out of AL - 6 (SDM DAS).
          if (al < 6) ncf = 1;
          al = (al - 6) & 0xff;
          naf = RFLAGS.AF;
        }
        if (old > 0x99 || cf) {
          al = (al - 0x60) & 0xff;
          ncf = 1;
        }
        this.rl[0] = (this.rl[0] & ~0xff) | al;
        this.setArith(ncf | naf | this.szp(al, 0, 1) | (old & ~al & 0x80 ? RFLAGS.OF : 0));
        return;
      }
      case 0x37:
      case 0x3f: {
        // AAA / AAS
        let ax = this.rl[0] & 0xffff;
        if ((al & 0xf) > 9 || af) {
          if (b === 0x37) ax = (ax + 0x106) & 0xffff;
          else {
            ax = (ax - 6) & 0xffff;
            ax = (ax - 0x100) & 0xffff;
          }
          naf = RFLAGS.AF;
          ncf = 1;
        }
        ax &= 0xff0f;
        this.rl[0] = (this.rl[0] & ~0xffff) | ax;
        this.setArith(ncf | naf | this.szp(ax & 0xff, 0, 1));
        return;
      }
    }
  }

  // =============================================================================================
  // String instructions (SDM Vol. 2 MOVS/CMPS/STOS/LODS/SCAS/INS/OUTS; REP prefixes)
  // =============================================================================================

  private stringOp(b: number): void {
    const sz = b & 1 ? this.osz : 1;
    const kind = b & 0xfe;
    const srcSeg = this.segOv >= 0 ? this.segOv : DS;
    const delta = this.fl & RFLAGS.DF ? -sz : sz;
    const rep = this.rep;
    if (rep === 0) {
      this.stringOnce(kind, sz, srcSeg, delta);
      this.rip = this.nextRip();
      return;
    }
    if ((kind === 0xa4 || kind === 0xaa) && delta > 0 && this.repFast(kind, sz, srcSeg)) {
      this.rip = this.countZero() ? this.nextRip() : this.ip0;
      return;
    }
    let n = REP_CHUNK;
    while (!this.countZero()) {
      if (n-- === 0) {
        // Restart this instruction later (RIP stays), so pending events get their turn.
        this.rip = this.ip0;
        this.icount += REP_CHUNK;
        return;
      }
      this.stringOnce(kind, sz, srcSeg, delta);
      this.addRegA(1, -1);
      if (kind === 0xa6 || kind === 0xae) {
        const zf = this.getZF() !== 0;
        if (rep === 0xf3 ? !zf : zf) break;
      }
    }
    this.icount += REP_CHUNK - n;
    this.rip = this.nextRip();
  }

  /**
   * REP MOVS/STOS forwards over RAM, a page-bounded chunk at a time (the architectural result of
   * the byte-by-byte loop: overlapping copies and MMIO take the slow path). Returns false when it
   * did nothing (then the element-wise loop runs).
   */
  private repFast(kind: number, sz: number, srcSeg: number): boolean {
    if (this.asz === 2) return false;
    if (!this.mode64) {
      // Only flat, expand-up segments: one limit check per chunk is then enough.
      if (this.sLimit[ES] !== 0xffffffff || this.sOk[ES] !== (1 | 2)) return false;
      if (kind === 0xa4 && (this.sLimit[srcSeg] !== 0xffffffff || (this.sOk[srcSeg] & 5) !== 1)) return false;
    }
    let budget = 16 * REP_CHUNK;
    let did = false;
    while (budget > 0 && !this.countZero()) {
      const count = this.regA(1);
      const dLin = this.strLin(ES, 7, sz, true);
      let room = 4096 - (dLin & 0xfff);
      let sLin = 0;
      if (kind === 0xa4) {
        sLin = this.strLin(srcSeg, 6, sz, false);
        room = Math.min(room, 4096 - (sLin & 0xfff));
      }
      const elems = Math.min(count, Math.floor(room / sz), budget);
      if (elems <= 0) return did;
      const bytes = elems * sz;
      // Destination page (write), then source page (read): faults happen before any change.
      let i = (dLin >>> 12) & (this.tagWS.length - 1);
      let dBuf: Uint8Array, dOff: number;
      // A page holding translated code has no write entry: its stores are reported below.
      let codeRam: RamRegion | null = null;
      if (this.tW[i] === dLin - (dLin & 0xfff)) {
        dBuf = this.tlbMem[i];
        dOff = this.tlbOff[i] + (dLin & 0xfff);
      } else {
        this.tlbFill(dLin, Acc.Write);
        if (this.fillMem === null) return did;
        dBuf = this.fillMem;
        dOff = this.fillOff;
        const ram = this.fillRam!;
        if (ram.codePages[(dOff >>> 12) | 0] !== 0) codeRam = ram;
      }
      if (kind === 0xa4) {
        i = (sLin >>> 12) & (this.tagWS.length - 1);
        let sBuf: Uint8Array, sOff: number;
        if (this.tR[i] === sLin - (sLin & 0xfff)) {
          sBuf = this.tlbMem[i];
          sOff = this.tlbOff[i] + (sLin & 0xfff);
        } else {
          this.tlbFill(sLin, Acc.Read);
          if (this.fillMem === null) return did;
          sBuf = this.fillMem;
          sOff = this.fillOff;
        }
        if (sBuf.buffer === dBuf.buffer && dOff > sOff - bytes && dOff < sOff + bytes && dOff !== sOff)
          return did;
        dBuf.set(sBuf.subarray(sOff, sOff + bytes), dOff);
        this.addRegA(6, bytes);
      } else if (sz === 1) {
        dBuf.fill(this.rl[0] & 0xff, dOff, dOff + bytes);
      } else {
        const lo = this.rl[0],
          hi = this.rh[0];
        for (let k = 0; k < sz; k++) dBuf[dOff + k] = k < 4 ? lo >>> (8 * k) : hi >>> (8 * (k - 4));
        for (let done = sz; done < bytes; done *= 2)
          dBuf.copyWithin(dOff + done, dOff, dOff + Math.min(done, bytes - done));
      }
      if (codeRam !== null) this.bus.noteRamWrite(codeRam, dOff, bytes);
      this.addRegA(7, bytes);
      this.addRegA(1, -elems);
      this.icount += elems;
      budget -= elems;
      did = true;
    }
    return did;
  }

  private stringOnce(kind: number, sz: number, srcSeg: number, delta: number): void {
    switch (kind) {
      case 0xa4: {
        const v = this.readN(this.strLin(srcSeg, 6, sz, false), sz);
        const vh = this.hi;
        this.writeN(this.strLin(ES, 7, sz, true), sz, v, vh);
        this.addRegA(6, delta);
        this.addRegA(7, delta);
        return;
      }
      case 0xa6: {
        const a = this.readN(this.strLin(srcSeg, 6, sz, false), sz);
        const ah = this.hi;
        const c = this.readN(this.strLin(ES, 7, sz, false), sz);
        this.alu(7, sz, a, ah, c, this.hi);
        this.addRegA(6, delta);
        this.addRegA(7, delta);
        return;
      }
      case 0xaa: {
        const v = this.getReg(0, sz, false);
        this.writeN(this.strLin(ES, 7, sz, true), sz, v, this.hi);
        this.addRegA(7, delta);
        return;
      }
      case 0xac: {
        const v = this.readN(this.strLin(srcSeg, 6, sz, false), sz);
        this.setReg(0, sz, false, v, this.hi);
        this.addRegA(6, delta);
        return;
      }
      default: {
        // SCAS
        const c = this.readN(this.strLin(ES, 7, sz, false), sz);
        const ch = this.hi;
        const a = this.getReg(0, sz, false);
        this.alu(7, sz, a, this.hi, c, ch);
        this.addRegA(7, delta);
      }
    }
  }

  // =============================================================================================
  // Port I/O
  // =============================================================================================

  private portIo(port: number, size: 1 | 2 | 4, input: boolean, imm: boolean): void {
    this.checkIoPermission(port, size);
    const hook = this.hooks.io;
    if (hook !== null && this.ioHook(hook, port, size, input, false, false, imm, this.ilen))
      return this.took();
    this.rip = this.nextRip();
    this.portIoBare(port, size, input);
  }

  /** An IN/OUT or INS/OUTS event for the I/O hook: true when the hook took the instruction. */
  private ioHook(
    hook: (e: IoEvent) => boolean,
    port: number,
    size: 1 | 2 | 4,
    input: boolean,
    string: boolean,
    rep: boolean,
    immediate: boolean,
    length: number,
  ): boolean {
    const e = this.ioEv;
    e.port = port;
    e.size = size;
    e.input = input;
    e.string = string;
    e.rep = rep;
    e.immediate = immediate;
    e.length = length;
    return hook(e);
  }

  /** IN/OUT on the bus after the checks, with RIP already past the instruction. */
  private portIoBare(port: number, size: 1 | 2 | 4, input: boolean): void {
    this.syncClock();
    this.sideEffects++;
    if (input) {
      this.counters.ioReads++;
      const v = this.bus.ioRead(port, size);
      this.setReg(0, size, false, size === 4 ? v | 0 : v, 0);
    } else {
      this.counters.ioWrites++;
      this.bus.ioWrite(port, size, size === 4 ? this.rl[0] >>> 0 : this.rl[0] & (size === 1 ? 0xff : 0xffff));
    }
    // No look at events here: a device that raises an interrupt or NMI, arms a timer earlier than
    // the run's deadline or stops the machine tells the CPU (interruptRequested, nmi, requestExit).
  }

  private stringIo(b: number): void {
    const size = (b & 1 ? (this.osz === 2 ? 2 : 4) : 1) as 1 | 2 | 4;
    const input = b < 0x6e;
    const port = this.rl[2] & 0xffff;
    const rep = this.rep !== 0;
    if (rep && this.countZero()) {
      this.rip = this.nextRip();
      return;
    }
    this.checkIoPermission(port, size);
    const hook = this.hooks.io;
    if (hook !== null && this.ioHook(hook, port, size, input, true, rep, false, this.ilen))
      return this.took();
    const delta = this.fl & RFLAGS.DF ? -size : size;
    const srcSeg = this.segOv >= 0 ? this.segOv : DS;
    let n = rep ? REP_CHUNK : 1;
    this.syncClock();
    this.sideEffects++;
    while (n-- > 0) {
      if (input) {
        const lin = this.strLin(ES, 7, size, true);
        this.probeWrite(lin, size);
        this.counters.ioReads++;
        const v = this.bus.ioRead(port, size);
        this.writeN(lin, size, v, 0);
        this.addRegA(7, delta);
      } else {
        const v = this.readN(this.strLin(srcSeg, 6, size, false), size);
        this.counters.ioWrites++;
        this.bus.ioWrite(port, size, size === 4 ? v >>> 0 : v);
        this.addRegA(6, delta);
      }
      if (!rep) break;
      this.addRegA(1, -1);
      if (this.countZero()) break;
    }
    this.eventCheck = true;
    if (rep && !this.countZero()) {
      this.rip = this.ip0;
      return;
    }
    this.rip = this.nextRip();
  }

  // =============================================================================================
  // Two-byte opcode map (0F xx; SDM Vol. 2D Table A-3)
  // =============================================================================================

  private exec2(): void {
    const b = this.fetch8();
    if (this.lock && LOCK2[b] === 0) this.undef();
    const osz = this.osz;
    switch (b) {
      case 0x00:
        this.group6();
        return;
      case 0x01:
        this.group7();
        return;
      case 0x02:
      case 0x03:
        this.larLsl(b === 0x02);
        return;
      case 0x05:
        this.syscall(this.nextRip());
        return;
      case 0x06:
        if (this.cpl !== 0) this.gp(0);
        if (this.hooks.crAccess !== null && this.crHook(0, 'clts', 0, 0, 0)) return this.took();
        this.cr0 &= ~CR0.TS;
        return;
      case 0x07:
        this.sysret(this.osz === 8);
        return;
      case 0x08:
      case 0x09:
        if (this.cpl !== 0) this.gp(0);
        return;
      case 0x0b:
      case 0xb9:
        this.undef();
        return;
      case 0x0d:
        // PREFETCHW and friends: hints.
        this.modrm();
        if (this.mod === 3) this.undef();
        return;
      case 0x18:
      case 0x19:
      case 0x1a:
      case 0x1b:
      case 0x1c:
      case 0x1d:
      case 0x1e:
      case 0x1f:
        // Hint NOPs (NOP Ev, PREFETCHh, ENDBR32/64 with F3).
        this.modrm();
        if (this.mod !== 3) this.calcEa();
        return;
      case 0x20:
      case 0x21:
      case 0x22:
      case 0x23:
        this.movCrDr(b);
        return;
      case 0x30:
        this.wrmsr();
        return;
      case 0x31:
        if (this.cr4 & CR4.TSD && this.cpl !== 0 && this.pe) this.gp(0);
        if (this.hooks.rdtsc !== null && this.hooks.rdtsc(false, this.ilen)) return this.took();
        this.rdtsc(false);
        return;
      case 0x32:
        this.rdmsr();
        return;
      case 0x33:
        // RDPMC: no performance counters are implemented.
        this.gp(0);
        return;
      case 0x34:
        this.sysenter();
        return;
      case 0x35:
        this.sysexit(this.osz === 8);
        return;
      case 0x40:
      case 0x41:
      case 0x42:
      case 0x43:
      case 0x44:
      case 0x45:
      case 0x46:
      case 0x47:
      case 0x48:
      case 0x49:
      case 0x4a:
      case 0x4b:
      case 0x4c:
      case 0x4d:
      case 0x4e:
      case 0x4f: {
        this.opCmov(b);
        return;
      }
      case 0x78:
      case 0x79:
        this.vmx(b === 0x78 ? 'vmread' : 'vmwrite', true);
        return;
      case 0x80:
      case 0x81:
      case 0x82:
      case 0x83:
      case 0x84:
      case 0x85:
      case 0x86:
      case 0x87:
      case 0x88:
      case 0x89:
      case 0x8a:
      case 0x8b:
      case 0x8c:
      case 0x8d:
      case 0x8e:
      case 0x8f: {
        this.opJcc32(b);
        return;
      }
      case 0x90:
      case 0x91:
      case 0x92:
      case 0x93:
      case 0x94:
      case 0x95:
      case 0x96:
      case 0x97:
      case 0x98:
      case 0x99:
      case 0x9a:
      case 0x9b:
      case 0x9c:
      case 0x9d:
      case 0x9e:
      case 0x9f:
        this.modrm();
        this.writeE(1, this.cond(b & 15) ? 1 : 0, 0);
        return;
      case 0xa0:
      case 0xa8:
        this.push(this.sSel[b === 0xa0 ? FS : GS], 0, this.stackOsz());
        return;
      case 0xa1:
      case 0xa9: {
        const save = this.rl[4],
          saveh = this.rh[4];
        const v = this.pop(this.stackOsz()) & 0xffff;
        try {
          this.loadSeg(b === 0xa1 ? FS : GS, v);
        } catch (e) {
          this.rl[4] = save;
          this.rh[4] = saveh;
          throw e;
        }
        return;
      }
      case 0xa2:
        this.doCpuid();
        return;
      case 0xa3:
      case 0xab:
      case 0xb3:
      case 0xbb:
        this.btReg(b);
        return;
      case 0xa4:
      case 0xa5:
      case 0xac:
      case 0xad: {
        this.modrm();
        const cnt = b & 1 ? this.rl[1] & 0xff : this.fetch8();
        const s = this.getReg(this.reg, osz, true);
        const sh = this.hi;
        const d = this.rmwRead(osz);
        const r = this.shiftDouble(b < 0xa8, osz, d, this.hi, s, sh, cnt);
        this.rmwWrite(osz, r, this.hi);
        return;
      }
      case 0xaa:
        this.undef(); // RSM outside SMM
        return;
      case 0xae:
        this.group15();
        return;
      case 0xaf: {
        this.modrm();
        const s = this.readE(osz);
        const sh = this.hi;
        const a = this.getReg(this.reg, osz, true);
        this.imulTrunc(this.reg, osz, a, this.hi, s, sh);
        return;
      }
      case 0xb0:
      case 0xb1: {
        this.modrm();
        const sz = b & 1 ? osz : 1;
        const rexp = this.rex !== 0;
        const d = this.rmwRead(sz);
        const dh = this.hi;
        const acc = this.getReg(0, sz, rexp);
        const acch = this.hi;
        this.alu(7, sz, acc, acch, d, dh);
        if (this.getZF()) {
          const s = this.getReg(this.reg, sz, rexp);
          this.rmwWrite(sz, s, this.hi);
        } else {
          // The destination is written back unchanged on a memory operand (SDM CMPXCHG).
          if (this.mod !== 3) this.rmwWrite(sz, d, dh);
          this.setReg(0, sz, rexp, d, dh);
        }
        return;
      }
      case 0xb2:
      case 0xb4:
      case 0xb5:
        this.modrm();
        if (this.mod === 3) this.undef();
        this.loadFarPointer(b === 0xb2 ? SS : b === 0xb4 ? FS : GS);
        return;
      case 0xb6:
      case 0xb7:
      case 0xbe:
      case 0xbf: {
        this.opMovx(b);
        return;
      }
      case 0xb8:
        if (this.rep !== 0xf3) this.undef();
        this.popcnt();
        return;
      case 0xba: {
        this.modrm();
        const op = this.reg & 7;
        if (op < 4) this.undef();
        if (this.lock && op === 4) this.undef();
        const imm = this.fetch8();
        this.btOp(op, imm & (osz * 8 - 1), this.mod === 3 ? -1 : 0);
        return;
      }
      case 0xbc:
      case 0xbd:
        this.bitScan(b === 0xbd);
        return;
      case 0xc0:
      case 0xc1: {
        this.modrm();
        const sz = b & 1 ? osz : 1;
        const rexp = this.rex !== 0;
        const s = this.getReg(this.reg, sz, rexp);
        const sh = this.hi;
        const d = this.rmwRead(sz);
        const dh = this.hi;
        const r = this.alu(0, sz, d, dh, s, sh);
        const rh = this.hi;
        this.rmwWrite(sz, r, rh);
        if (this.mod !== 3 || this.rm !== this.reg) this.setReg(this.reg, sz, rexp, d, dh);
        else this.setReg(this.reg, sz, rexp, r, rh);
        return;
      }
      case 0xc7:
        this.group9();
        return;
      case 0xc8:
      case 0xc9:
      case 0xca:
      case 0xcb:
      case 0xcc:
      case 0xcd:
      case 0xce:
      case 0xcf: {
        const n = (b & 7) | ((this.rex & 1) << 3);
        const bs = (x: number): number =>
          (x >>> 24) | ((x >> 8) & 0xff00) | ((x << 8) & 0xff0000) | (x << 24) | 0;
        if (osz === 8) {
          const lo = this.rl[n],
            hi = this.rh[n];
          this.rl[n] = bs(hi);
          this.rh[n] = bs(lo);
        } else if (osz === 4) this.setReg(n, 4, true, bs(this.rl[n]), 0);
        else this.setReg(n, 2, true, 0, 0); // BSWAP r16 is undefined; hardware clears it
        return;
      }
      case 0x38:
        return this.exec38();
      default:
        if ((b >= 0x10 && b <= 0x17) || (b >= 0x28 && b <= 0x2f) || (b >= 0x50 && b <= 0x7f) || b >= 0xc2) {
          this.fpuOrSse(false);
        }
        this.undef();
    }
  }

  private exec38(): void {
    const b = this.fetch8();
    if (this.p66 && (b === 0x80 || b === 0x81)) {
      this.vmx(b === 0x80 ? 'invept' : 'invvpid', true);
      return;
    }
    this.undef();
  }

  /** VMX instructions: a hook may claim them; otherwise #UD (SDM Vol. 3C 30: VMX off). */
  private vmx(op: VmxOpcode, hasModrm: boolean): void {
    if (hasModrm) {
      this.modrm();
      if (this.mod !== 3) this.calcEa();
    }
    const h = this.hooks.vmxInstruction;
    if (h !== null && h(op, this.ilen)) return this.took();
    this.undef();
  }

  private group6(): void {
    this.modrm();
    const op = this.reg & 7;
    if (!this.pe || this.v86) this.undef();
    switch (op) {
      case 0: // SLDT
      case 1: // STR
        if (this.cr4 & CR4.UMIP && this.cpl > 0) this.gp(0);
        if (this.hooks.descriptorTable !== null && this.dtHook(op, true)) return this.took();
        this.writeE(this.mod === 3 ? this.osz : 2, op === 0 ? this.ldtrSel : this.trSel, 0);
        return;
      case 2:
      case 3: {
        if (this.cpl !== 0) this.gp(0);
        if (this.hooks.descriptorTable !== null && this.dtHook(op, true)) return this.took();
        const sel = this.readE(2);
        if (op === 2) this.lldt(sel);
        else this.ltr(sel);
        return;
      }
      case 4:
      case 5: {
        const sel = this.readE(2);
        this.flushFlags();
        this.fl = this.verify(sel, op === 5) ? this.fl | RFLAGS.ZF : this.fl & ~RFLAGS.ZF;
        return;
      }
      default:
        this.undef();
    }
  }

  /** Offer a descriptor-table instruction to the hook, with its decoded operand (hooks.ts). */
  private dtHook(identity: number, ldtrTr: boolean): boolean {
    const e = this.dtEv;
    e.identity = identity;
    e.ldtrTr = ldtrTr;
    e.addressSize = this.asz;
    e.operandSize = this.osz;
    e.length = this.ilen;
    if (this.mod === 3) {
      e.reg = this.rm;
      e.base = -1;
      e.index = -1;
      e.scale = 0;
      e.segment = 0;
      e.displacement = 0;
    } else {
      e.reg = -1;
      e.base = this.eaBase;
      e.index = this.eaIdx;
      e.scale = this.eaScale;
      e.segment = this.eaSeg;
      e.displacement = this.eaDisp;
    }
    return this.hooks.descriptorTable!(e);
  }

  private lldt(sel: number): void {
    if ((sel & 0xfffc) === 0) {
      this.ldtrSel = sel;
      this.ldtrAttr = SegAttr.UNUSABLE;
      this.ldtrBase = 0;
      this.ldtrLimit = 0;
      return;
    }
    if (sel & 4 || !this.readDescriptor(sel, this.lma)) this.gp(sel & 0xfffc);
    const attr = this.descAttr();
    if ((attr & 0x1f) !== 2) this.gp(sel & 0xfffc);
    if ((attr & SegAttr.P) === 0) this.fault(Vector.NP, sel & 0xfffc);
    let base = this.descBase();
    if (this.lma) {
      if ((this.dHi2 + 0x8000) >>> 16 !== 0) this.gp(sel & 0xfffc);
      base += (this.dHi2 & 0xffff) * TWO32;
    }
    this.ldtrSel = sel;
    this.ldtrBase = base;
    this.ldtrLimit = this.descLimit();
    this.ldtrAttr = attr;
  }

  private ltr(sel: number): void {
    if ((sel & 0xfffc) === 0) this.gp(0);
    if (sel & 4 || !this.readDescriptor(sel, this.lma)) this.gp(sel & 0xfffc);
    const attr = this.descAttr();
    const t = attr & 0x1f;
    if (t !== 9 && (t !== 1 || this.lma)) this.gp(sel & 0xfffc);
    if ((attr & SegAttr.P) === 0) this.fault(Vector.NP, sel & 0xfffc);
    let base = this.descBase();
    if (this.lma) {
      if ((this.dHi2 + 0x8000) >>> 16 !== 0) this.gp(sel & 0xfffc);
      base += (this.dHi2 & 0xffff) * TWO32;
    }
    // Mark the descriptor busy (type bit 1).
    this.sysWrite8(this.dAddr + 5, ((this.dHi >>> 8) | 2) & 0xff);
    this.trSel = sel;
    this.trBase = base;
    this.trLimit = this.descLimit();
    this.trAttr = attr | 2;
  }

  /** VERR/VERW (SDM Vol. 2B). */
  private verify(sel: number, write: boolean): boolean {
    if ((sel & 0xfffc) === 0) return false;
    let ok: boolean;
    try {
      ok = this.readDescriptor(sel);
    } catch (e) {
      if (e === FAULT) throw e;
      throw e;
    }
    if (!ok) return false;
    const attr = this.descAttr();
    if ((attr & SegAttr.S) === 0) return false;
    const dpl = (attr >> 5) & 3;
    const conforming = (attr & 0xc) === 0xc;
    if (!conforming && (dpl < this.cpl || dpl < (sel & 3))) return false;
    if (write) return (attr & 0xa) === 0x2;
    return (attr & 0xa) !== 0x8;
  }

  /** LAR/LSL (SDM Vol. 2A). */
  private larLsl(lar: boolean): void {
    this.modrm();
    if (!this.pe || this.v86) this.undef();
    const sel = this.readE(2);
    this.flushFlags();
    const fail = (): void => {
      this.fl &= ~RFLAGS.ZF;
    };
    if ((sel & 0xfffc) === 0 || !this.readDescriptor(sel)) return fail();
    const attr = this.descAttr();
    const dpl = (attr >> 5) & 3;
    if (attr & SegAttr.S) {
      const conforming = (attr & 0xc) === 0xc;
      if (!conforming && (dpl < this.cpl || dpl < (sel & 3))) return fail();
    } else {
      const t = attr & 0xf;
      const okLar = this.lma ? [2, 9, 11, 12] : [1, 2, 3, 4, 5, 9, 11, 12];
      const okLsl = this.lma ? [2, 9, 11] : [1, 2, 3, 9, 11];
      if (!(lar ? okLar : okLsl).includes(t)) return fail();
      if (dpl < this.cpl || dpl < (sel & 3)) return fail();
    }
    this.fl |= RFLAGS.ZF;
    const osz = this.osz;
    const v = lar ? this.dHi & 0x00f0ff00 : this.descLimit();
    this.setReg(this.reg, osz, true, osz === 2 ? v & 0xffff : v | 0, 0);
  }

  private group7(): void {
    this.modrm();
    const op = this.reg & 7;
    if (this.mod === 3) {
      const rm = this.rm & 7;
      switch (op) {
        case 0:
          if (rm === 1) return this.vmx('vmcall', false);
          if (rm === 2) return this.vmx('vmlaunch', false);
          if (rm === 3) return this.vmx('vmresume', false);
          if (rm === 4) return this.vmx('vmxoff', false);
          return this.undef();
        case 1:
          if (rm === 2 || rm === 3) {
            // CLAC/STAC (SMAP advertised).
            if (this.cpl !== 0) this.undef();
            this.flushFlags();
            if (rm === 2) this.fl &= ~RFLAGS.AC;
            else this.fl |= RFLAGS.AC;
            return;
          }
          return this.undef();
        case 2:
          if (rm === 4) return this.vmx('vmfunc', false);
          return this.undef();
        case 4:
          this.smsw();
          return;
        case 6:
          this.lmsw();
          return;
        case 7:
          if (rm === 0) {
            // SWAPGS (64-bit mode, CPL 0).
            if (!this.mode64) this.undef();
            if (this.cpl !== 0) this.gp(0);
            const k = this.kernelGsBase;
            this.kernelGsBase = this.segBase(GS);
            this.sBaseLo[GS] = k | 0;
            this.sBaseHi[GS] = Math.floor(k / TWO32) | 0;
            return;
          }
          if (rm === 1) {
            if (this.cr4 & CR4.TSD && this.cpl !== 0) this.gp(0);
            if (this.hooks.rdtsc !== null && this.hooks.rdtsc(true, this.ilen)) return this.took();
            this.rdtsc(true);
            return;
          }
          return this.undef();
        default:
          return this.undef();
      }
    }
    switch (op) {
      case 0:
      case 1: {
        // SGDT/SIDT: limit then base (4 bytes outside 64-bit mode, 8 inside).
        if (this.cr4 & CR4.UMIP && this.cpl > 0) this.gp(0);
        if (this.hooks.descriptorTable !== null && this.dtHook(op, false)) return this.took();
        const limit = op === 0 ? this.gdtrLimit : this.idtrLimit;
        const base = this.canonicalOf(op === 0 ? this.gdtrBase : this.idtrBase);
        const bsz = this.mode64 ? 8 : 4;
        const l0 = this.memLin(2, true);
        const l1 = this.memLinAt(2, bsz, true);
        this.probeWrite(l1, bsz);
        this.write16(l0, limit);
        if (bsz === 8) this.write64(l1, base | 0, Math.floor(base / TWO32) | 0);
        else this.write32(l1, base | 0);
        return;
      }
      case 2:
      case 3: {
        if (this.cpl !== 0) this.gp(0);
        if (this.hooks.descriptorTable !== null && this.dtHook(op, false)) return this.took();
        const limit = this.readN(this.memLin(2, false), 2);
        let base: number;
        if (this.mode64) {
          const lo = this.readN(this.memLinAt(2, 8, false), 8);
          const hi = this.hi;
          if ((hi + 0x8000) >>> 16 !== 0) this.gp(0);
          base = (hi & 0xffff) * TWO32 + (lo >>> 0);
        } else {
          base = this.readN(this.memLinAt(2, 4, false), 4) >>> 0;
          if (this.osz === 2) base &= 0xffffff;
        }
        if (op === 2) {
          this.gdtrBase = base;
          this.gdtrLimit = limit;
        } else {
          this.idtrBase = base;
          this.idtrLimit = limit;
        }
        return;
      }
      case 4:
        this.smsw();
        return;
      case 6:
        this.lmsw();
        return;
      case 7: {
        // INVLPG
        if (this.cpl !== 0) this.gp(0);
        this.calcEa();
        const lin = this.segLin(this.eaSeg, this.eaLo, this.eaHi, 1, false);
        if (this.hooks.invlpg !== null) {
          this.invlpgEv.address = lin;
          this.invlpgEv.length = this.ilen;
          if (this.hooks.invlpg(this.invlpgEv)) return this.took();
        }
        this.flushTlbPage(lin);
        return;
      }
      default:
        this.undef();
    }
  }

  private smsw(): void {
    if (this.cr4 & CR4.UMIP && this.cpl > 0) this.gp(0);
    if (this.mod === 3)
      this.setReg(this.rm, this.osz, true, this.osz === 2 ? this.cr0 & 0xffff : this.cr0, 0);
    else this.writeN(this.memLin(2, true), 2, this.cr0 & 0xffff, 0);
  }

  private lmsw(): void {
    if (this.pe && this.cpl !== 0) this.gp(0);
    const v = this.readE(2);
    if (this.hooks.crAccess !== null && this.crHook(0, 'lmsw', 0, v, 0)) return this.took();
    // LMSW sets PE (cannot clear it), MP, EM, TS.
    const nv = (this.cr0 & ~0xe) | (v & 0xf) | (this.cr0 & 1);
    this.writeCr0(nv, 0);
  }

  private crHook(cr: number, kind: CrAccessEvent['kind'], gpr: number, lo: number, hi: number): boolean {
    const e = this.crEv;
    e.cr = cr;
    e.kind = kind;
    e.gpr = gpr;
    e.valueLo = lo;
    e.valueHi = hi;
    e.length = this.ilen;
    return this.hooks.crAccess!(e);
  }

  /** MOV to/from CR0/2/3/4/8 and DR0-7 (SDM Vol. 2B MOV-Control/Debug Registers). */
  private movCrDr(b: number): void {
    const m = this.fetch8();
    let n = ((m >> 3) & 7) | ((this.rex & 4) << 1);
    const gpr = (m & 7) | ((this.rex & 1) << 3);
    if (this.cpl !== 0 && this.pe) this.gp(0);
    if (this.v86) this.gp(0);
    const wide = this.mode64;
    if (b === 0x20 || b === 0x22) {
      if (n !== 0 && n !== 2 && n !== 3 && n !== 4 && n !== 8) this.undef();
      if (n === 8 && !this.mode64) this.undef();
      if (b === 0x20) {
        if (this.hooks.crAccess !== null && this.crHook(n, 'mov-from', gpr, 0, 0)) return this.took();
        let lo: number,
          hi = 0;
        switch (n) {
          case 0:
            lo = this.cr0;
            break;
          case 2:
            lo = this.cr2 | 0;
            hi = Math.floor(this.cr2 / TWO32) | 0;
            break;
          case 3:
            lo = this.cr3 | 0;
            hi = Math.floor(this.cr3 / TWO32) | 0;
            break;
          case 4:
            lo = this.cr4;
            break;
          default:
            lo = this.cr8;
        }
        this.setReg(gpr, wide ? 8 : 4, true, lo, wide ? hi : 0);
        return;
      }
      const lo = this.rl[gpr],
        hi = wide ? this.rh[gpr] : 0;
      if (this.hooks.crAccess !== null && this.crHook(n, 'mov-to', gpr, lo, hi)) return this.took();
      switch (n) {
        case 0:
          this.writeCr0(lo, hi);
          break;
        case 2:
          this.cr2 = hi * TWO32 + (lo >>> 0);
          break;
        case 3:
          this.writeCr3(lo, hi);
          break;
        case 4:
          this.writeCr4(lo, hi);
          break;
        default:
          if (hi !== 0 || lo & ~0xf) this.gp(0);
          this.cr8 = lo;
      }
      this.rip = this.nextRip();
      this.eventCheck = true;
      return;
    }
    // Debug registers: DR4/DR5 alias DR6/DR7 unless CR4.DE (then #UD).
    if (n > 7) this.undef();
    if (n === 4 || n === 5) {
      if (this.cr4 & CR4.DE) this.undef();
      n += 2;
    }
    if (this.hooks.drAccess !== null) {
      const e = this.drEv;
      e.dr = n;
      e.write = b === 0x23;
      e.gpr = gpr;
      e.length = this.ilen;
      if (this.hooks.drAccess(e)) return this.took();
    }
    if (b === 0x21) {
      const v = this.dr[n];
      this.setReg(gpr, wide ? 8 : 4, true, v | 0, Math.floor(v / TWO32) | 0);
    } else {
      const lo = this.rl[gpr],
        hi = wide ? this.rh[gpr] : 0;
      if ((n === 6 || n === 7) && hi !== 0) this.gp(0);
      if (n === 6) this.dr[6] = ((lo | 0xffff0ff0) >>> 0) & ~0x1000;
      else if (n === 7) this.dr[7] = ((lo | 0x400) & ~0xd000) >>> 0;
      else this.dr[n] = hi * TWO32 + (lo >>> 0);
    }
  }

  private rdmsr(): void {
    if (this.cpl !== 0 && this.pe) this.gp(0);
    const msr = this.rl[1] >>> 0;
    if (this.hooks.msr !== null) {
      const e = this.msrEv;
      e.msr = msr;
      e.write = false;
      e.valueLo = 0;
      e.valueHi = 0;
      e.length = this.ilen;
      if (this.hooks.msr(e)) return this.took();
    }
    this.syncClock();
    this.sideEffects++;
    if (!this.readMsr(msr)) this.gp(0);
    this.setReg(0, 4, false, this.msrLo, 0);
    this.setReg(2, 4, false, this.msrHi, 0);
  }

  private wrmsr(): void {
    if (this.cpl !== 0 && this.pe) this.gp(0);
    const msr = this.rl[1] >>> 0;
    const lo = this.rl[0],
      hi = this.rl[2];
    if (this.hooks.msr !== null) {
      const e = this.msrEv;
      e.msr = msr;
      e.write = true;
      e.valueLo = lo;
      e.valueHi = hi;
      e.length = this.ilen;
      if (this.hooks.msr(e)) return this.took();
    }
    this.syncClock();
    if (!this.writeMsr(msr, lo, hi)) this.gp(0);
    this.rip = this.nextRip();
    this.eventCheck = true;
  }

  private rdtsc(aux: boolean): void {
    this.sideEffects++;
    const t = this.tsc();
    this.setReg(0, 4, false, (t % TWO32) | 0, 0);
    this.setReg(2, 4, false, Math.floor(t / TWO32) | 0, 0);
    if (aux) this.setReg(1, 4, false, this.tscAux, 0);
  }

  private doCpuid(): void {
    const leaf = this.rl[0] >>> 0,
      sub = this.rl[1] >>> 0;
    if (this.hooks.cpuid !== null) {
      const e = this.cpuidEv;
      e.leaf = leaf;
      e.subleaf = sub;
      e.length = this.ilen;
      if (this.hooks.cpuid(e)) return this.took();
    }
    this.cpuidToRegs(leaf, sub);
  }

  /**
   * EAX, EBX, ECX, EDX from the CPUID model (zero-extended in 64-bit mode). The model's answers
   * depend on the leaf and, for leaf 7, the subleaf only: each is computed once.
   */
  private cpuidToRegs(leaf: number, sub: number): void {
    // Leaves above the highest basic leaf answer as it does (system.ts cpuid), subleaf included.
    const key = leaf < 8 || leaf >= 0x8000_0000 ? leaf : 7;
    if (this.cpuidCacheModel !== this.model) {
      this.cpuidCache.clear();
      this.cpuidCacheModel = this.model;
    }
    let o = key === 7 && sub !== 0 ? undefined : this.cpuidCache.get(key);
    if (o === undefined) {
      this.cpuid(leaf, sub);
      o = Int32Array.from(this.cpuidOut);
      if (leaf === 1) o[1] = o[1]! & 0x00ffffff; // initial APIC ID 0
      if (key !== 7 || sub === 0) this.cpuidCache.set(key, o);
    }
    const rl = this.rl;
    const rh = this.rh;
    rl[0] = o[0]!;
    rl[3] = o[1]!;
    rl[1] = o[2]!;
    rl[2] = o[3]!;
    rh[0] = 0;
    rh[3] = 0;
    rh[1] = 0;
    rh[2] = 0;
  }

  private readonly cpuidCache = new Map<number, Int32Array>();
  /** The model the cache was filled from (a new model object empties it). */
  private cpuidCacheModel: CpuModel | null = null;

  /** BT/BTS/BTR/BTC with a register bit offset (memory forms address beyond the operand). */
  private btReg(b: number): void {
    this.modrm();
    const osz = this.osz;
    const op = b === 0xa3 ? 4 : b === 0xab ? 5 : b === 0xb3 ? 6 : 7;
    const off = this.getReg(this.reg, osz, true);
    const offh = this.hi;
    if (this.mod === 3) {
      this.btOp(op, off & (osz * 8 - 1), -1);
      return;
    }
    // Signed bit offset: byte displacement = floor(offset / width) * width / 8.
    let sOff: number;
    if (osz === 2) sOff = (off << 16) >> 16;
    else if (osz === 4) sOff = off | 0;
    else sOff = offh * TWO32 + (off >>> 0);
    const bits = osz * 8;
    const disp = Math.floor(sOff / bits) * osz;
    const bit = sOff - Math.floor(sOff / bits) * bits;
    this.btOp(op, bit, disp);
  }

  /** Bit operation on the ModRM operand: op 4 BT, 5 BTS, 6 BTR, 7 BTC; disp -1 means register. */
  private btOp(op: number, bit: number, disp: number): void {
    const osz = this.osz;
    let v: number,
      vh: number,
      lin = 0;
    if (disp === -1 && this.mod === 3) {
      v = this.getReg(this.rm, osz, true);
      vh = this.hi;
    } else {
      this.calcEa();
      let lo = this.eaLo,
        hi = this.eaHi;
      if (disp !== 0) {
        const dh = Math.floor(disp / TWO32);
        const s = (lo >>> 0) + (disp - dh * TWO32);
        lo = s | 0;
        hi = (hi + dh + Math.floor(s / TWO32)) | 0;
        if (this.asz === 4) {
          lo = s | 0;
          hi = 0;
        } else if (this.asz === 2) {
          lo = s & 0xffff;
          hi = 0;
        }
      }
      lin = this.segLin(this.eaSeg, lo, hi, osz, op !== 4);
      v = this.readN(lin, osz);
      vh = this.hi;
    }
    const cf = X86Cpu.bit(v, vh, bit);
    this.flushFlags();
    this.fl = (this.fl & ~1) | cf;
    if (op === 4) return;
    const m = bit < 32 ? 1 << bit : 0;
    const mh = bit >= 32 ? 1 << (bit - 32) : 0;
    if (op === 5) {
      v |= m;
      vh |= mh;
    } else if (op === 6) {
      v &= ~m;
      vh &= ~mh;
    } else {
      v ^= m;
      vh ^= mh;
    }
    if (osz !== 4 && osz !== 8) v &= MASK[osz];
    if (disp === -1 && this.mod === 3) this.setReg(this.rm, osz, true, v, vh);
    else this.writeN(lin, osz, v, vh);
  }

  /** BSF/BSR, or TZCNT/LZCNT with F3 (SDM Vol. 2A). */
  private bitScan(reverse: boolean): void {
    this.modrm();
    const osz = this.osz;
    const v = this.readE(osz);
    const vh = osz === 8 ? this.hi : 0;
    const zero = osz === 8 ? (v | vh) === 0 : (v & MASK[osz]) === 0;
    const bits = osz * 8;
    let idx = 0;
    if (!zero) {
      if (reverse) {
        if (osz === 8 && vh !== 0) idx = 63 - Math.clz32(vh);
        else idx = 31 - Math.clz32(v & MASK[osz]);
      } else {
        const lowWord = osz === 8 && v === 0 ? vh : v;
        const base = osz === 8 && v === 0 ? 32 : 0;
        idx = base + 31 - Math.clz32(lowWord & -lowWord);
      }
    }
    if (this.rep === 0xf3) {
      // TZCNT/LZCNT: count, CF = source zero, ZF = result zero.
      let r: number;
      if (zero) r = bits;
      else r = reverse ? bits - 1 - idx : idx;
      this.setReg(this.reg, osz, true, r, 0);
      this.setArith((zero ? RFLAGS.CF : 0) | (r === 0 ? RFLAGS.ZF : 0) | this.undefFlagsBitScan(r));
      return;
    }
    if (zero) {
      // Destination unchanged (as hardware does), ZF set.
      this.setArith(RFLAGS.ZF | this.undefFlagsBitScan(0));
      return;
    }
    this.setReg(this.reg, osz, true, idx, 0);
    this.setArith(this.undefFlagsBitScan(idx));
  }

  /** Flags the SDM leaves undefined for BSF/BSR/TZCNT/LZCNT: PF from the result, as Intel. */
  private undefFlagsBitScan(r: number): number {
    return PARITY[r & 0xff] * 0;
  }

  private popcnt(): void {
    this.modrm();
    const osz = this.osz;
    const v = this.readE(osz);
    const vh = osz === 8 ? this.hi : 0;
    const pc = (x: number): number => {
      x = x - ((x >>> 1) & 0x55555555);
      x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
      return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
    };
    const r = pc(v & MASK[osz]) + pc(vh);
    this.setReg(this.reg, osz, true, r, 0);
    this.setArith(r === 0 ? RFLAGS.ZF : 0);
  }

  private group9(): void {
    this.modrm();
    const op = this.reg & 7;
    if (op === 1 && this.mod !== 3) {
      // CMPXCHG8B / CMPXCHG16B
      if (this.osz === 8) {
        this.calcEa();
        if (this.eaLo & 15) this.gp(0);
        const l0 = this.memLin(8, true);
        const l1 = this.memLinAt(8, 8, true);
        const ml = this.read64(l0),
          mh = this.hi;
        const nl = this.read64(l1),
          nh = this.hi;
        this.flushFlags();
        if (ml === this.rl[0] && mh === this.rh[0] && nl === this.rl[2] && nh === this.rh[2]) {
          this.probeWrite(l1, 8);
          this.write64(l0, this.rl[3], this.rh[3]);
          this.write64(l1, this.rl[1], this.rh[1]);
          this.fl |= RFLAGS.ZF;
        } else {
          this.probeWrite(l1, 8);
          this.write64(l0, ml, mh);
          this.write64(l1, nl, nh);
          this.rl[0] = ml;
          this.rh[0] = mh;
          this.rl[2] = nl;
          this.rh[2] = nh;
          this.fl &= ~RFLAGS.ZF;
        }
        return;
      }
      const lin = this.memLin(8, true);
      const lo = this.read64(lin),
        hi = this.hi;
      this.flushFlags();
      if (lo === this.rl[0] && hi === this.rl[2]) {
        this.write64(lin, this.rl[3], this.rl[1]);
        this.fl |= RFLAGS.ZF;
      } else {
        this.write64(lin, lo, hi);
        this.setReg(0, 4, false, lo, 0);
        this.setReg(2, 4, false, hi, 0);
        this.fl &= ~RFLAGS.ZF;
      }
      return;
    }
    if (op === 6 && this.mod !== 3) {
      this.calcEa();
      const h = this.hooks.vmxInstruction;
      const name: VmxOpcode = this.p66 ? 'vmclear' : this.rep === 0xf3 ? 'vmxon' : 'vmptrld';
      if (h !== null && h(name, this.ilen)) return this.took();
      this.undef();
    }
    if (op === 7 && this.mod !== 3) {
      this.calcEa();
      const h = this.hooks.vmxInstruction;
      if (h !== null && h('vmptrst', this.ilen)) return this.took();
    }
    this.undef();
  }

  private group15(): void {
    this.modrm();
    const op = this.reg & 7;
    if (this.mod === 3) {
      // LFENCE (5), MFENCE (6), SFENCE (7): ordering is already total here.
      if (op >= 5 && this.rep === 0) return;
      this.undef();
    }
    if (op === 7 && this.rep === 0 && !this.p66) {
      // CLFLUSH: checks the address like a byte read (no caches to flush).
      this.calcEa();
      this.read8(this.segLin(this.eaSeg, this.eaLo, this.eaHi, 1, false));
      return;
    }
    if (op <= 3) this.fpuOrSse(op <= 1);
    this.undef();
  }
}
