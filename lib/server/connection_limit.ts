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
}

/**
 * How many of the connections waiting longest are looked at for one without a reply under way:
 * bounds the work per accept at the limit, whatever --max-connections is.
 */
const IDLE_SEARCH = 64;

/** A tracked connection's place in the line of connections that may give way. */
export interface LimitPlace {
  /** It begins waiting for its next request now (its replies are written): to the back. */
  renew(): void;
  /** It has ended: out of the line. */
  forget(): void;
}

/** One connection in the line, oldest first: linked in place, so moving one costs no lookup. */
interface Node {
  connection: TrackedConnection;
  close: () => void;
  older: Node | null;
  newer: Node | null;
  linked: boolean;
}

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
 *   const state = { busy: false, closed: false };
 *   const place = limit.track(state, () => conn.close());
 *   place.renew(); // after writing each reply: it waits for its next request from now
 *   place.forget(); // once the connection is closed
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
  /** The connection that has waited longest, and the one that began waiting last. */
  #oldest: Node | null = null;
  #newest: Node | null = null;
  #open = 0;
  readonly #refusedLog = new LogThrottle(FAULT_LOG_INTERVAL_MS);
  readonly #evictedLog = new LogThrottle(FAULT_LOG_INTERVAL_MS);

  constructor(max: number) {
    this.max = max;
  }

  /** Connections open now. */
  get open(): number {
    return this.#open;
  }

  /**
   * Counts a connection as open, one that may give way at the limit, at the back of the line;
   * returns its place: `renew` each time its replies are written, `forget` once it has ended.
   */
  track(connection: TrackedConnection, close: () => void): LimitPlace {
    const node: Node = { connection, close, older: null, newer: null, linked: false };
    this.#append(node);
    return {
      renew: () => {
        if (!node.linked || node === this.#newest) return;
        this.#unlink(node);
        this.#append(node);
      },
      forget: () => {
        if (node.linked) this.#unlink(node);
      },
    };
  }

  #append(node: Node): void {
    node.older = this.#newest;
    node.newer = null;
    if (this.#newest !== null) this.#newest.newer = node;
    else this.#oldest = node;
    this.#newest = node;
    node.linked = true;
    this.#open++;
  }

  #unlink(node: Node): void {
    if (node.older !== null) node.older.newer = node.newer;
    else this.#oldest = node.newer;
    if (node.newer !== null) node.newer.older = node.older;
    else this.#newest = node.older;
    node.older = node.newer = null;
    node.linked = false;
    this.#open--;
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
    let longest: Node | null = null;
    let searched = 0;
    for (let node = this.#oldest; node !== null; node = node.newer) {
      if (node.connection.closed) continue;
      longest ??= node;
      if (!node.connection.busy) {
        longest = node;
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
    longest.close();
    return true;
  }
}
