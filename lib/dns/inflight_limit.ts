/**
 * A counting semaphore with a FIFO queue and a deadline per waiter: bounds concurrent work (DNS
 * queries in flight) without letting a waiter wait past its own time budget.
 *
 * @module
 */

interface Waiter {
  grant: () => void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * Limits concurrent holders; waiters are served in arrival order.
 *
 * @example
 * ```ts
 * declare function work(): Promise<void>;
 *
 * const inflight = new InflightLimit(256);
 * if (await inflight.acquire(5000)) {
 *   try {
 *     await work();
 *   } finally {
 *     inflight.release();
 *   }
 * }
 * ```
 */
export class InflightLimit {
  readonly #max: number;
  #active = 0;
  readonly #queue: Waiter[] = [];

  constructor(max: number) {
    this.#max = Math.max(1, max);
  }

  /** Holders now. */
  get active(): number {
    return this.#active;
  }

  /** Waiters now. */
  get waiting(): number {
    return this.#queue.length;
  }

  /** Resolves true once a slot is held, or false if none came within `waitMs`. */
  acquire(waitMs: number): Promise<boolean> | boolean {
    if (this.#active < this.#max) {
      this.#active++;
      return true;
    }
    if (waitMs <= 0) return false;
    return new Promise<boolean>((resolve) => {
      const waiter: Waiter = {
        grant: () => resolve(true),
        timer: setTimeout(() => {
          const index = this.#queue.indexOf(waiter);
          if (index >= 0) this.#queue.splice(index, 1);
          resolve(false);
        }, waitMs),
      };
      this.#queue.push(waiter);
    });
  }

  /** Gives a slot back: to the first waiter, if any. */
  release(): void {
    const next = this.#queue.shift();
    if (next !== undefined) {
      clearTimeout(next.timer);
      next.grant(); // the slot passes on: #active stays the same
      return;
    }
    this.#active--;
  }
}
