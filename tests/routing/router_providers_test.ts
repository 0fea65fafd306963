/**
 * The provider of a decision (issue 19): found once when the domain is decided, from the MX host
 * that decided (else the first), and the fixed provider labels lookups and rule matches are
 * counted under.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ruleSetOf as rules } from "../support/rule_sets.ts";
import { DEFAULT_CACHE_OPTIONS, MxCache } from "../../lib/routing/cache.ts";
import type { MxOutcome } from "../../lib/dns/types.ts";
import { PROVIDER_IDS } from "../../lib/routing/providers.ts";
import {
  decide,
  type Decision,
  NO_PROVIDER,
  OTHER_PROVIDER,
  PROVIDER_LABELS,
  providerLabel,
  routeLabel,
  Router,
} from "../../lib/routing/router.ts";
import { FakeResolver } from "../support/fake_resolver.ts";

const RULES = rules(
  "provider:microsoft365 relay:[o365]:587\n" +
    "suffix:mail.own.example relay:[own]:25\n" +
    "domain:override.example relay:[override]:25\n",
);

const mx = (...hosts: string[]): MxOutcome => ({ kind: "mx", hosts, ttl: 300 });

Deno.test("a decision's provider is the deciding host's, else the first host's, else null", () => {
  const cases: [string, MxOutcome, string | null, string][] = [
    // Hybrid: the own server is MX 10, Microsoft MX 20; the Microsoft host decided (mode any).
    [
      "hybrid.example",
      mx("mx.hybrid.example", "hybrid-example.mail.protection.outlook.com"),
      "microsoft365",
      "match",
    ],
    ["dane.example", mx("dane-example.j-v1.mx.microsoft"), "microsoft365", "match"],
    // No rule for Google: the first host says where the domain is.
    [
      "gmail.example",
      mx("aspmx.l.google.com", "mx.backup.example"),
      "google",
      "nomatch",
    ],
    ["self.example", mx("mx.self.example"), null, "nomatch"],
    ["a.mail.own.example", mx("a.mail.own.example"), null, "match"],
    // NODATA: the domain is its own mail host.
    ["smtp.google.com", { kind: "nodata", negativeTtl: 60 }, "google", "nomatch"],
    ["gone.example", { kind: "nxdomain", negativeTtl: 60 }, null, "nomatch"],
    ["null.example", { kind: "nullmx", ttl: 60 }, null, "nomatch"],
    [
      "broken.example",
      { kind: "tempfail", reason: "SERVFAIL", cause: "servfail" },
      null,
      "tempfail",
    ],
    ["override.example", mx("x.mail.protection.outlook.com"), null, "match"],
  ];
  for (const [domain, outcome, provider, label] of cases) {
    const decision = decide(domain, outcome, RULES);
    assert.equal(decision.label, label, domain);
    assert.equal(decision.provider, provider, domain);
  }
});

Deno.test("provider labels: catalog ids, then other and none, each once", () => {
  assert.deepEqual(PROVIDER_LABELS, [...PROVIDER_IDS, "other", "none"]);
  assert.equal(new Set(PROVIDER_LABELS).size, PROVIDER_LABELS.length);
  const label = (domain: string, outcome: MxOutcome) => {
    const decision = decide(domain, outcome, RULES);
    return [providerLabel(decision), routeLabel(decision)];
  };
  assert.deepEqual(label("d.example", mx("d-example.mail.protection.outlook.com")), [
    "microsoft365",
    "microsoft365",
  ]);
  // Google-hosted but not routed: counted at Google, routed nowhere.
  assert.deepEqual(label("g.example", mx("aspmx.l.google.com")), ["google", NO_PROVIDER]);
  assert.deepEqual(label("s.example", mx("mx.s.example")), [OTHER_PROVIDER, NO_PROVIDER]);
  assert.deepEqual(label("m.mail.own.example", mx("m.mail.own.example")), [
    OTHER_PROVIDER,
    OTHER_PROVIDER,
  ]);
  assert.deepEqual(label("n.example", { kind: "nxdomain", negativeTtl: 60 }), [
    NO_PROVIDER,
    NO_PROVIDER,
  ]);
  assert.deepEqual(label("override.example", { kind: "nxdomain", negativeTtl: 60 }), [
    NO_PROVIDER,
    OTHER_PROVIDER,
  ]);
});

Deno.test("the router counts lookups and rule matches by provider label", async () => {
  const resolver = new FakeResolver()
    .answer("o365.example", mx("o365-example.mail.protection.outlook.com"))
    .answer("gmail.example", mx("aspmx.l.google.com"))
    .answer("a.mail.own.example", mx("a.mail.own.example"))
    .answer("broken.example", { kind: "tempfail", reason: "SERVFAIL", cause: "servfail" });
  const cache = new MxCache<Decision>({ resolver, options: DEFAULT_CACHE_OPTIONS });
  const router = new Router({ cache, ruleSet: RULES });
  assert.deepEqual([...router.countsByProvider.keys()], PROVIDER_LABELS);
  const keys = [
    "a@o365.example",
    "b@o365.example", // a cache hit: counted at the memoized decision's provider
    "a@gmail.example",
    "a@a.mail.own.example",
    "a@override.example",
    "a@broken.example",
    "a@gone.example",
    "*",
  ];
  for (const key of keys) await router.route(key);
  const nonzero = [...router.countsByProvider].flatMap(([provider, counts]) =>
    Object.entries(counts).filter(([, n]) => n > 0).map(([label, n]) => `${provider} ${label}=${n}`)
  );
  assert.deepEqual(nonzero, [
    "microsoft365 match=2",
    "google nomatch=1",
    "other match=1",
    "none match=1",
    "none nomatch=1",
    "none tempfail=1",
    "none invalid=1",
  ]);
  assert.deepEqual(router.counts, { match: 4, nomatch: 2, tempfail: 1, invalid: 1 });
  assert.deepEqual(
    RULES.rules.map((
      rule,
    ) => [rule.line, rule.matches, Object.fromEntries(rule.matchesByProvider)]),
    [[1, 2, { microsoft365: 2 }], [2, 1, { other: 1 }], [3, 1, { none: 1 }]],
  );
});
