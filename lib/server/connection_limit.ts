/**
 * --max-connections across all listeners, and who gives way at the limit.
 *
 * @module
 */

import { log } from "../common/log.ts";
import { FAULT_LOG_INTERVAL_MS, heldBackText, LogThrottle } from "../common/log_throttle.ts";

/** What the limit reads of a connection to choose one to close. */
export interface TrackedConnection {
  /** Between reading a request and writing its reply. */
  readonly busy: boolean;
  readonly closed: boolean;
  /**
   * A {@linkcode ConnectionLimit.stamp} taken when it began waiting for its next request (when
   * accepted, and each time its replies were written): the smaller, the longer it has waited.
   * Bytes of an unfinished request do not renew it, so dripping one byte at a time does not make
   * a hoarded connection look busy.
   */
  readonly waitingSince: number;
}

/**
 * How many of the connections waiting longest are looked at for one without a reply under way:
 * bounds the work per accept at the limit, whatever --max-connections is.
 */
const IDLE_SEARCH = 64;

/**
 * --max-connections across all listeners: the connections open (each with how to close it, so
 * one can make room for a new one), those closed to make room, and those refused.
 *
 * At the limit a new connection is always served: the connection that has waited longest since
 * its last request is closed for it, however recent that was, preferring one without a reply
 * under way. A local process that holds every connection and keeps each one busy with a lookup a
 * second, or that pipelines requests and never reads the replies, cannot lock Postfix out;
 * Postfix reconnects when it finds its connection closed. The connections are kept in the order
 * they last began waiting, so the choice costs the same at 10 connections or 10,000.
 *
 * @example
 * ```ts
 * declare const conn: Deno.Conn;
 * const limit = new ConnectionLimit(10_000);
 * if (limit.admit()) {
 *   const state = { busy: false, closed: false, waitingSince: limit.stamp() };
 *   const forget = limit.track(state, () => conn.close());
 *   state.waitingSince = limit.stamp(); // after writing each reply
 *   forget(); // once the connection is closed
 * } else {
 *   conn.close();
 * }
 * ```
 */
export class ConnectionLimit {
  /** The most connections open at once. */
  readonly max: number;
  /** Connections refused: `max` reached and none could be closed (a limit of 0 connections). */
  refused = 0;
  /** Connections closed to make room for a new one. */
  evicted = 0;
  readonly #connections = new Map<TrackedConnection, () => void>();
  #sequence = 0;
  readonly #refusedLog = new LogThrottle(FAULT_LOG_INTERVAL_MS);
  readonly #evictedLog = new LogThrottle(FAULT_LOG_INTERVAL_MS);

  constructor(max: number) {
    this.max = max;
  }

  /** Connections open now. */
  get open(): number {
    return this.#connections.size;
  }

  /** A number larger than every one returned before: orders connections by when they waited. */
  stamp(): number {
    return ++this.#sequence;
  }

  /**
   * Notes that a connection begins waiting for its next request now (its replies are written):
   * it moves to the back of the line of connections that may give way.
   */
  renew(connection: TrackedConnection & { waitingSince: number }): void {
    connection.waitingSince = this.stamp();
    const close = this.#connections.get(connection);
    if (close === undefined) return;
    this.#connections.delete(connection);
    this.#connections.set(connection, close);
  }

  /**
   * Counts a connection as open, one that may give way at the limit; returns the function that
   * forgets it (call it when the connection has ended).
   */
  track(connection: TrackedConnection, close: () => void): () => void {
    this.#connections.set(connection, close);
    return () => this.#connections.delete(connection);
  }

  /**
   * Whether a new connection may open: below the limit, or one was closed for it (see
   * {@linkcode ConnectionLimit.makeRoom}). A refusal is counted and logged (at most once a
   * minute, with the count held back).
   */
  admit(now: number = performance.now()): boolean {
    if (this.open < this.max || this.makeRoom(now)) return true;
    this.refused++;
    const heldBack = this.#refusedLog.pass(now);
    if (heldBack !== null) {
      log
        .warning`--max-connections (${this.max}) reached and no connection could be closed: refused a new connection (${this.refused} refused since start)${
        heldBackText(heldBack)
      }`;
    }
    return false;
  }

  /**
   * Closes the connection that has waited longest since its last request to make room for a new
   * one: of the {@linkcode IDLE_SEARCH} that waited longest, the first without a reply under way,
   * else the one that waited longest of all (a client that never reads its replies stays "under
   * way" for minutes). Counts and logs it (at most once a minute). False only when there is none.
   */
  makeRoom(now: number = performance.now()): boolean {
    let longest: TrackedConnection | null = null;
    let searched = 0;
    for (const connection of this.#connections.keys()) {
      if (connection.closed) continue;
      longest ??= connection;
      if (!connection.busy) {
        longest = connection;
        break;
      }
      if (++searched === IDLE_SEARCH) break;
    }
    if (longest === null) return false;
    this.evicted++;
    const heldBack = this.#evictedLog.pass(now);
    if (heldBack !== null) {
      log
        .warning`--max-connections (${this.max}) reached: closed the connection waiting longest since its last request, to serve a new one (${this.evicted} closed so far); raise --max-connections unless a client hoards connections${
        heldBackText(heldBack)
      }`;
    }
    this.#connections.get(longest)?.();
    return true;
  }
}
