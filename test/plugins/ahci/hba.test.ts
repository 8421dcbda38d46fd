/**
 * The AHCI HBA register by register, driven as a driver drives it: reset values, GHC.HR, W1C
 * status, the PxCMD engine bits, command slots with PRDT scatter-gather, IDENTIFY data, errors
 * and interrupts.
 */
import { readFileSync } from 'node:fs';
import { beforeEach, describe, expect, it } from 'vitest';
import { AtaCmd, Ghc, GhcBits, Px, PxCMD, PxIS } from '../../../plugins/ahci/registers.js';
import { ABAR, CLB, FB, Rig, patternImage, regFis, tmpDir, writeImage } from './support.js';

const SECTORS = 2048; // 1 MiB

/** Bring port 0 up as a driver does: AE, CLB/FB, FRE, ST. */
function start(r: Rig): void {
  r.setGhc(Ghc.GHC, GhcBits.AE);
  r.setPx(Px.CLB, CLB);
  r.setPx(Px.FB, FB);
  r.setPx(Px.CMD, PxCMD.FRE);
  r.setPx(Px.CMD, PxCMD.FRE | PxCMD.ST);
}

const word = (b: Uint8Array, w: number) => b[w * 2]! | (b[w * 2 + 1]! << 8);
const ataString = (b: Uint8Array, from: number, words: number) => {
  let s = '';
  for (let w = from; w < from + words; w++) s += String.fromCharCode(b[w * 2 + 1]!, b[w * 2]!);
  return s;
};

