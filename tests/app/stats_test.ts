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
    .answer("a.example", { kind: "mx", hosts: ["x.mail.protection.outlook.com"], ttl: 300 })
    .answer("b.example", { kind: "mx", hosts: ["x.google.com"], ttl: 300 });
  const cache = new MxCache<Decision>({ resolver, options: DEFAULT_CACHE_OPTIONS });
  const router = new Router({ cache, ruleSet: parsed.value.ruleSet });
  for (const key of ["1@a.example", "2@a.example", "3@b.example", "4@gone.example", "*"]) {
    await router.route(key);
  }
  const line = statsLine({ cache, router, limit: { open: 2, max: 10, refused: 1, evicted: 4 } });
  assert.match(
    line,
    /^stats: lookups match=3 nomatch=1 tempfail=0 invalid=1; providers microsoft365=2 none=2 google=1; cache entries=3 hits=1 misses=3 stale=0 prefetches=0 coalesced=0 failure_hits=0; dns queries=3 failures=0; connections open=2 refused=1 evicted=4; rss=\d+\.\dMB; top rules: line 1=2 line 2=1$/,
  );
});

Deno.test("the stats line counts lookups by provider label: most first, ties in catalog order", async () => {
  const parsed = parseConfig("provider:google relay:[g]:25\n", "r");
  assert.ok(parsed.ok);
  const resolver = new FakeResolver()
    .answer("own.example", { kind: "mx", hosts: ["mail.own.example"], ttl: 300 })
    .answer("gmail.example", { kind: "mx", hosts: ["aspmx.l.google.com"], ttl: 300 })
    .answer("o365.example", { kind: "mx", hosts: ["o365-example.mx.microsoft"], ttl: 300 });
  const cache = new MxCache<Decision>({ resolver, options: DEFAULT_CACHE_OPTIONS });
  const router = new Router({ cache, ruleSet: parsed.value.ruleSet });
  const limit = { open: 0, max: 10, refused: 0, evicted: 0 };
  assert.match(statsLine({ cache, router, limit }), /; providers -; /);
  const keys = ["a@own.example", "b@own.example", "c@gmail.example", "d@o365.example"];
  for (const key of [...keys, "e@o365.example", "f@nx.example"]) await router.route(key);
  // Microsoft 365 unrouted and Google routed count alike: the provider is the domain's.
  assert.match(
    statsLine({ cache, router, limit }),
    /; providers microsoft365=2 other=2 google=1 none=1; /,
  );
});
