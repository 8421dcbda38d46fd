/**
 * The physical bus of one machine (or of one guest): RAM regions, MMIO regions dispatched at page
 * granularity, and the 64 Ki I/O port space. Devices see offsets into their own range, never
 * absolute addresses (Firecracker's bus). Tables are flat arrays built when devices attach, so a
 * dispatch is an array index, never a Map look-up.
 *
 * Unmapped accesses have defined results, as on a PC: reads return all ones, writes are dropped,
 * and both are counted (the first few are logged).
 */
import { PAGE_SHIFT, PAGE_SIZE, hex, type AccessSize } from './addresses.js';
import { VmmError } from './errors.js';
import { IrqLines } from './irq.js';

/** A memory-mapped device. Accesses of 8 bytes are split into two 4-byte accesses, low half first. */
export interface MmioDevice {
  mmioRead(offset: number, size: 1 | 2 | 4): number;
  mmioWrite(offset: number, size: 1 | 2 | 4, value: number): void;
}

/** A port-mapped device. Reads return the value zero-extended to `size` bytes. */
export interface PortDevice {
  ioRead(offset: number, size: 1 | 2 | 4): number;
  ioWrite(offset: number, size: 1 | 2 | 4, value: number): void;
}

export interface RamRegion {
  readonly kind: 'ram';
  readonly name: string;
  readonly base: number;
  readonly size: number;
  readonly data: Uint8Array;
  /**
   * One byte per 4 KiB page: non-zero when a CPU holds decoded code from that page. Every writer
   * other than the CPU's own store path (DMA, loaders, the policy) calls `bus.noteRamWrite`, which
   * consults this and tells the code-cache owner to drop the page.
   */
  readonly codePages: Uint8Array;
}

export interface MmioRegion {
  readonly kind: 'mmio';
  readonly name: string;
  readonly base: number;
  readonly size: number;
  readonly device: MmioDevice;
}

export type Region = RamRegion | MmioRegion;

interface PortRange {
  readonly name: string;
  readonly base: number;
  readonly size: number;
  readonly device: PortDevice;
}

export interface BusStats {
  unmappedReads: number;
  unmappedWrites: number;
  unmappedPortReads: number;
  unmappedPortWrites: number;
}

/** Physical addresses below this are dispatched through a flat page table; above, through a sorted list. */
const FLAT_LIMIT = 2 ** 32;
const FLAT_PAGES = FLAT_LIMIT / PAGE_SIZE;
const NO_REGION = -1;

export type CodeInvalidator = (physPage: number) => void;

export class Bus {
  readonly name: string;
  readonly regions: Region[] = [];
  /** The interrupt lines of this bus (ISA IRQs / GSIs). */
  readonly irq = new IrqLines();
  /** Region index per 4 KiB page below 4 GiB; NO_REGION when unmapped. */
  private readonly pageRegion = new Int32Array(FLAT_PAGES).fill(NO_REGION);
  private readonly highRegions: Region[] = [];
  private readonly ports: PortRange[] = [];
  /** Ranges decoded only for 4-byte accesses, ahead of `ports` (see addDwordPorts). Usually empty. */
  private readonly dwordPorts: PortRange[] = [];
  /** Port range index per port; NO_REGION when unmapped. */
  private readonly portIndex = new Int32Array(0x10000).fill(NO_REGION);
  readonly stats: BusStats = {
    unmappedReads: 0,
    unmappedWrites: 0,
    unmappedPortReads: 0,
    unmappedPortWrites: 0,
  };
  private codeInvalidators: CodeInvalidator[] = [];
  /** Called once per distinct unmapped access kind/address, at most `warnLimit` times. */
  onUnmapped: ((what: string) => void) | undefined;
  private warned = 0;
  warnLimit = 8;

  constructor(name: string) {
    this.name = name;
  }

  // ---- assembly ---------------------------------------------------------------------------

