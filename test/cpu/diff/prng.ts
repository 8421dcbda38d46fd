/**
 * Seeded PRNG (sfc32, 32-bit state words) and edge-biased value pickers for the case generator.
 * The seed comes from VMM_DIFF_SEED when set, so a failing run reproduces exactly.
 */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 16; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.u32() / 0x1_0000_0000) * n);
  }

  /** Integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }

  pick<T>(items: readonly T[]): T {
    const v = items[this.int(items.length)];
    if (v === undefined) throw new Error('pick from an empty list');
    return v;
  }

  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }

  /** Random value of `bits` bits, biased to edge cases: 0, 1, -1, sign boundaries, powers of two. */
  edge(bits: number): bigint {
    const m = (1n << BigInt(bits)) - 1n;
    const sign = 1n << BigInt(bits - 1);
    const r = this.int(100);
    if (r < 30) {
      const special = [
        0n,
        1n,
        2n,
        m,
        m - 1n,
        sign,
        sign - 1n,
        sign + 1n,
        0x7fn,
        0x80n,
        0xffn,
        0x7fffn,
        0x8000n,
      ];
      return this.pick(special) & m;
    }
    if (r < 50) {
      const p = 1n << BigInt(this.int(bits));
      return (p + BigInt(this.range(-1, 1))) & m;
    }
    if (r < 60) return BigInt(this.int(17));
    return this.u64() & m;
  }

  /** A byte biased the same way. */
  byte(): number {
    return Number(this.edge(8));
  }
}

/** The seed for this run: VMM_DIFF_SEED or a fresh one (printed by the suites). */
export function diffSeed(): number {
  const env = process.env.VMM_DIFF_SEED;
  if (env !== undefined && env !== '') {
    const v = Number(env);
    if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff)
      throw new Error(`VMM_DIFF_SEED=${env}: want 0..2^32-1`);
    return v;
  }
  return Math.floor(Math.random() * 0x1_0000_0000);
}

/** Number of cases per suite: VMM_DIFF_CASES or the default. */
export function diffCases(defaultCount: number): number {
  const env = process.env.VMM_DIFF_CASES;
  if (env === undefined || env === '') return defaultCount;
  const v = Number(env);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`VMM_DIFF_CASES=${env}: want a positive integer`);
  return v;
}
