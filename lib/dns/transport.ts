/**
 * What the DNS transports share: the exchange types, failures, random IDs and the deadline
 * timer. UDP is in `dns_udp.ts`, TCP in `dns_tcp_pool.ts`.
 *
 * @module
 */

import type { DnsReply, QueryType } from "./wire.ts";
import type { DnsServer, TempFailAnswer } from "./types.ts";

/** How one exchange with a server ended before interpretation. */
export type Exchange =
  | { kind: "reply"; reply: DnsReply }
  | { kind: "fail"; failure: TempFailAnswer & { cause: ExchangeFailure } };

/**
 * The ways an exchange fails before there is a reply to interpret. `local`: we could not open a
 * socket (out of file descriptors or buffers), which says nothing about the server or the name.
 */
export type ExchangeFailure = "timeout" | "malformed" | "network" | "local";

/** What one exchange needs. */
export interface ExchangeRequest {
  server: DnsServer;
  /** The server as ADDR:PORT, for reasons (formatted once per attempt). */
  from: string;
  /** The name to ask the MX records of, as returned by `toQueryName`. */
  name: string;
  /** performance.now() value by which the exchange must have ended. */
  deadline: number;
  /** False to ask without EDNS0 (the server answered FORMERR to it); true unless set. */
  edns?: boolean;
  /** The question's type: MX unless set (NS: the liveness probe `. NS`). */
  type?: QueryType;
  /**
   * A liveness probe: never waits behind other queries for a connection (over TCP it takes one
   * of its own when all are busy), since its timing is the verdict.
   */
  urgent?: boolean;
}

/** errno codes that mean this host ran out of something, not that the server failed. */
const LOCAL_ERROR_CODES = new Set(["EMFILE", "ENFILE", "ENOBUFS", "ENOMEM", "EADDRNOTAVAIL"]);

/**
 * Whether an error opening or using a socket is our own host's (out of file descriptors,
 * buffers, memory or local ports): not the DNS server's fault, nor the domain's.
 *
 * @example
 * ```ts
 * isLocalError(Object.assign(new Error("bind EMFILE 0.0.0.0"), { code: "EMFILE" })); // true
 * ```
 */
export function isLocalError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string") return LOCAL_ERROR_CODES.has(code);
  return /\b(EMFILE|ENFILE|ENOBUFS)\b|Too many open files/.test(String(error));
}

/**
 * One timer for the earliest deadline of all the queries an exchanger waits on, not one per
 * query (a timer cost 8 µs to set and clear, 5 % of a cache miss). When it fires, `sweep` ends
 * the queries that are due and returns the next deadline (Infinity: none).
 *
 * @example
 * ```ts
 * const deadlines = new Set([performance.now() + 2000]);
 * const timer = new DeadlineTimer((now) => {
 *   for (const deadline of deadlines) if (deadline <= now) deadlines.delete(deadline);
 *   return Math.min(Infinity, ...deadlines);
 * });
 * timer.arm(Math.min(...deadlines));
 * timer.clear(); // nothing waits any more
 * ```
 */
export class DeadlineTimer {
  readonly #sweep: (now: number) => number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #at = Infinity;

  constructor(sweep: (now: number) => number) {
    this.#sweep = sweep;
  }

  /** Makes sure the timer fires by `deadline` (a performance.now() value). */
  arm(deadline: number): void {
    if (deadline >= this.#at) return;
    clearTimeout(this.#timer);
    this.#at = deadline;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#at = Infinity;
      const next = this.#sweep(performance.now());
      if (next !== Infinity) this.arm(next);
    }, Math.max(0, deadline - performance.now()));
  }

  /** Stops the timer: nothing is waiting any more. */
  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#at = Infinity;
  }
}

/**
 * An exchange that failed before there was a reply.
 *
 * @example
 * ```ts
 * fail("timeout", "no reply from 127.0.0.1:53 within 2000 ms");
 * // { kind: "fail", failure: { kind: "tempfail", reason: "no reply ...", cause: "timeout" } }
 * ```
 */
export function fail(cause: ExchangeFailure, reason: string): Exchange {
  return { kind: "fail", failure: { kind: "tempfail", reason, cause } };
}

/** Random 16-bit values, drawn from the system's CSPRNG in batches. */
const randomIds = new Uint16Array(1024);
let randomIdsLeft = 0;

/**
 * A random 16-bit message ID.
 *
 * @example
 * ```ts
 * randomId(); // 0 to 65535, e.g. 48213
 * ```
 */
export function randomId(): number {
  if (randomIdsLeft === 0) {
    crypto.getRandomValues(randomIds);
    randomIdsLeft = randomIds.length;
  }
  return randomIds[--randomIdsLeft];
}