  addRam(name: string, base: number, size: number, data?: Uint8Array): RamRegion {
    checkRange(this.name, name, base, size, true);
    const region: RamRegion = {
      kind: 'ram',
      name,
      base,
      size,
      data: data ?? new Uint8Array(size),
      codePages: new Uint8Array(Math.ceil(size / PAGE_SIZE)),
    };
    if (region.data.length < size) {
      throw new VmmError('internal', `RAM region ${name}: backing store smaller than ${size} bytes`);
    }
    this.insert(region);
    return region;
  }

  addMmio(name: string, base: number, size: number, device: MmioDevice): MmioRegion {
    checkRange(this.name, name, base, size, true);
    const region: MmioRegion = { kind: 'mmio', name, base, size, device };
    this.insert(region);
    return region;
  }

  addPorts(name: string, base: number, size: number, device: PortDevice): void {
    if (
      !Number.isInteger(base) ||
      !Number.isInteger(size) ||
      size <= 0 ||
      base < 0 ||
      base + size > 0x10000
    ) {
      throw new VmmError(
        'bus-conflict',
        `${name}: I/O ports ${hex(base)}+${size} do not fit the 16-bit port space of ${this.name}`,
      );
    }
    for (let p = base; p < base + size; p++) {
      const other = this.portIndex[p]!;
      if (other !== NO_REGION) {
        throw new VmmError(
          'bus-conflict',
          `${name}: I/O port ${hex(p, 4)} is already claimed by ${this.ports[other]!.name} on ${this.name}`,
        );
      }
    }
    const idx = this.ports.length;
    this.ports.push({ name, base, size, device });
    this.portIndex.fill(idx, base, base + size);
  }

  /**
   * Claim ports for 4-byte accesses only. They take precedence over ordinary claims for dword
   * accesses; narrower accesses go to whoever claims the port normally. This is how a PC decodes
   * CONFIG_ADDRESS at 0xCF8 (PCI Local Bus 3.0 §3.2.2.3.2: only a full dword access reaches it; a
   * byte access to 0xCF9 is the ICH9 reset control register).
   */
  addDwordPorts(name: string, base: number, size: number, device: PortDevice): void {
    if (
      !Number.isInteger(base) ||
      !Number.isInteger(size) ||
      size <= 0 ||
      base < 0 ||
      base + size > 0x10000
    ) {
      throw new VmmError(
        'bus-conflict',
        `${name}: I/O ports ${hex(base)}+${size} do not fit the 16-bit port space of ${this.name}`,
      );
    }
    const other = this.dwordPorts.find((p) => base < p.base + p.size && p.base < base + size);
    if (other) {
      throw new VmmError(
        'bus-conflict',
        `${name}: dword I/O ports ${hex(base, 4)}+${size} are already claimed by ${other.name} on ${this.name}`,
      );
    }
    this.dwordPorts.push({ name, base, size, device });
  }

  /** Remove a previously added region (used by policies that remap, and by tests). */
  removeRegion(region: Region): void {
    const idx = this.regions.indexOf(region);
    if (idx < 0) return;
    this.regions.splice(idx, 1);
    this.rebuildPageTable();
  }

  private insert(region: Region): void {
    const overlap = this.regions.find(
      (r) => region.base < r.base + r.size && r.base < region.base + region.size,
    );
    if (overlap) {
      throw new VmmError(
        'bus-conflict',
        `${region.name}: ${hex(region.base)}..${hex(region.base + region.size - 1)} overlaps ${overlap.name} ` +
          `(${hex(overlap.base)}..${hex(overlap.base + overlap.size - 1)}) on ${this.name}`,
      );
    }
    this.regions.push(region);
    this.rebuildPageTable();
  }

  private rebuildPageTable(): void {
    this.pageRegion.fill(NO_REGION);
    this.highRegions.length = 0;
    this.regions.forEach((r, i) => {
      const end = r.base + r.size;
      if (r.base < FLAT_LIMIT) {
        this.pageRegion.fill(i, r.base / PAGE_SIZE, Math.min(end, FLAT_LIMIT) / PAGE_SIZE);
      }
      if (end > FLAT_LIMIT) this.highRegions.push(r);
    });
  }

