/**
 * Prometheus metrics (prom-client) served at `/metrics` by Deno.serve when --metrics is given,
 * and the health verdict at `/healthz` (200 `ok`, or 503 and why).
 *
 * Counters the router already keeps are read at scrape time, so the hot path pays nothing for
 * them; only the two duration histograms are observed per event. Label sets are fixed: no domain
 * names in labels.
 *
 * @module
 */

import client from "prom-client";
import { DNS_QUERY_OUTCOMES, type DnsQueryEvent } from "../dns/resolver.ts";
import type { CacheCounters } from "../routing/cache.ts";
import {
  type DecisionChange,
  elapsedMs,
  type LookupCounts,
  type LookupObserver,
  type LookupReport,
} from "../routing/router.ts";
import type { RuleSet } from "../routing/rules.ts";
import type { HealthVerdict } from "./healthz.ts";

/** Everything the scrape reads from the running router. */
export interface MetricSources {
  /** Lookup counts by provider label (a catalog id, `other` or `none`), then by result. */
  lookups: () => ReadonlyMap<string, LookupCounts>;
  cache: () => CacheCounters & { entries: number };
  /** Open connections per protocol. */
  connections: () => Record<string, number>;
  /** Connections refused at --max-connections (none could be closed for them). */
  refusedConnections: () => number;
  /** Connections closed at --max-connections to serve a new one. */
  evictedConnections: () => number;
  /** The rules in force (counts per rule and per pool member live on them). */
  ruleSet: () => RuleSet;
  version: string;
  /** The verdict `GET /healthz` answers; without it `/healthz` is always 200. */
  health?: () => HealthVerdict;
}

/** The metrics of one router process. */
export interface RouterMetrics {
  /** Observes lookup durations (give it to the router beside the log observer). */
  lookupObserver: LookupObserver;
  /** Observes one DNS query (the resolver's onQuery hook). */
  observeDnsQuery(event: DnsQueryEvent): void;
  /** Counts a reload by outcome. */
  countReload(outcome: "success" | "failure"): void;
  /** Counts a cached domain whose decision a refresh changed, by where it routed and routes. */
  countDecisionChange(change: Pick<DecisionChange, "from" | "to">): void;
  /**
   * Serves `GET /metrics` and `GET /healthz` on HOST:PORT (everything else is 404); throws if it
   * cannot listen.
   */
  serve(address: { hostname: string; port: number }): Deno.HttpServer;
}

/** Cache counters exposed as `mxrouter_cache_NAME_total`: name, help, counter. */
const CACHE_COUNTERS: [string, string, keyof CacheCounters][] = [
  ["hits", "Lookups answered from a fresh cache entry.", "hits"],
  ["misses", "Lookups that had to ask DNS.", "misses"],
  ["stale_answers", "Lookups answered from an expired entry.", "staleAnswers"],
  ["prefetches", "Background refreshes of hot entries.", "prefetches"],
  ["coalesced", "Lookups that shared another's DNS query.", "coalesced"],
  ["failure_answers", "Lookups answered 400 from the failure cache.", "failureHits"],
];

/**
 * Creates the registry and metrics.
 *
 * @example
 * ```ts
 * declare const sources: MetricSources;
 * const metrics = createMetrics(sources);
 * const server = metrics.serve({ hostname: "127.0.0.1", port: 9100 }); // GET /metrics, /healthz
 * await server.shutdown();
 * ```
 */
