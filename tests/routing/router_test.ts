import assert from "node:assert/strict";
import { ruleSetOf as rules } from "../support/rule_sets.ts";
import { DEFAULT_CACHE_OPTIONS, MxCache } from "../../lib/routing/cache.ts";
import type { MxOutcome } from "../../lib/dns/types.ts";
import {
  decide,
  decideInSlices,
  type Decision,
  type LookupReport,
  Router,
} from "../../lib/routing/router.ts";
import { FakeClock, FakeResolver } from "../support/fake_resolver.ts";

const RULES = rules(
  "suffix:mail.protection.outlook.com relay:[o365.example]:587\n" +
    "exact:mx.implicit.example relay:[implicit]:25\n",
);

Deno.test("decide follows the DNS outcome table", () => {
  const cases: [MxOutcome, string, string | null][] = [
    [
      { kind: "mx", hosts: ["x.mail.protection.outlook.com"], ttl: 60 },
      "match",
      "relay:[o365.example]:587",
    ],
    [{ kind: "mx", hosts: ["aspmx.l.google.com"], ttl: 60 }, "nomatch", null],
    [{ kind: "nullmx", ttl: 60 }, "nomatch", null],
    [{ kind: "nxdomain", negativeTtl: 60 }, "nomatch", null],
    [{ kind: "nodata", negativeTtl: 60 }, "match", "relay:[implicit]:25"],
    [{ kind: "tempfail", reason: "SERVFAIL from x", cause: "servfail" }, "tempfail", null],
  ];
  for (const [outcome, label, result] of cases) {
    const decision = decide("mx.implicit.example", outcome, RULES);
    assert.equal(decision.label, label, outcome.kind);
    assert.equal(decision.result, result, outcome.kind);
  }
  assert.equal(
    decide("x.example", { kind: "tempfail", reason: "timeout", cause: "timeout" }, RULES).reason,
    "timeout",
  );
});

Deno.test("decide tries hosts in the given (preference) order", () => {
  const decision = decide("d.example", {
    kind: "mx",
    hosts: ["backup.example", "a.mail.protection.outlook.com"],
    ttl: 60,
  }, RULES);
  assert.equal(decision.label, "match");
  assert.equal(decision.matchedHost, "a.mail.protection.outlook.com");
  assert.equal(decision.rule?.line, 1);
});

function setup() {
  const resolver = new FakeResolver();
  const clock = new FakeClock();
  const cache = new MxCache<Decision>({
    resolver,
    options: DEFAULT_CACHE_OPTIONS,
    now: clock.read,
  });
  const reports: LookupReport[] = [];
  const router = new Router({
    cache,
    ruleSet: RULES,
    observer: { wants: () => true, report: (r) => reports.push({ ...r }) },
  });
  return { resolver, router, reports };
}

Deno.test("invalid keys are answered without DNS", async () => {
  const { resolver, router, reports } = setup();
  for (const key of ["*", ".example.com", "user@[192.0.2.1]", "user@a..b"]) {
    const decision = await router.route(key);
    assert.equal(decision.label, "invalid");
  }
  assert.equal(resolver.total, 0);
  assert.equal(router.counts.invalid, 4);
  assert.equal(reports[0].source, "key");
});

Deno.test("a hit reuses the memoized decision; a new rule set recomputes it", async () => {
  const { resolver, router } = setup();
  resolver.answer("contoso.example", {
    kind: "mx",
    hosts: ["c.mail.protection.outlook.com"],
    ttl: 300,
  });
  const first = await router.route("a@contoso.example");
  const second = router.route("b@CONTOSO.example.");
  assert.ok(!(second instanceof Promise), "hits are synchronous");
  assert.equal(second, first);
  router.ruleSet = rules("suffix:outlook.com relay:[new]:25\n");
  const third = await router.route("c@contoso.example") as Decision;
  assert.equal(third.result, "relay:[new]:25");
  assert.equal(resolver.total, 1);
  assert.deepEqual(router.counts, { match: 3, nomatch: 0, tempfail: 0, invalid: 0 });
});

Deno.test("UTF-8 domains are looked up in their ASCII form", async () => {
  const { resolver, router } = setup();
  await router.route("jörg@müller.example");
  assert.deepEqual([...resolver.queries.keys()], ["xn--mller-kva.example"]);
});

