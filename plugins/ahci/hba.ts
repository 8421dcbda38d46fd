/**
 * The AHCI host bus adapter (Serial ATA AHCI 1.3.1), ICH9 flavour: generic host control, ports
 * with command list and received-FIS areas, command tables with PRDT scatter-gather, and an ATA
 * disk behind each port with a backing image. Commands run to completion when PxCI is written
 * (or when the port becomes able to run them): the model has no transfer latency, so a driver
 * that polls PxCI sees the slot clear on its first look.
 *
 * Memory accesses (command lists, tables, data) go through `dma`, the host bus, and only while
 * the PCI function is a bus master.
 */
import { RegisterBank, type RegisterSpec } from '../../src/devices/registers.js';
import type { MmioDevice } from '../../src/core/bus.js';
import type { DiskImage } from './disk-image.js';
import { identifyData } from './identify.js';
import {
  AHCI_VERSION_1_3,
  AtaCmd,
  AtaError,
  AtaStatus,
  COMMAND_SLOTS,
  CONTROL_SRST,
  CMD_HEADER_SIZE,
  Cap,
  CmdHeader,
  CmdTable,
  DEFAULT_PXCMD,
  ERROR_DIAG_PASSED,
  FIS_D,
  FIS_I,
  FisType,
  GHC_SIZE,
  Ghc,
  GhcBits,
  ISS_GEN1,
  MAX_PORTS,
  PIO_SETUP_SIZE,
  PORT_BASE,
  PORT_STRIDE,
  PRD_DBC_MASK,
  PRD_I,
  PRD_SIZE,
  PXCMD_WRITABLE,
  PXIE_WRITABLE,
  PXIS_W1C,
  Px,
  PxCMD,
  PxIS,
  REG_D2H_SIZE,
  REG_H2D_C,
  Rfis,
  SCTL_DET_COMRESET,
  SECTOR_SIZE,
  SIG_ATA,
  SIG_NONE,
  SSTS_PRESENT,
  STATUS_ERROR,
  STATUS_OK,
  TFD_ERR_SHIFT,
  TFD_NO_DEVICE,
} from './registers.js';

const TWO_32 = 0x1_0000_0000;

export interface Dma {
  readBytes(addr: number, length: number): Uint8Array;
  writeBytes(addr: number, bytes: Uint8Array): void;
}

export interface AhciDiskSpec {
  readonly image: DiskImage;
  readonly model: string;
  readonly serial: string;
  readonly firmware: string;
}

export interface AhciOptions {
  /** Implemented ports (1-32). */
  ports: number;
  /** The disk on each port, by port number. */
  disks: readonly (AhciDiskSpec | undefined)[];
  dma: Dma;
  /** Whether the PCI function may master the bus (Command.BusMaster). */
  busMaster: () => boolean;
  /** The HBA's interrupt condition (GHC.IE and IS), to the PCI function's INTx. */
  setInterrupt: (pending: boolean) => void;
  warn?: (message: string) => void;
}

export interface AhciStats {
  commands: number;
  ataErrors: number;
  unsupportedCommands: number;
  prdtOverflows: number;
  /** PxCI writes while PxCMD.ST was clear (ignored, §3.3.14). */
  ciWhileStopped: number;
  /** Commands that waited because bus mastering was off. */
  blockedWithoutBusMaster: number;
}

type Outcome = 'done' | 'fatal';

export class AhciPort {
  readonly bank: RegisterBank;
  private readonly iCLB: number;
  private readonly iCLBU: number;
  private readonly iFB: number;
  private readonly iFBU: number;
  private readonly iIS: number;
  private readonly iIE: number;
  private readonly iCMD: number;
  private readonly iTFD: number;
  private readonly iSIG: number;
  private readonly iSSTS: number;
  private readonly iSCTL: number;
  private readonly iSACT: number;
  private readonly iCI: number;
  /** A fatal error stopped the command list; cleared with PxCMD.ST (§6.2.2). */
  halted = false;
  /** The device's signature FIS waits for PxCMD.FRE to be posted. */
  private signaturePending = false;
  private srst = false;
  private busy = false;
  private identify: Uint8Array | undefined;

