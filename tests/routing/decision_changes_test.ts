/**
 * Decisions that change (issue 19): a cached domain refreshed with a new DNS answer under the
 * same rules is reported once when where it routes, or what it answers, changes; never for a
 * reload, a failed refresh, or an answer that decides the same. Time and DNS are injected.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ruleSetOf as rules } from "../support/rule_sets.ts";
import { DEFAULT_CACHE_OPTIONS, MxCache } from "../../lib/routing/cache.ts";
import type { MxOutcome } from "../../lib/dns/types.ts";
import { type Decision, type DecisionChange, Router } from "../../lib/routing/router.ts";
import { FakeClock, FakeResolver } from "../support/fake_resolver.ts";

const GOOGLE_RELAY = "relay:[google-relay.example]:587";
const MICROSOFT_RELAY = "relay:[o365-relay.example]:587";
const RULES = `provider:google ${GOOGLE_RELAY}\nprovider:microsoft365 ${MICROSOFT_RELAY}\n`;

const mx = (...hosts: string[]): MxOutcome => ({ kind: "mx", hosts, ttl: 300 });
const GOOGLE = mx("aspmx.l.google.com", "alt1.aspmx.l.google.com");
const MICROSOFT = mx("contoso-com.mail.protection.outlook.com");
const DOMAIN = "contoso.com";

function setup(ruleText = RULES) {
  const resolver = new FakeResolver();
  const clock = new FakeClock();
  const cache = new MxCache<Decision>({
    resolver,
    options: DEFAULT_CACHE_OPTIONS,
    now: clock.read,
  });
  const changes: DecisionChange[] = [];
  const router = new Router({
    cache,
    ruleSet: rules(ruleText),
    onDecisionChange: (change) => changes.push(change),
  });
  /** Looks the domain up once the cached answer has expired, so it is asked of DNS again. */
  const refresh = async (outcome: MxOutcome | (() => MxOutcome)) => {
    resolver.answer(DOMAIN, outcome);
    clock.advance(301);
    return await router.route(`user@${DOMAIN}`);
  };
  return { resolver, clock, cache, router, changes, refresh };
}

Deno.test("a domain moving from Google to Microsoft is reported once, with both decisions", async () => {
  const { resolver, cache, router, changes, refresh } = setup();
  resolver.answer(DOMAIN, GOOGLE);
  assert.equal((await router.route(`a@${DOMAIN}`)).result, GOOGLE_RELAY);
  assert.equal((await refresh(MICROSOFT)).result, MICROSOFT_RELAY);
  assert.equal(changes.length, 1);
  const [change] = changes;
  assert.equal(change.domain, DOMAIN);
  assert.equal(change.from, "google");
  assert.equal(change.to, "microsoft365");
  assert.equal(change.previous.result, GOOGLE_RELAY);
  assert.equal(change.previous.rule?.line, 1);
  assert.deepEqual(change.previous.hosts, GOOGLE.kind === "mx" ? GOOGLE.hosts : []);
  assert.equal(change.next.result, MICROSOFT_RELAY);
  assert.equal(change.next.rule?.line, 2);
  assert.equal(change.next.matchedHost, "contoso-com.mail.protection.outlook.com");
  // The new decision is memoized on the new entry: later lookups reuse it, and report nothing.
  assert.equal(cache.fresh(DOMAIN)?.memo, change.next);
  for (let i = 0; i < 3; i++) {
    assert.equal((await router.route(`b@${DOMAIN}`)).result, MICROSOFT_RELAY);
  }
  assert.equal(changes.length, 1);
});

Deno.test("a domain that stops matching is reported with to=none and why it is not found", async () => {
  const { resolver, router, changes, refresh } = setup();
  resolver.answer(DOMAIN, MICROSOFT);
  await router.route(`a@${DOMAIN}`);
  const decision = await refresh(mx("mail.contoso.com"));
  assert.equal(decision.label, "nomatch");
  assert.deepEqual(changes.map(({ from, to }) => [from, to]), [["microsoft365", "none"]]);
  assert.equal(changes[0].next.reason, "no rule matches the MX hosts");
  assert.equal(changes[0].next.result, null);
});

Deno.test("a domain that starts matching, or matches a rule outside the catalog, is reported", async () => {
  const { resolver, router, changes, refresh } = setup(
    `${RULES}suffix:mail.contoso.com relay:[own]:25\n`,
  );
  resolver.answer(DOMAIN, { kind: "nxdomain", negativeTtl: 300 });
  await router.route(`a@${DOMAIN}`);
  await refresh(mx("mail.contoso.com"));
  await refresh(MICROSOFT);
  assert.deepEqual(changes.map(({ from, to }) => [from, to]), [
    ["none", "other"],
    ["other", "microsoft365"],
  ]);
});

