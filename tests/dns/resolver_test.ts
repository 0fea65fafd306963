import assert from "node:assert/strict";
import { configureSync, resetSync } from "@logtape/logtape";
import { LOG_CATEGORY } from "../../lib/common/log.ts";
import { createResolver, type DnsQueryEvent } from "../../lib/dns/resolver.ts";
import { QUERIES_PER_SOCKET, UdpExchanger } from "../../lib/dns/udp.ts";
import dgram from "node:dgram";
import {
  canonicalAddress,
  nameserversFromResolvConf,
  parseDnsServer,
} from "../../lib/dns/servers.ts";
import { formatHostPort } from "../../lib/common/address.ts";
import { DEFAULT_CACHE_OPTIONS, MxCache } from "../../lib/routing/cache.ts";
import type { DnsServer, MxOutcome } from "../../lib/dns/types.ts";
import { MAX_MX_HOSTS } from "../../lib/dns/answer.ts";
import { type FakeDns, type FakeDnsBehaviour, replyTo, startFakeDns } from "../support/fake_dns.ts";
import { record } from "../support/dns_packets.ts";

const MX: FakeDnsBehaviour = {
  kind: "mx",
  records: [{ preference: 10, exchange: "mx.example.net" }],
  ttl: 600,
};
const MX_ANSWER: MxOutcome = { kind: "mx", hosts: ["mx.example.net"], ttl: 600 };

/** Starts fake servers with these zones, runs `body`, closes them. */
async function withFakes(
  zones: Record<string, FakeDnsBehaviour>[],
  body: (fakes: FakeDns[]) => Promise<void>,
): Promise<void> {
  const fakes: FakeDns[] = [];
  try {
    for (const zone of zones) fakes.push(await startFakeDns({ zone }));
    await body(fakes);
  } finally {
    await Promise.all(fakes.map((fake) => fake.close()));
  }
}

/** Resolves `domain` against one fake server serving `behaviour` for it. */
async function lookup(
  behaviour: FakeDnsBehaviour,
  options: { domain?: string; timeoutMs?: number; transport?: "udp" | "tcp" } = {},
): Promise<{ outcome: MxOutcome; elapsed: number; events: DnsQueryEvent[]; queries: number }> {
  const domain = options.domain ?? "example.com";
  let result: Awaited<ReturnType<typeof lookup>> | undefined;
  await withFakes([{ [domain]: behaviour }], async ([fake]) => {
    const events: DnsQueryEvent[] = [];
    await using resolver = createResolver({
      servers: [fake.server],
      timeoutMs: options.timeoutMs ?? 2000,
      onQuery: (event) => events.push(event),
      transport: options.transport,
    });
    const started = performance.now();
    const outcome = await resolver.resolveMx(domain);
    result = {
      outcome,
      elapsed: performance.now() - started,
      events,
      queries: fake.queriesFor(domain),
    };
  });
  return result!;
}

Deno.test("MX records: preference order, ties in answer order, lower-cased, min TTL", async () => {
  const { outcome, events } = await lookup({
    kind: "mx",
    ttl: 900,
    records: [
      { preference: 20, exchange: "B.Example.NET." },
      { preference: 10, exchange: "MX1.example.com", ttl: 300 },
      { preference: 20, exchange: "a.example.net", ttl: 120 },
      { preference: 5, exchange: "first.example.org." },
    ],
  }, { domain: "Example.COM" });
  assert.deepEqual(outcome, {
    kind: "mx",
    hosts: ["first.example.org", "mx1.example.com", "b.example.net", "a.example.net"],
    ttl: 120,
  });
  assert.equal(events.length, 1);
  assert.equal(events[0].transport, "udp");
  assert.equal(events[0].outcome, "noerror");
  assert.match(events[0].server, /^127\.0\.0\.1:\d+$/);
});

Deno.test("null MX", async () => {
  assert.deepEqual((await lookup({ kind: "nullmx", ttl: 3600 })).outcome, {
    kind: "nullmx",
    ttl: 3600,
  });
});

Deno.test("NODATA with SOA (min of TTL and MINIMUM) and without", async () => {
  assert.deepEqual((await lookup({ kind: "nodata", soa: { ttl: 3600, minimum: 300 } })).outcome, {
    kind: "nodata",
    negativeTtl: 300,
  });
  assert.deepEqual((await lookup({ kind: "nodata", soa: { ttl: 60, minimum: 300 } })).outcome, {
    kind: "nodata",
    negativeTtl: 60,
  });
  assert.deepEqual((await lookup({ kind: "nodata" })).outcome, {
    kind: "nodata",
    negativeTtl: null,
  });
});

Deno.test("NXDOMAIN with SOA", async () => {
  const { outcome, events } = await lookup({ kind: "nxdomain", soa: { ttl: 900, minimum: 120 } });
  assert.deepEqual(outcome, { kind: "nxdomain", negativeTtl: 120 });
  assert.deepEqual(events.map((event) => event.outcome), ["nxdomain"]);
});

