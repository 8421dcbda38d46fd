/** The machine-wide services every plugin may use (the Machine implements this). */
import type { Bus } from './bus.js';
import type { VirtualClock } from './clock.js';
import type { ConsoleBackend } from './console.js';
import type { Logger } from './log.js';
import type { StopReason } from './stop.js';
import type { MachineConfig } from '../config/machine-schema.js';

export interface MachineServices {
  readonly name: string;
  readonly clock: VirtualClock;
  /** The host machine's physical bus (RAM, MMIO, ports, IRQs). */
  readonly hostBus: Bus;
  /** The guest's bus when the machine has a `guest:` section: ports and MMIO of emulated devices. */
  readonly guestBus: Bus | undefined;
  /** The console backend named `stdio` in machine files (the terminal in the CLI, memory in tests). */
  readonly console: ConsoleBackend;
  readonly log: Logger;
  /** The validated machine description (the policy reads `guest:` from it). */
  readonly config: MachineConfig;
  /** Stop the machine at the next instruction boundary. The first reason wins. */
  stop(reason: StopReason): void;
  readonly stopReason: StopReason | undefined;
  /** Register counters shown by `--stats` under a section name. */
  addStats(section: string, read: () => Record<string, number | string>): void;
}
