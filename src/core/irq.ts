/**
 * Interrupt lines of one bus (ISA IRQs / GSIs). A device drives a line's level; every interrupt
 * controller connected to the bus sees the change (as QEMU fans GSIs out to the PIC and the IOAPIC).
 * Edge-triggered sources pulse the line.
 */
export type IrqListener = (line: number, level: boolean) => void;

export const IRQ_LINES = 24;

export class IrqLines {
  private readonly levels = new Uint8Array(IRQ_LINES);
  private readonly listeners: IrqListener[] = [];
  /** Raised edges per line, for statistics. */
  readonly raised = new Float64Array(IRQ_LINES);

  connect(listener: IrqListener): void {
    this.listeners.push(listener);
  }

  level(line: number): boolean {
    return this.levels[line] === 1;
  }

  set(line: number, level: boolean): void {
    const v = level ? 1 : 0;
    if (this.levels[line] === v) return;
    this.levels[line] = v;
    if (level) this.raised[line]!++;
    for (const l of this.listeners) l(line, level);
  }

  /** A rising then falling edge, for edge-triggered sources. */
  pulse(line: number): void {
    this.set(line, true);
    this.set(line, false);
  }
}
