/**
 * QEMU as the oracle for the bundled guests: boots a kernel under `qemu-system-x86_64 -M q35` with
 * TCG, types shell lines on COM1 (each one after the shell's prompt appears), and returns what the
 * guest printed. The lead compares vmm's transcript of the same guest and input with this one,
 * after masking the timing-dependent lines (maskTimingLines).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const QEMU_BINARY = 'qemu-system-x86_64';
/** The sample guest's shell prompt (guests/sample/main.c). */
export const SAMPLE_PROMPT = '>> ';
/** A session that exercises every command of the sample guest's shell, ending with power-off. */
export const SAMPLE_COMMANDS: readonly string[] = [
  'help',
  'hello',
  'ticks',
  'mem',
  'fault',
  'priv',
  'exits',
  'poweroff',
];
/** QEMU's isa-debug-exit turns a guest write of V to its port into the exit status (V << 1) | 1. */
export const ISA_DEBUG_EXIT_PORT = 0xf4;
export const DEBUG_EXIT_STATUS = (0x10 << 1) | 1;

/**
 * How the guest is started:
 * - `multiboot`: QEMU's own firmware (SeaBIOS) and its Multiboot loader (`-kernel`): EAX=0x2BADB002.
 * - `bios`: no PC firmware at all: a 64 KiB reset stub whose reset vector far-jumps to 0000:8000,
 *   where the generic loader put the BIOS image; the kernel is loaded at 0x200000. This is the
 *   tutorial's boot path (real mode, CS=0, IP=0x8000). Without SeaBIOS nobody programs the ICH9
 *   PM base, so the guest's ACPI power-off is a no-op and its isa-debug-exit fallback ends QEMU.
 */
export type QemuBoot = { kind: 'multiboot' } | { kind: 'bios'; bios: string };

export interface QemuRunOptions {
  /** The flat kernel image (guests/sample/sample.bin). */
  kernel: string;
  boot?: QemuBoot;
  /** Lines typed into COM1, each one after the next prompt appears; "\r" ends each line. */
  input?: readonly string[];
  prompt?: string;
  /** Guest RAM, QEMU syntax. 16M matches the tutorial's guest. */
  memory?: string;
  /** QEMU accelerator: TCG (default, everywhere) or KVM (needs a usable /dev/kvm). */
  accel?: 'tcg' | 'kvm';
  /** CPU model. `-hypervisor` hides TCG's hypervisor CPUID bit, so the guest sees bare hardware. */
  cpu?: string;
  /**
   * Add QEMU's isa-debug-exit device at port 0xF4. Default: only for the `bios` boot, which needs
   * it to stop; under SeaBIOS the guest's ACPI power-off must work on its own (QEMU exits with 0).
   */
  debugExit?: boolean;
  /** Safety net only (the run is killed and `timedOut` set); nothing asserts on time. */
  timeoutMs?: number;
  extraArgs?: readonly string[];
}

export interface QemuTranscript {
  /** Everything QEMU wrote to stdout (the guest's COM1), unmodified. */
  raw: string;
  /** `raw` with CR LF turned into LF. */
  text: string;
  /** QEMU's exit status: 0 after an ACPI power-off, DEBUG_EXIT_STATUS after isa-debug-exit. */
  exitCode: number | null;
  timedOut: boolean;
  /** How many of the input lines were typed before the run ended. */
  linesTyped: number;
  stderr: string;
}

/** True when qemu-system-x86_64 can be started. */
export function qemuAvailable(): boolean {
  const r = spawnSync(QEMU_BINARY, ['--version'], { encoding: 'utf8' });
  return r.status === 0;
}

/** QEMU's command line for a run (exported so that a failing test can print it). */
export function qemuArgs(opts: QemuRunOptions, resetStub?: string): string[] {
  const boot = opts.boot ?? { kind: 'multiboot' };
  const args = [
    '-M',
    'q35',
    '-accel',
    opts.accel ?? 'tcg',
    '-cpu',
    opts.cpu ?? 'qemu64,-hypervisor',
    '-m',
    opts.memory ?? '16M',
    '-display',
    'none',
    '-no-reboot',
    '-serial',
    'stdio',
    '-monitor',
    'none',
  ];
  if (opts.debugExit ?? boot.kind === 'bios') {
    args.push('-device', `isa-debug-exit,iobase=0x${ISA_DEBUG_EXIT_PORT.toString(16)},iosize=0x04`);
  }
  if (boot.kind === 'multiboot') {
    args.push('-kernel', opts.kernel);
  } else {
    if (!resetStub) throw new Error('qemuArgs: the bios boot needs the reset stub path');
    args.push(
      '-bios',
      resetStub,
      '-device',
      `loader,file=${boot.bios},addr=0x8000,force-raw=on`,
      '-device',
      `loader,file=${opts.kernel},addr=0x200000,force-raw=on`,
    );
  }
  args.push(...(opts.extraArgs ?? []));
  return args;
}

