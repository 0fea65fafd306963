/**
 * --max-connections across all listeners, and who gives way at the limit.
 *
 * @module
 */

import { log } from "./log.ts";

/** Connections open across all listeners, and the most allowed (--max-connections). */
export interface ConnectionLimit {
  open: number;
  max: number;
  /** Connections refused because `max` was reached and none could be closed for them. */
  refused: number;
}

/** What the limit reads of a connection to choose one to close. */
export interface TrackedConnection {
  /** Between reading a request and writing its reply. */
  readonly busy: boolean;
  /** When the unfinished request in its buffer began arriving; 0 when there is none. */
  readonly partialSince: number;
  readonly closed: boolean;
  /** `performance.now()` of its last read or write. */
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

interface Tracked {
  /** Each open connection, with how to close it. */
  connections: Map<TrackedConnection, () => void>;
  loggedAt: number;
}

const trackedUnder = new WeakMap<ConnectionLimit, Tracked>();

/**
 * Counts a connection as one that may give way under `limit`; returns the function that forgets
 * it (call it when the connection has ended).
 */
export function track(
  limit: ConnectionLimit,
  connection: TrackedConnection,
  close: () => void,
): () => void {
  let tracked = trackedUnder.get(limit);
  if (tracked === undefined) {
    tracked = { connections: new Map(), loggedAt: -Infinity };
    trackedUnder.set(limit, tracked);
  }
  const connections = tracked.connections;
  connections.set(connection, close);
  return () => connections.delete(connection);
}

/**
 * Closes the connection idle longest under `limit` to make room for a new one: idle at least
 * {@linkcode EVICT_IDLE_MS}, or holding a request begun that long ago and still unfinished (Postfix
 * writes a request whole; one byte must not make a hoarded connection safe), and never one whose
 * reply is under way. False when there is none.
 *
 * @example
 * ```ts
 * if (limit.open >= limit.max && !makeRoom(limit)) refuse(conn);
 * ```
 */
export function makeRoom(limit: ConnectionLimit, now: number = performance.now()): boolean {
  const tracked = trackedUnder.get(limit);
  if (tracked === undefined) return false;
  let idlest: TrackedConnection | null = null;
  const before = now - EVICT_IDLE_MS - COARSE_CLOCK_LAG_MS;
  for (const connection of tracked.connections.keys()) {
    if (connection.busy || connection.closed) continue;
    const since = connection.partialSince !== 0 ? connection.partialSince : connection.lastActive;
    if (since > before) continue;
    if (idlest === null || connection.lastActive < idlest.lastActive) idlest = connection;
  }
  if (idlest === null) return false;
  if (now - tracked.loggedAt >= EVICT_LOG_MS) {
    tracked.loggedAt = now;
    log
      .warning`--max-connections (${limit.max}) reached: closing the connections idle longest for new ones`;
  }
  tracked.connections.get(idlest)?.();
  return true;
}