describe('ahci HBA', () => {
  let dir: string;
  let path: string;
  let r: Rig;

  beforeEach(() => {
    dir = tmpDir('ahci-');
    path = writeImage(dir, 'disk.img', patternImage(SECTORS));
    r = Rig.open(path);
  });

  it('has the reset values of an ICH9-like HBA with a disk on port 0', () => {
    const cap = r.ghc(Ghc.CAP);
    expect(cap & 0x1f).toBe(5); // 6 ports
    expect((cap >>> 8) & 0x1f).toBe(31); // 32 slots
    expect(cap >>> 31).toBe(1); // 64-bit addressing
    expect((cap >>> 20) & 0xf).toBe(1); // Gen 1
    expect(r.ghc(Ghc.GHC)).toBe(0);
    expect(r.ghc(Ghc.IS)).toBe(0);
    expect(r.ghc(Ghc.PI)).toBe(0x3f);
    expect(r.ghc(Ghc.VS)).toBe(0x0001_0300);
    expect(r.px(Px.CMD)).toBe(PxCMD.SUD | PxCMD.POD);
    expect(r.px(Px.SSTS)).toBe(0x113);
    expect(r.px(Px.SIG)).toBe(0x101);
    expect(r.px(Px.TFD)).toBe(0x150);
    expect(r.px(Px.CI)).toBe(0);
    // An empty port.
    expect(r.px(Px.SSTS, 1)).toBe(0);
    expect(r.px(Px.SIG, 1)).toBe(0xffff_ffff);
    expect(r.px(Px.TFD, 1)).toBe(0x7f);
    // Reserved and vendor registers read 0; ports past PI too.
    expect(r.ghc(0xa0)).toBe(0);
    expect(r.px(0x70)).toBe(0);
    expect(r.bus.read(ABAR + 0x100 + 6 * 0x80, 4)).toBe(0);
  });

  it('keeps address registers aligned: PxCLB to 1 KiB, PxFB to 256 bytes', () => {
    r.setPx(Px.CLB, 0x1234_5fff);
    r.setPx(Px.FB, 0x1234_5fff);
    expect(r.px(Px.CLB)).toBe(0x1234_5c00);
    expect(r.px(Px.FB)).toBe(0x1234_5f00);
  });

  it('resets everything on GHC.HR, which reads back 0', () => {
    r.setGhc(Ghc.GHC, GhcBits.AE | GhcBits.IE);
    expect(r.ghc(Ghc.GHC)).toBe((GhcBits.AE | GhcBits.IE) >>> 0);
    r.setPx(Px.CLB, CLB);
    r.setPx(Px.IE, 0xffff_ffff);
    r.setPx(Px.CMD, PxCMD.FRE);
    r.setGhc(Ghc.GHC, GhcBits.HR);
    expect(r.ghc(Ghc.GHC)).toBe(0);
    expect(r.px(Px.CLB)).toBe(0);
    expect(r.px(Px.IE)).toBe(0);
    expect(r.px(Px.CMD)).toBe(PxCMD.SUD | PxCMD.POD);
    expect(r.px(Px.SSTS)).toBe(0x113);
  });

  it('follows FRE with FR and ST with CR; clearing ST clears PxCI and CCS', () => {
    r.setGhc(Ghc.GHC, GhcBits.AE);
    r.setPx(Px.CMD, PxCMD.FRE);
    expect(r.px(Px.CMD) & (PxCMD.FR | PxCMD.CR)).toBe(PxCMD.FR);
    // PxCI is ignored while ST is clear.
    r.setPx(Px.CI, 1);
    expect(r.px(Px.CI)).toBe(0);
    r.busMaster = false; // commands wait: nothing to fetch them with
    r.setPx(Px.CMD, PxCMD.FRE | PxCMD.ST);
    expect(r.px(Px.CMD) & (PxCMD.FR | PxCMD.CR)).toBe(PxCMD.FR | PxCMD.CR);
    r.setPx(Px.CI, 0b101);
    r.setPx(Px.CI, 0); // writing 0 leaves issued slots alone
    expect(r.px(Px.CI)).toBe(0b101);
    r.setPx(Px.CMD, PxCMD.FRE);
    expect(r.px(Px.CMD) & PxCMD.CR).toBe(0);
    expect(r.px(Px.CI)).toBe(0);
    r.setPx(Px.CMD, 0);
    expect(r.px(Px.CMD) & PxCMD.FR).toBe(0);
    // SUD and POD are read-only 1.
    r.setPx(Px.CMD, 0);
    expect(r.px(Px.CMD) & (PxCMD.SUD | PxCMD.POD)).toBe(PxCMD.SUD | PxCMD.POD);
  });

  it('posts the device signature FIS when FIS receive is enabled', () => {
    r.setPx(Px.FB, FB);
    expect(r.u32(FB + 0x40)).toBe(0);
    r.setPx(Px.CMD, PxCMD.FRE);
    const f = r.bytes(FB + 0x40, 20);
    expect(f[0]).toBe(0x34);
    expect(f[2]).toBe(0x50);
    expect(f[3]).toBe(0x01);
    expect(f[12]).toBe(1); // sector count 1, LBA 0: an ATA device
    expect(r.px(Px.IS)).toBe(0);
  });

  it('answers IDENTIFY DEVICE with the words a driver reads, via a PIO Setup FIS', () => {
    start(r);
    r.command(3, regFis(AtaCmd.IDENTIFY_DEVICE), [{ addr: 0x3_0000, bytes: 512 }]);
    r.setPx(Px.CI, 1 << 3);
    expect(r.px(Px.CI)).toBe(0);
    expect(r.prdbc(3)).toBe(512);
    expect(r.px(Px.IS) & PxIS.PSS).toBe(PxIS.PSS);
    expect(r.px(Px.TFD)).toBe(0x50);
    expect(r.bytes(FB + 0x20, 1)[0]).toBe(0x5f);
    const id = r.bytes(0x3_0000, 512);
    expect(ataString(id, 27, 20)).toBe('TEST MODEL'.padEnd(40));
    expect(ataString(id, 10, 10)).toBe('SN123'.padEnd(20));
    expect(ataString(id, 23, 4)).toBe('FW1'.padEnd(8));
    expect(word(id, 60) | (word(id, 61) << 16)).toBe(SECTORS);
    expect(word(id, 100) + word(id, 101) * 0x10000 + word(id, 102) * 2 ** 32).toBe(SECTORS);
    expect(word(id, 103)).toBe(0);
    expect(word(id, 83) & (1 << 10)).not.toBe(0); // 48-bit supported
    expect(word(id, 86) & (1 << 10)).not.toBe(0); // and enabled
    expect(word(id, 83) & (1 << 13)).not.toBe(0); // FLUSH CACHE EXT
    expect(word(id, 106) & 0xc000).toBe(0x4000); // valid
    expect(word(id, 106) & (1 << 12)).toBe(0); // 512-byte logical sectors
    expect(word(id, 49) & (1 << 9)).not.toBe(0); // LBA
    expect(id[510]).toBe(0xa5);
    expect(id.reduce((a, b) => (a + b) & 0xff, 0)).toBe(0);
  });

  it('READ DMA EXT scatters into a multi-entry PRDT crossing pages, then posts a D2H FIS', () => {
    start(r);
    const prds = [
      { addr: 0x4_0ff0, bytes: 0x20 }, // crosses a page boundary
      { addr: 0x5_0000, bytes: 0x3e0 },
      { addr: 0x6_0f00, bytes: 0x1000, i: true }, // crosses a page, interrupt on completion
      { addr: 0x7_0000, bytes: 0x1000 }, // more than is left: only part is used
    ];
    r.command(0, regFis(AtaCmd.READ_DMA_EXT, 100, 10), prds);
    r.setPx(Px.CI, 1);
    expect(r.px(Px.CI)).toBe(0);
    expect(r.prdbc(0)).toBe(10 * 512);
    const img = patternImage(SECTORS).subarray(100 * 512, 110 * 512);
    const got = new Uint8Array(10 * 512);
    let off = 0;
    for (const p of prds) {
      const n = Math.min(p.bytes, got.length - off);
      got.set(r.bytes(p.addr, n), off);
      off += n;
    }
    expect(got).toEqual(img);
    // Nothing past the transfer in the last buffer.
    expect(r.bytes(0x7_0000 + (5120 - 0x20 - 0x3e0 - 0x1000), 4)).toEqual(new Uint8Array(4));
    const d2h = r.bytes(FB + 0x40, 4);
    expect([...d2h]).toEqual([0x34, 0x40, 0x50, 0x00]);
    expect(r.px(Px.IS)).toBe((PxIS.DHRS | PxIS.DPS) >>> 0);
    expect(r.px(Px.TFD)).toBe(0x50);
  });

  it('WRITE DMA EXT gathers from several buffers into the overlay; the file stays as it was', () => {
    start(r);
    const data = new Uint8Array(3 * 512).map((_, i) => (i * 13 + 5) & 0xff);
    r.bus.writeBytes(0x4_0ffe, data.subarray(0, 0x202));
    r.bus.writeBytes(0x5_0000, data.subarray(0x202));
    r.command(
      1,
      regFis(AtaCmd.WRITE_DMA_EXT, 2000, 3),
      [
        { addr: 0x4_0ffe, bytes: 0x202 },
        { addr: 0x5_0000, bytes: 0x400 },
      ],
      { write: true },
    );
    r.setPx(Px.CI, 2);
    expect(r.px(Px.CI)).toBe(0);
    expect(r.prdbc(1)).toBe(1536);
    r.command(2, regFis(AtaCmd.READ_DMA_EXT, 1999, 5), [{ addr: 0x8_0000, bytes: 5 * 512 }]);
    r.setPx(Px.CI, 4);
    const back = r.bytes(0x8_0000, 5 * 512);
    expect(back.subarray(512, 4 * 512)).toEqual(data);
    expect(back.subarray(0, 512)).toEqual(patternImage(SECTORS).subarray(1999 * 512, 2000 * 512));
    expect(back.subarray(4 * 512)).toEqual(patternImage(SECTORS).subarray(2003 * 512, 2004 * 512));
    r.command(3, regFis(AtaCmd.FLUSH_CACHE_EXT), []);
    r.setPx(Px.CI, 8);
    expect(r.px(Px.CI)).toBe(0);
    expect(Buffer.compare(readFileSync(path), patternImage(SECTORS))).toBe(0);
  });

  it('reports an LBA out of range with TFES and IDNF, stops the list until ST is cleared', () => {
    start(r);
    r.command(0, regFis(AtaCmd.READ_DMA_EXT, SECTORS - 1, 2), [{ addr: 0x4_0000, bytes: 1024 }]);
    r.command(1, regFis(AtaCmd.READ_DMA_EXT, 0, 1), [{ addr: 0x4_1000, bytes: 512 }]);
    r.setPx(Px.CI, 0b11);
    expect(r.px(Px.IS) & PxIS.TFES).toBe(PxIS.TFES);
    expect(r.px(Px.TFD)).toBe(((0x10 | 0x04) << 8) | 0x41);
    expect(r.px(Px.CI)).toBe(0b11); // the failed slot and the one after it stay issued
    expect((r.px(Px.CMD) & PxCMD.CCS_MASK) >>> PxCMD.CCS_SHIFT).toBe(0);
    expect(r.bytes(FB + 0x40, 4)).toEqual(new Uint8Array([0x34, 0x40, 0x41, 0x14]));
    // Recovery: stop the engine, clear the errors, start again.
    r.setPx(Px.CMD, PxCMD.FRE);
    expect(r.px(Px.CI)).toBe(0);
    r.setPx(Px.IS, 0xffff_ffff);
    expect(r.px(Px.IS)).toBe(0);
    r.setPx(Px.CMD, PxCMD.FRE | PxCMD.ST);
    r.setPx(Px.CI, 0b10);
    expect(r.px(Px.CI)).toBe(0);
    expect(r.bytes(0x4_1000, 512)).toEqual(patternImage(1));
  });

  it('aborts unsupported commands with ABRT', () => {
    start(r);
    r.command(0, regFis(0xb0 /* SMART */), []);
    r.setPx(Px.CI, 1);
    expect(r.px(Px.TFD)).toBe((0x04 << 8) | 0x41);
    expect(r.px(Px.IS) & PxIS.TFES).toBe(PxIS.TFES);
    expect(r.hba.stats.unsupportedCommands).toBe(1);
  });

  it('sets OFS when the PRDT is smaller than the transfer', () => {
    start(r);
    r.command(0, regFis(AtaCmd.READ_DMA_EXT, 0, 2), [{ addr: 0x4_0000, bytes: 512 }]);
    r.setPx(Px.CI, 1);
    expect(r.px(Px.IS) & PxIS.OFS).toBe(PxIS.OFS);
    expect(r.px(Px.CI)).toBe(1);
    expect(r.prdbc(0)).toBe(512);
  });

  it('runs commands only with GHC.AE set and bus mastering on', () => {
    r.setPx(Px.CLB, CLB);
    r.setPx(Px.FB, FB);
    r.setPx(Px.CMD, PxCMD.FRE | PxCMD.ST);
    r.command(0, regFis(AtaCmd.READ_DMA_EXT, 0, 1), [{ addr: 0x4_0000, bytes: 512 }]);
    r.busMaster = false;
    r.setPx(Px.CI, 1);
    expect(r.px(Px.CI)).toBe(1);
    r.setGhc(Ghc.GHC, GhcBits.AE);
    expect(r.px(Px.CI)).toBe(1);
    r.busMaster = true;
    r.hba.busMasterChanged();
    expect(r.px(Px.CI)).toBe(0);
  });

  it('interrupts on its line when PxIE and GHC.IE allow; IS is write-1-to-clear and follows PxIS', () => {
    start(r);
    r.setPx(Px.IE, PxIS.DHRS | PxIS.TFES);
    r.command(0, regFis(AtaCmd.READ_DMA_EXT, 0, 1), [{ addr: 0x4_0000, bytes: 512 }]);
    r.setPx(Px.CI, 1);
    expect(r.ghc(Ghc.IS)).toBe(1);
    expect(r.irqLevel).toBe(false); // GHC.IE is clear
    r.setGhc(Ghc.GHC, GhcBits.AE | GhcBits.IE);
    expect(r.irqLevel).toBe(true);
    // Clearing IS while PxIS still holds DHRS: it comes back.
    r.setGhc(Ghc.IS, 1);
    expect(r.ghc(Ghc.IS)).toBe(1);
    r.setPx(Px.IS, PxIS.DHRS);
    expect(r.px(Px.IS)).toBe(0);
    expect(r.irqLevel).toBe(true);
    r.setGhc(Ghc.IS, 1);
    expect(r.ghc(Ghc.IS)).toBe(0);
    expect(r.irqLevel).toBe(false);
    // A masked status bit (DPS not in PxIE) does not interrupt.
    r.command(0, regFis(AtaCmd.READ_DMA_EXT, 0, 1), [{ addr: 0x4_0000, bytes: 512, i: true }]);
    r.setPx(Px.IE, PxIS.DPS);
    r.setPx(Px.IE, 0);
    r.setPx(Px.CI, 1);
    expect(r.px(Px.IS)).toBe((PxIS.DHRS | PxIS.DPS) >>> 0);
    expect(r.irqLevel).toBe(false);
  });

  it('drops the link on COMRESET (PxSCTL.DET=1) and re-signals when released', () => {
    r.setPx(Px.SCTL, 1);
    expect(r.px(Px.SSTS)).toBe(0);
    expect(r.px(Px.TFD) & 0x80).toBe(0x80);
    r.setPx(Px.SCTL, 0);
    expect(r.px(Px.SSTS)).toBe(0x113);
    expect(r.px(Px.TFD)).toBe(0x150);
    expect(r.px(Px.SIG)).toBe(0x101);
  });

  it('clears BSY with PxCMD.CLO, which reads back 0', () => {
    r.setPx(Px.SCTL, 1); // device busy in reset
    r.setPx(Px.CMD, PxCMD.CLO);
    expect(r.px(Px.TFD) & 0x88).toBe(0);
    expect(r.px(Px.CMD) & PxCMD.CLO).toBe(0);
  });
});
