/**
 * AHCI 1.3.1 register map, data structures and the ATA bits the HBA model uses. Section numbers
 * are from the Serial ATA AHCI 1.3.1 specification; ATA ones from ACS-3.
 */

// ---- Generic host control (§3.1) -----------------------------------------------------------

export const Ghc = {
  CAP: 0x00,
  GHC: 0x04,
  IS: 0x08,
  PI: 0x0c,
  VS: 0x10,
  CCC_CTL: 0x14,
  CCC_PORTS: 0x18,
  EM_LOC: 0x1c,
  EM_CTL: 0x20,
  CAP2: 0x24,
  BOHC: 0x28,
} as const;

/** Generic host control occupies 0x00-0xFF; port n's registers start at 0x100 + 0x80 * n (§3). */
export const GHC_SIZE = 0x100;
export const PORT_BASE = 0x100;
export const PORT_STRIDE = 0x80;
export const MAX_PORTS = 32;

/** CAP fields (§3.1.1). */
export const Cap = {
  NP_MASK: 0x1f,
  NCS_SHIFT: 8,
  ISS_SHIFT: 20,
  SAM: 1 << 18,
  SNCQ: 1 << 30,
  S64A: 1 << 31,
} as const;
/** CAP.ISS = 1: Gen 1 (1.5 Gbps), as QEMU reports. */
export const ISS_GEN1 = 1;
export const COMMAND_SLOTS = 32;

/** GHC fields (§3.1.2). */
export const GhcBits = {
  HR: 1 << 0,
  IE: 1 << 1,
  MRSM: 1 << 2,
  AE: 1 << 31,
} as const;

/** VS (§3.1.5): AHCI 1.3. */
export const AHCI_VERSION_1_3 = 0x0001_0300;

// ---- Port registers (§3.3), offsets within the port's 0x80 bytes ---------------------------

export const Px = {
  CLB: 0x00,
  CLBU: 0x04,
  FB: 0x08,
  FBU: 0x0c,
  IS: 0x10,
  IE: 0x14,
  CMD: 0x18,
  TFD: 0x20,
  SIG: 0x24,
  SSTS: 0x28,
  SCTL: 0x2c,
  SERR: 0x30,
  SACT: 0x34,
  CI: 0x38,
  SNTF: 0x3c,
  FBS: 0x40,
} as const;

/** PxIS / PxIE bits (§3.3.5, §3.3.6). */
export const PxIS = {
  DHRS: 1 << 0,
  PSS: 1 << 1,
  DSS: 1 << 2,
  SDBS: 1 << 3,
  UFS: 1 << 4,
  DPS: 1 << 5,
  PCS: 1 << 6,
  DMPS: 1 << 7,
  PRCS: 1 << 22,
  IPMS: 1 << 23,
  OFS: 1 << 24,
  INFS: 1 << 26,
  IFS: 1 << 27,
  HBDS: 1 << 28,
  HBFS: 1 << 29,
  TFES: 1 << 30,
  CPDS: 1 << 31,
} as const;
/** The PxIS bits software can clear (PCS and PRCS mirror PxSERR and are read-only). */
export const PXIS_W1C = (0xfdc0_00ff & ~PxIS.PCS & ~PxIS.PRCS) >>> 0;
export const PXIE_WRITABLE = 0xfdc0_00ff;
/** Fatal errors (§6.1.2): the port stops processing its command list until PxCMD.ST is cleared. */
export const PXIS_FATAL = PxIS.TFES | PxIS.HBFS | PxIS.HBDS | PxIS.IFS | PxIS.OFS;

/** PxCMD fields (§3.3.7). */
export const PxCMD = {
  ST: 1 << 0,
  SUD: 1 << 1,
  POD: 1 << 2,
  CLO: 1 << 3,
  FRE: 1 << 4,
  CCS_SHIFT: 8,
  CCS_MASK: 0x1f << 8,
  FR: 1 << 14,
  CR: 1 << 15,
  ICC_SHIFT: 28,
} as const;
/** Bits software writes; SUD and POD are read-only 1 (no staggered spin-up, no cold presence). */
export const PXCMD_WRITABLE = PxCMD.ST | PxCMD.CLO | PxCMD.FRE | (0xf << PxCMD.ICC_SHIFT);
export const DEFAULT_PXCMD = PxCMD.SUD | PxCMD.POD;

