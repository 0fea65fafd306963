import assert from "node:assert/strict";
import {
  type CacheAnswer,
  cacheLifetime,
  type CacheOptions,
  DEFAULT_CACHE_OPTIONS,
  MxCache,
} from "../../lib/routing/cache.ts";
import type { MxAnswer, MxOutcome, NxDomainAnswer } from "../../lib/dns/types.ts";
import { FakeClock, FakeResolver } from "../support/fake_resolver.ts";

const mx = (ttl: number, ...hosts: string[]): MxAnswer => ({ kind: "mx", hosts, ttl });
const servfail: MxOutcome = { kind: "tempfail", reason: "SERVFAIL from test", cause: "servfail" };

function setup(options: Partial<CacheOptions> = {}) {
  const resolver = new FakeResolver();
  const clock = new FakeClock();
  const cache = new MxCache({
    resolver,
    options: { ...DEFAULT_CACHE_OPTIONS, ...options },
    now: clock.read,
  });
  return { resolver, clock, cache };
}

async function look(cache: MxCache, domain: string): Promise<CacheAnswer<unknown>> {
  return await cache.lookup(domain);
}

Deno.test("positive TTL is the smallest MX TTL, clamped to [min-ttl, cache-ttl]", () => {
  const options = { ...DEFAULT_CACHE_OPTIONS, minTtl: 30, cacheTtl: 3600 };
  assert.equal(cacheLifetime(mx(300, "a"), options), 300);
  assert.equal(cacheLifetime(mx(29, "a"), options), 30);
  assert.equal(cacheLifetime(mx(30, "a"), options), 30);
  assert.equal(cacheLifetime(mx(3600, "a"), options), 3600);
  assert.equal(cacheLifetime(mx(3601, "a"), options), 3600);
  assert.equal(cacheLifetime(mx(0, "a"), options), 30);
  assert.equal(cacheLifetime({ kind: "nullmx", ttl: 86400 }, options), 3600);
});

Deno.test("negative TTL is min(SOA TTL, MINIMUM) clamped to [min-ttl, negative-ttl]", () => {
  const options = { ...DEFAULT_CACHE_OPTIONS, minTtl: 30, negativeTtl: 300, cacheTtl: 3600 };
  assert.equal(cacheLifetime({ kind: "nxdomain", negativeTtl: 120 }, options), 120);
  assert.equal(cacheLifetime({ kind: "nodata", negativeTtl: 10 }, options), 30);
  assert.equal(cacheLifetime({ kind: "nxdomain", negativeTtl: 301 }, options), 300);
  assert.equal(cacheLifetime({ kind: "nxdomain", negativeTtl: null }, options), 30);
  // --cache-ttl caps everything, negative answers too.
  assert.equal(
    cacheLifetime({ kind: "nodata", negativeTtl: 200 }, { ...options, cacheTtl: 60 }),
    60,
  );
});

Deno.test("an entry lives exactly its TTL, then DNS is asked again", async () => {
  const { resolver, clock, cache } = setup({ staleTtl: 0 });
  resolver.answer("a.example", mx(100, "mx.a.example"));
  assert.equal((await look(cache, "a.example")).source, "dns");
  clock.advance(89);
  const hit = cache.lookup("a.example");
  assert.ok(!(hit instanceof Promise), "a fresh hit answers synchronously");
  assert.equal(hit.source, "cache");
  clock.advance(11); // 100 s: expired
  assert.equal((await look(cache, "a.example")).source, "dns");
  assert.equal(resolver.queries.get("a.example"), 2);
});

Deno.test("--cache-ttl 0 disables caching: every lookup asks DNS", async () => {
  const { resolver, cache } = setup({ cacheTtl: 0 });
  resolver.answer("a.example", mx(100, "mx.a.example"));
  await look(cache, "a.example");
  await look(cache, "a.example");
  assert.equal(resolver.queries.get("a.example"), 2);
  assert.equal(cache.size, 0);
});