Deno.test("SERVFAIL from the only server: asked twice, then tempfail", async () => {
  const { outcome, events, queries } = await lookup({ kind: "servfail" });
  assert.equal(outcome.kind, "tempfail");
  assert.equal(outcome.kind === "tempfail" && outcome.cause, "servfail");
  assert.match(
    outcome.kind === "tempfail" ? outcome.reason : "",
    /^SERVFAIL from 127\.0\.0\.1:\d+$/,
  );
  assert.equal(queries, 2);
  assert.deepEqual(events.map((event) => event.outcome), ["servfail", "servfail"]);
});

Deno.test("SERVFAIL once, then the retry of the same server answers", async () => {
  const { outcome, queries } = await lookup({
    kind: "perQuery",
    list: [{ kind: "servfail" }, MX],
  });
  assert.deepEqual(outcome, MX_ANSWER);
  assert.equal(queries, 2);
});

Deno.test("REFUSED from the first server: the second server's answer is used", async () => {
  await withFakes(
    [{ "example.com": { kind: "refused" } }, { "example.com": MX }],
    async (fakes) => {
      const events: DnsQueryEvent[] = [];
      await using resolver = createResolver({
        servers: fakes.map((fake) => fake.server),
        timeoutMs: 2000,
        onQuery: (event) => events.push(event),
      });
      assert.deepEqual(await resolver.resolveMx("example.com"), MX_ANSWER);
      assert.deepEqual(events.map((event) => [event.server, event.outcome]), [
        [formatHostPort(fakes[0].server), "refused"],
        [formatHostPort(fakes[1].server), "noerror"],
      ]);
    },
  );
});

Deno.test("only bad servers (REFUSED, SERVFAIL): tempfail naming the last one", async () => {
  const zones = [{ "example.com": { kind: "servfail" } }, { "example.com": { kind: "refused" } }];
  await withFakes(zones as Record<string, FakeDnsBehaviour>[], async (fakes) => {
    await using resolver = createResolver({
      servers: fakes.map((fake) => fake.server),
      timeoutMs: 2000,
    });
    assert.deepEqual(await resolver.resolveMx("example.com"), {
      kind: "tempfail",
      reason: `REFUSED from ${formatHostPort(fakes[1].server)}`,
      cause: "refused",
    });
    assert.equal(fakes[0].queryCount, 1);
    assert.equal(fakes[1].queryCount, 1);
  });
});

Deno.test("silence: tempfail within the budget, the only server asked twice", async () => {
  const { outcome, elapsed, events, queries } = await lookup({ kind: "silence" }, {
    timeoutMs: 300,
  });
  assert.equal(outcome.kind === "tempfail" && outcome.cause, "timeout");
  assert.match(
    outcome.kind === "tempfail" ? outcome.reason : "",
    /^no answer from 127\.0\.0\.1:\d+ within \d+ ms$/,
  );
  assert.ok(elapsed >= 290 && elapsed < 300 + 100, `took ${elapsed} ms`);
  assert.equal(queries, 2);
  assert.deepEqual(events.map((event) => event.outcome), ["timeout", "timeout"]);
});

Deno.test("a silent first server: the second answers within the budget", async () => {
  await withFakes(
    [{ "example.com": { kind: "silence" } }, { "example.com": MX }],
    async (fakes) => {
      await using resolver = createResolver({
        servers: fakes.map((fake) => fake.server),
        timeoutMs: 1000,
      });
      const started = performance.now();
      assert.deepEqual(await resolver.resolveMx("example.com"), MX_ANSWER);
      const elapsed = performance.now() - started;
      // Half the budget for the first of two servers.
      assert.ok(elapsed >= 490 && elapsed < 600, `took ${elapsed} ms`);
    },
  );
});

Deno.test("a dead server (nothing listening): tempfail, never throws", async () => {
  const fake = await startFakeDns();
  const server: DnsServer = fake.server;
  await fake.close();
  await using resolver = createResolver({ servers: [server], timeoutMs: 300 });
  const outcome = await resolver.resolveMx("example.com");
  assert.equal(outcome.kind, "tempfail");
  // Loopback reports the closed port (ICMP) as a network error, or nothing arrives at all.
  assert.ok(
    outcome.kind === "tempfail" && ["network", "timeout"].includes(outcome.cause),
    JSON.stringify(outcome),
  );
});

Deno.test("delay: an answer within the attempt is used, a late one is not waited for", async () => {
  const quick = await lookup({ kind: "delay", ms: 100, then: MX }, { timeoutMs: 1000 });
  assert.deepEqual(quick.outcome, MX_ANSWER);
  assert.ok(quick.elapsed >= 95 && quick.elapsed < 300, `took ${quick.elapsed} ms`);
  // Each of the two attempts gets 300 ms; the answers come 400 ms after each query.
  const late = await lookup({ kind: "delay", ms: 400, then: MX }, { timeoutMs: 600 });
  assert.equal(late.outcome.kind === "tempfail" && late.outcome.cause, "timeout");
  assert.ok(late.elapsed >= 590 && late.elapsed < 700, `took ${late.elapsed} ms`);
  assert.equal(late.queries, 2);
});