  constructor(
    private readonly hba: Ahci,
    readonly index: number,
    warn: (m: string) => void,
  ) {
    const specs: RegisterSpec[] = [
      { name: 'PxCLB', offset: Px.CLB, width: 4, access: 'rw', writeMask: 0xffff_fc00 },
      { name: 'PxCLBU', offset: Px.CLBU, width: 4, access: 'rw' },
      { name: 'PxFB', offset: Px.FB, width: 4, access: 'rw', writeMask: 0xffff_ff00 },
      { name: 'PxFBU', offset: Px.FBU, width: 4, access: 'rw' },
      {
        name: 'PxIS',
        offset: Px.IS,
        width: 4,
        access: 'w1c',
        writeMask: PXIS_W1C,
        onWrite: () => this.hba.updateInterrupts(),
      },
      {
        name: 'PxIE',
        offset: Px.IE,
        width: 4,
        access: 'rw',
        writeMask: PXIE_WRITABLE,
        onWrite: () => this.hba.updateInterrupts(),
      },
      {
        name: 'PxCMD',
        offset: Px.CMD,
        width: 4,
        access: 'rw',
        writeMask: PXCMD_WRITABLE,
        reset: DEFAULT_PXCMD,
        onWrite: (_v, previous) => this.commandWritten(previous),
      },
      { name: 'PxTFD', offset: Px.TFD, width: 4, access: 'ro', reset: TFD_NO_DEVICE },
      { name: 'PxSIG', offset: Px.SIG, width: 4, access: 'ro', reset: SIG_NONE },
      { name: 'PxSSTS', offset: Px.SSTS, width: 4, access: 'ro' },
      {
        name: 'PxSCTL',
        offset: Px.SCTL,
        width: 4,
        access: 'rw',
        writeMask: 0x000f_ffff,
        onWrite: (v, previous) => this.controlWritten(v, previous),
      },
      { name: 'PxSERR', offset: Px.SERR, width: 4, access: 'w1c' },
      {
        name: 'PxSACT',
        offset: Px.SACT,
        width: 4,
        access: 'rw',
        // Software only sets bits (§3.3.13); NCQ is not offered (CAP.SNCQ = 0), so nothing clears them but ST.
        onWrite: (v, previous) => {
          this.bank.values[this.iSACT] = (previous | v) >>> 0;
        },
      },
      {
        name: 'PxCI',
        offset: Px.CI,
        width: 4,
        access: 'rw',
        onWrite: (v, previous) => this.issue(v, previous),
      },
      { name: 'PxSNTF', offset: Px.SNTF, width: 4, access: 'w1c' },
      { name: 'PxFBS', offset: Px.FBS, width: 4, access: 'ro' },
    ];
    this.bank = new RegisterBank(`ahci port ${index}`, PORT_STRIDE, specs, warn);
    this.bank.undefinedRead = 0; // reserved and vendor-specific registers read 0
    const b = this.bank;
    this.iCLB = b.indexOf(Px.CLB);
    this.iCLBU = b.indexOf(Px.CLBU);
    this.iFB = b.indexOf(Px.FB);
    this.iFBU = b.indexOf(Px.FBU);
    this.iIS = b.indexOf(Px.IS);
    this.iIE = b.indexOf(Px.IE);
    this.iCMD = b.indexOf(Px.CMD);
    this.iTFD = b.indexOf(Px.TFD);
    this.iSIG = b.indexOf(Px.SIG);
    this.iSSTS = b.indexOf(Px.SSTS);
    this.iSCTL = b.indexOf(Px.SCTL);
    this.iSACT = b.indexOf(Px.SACT);
    this.iCI = b.indexOf(Px.CI);
  }

  /** Port and device reset (HBA reset, §10.4.3): registers to defaults, the device's signature sent again. */
  reset(): void {
    this.bank.reset();
    this.halted = false;
    this.srst = false;
    this.busy = false;
    this.linkUp();
  }