/** PxTFD (§3.3.8): STS in 7:0, ERR in 15:8. */
export const TFD_ERR_SHIFT = 8;
/** PxTFD with no device attached (§3.3.8 reset value). */
export const TFD_NO_DEVICE = 0x7f;

/** PxSIG (§3.3.9): an ATA device's signature (sector count 1, LBA 0). */
export const SIG_ATA = 0x0000_0101;
export const SIG_NONE = 0xffff_ffff;

/** PxSSTS (§3.3.10): DET=3 (device present, Phy up), SPD=1 (Gen 1), IPM=1 (active). */
export const SSTS_DET_PRESENT = 0x3;
export const SSTS_PRESENT = 0x113;
export const SSTS_DET_MASK = 0xf;
/** PxSCTL.DET = 1: perform interface initialisation (COMRESET) (§3.3.11). */
export const SCTL_DET_COMRESET = 0x1;

// ---- In-memory structures --------------------------------------------------------------------

/** Command header (§4.2.2): 32 bytes per slot in the command list. */
export const CMD_HEADER_SIZE = 32;
export const CMD_LIST_ALIGN = 1024;
export const CmdHeader = {
  CFL_MASK: 0x1f,
  A: 1 << 5,
  W: 1 << 6,
  P: 1 << 7,
  R: 1 << 8,
  C: 1 << 10,
  PRDTL_SHIFT: 16,
  /** Byte offsets of DW1 (PRDBC), DW2 (CTBA), DW3 (CTBAU). */
  PRDBC: 4,
  CTBA: 8,
  CTBAU: 12,
} as const;

/** Command table (§4.2.3). */
export const CmdTable = {
  CFIS: 0x00,
  ACMD: 0x40,
  PRDT: 0x80,
  ALIGN: 128,
} as const;
/** PRDT entry (§4.2.3.3): DBA, DBAU, reserved, DW3 = DBC (byte count - 1, bit 0 always 1) | I. */
export const PRD_SIZE = 16;
export const PRD_DBC_MASK = 0x3f_ffff;
export const PRD_I = 1 << 31;
/** A PRD describes at most 4 MiB. */
export const PRD_MAX_BYTES = 4 * 1024 * 1024;

/** Received FIS area (§4.2.1): 256 bytes. */
export const RFIS_SIZE = 256;
export const Rfis = {
  DSFIS: 0x00,
  PSFIS: 0x20,
  RFIS: 0x40,
  SDBFIS: 0x58,
  UFIS: 0x60,
} as const;

/** FIS types (SATA 3.x §10.3). */
export const FisType = {
  RegH2D: 0x27,
  RegD2H: 0x34,
  PioSetup: 0x5f,
} as const;
export const REG_H2D_C = 0x80;
export const FIS_I = 0x40;
/** PIO Setup FIS direction bit (D = 1: device to host). */
export const FIS_D = 0x20;
export const REG_D2H_SIZE = 20;
export const PIO_SETUP_SIZE = 20;
/** Device Control register SRST bit (in a control H2D FIS, C = 0). */
export const CONTROL_SRST = 1 << 2;

// ---- ATA (ACS-3) -----------------------------------------------------------------------------

export const AtaCmd = {
  READ_DMA: 0xc8,
  READ_DMA_EXT: 0x25,
  WRITE_DMA: 0xca,
  WRITE_DMA_EXT: 0x35,
  FLUSH_CACHE: 0xe7,
  FLUSH_CACHE_EXT: 0xea,
  IDENTIFY_DEVICE: 0xec,
} as const;

/** ATA Status (ACS-3 §6.2). */
export const AtaStatus = {
  ERR: 1 << 0,
  DRQ: 1 << 3,
  DSC: 1 << 4,
  DRDY: 1 << 6,
  BSY: 1 << 7,
} as const;
/** ATA Error (ACS-3 §6.3). */
export const AtaError = {
  ABRT: 1 << 2,
  IDNF: 1 << 4,
} as const;
/** Status after a good command, and after a reset with the diagnostic passed (error 01h). */
export const STATUS_OK = AtaStatus.DRDY | AtaStatus.DSC;
export const STATUS_ERROR = AtaStatus.DRDY | AtaStatus.ERR;
export const ERROR_DIAG_PASSED = 0x01;

export const SECTOR_SIZE = 512;
