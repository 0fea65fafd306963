import assert from "node:assert/strict";
import { createResolver } from "../lib/dns.ts";
import { Limiter } from "../lib/limiter.ts";
import { startFakeDns } from "./support/fake_dns.ts";

Deno.test("the limiter holds at most max, serves waiters in order, and times waiters out", async () => {
  const limiter = new Limiter(2);
  assert.equal(limiter.acquire(100), true);
  assert.equal(limiter.acquire(100), true);
  const order: number[] = [];
  const first = (async () => {
    if (await limiter.acquire(1000)) order.push(1);
  })();
  const second = (async () => {
    if (await limiter.acquire(1000)) order.push(2);
  })();
  const late = limiter.acquire(30);
  assert.equal(limiter.waiting, 3);
  assert.equal(await late, false, "a waiter past its budget gives up");
  limiter.release();
  limiter.release();
  await Promise.all([first, second]);
  assert.deepEqual(order, [1, 2]);
  assert.equal(limiter.active, 2);
  limiter.release();
  limiter.release();
  assert.equal(limiter.active, 0);
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
      maxInflight: 2,
    });
    const started = performance.now();
    const outcomes = await Promise.all(
      Array.from({ length: 6 }, (_, i) => resolver.resolveMx(`d${i}.example`)),
    );
    const elapsed = performance.now() - started;
    for (const outcome of outcomes) assert.equal(outcome.kind, "mx");
    // Six 100 ms lookups, two at a time: three rounds.
    assert.ok(elapsed >= 290 && elapsed < 1500, `took ${elapsed} ms`);
    await using tight = createResolver({ servers: [dns.server], timeoutMs: 150, maxInflight: 1 });
    const [a, b] = await Promise.all([tight.resolveMx("x.example"), tight.resolveMx("y.example")]);
    assert.equal(a.kind, "mx");
    assert.equal(b.kind, "tempfail");
    if (b.kind === "tempfail") assert.equal(b.cause, "overload");
  } finally {
    await dns.close();
  }
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

Deno.test("one silent domain does not take a working server down", async () => {
  const dns = await startFakeDns({
    zone: { "silent.example": { kind: "silence" } },
    fallback: { kind: "mx", records: [{ preference: 10, exchange: "mx.example.net" }] },
  });
  try {
    await using resolver = createResolver({ servers: [dns.server], timeoutMs: 300 });
    assert.equal((await resolver.resolveMx("ok.example")).kind, "mx");
    assert.equal((await resolver.resolveMx("silent.example")).kind, "tempfail");
    assert.equal((await resolver.resolveMx("silent.example")).kind, "tempfail");
    assert.equal((await resolver.resolveMx("other.example")).kind, "mx");
  } finally {
    await dns.close();
  }
});

Deno.test("one dead domain alone never takes a server down, even before any reply", async () => {
  const dns = await startFakeDns({
    zone: { "dead.example": { kind: "silence" } },
    fallback: { kind: "mx", records: [{ preference: 10, exchange: "mx.example.net" }] },
  });
  try {
    await using resolver = createResolver({ servers: [dns.server], timeoutMs: 300 });
    assert.equal((await resolver.resolveMx("dead.example")).kind, "tempfail");
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal((await resolver.resolveMx("dead.example")).kind, "tempfail");
    assert.equal((await resolver.resolveMx("example.com")).kind, "mx");
  } finally {
    await dns.close();
  }
});
