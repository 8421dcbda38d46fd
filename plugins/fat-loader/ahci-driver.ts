/**
 * A small AHCI driver on the host side, the way the tutorial's hypervisor reads disk.img through
 * its disk controller: it finds the HBA by PCI class 01/06/01 through configuration mechanism #1,
 * turns on memory decoding and bus mastering, resets the HBA and enables AHCI mode, starts a port
 * with a device, and moves sectors with IDENTIFY DEVICE and READ/WRITE DMA EXT commands that it
 * builds in a scratch area of host RAM (command list, received FIS area, command table with a PRDT
 * of 4 KiB entries, data buffer). Completion is polled (PxCI), errors are read from PxIS/PxTFD.
 *
 * It talks to the controller only through ports and memory, never to the model's objects.
 */
import { hex } from '../../src/core/addresses.js';
import type { Bus } from '../../src/core/bus.js';
import { VmmError } from '../../src/core/errors.js';
import { formatPciAddress, type PciAddress } from '../../src/devices/pci.js';
import { PciCfg, PciCommand } from '../pci-host/config-space.js';
import { CONFIG_ADDRESS_PORT, CONFIG_DATA_PORT, configAddress } from '../pci-host/host.js';
import {
  AtaCmd,
  AtaError,
  AtaStatus,
  CMD_LIST_ALIGN,
  CmdHeader,
  CmdTable,
  FisType,
  Ghc,
  GhcBits,
  PORT_BASE,
  PORT_STRIDE,
  PRD_I,
  PRD_SIZE,
  PXIS_FATAL,
  Px,
  PxCMD,
  REG_H2D_C,
  RFIS_SIZE,
  SECTOR_SIZE,
  SIG_ATA,
  SSTS_DET_MASK,
  SSTS_DET_PRESENT,
  TFD_ERR_SHIFT,
} from '../ahci/registers.js';
import { ID106_LOGICAL_LONG, ID106_VALID, ID83_LBA48, IdWord, MODEL_CHARS } from '../ahci/identify.js';
import type { SectorDevice } from './fat/device.js';

/** PCI class code of an AHCI 1.0 SATA controller: mass storage / SATA / AHCI. */
export const AHCI_CLASS = 0x01_06_01;
/** Polls of a register before the driver gives up (the model answers at once; hardware in microseconds). */
const POLL_LIMIT = 100_000;
/** Scratch layout: command list, FIS area, command table (CFIS + PRDT), then the data buffer. */
const LAYOUT = { clb: 0x0, fb: 0x400, ctba: 0x500, data: 0x2000 } as const;
const MAX_PRDS = (LAYOUT.data - LAYOUT.ctba - CmdTable.PRDT) / PRD_SIZE;
const PAGE = 0x1000;
export const MIN_SCRATCH = LAYOUT.data + PAGE;

export interface AhciDriverOptions {
  bus: Bus;
  /** Host-physical address of the scratch area (4 KiB aligned, in RAM). */
  scratch: number;
  scratchSize: number;
  /** Use the function at this address (default: the first AHCI function found). */
  pci?: PciAddress;
  /** Use this port (default: the first implemented port with an ATA device). */
  port?: number;
  /** What to call the disk in messages (usually its image file). */
  name?: string;
  log?: (message: string) => void;
}

export interface IdentifyInfo {
  model: string;
  sectors: number;
  lba48: boolean;
}

const fail = (m: string) => new VmmError('disk', m);

export class AhciDriver implements SectorDevice {
  readonly sectorSize = SECTOR_SIZE;
  readonly sectorCount: number;
  readonly name: string;
  readonly pci: PciAddress;
  readonly abar: number;
  readonly port: number;
  readonly info: IdentifyInfo;
  private readonly bus: Bus;
  private readonly px: number;
  private readonly scratch: number;
  private readonly maxSectors: number;
  /** Commands issued (for the loader's report and tests). */
  commands = 0;

  private constructor(opts: AhciDriverOptions, pci: PciAddress, abar: number, port: number) {
    this.bus = opts.bus;
    this.pci = pci;
    this.abar = abar;
    this.port = port;
    this.px = abar + PORT_BASE + port * PORT_STRIDE;
    this.scratch = opts.scratch;
    const buffer = Math.min(opts.scratchSize - LAYOUT.data, MAX_PRDS * PAGE);
    this.maxSectors = Math.floor(buffer / SECTOR_SIZE);
    this.name = opts.name ?? `AHCI ${formatPciAddress(pci)} port ${port}`;
    this.startPort();
    this.info = this.identify();
    this.sectorCount = this.info.sectors;
  }