Deno.test("the lookup report says where the answer came from", async () => {
  const { resolver, router, reports } = setup();
  resolver.answer("contoso.example", {
    kind: "mx",
    hosts: ["c.mail.protection.outlook.com"],
    ttl: 300,
  });
  await router.route("a@contoso.example");
  await router.route("a@contoso.example");
  assert.deepEqual(reports.map((r) => [r.domain, r.source, r.decision.label]), [
    ["contoso.example", "dns", "match"],
    ["contoso.example", "cache", "match"],
  ]);
});

Deno.test("a domain rule wins over every MX rule and is answered without DNS", async () => {
  const { resolver, router, reports } = setup();
  router.ruleSet = rules(
    "suffix:mail.protection.outlook.com relay:[o365.example]:587\n" +
      "domain:contoso.example smtp:[own.contoso.example]:25\n" +
      "domain:.contoso.example smtp:[sub.contoso.example]:25\n" +
      "domain:.deep.contoso.example smtp:[deep]:25\n" +
      "domain:skip.example DUNNO\n",
  );
  resolver.answer("contoso.example", {
    kind: "mx",
    hosts: ["c.mail.protection.outlook.com"],
    ttl: 60,
  });
  resolver.answer("skip.example", {
    kind: "mx",
    hosts: ["s.mail.protection.outlook.com"],
    ttl: 60,
  });
  const cases: [string, string, string | null][] = [
    ["a@contoso.example", "match", "smtp:[own.contoso.example]:25"],
    ["a@Mail.Contoso.Example", "match", "smtp:[sub.contoso.example]:25"],
    ["a@x.deep.contoso.example", "match", "smtp:[deep]:25"],
    ["a@skip.example", "nomatch", null],
  ];
  for (const [key, label, result] of cases) {
    const decision = await router.route(key);
    assert.equal(decision.label, label, key);
    assert.equal(decision.result, result, key);
  }
  assert.equal(resolver.total, 0, "no DNS query for a domain a rule answers");
  assert.equal(reports[0].source, "rules");
  assert.equal(reports[3].decision.rule?.line, 5, "DUNNO names its rule");
  // Counted on the rule, like any match.
  assert.equal(router.ruleSet.rules.find((rule) => rule.line === 2)?.matches, 1);
});

Deno.test("a domain rule added by a reload overrides a domain already cached", async () => {
  const { resolver, router } = setup();
  resolver.answer("contoso.example", {
    kind: "mx",
    hosts: ["c.mail.protection.outlook.com"],
    ttl: 60,
  });
  assert.equal((await router.route("a@contoso.example")).result, "relay:[o365.example]:587");
  router.ruleSet = rules(
    "suffix:mail.protection.outlook.com relay:[o365.example]:587\ndomain:contoso.example DUNNO\n",
  );
  const decision = router.route("a@contoso.example");
  assert.ok(!(decision instanceof Promise), "answered from the cache entry, at once");
  assert.equal(decision.label, "nomatch");
});

Deno.test("without MX only suffix: and exact: rules match the domain itself", () => {
  // The original never matched a domain without MX; a substring or regex written for MX hosts
  // must not route fanicloud.com as iCloud.
  const set = rules(
    "icloud.com relay:[icloud]:587\n/icloud/ relay:[regex]:587\nsuffix:contoso.example relay:[c]:25\n",
  );
  const nodata = { kind: "nodata", negativeTtl: 60 } as const;
  assert.equal(decide("fanicloud.com", nodata, set).label, "nomatch");
  assert.equal(decide("mx.icloud.com", nodata, set).label, "nomatch");
  const labelExact = decide("mail.contoso.example", nodata, set);
  assert.equal(labelExact.result, "relay:[c]:25");
  assert.equal(labelExact.matchedHost, "mail.contoso.example");
  // With MX records every kind matches the hosts, as before.
  const mx: MxOutcome = { kind: "mx", hosts: ["mx01.fanicloud.com"], ttl: 60 };
  assert.equal(decide("fanicloud.com", mx, set).result, "relay:[icloud]:587");
});

Deno.test("a single-label domain is looked up and routed by its MX", async () => {
  const { resolver, router } = setup();
  resolver.answer("singlelabel", { kind: "mx", hosts: ["s.mail.protection.outlook.com"], ttl: 60 });
  const decision = await router.route("user@singlelabel");
  assert.equal(decision.result, "relay:[o365.example]:587");
  assert.equal(resolver.total, 1);
});