  /** The disk on this port (looked up late: the plugin opens images after building the HBA). */
  get disk(): AhciDiskSpec | undefined {
    return this.hba.disks[this.index];
  }

  /** The interrupt status bits enabled by PxIE. */
  get pending(): number {
    return (this.bank.values[this.iIS]! & this.bank.values[this.iIE]!) >>> 0;
  }

  private get cmd(): number {
    return this.bank.values[this.iCMD]!;
  }

  /** The device answered after a reset: link up, signature and diagnostic status (§10.4.1). */
  private linkUp(): void {
    const v = this.bank.values;
    if (!this.disk) {
      v[this.iSSTS] = 0;
      v[this.iTFD] = TFD_NO_DEVICE;
      v[this.iSIG] = SIG_NONE;
      return;
    }
    v[this.iSSTS] = SSTS_PRESENT;
    v[this.iSIG] = SIG_ATA;
    v[this.iTFD] = (ERROR_DIAG_PASSED << TFD_ERR_SHIFT) | STATUS_OK;
    this.signaturePending = true;
    this.postSignature();
  }

  private postSignature(): void {
    if (!this.signaturePending || (this.cmd & PxCMD.FRE) === 0) return;
    this.signaturePending = false;
    // Signature: sector count 1, LBA 0 (ACS-3 §9.1), no interrupt.
    this.postD2H(STATUS_OK, ERROR_DIAG_PASSED, false, 0, 1);
  }

  private commandWritten(previous: number): void {
    const v = this.bank.values;
    let cmd = v[this.iCMD]!;
    // ICC is a request that completes at once (the link is always active): it reads back 0.
    cmd &= ~(0xf << PxCMD.ICC_SHIFT);
    if (cmd & PxCMD.CLO) {
      // Command list override (§3.3.7): clear BSY and DRQ so a command can be issued; self-clearing.
      v[this.iTFD] = v[this.iTFD]! & ~(AtaStatus.BSY | AtaStatus.DRQ);
      cmd &= ~PxCMD.CLO;
    }
    if (cmd & PxCMD.FRE) cmd |= PxCMD.FR;
    else cmd &= ~PxCMD.FR;
    if (cmd & PxCMD.ST) cmd |= PxCMD.CR;
    else if (previous & PxCMD.ST) {
      // Stopping the list engine (§3.3.7 ST, §3.3.14): PxCI, PxSACT and CCS clear; errors are forgotten.
      cmd &= ~(PxCMD.CR | PxCMD.CCS_MASK);
      v[this.iCI] = 0;
      v[this.iSACT] = 0;
      this.halted = false;
    }
    v[this.iCMD] = cmd >>> 0;
    if ((cmd & PxCMD.FRE) !== 0 && (previous & PxCMD.FRE) === 0) this.postSignature();
    this.run();
  }

  private controlWritten(value: number, previous: number): void {
    const det = value & 0xf;
    const was = previous & 0xf;
    const v = this.bank.values;
    if (det === SCTL_DET_COMRESET && was !== SCTL_DET_COMRESET) {
      // COMRESET asserted: the link drops and the device is busy until it is released.
      v[this.iSSTS] = 0;
      if (this.disk) v[this.iTFD] = AtaStatus.BSY;
    } else if (det === 0 && was === SCTL_DET_COMRESET) {
      this.linkUp();
    }
  }

  private issue(value: number, previous: number): void {
    if ((this.cmd & PxCMD.ST) === 0) {
      this.bank.values[this.iCI] = previous;
      if (value !== 0) this.hba.stats.ciWhileStopped++;
      return;
    }
    this.bank.values[this.iCI] = (previous | value) >>> 0;
    this.run();
  }