Deno.test("a negative entry lives for its negative TTL (the resolver's SOA minimum)", async () => {
  const { resolver, clock, cache } = setup({ staleTtl: 0 });
  resolver.answer("gone.example", { kind: "nxdomain", negativeTtl: 45 });
  await look(cache, "gone.example");
  clock.advance(40); // before the prefetch window (last 10 %)
  assert.equal((await look(cache, "gone.example")).source, "cache");
  clock.advance(5);
  assert.equal((await look(cache, "gone.example")).source, "dns");
});

Deno.test("100 concurrent lookups of one slow domain send exactly one query", async () => {
  const { resolver, cache } = setup();
  resolver.answer("slow.example", mx(300, "mx.slow.example"));
  resolver.hold();
  const lookups = Array.from({ length: 100 }, () => cache.lookup("slow.example"));
  resolver.release();
  const answers = await Promise.all(lookups);
  assert.equal(resolver.queries.get("slow.example"), 1);
  assert.equal(cache.counters.coalesced, 99);
  for (const answer of answers) assert.deepEqual(answer.outcome, mx(300, "mx.slow.example"));
});

Deno.test("a failure answers at once for --failure-ttl, then DNS is asked again", async () => {
  const { resolver, clock, cache } = setup({ failureTtl: 10 });
  resolver.answer("broken.example", servfail);
  assert.equal((await look(cache, "broken.example")).outcome.kind, "tempfail");
  clock.advance(9.9);
  const cached = cache.lookup("broken.example");
  assert.ok(!(cached instanceof Promise));
  assert.equal(cached.source, "failure");
  assert.equal(cached.outcome.kind, "tempfail");
  assert.equal(resolver.queries.get("broken.example"), 1);
  clock.advance(0.1);
  await look(cache, "broken.example");
  assert.equal(resolver.queries.get("broken.example"), 2);
});

Deno.test("a SERVFAIL while a good entry is cached does not replace it", async () => {
  const { resolver, clock, cache } = setup({ staleAnswerMs: 5 });
  resolver.answer("a.example", mx(60, "mx.a.example"));
  await look(cache, "a.example");
  resolver.answer("a.example", servfail);
  clock.advance(60); // expired: refresh fails
  const stale = await look(cache, "a.example");
  assert.equal(stale.source, "stale");
  assert.deepEqual(stale.outcome, mx(60, "mx.a.example"));
  assert.equal(cache.size, 1);
  // Within --failure-ttl the stale answer comes at once, without asking DNS again.
  const again = await look(cache, "a.example");
  assert.equal(again.source, "stale");
  assert.equal(resolver.queries.get("a.example"), 2);
});

Deno.test("with DNS dead: fresh answers from memory, expired answers stale in time", async () => {
  const { resolver, clock, cache } = setup({ staleAnswerMs: 50 });
  resolver.answer("a.example", mx(60, "mx.a.example"));
  await look(cache, "a.example");
  // DNS now never answers (until its own timeout, far later).
  resolver.answer("a.example", () => new Promise<MxOutcome>(() => {}));
  clock.advance(30);
  assert.equal((await look(cache, "a.example")).source, "cache");
  clock.advance(40);
  const started = performance.now();
  const stale = await look(cache, "a.example");
  const elapsed = performance.now() - started;
  assert.equal(stale.source, "stale");
  assert.ok(elapsed >= 45 && elapsed < 1000, `stale answer after ${elapsed} ms`);
});

Deno.test("a refresh that answers in time replaces the expired entry", async () => {
  const { resolver, clock, cache } = setup({ staleAnswerMs: 1000 });
  resolver.answer("a.example", mx(60, "old.a.example"));
  await look(cache, "a.example");
  resolver.answer("a.example", mx(60, "new.a.example"));
  clock.advance(61);
  const answer = await look(cache, "a.example");
  assert.equal(answer.source, "dns");
  assert.deepEqual(answer.outcome, mx(60, "new.a.example"));
});

