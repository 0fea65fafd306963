/**
 * Which DNS servers are answering, so that while DNS is down each new domain does not wait the
 * whole lookup budget (Postfix would wait with it).
 *
 * A lookup that times out says only that its name is slow: a lame delegation, or a spam run to
 * dead domains, keeps a working resolver silent for those names for many seconds. So a timeout
 * proves nothing by itself; it sends a liveness probe, a question any working server answers at
 * once: `. NS`, and the MX of a name the server answered lately (from its cache). A server is
 * down only when the probe gets no reply at all, and back up on its first reply, whatever the
 * rcode.
 *
 * @module
 */

import { formatHostPort } from "../common/address.ts";
import type { DnsServer, MxOutcome } from "./types.ts";
import { log } from "../common/log.ts";

/** How long a liveness probe waits for a reply, at most (and no longer than a whole lookup). */
export const PROBE_TIMEOUT_MS = 1000;
/** While a server is down, a probe goes at most this often (when a lookup would ask it). */
export const PROBE_INTERVAL_MS = 1000;

/**
 * What a liveness probe found: a reply (any rcode: the server is alive), silence (no reply in
 * time, or the server refused the connection), or nothing either way (our own host failed to
 * send it, or the resolver is closing).
 */
export type ProbeResult = "reply" | "silence" | "unknown";

/** One server's state, for health reports: ages in milliseconds of the health's clock. */
export interface DnsServerStatus {
  /** The server as ADDR:PORT, IPv6 as [ADDR]:PORT. */
  server: string;
  /** Marked down: it answered no liveness probe, and nothing since. */
  down: boolean;
  /** How long it has been down; null while up. */
  downForMs: number | null;
  /** How long since it last replied to anything (a lookup or a probe); null: never. */
  lastReplyAgoMs: number | null;
}

/** Options of {@linkcode ServerHealth}. */
export interface ServerHealthInit {
  /**
   * Sends one liveness probe to `server`: `. NS`, and the MX of `recentName` when there is one
   * (a name the server answered lately). Resolves at the first reply, or when the probe gave up.
   */
  probe(server: DnsServer, recentName: string | null): Promise<ProbeResult>;
  /** How long `probe` waits, for the log lines and the reason of a `400`. */
  probeTimeoutMs: number;
  /** Monotonic milliseconds; injected so tests control time. Default `performance.now`. */
  now?: () => number;
}

interface State {
  /** The server as ADDR:PORT, for log lines. */
  from: string;
  down: boolean;
  downSince: number;
  /** When the server last replied to anything (a lookup or a probe). */
  lastReply: number;
  /** The last name it answered with a usable answer: it has it cached. */
  recentName: string | null;
  /** The probe under way, resolving to whether the server is up after it. */
  probing: Promise<boolean> | null;
  /** While down: when the next probe may go. */
  nextProbe: number;
}

/**
 * Which servers are answering. `mayAsk` before asking a server, `record` how the attempt
 * ended. A timeout, when the server has not replied to anything since the attempt was sent,
 * starts a liveness probe (one at a time per server); only a probe without any reply marks the
 * server down. While down it is skipped, but for one lookup a second that waits for a new probe
 * and asks the server if it replied.
 *
 * @example
 * ```ts
 * import type { DnsServer, MxOutcome } from "./types.ts";
 *
 * declare function probe(server: DnsServer, recentName: string | null): Promise<ProbeResult>;
 * declare function ask(server: DnsServer, name: string): Promise<MxOutcome>;
 * const server: DnsServer = { host: "127.0.0.1", port: 53 };
 * const name = "example.com";
 *
 * const health = new ServerHealth({ probe, probeTimeoutMs: PROBE_TIMEOUT_MS });
 * const may = health.mayAsk(server);
 * if (may === true || (may !== false && await may)) {
 *   const sentAt = performance.now();
 *   health.record(server, { name, outcome: await ask(server, name), sentAt });
 * }
 * ```
 */
export class ServerHealth {
  readonly #init: ServerHealthInit;
  readonly #now: () => number;
  // By the resolver's own server objects, which live as long as it does.
  readonly #state = new Map<DnsServer, State>();
  #closed = false;

  constructor(init: ServerHealthInit) {
    this.#init = init;
    this.#now = init.now ?? (() => performance.now());
  }