  /** Run the issued slots, lowest first, while the port can (AE, ST, bus master, no fatal error). */
  run(): void {
    if (this.busy || this.halted || !this.disk) return;
    if (!this.hba.enabled || (this.cmd & PxCMD.ST) === 0) return;
    const v = this.bank.values;
    if (v[this.iCI] === 0) return;
    if (!this.hba.busMaster()) {
      this.hba.stats.blockedWithoutBusMaster++;
      return;
    }
    this.busy = true;
    try {
      for (;;) {
        const ci = v[this.iCI]!;
        if (ci === 0 || (this.cmd & PxCMD.ST) === 0) break;
        const slot = 31 - Math.clz32(ci & -ci);
        v[this.iCMD] = ((this.cmd & ~PxCMD.CCS_MASK) | (slot << PxCMD.CCS_SHIFT)) >>> 0;
        if (this.execute(slot) === 'fatal') {
          this.halted = true;
          break;
        }
        v[this.iCI] = (v[this.iCI]! & ~(1 << slot)) >>> 0;
      }
    } finally {
      this.busy = false;
    }
    this.hba.updateInterrupts();
  }

  private raise(bits: number): void {
    this.bank.values[this.iIS] = (this.bank.values[this.iIS]! | bits) >>> 0;
  }

  private addr64(lo: number, hi: number): number {
    return this.bank.values[hi]! * TWO_32 + this.bank.values[lo]!;
  }

  private execute(slot: number): Outcome {
    const dma = this.hba.dma;
    const disk = this.disk!;
    this.hba.stats.commands++;
    const hdrAddr = this.addr64(this.iCLB, this.iCLBU) + slot * CMD_HEADER_SIZE;
    const hdr = new DataView(dma.readBytes(hdrAddr, CMD_HEADER_SIZE).buffer);
    const dw0 = hdr.getUint32(0, true);
    const prdtl = dw0 >>> CmdHeader.PRDTL_SHIFT;
    const ctba =
      hdr.getUint32(CmdHeader.CTBAU, true) * TWO_32 +
      (hdr.getUint32(CmdHeader.CTBA, true) & ~(CmdTable.ALIGN - 1));
    const fis = dma.readBytes(ctba + CmdTable.CFIS, 20);
    const prdt = new DataView(dma.readBytes(ctba + CmdTable.PRDT, prdtl * PRD_SIZE).buffer);
    const setPrdbc = (n: number) => {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setUint32(0, n, true);
      dma.writeBytes(hdrAddr + CmdHeader.PRDBC, b);
    };
    setPrdbc(0);

    if (fis[0] !== FisType.RegH2D) return this.ataError(AtaError.ABRT);
    if ((fis[1]! & REG_H2D_C) === 0) {
      // A Device Control update (software reset, §10.4.1): SRST set then cleared resets the device.
      const srst = (fis[15]! & CONTROL_SRST) !== 0;
      if (this.srst && !srst) {
        this.bank.values[this.iTFD] = (ERROR_DIAG_PASSED << TFD_ERR_SHIFT) | STATUS_OK;
        this.signaturePending = true;
        this.postSignature();
      } else if (srst) this.bank.values[this.iTFD] = AtaStatus.BSY;
      this.srst = srst;
      return 'done';
    }
    const command = fis[2]!;
    const lba48 =
      fis[4]! +
      fis[5]! * 0x100 +
      fis[6]! * 0x1_0000 +
      fis[8]! * 0x100_0000 +
      fis[9]! * TWO_32 +
      fis[10]! * 0x100 * TWO_32;
    const lba28 = fis[4]! | (fis[5]! << 8) | (fis[6]! << 16) | ((fis[7]! & 0xf) << 24);
    const count16 = fis[12]! | (fis[13]! << 8) || 0x1_0000;
    const count8 = fis[12]! || 0x100;

    switch (command) {
      case AtaCmd.IDENTIFY_DEVICE: {
        this.identify ??= identifyData({
          sectors: disk.image.sectors,
          model: disk.model,
          serial: disk.serial,
          firmware: disk.firmware,
        });
        const r = this.toHost(prdt, prdtl, this.identify);
        setPrdbc(r.bytes);
        if (r.overflow) return this.overflow();
        // A PIO data-in command ends with the PIO Setup FIS's ending status (AHCI §5.3.7, §4.2.1).
        this.postPioSetup(STATUS_OK, SECTOR_SIZE);
        return 'done';
      }
      case AtaCmd.READ_DMA_EXT:
      case AtaCmd.READ_DMA: {
        const ext = command === AtaCmd.READ_DMA_EXT;
        const lba = ext ? lba48 : lba28;
        const count = ext ? count16 : count8;
        if (lba + count > disk.image.sectors) return this.ataError(AtaError.IDNF | AtaError.ABRT);
        const r = this.toHost(prdt, prdtl, disk.image.read(lba, count));
        setPrdbc(r.bytes);
        if (r.overflow) return this.overflow();
        this.postD2H(STATUS_OK, 0, true);
        return 'done';
      }
      case AtaCmd.WRITE_DMA_EXT:
      case AtaCmd.WRITE_DMA: {
        const ext = command === AtaCmd.WRITE_DMA_EXT;
        const lba = ext ? lba48 : lba28;
        const count = ext ? count16 : count8;
        if (lba + count > disk.image.sectors) return this.ataError(AtaError.IDNF | AtaError.ABRT);
        const r = this.fromHost(prdt, prdtl, count * SECTOR_SIZE);
        setPrdbc(r.data.length);
        // The PRDT describes less than the device asks for: a guess at the hardware's answer is
        // the same fatal overflow as for reads (§6.1.2); nothing is written.
        if (r.data.length < count * SECTOR_SIZE) return this.overflow();
        disk.image.write(lba, r.data);
        this.postD2H(STATUS_OK, 0, true);
        return 'done';
      }
      case AtaCmd.FLUSH_CACHE_EXT:
      case AtaCmd.FLUSH_CACHE:
        disk.image.flush();
        this.postD2H(STATUS_OK, 0, true);
        return 'done';
      default:
        this.hba.stats.unsupportedCommands++;
        return this.ataError(AtaError.ABRT);
    }
  }

