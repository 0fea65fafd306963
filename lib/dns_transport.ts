/**
 * What the DNS transports share: the exchange types, failures, random IDs and the deadline
 * timer. UDP is in `dns_udp.ts`, TCP in `dns_tcp_pool.ts`.
 *
 * @module
 */

import type { DnsReply } from "./dns_wire.ts";
import type { DnsServer, TempFailAnswer } from "./dns_types.ts";

/** How one exchange with a server ended before interpretation. */
export type Exchange =
  | { kind: "reply"; reply: DnsReply }
  | { kind: "fail"; failure: TempFailAnswer & { cause: ExchangeFailure } };

/** The ways an exchange fails before there is a reply to interpret. */
export type ExchangeFailure = "timeout" | "malformed" | "network";

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
}

/**
 * One timer for the earliest deadline of all the queries an exchanger waits on, not one per
 * query (a timer cost 8 µs to set and clear, 5 % of a cache miss). When it fires, `sweep` ends
 * the queries that are due and returns the next deadline (Infinity: none).
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

/** An exchange that failed before there was a reply. */
export function fail(cause: ExchangeFailure, reason: string): Exchange {
  return { kind: "fail", failure: { kind: "tempfail", reason, cause } };
}

/** Random 16-bit values, drawn from the system's CSPRNG in batches. */
const randomIds = new Uint16Array(1024);
let randomIdsLeft = 0;

/** A random 16-bit message ID. */
export function randomId(): number {
  if (randomIdsLeft === 0) {
    crypto.getRandomValues(randomIds);
    randomIdsLeft = randomIds.length;
  }
  return randomIds[--randomIdsLeft];
}
