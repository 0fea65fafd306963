/**
 * UDP queries from a small pool of long-lived sockets.
 *
 * A fresh UDP socket per query cost more than the rest of a cache miss together (binding alone
 * took about 20 µs of kernel time, closing another 10 µs), so a socket sends up to
 * {@linkcode QUERIES_PER_SOCKET} queries and is then replaced by one on a new random port. A
 * forger must still guess the port and a random, never-reused ID, and answers are only taken
 * from the server asked, about the question asked (c-ares, behind Node's resolver, keeps one
 * socket per server for good).
 *
 * @module
 */

import dgram from "node:dgram";
import type { DnsServer } from "./types.ts";
import { canonicalAddress } from "./servers.ts";
import { errorMessage } from "../common/errors.ts";
import { checkReply, encodeMxQuery, type SentQuery } from "./wire.ts";
import {
  DeadlineTimer,
  type Exchange,
  type ExchangeRequest,
  fail,
  isLocalError,
  randomId,
} from "./transport.ts";

/** Queries one UDP socket sends before a socket on a new random port takes over. */
export const QUERIES_PER_SOCKET = 64;

interface PendingQuery {
  server: DnsServer;
  query: SentQuery;
  /** The server as text, for reasons. */
  from: string;
  /** Why the last packet from the server that was not our answer was ignored. */
  ignored: string | null;
  /** performance.now() value at which the query times out, and how long that was from sending. */
  deadline: number;
  waitMs: number;
  resolve(exchange: Exchange): void;
}

/** One UDP socket of the pool and the queries it is waiting for. */
interface PooledSocket {
  socket: dgram.Socket;
  /** Resolves once bound to its random port. */
  bound: Promise<void>;
  /** Resolves once closed. */
  closed: Promise<void>;
  /** Queries waiting for an answer, by ID. */
  pending: Map<number, PendingQuery>;
  /** Every ID this socket has sent: never reused, and late answers to them are not forgeries. */
  used: Set<number>;
  /** No more queries: closes once nothing is pending. */
  retired: boolean;
  isClosed: boolean;
}

/**
 * Sends UDP queries from a pool of sockets (one in use per address family, each replaced after
 * {@linkcode QUERIES_PER_SOCKET} queries) and matches answers to them by server, ID and
 * question. `close` ends it once the pending queries have ended.
 *
 * @example
 * ```ts
 * const udp = new UdpExchanger();
 * const exchange = await udp.exchange({
 *   server: { host: "127.0.0.1", port: 53 },
 *   from: "127.0.0.1:53",
 *   name: "contoso.com",
 *   deadline: performance.now() + 2000,
 * });
 * if (exchange.kind === "fail") console.log(exchange.failure.reason);
 * await udp.close();
 * ```
 */
export class UdpExchanger {
  readonly #createSocket: (family: "udp4" | "udp6") => dgram.Socket;
  #current: { udp4: PooledSocket | null; udp6: PooledSocket | null } = { udp4: null, udp6: null };
  readonly #open = new Set<PooledSocket>();
  #closing = false;
  readonly #timer = new DeadlineTimer((now) => this.#expire(now));
  #pendingCount = 0;

  /**
   * @param createSocket Makes a socket (tests pass one whose bind or send fails); by default
   * node:dgram's.
   */
  constructor(createSocket: (family: "udp4" | "udp6") => dgram.Socket = dgram.createSocket) {
    this.#createSocket = createSocket;
  }

