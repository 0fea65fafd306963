/**
 * Rate limits for the log lines of recurring faults (connections refused at the limit, failed
 * accepts, DNS sockets that cannot open): a flood of them must not fill the journal.
 *
 * @module
 */

/** How often a line about one kind of recurring fault may be logged. */
export const FAULT_LOG_INTERVAL_MS = 60_000;

/**
 * Lets one event of a kind be logged per interval and counts those held back in between, so
 * the next line can say how many there were.
 *
 * @example
 * ```ts
 * import { log } from "./log.ts";
 *
 * const throttle = new LogThrottle(FAULT_LOG_INTERVAL_MS);
 * const heldBack = throttle.pass();
 * if (heldBack !== null) log.warning`accept failed${heldBackText(heldBack)}`;
 * ```
 */
export class LogThrottle {
  readonly #intervalMs: number;
  #loggedAt = -Infinity;
  #heldBack = 0;

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
  }

  /**
   * Whether an event may be logged now: null when it is held back (and counted), else how many
   * were held back since the last one logged.
   */
  pass(now: number = performance.now()): number | null {
    if (now - this.#loggedAt < this.#intervalMs) {
      this.#heldBack++;
      return null;
    }
    this.#loggedAt = now;
    const heldBack = this.#heldBack;
    this.#heldBack = 0;
    return heldBack;
  }
}

/**
 * The end of a throttled line: how many like it were not logged since the last one.
 *
 * @example
 * ```ts
 * heldBackText(0); // ""
 * heldBackText(41); // " (41 more since the last such line, not logged)"
 * ```
 */
export function heldBackText(heldBack: number): string {
  return heldBack === 0 ? "" : ` (${heldBack} more since the last such line, not logged)`;
}