  /** The device reports an error: D2H FIS with ERR, PxIS.TFES (fatal, §6.1.2). */
  private ataError(error: number): Outcome {
    this.hba.stats.ataErrors++;
    this.postD2H(STATUS_ERROR, error, true);
    this.raise(PxIS.TFES);
    return 'fatal';
  }

  private overflow(): Outcome {
    this.hba.stats.prdtOverflows++;
    this.raise(PxIS.OFS);
    return 'fatal';
  }

  /** Scatter `data` into the PRDT's buffers (device to host). */
  private toHost(prdt: DataView, n: number, data: Uint8Array): { bytes: number; overflow: boolean } {
    let off = 0;
    for (let i = 0; i < n && off < data.length; i++) {
      const { addr, bytes, interrupt } = this.prd(prdt, i);
      const len = Math.min(bytes, data.length - off);
      this.hba.dma.writeBytes(addr, data.subarray(off, off + len));
      off += len;
      if (interrupt) this.raise(PxIS.DPS);
    }
    return { bytes: off, overflow: off < data.length };
  }

  /** Gather up to `length` bytes from the PRDT's buffers (host to device). */
  private fromHost(prdt: DataView, n: number, length: number): { data: Uint8Array } {
    const out = new Uint8Array(length);
    let off = 0;
    for (let i = 0; i < n && off < length; i++) {
      const { addr, bytes, interrupt } = this.prd(prdt, i);
      const len = Math.min(bytes, length - off);
      out.set(this.hba.dma.readBytes(addr, len), off);
      off += len;
      if (interrupt) this.raise(PxIS.DPS);
    }
    return { data: off === length ? out : out.subarray(0, off) };
  }

