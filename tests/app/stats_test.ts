import assert from "node:assert/strict";
import { DEFAULT_CACHE_OPTIONS, MxCache } from "../../lib/routing/cache.ts";
import { parseConfig } from "../../lib/routing/rules_file.ts";
import { type Decision, Router } from "../../lib/routing/router.ts";
import { statsLine } from "../../lib/app/stats.ts";
import { FakeResolver } from "../support/fake_resolver.ts";

Deno.test("the stats line shows the same counters as the metrics, and the top rules", async () => {
  const parsed = parseConfig(
    "suffix:outlook.com relay:[a]:25\nsuffix:google.com relay:[b]:25\n",
    "r",
  );
  assert.ok(parsed.ok);
  const resolver = new FakeResolver()
    .answer("a.example", { kind: "mx", hosts: ["x.outlook.com"], ttl: 300 })
    .answer("b.example", { kind: "mx", hosts: ["x.google.com"], ttl: 300 });
  const cache = new MxCache<Decision>({ resolver, options: DEFAULT_CACHE_OPTIONS });
  const router = new Router({ cache, ruleSet: parsed.ruleSet });
  for (const key of ["1@a.example", "2@a.example", "3@b.example", "4@gone.example", "*"]) {
    await router.route(key);
  }
  const line = statsLine({ cache, router, limit: { open: 2, max: 10, refused: 1, evicted: 4 } });
  assert.match(
    line,
    /^stats: lookups match=3 nomatch=1 tempfail=0 invalid=1; cache entries=3 hits=1 misses=3 stale=0 prefetches=0 coalesced=0 failure_hits=0; dns queries=3 failures=0; connections open=2 refused=1 evicted=4; rss=\d+\.\dMB; top rules: line 1=2 line 2=1$/,
  );
});