  /** Find the HBA, reset it, start a port and identify its disk. */
  static open(opts: AhciDriverOptions): AhciDriver {
    const { bus } = opts;
    if (opts.scratch % PAGE !== 0 || opts.scratchSize < MIN_SCRATCH) {
      throw fail(`the AHCI scratch area must be 4 KiB aligned and at least ${MIN_SCRATCH} bytes`);
    }
    const pci = opts.pci ?? findAhci(bus);
    if (!pci) throw fail('no AHCI controller (PCI class 01/06/01) found on bus 0');
    const cfg = (reg: number) => configRead(bus, pci, reg);
    if (cfg(PciCfg.VENDOR_ID) === 0xffff_ffff || cfg(PciCfg.REVISION_ID) >>> 8 !== AHCI_CLASS) {
      throw fail(`no AHCI controller at PCI ${formatPciAddress(pci)}`);
    }
    // Memory decoding for ABAR, bus mastering for the HBA's DMA.
    const command = cfg(PciCfg.COMMAND) & 0xffff;
    configWrite(bus, pci, PciCfg.COMMAND, command | PciCommand.MemorySpace | PciCommand.BusMaster);
    const abar = (cfg(PciCfg.BAR0 + 4 * 5) & ~0xf) >>> 0;
    if (abar === 0)
      throw fail(`the AHCI controller at ${formatPciAddress(pci)} has no ABAR assigned (BAR5 is 0)`);
    const g = (reg: number) => bus.read(abar + reg, 4);
    // HBA reset (AHCI §10.4.3), then AHCI mode.
    bus.write(abar + Ghc.GHC, 4, GhcBits.HR);
    poll(() => (g(Ghc.GHC) & GhcBits.HR) === 0, 'the HBA reset (GHC.HR) did not complete');
    bus.write(abar + Ghc.GHC, 4, GhcBits.AE >>> 0);
    const pi = g(Ghc.PI);
    let port = opts.port;
    const hasDisk = (p: number) => {
      const base = abar + PORT_BASE + p * PORT_STRIDE;
      return (
        (bus.read(base + Px.SSTS, 4) & SSTS_DET_MASK) === SSTS_DET_PRESENT &&
        bus.read(base + Px.SIG, 4) === SIG_ATA
      );
    };
    if (port === undefined) {
      for (let p = 0; p < 32 && port === undefined; p++) if ((pi >>> p) & 1 && hasDisk(p)) port = p;
      if (port === undefined)
        throw fail(`no disk on any port of the AHCI controller at ${formatPciAddress(pci)}`);
    } else if (((pi >>> port) & 1) === 0 || !hasDisk(port)) {
      throw fail(`no disk on port ${port} of the AHCI controller at ${formatPciAddress(pci)}`);
    }
    opts.log?.(`AHCI ${formatPciAddress(pci)} ABAR ${hex(abar)}, port ${port}`);
    return new AhciDriver(opts, pci, abar, port);
  }

  private reg(r: number): number {
    return this.bus.read(this.px + r, 4);
  }
  private setReg(r: number, v: number): void {
    this.bus.write(this.px + r, 4, v >>> 0);
  }

  /** Stop the command engine and FIS receive (AHCI §10.1.2). */
  private stopPort(): void {
    const cmd = this.reg(Px.CMD);
    if (cmd & (PxCMD.ST | PxCMD.CR)) {
      this.setReg(Px.CMD, cmd & ~PxCMD.ST);
      poll(() => (this.reg(Px.CMD) & PxCMD.CR) === 0, `${this.name}: the port's command list did not stop`);
    }
    const c2 = this.reg(Px.CMD);
    if (c2 & (PxCMD.FRE | PxCMD.FR)) {
      this.setReg(Px.CMD, c2 & ~PxCMD.FRE);
      poll(() => (this.reg(Px.CMD) & PxCMD.FR) === 0, `${this.name}: the port's FIS receive did not stop`);
    }
  }

  /** Point the port at the scratch structures and start it: FRE, then ST (AHCI §10.3.1). */
  private startPort(): void {
    this.stopPort();
    const s = this.scratch;
    if ((s + LAYOUT.clb) % CMD_LIST_ALIGN !== 0 || (s + LAYOUT.fb) % RFIS_SIZE !== 0) {
      throw fail('internal: scratch layout misaligned');
    }
    this.setReg(Px.CLB, s + LAYOUT.clb);
    this.setReg(Px.CLBU, 0);
    this.setReg(Px.FB, s + LAYOUT.fb);
    this.setReg(Px.FBU, 0);
    this.setReg(Px.SERR, 0xffff_ffff);
    this.setReg(Px.IS, 0xffff_ffff);
    this.setReg(Px.CMD, this.reg(Px.CMD) | PxCMD.FRE);
    poll(() => (this.reg(Px.CMD) & PxCMD.FR) !== 0, `${this.name}: FIS receive did not start`);
    poll(
      () => (this.reg(Px.TFD) & (AtaStatus.BSY | AtaStatus.DRQ)) === 0,
      `${this.name}: the device stays busy (PxTFD ${hex(this.reg(Px.TFD))})`,
    );
    this.setReg(Px.CMD, this.reg(Px.CMD) | PxCMD.ST);
  }

