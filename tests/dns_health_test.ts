import assert from "node:assert/strict";
import { createResolver } from "../lib/dns.ts";
import { downReason, ServerHealth } from "../lib/dns_health.ts";
import type { DnsServer, MxOutcome } from "../lib/dns_types.ts";
import { startFakeDns } from "./support/fake_dns.ts";

const SERVER: DnsServer = { host: "192.0.2.53", port: 53 };
const TIMEOUT: MxOutcome = { kind: "tempfail", reason: "no answer", cause: "timeout" };
const ANSWER: MxOutcome = { kind: "mx", hosts: ["mx.example.net"], ttl: 300 };

Deno.test("a server is down after timeouts for two names and 2 s without any reply", () => {
  const health = new ServerHealth();
  health.record(SERVER, { name: "a.example", outcome: ANSWER, now: 0 });
  health.record(SERVER, { name: "dead.example", outcome: TIMEOUT, now: 100 });
  health.record(SERVER, { name: "dead.example", outcome: TIMEOUT, now: 200 });
  assert.equal(health.mayAsk(SERVER, 5000), true, "one name, however often, is not enough");
  health.record(SERVER, { name: "other.example", outcome: TIMEOUT, now: 1000 });
  assert.equal(health.mayAsk(SERVER, 1500), true, "a reply 1.5 s ago keeps it up");
  assert.equal(health.mayAsk(SERVER, 2000), true, "down now, but the first probe may go");
  assert.equal(health.mayAsk(SERVER, 2500), false, "skipped until the next probe");
  assert.equal(health.mayAsk(SERVER, 3000), true, "one probe a second");
  health.record(SERVER, { name: "b.example", outcome: ANSWER, now: 3010 });
  assert.equal(health.mayAsk(SERVER, 3020), true, "any reply brings it back");
  assert.match(downReason([SERVER]), /^DNS not answering: 192\.0\.2\.53:53 /);
});

Deno.test("a DNS server that answers nothing is skipped (one probe a second): no stall per domain", async () => {
  const dns = await startFakeDns({ fallback: { kind: "silence" } });
  try {
    await using resolver = createResolver({ servers: [dns.server], timeoutMs: 400 });
    let started = performance.now();
    for (const name of ["a.example", "b.example"]) {
      assert.equal((await resolver.resolveMx(name)).kind, "tempfail");
    }
    assert.ok(
      performance.now() - started >= 550,
      "the first two names wait (most of) their budgets",
    );
    started = performance.now();
    const third = await resolver.resolveMx("x.example");
    assert.ok(performance.now() - started < 100, "later ones fail at once");
    assert.ok(third.kind === "tempfail" && /DNS not answering/.test(third.reason));
    assert.ok(third.kind === "tempfail" && third.cause === "down");
    dns.setDefault({ kind: "mx", records: [{ preference: 10, exchange: "mx.example.net" }] });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    assert.equal((await resolver.resolveMx("c.example")).kind, "mx", "the probe finds it back");
    started = performance.now();
    assert.equal((await resolver.resolveMx("d.example")).kind, "mx");
    assert.ok(performance.now() - started < 200);
  } finally {
    await dns.close();
  }
});

const MX_FALLBACK = {
  kind: "mx" as const,
  records: [{ preference: 10, exchange: "mx.example.net" }],
};

/**
 * Asks a fake server that is silent for `silent` names only, step by step (after an optional
 * pause), and checks each outcome's kind: the server must keep answering the other names.
 */
async function assertServerStaysUp(
  silent: string[],
  steps: [name: string, kind: "mx" | "tempfail", pauseMs?: number][],
): Promise<void> {
  const dns = await startFakeDns({
    zone: Object.fromEntries(silent.map((name) => [name, { kind: "silence" as const }])),
    fallback: MX_FALLBACK,
  });
  try {
    await using resolver = createResolver({ servers: [dns.server], timeoutMs: 300 });
    for (const [name, kind, pauseMs] of steps) {
      if (pauseMs !== undefined) await new Promise((resolve) => setTimeout(resolve, pauseMs));
      assert.equal((await resolver.resolveMx(name)).kind, kind, name);
    }
  } finally {
    await dns.close();
  }
}

Deno.test("silent names do not take a server down while it answers others", async () => {
  // Two silent names time out, but the server answered within 2 s: it stays up.
  await assertServerStaysUp(["silent.example", "silent2.example"], [
    ["ok.example", "mx"],
    ["silent.example", "tempfail"],
    ["silent.example", "tempfail"],
    ["silent2.example", "tempfail"],
    ["other.example", "mx"],
  ]);
});

Deno.test("one dead domain alone never takes a server down, even before any reply", async () => {
  await assertServerStaysUp(["dead.example"], [
    ["dead.example", "tempfail"],
    ["dead.example", "tempfail", 50],
    ["example.com", "mx"],
  ]);
});
