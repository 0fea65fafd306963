import assert from "node:assert/strict";
import { withLog } from "../support/log_capture.ts";
import { createResolver } from "../../lib/dns/resolver.ts";
import { PROBE_INTERVAL_MS, type ProbeResult, ServerHealth } from "../../lib/dns/health.ts";
import type { DnsServer, MxOutcome } from "../../lib/dns/types.ts";
import { type FakeDnsBehaviour, startFakeDns } from "../support/fake_dns.ts";

const SERVER: DnsServer = { host: "192.0.2.53", port: 53 };
const TIMEOUT: MxOutcome = { kind: "tempfail", reason: "no answer", cause: "timeout" };
const ANSWER: MxOutcome = { kind: "mx", hosts: ["mx.example.net"], ttl: 300 };

/**
 * A ServerHealth on a manual clock whose probes the test answers: each probe waits in `probes`
 * until the test settles it.
 */
function healthOnFakeClock() {
  const clock = { now: 0 };
  const probes: { recentName: string | null; settle(result: ProbeResult): Promise<void> }[] = [];
  const health = new ServerHealth({
    probeTimeoutMs: 1000,
    now: () => clock.now,
    probe: (_server, recentName) =>
      new Promise<ProbeResult>((resolve) => {
        probes.push({
          recentName,
          async settle(result) {
            resolve(result);
            // Let the health's own continuation run.
            for (let i = 0; i < 3; i++) await Promise.resolve();
          },
        });
      }),
  });
  /** A lookup attempt sent at `clock.now` that ended (after `ms`) as `outcome`. */
  const attempt = (name: string, outcome: MxOutcome, ms = 500) => {
    const sentAt = ++clock.now;
    clock.now += ms;
    health.record(SERVER, { name, outcome, sentAt });
  };
  return { clock, probes, health, attempt };
}

Deno.test("dead names in a row never take a live server down: each timeout only probes it", async () => {
  const { clock, probes, health, attempt } = healthOnFakeClock();
  attempt("good.example", ANSWER, 5);
  for (const count of [2, 50]) {
    for (let i = 0; i < count; i++) {
      attempt(`dead${count}-${i}.example`, TIMEOUT);
      // The server answers the probe (from its cache) at once.
      clock.now += 5;
      await probes.at(-1)?.settle("reply");
      assert.equal(health.isDown(SERVER), false, `after ${i + 1} of ${count} dead names`);
      assert.equal(health.mayAsk(SERVER), true);
    }
  }
  assert.equal(probes.length, 52, "one probe per timeout");
  assert.ok(probes.every((probe) => probe.recentName === "good.example"));
});

Deno.test("a silent server is down once a probe gets no reply, skipped, and up on the first reply", async () => {
  const { clock, probes, health, attempt } = healthOnFakeClock();
  await withLog(async (lines) => {
    attempt("a.example", TIMEOUT);
    assert.equal(probes.length, 1);
    assert.equal(health.isDown(SERVER), false, "not before the probe has failed");
    attempt("b.example", TIMEOUT);
    assert.equal(probes.length, 1, "one probe at a time");
    clock.now += 500;
    await probes[0].settle("silence");
    assert.equal(health.isDown(SERVER), true);
    assert.equal(health.mayAsk(SERVER), false, "skipped");
    clock.now += PROBE_INTERVAL_MS - 1;
    assert.equal(health.mayAsk(SERVER), false, "until a second has passed");
    clock.now += 1;
    const probing = health.mayAsk(SERVER);
    assert.ok(probing instanceof Promise, "one lookup a second waits for a new probe");
    assert.equal(health.mayAsk(SERVER), false, "the others do not wait");
    clock.now += 300;
    await probes[1].settle("silence");
    assert.equal(await probing, false);
    clock.now += PROBE_INTERVAL_MS;
    const again = health.mayAsk(SERVER);
    assert.ok(again instanceof Promise);
    clock.now += 10;
    await probes[2].settle("reply");
    assert.equal(await again, true, "the first reply brings it back");
    assert.equal(health.isDown(SERVER), false);
    assert.equal(health.mayAsk(SERVER), true);
    assert.deepEqual(lines, [
      "warning DNS server 192.0.2.53:53 is down: no reply within 1000 ms to a liveness probe (. NS) sent after a lookup timed out; lookups skip it (400 at once when no other server is up) and it is probed once a second",
      "info DNS server 192.0.2.53:53 answers again, after 2.3 s down",
    ]);
  });
  assert.match(
    health.downReason([SERVER]),
    /^DNS not answering: 192\.0\.2\.53:53 answered no liveness probe \(\. NS\) within 1000 ms/,
  );
});