Deno.test("IPv6: UDP and TCP to [::1]", async (t) => {
  let fake: FakeDns;
  try {
    fake = await startFakeDns({
      hostname: "::1",
      zone: { "a.test": { kind: "truncate", then: MX } },
    });
  } catch {
    await t.step({ name: "no IPv6 loopback here", ignore: true, fn: () => {} });
    return;
  }
  try {
    const events: DnsQueryEvent[] = [];
    await using resolver = createResolver({
      servers: [fake.server],
      timeoutMs: 1000,
      onQuery: (event) => events.push(event),
    });
    assert.deepEqual(await resolver.resolveMx("a.test"), MX_ANSWER);
    assert.deepEqual(events.map((event) => [event.server, event.transport]), [
      [`[::1]:${fake.port}`, "udp"],
      [`[::1]:${fake.port}`, "tcp"],
    ]);
  } finally {
    await fake.close();
  }
});

Deno.test("truncated UDP answer: the TCP answer is used", async () => {
  const { outcome, events, queries } = await lookup({ kind: "truncate", then: MX });
  assert.deepEqual(outcome, MX_ANSWER);
  assert.equal(queries, 2);
  assert.deepEqual(events.map((event) => [event.transport, event.outcome]), [
    ["udp", "noerror"],
    ["tcp", "noerror"],
  ]);
});

Deno.test("truncated UDP answer cut mid-record: the TCP answer is used", async () => {
  // Some servers cut a long answer at 512 bytes, mid-record, with TC set and the counts kept.
  const records = Array.from({ length: 30 }, (_, i) => ({
    preference: i,
    exchange: `mx${i}.a-long-name-for-padding.example.net`,
  }));
  const whole: FakeDnsBehaviour = { kind: "mx", records, ttl: 600 };
  const cut = (query: Uint8Array) => {
    const bytes = Uint8Array.from(
      replyTo(query, {
        answers: records.map((data) => ({
          type: "MX" as const,
          name: "example.com",
          ttl: 600,
          class: "IN" as const,
          data,
        })),
      }),
    ).slice(0, 512);
    bytes[2] |= 0x02; // TC
    return bytes;
  };
  const { outcome, queries, events } = await lookup({
    kind: "perQuery",
    list: [{ kind: "raw", reply: cut }, whole],
  });
  assert.equal(outcome.kind, "mx");
  assert.equal(
    outcome.kind === "mx" && outcome.hosts[0],
    "mx0.a-long-name-for-padding.example.net",
  );
  assert.equal(queries, 2);
  assert.deepEqual(events.map((event) => [event.transport, event.outcome]), [
    ["udp", "noerror"],
    ["tcp", "noerror"],
  ]);
});

Deno.test("a server that answers FORMERR to EDNS0 is asked again without it", async () => {
  // An old server: FORMERR (no OPT) to a query with an OPT record, the answer to one without.
  const oldServer = (query: Uint8Array) => {
    const hasOpt = query[11] > 0; // ARCOUNT
    if (!hasOpt) {
      return replyTo(query, {
        answers: [{
          type: "MX",
          name: "example.com",
          ttl: 600,
          class: "IN",
          data: { preference: 10, exchange: "mx.example.net" },
        }],
      });
    }
    const reply = query.slice(0, query.length - 11); // the header and question, no OPT
    reply[2] |= 0x80; // QR
    reply[3] = 0x80 | 1; // RA, FORMERR
    reply[11] = 0; // ARCOUNT
    return reply;
  };
  const { outcome, queries, events } = await lookup({ kind: "raw", reply: oldServer });
  assert.deepEqual(outcome, MX_ANSWER);
  assert.equal(queries, 2);
  assert.deepEqual(events.map((event) => [event.transport, event.outcome]), [
    ["udp", "other"],
    ["udp", "noerror"],
  ]);
  // FORMERR with an OPT record is a real format error: never asked without EDNS0.
  const optCounts: number[] = [];
  const { outcome: formErr } = await lookup({
    kind: "raw",
    reply: (query) => {
      optCounts.push(query[11]);
      return replyTo(query, { rcode: 1 }); // echoes the OPT record
    },
  });
  assert.equal(formErr.kind === "tempfail" && formErr.reason.startsWith("FORMERR from"), true);
  assert.ok(optCounts.length > 0 && optCounts.every((count) => count === 1), `${optCounts}`);
});

Deno.test("truncated UDP answer and a TCP server that fails: tempfail", async () => {
  const { outcome } = await lookup({ kind: "truncate", then: { kind: "silence" } }, {
    timeoutMs: 300,
  });
  assert.equal(outcome.kind === "tempfail" && outcome.cause, "timeout");
});

Deno.test("wrong ID and wrong question are ignored: tempfail after the budget", async () => {
  for (const kind of ["wrongId", "wrongQuestion"] as const) {
    const { outcome, elapsed } = await lookup({ kind, then: MX }, { timeoutMs: 300 });
    assert.equal(outcome.kind, "tempfail");
    assert.equal(outcome.kind === "tempfail" && outcome.cause, "malformed");
    const why = kind === "wrongId" ? "wrong ID" : "wrong question";
    assert.match(
      outcome.kind === "tempfail" ? outcome.reason : "",
      new RegExp(`^mismatched answer from 127\\.0\\.0\\.1:\\d+ \\(${why}\\)$`),
    );
    assert.ok(elapsed >= 290 && elapsed < 400, `took ${elapsed} ms`);
  }
});