  private identify(): IdentifyInfo {
    const id = this.command(AtaCmd.IDENTIFY_DEVICE, 0, 0, SECTOR_SIZE, false);
    const w = (i: number) => id[i * 2]! | (id[i * 2 + 1]! << 8);
    let model = '';
    for (let i = 0; i < MODEL_CHARS / 2; i++) {
      const v = w(IdWord.MODEL + i);
      model += String.fromCharCode(v >>> 8, v & 0xff);
    }
    const lba48 = (w(IdWord.COMMAND_SET_2) & ID83_LBA48) !== 0;
    const sectors = lba48
      ? w(IdWord.LBA48_SECTORS) +
        w(IdWord.LBA48_SECTORS + 1) * 0x1_0000 +
        w(IdWord.LBA48_SECTORS + 2) * 0x1_0000_0000 +
        w(IdWord.LBA48_SECTORS + 3) * 0x1_0000_0000_0000
      : w(IdWord.LBA28_SECTORS) + w(IdWord.LBA28_SECTORS + 1) * 0x1_0000;
    const w106 = w(IdWord.SECTOR_SIZE_INFO);
    if ((w106 & 0xc000) === ID106_VALID && (w106 & ID106_LOGICAL_LONG) !== 0) {
      const bytes = (w(IdWord.LOGICAL_SECTOR_WORDS) + w(IdWord.LOGICAL_SECTOR_WORDS + 1) * 0x1_0000) * 2;
      if (bytes !== SECTOR_SIZE)
        throw fail(`${this.name}: logical sectors of ${bytes} bytes are not supported`);
    }
    if (!lba48) throw fail(`${this.name}: the disk does not support 48-bit commands (READ DMA EXT)`);
    return { model: model.trim(), sectors, lba48 };
  }

  read(lba: number, count: number): Uint8Array {
    this.checkRange(lba, count, 'read');
    const out = new Uint8Array(count * SECTOR_SIZE);
    for (let done = 0; done < count;) {
      const n = Math.min(count - done, this.maxSectors);
      out.set(this.command(AtaCmd.READ_DMA_EXT, lba + done, n, n * SECTOR_SIZE, false), done * SECTOR_SIZE);
      done += n;
    }
    return out;
  }

  write(lba: number, data: Uint8Array): void {
    if (data.length % SECTOR_SIZE !== 0)
      throw fail(`${this.name}: a write of ${data.length} bytes is not whole sectors`);
    const count = data.length / SECTOR_SIZE;
    this.checkRange(lba, count, 'write');
    for (let done = 0; done < count;) {
      const n = Math.min(count - done, this.maxSectors);
      this.command(
        AtaCmd.WRITE_DMA_EXT,
        lba + done,
        n,
        n * SECTOR_SIZE,
        true,
        data.subarray(done * SECTOR_SIZE, (done + n) * SECTOR_SIZE),
      );
      done += n;
    }
  }

  /** Stop the port (the HBA is left reset and enabled). */
  close(): void {
    this.stopPort();
  }

  private checkRange(lba: number, count: number, what: string): void {
    if (
      !Number.isInteger(lba) ||
      !Number.isInteger(count) ||
      lba < 0 ||
      count < 0 ||
      lba + count > this.sectorCount
    ) {
      throw fail(
        `${this.name}: ${what} of ${count} sector(s) at LBA ${lba} is outside the disk (${this.sectorCount} sectors)`,
      );
    }
  }

