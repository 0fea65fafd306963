/**
 * The provider labels of the metrics (issue 19), read from a scrape of `/metrics` fed by a real
 * router: lookups by result and provider, rule matches by line and provider, and decision
 * changes by where a domain routed and routes. Label values come from a fixed set.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createMetrics, type RouterMetrics } from "../../lib/app/metrics.ts";
import { DEFAULT_CACHE_OPTIONS, MxCache } from "../../lib/routing/cache.ts";
import { type Decision, PROVIDER_LABELS, Router } from "../../lib/routing/router.ts";
import { parseConfig } from "../../lib/routing/rules_file.ts";
import { FakeClock, FakeResolver } from "../support/fake_resolver.ts";

const RULES = "provider:microsoft365 relay:[o365]:587\nmail relay:[any-mail]:25\n";

async function scrape(metrics: RouterMetrics): Promise<string> {
  const server = metrics.serve({ hostname: "127.0.0.1", port: 0 });
  try {
    const { port } = server.addr as Deno.NetAddr;
    return await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  } finally {
    await server.shutdown();
  }
}

/** The samples of one metric: "LABELS VALUE" lines, without the metric name. */
function samples(text: string, name: string): string[] {
  return text.split("\n").filter((line) => line.startsWith(`${name}{`))
    .map((line) => line.slice(name.length));
}

function routerWithMetrics() {
  const parsed = parseConfig(RULES, "test.conf");
  assert.ok(parsed.ok);
  const resolver = new FakeResolver()
    .answer("o365.example", { kind: "mx", hosts: ["o365-example.mx.microsoft"], ttl: 300 })
    .answer("gmail.example", { kind: "mx", hosts: ["aspmx.l.google.com"], ttl: 300 })
    .answer("gmx.example", { kind: "mx", hosts: ["mx00.mail.gmx.net"], ttl: 300 })
    .answer("own.example", { kind: "mx", hosts: ["mail.own.example"], ttl: 300 });
  const clock = new FakeClock();
  const cache = new MxCache<Decision>({
    resolver,
    options: DEFAULT_CACHE_OPTIONS,
    now: clock.read,
  });
  let metrics: RouterMetrics | null = null;
  const router = new Router({
    cache,
    ruleSet: parsed.value.ruleSet,
    onDecisionChange: (change) => metrics?.countDecisionChange(change),
  });
  metrics = createMetrics({
    lookups: () => router.countsByProvider,
    cache: () => ({ ...cache.counters, entries: cache.size }),
    connections: () => ({ tcp_table: 0, socketmap: 0 }),
    refusedConnections: () => 0,
    evictedConnections: () => 0,
    ruleSet: () => router.ruleSet,
    version: "test",
  });
  return { router, resolver, clock, metrics };
}

Deno.test("lookups are counted by result and provider; every label pair is exported", async () => {
  const { router, metrics } = routerWithMetrics();
  for (const key of ["a@o365.example", "b@o365.example", "a@gmail.example", "a@nx.example", "*"]) {
    await router.route(key);
  }
  const lookups = samples(await scrape(metrics), "mxrouter_lookups_total");
  assert.equal(lookups.length, PROVIDER_LABELS.length * 4);
  for (const line of lookups) {
    const provider = /provider="([^"]*)"/.exec(line)?.[1];
    assert.ok(provider !== undefined && PROVIDER_LABELS.includes(provider), line);
  }
  const nonzero = lookups.filter((line) => !line.endsWith(" 0"));
  assert.deepEqual(nonzero, [
    '{result="match",provider="microsoft365"} 2',
    '{result="nomatch",provider="google"} 1',
    '{result="nomatch",provider="none"} 1',
    '{result="invalid",provider="none"} 1',
  ]);
});

Deno.test("rule matches are counted by line and by the provider of the host that matched", async () => {
  const { router, metrics } = routerWithMetrics();
  for (const key of ["a@o365.example", "a@gmx.example", "b@gmx.example", "a@own.example"]) {
    await router.route(key);
  }
  assert.deepEqual(samples(await scrape(metrics), "mxrouter_rule_matches_total"), [
    '{line="1",provider="microsoft365"} 1',
    '{line="2",provider="gmx-webde"} 2',
    '{line="2",provider="other"} 1',
  ]);
});

Deno.test("decision changes are counted by from and to, never by domain", async () => {
  const { router, resolver, clock, metrics } = routerWithMetrics();
  const before = await scrape(metrics);
  assert.match(before, /^# TYPE mxrouter_decision_changes_total counter$/m);
  assert.deepEqual(samples(before, "mxrouter_decision_changes_total"), []);
  await router.route("a@own.example");
  await router.route("a@gmail.example");
  resolver.answer("own.example", { kind: "mx", hosts: ["own-example.mx.microsoft"], ttl: 300 });
  resolver.answer("gmail.example", { kind: "mx", hosts: ["own-example.mx.microsoft"], ttl: 300 });
  clock.advance(301);
  await router.route("b@own.example");
  await router.route("b@gmail.example");
  assert.deepEqual(samples(await scrape(metrics), "mxrouter_decision_changes_total"), [
    '{from="other",to="microsoft365"} 1',
    '{from="none",to="microsoft365"} 1',
  ]);
});
