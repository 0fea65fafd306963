/**
 * --max-connections across all listeners, and who gives way at the limit.
 *
 * @module
 */

import { log } from "./log.ts";

/** What the limit reads of a connection to choose one to close. */
export interface TrackedConnection {
  /** Between reading a request and writing its reply. */
  readonly busy: boolean;
  /** When the unfinished request in its buffer began arriving; 0 when there is none. */
  readonly partialSince: number;
  readonly closed: boolean;
  /** `performance.now()` of its last read or write, from a clock that may lag (see below). */
  readonly lastActive: number;
}

/**
 * At the limit, a new connection takes the place of the one idle longest, if that one has been
 * idle this long: clients that hold connections open without asking (or a local process hoarding
 * them) cannot lock Postfix out. Postfix reconnects when it finds its idle connection closed.
 */
export const EVICT_IDLE_MS = 2000;
/**
 * How far a connection's `lastActive` may lag the real time: the server stamps it from a coarse
 * clock its sweep advances at most this often. A connection counts as idle
 * {@linkcode EVICT_IDLE_MS} only when it looks idle this much longer.
 */
const COARSE_CLOCK_LAG_MS = 1000;
/** The notice that the limit was reached is logged at most this often. */
const EVICT_LOG_MS = 60_000;

/**
 * --max-connections across all listeners: the connections open (each with how to close it, so
 * the one idle longest can make room for a new one), and those refused.
 *
 * @example
 * ```ts
 * const limit = new ConnectionLimit(10_000);
 * if (!limit.admit()) refuse(conn);
 * const forget = limit.track(state, () => close(state));
 * ```
 */
export class ConnectionLimit {
  /** The most connections open at once. */
  readonly max: number;
  /** Connections refused because `max` was reached and none could be closed for them. */
  refused = 0;
  readonly #connections = new Map<TrackedConnection, () => void>();
  #loggedAt = -Infinity;

  constructor(max: number) {
    this.max = max;
  }

  /** Connections open now. */
  get open(): number {
    return this.#connections.size;
  }

  /**
   * Counts a connection as open, one that may give way at the limit; returns the function that
   * forgets it (call it when the connection has ended).
   */
  track(connection: TrackedConnection, close: () => void): () => void {
    this.#connections.set(connection, close);
    return () => this.#connections.delete(connection);
  }

  /** Whether a new connection may open: below the limit, or one gave way for it. */
  admit(now: number = performance.now()): boolean {
    return this.open < this.max || this.makeRoom(now);
  }

  /**
   * Closes the connection idle longest to make room for a new one: idle at least
   * {@linkcode EVICT_IDLE_MS}, or holding a request begun that long ago and still unfinished
   * (Postfix writes a request whole; one byte must not make a hoarded connection safe), and never
   * one whose reply is under way. False when there is none.
   */
  makeRoom(now: number = performance.now()): boolean {
    let idlest: TrackedConnection | null = null;
    const before = now - EVICT_IDLE_MS - COARSE_CLOCK_LAG_MS;
    for (const connection of this.#connections.keys()) {
      if (connection.busy || connection.closed) continue;
      const since = connection.partialSince !== 0 ? connection.partialSince : connection.lastActive;
      if (since > before) continue;
      if (idlest === null || connection.lastActive < idlest.lastActive) idlest = connection;
    }
    if (idlest === null) return false;
    if (now - this.#loggedAt >= EVICT_LOG_MS) {
      this.#loggedAt = now;
      log
        .warning`--max-connections (${this.max}) reached: closing the connections idle longest for new ones`;
    }
    this.#connections.get(idlest)?.();
    return true;
  }
}