  private prd(prdt: DataView, i: number): { addr: number; bytes: number; interrupt: boolean } {
    const o = i * PRD_SIZE;
    const dw3 = prdt.getUint32(o + 12, true);
    return {
      // DBA bit 0 is reserved (word alignment); DBC holds the byte count minus one (§4.2.3.3).
      addr: prdt.getUint32(o + 4, true) * TWO_32 + (prdt.getUint32(o, true) & ~1),
      bytes: (dw3 & PRD_DBC_MASK) + 1,
      interrupt: (dw3 & PRD_I) !== 0,
    };
  }

  /** A Register D2H FIS: PxTFD follows it; posted at RFIS when FIS receive is on; DHRS if I. */
  private postD2H(status: number, error: number, interrupt: boolean, lba = 0, count = 0): void {
    this.bank.values[this.iTFD] = (error << TFD_ERR_SHIFT) | status;
    if (interrupt) this.raise(PxIS.DHRS);
    if ((this.cmd & PxCMD.FRE) === 0) return;
    const f = new Uint8Array(REG_D2H_SIZE);
    f[0] = FisType.RegD2H;
    f[1] = interrupt ? FIS_I : 0;
    f[2] = status;
    f[3] = error;
    f[4] = lba & 0xff;
    f[5] = (lba >>> 8) & 0xff;
    f[6] = (lba >>> 16) & 0xff;
    f[12] = count & 0xff;
    f[13] = (count >>> 8) & 0xff;
    this.hba.dma.writeBytes(this.addr64(this.iFB, this.iFBU) + Rfis.RFIS, f);
  }

  /** A PIO Setup FIS (device to host, I set) with the ending status; PxIS.PSS. */
  private postPioSetup(endStatus: number, transferCount: number): void {
    this.bank.values[this.iTFD] = endStatus;
    this.raise(PxIS.PSS);
    if ((this.cmd & PxCMD.FRE) === 0) return;
    const f = new Uint8Array(PIO_SETUP_SIZE);
    f[0] = FisType.PioSetup;
    f[1] = FIS_D | FIS_I;
    f[2] = AtaStatus.DRDY | AtaStatus.DRQ | AtaStatus.DSC;
    f[15] = endStatus;
    f[16] = transferCount & 0xff;
    f[17] = (transferCount >>> 8) & 0xff;
    this.hba.dma.writeBytes(this.addr64(this.iFB, this.iFBU) + Rfis.PSFIS, f);
  }
}

export class Ahci implements MmioDevice {
  readonly ghc: RegisterBank;
  readonly ports: AhciPort[] = [];
  readonly dma: Dma;
  readonly busMaster: () => boolean;
  readonly disks: readonly (AhciDiskSpec | undefined)[];
  readonly stats: AhciStats = {
    commands: 0,
    ataErrors: 0,
    unsupportedCommands: 0,
    prdtOverflows: 0,
    ciWhileStopped: 0,
    blockedWithoutBusMaster: 0,
  };
  private readonly iGHC: number;
  private readonly iIS: number;
  private readonly setInterrupt: (pending: boolean) => void;