Deno.test("after --stale-ttl the stale entry is gone and a dead DNS gives a failure", async () => {
  const { resolver, clock, cache } = setup({ staleTtl: 100, staleAnswerMs: 5 });
  resolver.answer("a.example", mx(60, "mx.a.example"));
  await look(cache, "a.example");
  resolver.answer("a.example", servfail);
  clock.advance(60 + 99);
  assert.equal((await look(cache, "a.example")).source, "stale");
  clock.advance(11); // past stale-ttl and past failure-ttl
  const answer = await look(cache, "a.example");
  assert.equal(answer.outcome.kind, "tempfail");
  assert.equal(answer.entry, null);
});

Deno.test("prefetch refreshes a hot entry in the last 10 % of its TTL", async () => {
  const { resolver, clock, cache } = setup();
  resolver.answer("hot.example", mx(100, "mx.hot.example"));
  await look(cache, "hot.example");
  clock.advance(89);
  await look(cache, "hot.example");
  assert.equal(resolver.queries.get("hot.example"), 1, "no prefetch before 90 % of the TTL");
  clock.advance(1);
  const hit = await look(cache, "hot.example");
  assert.equal(hit.source, "cache");
  assert.equal(resolver.queries.get("hot.example"), 2, "prefetch sent");
  assert.equal(cache.counters.prefetches, 1);
  await new Promise((resolve) => setTimeout(resolve, 0));
  clock.advance(15); // past the original expiry; the prefetched entry is fresh
  assert.equal((await look(cache, "hot.example")).source, "cache");
  assert.equal(resolver.queries.get("hot.example"), 2);
});

Deno.test("fresh answers only a fresh entry, counts it, and prefetches like lookup", async () => {
  const { resolver, clock, cache } = setup();
  resolver.answer("a.example", mx(100, "mx.a.example"));
  resolver.answer("broken.example", servfail);
  assert.equal(cache.fresh("a.example"), null, "not cached: no DNS query either");
  assert.equal(resolver.queries.get("a.example"), undefined);
  const first = await look(cache, "a.example");
  const hits = cache.counters.hits;
  assert.equal(cache.fresh("a.example"), first.entry, "the cached entry itself");
  assert.equal(cache.counters.hits, hits + 1);
  clock.advance(90); // the last 10 %: a hit prefetches
  assert.equal(cache.fresh("a.example"), first.entry);
  assert.equal(resolver.queries.get("a.example"), 2, "prefetch sent");
  await new Promise((resolve) => setTimeout(resolve, 0));
  clock.advance(200); // expired (the prefetched entry too): stale is for lookup to answer
  assert.equal(cache.fresh("a.example"), null);
  await look(cache, "broken.example");
  assert.equal(cache.fresh("broken.example"), null, "a remembered failure is not an entry");
});

Deno.test("the LRU bound holds under 10x --cache-size distinct domains", async () => {
  const { resolver, cache } = setup({ cacheSize: 100 });
  for (let i = 0; i < 1000; i++) resolver.answer(`d${i}.example`, mx(300, `mx.d${i}.example`));
  await look(cache, "d0.example");
  for (let i = 1; i < 1000; i++) {
    await look(cache, `d${i}.example`);
    await look(cache, "d0.example"); // kept hot: never evicted
    assert.ok(cache.size <= 100);
  }
  assert.equal(cache.size, 100);
  assert.equal(resolver.queries.get("d0.example"), 1);
  await look(cache, "d1.example"); // long evicted
  assert.equal(resolver.queries.get("d1.example"), 2);
});

Deno.test("a throwing resolver becomes a temporary failure, never a crash", async () => {
  const { resolver, cache } = setup();
  resolver.answer("x.example", () => {
    throw new Error("boom");
  });
  const answer = await look(cache, "x.example");
  assert.equal(answer.outcome.kind, "tempfail");
});

