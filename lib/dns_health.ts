/**
 * Which DNS servers are answering, so that while DNS is down each new domain does not wait the
 * whole lookup budget (Postfix would wait with it).
 *
 * @module
 */

import { formatHostPort } from "./dns_servers.ts";
import type { DnsServer, MxOutcome } from "./dns_types.ts";

/** Timeouts for this many different names in a row make a silent server count as down... */
const DEAD_AFTER_NAMES = 2;
/** ...when it has not answered any query at all for this long. */
const DEAD_AFTER_SILENCE_MS = 2000;
/** While a server is down, one lookup a second may still try it (a probe). */
const PROBE_INTERVAL_MS = 1000;

/**
 * Which servers are answering. A server counts as down only when its queries keep timing out
 * and it has answered nothing, for any name, for a while: a single domain whose own servers are
 * dead (the resolver stays silent for that name only) must not take the others down with it.
 */
export class ServerHealth {
  // By the resolver's own server objects, which live as long as it does.
  readonly #state = new Map<
    DnsServer,
    { timedOut: Set<string>; lastReply: number; nextProbe: number }
  >();

  #of(server: DnsServer) {
    let state = this.#state.get(server);
    if (state === undefined) {
      state = { timedOut: new Set(), lastReply: -Infinity, nextProbe: 0 };
      this.#state.set(server, state);
    }
    return state;
  }

  /** Whether a lookup may ask this server now (always, or as the once-a-second probe). */
  mayAsk(server: DnsServer, now: number): boolean {
    const state = this.#of(server);
    const down = state.timedOut.size >= DEAD_AFTER_NAMES &&
      now - state.lastReply >= DEAD_AFTER_SILENCE_MS;
    if (!down) return true;
    if (now < state.nextProbe) return false;
    state.nextProbe = now + PROBE_INTERVAL_MS;
    return true;
  }

  /**
   * Notes how an attempt for `name` with this server ended. Only timeouts for different names
   * count: the retries of one dead domain never take a server down by themselves.
   */
  record(server: DnsServer, attempt: { name: string; outcome: MxOutcome; now: number }): void {
    const state = this.#of(server);
    const { name, outcome, now } = attempt;
    if (outcome.kind === "tempfail" && outcome.cause === "timeout") {
      // Bounded: only the count up to the threshold matters.
      if (state.timedOut.size < DEAD_AFTER_NAMES) state.timedOut.add(name);
      // Just went (or stays) down: the next probe is a second away, not now.
      if (state.timedOut.size >= DEAD_AFTER_NAMES && state.nextProbe < now) {
        state.nextProbe = now + PROBE_INTERVAL_MS;
      }
    } else if (outcome.kind !== "tempfail" || outcome.cause !== "network") {
      // Any reply, whatever its rcode, proves the server alive.
      state.timedOut.clear();
      state.lastReply = now;
    }
  }
}

/** Why a lookup was answered without asking: every server is down (the text of its `400`). */
export function downReason(servers: readonly DnsServer[]): string {
  return `DNS not answering: ${servers.map(formatHostPort).join(", ")} timed out for ` +
    `different names and answered nothing for ${DEAD_AFTER_SILENCE_MS / 1000} s or more; ` +
    `probing once every ${PROBE_INTERVAL_MS / 1000} s`;
}
