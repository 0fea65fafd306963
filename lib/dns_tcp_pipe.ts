/**
 * DNS queries pipelined on one long-lived TCP connection per server (RFC 7766 §6.2.1), for
 * `--dns-tcp`.
 *
 * In Deno a UDP query costs about 50 µs of CPU (node:dgram, the only stable UDP API); a query on
 * an open TCP connection a third of that, less when several go out in one write. The server must
 * answer pipelined queries concurrently (out of order, RFC 7766 §6.2.1.1), or one slow domain
 * holds up every later query on the connection until it times out.
 *
 * @module
 */

import type { DnsServer } from "./dns_types.ts";
import { closeQuietly, errorMessage } from "./errors.ts";
import { checkReply, encodeMxQuery, type SentQuery } from "./dns_wire.ts";
import {
  DeadlineTimer,
  type Exchange,
  type ExchangeRequest,
  fail,
  frameTcp,
  randomId,
} from "./dns_transport.ts";
import { joinBytes } from "./bytes.ts";
import { formatHostPort } from "./dns_servers.ts";

/** Queries one connection carries before a new one takes over: IDs are never reused on one. */
export const QUERIES_PER_CONNECTION = 4096;
/**
 * A connection without queries for this long is closed, before the server's own idle timeout
 * (Unbound and BIND close after 30 s) can cut it under a query just sent.
 */
export const IDLE_CLOSE_MS = 10_000;
/** Largest DNS message over TCP plus its length prefix. */
const MAX_FRAME = 2 + 65535;

interface PendingQuery {
  server: DnsServer;
  query: SentQuery;
  from: string;
  /** Already sent again once, after the server closed the connection under it. */
  resent: boolean;
  /** performance.now() when it was queued, and when it times out. */
  sentAt: number;
  deadline: number;
  waitMs: number;
  resolve(exchange: Exchange): void;
}

/** One connection to one server and the queries waiting on it. */
interface Pipe {
  server: DnsServer;
  /** Null until connected. */
  conn: Deno.TcpConn | null;
  /** Cancels a connect still under way (a server that drops SYNs would hold it for minutes). */
  connecting: AbortController;
  pending: Map<number, PendingQuery>;
  /** Every ID sent on this connection: late answers to timed-out queries are not errors. */
  used: Set<number>;
  /** Framed queries not yet written. */
  out: Uint8Array[];
  writing: boolean;
  /** Takes no new queries; closes once nothing is pending. */
  retired: boolean;
  closed: boolean;
  /** performance.now() when bytes last arrived. */
  lastRead: number;
  idleTimer: ReturnType<typeof setTimeout> | undefined;
  /** Resolves once closed. */
  done: Promise<void>;
  markDone(): void;
}

/** Options of {@linkcode TcpPipeliner}; the defaults are the constants above (tests shorten them). */
export interface TcpPipelinerOptions {
  queriesPerConnection?: number;
  idleCloseMs?: number;
}

/**
 * Sends queries on one pipelined TCP connection per server and matches answers to them by ID
 * and question. The same contract as the UDP exchanger: `exchange` never rejects, and ends by
 * its deadline. A connection that fails or closes fails its pending queries ("network"), and
 * the next query opens a new one.
 */
export class TcpPipeliner {
  readonly #pipes = new Map<string, Pipe>();
  readonly #open = new Set<Pipe>();
  #closing = false;
  readonly #timer = new DeadlineTimer((now) => this.#expire(now));
  #pendingCount = 0;
  readonly #queriesPerConnection: number;
  readonly #idleCloseMs: number;