Deno.test("a probe without reply does not take down a server that answered a lookup meanwhile", async () => {
  const { probes, health, attempt } = healthOnFakeClock();
  attempt("dead.example", TIMEOUT);
  attempt("good.example", { kind: "nxdomain", negativeTtl: 60 }, 5);
  await probes[0].settle("silence");
  assert.equal(health.isDown(SERVER), false);
});

Deno.test("no probe for a timeout when the server replied after the query was sent", () => {
  const { clock, probes, health } = healthOnFakeClock();
  const sentAt = clock.now;
  clock.now += 100;
  health.record(SERVER, { name: "fast.example", outcome: ANSWER, sentAt: clock.now - 1 });
  clock.now += 400;
  health.record(SERVER, { name: "slow.example", outcome: TIMEOUT, sentAt });
  assert.equal(probes.length, 0, "the server is evidently alive");
});

Deno.test("failures that are not the server's silence neither probe nor take it down", async () => {
  const { probes, health, attempt } = healthOnFakeClock();
  for (const cause of ["network", "local", "overload", "down"] as const) {
    attempt(`${cause}.example`, { kind: "tempfail", reason: cause, cause });
  }
  assert.equal(probes.length, 0);
  attempt("dead.example", TIMEOUT);
  await probes[0].settle("unknown"); // our own host could not send it
  assert.equal(health.isDown(SERVER), false);
  // SERVFAIL is a reply: the server is alive, whatever the name.
  attempt("dead2.example", TIMEOUT);
  attempt("lame.example", { kind: "tempfail", reason: "SERVFAIL", cause: "servfail" });
  await probes[1].settle("silence");
  assert.equal(health.isDown(SERVER), false);
});

const MX_FALLBACK: FakeDnsBehaviour = {
  kind: "mx",
  records: [{ preference: 10, exchange: "mx.example.net" }],
};

Deno.test("a resolver behind which many dead names time out in a row still answers the next good name", async () => {
  // Silent for the dead names only, as a recursive resolver is for a lame delegation; eight of
  // them in a row are 2.4 s of timeouts.
  const dead = Array.from({ length: 8 }, (_, i) => `dead${i}.lame.example`);
  const dns = await startFakeDns({
    zone: Object.fromEntries(dead.map((name) => [name, { kind: "silence" as const }])),
    fallback: MX_FALLBACK,
  });
  try {
    await using resolver = createResolver({ servers: [dns.server], timeoutMs: 300 });
    for (const name of dead) {
      const outcome = await resolver.resolveMx(name);
      assert.equal(outcome.kind === "tempfail" && outcome.cause, "timeout", name);
    }
    for (const name of ["good1.example", "good2.example"]) {
      assert.equal((await resolver.resolveMx(name)).kind, "mx", name);
    }
    assert.ok(dns.queriesFor(".") >= 1, "the timeouts sent liveness probes (. NS)");
  } finally {
    await dns.close();
  }
});

Deno.test("a DNS server that answers nothing is skipped once a probe failed, and found back by the next probe", async () => {
  const dns = await startFakeDns({ fallback: { kind: "silence" } });
  try {
    await withLog(async (lines) => {
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
      assert.match(lines.join("\n"), /^warning DNS server 127\.0\.0\.1:\d+ is down: /m);
      dns.setDefault({ kind: "mx", records: [{ preference: 10, exchange: "mx.example.net" }] });
      await new Promise((resolve) => setTimeout(resolve, PROBE_INTERVAL_MS + 100));
      assert.equal((await resolver.resolveMx("c.example")).kind, "mx", "the probe finds it back");
      started = performance.now();
      assert.equal((await resolver.resolveMx("d.example")).kind, "mx");
      assert.ok(performance.now() - started < 200);
      assert.match(lines.join("\n"), /^info DNS server 127\.0\.0\.1:\d+ answers again, after /m);
    });
  } finally {
    await dns.close();
  }
});

Deno.test("with --dns-tcp, a probe does not wait behind lookups holding every connection", async () => {
  const dead = Array.from({ length: 40 }, (_, i) => `dead${i}.lame.example`);
  const dns = await startFakeDns({
    zone: Object.fromEntries(dead.map((name) => [name, { kind: "silence" as const }])),
    fallback: MX_FALLBACK,
  });
  try {
    await using resolver = createResolver({
      servers: [dns.server],
      timeoutMs: 1100,
      transport: "tcp",
    });
    assert.equal((await resolver.resolveMx("good0.example")).kind, "mx");
    // Two waves of more dead names at once than the pool has connections: 2.2 s of timeouts.
    for (const wave of [dead.slice(0, 20), dead.slice(20)]) {
      const outcomes = await Promise.all(wave.map((name) => resolver.resolveMx(name)));
      assert.ok(outcomes.every((outcome) => outcome.kind === "tempfail"));
    }
    assert.equal((await resolver.resolveMx("good1.example")).kind, "mx");
  } finally {
    await dns.close();
  }
});