/**
 * A 64 KiB "firmware" whose reset vector (0xFFFFFFF0, the last 16 bytes of the image) holds
 * `jmp far 0000:8000`; everything else is HLT. QEMU wants -bios images in 64 KiB multiples.
 */
export function resetStubImage(): Buffer {
  const image = Buffer.alloc(0x10000, 0xf4);
  image.set([0xea, 0x00, 0x80, 0x00, 0x00], 0xfff0);
  return image;
}

/** Boots the kernel under QEMU, types the input lines at the prompts, waits for QEMU to exit. */
export async function runQemu(opts: QemuRunOptions): Promise<QemuTranscript> {
  const input = opts.input ?? [];
  const prompt = opts.prompt ?? SAMPLE_PROMPT;
  const dir = mkdtempSync(join(tmpdir(), 'vmm-qemu-'));
  let resetStub: string | undefined;
  if (opts.boot?.kind === 'bios') {
    resetStub = join(dir, 'reset-stub.bin');
    writeFileSync(resetStub, resetStubImage());
  }
  const child = spawn(QEMU_BINARY, qemuArgs(opts, resetStub), { stdio: ['pipe', 'pipe', 'pipe'] });
  let raw = '';
  let stderr = '';
  let typed = 0;
  let timedOut = false;

  const promptsSeen = (): number => raw.split(prompt).length - 1;
  child.stdout.setEncoding('latin1');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    raw += chunk;
    // Type the next line once a prompt appears that no line has answered yet.
    while (typed < input.length && promptsSeen() > typed) {
      child.stdin.write(`${input[typed]}\r`);
      typed++;
    }
  });
  child.stderr.on('data', (chunk: string) => {
    stderr += chunk;
  });
  child.stdin.on('error', () => {
    // QEMU may exit (power-off) while a line is still being written: nothing to do.
  });

  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, opts.timeoutMs ?? 45_000);
  try {
    const exitCode = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code) => resolve(code));
    });
    return { raw, text: raw.replace(/\r\n/g, '\n'), exitCode, timedOut, linesTyped: typed, stderr };
  } finally {
    clearTimeout(timer);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Replaces the numbers on the sample guest's timing-dependent lines (the calibration results,
 * lines starting with "Calibrated ", and the `ticks` answer) with `#`. Every other line is
 * deterministic for a given platform and input, and is left as it is.
 */
export function maskTimingLines(text: string): string {
  return text
    .split('\n')
    .map((line) => {
      const bare = line.replace(/\r$/, '');
      if (bare.startsWith('Calibrated ')) return line.replace(/: \d+ MHz/, ': # MHz');
      if (bare.startsWith('ticks: ')) return line.replace(/^ticks: \d+/, 'ticks: #');
      return line;
    })
    .join('\n');
}

/**
 * The answer to one shell command in a transcript (LF line ends): the text after the echoed
 * `>> command` line up to the next prompt, or to the end when none follows.
 */
export function commandAnswer(text: string, command: string, prompt: string = SAMPLE_PROMPT): string {
  const echo = `${prompt}${command}\n`;
  const start = text.indexOf(echo);
  if (start < 0) throw new Error(`the transcript has no "${command}" command:\n${text}`);
  const from = start + echo.length;
  const next = text.indexOf(prompt, from);
  return text.slice(from, next < 0 ? undefined : next);
}

/**
 * Line prefixes of the sample guest whose content depends on the platform rather than on timing:
 * the loader (`boot =`, `mem_lower =`), the RAM size (`memory =`, `free frames =`), CPUID and the
 * hypervisor (`hypervisor =`, `exits:`), the APIC mode (`Local APIC:`), and where the TSC
 * frequency came from (the `Calibrated TSC` suffix). Deterministic for one platform.
 */
export const PLATFORM_LINE_PREFIXES: readonly string[] = [
  'boot = ',
  'mem_lower = ',
  'memory = ',
  'free frames = ',
  'hypervisor = ',
  'exits: ',
  'Local APIC: ',
  'Calibrated TSC frequency: ',
];

/**
 * maskTimingLines, and then each platform-dependent line reduced to its prefix followed by `…`,
 * for comparing transcripts of the same guest on two different machines (vmm and QEMU).
 */
export function maskPlatformLines(text: string): string {
  return maskTimingLines(text)
    .split('\n')
    .map((line) => {
      const prefix = PLATFORM_LINE_PREFIXES.find((p) => line.startsWith(p));
      return prefix === undefined ? line : `${prefix}…${line.endsWith('\r') ? '\r' : ''}`;
    })
    .join('\n');
}
