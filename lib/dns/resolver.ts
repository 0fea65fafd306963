/**
 * Our own stub resolver for MX lookups.
 *
 * Deno.resolveDns and node:dns report SERVFAIL and REFUSED as "not found", expose no TTLs and wait
 * 15 s on a dead server, so we speak DNS ourselves: UDP from random source ports with a random ID
 * per query, TCP when the answer is truncated (RFC 7766), and one overall time budget per lookup.
 *
 * @module
 */

import type { DnsServer, MxOutcome, MxResolver, TempFailAnswer } from "./types.ts";
import {
  type DnsServerStatus,
  PROBE_TIMEOUT_MS,
  type ProbeResult,
  ServerHealth,
} from "./health.ts";
import { formatHostPort } from "../common/address.ts";
import { errorMessage } from "../common/errors.ts";
import type { InflightLimit } from "./inflight_limit.ts";
import type { Exchange, ExchangeRequest } from "./transport.ts";
import { UdpExchanger } from "./udp.ts";
import { TcpPool, type TcpPoolOptions } from "./tcp_pool.ts";
import { interpretReply } from "./answer.ts";
import { log } from "../common/log.ts";
import { FAULT_LOG_INTERVAL_MS, heldBackText, LogThrottle } from "../common/log_throttle.ts";
import { rcodeLabel, refusesEdns, toQueryName } from "./wire.ts";

/** Every way one query can end, as fixed labels for metrics: the rcodes, then the failures. */
export const DNS_QUERY_OUTCOMES = [
  "noerror",
  "nxdomain",
  "servfail",
  "refused",
  "other",
  "timeout",
  "malformed",
  "network",
  "local",
] as const;

/** How one query ended. */
export type DnsQueryOutcome = typeof DNS_QUERY_OUTCOMES[number];

/** One query sent to one server (a lookup may send several), reported for metrics. */
export interface DnsQueryEvent {
  /** The server as ADDR:PORT, IPv6 as [ADDR]:PORT. */
  server: string;
  /** The transport the query used. */
  transport: "udp" | "tcp";
  /** How the query ended. */
  outcome: DnsQueryOutcome;
  /** Time from sending to the outcome, in milliseconds. */
  durationMs: number;
}

/** Options of {@linkcode createResolver}. */
export interface ResolverOptions {
  /** Servers to ask, in order; later ones are asked when earlier ones fail. */
  servers: DnsServer[];
  /** The most a whole lookup may take, retries included, in milliseconds. */
  timeoutMs: number;
  /**
   * Called once per query a lookup sent (liveness probes are not reported); exceptions it
   * throws are ignored.
   */
  onQuery?: (event: DnsQueryEvent) => void;
  /**
   * Bounds the lookups talking to DNS at once (--max-dns-inflight); more wait in arrival order,
   * and a wait counts against the lookup's budget. Shared across the resolvers a reload
   * replaces, so a reload does not double the bound. Default: no limit.
   */
  inflight?: InflightLimit;
  /**
   * `udp` (the default): each query in a UDP packet, TCP only for a truncated answer. `tcp`
   * (--dns-tcp): every query over TCP, on connections kept open for the next ones.
   */
  transport?: "udp" | "tcp";
  /** Makes the UDP sockets; node:dgram's by default (tests pass one that fails). */
  createUdpSocket?: ConstructorParameters<typeof UdpExchanger>[0];
  /** Opens the TCP connections; Deno.connect by default (tests pass one that fails). */
  connectTcp?: TcpPoolOptions["connect"];
}

/** The least time worth giving one attempt while the budget allows it. */
const MIN_ATTEMPT_MS = 200;

/** A resolver that owns sockets: `close` it (or `await using` it) when done. */
export interface DnsResolver extends MxResolver, AsyncDisposable {
  /**
   * Lets the lookups under way finish (retries included), then closes the sockets; resolves
   * once they are closed. Start no new lookups after it.
   */
  close(): Promise<void>;
  /**
   * Sends every server a liveness probe (`. NS`) at once and resolves, within the probe timeout
   * (at most {@linkcode PROBE_TIMEOUT_MS}), with each server's result in order. A server that
   * does not reply is marked down, as after a lookup's failed probe.
   */
  probeServers(): Promise<{ server: string; host: string; result: ProbeResult }[]>;
  /** Each server's state now: down or up, and how long since it last replied. */
  serverStatus(): DnsServerStatus[];
}