  constructor(options: TcpPipelinerOptions = {}) {
    // At most every ID once per connection.
    this.#queriesPerConnection = Math.min(
      options.queriesPerConnection ?? QUERIES_PER_CONNECTION,
      65536,
    );
    this.#idleCloseMs = options.idleCloseMs ?? IDLE_CLOSE_MS;
  }

  /** Sends the query and waits for the matching answer, a failure, or the deadline. */
  exchange({ server, from, name, deadline, edns }: ExchangeRequest): Promise<Exchange> {
    if (this.#closing) return Promise.resolve(fail("network", `${from}: resolver closed`));
    return new Promise<Exchange>((resolve) => {
      const now = performance.now();
      const waitMs = Math.max(0, deadline - now);
      this.#send({
        server,
        query: { id: 0, name, edns },
        from,
        resent: false,
        sentAt: now,
        deadline: now + waitMs,
        waitMs,
        resolve,
      });
    });
  }

  /** Queues a query (its ID chosen here) on the server's current connection. */
  #send(pending: PendingQuery): void {
    const pipe = this.#pipeFor(pending.server);
    let id = randomId();
    while (pipe.used.has(id)) id = randomId();
    pipe.used.add(id);
    // The last query for this connection: it closes once its answers are in.
    if (pipe.used.size >= this.#queriesPerConnection) pipe.retired = true;
    pending.query = { ...pending.query, id };
    const frame = frameTcp(encodeMxQuery(pending.query));
    clearTimeout(pipe.idleTimer);
    pipe.idleTimer = undefined;
    pipe.pending.set(id, pending);
    this.#pendingCount++;
    this.#timer.arm(pending.deadline);
    pipe.out.push(frame);
    // Queries asked in the same turn of the event loop go out in one write.
    if (pipe.conn !== null && !pipe.writing) this.#write(pipe);
  }

  /** Takes no more queries; resolves when every connection has closed. */
  async close(): Promise<void> {
    this.#closing = true;
    for (const pipe of this.#open) this.#retire(pipe);
    await Promise.all([...this.#open].map((pipe) => pipe.done));
  }

  #pipeFor(server: DnsServer): Pipe {
    const key = formatHostPort(server);
    const current = this.#pipes.get(key);
    if (current !== undefined && !current.retired) return current;
    let markDone!: () => void;
    const pipe: Pipe = {
      server,
      conn: null,
      connecting: new AbortController(),
      pending: new Map(),
      used: new Set(),
      out: [],
      writing: false,
      retired: false,
      closed: false,
      lastRead: -Infinity,
      idleTimer: undefined,
      done: new Promise((resolve) => markDone = resolve),
      markDone: () => markDone(),
    };
    this.#pipes.set(key, pipe);
    this.#open.add(pipe);
    this.#connect(pipe);
    return pipe;
  }

  async #connect(pipe: Pipe): Promise<void> {
    try {
      const conn = await Deno.connect({
        hostname: pipe.server.host,
        port: pipe.server.port,
        signal: pipe.connecting.signal,
      });
      if (pipe.closed) {
        closeQuietly(conn);
        return;
      }
      conn.setNoDelay(true);
      pipe.conn = conn;
      this.#read(pipe, conn);
      if (pipe.out.length > 0) this.#write(pipe);
    } catch (error) {
      this.#end(pipe, `connect: ${errorMessage(error)}`, false);
    }
  }

  /** Writes the queued frames, joined, until none are left. */
  async #write(pipe: Pipe): Promise<void> {
    const conn = pipe.conn;
    if (conn === null) return;
    pipe.writing = true;
    // Let every query of this turn join the first write.
    await Promise.resolve();
    try {
      while (pipe.out.length > 0 && !pipe.closed) {
        const bytes = joinBytes(pipe.out);
        pipe.out = [];
        for (let offset = 0; offset < bytes.length;) {
          offset += await conn.write(offset === 0 ? bytes : bytes.subarray(offset));
        }
      }
    } catch (error) {
      this.#end(pipe, `write: ${errorMessage(error)}`, true);
    } finally {
      pipe.writing = false;
    }
  }

  /** Reads length-prefixed answers until the connection ends. */
  async #read(pipe: Pipe, conn: Deno.TcpConn): Promise<void> {
    let buffer = new Uint8Array(4096);
    let start = 0;
    let end = 0;
    let why = "connection closed by the server";
    try {
      while (!pipe.closed) {
        if (end === buffer.length) {
          if (start > 0) {
            buffer.copyWithin(0, start, end);
            end -= start;
            start = 0;
          } else {
            const grown = new Uint8Array(Math.min(buffer.length * 2, MAX_FRAME));
            grown.set(buffer);
            buffer = grown;
          }
        }
        const count = await conn.read(buffer.subarray(end));
        if (count === null) break;
        end += count;
        pipe.lastRead = performance.now();
        while (end - start >= 2) {
          const length = (buffer[start] << 8) | buffer[start + 1];
          if (end - start - 2 < length) break;
          this.#receive(pipe, buffer.slice(start + 2, start + 2 + length));
          start += 2 + length;
        }
        if (start === end) start = end = 0;
      }
    } catch (error) {
      why = `read: ${errorMessage(error)}`;
    }
    this.#end(pipe, why, true);
  }

  #receive(pipe: Pipe, message: Uint8Array): void {
    const id = message.length >= 2 ? (message[0] << 8) | message[1] : -1;
    const pending = pipe.pending.get(id);
    // A late answer to a query that timed out, or an ID never sent: nobody waits for it (and
    // on a TCP connection it cannot be a forgery).
    if (pending === undefined) return;
    const check = checkReply(message, pending.query);
    if (check.kind === "reply") {
      this.#finish(pipe, pending, check);
    } else {
      // Our ID with another question, or bytes that are no DNS answer: the server is broken.
      this.#finish(
        pipe,
        pending,
        fail("malformed", `malformed answer from ${pending.from} over TCP: ${check.why}`),
      );
    }
  }

  #finish(pipe: Pipe, pending: PendingQuery, exchange: Exchange): void {
    if (pipe.pending.get(pending.query.id) !== pending) return;
    pipe.pending.delete(pending.query.id);
    if (--this.#pendingCount === 0) {
      this.#timer.clear();
    }
    pending.resolve(exchange);
    if (pipe.pending.size > 0) return;
    if (pipe.retired) {
      this.#end(pipe, "retired", false);
    } else if (!pipe.closed) {
      pipe.idleTimer = setTimeout(() => this.#retire(pipe), this.#idleCloseMs);
      Deno.unrefTimer(pipe.idleTimer);
    }
  }

  /**
   * Closes the connection. What still waits on it fails, or, when the connection was lost (not
   * refused) and the query was not sent twice yet, goes out again on a new one: a server may
   * close a connection with queries under way (RFC 7766 §6.2.4), e.g. at its idle timeout.
   */
  #end(pipe: Pipe, why: string, lost: boolean): void {
    if (pipe.closed) return;
    pipe.closed = true;
    pipe.retired = true;
    clearTimeout(pipe.idleTimer);
    pipe.connecting.abort();
    closeQuietly(pipe.conn ?? undefined);
    const from = formatHostPort(pipe.server);
    if (this.#pipes.get(from) === pipe) this.#pipes.delete(from);
    const now = performance.now();
    for (const pending of [...pipe.pending.values()]) {
      if (lost && !pending.resent && !this.#closing && pending.deadline > now) {
        pipe.pending.delete(pending.query.id);
        this.#pendingCount--;
        this.#send({ ...pending, resent: true, sentAt: now });
      } else {
        this.#finish(pipe, pending, fail("network", `${from} over TCP: ${why}`));
      }
    }
    pipe.out = [];
    this.#open.delete(pipe);
    pipe.markDone();
  }

  #retire(pipe: Pipe): void {
    pipe.retired = true;
    if (pipe.pending.size === 0) this.#end(pipe, "retired", false);
  }

  /** Ends the queries past their deadline; returns the next deadline. */
  #expire(now: number): number {
    let next = Infinity;
    for (const pipe of [...this.#open]) {
      for (const pending of [...pipe.pending.values()]) {
        if (pending.deadline > now) {
          next = Math.min(next, pending.deadline);
          continue;
        }
        // Nothing arrived since this query went out: the connection may be stuck (a server
        // that answers in order, a dead peer). New queries take a new one.
        if (pipe.lastRead <= pending.sentAt) pipe.retired = true;
        this.#finish(
          pipe,
          pending,
          fail(
            "timeout",
            `no answer from ${pending.from} over TCP within ${Math.round(pending.waitMs)} ms`,
          ),
        );
      }
    }
    return next;
  }
}
