import assert from "node:assert/strict";
import { ruleSetOf as rules } from "../support/rule_sets.ts";
import { DEFAULT_CACHE_OPTIONS, MxCache } from "../../lib/routing/cache.ts";
import { formatConfigError, parseConfig } from "../../lib/routing/rules_file.ts";
import { type Decision, type LookupReport, Router } from "../../lib/routing/router.ts";
import { pickMember, type RuleSet } from "../../lib/routing/rules.ts";
import { FakeResolver } from "../support/fake_resolver.ts";

const POOL_RULES = `
suffix:mail.protection.outlook.com pool:o365
pool:o365 3 relay:[r1.example]:587 | 1 smtp:[r2a.example]:25, [r2b.example]:25
suffix:google.com relay:[g.example]:25
`;

Deno.test("a file without pools parses exactly as before", () => {
  const ruleSet = rules("outlook.com relay:[a]:25\n");
  assert.equal(ruleSet.pools.size, 0);
  assert.equal(ruleSet.rules[0].pool, null);
  assert.equal(ruleSet.rules[0].result, "relay:[a]:25");
});

Deno.test("pools: members are full results with weights; a rule names the pool", () => {
  const ruleSet = rules(POOL_RULES);
  const pool = ruleSet.pools.get("o365");
  assert.ok(pool);
  assert.deepEqual(pool.members.map((m) => [m.weight, m.result]), [
    [3, "relay:[r1.example]:587"],
    [1, "smtp:[r2a.example]:25, [r2b.example]:25"],
  ]);
  assert.equal(pool.totalWeight, 4);
  assert.equal(ruleSet.rules[0].pool, pool);
  assert.equal(ruleSet.rules.length, 2, "the pool line is not a rule");
});

Deno.test("pool lines that do not parse load, skipped with a warning naming file and line", () => {
  const cases: [string, RegExp][] = [
    ["a.example relay:x\npool:p\n", /pools\.conf, line 2: warning: pattern "pool:p" has no result/],
    [
      "a.example pool:p\npool:p 0 relay:x\n",
      /line 2: warning: pool "p": weight "0" is not a positive whole number/,
    ],
    ["a.example pool:p\npool:p 1.5 relay:x\n", /weight "1\.5" is not a positive whole number/],
    ["a.example pool:p\npool:p -1 relay:x\n", /weight "-1" is not a positive whole number/],
    ["a.example pool:p\npool:p 1 relay:x | relay:y\n", /member "relay:y" needs "WEIGHT RESULT"/],
  ];
  for (const [text, expected] of cases) {
    const parsed = parseConfig(text, "pools.conf");
    assert.ok(parsed.ok, text);
    assert.match(parsed.value.warnings.map(formatConfigError).join("\n"), expected, text);
  }
});

Deno.test("a pool defined twice still refuses to start, naming both lines", () => {
  const parsed = parseConfig(
    "a.example pool:p\npool:p 1 relay:x\npool:p 2 relay:y\n",
    "pools.conf",
  );
  assert.equal(parsed.ok, false);
  if (!parsed.ok) {
    assert.match(
      parsed.error.map(formatConfigError).join("\n"),
      /line 3: pool "p" defined twice \(first on line 2\)/,
    );
  }
});

Deno.test("smooth weighted round-robin: 3:1 over 400 picks is exactly 300:100, interleaved", () => {
  const pool = rules(POOL_RULES).pools.get("o365");
  assert.ok(pool);
  const picks = Array.from({ length: 400 }, () => pickMember(pool));
  assert.equal(picks.filter((i) => i === 0).length, 300);
  assert.equal(picks.filter((i) => i === 1).length, 100);
  // Spread, not in runs: the light member comes once in every 4, never two heavy runs > 3.
  assert.deepEqual(picks.slice(0, 8), [0, 0, 1, 0, 0, 0, 1, 0]);
  let run = 0;
  for (const pick of picks) {
    run = pick === 0 ? run + 1 : 0;
    assert.ok(run <= 3);
  }
});

function setup(ruleSet: RuleSet, dryRun = false) {
  const resolver = new FakeResolver()
    .answer("contoso.example", { kind: "mx", hosts: ["c.mail.protection.outlook.com"], ttl: 300 })
    .answer("fabrikam.example", { kind: "mx", hosts: ["f.mail.protection.outlook.com"], ttl: 300 })
    .answer("gmail.example", { kind: "mx", hosts: ["aspmx.l.google.com"], ttl: 300 });
  const cache = new MxCache<Decision>({ resolver, options: DEFAULT_CACHE_OPTIONS });
  const reports: LookupReport[] = [];
  const router = new Router({
    cache,
    ruleSet,
    dryRun,
    observer: { wants: () => true, report: (r) => reports.push({ ...r }) },
  });
  return { resolver, router, reports };
}

Deno.test("a cached domain still spreads over the members, across domains", async () => {
  const ruleSet = rules(POOL_RULES);
  const { resolver, router } = setup(ruleSet);
  const results: string[] = [];
  for (let i = 0; i < 400; i++) {
    const domain = i % 2 === 0 ? "contoso.example" : "fabrikam.example";
    results.push((await router.route(`u${i}@${domain}`)).result ?? "none");
  }
  assert.equal(resolver.total, 2, "two DNS queries; the rest are cache hits");
  assert.equal(results.filter((r) => r === "relay:[r1.example]:587").length, 300);
  assert.equal(results.filter((r) => r.startsWith("smtp:[r2a")).length, 100);
  const pool = ruleSet.pools.get("o365");
  assert.deepEqual(pool?.members.map((m) => m.picks), [300, 100]);
  assert.equal(ruleSet.rules[0].matches, 400);
});

Deno.test("concurrent lookups share one pick sequence", async () => {
  const ruleSet = rules(POOL_RULES);
  const { router } = setup(ruleSet);
  const decisions = await Promise.all(
    Array.from({ length: 400 }, (_, i) => router.route(`u${i}@contoso.example`)),
  );
  const heavy = decisions.filter((d: Decision) => d.result === "relay:[r1.example]:587").length;
  assert.deepEqual([heavy, 400 - heavy], [300, 100]);
});

Deno.test("dry run: decided, logged and counted as usual, answered not found", async () => {
  const ruleSet = rules(POOL_RULES);
  const { router, reports } = setup(ruleSet, true);
  const answers = [
    await router.route("a@contoso.example"),
    await router.route("a@gmail.example"),
    await router.route("a@unknown.example"),
  ];
  for (const answer of answers) assert.equal(answer.label, "nomatch");
  assert.deepEqual(reports.map((r) => [r.decision.label, r.answer.result]), [
    ["match", "relay:[r1.example]:587"],
    ["match", "relay:[g.example]:25"],
    ["nomatch", null],
  ]);
  assert.deepEqual(router.counts, { match: 2, nomatch: 1, tempfail: 0, invalid: 0 });
  assert.equal(ruleSet.rules[1].matches, 1);
});

Deno.test("per-rule and per-member counters after a known sequence", async () => {
  const ruleSet = rules(POOL_RULES);
  const { router } = setup(ruleSet);
  for (
    const key of [
      "a@contoso.example",
      "b@contoso.example",
      "c@gmail.example",
      "d@fabrikam.example",
      "e@x.example",
    ]
  ) {
    await router.route(key);
  }
  assert.deepEqual(ruleSet.rules.map((r) => [r.line, r.matches]), [[2, 3], [4, 1]]);
  assert.deepEqual(ruleSet.pools.get("o365")?.members.map((m) => m.picks), [2, 1]);
});