  /** Subscribe to code-page invalidations (the CPU's decoded-code cache). */
  onCodeWrite(fn: CodeInvalidator): void {
    this.codeInvalidators.push(fn);
  }

  // ---- look-up ----------------------------------------------------------------------------

  /** The region holding a physical address, or undefined. Not for per-access use: cache the result. */
  regionAt(addr: number): Region | undefined {
    if (addr < FLAT_LIMIT) {
      const i = this.pageRegion[Math.floor(addr / PAGE_SIZE)]!;
      return i === NO_REGION ? undefined : this.regions[i];
    }
    return this.highRegions.find((r) => addr >= r.base && addr < r.base + r.size);
  }

  /** The RAM region holding a physical address, or undefined if it is MMIO or unmapped. */
  ramAt(addr: number): RamRegion | undefined {
    const r = this.regionAt(addr);
    return r?.kind === 'ram' ? r : undefined;
  }

  // ---- generic accesses (devices, loaders, policy; the CPU has its own fast path) ---------

  read(addr: number, size: AccessSize): number {
    if (size === 8) throw new VmmError('internal', 'Bus.read: use read64 for 8-byte reads');
    const r = this.regionAt(addr);
    if (r === undefined || addr + size > r.base + r.size) return this.unmappedRead(addr, size);
    const off = addr - r.base;
    if (r.kind === 'ram') {
      const d = r.data;
      if (size === 1) return d[off]!;
      if (size === 2) return d[off]! | (d[off + 1]! << 8);
      return (d[off]! | (d[off + 1]! << 8) | (d[off + 2]! << 16) | (d[off + 3]! << 24)) >>> 0;
    }
    return r.device.mmioRead(off, size);
  }

  write(addr: number, size: AccessSize, value: number): void {
    if (size === 8) throw new VmmError('internal', 'Bus.write: use write64 for 8-byte writes');
    const r = this.regionAt(addr);
    if (r === undefined || addr + size > r.base + r.size) {
      this.unmappedWrite(addr, size);
      return;
    }
    const off = addr - r.base;
    if (r.kind === 'ram') {
      const d = r.data;
      d[off] = value;
      if (size >= 2) d[off + 1] = value >>> 8;
      if (size === 4) {
        d[off + 2] = value >>> 16;
        d[off + 3] = value >>> 24;
      }
      this.noteRamWrite(r, off, size);
      return;
    }
    r.device.mmioWrite(off, size, value);
  }

  read64(addr: number): bigint {
    const lo = this.read(addr, 4);
    const hi = this.read(addr + 4, 4);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  write64(addr: number, value: bigint): void {
    this.write(addr, 4, Number(value & 0xffff_ffffn));
    this.write(addr + 4, 4, Number((value >> 32n) & 0xffff_ffffn));
  }

  /** Copy bytes out of physical memory (MMIO read byte by byte; unmapped reads as 0xFF). */
  readBytes(addr: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const a = addr + done;
      const r = this.regionAt(a);
      if (r?.kind === 'ram') {
        const n = Math.min(length - done, r.base + r.size - a);
        out.set(r.data.subarray(a - r.base, a - r.base + n), done);
        done += n;
      } else {
        out[done] = this.read(a, 1);
        done++;
      }
    }
    return out;
  }

