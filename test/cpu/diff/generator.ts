/**
 * Turns the form table into a stream of cases. Case i of a run is built from its own PRNG seeded
 * with (seed, i), so any single case can be rebuilt from the printed seed and its index.
 */
import { Builder } from './builder.js';
import type { Mode, Size } from './builder.js';
import type { DiffCase, FaultKind } from './emulator-adapter.js';
import { FORMS, sizesIn } from './forms.js';
import type { Form } from './forms.js';
import { Rng } from './prng.js';
import { ARITH_FLAGS } from './protocol.js';

export interface GenCase {
  /** Index of the case in this run (rebuild it with generateOne(mode, seed, index, features)). */
  index: number;
  form: Form;
  size: Size;
  case: DiffCase;
  /** RFLAGS bits compared: CF PF AF ZF SF DF OF minus the form's undefined flags for this case. */
  compareFlags: number;
  /** Register bits not compared (undefined results), by register number. */
  regUndef: Map<number, bigint>;
  /** The case may raise an exception by construction. */
  mayFault: boolean;
  faults: readonly FaultKind[];
}

/** (form, size) pairs generated in a mode, given the host's CPUID features. */
export function formSizes(mode: Mode, features: number): Array<[Form, Size]> {
  const out: Array<[Form, Size]> = [];
  for (const f of FORMS) {
    if (f.modes && !f.modes.includes(mode)) continue;
    if (f.feature !== undefined && (features & f.feature) === 0) continue;
    for (const s of sizesIn(f, mode)) out.push([f, s]);
  }
  return out;
}

function caseSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  return (h ^ (h >>> 13)) >>> 0;
}

export function buildCase(mode: Mode, form: Form, size: Size, seed: number, index: number): GenCase {
  const rng = new Rng(caseSeed(seed, index));
  // AH..BH need the absence of REX, which a 64-bit operand size (REX.W) excludes.
  const b = new Builder(rng, mode, (size === 8 || form.byteRegs === true) && size !== 64);
  form.gen(b, size);
  const undef = typeof form.undef === 'function' ? form.undef(b, size) : (form.undef ?? 0);
  return {
    index,
    form,
    size,
    case: b.finish(),
    compareFlags: ARITH_FLAGS & ~undef,
    regUndef: b.regUndef,
    mayFault: b.mayFault || (form.faults?.length ?? 0) > 0,
    faults: form.faults ?? [],
  };
}

/** Case `index` of a run (round-robin over the (form, size) pairs so every form is covered). */
export function generateOne(mode: Mode, seed: number, index: number, features: number): GenCase {
  const pairs = formSizes(mode, features);
  const [form, size] = pairs[index % pairs.length]!;
  return buildCase(mode, form, size, seed, index);
}

/** Cases [start, start+count) of a run. */
export function generateBatch(
  mode: Mode,
  seed: number,
  start: number,
  count: number,
  features: number,
): GenCase[] {
  const pairs = formSizes(mode, features);
  const out: GenCase[] = [];
  for (let i = start; i < start + count; i++) {
    const [form, size] = pairs[i % pairs.length]!;
    out.push(buildCase(mode, form, size, seed, i));
  }
  return out;
}
