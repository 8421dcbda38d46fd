/**
 * The ICH9 power-management registers a q35 guest uses (Intel ICH9 datasheet §13.8.3, "ACPI and
 * Legacy I/O registers", at PMBASE; QEMU's q35 puts PMBASE at 0x600): PM1_STS, PM1_EN, PM1_CNT and
 * the ACPI PM timer PM1_TMR; plus the reset control register RST_CNT at I/O port 0xCF9 (§13.7.5).
 *
 * What the guest can do with them here: power off (PM1_CNT.SLP_EN with the S5 sleep type), read
 * the 3.579545 MHz PM timer, and reset the machine through RST_CNT. Sleep states other than S5 are
 * not modelled (logged once, counted, ignored: the guest keeps running as if woken at once).
 */
import type { VirtualClock } from '../../src/core/clock.js';
import type { StopReason } from '../../src/core/stop.js';
import { RegisterBank } from '../../src/devices/registers.js';

/** Offsets in the PM1 block from PMBASE (ICH9 §13.8.3). */
export const PM1_STS = 0x00;
export const PM1_EN = 0x02;
export const PM1_CNT = 0x04;
export const PM1_TMR = 0x08;
export const PM1_BLOCK_SIZE = 0x0c;

/** PM1_CNT fields (ICH9 §13.8.3.3). */
export const PM1_CNT_SCI_EN = 1 << 0;
export const PM1_CNT_SLP_TYP_SHIFT = 10;
export const PM1_CNT_SLP_TYP_MASK = 0b111 << PM1_CNT_SLP_TYP_SHIFT;
/** Write-only: writing 1 enters the sleep state SLP_TYP names; reads as 0. */
export const PM1_CNT_SLP_EN = 1 << 13;

/** PM1_STS fields (ICH9 §13.8.3.1), write-1-to-clear. */
export const PM1_STS_TMR_STS = 1 << 0;
export const PM1_STS_PWRBTN_STS = 1 << 8;
export const PM1_STS_WAK_STS = 1 << 15;

/**
 * The SLP_TYP value meaning S5 (soft off) is whatever the firmware's \_S5 object says. QEMU's q35
 * DSDT says 0 (and QEMU powers off on SLP_TYP 0), so NimbOS writes 0x2000 = SLP_EN | SLP_TYP 0.
 * The ICH9 datasheet's own encoding of S5 is 0b111.
 */
export const QEMU_S5_SLP_TYP = 0;
export const ICH9_S5_SLP_TYP = 0b111;

/** ACPI PM timer frequency (ACPI spec §4.8.2.1: 3.579545 MHz). */
export const PM_TIMER_HZ = 3_579_545;

/** RST_CNT at port 0xCF9 (ICH9 §13.7.5). */
export const RST_CNT_PORT = 0xcf9;
/** System reset: a hard (1) or soft (0) reset when RST_CPU goes 0 -> 1. */
export const RST_CNT_SYS_RST = 1 << 1;
/** Writing 1 resets the processor (the kind of reset chosen by SYS_RST and FULL_RST). */
export const RST_CNT_RST_CPU = 1 << 2;
export const RST_CNT_FULL_RST = 1 << 3;

export interface AcpiPmOptions {
  clock: VirtualClock;
  /** How the machine stops (ctx.machine.stop). */
  stop: (reason: StopReason) => void;
  /** Name used as the stop reason's source. */
  source: string;
  /** SLP_TYP value that means S5. */
  s5SlpTyp?: number;
  /** PM timer width: 24 (ICH9 and QEMU, FADT TMR_VAL_EXT=0) or 32 bits. */
  timerBits?: 24 | 32;
  warn?: (message: string) => void;
}

export interface AcpiPmStats {
  powerOffs: number;
  otherSleepRequests: number;
  resets: number;
}

/** The PM1 register block (offsets from PMBASE). */
export class AcpiPm {
  readonly regs: RegisterBank;
  readonly stats: AcpiPmStats = { powerOffs: 0, otherSleepRequests: 0, resets: 0 };
  private readonly clock: VirtualClock;
  private readonly timerMask: number;
  private warnedSleep = false;

