/**
 * Sockets and nothing else: accepts connections, frames requests through a codec, asks the
 * router, writes replies in request order, and enforces the limits.
 *
 * A connection reads one chunk, starts every lookup in it at once (pipelined requests resolve
 * concurrently), then writes the replies in order, batched into as few writes as possible. It
 * reads nothing more until those replies are written: a client cannot make us buffer without
 * bound, whether it pipelines or stops reading.
 *
 * @module
 */

import { closeQuietly, errorMessage } from "../common/errors.ts";
import { FRAME_BAD, FRAME_NEED_MORE, newFrame, type ProtocolCodec, ReplyCache } from "./codec.ts";
import type { ConnectionLimit, LimitPlace } from "./connection_limit.ts";
import { log } from "../common/log.ts";
import { FAULT_LOG_INTERVAL_MS, heldBackText, LogThrottle } from "../common/log_throttle.ts";
import type { Decision, Router } from "../routing/router.ts";

/**
 * Read buffer of a connection at first: small, so thousands of idle connections cost little;
 * it grows (up to the codec's frame limit plus one read) only for long or pipelined requests.
 */
const INITIAL_BUFFER = 1024;
/** Pause after a failed accept (e.g. out of file descriptors) before trying again. */
const ACCEPT_RETRY_MS = 100;
/** A request must arrive whole within this long (Postfix's own limit for a send or receive). */
export const REQUEST_TIMEOUT_MS = 100_000;
/** How many reply bytes we gather before a write, when many requests arrive in one read. */
const WRITE_BATCH = 16384;

/** Options of {@linkcode TableServer}. */
export interface TableServerInit {
  listener: Deno.Listener;
  codec: ProtocolCodec;
  /** Read on every request, so a reload takes effect at once. */
  router: Router;
  /** Close connections idle this long (--timeout); 0 never. */
  idleTimeoutMs: number;
  /**
   * Close a connection whose replies have not all been written this long after its request was
   * read (a client that never reads); lookups themselves end within --dns-timeout.
   */
  stuckTimeoutMs: number;
  limit: ConnectionLimit;
}

interface ConnectionState {
  conn: Deno.Conn;
  lastActive: number;
  /** Between reading a chunk and writing its last reply. */
  busy: boolean;
  /** When the unfinished request now in the buffer began arriving; 0 when there is none. */
  partialSince: number;
  /** Its place in the limit's line: renewed when its replies are written (see ConnectionLimit). */
  place: LimitPlace | null;
  closed: boolean;
  done: Promise<void>;
}

/**
 * Serves one listener with one protocol until `stop`.
 *
 * @example
 * ```ts
 * import { ConnectionLimit } from "./connection_limit.ts";
 * import { tcpTableCodec } from "./tcp_table.ts";
 * import type { Router } from "../routing/router.ts";
 *
 * declare const router: Router;
 * const server = new TableServer({
 *   listener: Deno.listen({ hostname: "127.0.0.1", port: 10099 }),
 *   codec: tcpTableCodec,
 *   router,
 *   idleTimeoutMs: 60_000,
 *   stuckTimeoutMs: REQUEST_TIMEOUT_MS,
 *   limit: new ConnectionLimit(10_000),
 * });
 * const serving = server.serve();
 * ```
 */
export class TableServer {
  readonly #init: TableServerInit;
  /** This protocol's encoded replies, kept here rather than on the decisions. */
  readonly #replies: ReplyCache;
  readonly #connections = new Set<ConnectionState>();
  #stopping = false;
  #sweeper: ReturnType<typeof setInterval> | undefined;
  readonly #acceptErrorLog = new LogThrottle(FAULT_LOG_INTERVAL_MS);
  /**
   * A coarse clock for idle and stuck checks, advanced by the sweeper: reading the real clock
   * twice per request is an operation into the runtime each time.
   */
  #clock = performance.now();

  constructor(init: TableServerInit) {
    this.#init = init;
    this.#replies = new ReplyCache(init.codec);
  }

  /** Connections open on this listener now. */
  get connections(): number {
    return this.#connections.size;
  }

  /** The protocol served. */
  get protocol(): string {
    return this.#init.codec.name;
  }