  /** Build slot 0's command (header, Register H2D FIS, PRDT), issue it, wait, check, return the data. */
  private command(
    ata: number,
    lba: number,
    count: number,
    bytes: number,
    write: boolean,
    data?: Uint8Array,
  ): Uint8Array {
    const bus = this.bus;
    const s = this.scratch;
    const ctba = s + LAYOUT.ctba;
    const buf = s + LAYOUT.data;
    const prds = Math.ceil(bytes / PAGE);
    if (data) bus.writeBytes(buf, data);
    // Command table: the FIS (ACS-3 48-bit register layout, LBA mode) and one PRD per 4 KiB.
    const table = new Uint8Array(CmdTable.PRDT + prds * PRD_SIZE);
    const dv = new DataView(table.buffer);
    table[0] = FisType.RegH2D;
    table[1] = REG_H2D_C;
    table[2] = ata;
    table[4] = lba & 0xff;
    table[5] = (lba >>> 8) & 0xff;
    table[6] = (lba >>> 16) & 0xff;
    table[7] = 0x40; // Device: LBA
    table[8] = (lba >>> 24) & 0xff;
    table[9] = Math.floor(lba / 0x1_0000_0000) & 0xff;
    table[10] = Math.floor(lba / 0x100_0000_0000) & 0xff;
    table[12] = count & 0xff;
    table[13] = (count >>> 8) & 0xff;
    for (let i = 0; i < prds; i++) {
      const len = Math.min(PAGE, bytes - i * PAGE);
      const o = CmdTable.PRDT + i * PRD_SIZE;
      dv.setUint32(o, buf + i * PAGE, true);
      dv.setUint32(o + 12, (len - 1) | (i === prds - 1 ? PRD_I : 0), true);
    }
    bus.writeBytes(ctba, table);
    // Command header, slot 0: CFL = 5 dwords, W for writes, PRDTL.
    const hdr = new Uint8Array(32);
    const hv = new DataView(hdr.buffer);
    hv.setUint32(0, 5 | (write ? CmdHeader.W : 0) | (prds << CmdHeader.PRDTL_SHIFT), true);
    hv.setUint32(CmdHeader.CTBA, ctba, true);
    bus.writeBytes(s + LAYOUT.clb, hdr);
    this.setReg(Px.IS, 0xffff_ffff);
    this.setReg(Px.CI, 1);
    this.commands++;
    let done = false;
    for (let i = 0; i < POLL_LIMIT && !done; i++) {
      if ((this.reg(Px.CI) & 1) === 0) done = true;
      else if (this.reg(Px.IS) & PXIS_FATAL) break;
    }
    const tfd = this.reg(Px.TFD);
    const is = this.reg(Px.IS);
    if (!done || (tfd & AtaStatus.ERR) !== 0 || (is & PXIS_FATAL) !== 0) {
      const err = (tfd >>> TFD_ERR_SHIFT) & 0xff;
      const why = !done && (is & PXIS_FATAL) === 0 ? 'no completion' : describeError(tfd & 0xff, err, is);
      // Recover for the next command: stopping the engine clears PxCI (AHCI §6.2.2.1).
      this.startPort();
      throw fail(`${this.name}: ${commandName(ata)} of ${count} sector(s) at LBA ${lba} failed: ${why}`);
    }
    const prdbc = bus.read(s + LAYOUT.clb + CmdHeader.PRDBC, 4);
    if (prdbc !== bytes) {
      throw fail(`${this.name}: ${commandName(ata)} moved ${prdbc} bytes instead of ${bytes}`);
    }
    return write ? new Uint8Array(0) : bus.readBytes(buf, bytes);
  }
}

function describeError(status: number, error: number, is: number): string {
  const bits: string[] = [];
  if (error & AtaError.ABRT) bits.push('ABRT');
  if (error & AtaError.IDNF) bits.push('IDNF');
  return `status ${hex(status, 2)} error ${hex(error, 2)}${bits.length ? ` (${bits.join(', ')})` : ''}, PxIS ${hex(is, 8)}`;
}

function commandName(ata: number): string {
  for (const [k, v] of Object.entries(AtaCmd)) if (v === ata) return k.replace(/_/g, ' ');
  return `command ${hex(ata, 2)}`;
}

function poll(done: () => boolean, message: string): void {
  for (let i = 0; i < POLL_LIMIT; i++) if (done()) return;
  throw fail(message);
}

export function configRead(bus: Bus, a: PciAddress, reg: number): number {
  bus.ioWrite(CONFIG_ADDRESS_PORT, 4, configAddress(a.bus, a.device, a.function, reg));
  return bus.ioRead(CONFIG_DATA_PORT, 4);
}

export function configWrite(bus: Bus, a: PciAddress, reg: number, value: number): void {
  bus.ioWrite(CONFIG_ADDRESS_PORT, 4, configAddress(a.bus, a.device, a.function, reg & ~3));
  if ((reg & 3) === 0 && reg === PciCfg.COMMAND) bus.ioWrite(CONFIG_DATA_PORT, 2, value & 0xffff);
  else bus.ioWrite(CONFIG_DATA_PORT, 4, value);
}

/**
 * Bus 0 enumeration (PCI 3.0 §3.2.2.3.2): the first function whose class is AHCI. Every function
 * number is probed, not only those of multi-function devices: the machine may hold 00:1f.2 without
 * the LPC bridge at 00:1f.0 that a real ICH9 has.
 */
export function findAhci(bus: Bus): PciAddress | undefined {
  for (let device = 0; device < 32; device++) {
    for (let fn = 0; fn < 8; fn++) {
      const a = { bus: 0, device, function: fn };
      if ((configRead(bus, a, PciCfg.VENDOR_ID) & 0xffff) === 0xffff) continue;
      if (configRead(bus, a, PciCfg.REVISION_ID) >>> 8 === AHCI_CLASS) return a;
    }
  }
  return undefined;
}
