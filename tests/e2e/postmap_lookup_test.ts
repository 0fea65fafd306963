/**
 * Scenario 1 of issue 4: Postfix's own client, `postmap -q`, gets what the DNS outcome table in
 * postfix-facts.md says for every domain class, with real DNS (dnsmasq) behind the router, asked
 * over UDP (the default) and over TCP (--dns-tcp).
 *
 * @module
 */

import assert from "node:assert/strict";
import { DOMAINS, e2eTest } from "../support/e2e_env.ts";
import type { DomainClass, E2eEnv } from "../support/e2e_env.ts";

/** Checks one postmap answer against the expected reply, with a readable message. */
async function assertLookup(env: E2eEnv, key: string): Promise<void> {
  const expected = env.expected(key);
  const got = await env.postmap(key);
  const what = `postmap -q ${key}: exit ${got.code}, value ${JSON.stringify(got.value)}, ` +
    `stderr ${JSON.stringify(got.stderr)}`;
  switch (expected.code) {
    case 200:
      assert.deepEqual(got.code, 0, what);
      assert.deepEqual(got.value, expected.value, what);
      break;
    case 500:
      assert.deepEqual(got.code, 1, what);
      assert.deepEqual(got.value, null, what);
      assert.deepEqual(got.stderr, "", `not found must be silent: ${what}`);
      break;
    case 400:
      assert.deepEqual(got.code, 1, what);
      assert.match(got.stderr, /query error/, what);
      break;
  }
}

/** The whole table through `postmap -q`; the router asks dnsmasq over TCP or UDP. */
const outcomeTable = (overTcp: boolean) => async (env: E2eEnv, t: Deno.TestContext) => {
  await t.step(`the router asks over ${overTcp ? "TCP" : "UDP"}`, () => {
    assert.equal(/DNS servers \S+ over TCP/.test(env.router.stderr()), overTcp);
  });
  const expectedCodes: Record<DomainClass, number> = {
    microsoft: 200,
    google: 500,
    icloud: 200,
    preference: 200,
    lookalike: 500,
    substring: 200,
    nullMx: 500,
    noMx: 500,
    implicitMx: 200,
    substringNoMx: 500,
    singleLabel: 200,
    domainDunno: 500,
    domainRule: 200,
    nxDomain: 500,
    servfail: 400,
    silent: 400,
    flaky: 400,
  };
  for (const [kind, domain] of Object.entries(DOMAINS) as Array<[DomainClass, string]>) {
    await t.step(`${kind}: user@${domain} → ${expectedCodes[kind]}`, async () => {
      assert.deepEqual(env.expected(domain).code, expectedCodes[kind]);
      const start = performance.now();
      await assertLookup(env, `user@${domain}`);
      const ms = performance.now() - start;
      // --dns-timeout is 1 s: even the silent upstream must not hold a lookup much longer.
      assert.ok(ms < 4000, `${domain} took ${Math.round(ms)} ms with --dns-timeout 1`);
    });
  }
  await t.step("the lowest preference decides, not the answer order", async () => {
    const got = await env.postmap(`user@${DOMAINS.preference}`);
    assert.deepEqual(got.value, env.relayPairResult);
  });
  await t.step("key forms: bare domain, upper case, trailing dot", async () => {
    for (
      const key of [
        DOMAINS.microsoft,
        `User.Name@${DOMAINS.microsoft.toUpperCase()}`,
        `user@${DOMAINS.microsoft}.`,
        `first.last+tag@${DOMAINS.icloud}`,
      ]
    ) {
      await assertLookup(env, key);
    }
  });
  await t.step("keys that never need DNS answer 500", async () => {
    for (const key of ["*", `.${DOMAINS.microsoft}`, "user@[127.0.0.1]", "user@a..b.test"]) {
      const got = await env.postmap(key);
      assert.deepEqual(got.code, 1, `${key}: ${got.stderr}`);
      assert.deepEqual(got.stderr, "", key);
    }
  });
};

e2eTest("postmap -q answers every DNS outcome class as the table says", {}, outcomeTable(false));

// dnsmasq answers a TCP connection's queries one at a time: slower, but the answers must match.
e2eTest(
  "--dns-tcp: postmap -q answers every DNS outcome class the same, dnsmasq over TCP",
  { routerArgs: ["--dns-tcp"] },
  outcomeTable(true),
);
