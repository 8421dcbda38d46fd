/**
 * A bench for the AHCI model: a host bus with RAM, the HBA mapped at ABAR, a disk image in
 * test/.tmp, and helpers that build command headers, tables and FISes in RAM as a driver does.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Bus } from '../../../src/core/bus.js';
import { NodeHost } from '../../../src/host/node-host.js';
import { DiskImage } from '../../../plugins/ahci/disk-image.js';
import { Ahci } from '../../../plugins/ahci/hba.js';
import { FisType, PORT_BASE, PORT_STRIDE, REG_H2D_C } from '../../../plugins/ahci/registers.js';

export const TMP = resolve('test/.tmp');
export const ABAR = 0xfebf_0000;
export const CLB = 0x1_0000;
export const FB = 0x1_1000;
/** Command table of slot n at CTBA0 + n * 0x400. */
export const CTBA0 = 0x1_2000;

export function tmpDir(prefix: string): string {
  mkdirSync(TMP, { recursive: true });
  return mkdtempSync(join(TMP, prefix));
}

/** Sector n filled with bytes (n * 7 + i) & 0xff, so every sector differs. */
export function patternImage(sectors: number): Uint8Array {
  const b = new Uint8Array(sectors * 512);
  for (let s = 0; s < sectors; s++) for (let i = 0; i < 512; i++) b[s * 512 + i] = (s * 7 + i) & 0xff;
  return b;
}

export function writeImage(dir: string, name: string, bytes: Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

export interface Prd {
  addr: number;
  bytes: number;
  i?: boolean;
}

export class Rig {
  readonly bus = new Bus('host');
  readonly hba: Ahci;
  readonly irq: boolean[] = [];
  busMaster = true;

  constructor(
    readonly image: DiskImage | undefined,
    ports = 6,
  ) {
    this.bus.addRam('ram', 0, 16 * 1024 * 1024);
    this.hba = new Ahci({
      ports,
      disks: [image ? { image, model: 'TEST MODEL', serial: 'SN123', firmware: 'FW1' } : undefined],
      dma: this.bus,
      busMaster: () => this.busMaster,
      setInterrupt: (p) => this.irq.push(p),
    });
    this.bus.addMmio('ahci', ABAR, Ahci.mmioSize(ports), this.hba);
    this.hba.reset();
  }

  static open(path: string, persist = false, ports = 6): Rig {
    return new Rig(DiskImage.open(new NodeHost(), path, persist), ports);
  }

  get irqLevel(): boolean {
    return this.irq.at(-1) ?? false;
  }

  ghc(reg: number): number {
    return this.bus.read(ABAR + reg, 4);
  }
  setGhc(reg: number, v: number): void {
    this.bus.write(ABAR + reg, 4, v);
  }
  px(reg: number, port = 0): number {
    return this.bus.read(ABAR + PORT_BASE + port * PORT_STRIDE + reg, 4);
  }
  setPx(reg: number, v: number, port = 0): void {
    this.bus.write(ABAR + PORT_BASE + port * PORT_STRIDE + reg, 4, v >>> 0);
  }
  u32(addr: number): number {
    return this.bus.read(addr, 4);
  }
  bytes(addr: number, n: number): Uint8Array {
    return this.bus.readBytes(addr, n);
  }

  /** Write a command header for `slot` and its table (CFIS + PRDT). */
  command(slot: number, cfis: Uint8Array, prds: readonly Prd[], opts: { write?: boolean } = {}): void {
    const ctba = CTBA0 + slot * 0x400;
    const hdr = CLB + slot * 32;
    const dw0 = 5 | (opts.write ? 1 << 6 : 0) | (prds.length << 16);
    this.bus.write(hdr, 4, dw0);
    this.bus.write(hdr + 4, 4, 0xdead);
    this.bus.write(hdr + 8, 4, ctba);
    this.bus.write(hdr + 12, 4, 0);
    this.bus.writeBytes(ctba, new Uint8Array(0x80));
    this.bus.writeBytes(ctba, cfis);
    prds.forEach((p, i) => {
      const e = ctba + 0x80 + i * 16;
      this.bus.write(e, 4, p.addr);
      this.bus.write(e + 4, 4, 0);
      this.bus.write(e + 8, 4, 0);
      this.bus.write(e + 12, 4, ((p.bytes - 1) | (p.i ? 1 << 31 : 0)) >>> 0);
    });
  }

  prdbc(slot: number): number {
    return this.u32(CLB + slot * 32 + 4);
  }
}

/** A Register Host-to-Device FIS (command). */
export function regFis(command: number, lba = 0, count = 0): Uint8Array {
  const f = new Uint8Array(20);
  f[0] = FisType.RegH2D;
  f[1] = REG_H2D_C;
  f[2] = command;
  f[4] = lba & 0xff;
  f[5] = (lba >>> 8) & 0xff;
  f[6] = (lba >>> 16) & 0xff;
  f[7] = 0x40; // LBA mode
  f[8] = (lba >>> 24) & 0xff;
  f[9] = Math.floor(lba / 2 ** 32) & 0xff;
  f[10] = Math.floor(lba / 2 ** 40) & 0xff;
  f[12] = count & 0xff;
  f[13] = (count >>> 8) & 0xff;
  return f;
}