Deno.test("an MX rule whose result is DUNNO answers not found, naming its rule", () => {
  const set = rules("suffix:google.com DUNNO\nsuffix:com relay:[all-com]:25\n");
  const decision = decide("x.example", { kind: "mx", hosts: ["aspmx.l.google.com"], ttl: 60 }, set);
  assert.equal(decision.label, "nomatch");
  assert.equal(decision.rule?.line, 1);
  assert.equal(decision.result, null);
});

Deno.test("MX names too long for the regex rules' budget answer a temporary failure", () => {
  const set = rules("/^(?:[a-z0-9-]+\\.){2,20}mail\\.example\\.com$/ relay:[r]:25\n");
  const hostile = Array.from({ length: 16 }, (_, i) => `${i}`.padEnd(253, "a"));
  const decision = decide("evil.example", { kind: "mx", hosts: hostile, ttl: 60 }, set);
  assert.equal(decision.label, "tempfail");
  assert.match(decision.reason, /^MX names too long for the regex rules/);
  const real = decide("ok.example", {
    kind: "mx",
    hosts: ["mx1.a.mail.example.com"],
    ttl: 60,
  }, set);
  assert.equal(real.result, "relay:[r]:25");
});

Deno.test("the primary match mode follows the answer's primary hosts", () => {
  const set = rules("primary:provider:microsoft365 relay:[o365]:587\n");
  const hosts = ["mail.contoso.example", "contoso-example.mail.protection.outlook.com"];
  assert.equal(decide("contoso.example", { kind: "mx", hosts, ttl: 60 }, set).label, "nomatch");
  const tie = decide("contoso.example", { kind: "mx", hosts, ttl: 60, primaryCount: 2 }, set);
  assert.equal(tie.result, "relay:[o365]:587");
});

/** 8 hostile MX names of 253 characters, none of which the regex below matches. */
const HOSTILE: MxOutcome = {
  kind: "mx",
  hosts: Array.from({ length: 8 }, (_, i) => `${i}`.padEnd(240, "a") + ".mail.example"),
  ttl: 300,
};
const COSTLY = rules("/^[a-z0-9]{1,20}\\.mail\\.example\\.com$/ relay:[r]:25\n");

Deno.test("a costly decision is matched in slices, with pauses between hosts, to the same answer", async () => {
  let pauses = 0;
  const pause = () => {
    pauses++;
    return Promise.resolve();
  };
  const sliced = await decideInSlices("evil.example", HOSTILE, { ruleSet: COSTLY, pause });
  const whole = decide("evil.example", HOSTILE, COSTLY);
  assert.deepEqual(sliced, whole);
  assert.equal(whole.label, "nomatch", "compared in full, within the budget");
  assert.ok(pauses >= 2, `${pauses} pauses`);
  // Cheap sets, and answers other than MX, need no pause.
  pauses = 0;
  const cheap: MxOutcome = { kind: "mx", hosts: ["mx1.mail.example.com"], ttl: 60 };
  assert.equal(
    (await decideInSlices("a.example", cheap, { ruleSet: COSTLY, pause })).label,
    "match",
  );
  assert.equal(pauses, 0);
});

Deno.test("while a costly new domain is being decided, a cached lookup is answered at once", async () => {
  const resolver = new FakeResolver();
  const cache = new MxCache<Decision>({ resolver, options: DEFAULT_CACHE_OPTIONS });
  const events: string[] = [];
  const holder: { router?: Router } = {};
  // The router's pause: a cached lookup arrives during the first one.
  let first = true;
  const pause = async () => {
    if (first) {
      first = false;
      const hit = holder.router?.route("b@cached.example") ?? Promise.resolve(null);
      events.push(hit instanceof Promise ? "cached lookup waited" : `cached: ${hit.label}`);
    }
    await Promise.resolve();
  };
  const router = holder.router = new Router({ cache, ruleSet: COSTLY, pause });
  resolver.answer("cached.example", { kind: "mx", hosts: ["mx1.mail.example.com"], ttl: 300 });
  resolver.answer("evil.example", HOSTILE);
  await router.route("a@cached.example");
  const decision = await router.route("a@evil.example");
  events.push(`evil: ${decision.label}`);
  assert.deepEqual(events, ["cached: match", "evil: nomatch"]);
});
