/**
 * DNS queries over a pool of long-lived TCP connections to each server: every query with
 * `--dns-tcp`, else the answers too long for UDP. Each connection carries one query at a time and
 * is kept open for the next (RFC 7766 §6.2.1).
 *
 * In Deno a UDP query costs about 50 µs of CPU (node:dgram, the only stable UDP API); a query on
 * an open TCP connection about half of that. One query per connection, not pipelined: a server
 * that answers a connection's queries one after the other (dnsmasq) cannot hold one lookup up
 * behind another, and a server without TCP_NODELAY cannot hold the second answer of a connection
 * back until our delayed ACK of the first (40 ms on Linux), which pipelining ran into.
 *
 * @module
 */

import type { DnsServer } from "./types.ts";
import { closeQuietly, errorMessage } from "../common/errors.ts";
import { checkReply, encodeMxQuery, type QueryType, type SentQuery } from "./wire.ts";
import {
  DeadlineTimer,
  type Exchange,
  type ExchangeRequest,
  fail,
  isLocalError,
  randomId,
} from "./transport.ts";
import { formatHostPort } from "../common/address.ts";

/** Connections to one server at most; more queries wait for one to be free. */
export const MAX_CONNECTIONS_PER_SERVER = 16;
/**
 * A connection without a query for this long is closed, before the server's own idle timeout
 * (30 s in Unbound and BIND) can cut it under a query just sent.
 */
export const IDLE_CLOSE_MS = 10_000;
/** Largest DNS message over TCP plus its length prefix. */
const MAX_FRAME = 2 + 65535;

/** A query from `exchange` until it ends. */
interface Waiting {
  server: DnsServer;
  from: string;
  name: string;
  edns: boolean | undefined;
  type: QueryType | undefined;
  /** A liveness probe: takes a connection of its own rather than wait for one. */
  urgent: boolean;
  deadline: number;
  waitMs: number;
  /** Already sent again once, after the server closed the connection under it. */
  resent: boolean;
  resolve(exchange: Exchange): void;
}

/** One connection and the query on it, if any. */
interface Connection {
  pool: ServerPool;
  /** Null until connected. */
  conn: Deno.TcpConn | null;
  /** Cancels a connect still under way (a server that drops SYNs would hold it for minutes). */
  connecting: AbortController;
  /** The query on this connection now, with the ID it was sent with. */
  current: { waiting: Waiting; query: SentQuery } | null;
  idleTimer: ReturnType<typeof setTimeout> | undefined;
  closed: boolean;
}

/** The connections to one server and the queries waiting for one of them. */
interface ServerPool {
  server: DnsServer;
  connections: Set<Connection>;
  /** Connected and without a query, the most recently used last. */
  idle: Connection[];
  /** Queries waiting for a free connection, in arrival order. */
  queue: Waiting[];
}

/** Options of {@linkcode TcpPool}; the defaults are the constants above (tests shorten them). */
export interface TcpPoolOptions {
  maxConnectionsPerServer?: number;
  idleCloseMs?: number;
  /** Opens a connection; Deno.connect by default (tests pass one that fails). */
  connect?: (options: Deno.ConnectOptions) => Promise<Deno.TcpConn>;
}

/**
 * Sends each query on a free TCP connection to its server (opening one while fewer than the
 * maximum are open) and waits for the answer with the same ID and question. The same contract
 * as the UDP exchanger: `exchange` never rejects, and ends by its deadline. A connection whose
 * query times out is closed (the server may be stuck, and a late answer must not meet the next
 * query); one the server closes under a query sends that query once more on a new connection.
 *
 * @example
 * ```ts
 * const pool = new TcpPool();
 * const exchange = await pool.exchange({
 *   server: { host: "127.0.0.1", port: 53 },
 *   from: "127.0.0.1:53",
 *   name: "contoso.com",
 *   deadline: performance.now() + 2000,
 * });
 * if (exchange.kind === "reply") console.log(exchange.reply.rcode); // 0
 * await pool.close();
 * ```
 */
export class TcpPool {
  readonly #pools = new Map<string, ServerPool>();
  readonly #timer = new DeadlineTimer((now) => this.#expire(now));
  #pendingCount = 0;
  #closing: Promise<void> | null = null;
  #closed: (() => void) | null = null;
  readonly #maxConnections: number;
  readonly #idleCloseMs: number;
  readonly #connect: (options: Deno.ConnectOptions) => Promise<Deno.TcpConn>;