Deno.test("a spoofed answer followed by the real one: the real one is used", async () => {
  const spoof: FakeDnsBehaviour = {
    kind: "mx",
    records: [{ preference: 0, exchange: "attacker.example" }],
  };
  const { outcome } = await lookup({
    kind: "multi",
    replies: [{ kind: "wrongId", then: spoof }, { kind: "wrongQuestion", then: spoof }, MX],
  });
  assert.deepEqual(outcome, MX_ANSWER);
});

Deno.test("garbage: tempfail, malformed", async () => {
  for (const keepId of [true, false]) {
    const { outcome, elapsed } = await lookup({ kind: "garbage", keepId }, { timeoutMs: 300 });
    assert.equal(
      outcome.kind === "tempfail" && outcome.cause,
      "malformed",
      JSON.stringify(outcome),
    );
    assert.ok(elapsed < 400, `took ${elapsed} ms`);
  }
});

Deno.test("CNAME chain followed", async () => {
  await withFakes([{
    "example.com": { kind: "cname", target: "alias.example.net", ttl: 3600 },
    "alias.example.net": { kind: "cname", target: "final.example.org", ttl: 7200 },
    "final.example.org": MX,
  }], async ([fake]) => {
    await using resolver = createResolver({ servers: [fake.server], timeoutMs: 2000 });
    assert.deepEqual(await resolver.resolveMx("example.com"), MX_ANSWER);
    assert.deepEqual(await resolver.resolveMx("alias.example.net"), MX_ANSWER);
  });
  const { outcome } = await lookup({ kind: "cname", target: "x.test", ttl: 30, then: MX });
  assert.deepEqual(outcome, { ...MX_ANSWER, ttl: 30 });
});

Deno.test("CNAME loop: malformed tempfail", async () => {
  await withFakes([{
    "example.com": { kind: "cname", target: "b.example.com" },
    "b.example.com": { kind: "cname", target: "example.com" },
  }], async ([fake]) => {
    await using resolver = createResolver({ servers: [fake.server], timeoutMs: 2000 });
    const outcome = await resolver.resolveMx("example.com");
    assert.deepEqual(outcome, {
      kind: "tempfail",
      reason: `malformed answer from ${formatHostPort(fake.server)}: CNAME loop at example.com`,
      cause: "malformed",
    });
  });
});

const SOA_DATA = { mname: "ns.example.org", rname: "hostmaster.example.org", minimum: 60 };

/** The replies of issue 16 that were taken for "no MX": each must defer, over UDP and TCP. */
const UNEXPLAINED: [string, FakeDnsBehaviour, RegExp][] = [
  [
    "an MX record of class CH",
    {
      kind: "records",
      answers: [
        record("MX", "example.com", { preference: 10, exchange: "mx.test" }, { class: "CH" }),
      ],
    },
    /^unexplained answer from 127\.0\.0\.1:\d+: MX record of example\.com of class CH$/,
  ],
  [
    "an MX record with the mDNS cache-flush bit (class 0x8001)",
    {
      kind: "records",
      answers: [
        record("MX", "example.com", { preference: 10, exchange: "mx.test" }, { flush: true }),
      ],
    },
    /: MX record of example\.com with the mDNS cache-flush bit set$/,
  ],
  [
    "no answer and the SOA of an unrelated zone",
    { kind: "nodata", soa: { ttl: 60, minimum: 60, zone: "example.org" } },
    /^incomplete answer from .*: no MX and no SOA of the zone of example\.com; in the authority section: SOA record of example\.org$/,
  ],
  [
    "only an A record of another name in the authority section",
    { kind: "records", authorities: [record("A", "other.test", "192.0.2.1")] },
    /; in the authority section: A record of other\.test$/,
  ],
  [
    "an MX record of another name plus the root's SOA",
    {
      kind: "records",
      answers: [
        record("MX", "other.test", { preference: 10, exchange: "x.mail.protection.outlook.com" }),
      ],
      authorities: [record("SOA", ".", SOA_DATA)],
    },
    /: MX record of other\.test, a name not asked about$/,
  ],
];

for (const transport of ["udp", "tcp"] as const) {
  Deno.test(`answers we cannot account for defer, never "no MX" (${transport})`, async () => {
    for (const [what, behaviour, reason] of UNEXPLAINED) {
      const { outcome, events } = await lookup(behaviour, { transport });
      assert.equal(outcome.kind === "tempfail" && outcome.cause, "malformed", what);
      assert.match(outcome.kind === "tempfail" ? outcome.reason : "", reason, what);
      assert.deepEqual(
        events.map((event) => [event.transport, event.outcome]),
        [[transport, "malformed"], [transport, "malformed"]],
        what,
      );
    }
  });
}