  constructor(private readonly opts: AcpiPmOptions) {
    this.clock = opts.clock;
    this.timerMask = (opts.timerBits ?? 24) === 32 ? 0xffff_ffff : 0xff_ffff;
    const s5 = opts.s5SlpTyp ?? QEMU_S5_SLP_TYP;
    this.regs = new RegisterBank(
      'acpi-pm',
      PM1_BLOCK_SIZE,
      [
        {
          name: 'PM1_STS',
          offset: PM1_STS,
          width: 2,
          access: 'w1c',
          writeMask: PM1_STS_TMR_STS | PM1_STS_PWRBTN_STS | PM1_STS_WAK_STS,
        },
        {
          name: 'PM1_EN',
          offset: PM1_EN,
          width: 2,
          access: 'rw',
          // TMR_EN (bit 0), PWRBTN_EN (bit 8): stored; the SCI they would raise is not modelled.
          writeMask: 0x0101,
        },
        {
          name: 'PM1_CNT',
          offset: PM1_CNT,
          width: 4,
          access: 'rw',
          // SLP_EN is write-only (reads 0), so it is not stored; SCI_EN is set by the firmware on a
          // real ICH9 after ACPI enable; QEMU's q35 leaves it to the guest. Both read back as written.
          writeMask: PM1_CNT_SCI_EN | 0b110 | PM1_CNT_SLP_TYP_MASK,
          onWrite: (value) => {
            if ((value & PM1_CNT_SLP_EN) === 0) return;
            const typ = (value & PM1_CNT_SLP_TYP_MASK) >>> PM1_CNT_SLP_TYP_SHIFT;
            if (typ === s5) {
              this.stats.powerOffs++;
              opts.stop({
                kind: 'poweroff',
                code: 0,
                source: opts.source,
                message: 'ACPI S5 (PM1_CNT.SLP_EN)',
              });
            } else {
              this.stats.otherSleepRequests++;
              if (!this.warnedSleep) {
                this.warnedSleep = true;
                opts.warn?.(
                  `sleep type SLP_TYP=${typ} is not modelled (only S5=${s5}); the guest keeps running`,
                );
              }
            }
          },
        },
        { name: 'PM1_TMR', offset: PM1_TMR, width: 4, access: 'ro', onRead: () => this.timer() },
      ],
      opts.warn,
    );
  }

  reset(): void {
    this.regs.reset();
  }

  /** PM1_TMR.TMR_VAL: the 3.579545 MHz count since power-on, wrapping at 24 or 32 bits. */
  timer(): number {
    const now = this.clock.now;
    // Split seconds and the rest so the product stays exact below 2^53.
    const s = Math.floor(now / 1e9);
    const ticks = s * PM_TIMER_HZ + Math.floor(((now - s * 1e9) * PM_TIMER_HZ) / 1e9);
    return ((ticks % 0x1_0000_0000) & this.timerMask) >>> 0;
  }

  ioRead(offset: number, size: 1 | 2 | 4): number {
    return this.regs.read(offset, size);
  }

  ioWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    this.regs.write(offset, size, value);
  }
}

/**
 * RST_CNT (one byte at 0xCF9). It shares 0xCF8-0xCFB with the PCI CONFIG_ADDRESS register, which
 * decodes dword accesses only (pci-host claims it with Bus.addDwordPorts), so byte accesses land here.
 */
export class ResetControl {
  private value = 0;
  resets = 0;

  constructor(
    private readonly stop: (reason: StopReason) => void,
    private readonly source: string,
  ) {}

  reset(): void {
    this.value = 0;
  }

  ioRead(): number {
    return this.value;
  }

  ioWrite(_offset: number, _size: 1 | 2 | 4, value: number): void {
    // RST_CPU is self-clearing in effect: the reset happens on the write that sets it.
    this.value = value & (RST_CNT_SYS_RST | RST_CNT_FULL_RST);
    if (value & RST_CNT_RST_CPU) {
      this.resets++;
      this.stop({ kind: 'reset', source: this.source });
    }
  }
}
