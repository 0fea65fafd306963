/**
 * Scenario 2 of issue 4: 10,000 keys sent by `postmap -q -` over one connection (as Postfix
 * daemons send them) get exactly the answers the same keys get one per connection.
 *
 * The single lookups are made twice: all 10,000 with a minimal tcp_table client (one connection
 * per key, as `postmap -q KEY` does), and a sample of them with `postmap -q KEY` itself (about
 * 9 ms per process, too slow for all 10,000). Both are also checked against what the zone says.
 *
 * Keys whose lookup must fail (400) are left out: `postmap -q -` stops at the first query error,
 * by design (see postfix-facts.md).
 *
 * Run twice: the router asking dnsmasq over UDP (the default) and over TCP (--dns-tcp).
 *
 * @module
 */

import assert from "node:assert/strict";
import { type E2eEnv, e2eTest, sequence } from "../support/e2e_env.ts";
import { LOOPBACK } from "../support/e2e_util.ts";
import { postmapQueryMany } from "../support/postfix.ts";

const KEY_COUNT = 10_000;
const POSTMAP_SAMPLE = 150;
const CONCURRENCY = 8;

/** tcp_table encoding as Postfix writes requests: `%`, whitespace, non-printables as %XX. */
function encodeKey(key: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(key)) {
    out += byte <= 0x20 || byte >= 0x7f || byte === 0x25
      ? `%${byte.toString(16).toUpperCase().padStart(2, "0")}`
      : String.fromCharCode(byte);
  }
  return out;
}

/** One lookup on a fresh connection: the reply line, without the newline. */
async function singleLookup(port: number, key: string): Promise<string> {
  const conn = await Deno.connect({ hostname: LOOPBACK, port });
  try {
    await conn.write(new TextEncoder().encode(`get ${encodeKey(key)}\n`));
    const buffer = new Uint8Array(8192);
    let text = "";
    while (!text.includes("\n")) {
      const n = await conn.read(buffer);
      if (n === null) throw new Error(`connection closed before a reply to ${key}`);
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
    return text.slice(0, text.indexOf("\n"));
  } finally {
    conn.close();
  }
}

/** Runs `work` over `items` with at most `limit` in flight; results in input order. */
async function mapLimit<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>) {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]);
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  return results;
}

/** The whole scenario; `overTcp`: the router asks dnsmasq with --dns-tcp. */
const bulkScenario = (overTcp: boolean) => async (env: E2eEnv, t: Deno.TestContext) => {
  const step = sequence(t);
  assert.equal(/DNS servers \S+ over TCP/.test(env.router.stderr()), overTcp);
  // Every domain whose answer is not a temporary failure, in every key form.
  const domains = [
    ...env.bulkDomains.map((b) => b.domain),
    "contoso.test",
    "google-hosted.test",
    "icloud-hosted.test",
    "preference.test",
    "lookalike.test",
    "proofpoint-hosted.test",
    "nullmx.test",
    "nomx.test",
    "implicit-mx.test",
    "does-not-exist.test",
  ];
  const keys: string[] = [];
  for (let i = 0; keys.length < KEY_COUNT; i++) {
    const domain = domains[(i * 7919) % domains.length];
    switch (i % 6) {
      case 0:
        keys.push(`user${i}@${domain}`);
        break;
      case 1:
        keys.push(domain);
        break;
      case 2:
        keys.push(`User${i}@${domain.toUpperCase()}`);
        break;
      case 3:
        keys.push(`u${i}@${domain}.`);
        break;
      case 4:
        keys.push(`first.last+${i}@${domain}`);
        break;
      default:
        keys.push(["*", `.${domain}`, `u${i}@[127.0.0.1]`, `u${i}@a..b.test`][i % 4]);
    }
  }
  const expectedFound: Array<[string, string]> = [];
  for (const key of keys) {
    // Keys that name no valid domain: 500 without DNS (a single-label name would be looked up).
    const expected = key === "*" || key.startsWith(".") || key.includes("[") ||
        key.endsWith("@a..b.test")
      ? { code: 500 as const }
      : env.expected(key);
    if (expected.code === 400) throw new Error(`bulk keys must not fail: ${key}`);
    if (expected.code === 200) expectedFound.push([key, expected.value]);
  }

  let bulkFound: Array<[string, string]> = [];
  await step("postmap -q - answers all keys on one connection", async () => {
    const start = performance.now();
    const bulk = await postmapQueryMany({
      configDir: env.postmapConfigDir,
      table: env.router.table,
      keys,
    });
    console.log(
      `postmap -q - with ${keys.length} keys: ${Math.round(performance.now() - start)} ms`,
    );
    assert.deepEqual(bulk.stderr, "");
    assert.deepEqual(bulk.code, 0);
    bulkFound = bulk.found;
    assert.deepEqual(bulkFound.length, expectedFound.length);
    assert.deepEqual(bulkFound, expectedFound);
  });

  await step("the same keys one per connection give the same answers", async () => {
    const start = performance.now();
    const replies = await mapLimit(
      keys,
      CONCURRENCY,
      (key) => singleLookup(env.router.port, key),
    );
    console.log(`${keys.length} single lookups: ${Math.round(performance.now() - start)} ms`);
    const singleFound: Array<[string, string]> = [];
    replies.forEach((reply, i) => {
      if (reply.startsWith("200 ")) {
        singleFound.push([keys[i], decodeURIComponent(reply.slice(4))]);
      } else if (reply !== "500 NO%20RESULT") {
        throw new Error(`get ${keys[i]}: unexpected reply ${reply}`);
      }
    });
    assert.deepEqual(singleFound, bulkFound);
  });

  await step(`postmap -q KEY agrees on a sample of ${POSTMAP_SAMPLE} keys`, async () => {
    const bulkValue = new Map(bulkFound);
    const sample = keys.filter((_, i) => i % Math.floor(KEY_COUNT / POSTMAP_SAMPLE) === 0);
    const start = performance.now();
    const results = await mapLimit(sample, CONCURRENCY, (key) => env.postmap(key));
    console.log(`${sample.length} postmap -q: ${Math.round(performance.now() - start)} ms`);
    results.forEach((got, i) => {
      const key = sample[i];
      assert.deepEqual(got.stderr, "", key);
      assert.deepEqual(got.value, bulkValue.get(key) ?? null, key);
    });
  });
};

e2eTest(
  "postmap -q - with 10,000 keys on one connection equals 10,000 single lookups",
  { bulkDomainsPerClass: 100 },
  bulkScenario(false),
);

// Over 600 distinct domains: dnsmasq (2.90 here) closes each TCP connection after 100 queries, and the
// router's connections must carry on regardless.
e2eTest(
  "--dns-tcp: 10,000 keys, over 600 domains asked of dnsmasq over TCP, the same answers",
  { bulkDomainsPerClass: 100, routerArgs: ["--dns-tcp"] },
  bulkScenario(true),
);
