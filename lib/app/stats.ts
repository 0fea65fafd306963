/**
 * The periodic stats line, as the original router logged it: lookups (and by provider), cache
 * counters, memory and open connections, at info every 5 minutes.
 *
 * @module
 */

import type { MxCache } from "../routing/cache.ts";
import type { ConnectionLimit } from "../server/connection_limit.ts";
import { log } from "../common/log.ts";
import { type Decision, PROVIDER_LABELS, type Router } from "../routing/router.ts";
import type { RuleSet } from "../routing/rules.ts";

/** How often the stats line is logged. */
const STATS_INTERVAL_MS = 5 * 60 * 1000;

/** What the stats line reads. */
export interface StatsSources {
  cache: MxCache<Decision>;
  router: Router;
  /** The connection limit's counts (a {@linkcode ConnectionLimit} in the router). */
  limit: Readonly<Pick<ConnectionLimit, "open" | "max" | "refused" | "evicted">>;
}

/**
 * Formats the stats line from the live counters.
 *
 * @example
 * ```ts
 * import type { MxCache } from "../routing/cache.ts";
 * import type { Decision, Router } from "../routing/router.ts";
 * import { ConnectionLimit } from "../server/connection_limit.ts";
 *
 * declare const cache: MxCache<Decision>;
 * declare const router: Router;
 * const limit = new ConnectionLimit(10_000);
 * statsLine({ cache, router, limit }); // "stats: lookups match=3 nomatch=1 ... rss=52.1MB"
 * ```
 */
export function statsLine(sources: StatsSources): string {
  const { match, nomatch, tempfail, invalid } = sources.router.counts;
  const c = sources.cache.counters;
  const rssMb = (Deno.memoryUsage().rss / 1048576).toFixed(1);
  return `stats: lookups match=${match} nomatch=${nomatch} tempfail=${tempfail} ` +
    `invalid=${invalid}; providers ${providerCounts(sources.router)}; ` +
    `cache entries=${sources.cache.size} hits=${c.hits} misses=${c.misses} ` +
    `stale=${c.staleAnswers} prefetches=${c.prefetches} coalesced=${c.coalesced} ` +
    `failure_hits=${c.failureHits}; dns queries=${c.dnsQueries} failures=${c.failures}; ` +
    `connections open=${sources.limit.open} refused=${sources.limit.refused} ` +
    `evicted=${sources.limit.evicted}; rss=${rssMb}MB; ` +
    `top rules: ${topRules(sources.router.ruleSet)}`;
}

/** Lookups per provider label, most first (ties in catalog order), those with none left out. */
function providerCounts(router: Router): string {
  const totals: [string, number][] = [];
  for (const provider of PROVIDER_LABELS) {
    const { match, nomatch, tempfail, invalid } = router.countsByProvider.get(provider)!;
    const total = match + nomatch + tempfail + invalid;
    if (total > 0) totals.push([provider, total]);
  }
  // "-": "none" is a label (lookups without an MX host).
  if (totals.length === 0) return "-";
  // Array.prototype.sort is stable: equal counts keep the catalog order.
  return totals.sort((a, b) => b[1] - a[1]).map(([id, n]) => `${id}=${n}`).join(" ");
}

/** How many of the most used rules the line names. */
const TOP_RULES = 3;

function topRules(ruleSet: RuleSet): string {
  const used = ruleSet.rules.filter((rule) => rule.matches > 0);
  if (used.length === 0) return "none";
  return used.sort((a, b) => b.matches - a.matches).slice(0, TOP_RULES)
    .map((rule) => `line ${rule.line}=${rule.matches}`).join(" ");
}

/**
 * Logs the stats line every {@linkcode STATS_INTERVAL_MS}; `stop` ends it.
 *
 * @example
 * ```ts
 * declare const sources: StatsSources;
 * const stats = startStatsLog(sources);
 * // ... serve ...
 * stats.stop();
 * ```
 */
export function startStatsLog(sources: StatsSources): { stop(): void } {
  const timer = setInterval(() => log.info`${statsLine(sources)}`, STATS_INTERVAL_MS);
  Deno.unrefTimer(timer);
  return { stop: () => clearInterval(timer) };
}