Deno.test("an exchange that is not a host name is skipped, the rest decide, the log says which", async () => {
  const lines: string[] = [];
  resetSync();
  configureSync({
    sinks: { lines: (record) => lines.push(`${record.level} ${record.message.join("")}`) },
    loggers: [
      { category: LOG_CATEGORY, lowestLevel: "debug", sinks: ["lines"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: ["lines"] },
    ],
  });
  try {
    for (const transport of ["udp", "tcp"] as const) {
      lines.length = 0;
      const { outcome } = await lookup({
        kind: "mx",
        records: [
          { preference: 20, exchange: "backup mx.example" },
          { preference: 10, exchange: "x.mail.protection.outlook.com" },
        ],
      }, { transport });
      assert.deepEqual(outcome, {
        kind: "mx",
        hosts: ["x.mail.protection.outlook.com"],
        ttl: 300,
        skipped: ["backup\\032mx.example"],
      });
      assert.equal(lines.length, 1, lines.join("\n"));
      assert.match(
        lines[0],
        /^debug MX of example\.com from 127\.0\.0\.1:\d+: skipped backup\\032mx\.example, not host names$/,
      );
    }
  } finally {
    resetSync();
  }
});

Deno.test("TTL 0 and 2^31", async () => {
  assert.deepEqual(
    (await lookup({ kind: "mx", ttl: 0, records: [{ preference: 1, exchange: "a.test" }] }))
      .outcome,
    { kind: "mx", hosts: ["a.test"], ttl: 0 },
  );
  assert.deepEqual(
    (await lookup({
      kind: "mx",
      records: [{ preference: 1, exchange: "a.test", ttl: 2 ** 31 }, {
        preference: 2,
        exchange: "b.test",
        ttl: 60,
      }],
    })).outcome,
    { kind: "mx", hosts: ["a.test", "b.test"], ttl: 0 },
  );
  assert.deepEqual((await lookup({ kind: "nullmx", ttl: 2 ** 31 + 5 })).outcome, {
    kind: "nullmx",
    ttl: 0,
  });
});

Deno.test("2000 MX records arrive over TCP; the MAX_MX_HOSTS (16) most preferred are kept", async () => {
  const records = Array.from({ length: 2000 }, (_, i) => ({
    preference: 2000 - i,
    exchange: `m${i}.t`,
  }));
  const { outcome, events } = await lookup({ kind: "mx", records, ttl: 77 }, { domain: "x.t" });
  assert.equal(outcome.kind, "mx");
  const hosts = outcome.kind === "mx" ? outcome.hosts : [];
  assert.equal(hosts.length, MAX_MX_HOSTS);
  assert.equal(hosts[0], "m1999.t");
  assert.equal(hosts[MAX_MX_HOSTS - 1], `m${2000 - MAX_MX_HOSTS}.t`);
  assert.equal(outcome.kind === "mx" && outcome.ttl, 77);
  assert.deepEqual(events.map((event) => event.transport), ["udp", "tcp"]);
});

Deno.test("300-character exchange: malformed tempfail", async () => {
  const exchange = `${"a".repeat(59)}.`.repeat(5) + "test";
  assert.equal(exchange.length, 304);
  const { outcome, events } = await lookup({
    kind: "mx",
    records: [{ preference: 10, exchange }],
  });
  assert.equal(outcome.kind === "tempfail" && outcome.cause, "malformed");
  assert.deepEqual(events.map((event) => event.outcome), ["malformed", "malformed"]);
});

/** Offset of the first answer record in a reply to a query for example.com. */
const ANSWER_OFFSET = 12 + "example.com".length + 2 + 4;

function hostile(patch: (bytes: Uint8Array) => void): FakeDnsBehaviour {
  return {
    kind: "raw",
    reply: (query) => {
      const bytes = replyTo(query, {
        answers: [{
          type: "MX",
          name: "example.com",
          ttl: 60,
          class: "IN",
          data: { preference: 10, exchange: "mx.example.com" },
        }],
      });
      patch(bytes);
      return bytes;
    },
  };
}

Deno.test("compression pointer loop: malformed tempfail, fast", async () => {
  const { outcome, elapsed } = await lookup(
    hostile((bytes) => {
      bytes[ANSWER_OFFSET] = 0xc0;
      bytes[ANSWER_OFFSET + 1] = ANSWER_OFFSET;
    }),
  );
  assert.equal(outcome.kind === "tempfail" && outcome.cause, "malformed");
  assert.match(
    outcome.kind === "tempfail" ? outcome.reason : "",
    /^malformed answer from 127\.0\.0\.1:\d+: Cannot decode name \(bad pointer\)$/,
  );
  assert.ok(elapsed < 500, `took ${elapsed} ms`);
});

Deno.test("answer count exceeding the packet: malformed tempfail", async () => {
  const { outcome } = await lookup(hostile((bytes) => bytes[7] = 50));
  assert.equal(outcome.kind === "tempfail" && outcome.cause, "malformed");
});

Deno.test("an invalid domain is NXDOMAIN without asking", async () => {
  const { outcome, queries } = await lookup(MX, { domain: `${"a".repeat(64)}.com` });
  assert.deepEqual(outcome, { kind: "nxdomain", negativeTtl: null });
  assert.equal(queries, 0);
});

Deno.test("no servers: tempfail", async () => {
  await using resolver = createResolver({ servers: [], timeoutMs: 100 });
  assert.deepEqual(await resolver.resolveMx("example.com"), {
    kind: "tempfail",
    reason: "no DNS servers configured",
    cause: "network",
  });
});

Deno.test("an onQuery callback that throws does not break the lookup", async () => {
  await withFakes([{ "example.com": MX }], async ([fake]) => {
    await using resolver = createResolver({
      servers: [fake.server],
      timeoutMs: 2000,
      onQuery: () => {
        throw new Error("metrics broke");
      },
    });
    assert.deepEqual(await resolver.resolveMx("example.com"), MX_ANSWER);
  });
});

Deno.test("concurrent lookups share a socket, each with its own ID", async () => {
  const zone: Record<string, FakeDnsBehaviour> = {};
  for (let i = 0; i < 50; i++) {
    zone[`d${i}.test`] = { kind: "mx", records: [{ preference: 1, exchange: `mx${i}.test` }] };
  }
  await withFakes([zone], async ([fake]) => {
    await using resolver = createResolver({ servers: [fake.server], timeoutMs: 2000 });
    const outcomes = await Promise.all(
      Array.from({ length: 50 }, (_, i) => resolver.resolveMx(`d${i}.test`)),
    );
    outcomes.forEach((outcome, i) => {
      assert.deepEqual(outcome, { kind: "mx", hosts: [`mx${i}.test`], ttl: 300 });
    });
    assert.equal(fake.queryCount, 50);
    assert.equal(new Set(fake.udpSources.map((s) => s.port)).size, 1);
    assert.equal(new Set(fake.udpSources.map((s) => s.id)).size, 50);
  });
});

Deno.test(`a socket sends ${QUERIES_PER_SOCKET} queries, never repeating an ID; then a new port`, async () => {
  await withFakes([{}], async ([fake]) => {
    fake.setDefault(MX);
    await using resolver = createResolver({ servers: [fake.server], timeoutMs: 2000 });
    const total = QUERIES_PER_SOCKET * 3 + 10;
    for (let i = 0; i < total; i++) await resolver.resolveMx(`d${i}.test`);
    const byPort = Map.groupBy(fake.udpSources, (source) => source.port);
    assert.equal(byPort.size, 4);
    for (const sources of byPort.values()) {
      assert.ok(sources.length <= QUERIES_PER_SOCKET);
      assert.equal(new Set(sources.map((s) => s.id)).size, sources.length);
    }
  });
});

Deno.test("a late answer to an ended query is dropped, not blamed on the next query", async () => {
  const zone: Record<string, FakeDnsBehaviour> = {
    "slow.test": { kind: "delay", ms: 450, then: MX },
    "silent.test": { kind: "silence" },
  };
  await withFakes([zone], async ([fake]) => {
    await using resolver = createResolver({ servers: [fake.server], timeoutMs: 400 });
    const slow = await resolver.resolveMx("slow.test");
    assert.equal(slow.kind === "tempfail" && slow.cause, "timeout");
    // The two late answers to slow.test arrive on the same socket while this lookup waits.
    const silent = await resolver.resolveMx("silent.test");
    assert.equal(fake.queriesFor("slow.test"), 2);
    assert.equal(new Set(fake.udpSources.map((s) => s.port)).size, 1);
    assert.equal(silent.kind === "tempfail" && silent.cause, "timeout", JSON.stringify(silent));
  });
});

Deno.test("a packet with an ID never sent: the queries to that server time out as mismatched", async () => {
  await withFakes([{}], async ([fake]) => {
    fake.setDefault({ kind: "wrongId", then: MX });
    await using resolver = createResolver({ servers: [fake.server], timeoutMs: 300 });
    const outcomes = await Promise.all([
      resolver.resolveMx("a.test"),
      resolver.resolveMx("b.test"),
    ]);
    for (const outcome of outcomes) {
      assert.equal(outcome.kind === "tempfail" && outcome.cause, "malformed");
      assert.match(outcome.kind === "tempfail" ? outcome.reason : "", /\(wrong ID\)$/);
    }
  });
});

Deno.test("parseDnsServer: accepted forms", () => {
  assert.deepEqual(parseDnsServer("1.2.3.4"), { ok: true, value: { host: "1.2.3.4", port: 53 } });
  assert.deepEqual(parseDnsServer("1.2.3.4:5353"), {
    ok: true,
    value: { host: "1.2.3.4", port: 5353 },
  });
  assert.deepEqual(parseDnsServer("::1"), { ok: true, value: { host: "::1", port: 53 } });
  assert.deepEqual(parseDnsServer("[::1]"), { ok: true, value: { host: "::1", port: 53 } });
  assert.deepEqual(parseDnsServer("[::1]:5353"), { ok: true, value: { host: "::1", port: 5353 } });
  assert.deepEqual(parseDnsServer("[2001:DB8:0:0::1]:53"), {
    ok: true,
    value: { host: "2001:db8::1", port: 53 },
  });
  assert.deepEqual(parseDnsServer("2001:db8::53"), {
    ok: true,
    value: { host: "2001:db8::53", port: 53 },
  });
  assert.deepEqual(parseDnsServer("127.0.0.1:65535"), {
    ok: true,
    value: { host: "127.0.0.1", port: 65535 },
  });
});

Deno.test("an IPv4-mapped address is its IPv4 address: --dns-server and resolv.conf", () => {
  for (
    const text of [
      "[::ffff:127.0.0.1]:53",
      "::ffff:127.0.0.1",
      "[::FFFF:7F00:1]",
      "[0:0:0:0:0:ffff:7f00:1]:53",
    ]
  ) {
    assert.deepEqual(
      parseDnsServer(text),
      { ok: true, value: { host: "127.0.0.1", port: 53 } },
      text,
    );
  }
  assert.deepEqual(nameserversFromResolvConf("nameserver ::ffff:192.0.2.53\n"), [
    { host: "192.0.2.53", port: 53 },
  ]);
  assert.equal(canonicalAddress("::ffff:127.0.0.1"), "127.0.0.1");
  assert.equal(canonicalAddress("::ffff:7f00:1"), "127.0.0.1");
  assert.equal(canonicalAddress("127.0.0.1"), "127.0.0.1");
  assert.equal(canonicalAddress("2001:DB8:0::1"), "2001:db8::1");
  assert.equal(canonicalAddress("::ffff:0:7f00:1"), "::ffff:0:7f00:1", "not mapped: kept");
});

Deno.test("a server given as an IPv4-mapped address is answered, over UDP and TCP", async () => {
  await withFakes([{ "example.com": MX }], async ([fake]) => {
    const parsed = parseDnsServer(`[::ffff:127.0.0.1]:${fake.port}`);
    assert.ok(parsed.ok);
    // Also as a mapped host asked from an IPv6 socket: the reply's sender is reported as
    // ::ffff:127.0.0.1, the server as ::ffff:7f00:1.
    const mapped: DnsServer = { host: "::ffff:7f00:1", port: fake.port };
    for (const server of [parsed.value, mapped]) {
      for (const transport of ["udp", "tcp"] as const) {
        await using resolver = createResolver({ servers: [server], timeoutMs: 1000, transport });
        assert.deepEqual(
          await resolver.resolveMx("example.com"),
          MX_ANSWER,
          `${server.host} over ${transport}`,
        );
      }
    }
  });
});

/** A UDP socket factory whose first `failures` sockets cannot bind, as when out of descriptors. */
function failingFirstBinds(failures: number) {
  let made = 0;
  return (family: "udp4" | "udp6") => {
    const socket = dgram.createSocket(family);
    if (made++ < failures) {
      socket.bind = (() => {
        const error = Object.assign(new Error("bind EMFILE 0.0.0.0"), { code: "EMFILE" });
        queueMicrotask(() => socket.emit("error", error));
        return socket;
      }) as typeof socket.bind;
    }
    return socket;
  };
}

/** Runs `body` with the router's warnings captured as lines. */
async function withWarnings(body: (lines: string[]) => Promise<void>): Promise<void> {
  const lines: string[] = [];
  configureSync({
    sinks: { test: (record) => lines.push(record.message.map((part) => String(part)).join("")) },
    loggers: [
      { category: LOG_CATEGORY, lowestLevel: "warning", sinks: ["test"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
    ],
  });
  try {
    await body(lines);
  } finally {
    resetSync();
  }
}

Deno.test("out of file descriptors: 400 for that lookup only, not cached as the domain's failure, logged once a minute", async () => {
  await withFakes([{ "example.com": MX }], async ([fake]) => {
    await withWarnings(async (warnings) => {
      await using resolver = createResolver({
        servers: [fake.server],
        timeoutMs: 2000,
        createUdpSocket: failingFirstBinds(2),
      });
      const cache = new MxCache({ resolver, options: DEFAULT_CACHE_OPTIONS });
      for (let i = 0; i < 2; i++) {
        const started = performance.now();
        const failed = (await cache.lookup("example.com")).outcome;
        assert.ok(performance.now() - started < 500, "at once, no retry");
        assert.equal(failed.kind === "tempfail" && failed.cause, "local");
        assert.match(
          failed.kind === "tempfail" ? failed.reason : "",
          /^local error \(not the domain's\): 127\.0\.0\.1:\d+: bind EMFILE 0\.0\.0\.0$/,
        );
      }
      // Descriptors free again: the domain is asked at once, not answered from a failure cache.
      assert.deepEqual((await cache.lookup("example.com")).outcome, MX_ANSWER);
      assert.equal(cache.counters.failureHits, 0);
      assert.equal(fake.queriesFor("example.com"), 1);
      assert.equal(warnings.length, 1, warnings.join("\n"));
      assert.match(
        warnings[0],
        /^DNS lookup failed on this host, not in DNS: .*EMFILE.*LimitNOFILE/,
      );
    });
  });
});

Deno.test("out of file descriptors over TCP (--dns-tcp): a local failure too", async () => {
  await withWarnings(async () => {
    await using resolver = createResolver({
      servers: [{ host: "127.0.0.1", port: 53 }],
      timeoutMs: 2000,
      transport: "tcp",
      connectTcp: () =>
        Promise.reject(
          Object.assign(new Error("Too many open files (os error 24)"), { code: "EMFILE" }),
        ),
    });
    const outcome = await resolver.resolveMx("example.com");
    assert.equal(outcome.kind === "tempfail" && outcome.cause, "local");
    assert.match(outcome.kind === "tempfail" ? outcome.reason : "", /Too many open files/);
  });
});

Deno.test("parseDnsServer: rejected forms", () => {
  for (
    const text of [
      "",
      "x",
      "localhost",
      "dns.google:53",
      "1.2.3",
      "1.2.3.4.5",
      "256.1.1.1",
      "1.2.3.4:",
      "1.2.3.4:0",
      "1.2.3.4:65536",
      "1.2.3.4:53x",
      " 1.2.3.4",
      "[::1",
      "[::1]:",
      "[1.2.3.4]",
      "::1:5353:x",
      "fe80::1%eth0",
      "[::1]:53:53",
      "::g",
    ]
  ) {
    assert.deepEqual(parseDnsServer(text), {
      ok: false,
      error: `bad DNS server address "${text}": expected ADDR[:PORT], IPv6 as [::1]:5353`,
    }, text);
  }
});

Deno.test("nameserversFromResolvConf", () => {
  const text = [
    "# Generated by NetworkManager",
    "search example.com",
    "nameserver 192.0.2.53",
    "; nameserver 192.0.2.99",
    "#nameserver 192.0.2.98",
    "  nameserver\t2001:db8::53  # trailing comment",
    "nameserver fe80::1%eth0",
    "nameserver dns.example.com",
    "nameserver",
    "nameservers 192.0.2.97",
    "options edns0 timeout:2\r",
    "nameserver 192.0.2.54\r",
  ].join("\n");
  assert.deepEqual(nameserversFromResolvConf(text), [
    { host: "192.0.2.53", port: 53 },
    { host: "2001:db8::53", port: 53 },
    { host: "fe80::1", port: 53 },
    { host: "192.0.2.54", port: 53 },
  ]);
  assert.deepEqual(nameserversFromResolvConf(""), []);
});

Deno.test("a send the kernel refuses fails that query at once; the shared socket serves the next server", async () => {
  await withFakes([{ "example.com": MX }], async ([fake]) => {
    // Broadcast without SO_BROADCAST: the kernel refuses the send (EACCES).
    const refused: DnsServer = { host: "255.255.255.255", port: 53 };
    const events: DnsQueryEvent[] = [];
    await using resolver = createResolver({
      servers: [refused, fake.server],
      timeoutMs: 2000,
      onQuery: (event) => events.push(event),
    });
    const started = performance.now();
    assert.deepEqual(await resolver.resolveMx("example.com"), MX_ANSWER);
    assert.ok(performance.now() - started < 500);
    assert.deepEqual(events.map((e) => [e.server, e.outcome]), [
      ["255.255.255.255:53", "network"],
      [`127.0.0.1:${fake.port}`, "noerror"],
    ]);
  });
});

Deno.test("closing the resolver (a reload) lets a lookup between attempts finish", async () => {
  const zone: Record<string, FakeDnsBehaviour> = {
    "example.com": { kind: "perQuery", list: [{ kind: "silence" }, MX] },
  };
  await withFakes([zone], async ([fake]) => {
    const resolver = createResolver({ servers: [fake.server], timeoutMs: 400 });
    const lookup = resolver.resolveMx("example.com");
    const closed = resolver.close();
    // The first attempt times out after 200 ms; the second, sent after close, is answered.
    assert.deepEqual(await lookup, MX_ANSWER);
    assert.equal(fake.queriesFor("example.com"), 2);
    await closed;
  });
});

Deno.test("a socket that cannot bind: the query fails at once as a local error, the socket closes, close() ends", async () => {
  const made: dgram.Socket[] = [];
  let closes = 0;
  const failingBind = (family: "udp4" | "udp6") => {
    const socket = dgram.createSocket(family);
    // As when out of file descriptors: bind reports an error and never calls back.
    socket.bind = (() => {
      queueMicrotask(() => socket.emit("error", new Error("bind EMFILE 0.0.0.0")));
      return socket;
    }) as typeof socket.bind;
    socket.on("close", () => closes++);
    made.push(socket);
    return socket;
  };
  const udp = new UdpExchanger(failingBind);
  const server: DnsServer = { host: "127.0.0.1", port: 53 };
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    const exchange = await udp.exchange({
      server,
      from: "127.0.0.1:53",
      name: "example.com",
      deadline: started + 2000,
    });
    assert.equal(exchange.kind === "fail" && exchange.failure.cause, "local");
    assert.match(exchange.kind === "fail" ? exchange.failure.reason : "", /EMFILE/);
    assert.ok(performance.now() - started < 100);
  }
  await udp.close();
  assert.equal(made.length, 3);
  assert.equal(closes, 3);
});