/**
 * Creates a resolver that asks `servers` for MX records. A lookup never throws and never takes
 * longer than `timeoutMs`: on timeout, SERVFAIL, REFUSED or any other failure it asks the next
 * server (a single server twice), each attempt getting a fair share of the remaining budget, and
 * ends with `tempfail` when all attempts failed or the budget is spent. A timeout sends the
 * server a liveness probe; a server that answers no probe is down (see {@linkcode ServerHealth})
 * and skipped, but for one lookup a second that probes it again; when every server is skipped
 * the lookup ends at once with `tempfail` (cause `down`), sending nothing. When our own host
 * cannot open a socket (out of file descriptors), the lookup ends at once with `tempfail` (cause
 * `local`), which the cache does not keep as the domain's failure.
 *
 * @example
 * ```ts
 * const servers = [{ host: "127.0.0.1", port: 53 }];
 * await using resolver = createResolver({ servers, timeoutMs: 10_000 });
 * const outcome = await resolver.resolveMx("contoso.com");
 * if (outcome.kind === "mx") console.log(outcome.hosts);
 * // ["contoso-com.mail.protection.outlook.com"]
 * ```
 */
export function createResolver(options: ResolverOptions): DnsResolver {
  const { servers, timeoutMs, onQuery } = options;
  const udp = new UdpExchanger(options.createUdpSocket);
  // Every query with --dns-tcp, else only those whose UDP answer was truncated.
  const tcp = new TcpPool({ connect: options.connectTcp });
  const primary = options.transport === "tcp" ? "tcp" : "udp";
  const probeTimeoutMs = Math.min(PROBE_TIMEOUT_MS, timeoutMs);
  const health = new ServerHealth({ probe, probeTimeoutMs });
  const inflight = options.inflight ?? null;
  const localErrorLog = new LogThrottle(FAULT_LOG_INTERVAL_MS);

  function report(event: DnsQueryEvent): void {
    try {
      onQuery?.(event);
    } catch {
      // Metrics must never break a lookup.
    }
  }

  /** One exchange, reported to onQuery, with its reply interpreted. */
  async function ask(transport: "udp" | "tcp", request: ExchangeRequest) {
    const started = performance.now();
    const result = await (transport === "udp" ? udp.exchange(request) : tcp.exchange(request));
    const from = request.from;
    const outcome = result.kind === "fail"
      ? result.failure
      : interpretReply(result.reply, { name: request.name, from });
    if (outcome.kind === "mx" && outcome.skipped !== undefined) {
      const names = outcome.skipped.join(" ");
      log.debug`MX of ${request.name} from ${from}: skipped ${names}, not host names`;
    }
    report({
      server: from,
      transport,
      // A truncated reply is counted by its rcode: it is not broken, only short (TCP follows).
      outcome: result.kind === "fail"
        ? result.failure.cause
        : outcome.kind === "tempfail" && outcome.cause === "malformed" && !result.reply.truncated
        ? "malformed"
        : rcodeLabel(result.reply.rcode),
      durationMs: performance.now() - started,
    });
    const reply = result.kind === "reply" ? result.reply : null;
    return {
      truncated: reply?.truncated ?? false,
      noEdns: reply !== null && refusesEdns(reply),
      outcome,
    };
  }

  /**
   * Asks one server over UDP, then over TCP when the UDP answer is truncated; or only over the
   * kept TCP connections (--dns-tcp).
   */
  async function attempt(
    server: DnsServer,
    { name, deadline, budgetEnd }: { name: string; deadline: number; budgetEnd: number },
  ): Promise<MxOutcome> {
    const from = formatHostPort(server);
    let edns = true;
    let first = await ask(primary, { server, from, name, deadline });
    if (first.noEdns) {
      // An old server or middlebox that refuses EDNS0: ask again without it, within the attempt.
      edns = false;
      first = await ask(primary, { server, from, name, deadline, edns });
    }
    // Truncated over TCP is a broken answer, already a temporary failure.
    if (!first.truncated || primary === "tcp") return first.outcome;
    // TCP gets what is left of this attempt, but at least the minimum while the budget allows.
    const tcpDeadline = Math.min(budgetEnd, Math.max(deadline, performance.now() + MIN_ATTEMPT_MS));
    return (await ask("tcp", { server, from, name, deadline: tcpDeadline, edns })).outcome;
  }

  async function resolveMx(domain: string): Promise<MxOutcome> {
    const name = toQueryName(domain);
    // No such name can exist in the DNS, so the truthful answer needs no query.
    if (name === null) return { kind: "nxdomain", negativeTtl: null };
    if (servers.length === 0) {
      return { kind: "tempfail", reason: "no DNS servers configured", cause: "network" };
    }
    const budgetEnd = performance.now() + timeoutMs;
    if (inflight !== null) {
      // Waiting is worth it only while a minimal attempt would still fit in the budget.
      const slot = inflight.acquire(timeoutMs - MIN_ATTEMPT_MS);
      if (!(slot === true || await slot)) {
        return {
          kind: "tempfail",
          reason:
            `${inflight.active} DNS lookups in flight (--max-dns-inflight): none ended in time`,
          cause: "overload",
        };
      }
      try {
        return await lookup(name, budgetEnd);
      } finally {
        inflight.release();
      }
    }
    return await lookup(name, budgetEnd);
  }

  async function lookup(name: string, budgetEnd: number): Promise<MxOutcome> {
    const attempts = Math.max(2, servers.length);
    let last: TempFailAnswer = {
      kind: "tempfail",
      reason: `no answer within ${timeoutMs} ms`,
      cause: "timeout",
    };
    let asked = 0;
    for (let index = 0; index < attempts; index++) {
      let now = performance.now();
      if (budgetEnd - now < 1) break;
      const server = servers[index % servers.length];
      // A server that answered no liveness probe is skipped, but for one lookup a second that
      // probes it again: otherwise every new domain would wait the whole budget while DNS is down.
      const may = health.mayAsk(server);
      if (may !== true) {
        if (may === false || !(await may)) continue;
        now = performance.now();
        if (budgetEnd - now < 1) break;
      }
      const remaining = budgetEnd - now;
      asked++;
      const share = Math.min(remaining, Math.max(remaining / (attempts - index), MIN_ATTEMPT_MS));
      const outcome = await attempt(server, { name, deadline: now + share, budgetEnd });
      if (outcome.kind === "tempfail" && outcome.cause === "local") return localFailure(outcome);
      health.record(server, { name, outcome, sentAt: now });
      if (outcome.kind !== "tempfail") return outcome;
      last = outcome;
    }
    if (asked === 0) {
      return { kind: "tempfail", reason: health.downReason(servers), cause: "down" };
    }
    return last;
  }

  /**
   * Our own host could not open a socket (out of file descriptors): no other server would fare
   * better, and it is nobody's fault but ours. Logged at most once a minute.
   */
  function localFailure(outcome: TempFailAnswer): TempFailAnswer {
    const heldBack = localErrorLog.pass();
    if (heldBack !== null) {
      log
        .warning`DNS lookup failed on this host, not in DNS: ${outcome.reason}; answered 400 for that lookup only (not cached). Out of file descriptors? Raise LimitNOFILE= in the systemd unit, or lower --max-connections${
        heldBackText(heldBack)
      }`;
    }
    return {
      kind: "tempfail",
      reason: `local error (not the domain's): ${outcome.reason}`,
      cause: "local",
    };
  }

  /**
   * A liveness probe (see {@linkcode ServerHealth}): `. NS`, and the MX of a name the server
   * answered lately, both at once over the usual transport; resolves at the first reply.
   */
  function probe(server: DnsServer, recentName: string | null): Promise<ProbeResult> {
    if (closing !== null) return Promise.resolve("unknown");
    const from = formatHostPort(server);
    const deadline = performance.now() + probeTimeoutMs;
    const questions: ExchangeRequest[] = [
      { server, from, name: ".", type: "NS", deadline, urgent: true },
    ];
    if (recentName !== null) {
      questions.push({ server, from, name: recentName, deadline, urgent: true });
    }
    const exchanges: Promise<Exchange>[] = questions.map((question) =>
      primary === "udp" ? udp.exchange(question) : tcp.exchange(question)
    );
    return new Promise((resolve) => {
      let left = exchanges.length;
      let silent = false;
      for (const exchange of exchanges) {
        exchange.then((result) => {
          // Anything from the server, whatever its rcode, even a broken packet, is alive.
          if (result.kind === "reply" || result.failure.cause === "malformed") resolve("reply");
          else if (result.failure.cause !== "local") silent = true;
          if (--left === 0) resolve(silent ? "silence" : "unknown");
        });
      }
    });
  }

  // A reload replaces the resolver while lookups are under way: its sockets close only once the
  // last of them has ended, retries included.
  let active = 0;
  let closing: Promise<void> | null = null;
  let lastLookupEnded: (() => void) | null = null;
  const close = () =>
    closing ??= (async () => {
      health.close();
      if (active > 0) await new Promise<void>((resolve) => lastLookupEnded = resolve);
      await Promise.all([udp.close(), tcp.close()]);
    })();

  return {
    resolveMx: async (domain) => {
      active++;
      try {
        return await resolveMx(domain);
      } catch (error) {
        // Nothing above should throw; if something does, defer rather than crash the router.
        return {
          kind: "tempfail",
          reason: `resolver error: ${errorMessage(error)}`,
          cause: "network",
        };
      } finally {
        if (--active === 0) lastLookupEnded?.();
      }
    },
    close,
    probeServers: async () => {
      const results = await health.probeAll(servers);
      return servers.map((server, i) => ({
        server: formatHostPort(server),
        host: server.host,
        result: results[i],
      }));
    },
    serverStatus: () => health.status(servers),
    [Symbol.asyncDispose]: close,
  };
}
