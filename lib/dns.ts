/**
 * Our own stub resolver for MX lookups.
 *
 * Deno.resolveDns and node:dns report SERVFAIL and REFUSED as "not found", expose no TTLs and wait
 * 15 s on a dead server, so we speak DNS ourselves: UDP with a fresh random source port and ID per
 * query, TCP when the answer is truncated (RFC 7766), and one overall time budget per lookup.
 *
 * @module
 */

import dgram from "node:dgram";
import type { DnsServer, MxOutcome, MxResolver, TempFailAnswer } from "./dns_types.ts";
import { ServerHealth } from "./dns_health.ts";
import { formatHostPort } from "./dns_servers.ts";
import { closeQuietly, errorMessage } from "./errors.ts";
import { Limiter } from "./limiter.ts";
import {
  checkReply,
  type DnsReply,
  encodeMxQuery,
  interpretReply,
  rcodeLabel,
  type SentQuery,
  toQueryName,
} from "./dns_wire.ts";

/** How one query ended, as a fixed label for metrics. */
export type DnsQueryOutcome =
  | "noerror"
  | "nxdomain"
  | "servfail"
  | "refused"
  | "other"
  | "timeout"
  | "malformed"
  | "network";

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
  /** Called once per query sent; exceptions it throws are ignored. */
  onQuery?: (event: DnsQueryEvent) => void;
  /**
   * Most lookups talking to DNS at once (--max-dns-inflight); more wait in arrival order, and a
   * wait counts against the lookup's budget. Default: no limit.
   */
  maxInflight?: number;
  /** A limiter to share instead (e.g. across resolvers replaced by a reload). */
  limiter?: Limiter;
}

/** The least time worth giving one attempt while the budget allows it. */
const MIN_ATTEMPT_MS = 200;

/** How one exchange with a server ended before interpretation. */
type Exchange =
  | { kind: "reply"; reply: DnsReply }
  | { kind: "fail"; failure: TempFailAnswer & { cause: ExchangeFailure } };

/** The ways an exchange fails before there is a reply to interpret. */
type ExchangeFailure = "timeout" | "malformed" | "network";

/** What one exchange needs. */
interface ExchangeRequest {
  server: DnsServer;
  query: SentQuery;
  /** performance.now() value by which the exchange must have ended. */
  deadline: number;
}

function fail(cause: ExchangeFailure, reason: string): Exchange {
  return { kind: "fail", failure: { kind: "tempfail", reason, cause } };
}

function randomId(): number {
  return crypto.getRandomValues(new Uint16Array(1))[0];
}

/** Sends the query over UDP from a fresh socket and waits for a matching reply. */
async function exchangeUdp({ server, query, deadline }: ExchangeRequest): Promise<Exchange> {
  const from = formatHostPort(server);
  const waitMs = Math.max(0, deadline - performance.now());
  const socket = dgram.createSocket(server.host.includes(":") ? "udp6" : "udp4");
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await new Promise<Exchange>((resolve) => {
      // Why the last ignored packet from the server was ignored: the failure reason on timeout.
      let ignored: string | null = null;
      timer = setTimeout(() => {
        resolve(
          ignored === null
            ? fail("timeout", `no answer from ${from} within ${Math.round(waitMs)} ms`)
            : fail("malformed", `mismatched answer from ${from} (${ignored})`),
        );
      }, waitMs);
      socket.on("error", (error) => resolve(fail("network", `${from}: ${errorMessage(error)}`)));
      socket.on("message", (message: Uint8Array, sender: dgram.RemoteInfo) => {
        // Packets from elsewhere are spoofing attempts or strays: not even the server's fault.
        if (sender.address !== server.host || sender.port !== server.port) return;
        const check = checkReply(message, query);
        if (check.kind === "ignore") ignored = check.why;
        else if (check.kind === "malformed") {
          resolve(fail("malformed", `malformed answer from ${from}: ${check.why}`));
        } else resolve(check);
      });
      // Port 0: the kernel picks a random source port for every query.
      socket.bind(0, () => {
        try {
          socket.send(encodeMxQuery(query), server.port, server.host, (error) => {
            if (error) resolve(fail("network", `${from}: ${errorMessage(error)}`));
          });
        } catch (error) {
          resolve(fail("network", `${from}: ${errorMessage(error)}`));
        }
      });
    });
  } finally {
    clearTimeout(timer);
    await new Promise<void>((resolve) => {
      try {
        socket.close(() => resolve());
      } catch {
        resolve(); // Already closed after an error.
      }
    });
  }
}

async function readExactly(conn: Deno.Conn, length: number): Promise<Uint8Array> {
  const buffer = new Uint8Array(length);
  for (let filled = 0; filled < length;) {
    const count = await conn.read(buffer.subarray(filled));
    if (count === null) throw new Error("connection closed before the full answer");
    filled += count;
  }
  return buffer;
}