  /** Sends the query and waits for the matching answer, a failure, or the deadline. */
  async exchange({ server, from, name, deadline, edns, type }: ExchangeRequest): Promise<Exchange> {
    if (this.#closing) return fail("network", `${from}: resolver closed`);
    const waitMs = Math.max(0, deadline - performance.now());
    const entry = this.#socketFor(server.host.includes(":") ? "udp6" : "udp4");
    let id = randomId();
    while (entry.used.has(id)) id = randomId();
    entry.used.add(id);
    const query: SentQuery = { id, name, edns, type };
    return await new Promise<Exchange>((resolve) => {
      const pending: PendingQuery = {
        server,
        query,
        from,
        ignored: null,
        deadline: performance.now() + waitMs,
        waitMs,
        resolve,
      };
      entry.pending.set(id, pending);
      this.#pendingCount++;
      this.#timer.arm(pending.deadline);
      if (entry.used.size >= QUERIES_PER_SOCKET) this.#retire(entry);
      const send = () => {
        if (!entry.pending.has(id)) return;
        try {
          entry.socket.send(encodeMxQuery(query), server.port, server.host, (error) => {
            if (error) this.#finish(entry, pending, socketFailure(from, error));
          });
        } catch (error) {
          this.#finish(entry, pending, socketFailure(from, error));
        }
      };
      entry.bound.then(send);
    });
  }

  /** Takes no more queries; resolves when every socket has closed. */
  async close(): Promise<void> {
    this.#closing = true;
    for (const entry of this.#open) this.#retire(entry);
    await Promise.all([...this.#open].map((entry) => entry.closed));
  }

  #socketFor(family: "udp4" | "udp6"): PooledSocket {
    const current = this.#current[family];
    if (current !== null && !current.retired) return current;
    const socket = this.#createSocket(family);
    let closed!: () => void;
    const entry: PooledSocket = {
      socket,
      // Port 0: the kernel picks a random source port. A failed bind (out of descriptors, no
      // IPv6) reports an error and never calls back: settle then too, or the socket would never
      // close.
      bound: new Promise((resolve) => {
        socket.once("listening", resolve);
        socket.once("error", () => resolve());
        socket.bind(0);
      }),
      closed: new Promise((resolve) => closed = resolve),
      pending: new Map(),
      used: new Set(),
      retired: false,
      isClosed: false,
    };
    socket.on("close", () => closed());
    socket.on("message", (message: Uint8Array, sender: dgram.RemoteInfo) => {
      this.#receive(entry, message, sender);
    });
    socket.on("error", (error) => {
      // The socket is unusable: fail what waits on it, and use a new one from now on.
      for (const pending of [...entry.pending.values()]) {
        this.#finish(entry, pending, socketFailure(pending.from, error));
      }
      this.#retire(entry);
    });
    this.#current[family] = entry;
    this.#open.add(entry);
    return entry;
  }

  #receive(entry: PooledSocket, message: Uint8Array, sender: dgram.RemoteInfo): void {
    const id = message.length >= 2 ? (message[0] << 8) | message[1] : -1;
    const pending = entry.pending.get(id);
    if (pending === undefined) {
      // A late answer to a query that already ended is nobody's business. A packet from a
      // server with an ID we never sent is a forgery or a broken server: the reason given if the
      // queries to that server time out.
      if (entry.used.has(id)) return;
      const why = message.length < 12 ? "packet shorter than a DNS header" : "wrong ID";
      for (const other of entry.pending.values()) {
        if (sameServer(other.server, sender)) other.ignored = why;
      }
      return;
    }
    // Packets from elsewhere are spoofing attempts or strays: not even the server's fault.
    if (!sameServer(pending.server, sender)) return;
    const check = checkReply(message, pending.query);
    if (check.kind === "ignore") {
      pending.ignored = check.why;
    } else if (check.kind === "malformed") {
      this.#finish(
        entry,
        pending,
        fail("malformed", `malformed answer from ${pending.from}: ${check.why}`),
      );
    } else {
      this.#finish(entry, pending, check);
    }
  }

  #finish(entry: PooledSocket, pending: PendingQuery, exchange: Exchange): void {
    if (entry.pending.get(pending.query.id) !== pending) return;
    entry.pending.delete(pending.query.id);
    if (--this.#pendingCount === 0) {
      this.#timer.clear();
    }
    pending.resolve(exchange);
    if (entry.retired && entry.pending.size === 0) this.#closeSocket(entry);
  }

  /** Ends the queries past their deadline; returns the next deadline. */
  #expire(now: number): number {
    let next = Infinity;
    for (const entry of this.#open) {
      for (const pending of [...entry.pending.values()]) {
        if (pending.deadline > now) {
          next = Math.min(next, pending.deadline);
          continue;
        }
        const { from, ignored, waitMs } = pending;
        this.#finish(
          entry,
          pending,
          ignored === null
            ? fail("timeout", `no answer from ${from} within ${Math.round(waitMs)} ms`)
            : fail("malformed", `mismatched answer from ${from} (${ignored})`),
        );
      }
    }
    return next;
  }

  #retire(entry: PooledSocket): void {
    entry.retired = true;
    if (entry.pending.size === 0) this.#closeSocket(entry);
  }

  #closeSocket(entry: PooledSocket): void {
    if (entry.isClosed) return;
    entry.isClosed = true;
    // Close only once bound: closing a socket mid-bind leaves the bind callback dangling.
    entry.bound.then(() => {
      try {
        entry.socket.close();
      } catch {
        entry.socket.emit("close"); // Already closed after an error.
      }
    });
    entry.closed.then(() => this.#open.delete(entry));
  }
}

/** A socket error: our own host's (out of descriptors or buffers) or the network's. */
function socketFailure(from: string, error: unknown): Exchange {
  return fail(isLocalError(error) ? "local" : "network", `${from}: ${errorMessage(error)}`);
}

/**
 * Whether a packet came from the server asked. The kernel may report an IPv4 sender as
 * `127.0.0.1` or, on an IPv6 socket, `::ffff:127.0.0.1`: compared in one canonical form.
 */
function sameServer(server: DnsServer, sender: dgram.RemoteInfo): boolean {
  if (sender.port !== server.port) return false;
  return sender.address === server.host ||
    canonicalAddress(sender.address) === canonicalAddress(server.host);
}