Deno.test("a new answer within one provider is reported when it is answered otherwise", async () => {
  const { resolver, router, changes, refresh } = setup(
    `exact:smtp.google.com relay:[workspace]:25\n${RULES}`,
  );
  resolver.answer(DOMAIN, GOOGLE);
  await router.route(`a@${DOMAIN}`);
  assert.equal((await refresh(mx("smtp.google.com"))).result, "relay:[workspace]:25");
  assert.deepEqual(
    changes.map(({ from, to, previous, next }) => [from, to, previous.result, next.result]),
    [["google", "google", GOOGLE_RELAY, "relay:[workspace]:25"]],
  );
});

Deno.test("a prefetch (a hit near the end of the TTL) reports a change too", async () => {
  const { resolver, clock, router, changes } = setup();
  resolver.answer(DOMAIN, GOOGLE);
  await router.route(`a@${DOMAIN}`);
  resolver.answer(DOMAIN, MICROSOFT);
  clock.advance(280); // within the last 10 % of 300 s: answered from the cache, refreshed behind
  assert.equal((await router.route(`b@${DOMAIN}`)).result, GOOGLE_RELAY);
  await Promise.resolve(); // the background query settles
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(changes.map(({ from, to }) => [from, to]), [["google", "microsoft365"]]);
  assert.equal((await router.route(`c@${DOMAIN}`)).result, MICROSOFT_RELAY);
});

Deno.test("nothing is reported when the new answer decides the same", async () => {
  const { resolver, router, changes, refresh } = setup();
  resolver.answer(DOMAIN, GOOGLE);
  await router.route(`a@${DOMAIN}`);
  await refresh(mx("aspmx.l.google.com", "alt1.aspmx.l.google.com")); // equal, a new object
  await refresh(mx("smtp.google.com")); // other hosts, same provider and rule
  resolver.answer("other.example", mx("mail.other.example"));
  await router.route("a@other.example");
  resolver.answer(DOMAIN, mx("mx.other-company.example")); // not found ...
  await refresh(mx("mx2.other-company.example")); // ... and not found again
  assert.deepEqual(changes.map(({ from, to }) => [from, to]), [["google", "none"]]);
});

Deno.test("nothing is reported when the rules changed (a reload) rather than the domain", async () => {
  const { resolver, router, changes, refresh } = setup();
  resolver.answer(DOMAIN, GOOGLE);
  await router.route(`a@${DOMAIN}`);
  router.ruleSet = rules(`provider:google relay:[elsewhere]:25\n`);
  assert.equal((await refresh(GOOGLE)).result, "relay:[elsewhere]:25");
  router.ruleSet = rules(RULES);
  // Cached and never looked up under these rules: no decision to compare with.
  assert.equal((await refresh(MICROSOFT)).result, MICROSOFT_RELAY);
  assert.deepEqual(changes, []);
});

Deno.test("nothing is reported when the refresh fails: the stale entry answers", async () => {
  const { resolver, router, changes, refresh } = setup();
  resolver.answer(DOMAIN, GOOGLE);
  await router.route(`a@${DOMAIN}`);
  const stale = await refresh({ kind: "tempfail", reason: "SERVFAIL from x", cause: "servfail" });
  assert.equal(stale.result, GOOGLE_RELAY);
  // DNS is back with the same answer: nothing changed.
  await refresh(GOOGLE);
  assert.deepEqual(changes, []);
});

Deno.test("a decision that fails (MX names over the regex budget) is not compared", async () => {
  const { resolver, router, changes, refresh } = setup(
    `${RULES}/^(?:[a-z0-9-]+\\.){2,20}mail\\.example\\.com$/ relay:[r]:25\n`,
  );
  resolver.answer(DOMAIN, GOOGLE);
  await router.route(`a@${DOMAIN}`);
  const hostile = Array.from({ length: 16 }, (_, i) => `${i}`.padEnd(253, "a"));
  assert.equal((await refresh(mx(...hostile))).label, "tempfail");
  await refresh(MICROSOFT);
  assert.deepEqual(changes, []);
});

Deno.test("without onDecisionChange the cache has no replace hook", () => {
  const cache = new MxCache<Decision>({
    resolver: new FakeResolver(),
    options: DEFAULT_CACHE_OPTIONS,
  });
  new Router({ cache, ruleSet: rules(RULES) });
  assert.equal(cache.onReplace, null);
});
