/**
 * Registers are data (Renode's register framework, STYLE.md): a device declares each register once
 * (offset, width, name, access kind, reset value, fields, what is not implemented yet) and this
 * small engine decodes accesses, applies the access kind, resets, and logs what the model does not
 * implement (once per register, then counted only).
 *
 * Cost per access: one typed-array look-up from the byte offset to the register index, then the
 * register's own hooks. No Map look-ups, no allocation.
 *
 * A register holds at most 32 bits. Devices with 64-bit registers (HPET) declare the two halves.
 * Accesses narrower than the register read or merge the addressed bytes; accesses that straddle two
 * registers, or fall where no register is declared, read as `undefinedRead` and are dropped on write.
 */

/** Access kinds (datasheet terms). */
export type Access =
  /** read/write */
  | 'rw'
  /** read-only: writes are ignored */
  | 'ro'
  /** write-1-to-clear: writing a 1 clears that bit, 0 leaves it */
  | 'w1c'
  /** read-to-clear: a read returns the value, then clears it */
  | 'rc'
  /** write-only: reads return 0 (or the device's own read hook) */
  | 'wo';

export interface FieldSpec {
  readonly name: string;
  /** Least significant bit. */
  readonly lsb: number;
  /** Width in bits (default 1). */
  readonly width?: number;
  /** The access kind of this field when it differs from the register's (e.g. a read-only status bit). */
  readonly access?: Access;
}

export interface RegisterSpec {
  readonly name: string;
  /** Byte offset in the device's range (or index space, for indirect register files). */
  readonly offset: number;
  readonly width: 1 | 2 | 4;
  readonly access: Access;
  readonly reset?: number;
  readonly fields?: readonly FieldSpec[];
  /**
   * Bits that software may change (default: all bits of a 'rw'/'wo'/'w1c' register, minus fields
   * declared with a read-only kind). Others keep their value on writes.
   */
  readonly writeMask?: number;
  /** Not modelled yet: accesses are logged once (with this text, if a string) and counted. */
  readonly unimplemented?: boolean | string;
  /** Computed value (counters, status derived from other state): replaces the stored value on reads. */
  readonly onRead?: () => number;
  /**
   * Side effects of a write, called after the stored value was updated by the access kind.
   * `value` is the merged full-width value the guest wrote, `previous` the stored value before.
   */
  readonly onWrite?: (value: number, previous: number) => void;
}

export interface RegisterBankStats {
  /** Accesses to registers tagged `unimplemented`. */
  unimplementedAccesses: number;
  /** Accesses where no register is declared (or straddling two registers). */
  undefinedAccesses: number;
}

const NONE = -1;

const widthMask = (bytes: number): number => (bytes === 4 ? 0xffff_ffff : (1 << (bytes * 8)) - 1);

/** Mask of the bits a field covers. */
export const fieldMask = (f: FieldSpec): number => {
  const w = f.width ?? 1;
  return (w === 32 ? 0xffff_ffff : ((1 << w) - 1) << f.lsb) >>> 0;
};

/** A declared register after compilation: the spec plus what the engine derived from it. */
interface Compiled {
  readonly spec: RegisterSpec;
  readonly size: number;
  readonly reset: number;
  /** Bits a write may set or clear (rw/wo) or clear (w1c). */
  readonly writable: number;
  /** Bits that are write-1-to-clear within an otherwise rw register, from field declarations. */
  readonly w1cBits: number;
  warned: boolean;
}

export class RegisterBank {
  /** Stored register values, by register index (declaration order). */
  readonly values: Uint32Array;
  private readonly regs: Compiled[];
  /** Register index for every byte offset of the space; NONE where nothing is declared. */
  private readonly index: Int16Array;
  private readonly warnedOffset: Uint8Array;
  readonly stats: RegisterBankStats = { unimplementedAccesses: 0, undefinedAccesses: 0 };
  /** What an access to an undeclared offset reads as (all ones, as an unclaimed bus reads). */
  undefinedRead = 0xffff_ffff;

  /**
   * @param name  device name for log messages
   * @param size  size of the decoded space in bytes
   * @param specs the register declarations
   * @param warn  where one-time messages about unimplemented or undefined accesses go
   */
  constructor(
    readonly name: string,
    readonly size: number,
    specs: readonly RegisterSpec[],
    private readonly warn: (message: string) => void = () => {},
  ) {
    this.index = new Int16Array(size).fill(NONE);
    this.warnedOffset = new Uint8Array(size);
    this.regs = specs.map((spec, i) => {
      if (spec.offset < 0 || spec.offset + spec.width > size || spec.offset % spec.width !== 0) {
        throw new Error(`${name}: register ${spec.name} at ${spec.offset} does not fit or is misaligned`);
      }
      for (let b = spec.offset; b < spec.offset + spec.width; b++) {
        if (this.index[b] !== NONE) {
          throw new Error(`${name}: register ${spec.name} overlaps ${specs[this.index[b]!]!.name}`);
        }
        this.index[b] = i;
      }
      const all = widthMask(spec.width);
      let readOnly = 0;
      let w1c = 0;
      for (const f of spec.fields ?? []) {
        if (f.access === 'ro' || f.access === 'rc') readOnly |= fieldMask(f);
        if (f.access === 'w1c') w1c |= fieldMask(f);
      }
      const writable =
        spec.access === 'ro' || spec.access === 'rc' ? 0 : (spec.writeMask ?? all) & ~readOnly & all;
      return {
        spec,
        size: spec.width,
        reset: (spec.reset ?? 0) >>> 0,
        writable: writable >>> 0,
        w1cBits: w1c >>> 0,
        warned: false,
      };
    });
    this.values = new Uint32Array(this.regs.length);
    this.reset();
  }