  /** Copy bytes into physical memory (DMA, loaders). Code caches over the range are invalidated. */
  writeBytes(addr: number, bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.length) {
      const a = addr + done;
      const r = this.regionAt(a);
      if (r?.kind === 'ram') {
        const n = Math.min(bytes.length - done, r.base + r.size - a);
        r.data.set(bytes.subarray(done, done + n), a - r.base);
        this.noteRamWrite(r, a - r.base, n);
        done += n;
      } else {
        this.write(a, 1, bytes[done]!);
        done++;
      }
    }
  }

  /** Tell code-cache owners that RAM at `offset` in `region` changed behind the CPU's back. */
  noteRamWrite(region: RamRegion, offset: number, length: number): void {
    const first = offset >>> PAGE_SHIFT;
    const last = (offset + length - 1) >>> PAGE_SHIFT;
    for (let p = first; p <= last; p++) {
      if (region.codePages[p] !== 0) {
        region.codePages[p] = 0;
        const physPage = region.base / PAGE_SIZE + p;
        for (const fn of this.codeInvalidators) fn(physPage);
      }
    }
  }

  // ---- I/O ports ----------------------------------------------------------------------------

  ioRead(port: number, size: 1 | 2 | 4): number {
    if (size === 4 && this.dwordPorts.length !== 0) {
      const d = this.dwordPort(port);
      if (d !== undefined) return d.device.ioRead(port - d.base, 4);
    }
    const i = this.portIndex[port]!;
    if (i !== NO_REGION) {
      const p = this.ports[i]!;
      if (port + size <= p.base + p.size) return p.device.ioRead(port - p.base, size);
    }
    this.stats.unmappedPortReads++;
    // Format the message only while it is still logged (a guest may hammer a port, e.g. 0x80).
    if (this.warned < this.warnLimit) this.warn(`read of unmapped I/O port ${hex(port, 4)} (size ${size})`);
    return size === 4 ? 0xffff_ffff : (1 << (size * 8)) - 1;
  }

  ioWrite(port: number, size: 1 | 2 | 4, value: number): void {
    if (size === 4 && this.dwordPorts.length !== 0) {
      const d = this.dwordPort(port);
      if (d !== undefined) {
        d.device.ioWrite(port - d.base, 4, value);
        return;
      }
    }
    const i = this.portIndex[port]!;
    if (i !== NO_REGION) {
      const p = this.ports[i]!;
      if (port + size <= p.base + p.size) {
        p.device.ioWrite(port - p.base, size, value);
        return;
      }
    }
    this.stats.unmappedPortWrites++;
    if (this.warned < this.warnLimit)
      this.warn(`write of ${hex(value)} to unmapped I/O port ${hex(port, 4)} (size ${size})`);
  }

  private dwordPort(port: number): PortRange | undefined {
    for (const d of this.dwordPorts) if (port >= d.base && port + 4 <= d.base + d.size) return d;
    return undefined;
  }

  /** Whether a port is claimed by a device (policies use this to decide passthrough). */
  hasPort(port: number): boolean {
    return this.portIndex[port] !== NO_REGION;
  }

  portOwner(port: number): string | undefined {
    const i = this.portIndex[port]!;
    return i === NO_REGION ? undefined : this.ports[i]!.name;
  }

  private unmappedRead(addr: number, size: 1 | 2 | 4): number {
    this.stats.unmappedReads++;
    this.warn(`read of unmapped physical address ${hex(addr)} (size ${size})`);
    return size === 4 ? 0xffff_ffff : (1 << (size * 8)) - 1;
  }

  private unmappedWrite(addr: number, size: AccessSize): void {
    this.stats.unmappedWrites++;
    this.warn(`write to unmapped physical address ${hex(addr)} (size ${size})`);
  }

  private warn(what: string): void {
    if (this.warned < this.warnLimit) {
      this.warned++;
      this.onUnmapped?.(
        `${this.name}: ${what}${this.warned === this.warnLimit ? ' (further ones counted only)' : ''}`,
      );
    }
  }
}

function checkRange(bus: string, name: string, base: number, size: number, pageAligned: boolean): void {
  if (!Number.isSafeInteger(base) || !Number.isSafeInteger(size) || base < 0 || size <= 0) {
    throw new VmmError('bus-conflict', `${name}: invalid range ${base}+${size} on ${bus}`);
  }
  if (base + size > 2 ** 52) {
    throw new VmmError(
      'bus-conflict',
      `${name}: ${hex(base)}+${hex(size)} overflows the physical address space`,
    );
  }
  if (pageAligned && (base % PAGE_SIZE !== 0 || size % PAGE_SIZE !== 0)) {
    throw new VmmError(
      'bus-conflict',
      `${name}: ${hex(base)}+${hex(size)} is not 4 KiB aligned (regions are dispatched per page)`,
    );
  }
}