Deno.test("answers that say nothing about the domain (overload, server skipped) are not cached", async () => {
  const { resolver, cache } = setup();
  let calls = 0;
  resolver.answer("busy.example", () => {
    calls++;
    return calls === 1
      ? { kind: "tempfail", reason: "too many in flight", cause: "overload" }
      : calls === 2
      ? { kind: "tempfail", reason: "DNS not answering", cause: "down" }
      : mx(60, "mx.busy.example");
  });
  assert.equal((await look(cache, "busy.example")).outcome.kind, "tempfail");
  assert.equal((await look(cache, "busy.example")).outcome.kind, "tempfail");
  assert.equal((await look(cache, "busy.example")).outcome.kind, "mx");
  assert.equal(calls, 3);
});

Deno.test("our host out of file descriptors is not the domain's failure: not cached", async () => {
  const { resolver, cache } = setup();
  let calls = 0;
  resolver.answer(
    "fine.example",
    () =>
      ++calls === 1
        ? { kind: "tempfail", reason: "bind EMFILE 0.0.0.0", cause: "local" }
        : mx(60, "mx.fine.example"),
  );
  const first = (await look(cache, "fine.example")).outcome;
  assert.equal(first.kind === "tempfail" && first.cause, "local");
  assert.equal((await look(cache, "fine.example")).outcome.kind, "mx", "asked again at once");
  assert.equal(calls, 2);
  assert.equal(cache.counters.failureHits, 0);
});

const nx = (negativeTtl: number): NxDomainAnswer => ({ kind: "nxdomain", negativeTtl });

Deno.test("export: the usable entries, most recently used first, never failures", async () => {
  const { resolver, clock, cache } = setup({ staleTtl: 100, failureTtl: 10 });
  resolver.answer("a.example", mx(60, "mx.a.example"));
  resolver.answer("b.example", mx(600, "mx.b.example"));
  resolver.answer("broken.example", servfail);
  await look(cache, "a.example");
  await look(cache, "b.example");
  await look(cache, "gone.example"); // nxdomain, 60 s
  await look(cache, "broken.example");
  cache.lookup("a.example"); // now the most recently used
  const start = clock.now;
  assert.deepEqual(cache.exportEntries(), [
    { domain: "a.example", outcome: mx(60, "mx.a.example"), freshUntil: start + 60_000 },
    { domain: "gone.example", outcome: nx(60), freshUntil: start + 60_000 },
    { domain: "b.example", outcome: mx(600, "mx.b.example"), freshUntil: start + 600_000 },
  ]);
  // Expired within --stale-ttl: still worth keeping; past it: not.
  clock.advance(60 + 99);
  assert.deepEqual(cache.exportEntries().map((e) => e.domain), [
    "a.example",
    "gone.example",
    "b.example",
  ]);
  clock.advance(1);
  assert.deepEqual(cache.exportEntries().map((e) => e.domain), ["b.example"]);
  assert.deepEqual(setup({ cacheTtl: 0 }).cache.exportEntries(), []);
});

Deno.test("import: a fresh entry answers from the cache without DNS until it expires", async () => {
  const { resolver, clock, cache } = setup({ staleTtl: 0 });
  resolver.answer("a.example", mx(300, "mx.new.example"));
  const counts = cache.importEntries([
    { domain: "a.example", outcome: mx(300, "mx.a.example"), freshUntil: clock.now + 100_000 },
  ]);
  assert.deepEqual(counts, { fresh: 1, stale: 0, dropped: 0 });
  const hit = cache.lookup("a.example");
  assert.ok(!(hit instanceof Promise), "a fresh hit answers synchronously");
  assert.equal(hit.source, "cache");
  assert.deepEqual(hit.outcome, mx(300, "mx.a.example"));
  assert.equal(hit.entry?.memo, undefined, "no decision comes with it");
  assert.equal(cache.fresh("a.example")?.freshUntil, clock.now + 100_000);
  assert.equal(resolver.total, 0);
  clock.advance(100);
  assert.equal((await look(cache, "a.example")).source, "dns");
  assert.equal(resolver.total, 1);
});