  /** Every register back to its reset value. */
  reset(): void {
    for (let i = 0; i < this.regs.length; i++) this.values[i] = this.regs[i]!.reset;
  }

  /** Index of the register declared at exactly `offset` (set-up time; throws if none). */
  indexOf(offset: number): number {
    const i = this.index[offset] ?? NONE;
    if (i === NONE || this.regs[i]!.spec.offset !== offset) {
      throw new Error(`${this.name}: no register at offset ${offset}`);
    }
    return i;
  }

  spec(index: number): RegisterSpec {
    return this.regs[index]!.spec;
  }

  /** The register at `offset`, or undefined (for tests and debug dumps). */
  at(offset: number): RegisterSpec | undefined {
    const i = this.index[offset] ?? NONE;
    return i === NONE ? undefined : this.regs[i]!.spec;
  }

  /** A guest read of `size` bytes at `offset`. */
  read(offset: number, size: 1 | 2 | 4): number {
    const i = offset < this.size ? this.index[offset]! : NONE;
    if (i === NONE) return this.undefinedAccess(offset, size, 'read');
    const r = this.regs[i]!;
    const shift = (offset - r.spec.offset) * 8;
    if (offset + size > r.spec.offset + r.size) return this.undefinedAccess(offset, size, 'read');
    if (r.spec.unimplemented !== undefined && r.spec.unimplemented !== false) this.unimplemented(r, 'read');
    let v: number;
    if (r.spec.onRead !== undefined) v = r.spec.onRead();
    else if (r.spec.access === 'wo') v = 0;
    else {
      v = this.values[i]!;
      if (r.spec.access === 'rc') this.values[i] = 0;
    }
    return size === 4 ? v >>> 0 : (v >>> shift) & widthMask(size);
  }

  /** A guest write of `size` bytes at `offset`. */
  write(offset: number, size: 1 | 2 | 4, value: number): void {
    const i = offset < this.size ? this.index[offset]! : NONE;
    if (i === NONE) {
      this.undefinedAccess(offset, size, 'write');
      return;
    }
    const r = this.regs[i]!;
    if (offset + size > r.spec.offset + r.size) {
      this.undefinedAccess(offset, size, 'write');
      return;
    }
    if (r.spec.unimplemented !== undefined && r.spec.unimplemented !== false) this.unimplemented(r, 'write');
    const shift = (offset - r.spec.offset) * 8;
    // The bytes this access covers, in register position.
    const lane = size === 4 ? 0xffff_ffff : (widthMask(size) << shift) >>> 0;
    const previous = this.values[i]!;
    const written = (((value & widthMask(size)) << shift) >>> 0) & lane;
    // Full-width value as the guest sees it: untouched bytes keep the stored value.
    const merged = ((previous & ~lane) | written) >>> 0;
    let next: number;
    if (r.spec.access === 'w1c') {
      next = (previous & ~(written & r.writable)) >>> 0;
    } else {
      const w = r.writable & lane & ~r.w1cBits;
      next = ((previous & ~w) | (written & w)) >>> 0;
      if (r.w1cBits !== 0) next = (next & ~(written & r.w1cBits)) >>> 0;
    }
    this.values[i] = next;
    r.spec.onWrite?.(merged, previous);
  }

  /** Registers as `NAME=value` lines, for stop reports and debugging. */
  dump(): string {
    return this.regs
      .map((r, i) => `${r.spec.name}=0x${this.values[i]!.toString(16).padStart(r.size * 2, '0')}`)
      .join(' ');
  }

  private unimplemented(r: Compiled, kind: 'read' | 'write'): void {
    this.stats.unimplementedAccesses++;
    if (r.warned) return;
    r.warned = true;
    const note = typeof r.spec.unimplemented === 'string' ? ` (${r.spec.unimplemented})` : '';
    this.warn(
      `${this.name}: ${kind} of unimplemented register ${r.spec.name}${note}; further ones counted only`,
    );
  }

  private undefinedAccess(offset: number, size: number, kind: 'read' | 'write'): number {
    this.stats.undefinedAccesses++;
    const o = offset < this.size ? offset : this.size - 1;
    if (this.warnedOffset[o] === 0) {
      this.warnedOffset[o] = 1;
      this.warn(
        `${this.name}: ${kind} of ${size} byte(s) at undefined offset 0x${offset.toString(16)}; ` +
          'further ones counted only',
      );
    }
    return kind === 'read' ? (this.undefinedRead & widthMask(size)) >>> 0 : 0;
  }
}