/** Sends the query over TCP with the 2-byte length prefix of RFC 7766 and reads one answer. */
async function exchangeTcp({ server, query, deadline }: ExchangeRequest): Promise<Exchange> {
  const from = formatHostPort(server);
  const waitMs = Math.max(0, deadline - performance.now());
  const abort = new AbortController();
  let conn: Deno.Conn | undefined;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    abort.abort(); // Ends a pending connect.
    closeQuietly(conn); // Ends a pending read or write.
  }, waitMs);
  try {
    conn = await Deno.connect({ hostname: server.host, port: server.port, signal: abort.signal });
    if (timedOut) throw new Error("timed out");
    const message = encodeMxQuery(query);
    const framed = new Uint8Array(message.length + 2);
    new DataView(framed.buffer).setUint16(0, message.length);
    framed.set(message, 2);
    for (let written = 0; written < framed.length;) {
      written += await conn.write(framed.subarray(written));
    }
    const header = await readExactly(conn, 2);
    const answer = await readExactly(conn, (header[0] << 8) | header[1]);
    const check = checkReply(answer, query);
    // One query per connection, so anything but our answer means a broken server.
    if (check.kind !== "reply") {
      return fail("malformed", `malformed answer from ${from}: ${check.why}`);
    }
    return check;
  } catch (error) {
    return timedOut
      ? fail("timeout", `no answer from ${from} over TCP within ${Math.round(waitMs)} ms`)
      : fail("network", `${from} over TCP: ${errorMessage(error)}`);
  } finally {
    clearTimeout(timer);
    closeQuietly(conn);
  }
}

/**
 * Creates a resolver that asks `servers` for MX records. A lookup never throws and never takes
 * longer than `timeoutMs`: on timeout, SERVFAIL, REFUSED or any other failure it asks the next
 * server (a single server twice), each attempt getting a fair share of the remaining budget, and
 * ends with `tempfail` when all attempts failed or the budget is spent.
 */
export function createResolver(options: ResolverOptions): MxResolver {
  const { servers, timeoutMs, onQuery } = options;
  const health = new ServerHealth();
  const limiter = options.limiter ??
    (options.maxInflight === undefined ? null : new Limiter(options.maxInflight));

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
    const result = await (transport === "udp" ? exchangeUdp(request) : exchangeTcp(request));
    const from = formatHostPort(request.server);
    const outcome = result.kind === "fail"
      ? result.failure
      : interpretReply(result.reply, { name: request.query.name, from });
    report({
      server: from,
      transport,
      outcome: result.kind === "fail"
        ? result.failure.cause
        : outcome.kind === "tempfail" && outcome.cause === "malformed"
        ? "malformed"
        : rcodeLabel(result.reply.rcode),
      durationMs: performance.now() - started,
    });
    return { truncated: result.kind === "reply" && result.reply.truncated, outcome };
  }

  /** Asks one server over UDP, then over TCP when the UDP answer is truncated. */
  async function attempt(
    server: DnsServer,
    { name, deadline, budgetEnd }: { name: string; deadline: number; budgetEnd: number },
  ): Promise<MxOutcome> {
    const udp = await ask("udp", { server, query: { id: randomId(), name }, deadline });
    if (!udp.truncated) return udp.outcome;
    // TCP gets what is left of this attempt, but at least the minimum while the budget allows.
    const tcpDeadline = Math.min(budgetEnd, Math.max(deadline, performance.now() + MIN_ATTEMPT_MS));
    const query = { id: randomId(), name };
    return (await ask("tcp", { server, query, deadline: tcpDeadline })).outcome;
  }

  async function resolveMx(domain: string): Promise<MxOutcome> {
    const name = toQueryName(domain);
    // No such name can exist in the DNS, so the truthful answer needs no query.
    if (name === null) return { kind: "nxdomain", negativeTtl: null };
    if (servers.length === 0) {
      return { kind: "tempfail", reason: "no DNS servers configured", cause: "network" };
    }
    const budgetEnd = performance.now() + timeoutMs;
    if (limiter !== null) {
      // Waiting is worth it only while a minimal attempt would still fit in the budget.
      const slot = limiter.acquire(timeoutMs - MIN_ATTEMPT_MS);
      if (!(slot === true || await slot)) {
        return {
          kind: "tempfail",
          reason:
            `${limiter.active} DNS lookups in flight (--max-dns-inflight): none ended in time`,
          cause: "overload",
        };
      }
      try {
        return await lookup(name, budgetEnd);
      } finally {
        limiter.release();
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
      const now = performance.now();
      const remaining = budgetEnd - now;
      if (remaining < 1) break;
      const server = servers[index % servers.length];
      // A server that just timed out again and again is skipped, but for one probe a second:
      // otherwise every new domain would wait the whole budget while DNS is down.
      if (!health.mayAsk(server, now)) continue;
      asked++;
      const share = Math.min(remaining, Math.max(remaining / (attempts - index), MIN_ATTEMPT_MS));
      const outcome = await attempt(server, { name, deadline: now + share, budgetEnd });
      health.record(server, { name, outcome, now: performance.now() });
      if (outcome.kind !== "tempfail") return outcome;
      last = outcome;
    }
    if (asked === 0) {
      return {
        kind: "tempfail",
        reason: `DNS not answering: ${servers.map(formatHostPort).join(", ")} timed out ` +
          "for different names and answered nothing for 2 s or more; probing once a second",
        cause: "down",
      };
    }
    return last;
  }

  return {
    resolveMx: async (domain) => {
      try {
        return await resolveMx(domain);
      } catch (error) {
        // Nothing above should throw; if something does, defer rather than crash the router.
        return {
          kind: "tempfail",
          reason: `resolver error: ${errorMessage(error)}`,
          cause: "network",
        };
      }
    },
  };
}
