/**
 * The `stdio` console backend of the CLI: guest output on stdout, input from stdin.
 *
 * On a terminal stdin goes to raw mode (every key, Ctrl-C included, goes to the guest) with QEMU's
 * escape prefix Ctrl-A: `C-a x` quits, `C-a h` prints help, `C-a C-a` sends one Ctrl-A. On a pipe or
 * file the bytes pass through untouched and end of input is reported (`inputEnded`), so scripted
 * sessions (`printf 'hello\n' | vmm up`) work. Host messages never go to stdout.
 */
import type { ConsoleBackend } from '../core/console.js';

/** QEMU's default escape character, Ctrl-A. */
export const ESCAPE_BYTE = 0x01;

export const ESCAPE_HELP = [
  'C-a h    print this help',
  'C-a x    exit the emulator',
  'C-a C-a  send C-a to the guest',
].join('\n');

/** The parts of process.stdin this backend uses (a TTY ReadStream or a plain Readable). */
export interface InputStream {
  readonly isTTY?: boolean;
  setRawMode?(mode: boolean): unknown;
  on(event: 'data', fn: (chunk: Buffer | string) => void): unknown;
  on(event: 'end' | 'close', fn: () => void): unknown;
  on(event: 'error', fn: (e: Error) => void): unknown;
  removeAllListeners(event?: string): unknown;
  resume(): unknown;
  pause(): unknown;
}

export interface OutputStream {
  write(data: Uint8Array | string): unknown;
  on?(event: 'error', fn: (e: Error) => void): unknown;
}

export interface StdioConsoleOptions {
  stdin?: InputStream;
  stdout?: OutputStream;
  stderr?: OutputStream;
  /** Raw mode with the Ctrl-A escape (default: when stdin is a TTY). */
  raw?: boolean;
  /** Called on `C-a x`, and when stdout goes away (EPIPE): the CLI stops the machine with `quit`. */
  onQuit?: () => void;
}

/** Escape-sequence state machine over input bytes (exported for tests). */
export class EscapeFilter {
  private pendingEscape = false;
  constructor(private readonly actions: { quit: () => void; help: () => void }) {}

  /** The bytes to pass to the guest, after acting on escape sequences. */
  filter(data: Uint8Array): Uint8Array {
    if (!this.pendingEscape && data.indexOf(ESCAPE_BYTE) < 0) return data;
    const out: number[] = [];
    for (const b of data) {
      if (this.pendingEscape) {
        this.pendingEscape = false;
        if (b === ESCAPE_BYTE) out.push(ESCAPE_BYTE);
        else if (b === 0x78 || b === 0x58)
          this.actions.quit(); // 'x' / 'X'
        else if (b === 0x68 || b === 0x48 || b === 0x3f) this.actions.help(); // 'h' / 'H' / '?'
        // Any other key after C-a is dropped, as QEMU's mux does.
      } else if (b === ESCAPE_BYTE) {
        this.pendingEscape = true;
      } else {
        out.push(b);
      }
    }
    return Uint8Array.from(out);
  }
}

const FLUSH_BYTES = 4096;

export class StdioConsole implements ConsoleBackend {
  private _inputEnded = false;
  private _lastByte = -1;
  private handler: ((data: Uint8Array) => void) | undefined;
  private pending: Uint8Array[] = [];
  /** Pending guest output (bytes 0..outLen); copied out at each flush, so writes allocate nothing. */
  private readonly outBuf = new Uint8Array(FLUSH_BYTES);
  private outLen = 0;
  private flushScheduled = false;
  private started = false;
  private closed = false;
  private outputBroken = false;
  readonly raw: boolean;
  private readonly stdin: InputStream;
  private readonly stdout: OutputStream;
  private readonly stderr: OutputStream;
  private readonly escape: EscapeFilter;
  private readonly onQuit: () => void;

  constructor(opts: StdioConsoleOptions = {}) {
    this.stdin = opts.stdin ?? process.stdin;
    this.stdout = opts.stdout ?? process.stdout;
    this.stderr = opts.stderr ?? process.stderr;
    this.raw = opts.raw ?? (this.stdin.isTTY === true && typeof this.stdin.setRawMode === 'function');
    this.onQuit = opts.onQuit ?? (() => {});
    this.escape = new EscapeFilter({
      quit: () => this.onQuit(),
      help: () => this.stderr.write(`\n${ESCAPE_HELP}\n`),
    });
  }

  /** The last byte the guest wrote (-1 before any output): the CLI ends an unfinished line before its summary. */
  get lastByte(): number {
    return this._lastByte;
  }

  get inputEnded(): boolean {
    return this._inputEnded;
  }

  /** Start reading stdin (raw mode on a terminal). Call `close()` to give the terminal back. */
  start(): void {
    if (this.started) return;
    this.started = true;
    if (this.raw) this.stdin.setRawMode?.(true);
    this.stdin.on('data', (chunk) => this.input(typeof chunk === 'string' ? Buffer.from(chunk) : chunk));
    this.stdin.on('end', () => {
      this._inputEnded = true;
    });
    this.stdin.on('error', () => {
      this._inputEnded = true;
    });
    this.stdout.on?.('error', () => {
      // The reader went away (`vmm up | head`): nothing more can be shown, so stop quietly.
      this.outputBroken = true;
      this.onQuit();
    });
    this.stdin.resume();
  }

  private input(data: Uint8Array): void {
    const bytes = this.raw ? this.escape.filter(data) : data;
    if (bytes.length === 0) return;
    if (this.handler) this.handler(bytes);
    else this.pending.push(bytes.slice());
  }

  setInputHandler(fn: ((data: Uint8Array) => void) | undefined): void {
    this.handler = fn;
    if (fn && this.pending.length > 0) {
      const p = this.pending;
      this.pending = [];
      for (const b of p) fn(b);
    }
  }

  /**
   * Guest output is line-buffered: a UART writes one byte per instruction, and one write(2) per
   * byte would dominate the run. A newline, 4 KiB, or the next event-loop turn flushes.
   */
  write(data: Uint8Array): void {
    if (this.outputBroken || this.closed || data.length === 0) return;
    this._lastByte = data[data.length - 1]!;
    if (this.outLen + data.length > FLUSH_BYTES) this.flush();
    if (data.length >= FLUSH_BYTES) {
      this.stdout.write(data.slice());
      return;
    }
    this.outBuf.set(data, this.outLen);
    this.outLen += data.length;
    if (data.includes(0x0a)) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  flush(): void {
    this.flushScheduled = false;
    if (this.outLen === 0) return;
    const out = this.outBuf.slice(0, this.outLen);
    this.outLen = 0;
    if (!this.outputBroken) this.stdout.write(out);
  }

  /** Flush output, leave raw mode and stop reading stdin (so the process can exit). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.restoreTerminal();
    if (this.started) {
      this.stdin.removeAllListeners('data');
      this.stdin.pause();
    }
  }

  /** Leave raw mode (safe to call from exit and signal handlers). */
  restoreTerminal(): void {
    if (this.raw && this.started) {
      try {
        this.stdin.setRawMode?.(false);
      } catch {
        // The terminal may already be gone (SIGHUP); nothing left to restore.
      }
    }
  }
}
