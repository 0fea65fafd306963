/**
 * The verdict of `GET /healthz` on the metrics listener: healthy while serving and while DNS
 * answers, for load balancers and monitoring that want one yes or no.
 *
 * @module
 */

import type { DnsServerStatus } from "../dns/health.ts";

/** DNS counts as answering when any server replied within this long. */
export const DNS_ANSWER_WINDOW_MS = 60_000;

/** Healthy, or why not (one line). */
export type HealthVerdict = { ok: true } | { ok: false; reason: string };

/** What the verdict is made from. */
export interface HealthState {
  /** False once the router is stopping. */
  serving: boolean;
  /** Each DNS server's state (the resolver's `serverStatus()`). */
  dns: readonly DnsServerStatus[];
  /** Epoch milliseconds now, to say since when a server is down. */
  wallNow: number;
  /** Default {@linkcode DNS_ANSWER_WINDOW_MS}. */
  windowMs?: number;
}

/**
 * Healthy unless stopping, or unless every DNS server is down (it answered no liveness probe)
 * and none replied within the last minute. A server nobody asked is not down, so a router whose
 * lookups all came from the cache is healthy; one server of two down is healthy too, since the
 * other answers the lookups.
 *
 * @example
 * ```ts
 * import type { DnsResolver } from "../dns/resolver.ts";
 *
 * declare const resolver: DnsResolver;
 * healthVerdict({ serving: true, dns: resolver.serverStatus(), wallNow: Date.now() });
 * // { ok: false, reason: "DNS not answering: 127.0.0.1:53 down since ..., no reply for 75 s" }
 * ```
 */
export function healthVerdict(state: HealthState): HealthVerdict {
  if (!state.serving) return { ok: false, reason: "not serving: stopping" };
  const windowMs = state.windowMs ?? DNS_ANSWER_WINDOW_MS;
  const { dns } = state;
  const answered = dns.some((s) => s.lastReplyAgoMs !== null && s.lastReplyAgoMs < windowMs);
  if (dns.length === 0 || answered || !dns.every((s) => s.down)) return { ok: true };
  const servers = dns.map((s) => {
    const since = new Date(state.wallNow - (s.downForMs ?? 0)).toISOString();
    const silence = s.lastReplyAgoMs === null
      ? "never replied"
      : `no reply for ${Math.round(s.lastReplyAgoMs / 1000)} s`;
    return `${s.server} down since ${since}, ${silence}`;
  });
  return { ok: false, reason: `DNS not answering: ${servers.join("; ")}` };
}