  constructor(opts: AhciOptions) {
    if (!Number.isInteger(opts.ports) || opts.ports < 1 || opts.ports > MAX_PORTS) {
      throw new Error(`ahci: ${opts.ports} ports; an HBA has 1 to ${MAX_PORTS}`);
    }
    this.dma = opts.dma;
    this.disks = opts.disks;
    this.busMaster = opts.busMaster;
    this.setInterrupt = opts.setInterrupt;
    const warn = opts.warn ?? (() => {});
    const cap =
      Cap.S64A |
      (ISS_GEN1 << Cap.ISS_SHIFT) |
      ((COMMAND_SLOTS - 1) << Cap.NCS_SHIFT) |
      ((opts.ports - 1) & Cap.NP_MASK);
    const specs: RegisterSpec[] = [
      { name: 'CAP', offset: Ghc.CAP, width: 4, access: 'ro', reset: cap >>> 0 },
      {
        name: 'GHC',
        offset: Ghc.GHC,
        width: 4,
        access: 'rw',
        writeMask: (GhcBits.AE | GhcBits.IE | GhcBits.HR) >>> 0,
        onWrite: (v, previous) => this.ghcWritten(v, previous),
      },
      { name: 'IS', offset: Ghc.IS, width: 4, access: 'w1c', onWrite: () => this.updateInterrupts() },
      {
        name: 'PI',
        offset: Ghc.PI,
        width: 4,
        access: 'ro',
        reset: opts.ports === 32 ? 0xffff_ffff : (1 << opts.ports) - 1,
      },
      { name: 'VS', offset: Ghc.VS, width: 4, access: 'ro', reset: AHCI_VERSION_1_3 },
      // Command completion coalescing, enclosure management and BIOS hand-off are not offered
      // (CAP.CCCS, CAP.EMS, CAP2.BOH = 0): their registers read 0.
      { name: 'CCC_CTL', offset: Ghc.CCC_CTL, width: 4, access: 'ro' },
      { name: 'CCC_PORTS', offset: Ghc.CCC_PORTS, width: 4, access: 'ro' },
      { name: 'EM_LOC', offset: Ghc.EM_LOC, width: 4, access: 'ro' },
      { name: 'EM_CTL', offset: Ghc.EM_CTL, width: 4, access: 'ro' },
      { name: 'CAP2', offset: Ghc.CAP2, width: 4, access: 'ro' },
      { name: 'BOHC', offset: Ghc.BOHC, width: 4, access: 'ro' },
    ];
    this.ghc = new RegisterBank('ahci', GHC_SIZE, specs, warn);
    this.ghc.undefinedRead = 0;
    this.iGHC = this.ghc.indexOf(Ghc.GHC);
    this.iIS = this.ghc.indexOf(Ghc.IS);
    for (let p = 0; p < opts.ports; p++) this.ports.push(new AhciPort(this, p, warn));
  }

  /** Bytes of MMIO the HBA decodes: generic registers and the ports, in whole pages. */
  static mmioSize(ports: number): number {
    return Math.ceil((PORT_BASE + ports * PORT_STRIDE) / 0x1000) * 0x1000;
  }

  get enabled(): boolean {
    return (this.ghc.values[this.iGHC]! & GhcBits.AE) !== 0;
  }

  /** HBA reset (GHC.HR, §10.4.3, and power-on): every register to its default; devices re-signal. */
  reset(): void {
    this.ghc.reset();
    for (const p of this.ports) p.reset();
    this.updateInterrupts();
  }

  private ghcWritten(value: number, previous: number): void {
    if (value & GhcBits.HR) {
      // The reset completes at once, so HR reads back 0 (software polls it, §10.4.3).
      this.reset();
      return;
    }
    if ((value & GhcBits.AE) !== 0 && (previous & GhcBits.AE) === 0) for (const p of this.ports) p.run();
    this.updateInterrupts();
  }

  /** IS follows the ports' enabled status bits (a cleared IS bit comes back while its port still has one). */
  updateInterrupts(): void {
    let is = this.ghc.values[this.iIS]!;
    for (const p of this.ports) if (p.pending !== 0) is |= 1 << p.index;
    is >>>= 0;
    this.ghc.values[this.iIS] = is;
    this.setInterrupt((this.ghc.values[this.iGHC]! & GhcBits.IE) !== 0 && is !== 0);
  }

  /** The PCI function's Command changed (bus mastering on: waiting commands run). */
  busMasterChanged(): void {
    for (const p of this.ports) p.run();
  }

  mmioRead(offset: number, size: 1 | 2 | 4): number {
    if (offset < GHC_SIZE) return this.ghc.read(offset, size);
    const p = this.ports[(offset - PORT_BASE) >>> 7];
    return p ? p.bank.read((offset - PORT_BASE) & (PORT_STRIDE - 1), size) : 0;
  }

  mmioWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    if (offset < GHC_SIZE) {
      this.ghc.write(offset, size, value);
      return;
    }
    const p = this.ports[(offset - PORT_BASE) >>> 7];
    p?.bank.write((offset - PORT_BASE) & (PORT_STRIDE - 1), size, value);
  }
}