Deno.test("import: an expired entry within --stale-ttl is stale: refreshed on use, answered when DNS fails", async () => {
  const { resolver, clock, cache } = setup({ staleTtl: 3600, staleAnswerMs: 5 });
  const saved = { domain: "a.example", outcome: mx(60, "mx.a.example") };
  const counts = cache.importEntries([{ ...saved, freshUntil: clock.now - 1000 }]);
  assert.deepEqual(counts, { fresh: 0, stale: 1, dropped: 0 });
  assert.equal(cache.fresh("a.example"), null, "not fresh: the hit path does not take it");
  resolver.answer("a.example", servfail);
  const stale = await look(cache, "a.example");
  assert.equal(stale.source, "stale");
  assert.deepEqual(stale.outcome, mx(60, "mx.a.example"));
  assert.equal(resolver.queries.get("a.example"), 1, "DNS was asked first");
  resolver.answer("a.example", mx(60, "mx.new.example"));
  clock.advance(10); // past --failure-ttl
  const refreshed = await look(cache, "a.example");
  assert.equal(refreshed.source, "dns");
  assert.deepEqual(refreshed.outcome, mx(60, "mx.new.example"));
});

Deno.test("import: an entry expired for longer than --stale-ttl is dropped", async () => {
  const { resolver, clock, cache } = setup({ staleTtl: 100 });
  const counts = cache.importEntries([
    { domain: "old.example", outcome: mx(60, "mx.old.example"), freshUntil: clock.now - 100_000 },
    { domain: "ok.example", outcome: mx(60, "mx.ok.example"), freshUntil: clock.now - 99_999 },
  ]);
  assert.deepEqual(counts, { fresh: 0, stale: 1, dropped: 1 });
  assert.equal(cache.size, 1);
  resolver.answer("old.example", servfail);
  assert.equal((await look(cache, "old.example")).outcome.kind, "tempfail");
});

Deno.test("import: no entry lives longer than today's flags give its answer", () => {
  const { clock, cache } = setup({ cacheTtl: 60, minTtl: 30 });
  cache.importEntries([
    // Saved under --cache-ttl 3600, or by a host whose clock was ahead.
    { domain: "a.example", outcome: mx(3600, "mx.a.example"), freshUntil: clock.now + 3_600_000 },
    { domain: "b.example", outcome: nx(45), freshUntil: clock.now + 3_600_000 },
    { domain: "c.example", outcome: mx(300, "mx.c.example"), freshUntil: clock.now + 20_000 },
  ]);
  assert.equal(cache.fresh("a.example")?.freshUntil, clock.now + 60_000);
  assert.equal(cache.fresh("a.example")?.ttlSeconds, 60);
  assert.equal(cache.fresh("b.example")?.freshUntil, clock.now + 45_000);
  assert.equal(cache.fresh("c.example")?.freshUntil, clock.now + 20_000);
});

Deno.test("import: at most --cache-size entries, the first given, in their LRU order", async () => {
  const { resolver, clock, cache } = setup({ cacheSize: 3 });
  const saved = ["a", "b", "c", "d", "e"].map((name) => ({
    domain: `${name}.example`,
    outcome: mx(300, `mx.${name}.example`),
    freshUntil: clock.now + 300_000,
  }));
  assert.deepEqual(cache.importEntries(saved), { fresh: 3, stale: 0, dropped: 2 });
  assert.deepEqual(cache.exportEntries().map((e) => e.domain), [
    "a.example",
    "b.example",
    "c.example",
  ]);
  // A new domain evicts the least recently used of them: the last given.
  resolver.answer("new.example", mx(300, "mx.new.example"));
  await look(cache, "new.example");
  assert.deepEqual(cache.exportEntries().map((e) => e.domain), [
    "new.example",
    "a.example",
    "b.example",
  ]);
});

