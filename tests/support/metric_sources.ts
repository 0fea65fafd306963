/**
 * Metric sources of a router that has answered nothing yet, for tests of the metrics listener
 * (the dashboard's metric names, /healthz).
 *
 * @module
 */

import type { MetricSources } from "../../lib/app/metrics.ts";
import { emptyCacheCounters } from "../../lib/routing/cache.ts";
import type { RuleSet } from "../../lib/routing/rules.ts";

/**
 * Sources that report zero everywhere and the given rules; `more` replaces or adds sources.
 *
 * @example
 * ```ts
 * import { createMetrics } from "../../lib/app/metrics.ts";
 * import type { RuleSet } from "../../lib/routing/rules.ts";
 *
 * declare const ruleSet: RuleSet;
 * const metrics = createMetrics(idleSources(ruleSet, { health: () => ({ ok: true }) }));
 * ```
 */
export function idleSources(ruleSet: RuleSet, more: Partial<MetricSources> = {}): MetricSources {
  return {
    lookups: () => new Map(),
    cache: () => ({ ...emptyCacheCounters(), entries: 0 }),
    connections: () => ({ tcp_table: 0, socketmap: 0 }),
    refusedConnections: () => 0,
    evictedConnections: () => 0,
    ruleSet: () => ruleSet,
    version: "test",
    ...more,
  };
}
