// Runs at most `size` async tasks at once. `run` resolves when the task has *started* (so a
// producer loop is paced by the pool), `drain` when all have finished. The first failure is
// kept and rethrown by the next `run` or `drain`, and stops new tasks from starting.

export class TaskPool {
  private readonly running = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`pool size must be a positive integer, got ${size}`);
  }

  get active(): number {
    return this.running.size;
  }

  async run(task: () => Promise<void>): Promise<void> {
    while (this.running.size >= this.size) await Promise.race(this.running);
    this.rethrow();
    const p: Promise<void> = task()
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => this.running.delete(p));
    this.running.add(p);
  }

  /** Resolves when a slot is free (without taking it): lets producers pause before making work. */
  async whenFree(): Promise<void> {
    while (this.running.size >= this.size) await Promise.race(this.running);
    this.rethrow();
  }

  /** Resolves when every running task has finished, whatever failed: nothing runs after it. */
  async settle(): Promise<void> {
    while (this.running.size > 0) await Promise.race(this.running);
  }

  async drain(): Promise<void> {
    while (this.running.size > 0) await Promise.race(this.running);
    this.rethrow();
  }

  private rethrow(): void {
    if (this.failure) throw this.failure.error;
  }
}
