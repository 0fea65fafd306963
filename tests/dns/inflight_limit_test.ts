import assert from "node:assert/strict";
import { createResolver } from "../../lib/dns/resolver.ts";
import { InflightLimit } from "../../lib/dns/inflight_limit.ts";
import { startFakeDns } from "../support/fake_dns.ts";

Deno.test("the in-flight limit holds at most max, serves waiters in order, and times waiters out", async () => {
  const inflight = new InflightLimit(2);
  assert.equal(inflight.acquire(100), true);
  assert.equal(inflight.acquire(100), true);
  const order: number[] = [];
  const first = (async () => {
    if (await inflight.acquire(1000)) order.push(1);
  })();
  const second = (async () => {
    if (await inflight.acquire(1000)) order.push(2);
  })();
  const late = inflight.acquire(30);
  assert.equal(inflight.waiting, 3);
  assert.equal(await late, false, "a waiter past its budget gives up");
  inflight.release();
  inflight.release();
  await Promise.all([first, second]);
  assert.deepEqual(order, [1, 2]);
  assert.equal(inflight.active, 2);
  inflight.release();
  inflight.release();
  assert.equal(inflight.active, 0);
});

Deno.test("--max-dns-inflight: at most N lookups talk to DNS; the rest wait within the budget", async () => {
  const dns = await startFakeDns({
    fallback: {
      kind: "delay",
      ms: 100,
      then: { kind: "mx", records: [{ preference: 10, exchange: "mx.example.net" }] },
    },
  });
  try {
    await using resolver = createResolver({
      servers: [dns.server],
      timeoutMs: 2000,
      inflight: new InflightLimit(2),
    });
    const started = performance.now();
    const outcomes = await Promise.all(
      Array.from({ length: 6 }, (_, i) => resolver.resolveMx(`d${i}.example`)),
    );
    const elapsed = performance.now() - started;
    for (const outcome of outcomes) assert.equal(outcome.kind, "mx");
    // Six 100 ms lookups, two at a time: three rounds.
    assert.ok(elapsed >= 290 && elapsed < 1500, `took ${elapsed} ms`);
    await using tight = createResolver({
      servers: [dns.server],
      timeoutMs: 150,
      inflight: new InflightLimit(1),
    });
    const [a, b] = await Promise.all([tight.resolveMx("x.example"), tight.resolveMx("y.example")]);
    assert.equal(a.kind, "mx");
    assert.equal(b.kind, "tempfail");
    if (b.kind === "tempfail") assert.equal(b.cause, "overload");
  } finally {
    await dns.close();
  }
});