  #of(server: DnsServer): State {
    let state = this.#state.get(server);
    if (state === undefined) {
      state = {
        from: formatHostPort(server),
        down: false,
        downSince: 0,
        lastReply: -Infinity,
        recentName: null,
        probing: null,
        nextProbe: 0,
      };
      this.#state.set(server, state);
    }
    return state;
  }

  /** Whether the server is marked down now. */
  isDown(server: DnsServer): boolean {
    return this.#state.get(server)?.down ?? false;
  }

  /**
   * Whether a lookup may ask this server: true while it is up, or, while a probe of it is under
   * way (a lookup timed out), that probe: a live server answers it at once, and a dead one is
   * then not asked again for the rest of the budget. While it is down, false, but once a second
   * a promise: a new probe, resolving to whether the server replied (and is up again). Other
   * lookups do not wait for that probe.
   */
  mayAsk(server: DnsServer): boolean | Promise<boolean> {
    const state = this.#state.get(server);
    if (state === undefined) return true;
    if (!state.down) return state.probing ?? true;
    if (this.#closed || state.probing !== null) return false;
    const now = this.#now();
    if (now < state.nextProbe) return false;
    state.nextProbe = now + PROBE_INTERVAL_MS;
    return this.#startProbe(server, state);
  }

  /**
   * Notes how an attempt for `name`, sent at `sentAt`, ended: any reply proves the server
   * alive; a timeout with no reply from the server since `sentAt` starts a probe.
   */
  record(server: DnsServer, attempt: { name: string; outcome: MxOutcome; sentAt: number }): void {
    const state = this.#of(server);
    const { outcome } = attempt;
    if (outcome.kind !== "tempfail") {
      state.recentName = attempt.name;
      this.#up(state);
      return;
    }
    switch (outcome.cause) {
      case "servfail":
      case "refused":
      case "rcode":
      case "malformed":
        this.#up(state);
        return;
      case "timeout":
        if (
          !state.down && state.probing === null && !this.#closed &&
          state.lastReply < attempt.sentAt
        ) {
          this.#startProbe(server, state);
        }
        return;
      case "network":
      case "local":
      case "overload":
      case "down":
        return;
      default: {
        const unknown: never = outcome.cause;
        throw new Error(`unexpected failure cause ${unknown}`);
      }
    }
  }

  /**
   * Probes every server at once (`. NS`), as at start, and resolves with each result in order:
   * a server without a reply is marked down, quietly (the caller says why it matters), and one
   * with a reply up. A probe already under way for a server is waited for instead.
   */
  probeAll(servers: readonly DnsServer[]): Promise<ProbeResult[]> {
    return Promise.all(servers.map(async (server): Promise<ProbeResult> => {
      if (this.#closed) return "unknown";
      const state = this.#of(server);
      if (state.probing !== null) return await state.probing ? "reply" : "silence";
      return await this.#probe(server, state, { quiet: true });
    }));
  }

  /**
   * Each server's state now.
   *
   * @example
   * ```ts
   * declare const health: ServerHealth;
   * health.status([{ host: "127.0.0.1", port: 53 }]);
   * // [{ server: "127.0.0.1:53", down: false, downForMs: null, lastReplyAgoMs: 812 }]
   * ```
   */
  status(servers: readonly DnsServer[]): DnsServerStatus[] {
    const now = this.#now();
    return servers.map((server) => {
      const state = this.#state.get(server);
      const down = state?.down ?? false;
      const lastReply = state?.lastReply ?? -Infinity;
      return {
        server: state?.from ?? formatHostPort(server),
        down,
        downForMs: down ? now - state!.downSince : null,
        lastReplyAgoMs: lastReply === -Infinity ? null : now - lastReply,
      };
    });
  }

  /** Starts no more probes (the resolver is closing). */
  close(): void {
    this.#closed = true;
  }

  /** Why a lookup was answered without asking: every server is down (the text of its `400`). */
  downReason(servers: readonly DnsServer[]): string {
    return `DNS not answering: ${servers.map(formatHostPort).join(", ")} ` +
      `answered no liveness probe (. NS) within ${this.#init.probeTimeoutMs} ms; ` +
      `probing once every ${PROBE_INTERVAL_MS / 1000} s`;
  }

  #startProbe(server: DnsServer, state: State): Promise<boolean> {
    return this.#probe(server, state, { quiet: false }).then(() => !state.down);
  }

  #probe(server: DnsServer, state: State, { quiet }: { quiet: boolean }): Promise<ProbeResult> {
    const sentAt = this.#now();
    const recentName = state.recentName;
    const probing = this.#init.probe(server, recentName).catch((): ProbeResult => "unknown")
      .then((result) => {
        state.probing = null;
        if (result === "reply") {
          this.#up(state);
        } else if (result === "silence" && state.lastReply < sentAt) {
          this.#down(state, { recentName, quiet });
        }
        return result;
      });
    state.probing = probing.then(() => !state.down);
    return probing;
  }

  #up(state: State): void {
    const now = this.#now();
    state.lastReply = now;
    if (!state.down) return;
    state.down = false;
    const seconds = ((now - state.downSince) / 1000).toFixed(1);
    log.info`DNS server ${state.from} answers again, after ${seconds} s down`;
  }

  #down(state: State, { recentName, quiet }: { recentName: string | null; quiet: boolean }): void {
    const now = this.#now();
    state.nextProbe = now + PROBE_INTERVAL_MS;
    if (state.down) return;
    state.down = true;
    state.downSince = now;
    if (quiet) return;
    const asked = recentName === null ? ". NS" : `. NS, MX ${recentName}`;
    log
      .warning`DNS server ${state.from} is down: no reply within ${this.#init.probeTimeoutMs} ms to a liveness probe (${asked}) sent after a lookup timed out; lookups skip it (400 at once when no other server is up) and it is probed once a second`;
  }
}