Deno.test("status: down and since when, and how long since the last reply, on the health's clock", async () => {
  const { clock, probes, health, attempt } = healthOnFakeClock();
  assert.deepEqual(health.status([SERVER]), [
    { server: "192.0.2.53:53", down: false, downForMs: null, lastReplyAgoMs: null },
  ], "never asked: up, never replied");
  attempt("good.example", ANSWER, 5); // replied at 6
  clock.now = 1006;
  assert.deepEqual(health.status([SERVER])[0], {
    server: "192.0.2.53:53",
    down: false,
    downForMs: null,
    lastReplyAgoMs: 1000,
  });
  attempt("dead.example", TIMEOUT); // sent at 1007
  clock.now = 2500;
  await probes[0].settle("silence"); // down at 2500
  clock.now = 62_500;
  assert.deepEqual(health.status([SERVER])[0], {
    server: "192.0.2.53:53",
    down: true,
    downForMs: 60_000,
    lastReplyAgoMs: 62_494,
  });
});

Deno.test("probeAll: a silent server is down at once and quietly, a replying one up; results in order", async () => {
  const clock = { now: 0 };
  const other: DnsServer = { host: "192.0.2.54", port: 53 };
  const asked: string[] = [];
  const health = new ServerHealth({
    probeTimeoutMs: 1000,
    now: () => clock.now,
    probe: (server, recentName) => {
      asked.push(`${server.host} ${recentName}`);
      return Promise.resolve(server === SERVER ? "silence" : "reply");
    },
  });
  await withLog(async (lines) => {
    assert.deepEqual(await health.probeAll([SERVER, other]), ["silence", "reply"]);
    assert.deepEqual(lines, [], "the caller says what a silent server means");
  });
  assert.deepEqual(asked, ["192.0.2.53 null", "192.0.2.54 null"]);
  assert.equal(health.isDown(SERVER), true);
  assert.equal(health.isDown(other), false);
  assert.equal(health.mayAsk(SERVER), false, "lookups skip it until the next probe is due");
});

Deno.test("probeServers: the live server replies, the dead one is silent and marked down", async () => {
  const dns = await startFakeDns({ fallback: MX_FALLBACK });
  const dead = await startFakeDns({ fallback: { kind: "silence" } });
  try {
    await using resolver = createResolver({ servers: [dns.server, dead.server], timeoutMs: 400 });
    const results = await resolver.probeServers();
    assert.deepEqual(results, [
      { server: `127.0.0.1:${dns.port}`, host: "127.0.0.1", result: "reply" },
      { server: `127.0.0.1:${dead.port}`, host: "127.0.0.1", result: "silence" },
    ]);
    assert.equal(dns.queriesFor("."), 1, "the probe asks . NS");
    const status = resolver.serverStatus();
    assert.equal(status[0].down, false);
    assert.ok(status[0].lastReplyAgoMs !== null);
    assert.equal(status[1].down, true);
    assert.equal(status[1].lastReplyAgoMs, null);
  } finally {
    await dead.close();
    await dns.close();
  }
});

Deno.test("while a timeout's probe is under way, a retry waits for it instead of a second timeout", async () => {
  const { probes, health, attempt } = healthOnFakeClock();
  attempt("slow.example", TIMEOUT);
  assert.equal(probes.length, 1, "the timeout started a probe");
  // The retry of that lookup (and any other lookup) waits for the probe's verdict...
  const silent = health.mayAsk(SERVER);
  assert.ok(silent instanceof Promise);
  await probes[0].settle("silence");
  // ...and a server that answered no probe is not asked again: the lookup ends at once.
  assert.equal(await silent, false);
  assert.equal(health.isDown(SERVER), true);
  assert.equal(health.mayAsk(SERVER), false);

  const live = healthOnFakeClock();
  live.attempt("dead.example", TIMEOUT);
  const waiting = live.health.mayAsk(SERVER);
  assert.ok(waiting instanceof Promise);
  await live.probes[0].settle("reply");
  assert.equal(await waiting, true, "a live server is asked again after its quick reply");
});
