import assert from "node:assert/strict";
import { idleSources } from "../support/metric_sources.ts";
import { createMetrics } from "../../lib/app/metrics.ts";
import { type HealthVerdict, healthVerdict } from "../../lib/app/healthz.ts";
import type { DnsServerStatus } from "../../lib/dns/health.ts";
import { parseConfig } from "../../lib/routing/rules_file.ts";

const NOW = Date.parse("2025-05-01T12:01:15.000Z");
const up = (server: string, lastReplyAgoMs: number | null): DnsServerStatus => ({
  server,
  down: false,
  downForMs: null,
  lastReplyAgoMs,
});
const down = (server: string, downForMs: number, lastReplyAgoMs: number | null) => ({
  server,
  down: true,
  downForMs,
  lastReplyAgoMs,
});

Deno.test("healthz verdict: healthy while DNS answered within the minute, or nothing was asked", () => {
  const verdict = (dns: DnsServerStatus[]) => healthVerdict({ serving: true, dns, wallNow: NOW });
  assert.deepEqual(verdict([up("127.0.0.1:53", null)]), { ok: true }, "never asked");
  assert.deepEqual(verdict([up("127.0.0.1:53", 120_000)]), { ok: true }, "asked long ago");
  assert.deepEqual(
    verdict([down("127.0.0.1:53", 5_000, 30_000)]),
    { ok: true },
    "down, but it answered within the minute",
  );
  assert.deepEqual(
    verdict([down("127.0.0.1:53", 75_000, 80_000), up("192.0.2.53:53", 90_000)]),
    { ok: true },
    "one of two down: the other answers the lookups",
  );
});

Deno.test("healthz verdict: 503 reasons name each server, since when it is down, and the silence", () => {
  assert.deepEqual(
    healthVerdict({ serving: true, dns: [down("127.0.0.1:53", 75_000, 80_400)], wallNow: NOW }),
    {
      ok: false,
      reason: "DNS not answering: 127.0.0.1:53 down since 2025-05-01T12:00:00.000Z, " +
        "no reply for 80 s",
    },
  );
  assert.deepEqual(
    healthVerdict({
      serving: true,
      dns: [down("127.0.0.1:53", 1_000, null), down("[::1]:53", 2_000, null)],
      wallNow: NOW,
    }),
    {
      ok: false,
      reason: "DNS not answering: 127.0.0.1:53 down since 2025-05-01T12:01:14.000Z, never " +
        "replied; [::1]:53 down since 2025-05-01T12:01:13.000Z, never replied",
    },
  );
  assert.deepEqual(healthVerdict({ serving: false, dns: [], wallNow: NOW }), {
    ok: false,
    reason: "not serving: stopping",
  });
});

Deno.test("GET /healthz on the metrics listener: 200 ok, 503 with the one-line reason", async () => {
  const parsed = parseConfig("suffix:outlook.com relay:[a.example]:25\n", "r");
  assert.ok(parsed.ok);
  let verdict: HealthVerdict = { ok: true };
  const metrics = createMetrics(idleSources(parsed.value.ruleSet, { health: () => verdict }));
  const server = metrics.serve({ hostname: "127.0.0.1", port: 0 });
  const { port } = server.addr as Deno.NetAddr;
  try {
    const get = async (path: string) => {
      const response = await fetch(`http://127.0.0.1:${port}${path}`);
      return [response.status, await response.text()];
    };
    assert.deepEqual(await get("/healthz"), [200, "ok\n"]);
    verdict = { ok: false, reason: "DNS not answering: 127.0.0.1:53 down since x" };
    assert.deepEqual(await get("/healthz"), [
      503,
      "DNS not answering: 127.0.0.1:53 down since x\n",
    ]);
    assert.equal((await get("/metrics"))[0], 200);
    assert.equal((await get("/other"))[0], 404);
  } finally {
    await server.shutdown();
  }
});