export function createMetrics(sources: MetricSources): RouterMetrics {
  const registry = new client.Registry();
  const counterFrom = (name: string, help: string, read: () => number) =>
    new client.Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  new client.Counter({
    name: "mxrouter_lookups_total",
    help: "Lookups answered, by result and by the provider of the MX host that decided (else of " +
      "the first MX host): a catalog id, other (outside the catalog) or none (no MX host).",
    labelNames: ["result", "provider"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [provider, counts] of sources.lookups()) {
        for (const [result, count] of Object.entries(counts)) this.inc({ result, provider }, count);
      }
    },
  });
  const lookupSeconds = new client.Histogram({
    name: "mxrouter_lookup_duration_seconds",
    help: "Time from request to decision.",
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.025, 0.1, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const dnsSeconds = new client.Histogram({
    name: "mxrouter_dns_duration_seconds",
    help: "Time of one DNS query attempt.",
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const dnsQueries = new client.Counter({
    name: "mxrouter_dns_queries_total",
    help: "DNS queries sent, by outcome (rcode or failure).",
    labelNames: ["rcode"],
    registers: [registry],
  });
  for (const rcode of DNS_QUERY_OUTCOMES) dnsQueries.inc({ rcode }, 0);
  for (const [name, help, counter] of CACHE_COUNTERS) {
    counterFrom(`mxrouter_cache_${name}_total`, help, () => sources.cache()[counter]);
  }
  counterFrom(
    "mxrouter_connections_refused_total",
    "New connections closed at once at --max-connections: no open one could be closed for them.",
    sources.refusedConnections,
  );
  counterFrom(
    "mxrouter_connections_evicted_total",
    "Connections closed at --max-connections to serve a new one (the one waiting longest).",
    sources.evictedConnections,
  );
  new client.Gauge({
    name: "mxrouter_cache_entries",
    help: "Domains in the cache.",
    registers: [registry],
    collect() {
      this.set(sources.cache().entries);
    },
  });
  new client.Gauge({
    name: "mxrouter_connections_open",
    help: "Client connections open, by protocol.",
    labelNames: ["protocol"],
    registers: [registry],
    collect() {
      for (const [protocol, open] of Object.entries(sources.connections())) {
        this.set({ protocol }, open);
      }
    },
  });
  new client.Gauge({
    name: "mxrouter_rules_loaded",
    help: "Rules in force.",
    registers: [registry],
    collect() {
      this.set(sources.ruleSet().rules.length);
    },
  });
  new client.Counter({
    name: "mxrouter_rule_matches_total",
    help: "Lookups answered by each rule (labelled by its line in the rules file) since load, by " +
      "the provider of the host that matched: a catalog id, other, or none (a domain: rule).",
    labelNames: ["line", "provider"],
    registers: [registry],
    collect() {
      this.reset();
      for (const rule of sources.ruleSet().rules) {
        const line = String(rule.line);
        for (const [provider, count] of rule.matchesByProvider) this.inc({ line, provider }, count);
      }
    },
  });
  const decisionChanges = new client.Counter({
    name: "mxrouter_decision_changes_total",
    help: "Cached domains whose decision changed when DNS was asked again, by where they routed " +
      "(from) and route (to): the provider of the MX host that matched, other (a match outside " +
      "the catalog) or none (not found).",
    labelNames: ["from", "to"],
    registers: [registry],
  });
  new client.Counter({
    name: "mxrouter_pool_picks_total",
    help: "Lookups given to each pool member (1-based, in file order) since load.",
    labelNames: ["pool", "member"],
    registers: [registry],
    collect() {
      this.reset();
      for (const pool of sources.ruleSet().pools.values()) {
        pool.members.forEach((m, i) =>
          this.inc({ pool: pool.name, member: String(i + 1) }, m.picks)
        );
      }
    },
  });
  const reloads = new client.Counter({
    name: "mxrouter_reloads_total",
    help: "Config reloads (SIGHUP), by outcome.",
    labelNames: ["outcome"],
    registers: [registry],
  });
  reloads.inc({ outcome: "success" }, 0);
  reloads.inc({ outcome: "failure" }, 0);
  new client.Gauge({
    name: "mxrouter_build_info",
    help: "Version of the running router.",
    labelNames: ["version"],
    registers: [registry],
  }).set({ version: sources.version }, 1);

  return {
    lookupObserver: {
      wants: () => true,
      report: (report: LookupReport) => lookupSeconds.observe(elapsedMs(report) / 1000),
    },
    observeDnsQuery(event) {
      dnsQueries.inc({ rcode: event.outcome });
      dnsSeconds.observe(event.durationMs / 1000);
    },
    countReload(outcome) {
      reloads.inc({ outcome });
    },
    countDecisionChange({ from, to }) {
      decisionChanges.inc({ from, to });
    },
    serve: (address) => serveMetrics(address, registry, sources.health),
  };
}

function serveMetrics(
  address: { hostname: string; port: number },
  registry: client.Registry,
  health: (() => HealthVerdict) | undefined,
): Deno.HttpServer {
  return Deno.serve({ ...address, onListen: () => {} }, async (request) => {
    const url = new URL(request.url);
    if (request.method === "GET" && url.pathname === "/healthz") {
      const verdict = health?.() ?? { ok: true };
      return new Response(verdict.ok ? "ok\n" : `${verdict.reason}\n`, {
        status: verdict.ok ? 200 : 503,
        headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
      });
    }
    if (request.method !== "GET" || url.pathname !== "/metrics") {
      return new Response("not found: metrics are at /metrics, health at /healthz\n", {
        status: 404,
      });
    }
    return new Response(await registry.metrics(), {
      headers: { "content-type": registry.contentType },
    });
  });
}
