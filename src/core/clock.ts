/**
 * Virtual time in nanoseconds and the event queue devices schedule on.
 *
 * `now` is a plain number field (exact to 2^53 ns, about 104 days) that the CPU advances as it
 * executes; the CPU brings it up to date before any device access, so a device reading `now`
 * sees the time of the instruction that touched it. Timers are allocated once by a device and
 * re-armed, so scheduling allocates nothing.
 *
 * Deterministic mode (the default) never reads the wall clock: the same machine and input give
 * the same run. Realtime mode lets the run loop pace virtual time to wall time (see Machine).
 */
export type ClockMode = 'deterministic' | 'realtime';

export class Timer {
  /** Absolute virtual time (ns) when armed; Infinity when not. */
  deadline = Infinity;
  /** Position in the clock's heap; -1 when not queued. */
  heapIndex = -1;
  constructor(
    readonly name: string,
    readonly callback: (now: number) => void,
  ) {}
  get armed(): boolean {
    return this.heapIndex >= 0;
  }
}

export class VirtualClock {
  /** Current virtual time in nanoseconds. */
  now = 0;
  readonly mode: ClockMode;
  private heap: Timer[] = [];
  /** Listeners told when the earliest deadline moved earlier (the CPU shortens its slice). */
  private onEarlier: (() => void) | undefined;

  constructor(mode: ClockMode = 'deterministic') {
    this.mode = mode;
  }

  createTimer(name: string, callback: (now: number) => void): Timer {
    return new Timer(name, callback);
  }

  /** Arm (or re-arm) a timer at an absolute virtual time. A time in the past fires at the next check. */
  arm(t: Timer, deadlineNs: number): void {
    const before = this.nextDeadline();
    if (t.heapIndex >= 0) this.remove(t);
    t.deadline = deadlineNs;
    t.heapIndex = this.heap.length;
    this.heap.push(t);
    this.siftUp(t.heapIndex);
    if (deadlineNs < before) this.onEarlier?.();
  }

  armIn(t: Timer, delayNs: number): void {
    this.arm(t, this.now + delayNs);
  }

  cancel(t: Timer): void {
    if (t.heapIndex >= 0) this.remove(t);
    t.deadline = Infinity;
  }

  /** Earliest armed deadline, or Infinity. */
  nextDeadline(): number {
    return this.heap.length === 0 ? Infinity : this.heap[0]!.deadline;
  }

  /** Fire every timer whose deadline is <= now, in deadline order (ties in arming order are not promised). */
  fireDue(): number {
    let fired = 0;
    while (this.heap.length > 0 && this.heap[0]!.deadline <= this.now) {
      const t = this.heap[0]!;
      this.remove(t);
      const at = t.deadline;
      t.deadline = Infinity;
      fired++;
      t.callback(at);
    }
    return fired;
  }

  /** Set by the run loop: called when a newly armed deadline is earlier than every other. */
  setEarlierListener(fn: (() => void) | undefined): void {
    this.onEarlier = fn;
  }

  private remove(t: Timer): void {
    const i = t.heapIndex;
    const last = this.heap.pop()!;
    t.heapIndex = -1;
    if (last !== t) {
      this.heap[i] = last;
      last.heapIndex = i;
      this.siftDown(i);
      this.siftUp(last.heapIndex);
    }
  }

  private siftUp(i: number): void {
    const h = this.heap;
    const t = h[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = h[p]!;
      if (parent.deadline <= t.deadline) break;
      h[i] = parent;
      parent.heapIndex = i;
      i = p;
    }
    h[i] = t;
    t.heapIndex = i;
  }

  private siftDown(i: number): void {
    const h = this.heap;
    const n = h.length;
    const t = h[i]!;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && h[c + 1]!.deadline < h[c]!.deadline) c++;
      const child = h[c]!;
      if (child.deadline >= t.deadline) break;
      h[i] = child;
      child.heapIndex = i;
      i = c;
    }
    h[i] = t;
    t.heapIndex = i;
  }
}