  constructor(options: TcpPoolOptions = {}) {
    this.#connect = options.connect ?? Deno.connect;
    this.#maxConnections = Math.max(
      1,
      options.maxConnectionsPerServer ?? MAX_CONNECTIONS_PER_SERVER,
    );
    this.#idleCloseMs = options.idleCloseMs ?? IDLE_CLOSE_MS;
  }

  /** Sends the query and waits for the matching answer, a failure, or the deadline. */
  exchange(request: ExchangeRequest): Promise<Exchange> {
    const { server, from, name, deadline, edns, type } = request;
    if (this.#closing !== null) {
      return Promise.resolve(fail("network", `${from}: resolver closed`));
    }
    return new Promise<Exchange>((resolve) => {
      const now = performance.now();
      const waitMs = Math.max(0, deadline - now);
      const waiting = {
        server,
        from,
        name,
        edns,
        type,
        urgent: request.urgent === true,
        deadline: now + waitMs,
        waitMs,
        resent: false,
        resolve,
      };
      this.#pendingCount++;
      this.#timer.arm(waiting.deadline);
      this.#dispatch(waiting);
    });
  }

  /** Takes no more queries; resolves once the queries under way have ended and all is closed. */
  close(): Promise<void> {
    return this.#closing ??= (async () => {
      for (const pool of this.#pools.values()) {
        for (const connection of [...pool.idle]) this.#close(connection);
      }
      if (this.#pendingCount > 0) await new Promise<void>((resolve) => this.#closed = resolve);
    })();
  }

  /** Puts a query on an idle connection, a new one, or the queue. */
  #dispatch(waiting: Waiting): void {
    const pool = this.#poolFor(waiting.server);
    const idle = pool.idle.pop();
    if (idle !== undefined) {
      this.#send(idle, waiting);
    } else if (pool.connections.size < this.#maxConnections || waiting.urgent) {
      this.#open(pool, waiting);
    } else {
      pool.queue.push(waiting);
    }
  }

  #poolFor(server: DnsServer): ServerPool {
    const key = formatHostPort(server);
    let pool = this.#pools.get(key);
    if (pool === undefined) {
      pool = { server, connections: new Set(), idle: [], queue: [] };
      this.#pools.set(key, pool);
    }
    return pool;
  }

  /** Opens a connection for `waiting` (sent once connected). */
  async #open(pool: ServerPool, waiting: Waiting): Promise<void> {
    const connection: Connection = {
      pool,
      conn: null,
      connecting: new AbortController(),
      current: null,
      idleTimer: undefined,
      closed: false,
    };
    pool.connections.add(connection);
    // Held by the connection while it connects: a timeout ends it there too.
    connection.current = {
      waiting,
      query: { id: 0, name: waiting.name, edns: waiting.edns, type: waiting.type },
    };
    try {
      const conn = await this.#connect({
        hostname: pool.server.host,
        port: pool.server.port,
        signal: connection.connecting.signal,
      });
      if (connection.closed) {
        closeQuietly(conn);
        return;
      }
      connection.conn = conn;
      conn.setNoDelay(true);
      this.#read(connection, conn);
      connection.current = null;
      this.#send(connection, waiting);
    } catch (error) {
      // Refused or unreachable: no point sending it again.
      this.#close(connection, {
        why: `connect: ${errorMessage(error)}`,
        resend: false,
        local: isLocalError(error),
      });
    }
  }

  /** Sends `waiting` on a connected, free connection. */
  async #send(connection: Connection, waiting: Waiting): Promise<void> {
    clearTimeout(connection.idleTimer);
    connection.idleTimer = undefined;
    const query: SentQuery = {
      id: randomId(),
      name: waiting.name,
      edns: waiting.edns,
      type: waiting.type,
    };
    connection.current = { waiting, query };
    const conn = connection.conn!;
    const frame = frameTcp(encodeMxQuery(query));
    try {
      for (let offset = 0; offset < frame.length;) {
        offset += await conn.write(offset === 0 ? frame : frame.subarray(offset));
      }
    } catch (error) {
      this.#close(connection, { why: `write: ${errorMessage(error)}`, resend: true });
    }
  }

  /** Reads length-prefixed answers until the connection ends. */
  async #read(connection: Connection, conn: Deno.TcpConn): Promise<void> {
    let buffer = new Uint8Array(1024);
    let end = 0;
    let why = "connection closed by the server";
    try {
      while (!connection.closed) {
        if (end === buffer.length) {
          const grown = new Uint8Array(Math.min(buffer.length * 2, MAX_FRAME));
          grown.set(buffer);
          buffer = grown;
        }
        const count = await conn.read(buffer.subarray(end));
        if (count === null) break;
        end += count;
        let start = 0;
        while (end - start >= 2) {
          const length = (buffer[start] << 8) | buffer[start + 1];
          if (end - start - 2 < length) break;
          // A copy: the decoded answer is read after this buffer has moved on.
          this.#receive(connection, buffer.slice(start + 2, start + 2 + length));
          start += 2 + length;
        }
        if (start > 0) {
          buffer.copyWithin(0, start, end);
          end -= start;
        }
      }
    } catch (error) {
      why = `read: ${errorMessage(error)}`;
    }
    this.#close(connection, { why, resend: true });
  }

  #receive(connection: Connection, message: Uint8Array): void {
    const current = connection.current;
    const id = message.length >= 2 ? (message[0] << 8) | message[1] : -1;
    // Nothing asked, or another ID: a broken server (a connection whose query timed out is
    // closed, so no late answer arrives here). The query waits on, and times out if need be.
    if (current === null || id !== current.query.id) return;
    const check = checkReply(message, current.query);
    connection.current = null;
    if (check.kind === "reply") {
      this.#finish(current.waiting, check);
      this.#release(connection);
    } else {
      // Our ID with another question, or bytes that are no DNS answer: not this connection again.
      this.#finish(
        current.waiting,
        fail("malformed", `malformed answer from ${current.waiting.from} over TCP: ${check.why}`),
      );
      this.#close(connection, { why: "malformed answer", resend: false });
    }
  }

  /** A connection whose query ended: the next queued query, or idle until one comes. */
  #release(connection: Connection): void {
    const pool = connection.pool;
    const next = this.#nextQueued(pool);
    if (next !== undefined) {
      this.#send(connection, next);
    } else if (this.#closing !== null || pool.connections.size > this.#maxConnections) {
      // Closing, or the extra connection a liveness probe took.
      this.#close(connection);
    } else {
      pool.idle.push(connection);
      connection.idleTimer = setTimeout(() => this.#close(connection), this.#idleCloseMs);
      Deno.unrefTimer(connection.idleTimer);
    }
  }

  /**
   * Closes a connection. Its query fails, or, when the connection was lost under it (not
   * refused) and it was not sent twice yet, goes out again: a server may close a connection with
   * a query under way (RFC 7766 §6.2.3), e.g. at its idle timeout.
   */
  #close(connection: Connection, ending?: { why: string; resend: boolean; local?: boolean }): void {
    if (connection.closed) return;
    connection.closed = true;
    clearTimeout(connection.idleTimer);
    connection.connecting.abort();
    closeQuietly(connection.conn ?? undefined);
    const pool = connection.pool;
    pool.connections.delete(connection);
    const index = pool.idle.indexOf(connection);
    if (index >= 0) pool.idle.splice(index, 1);
    const waiting = connection.current?.waiting;
    connection.current = null;
    if (waiting !== undefined) {
      const why = ending?.why ?? "closed";
      if (ending?.resend && !waiting.resent && waiting.deadline > performance.now()) {
        // On a new connection: the idle ones may have been cut the same way (a server restart).
        waiting.resent = true;
        this.#open(pool, waiting);
      } else {
        const cause = ending?.local ? "local" : "network";
        this.#finish(waiting, fail(cause, `${waiting.from} over TCP: ${why}`));
      }
    }
    // A query queued behind the closed connection takes a new one.
    const next = pool.connections.size < this.#maxConnections ? this.#nextQueued(pool) : undefined;
    if (next !== undefined) this.#open(pool, next);
  }

  /** The first queued query still within its deadline; those past it end as timed out. */
  #nextQueued(pool: ServerPool): Waiting | undefined {
    const now = performance.now();
    for (let waiting = pool.queue.shift(); waiting !== undefined; waiting = pool.queue.shift()) {
      if (waiting.deadline > now) return waiting;
      this.#finish(waiting, this.#timedOut(waiting));
    }
    return undefined;
  }

  #timedOut(waiting: Waiting): Exchange {
    return fail(
      "timeout",
      `no answer from ${waiting.from} over TCP within ${Math.round(waiting.waitMs)} ms`,
    );
  }

  #finish(waiting: Waiting, exchange: Exchange): void {
    waiting.resolve(exchange);
    if (--this.#pendingCount > 0) return;
    this.#timer.clear();
    if (this.#closing !== null) {
      for (const pool of this.#pools.values()) {
        for (const connection of [...pool.connections]) this.#close(connection);
      }
      this.#closed?.();
    }
  }

  /** Ends the queries past their deadline; returns the next deadline. */
  #expire(now: number): number {
    let next = Infinity;
    for (const pool of this.#pools.values()) {
      for (const waiting of [...pool.queue]) {
        if (waiting.deadline > now) {
          next = Math.min(next, waiting.deadline);
          continue;
        }
        pool.queue.splice(pool.queue.indexOf(waiting), 1);
        this.#finish(waiting, this.#timedOut(waiting));
      }
      for (const connection of [...pool.connections]) {
        const waiting = connection.current?.waiting;
        if (waiting === undefined) continue;
        if (waiting.deadline > now) {
          next = Math.min(next, waiting.deadline);
          continue;
        }
        // The server may be stuck, and a late answer must not meet the next query: close it.
        connection.current = null;
        this.#finish(waiting, this.#timedOut(waiting));
        this.#close(connection);
      }
    }
    return next;
  }
}

/** A DNS message with the 2-byte length prefix it carries over TCP (RFC 7766 §8). */
function frameTcp(message: Uint8Array): Uint8Array {
  const frame = new Uint8Array(message.length + 2);
  frame[0] = message.length >> 8;
  frame[1] = message.length & 0xff;
  frame.set(message, 2);
  return frame;
}