Deno.test("import: a domain cached already keeps its entry; with caching off nothing is taken", async () => {
  const { resolver, clock, cache } = setup();
  resolver.answer("a.example", mx(300, "mx.live.example"));
  await look(cache, "a.example");
  const counts = cache.importEntries([
    { domain: "a.example", outcome: mx(300, "mx.saved.example"), freshUntil: clock.now + 1000 },
  ]);
  assert.deepEqual(counts, { fresh: 0, stale: 0, dropped: 1 });
  assert.deepEqual(cache.fresh("a.example")?.outcome, mx(300, "mx.live.example"));

  const off = setup({ cacheTtl: 0 }).cache;
  const saved = { domain: "a.example", outcome: mx(300, "mx.a.example"), freshUntil: clock.now };
  assert.deepEqual(off.importEntries([saved]), { fresh: 0, stale: 0, dropped: 1 });
  assert.equal(off.size, 0);
});

Deno.test("export then import: a second cache answers what the first knew", async () => {
  const first = setup();
  first.resolver.answer("a.example", mx(300, "mx.a.example"));
  first.resolver.answer("b.example", { kind: "nullmx", ttl: 300 });
  await look(first.cache, "a.example");
  await look(first.cache, "b.example");
  const second = setup();
  second.clock.now = first.clock.now + 10_000;
  second.cache.importEntries(first.cache.exportEntries());
  for (const domain of ["a.example", "b.example"]) {
    const hit = second.cache.lookup(domain);
    assert.ok(!(hit instanceof Promise));
    assert.equal(hit.source, "cache");
    assert.deepEqual(hit.outcome, first.cache.fresh(domain)?.outcome);
  }
  assert.equal(second.resolver.total, 0);
});

Deno.test("onReplace is told of each cached entry a new answer replaces, after storing it", async () => {
  const { resolver, clock, cache } = setup({ staleAnswerMs: 1000 });
  const replaced: [string, MxOutcome, MxOutcome, boolean][] = [];
  cache.onReplace = (domain, previous, next) =>
    replaced.push([domain, previous.outcome, next.outcome, cache.fresh(domain) === next]);
  resolver.answer("a.example", mx(100, "old.a.example"));
  await look(cache, "a.example"); // a first answer replaces nothing
  assert.deepEqual(replaced, []);
  resolver.answer("a.example", mx(100, "new.a.example"));
  clock.advance(95); // a prefetch
  await look(cache, "a.example");
  await new Promise((resolve) => setTimeout(resolve, 0));
  resolver.answer("a.example", mx(100, "newer.a.example"));
  clock.advance(101); // a refresh of the expired entry
  await look(cache, "a.example");
  assert.deepEqual(replaced, [
    ["a.example", mx(100, "old.a.example"), mx(100, "new.a.example"), true],
    ["a.example", mx(100, "new.a.example"), mx(100, "newer.a.example"), true],
  ]);
});

Deno.test("onReplace is not told of failures, nor of answers with caching off", async () => {
  const { resolver, clock, cache } = setup({ staleAnswerMs: 5, staleTtl: 100 });
  let told = 0;
  cache.onReplace = () => told++;
  resolver.answer("a.example", mx(60, "mx.a.example"));
  await look(cache, "a.example");
  resolver.answer("a.example", servfail);
  clock.advance(61);
  assert.equal((await look(cache, "a.example")).source, "stale");
  resolver.answer("a.example", mx(60, "mx.a.example"));
  clock.advance(200); // past --stale-ttl: dropped before DNS is asked, so nothing is replaced
  assert.equal((await look(cache, "a.example")).source, "dns");
  const off = setup({ cacheTtl: 0 });
  off.cache.onReplace = () => told++;
  off.resolver.answer("a.example", mx(60, "mx.a.example"));
  await look(off.cache, "a.example");
  await look(off.cache, "a.example");
  assert.equal(told, 0);
});
