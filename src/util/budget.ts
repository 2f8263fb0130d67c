// A weighted semaphore: callers take `cost` units and give them back when done. Used to bound
// the bytes in flight across concurrent tasks whose sizes differ by orders of magnitude (a
// thousand small files cost what one large file does).

export class Budget {
  private used = 0;
  private readonly waiters: { cost: number; resolve: () => void }[] = [];

  constructor(readonly capacity: number) {}

  /** Waits until `cost` fits (a cost above the capacity waits until nothing else is in use). */
  async acquire(cost: number): Promise<void> {
    const c = Math.min(cost, this.capacity);
    if (this.waiters.length === 0 && this.used + c <= this.capacity) {
      this.used += c;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push({ cost: c, resolve }));
  }

  release(cost: number): void {
    this.used -= Math.min(cost, this.capacity);
    // First come, first served: a large request is not starved by a stream of small ones.
    while (this.waiters.length > 0 && this.used + this.waiters[0]!.cost <= this.capacity) {
      const w = this.waiters.shift()!;
      this.used += w.cost;
      w.resolve();
    }
  }
}
