/** Host-side messages (never on the guest console). The CLI prints them on stderr. */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'trace';
export const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug', 'trace'];

export type LogSink = (level: LogLevel, source: string, message: string) => void;

export class Logger {
  private readonly threshold: number;
  constructor(
    private readonly sink: LogSink,
    level: LogLevel = 'info',
    readonly source = 'vmm',
  ) {
    this.threshold = LOG_LEVELS.indexOf(level);
  }
  child(source: string): Logger {
    const l = new Logger(this.sink, LOG_LEVELS[this.threshold]!, source);
    return l;
  }
  enabled(level: LogLevel): boolean {
    return LOG_LEVELS.indexOf(level) <= this.threshold;
  }
  log(level: LogLevel, message: string): void {
    if (this.enabled(level)) this.sink(level, this.source, message);
  }
  error(m: string): void {
    this.log('error', m);
  }
  warn(m: string): void {
    this.log('warn', m);
  }
  info(m: string): void {
    this.log('info', m);
  }
  debug(m: string): void {
    this.log('debug', m);
  }
  trace(m: string): void {
    this.log('trace', m);
  }
}

/** Collects messages in memory (tests, the programmatic API). */
export class MemoryLog {
  readonly entries: { level: LogLevel; source: string; message: string }[] = [];
  readonly sink: LogSink = (level, source, message) => {
    this.entries.push({ level, source, message });
  };
  text(): string {
    return this.entries.map((e) => `${e.level} ${e.source}: ${e.message}`).join('\n');
  }
}