  /** Accepts connections until the listener closes. */
  async serve(): Promise<void> {
    const idle = this.#init.idleTimeoutMs;
    // The sweep also advances the coarse clock: timeouts fire at most a quarter early.
    const every = idle > 0 ? Math.min(1000, Math.max(10, idle / 4)) : 1000;
    this.#sweeper = setInterval(() => this.#sweep(), every);
    try {
      while (!this.#stopping) {
        let conn: Deno.Conn;
        try {
          conn = await this.#init.listener.accept();
        } catch (error) {
          if (this.#stopping || error instanceof Deno.errors.BadResource) break;
          // Out of file descriptors, or a connection reset before accept: keep serving, and say
          // so once a minute, not at every retry.
          const heldBack = this.#acceptErrorLog.pass();
          if (heldBack !== null) {
            log.error`${this.#init.codec.name}: accept failed: ${
              errorMessage(error)
            }; retrying every ${ACCEPT_RETRY_MS} ms${heldBackText(heldBack)}`;
          }
          await new Promise((resolve) => setTimeout(resolve, ACCEPT_RETRY_MS));
          continue;
        }
        if (this.#stopping || !this.#init.limit.admit()) {
          closeQuietly(conn);
          continue;
        }
        this.#track(conn);
      }
    } finally {
      clearInterval(this.#sweeper);
    }
  }

  /**
   * Stops accepting, lets connections finish the requests already read (up to `graceMs`), then
   * closes every connection.
   */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    closeQuietly(this.#init.listener);
    for (const state of this.#connections) {
      if (!state.busy) closeState(state);
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<void>((resolve) => timer = setTimeout(resolve, graceMs));
    await Promise.race([Promise.all([...this.#connections].map((s) => s.done)), deadline]);
    clearTimeout(timer);
    for (const state of this.#connections) closeState(state);
  }

  #track(conn: Deno.Conn): void {
    const limit = this.#init.limit;
    const state: ConnectionState = {
      conn,
      lastActive: this.#clock,
      busy: false,
      partialSince: 0,
      place: null,
      closed: false,
      done: Promise.resolve(),
    };
    this.#connections.add(state);
    const place = limit.track(state, () => closeState(state));
    state.place = place;
    state.done = this.#handle(state).finally(() => {
      closeState(state);
      this.#connections.delete(state);
      place.forget();
    });
  }

  /** Closes connections that are idle, drip-feeding a request, or not reading their replies. */
  #sweep(): void {
    const { idleTimeoutMs, stuckTimeoutMs, codec } = this.#init;
    const requestMs = idleTimeoutMs > 0
      ? Math.min(idleTimeoutMs, REQUEST_TIMEOUT_MS)
      : REQUEST_TIMEOUT_MS;
    const now = this.#clock = performance.now();
    for (const state of this.#connections) {
      let why: string | null = null;
      if (state.busy) {
        if (now - state.lastActive >= stuckTimeoutMs) why = "not reading its replies";
      } else if (state.partialSince > 0 && now - state.partialSince >= requestMs) {
        why = `no complete request within ${requestMs} ms`;
      } else if (idleTimeoutMs > 0 && now - state.lastActive >= idleTimeoutMs) {
        why = `idle for ${idleTimeoutMs} ms`;
      }
      if (why !== null) {
        log.debug`closing ${codec.name} connection: ${why}`;
        closeState(state);
      }
    }
  }

  async #handle(state: ConnectionState): Promise<void> {
    const { codec, router } = this.#init;
    const conn = state.conn;
    if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
    const frame = newFrame();
    const replies: (Uint8Array | Promise<Uint8Array>)[] = [];
    const toBytes = (decision: Decision) => this.#replies.bytes(decision);
    let buffer = new Uint8Array(INITIAL_BUFFER);
    let start = 0;
    let end = 0;
    try {
      while (!state.closed && !this.#stopping) {
        if (end === buffer.length) {
          // Room for the next read: move the partial request to the front, or grow for it.
          if (start > 0) {
            buffer.copyWithin(0, start, end);
            end -= start;
            start = 0;
          } else if (buffer.length >= codec.maxFrame + 4096) {
            // The codec should have refused a frame this long; never spin on a full buffer.
            log.warning`${codec.name} request over ${codec.maxFrame} bytes not refused: closing`;
            return;
          } else {
            const grown = new Uint8Array(Math.min(buffer.length * 2, codec.maxFrame + 4096));
            grown.set(buffer);
            buffer = grown;
          }
        }
        const read = await conn.read(end === 0 ? buffer : buffer.subarray(end));
        if (read === null) return;
        end += read;
        state.lastActive = this.#clock;
        state.busy = true;
        let closeAfter = false;
        const startBeforeFraming = start;
        for (;;) {
          const status = codec.frame(buffer, start, end, frame);
          if (status === FRAME_NEED_MORE) break;
          start = frame.next;
          if (status === FRAME_BAD) {
            replies.push(frame.reply);
            if (frame.close) {
              closeAfter = true;
              break;
            }
            continue;
          }
          const decision = router.route(frame.key);
          replies.push(decision instanceof Promise ? decision.then(toBytes) : toBytes(decision));
        }
        if (start === end) {
          start = end = 0;
          state.partialSince = 0;
          // A long request grew the buffer: give it back, idle connections stay small.
          if (buffer.length > INITIAL_BUFFER) buffer = new Uint8Array(INITIAL_BUFFER);
        } else if (state.partialSince === 0 || start !== startBeforeFraming) {
          // The request left unfinished began in this read (a client that pipelines and makes
          // progress is never "drip-feeding").
          state.partialSince = state.lastActive;
        }
        // Bytes of an unfinished request alone do not count as a request answered.
        const answered = replies.length > 0;
        const only = replies.length === 1 ? replies[0] : null;
        if (only instanceof Uint8Array) {
          // The common case, one reply ready: no gathering, one write.
          await writeAll(conn, only);
        } else {
          await writeInOrder(conn, replies);
        }
        replies.length = 0;
        state.busy = false;
        state.lastActive = this.#clock;
        if (answered) state.place?.renew();
        if (closeAfter) return;
      }
    } catch (error) {
      if (!state.closed) log.debug`${codec.name} connection ended: ${error}`;
    }
  }
}

/** Writes replies in order, gathering ready ones into one write; waits on lookups as needed. */
async function writeInOrder(
  conn: Deno.Conn,
  replies: (Uint8Array | Promise<Uint8Array>)[],
): Promise<void> {
  let batch: Uint8Array[] = [];
  let size = 0;
  for (const reply of replies) {
    let bytes: Uint8Array;
    if (reply instanceof Uint8Array) {
      bytes = reply;
    } else {
      if (size > 0) {
        await writeAll(conn, concat(batch, size));
        batch = [];
        size = 0;
      }
      bytes = await reply;
    }
    batch.push(bytes);
    size += bytes.length;
    if (size >= WRITE_BATCH) {
      await writeAll(conn, concat(batch, size));
      batch = [];
      size = 0;
    }
  }
  if (size > 0) await writeAll(conn, concat(batch, size));
}

function concat(parts: Uint8Array[], size: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const joined = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.length;
  }
  return joined;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = await conn.write(bytes);
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

function closeState(state: ConnectionState): void {
  if (state.closed) return;
  state.closed = true;
  closeQuietly(state.conn);
}
