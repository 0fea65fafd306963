/**
 * The multi-core experiment of the bench (bench/multicore_router.ts): the router in 2 workers on
 * one port keeps one DNS query per domain, and answers like the router.
 */

import assert from "node:assert/strict";
import { withTtlLeft, workerCount } from "../bench/multicore_router.ts";
import { delay, freePort, spawnCaptured, waitFor } from "./support/e2e_util.ts";
import { type FakeDnsBehaviour, startFakeDns } from "./support/fake_dns.ts";
import { compilePermissionFlags, PROJECT_ROOT, withExtraPaths } from "./support/router_process.ts";
import { LineClient } from "./support/tcp_client.ts";

Deno.test("withTtlLeft: a worker's copy expires when the owner's does", () => {
  assert.deepStrictEqual(withTtlLeft({ kind: "mx", hosts: ["mx.example"], ttl: 300 }, 42.7), {
    kind: "mx",
    hosts: ["mx.example"],
    ttl: 42,
  });
  assert.deepStrictEqual(withTtlLeft({ kind: "nullmx", ttl: 300 }, 0.2), {
    kind: "nullmx",
    ttl: 1,
  });
  assert.deepStrictEqual(withTtlLeft({ kind: "nxdomain", negativeTtl: 600 }, 5), {
    kind: "nxdomain",
    negativeTtl: 5,
  });
  assert.deepStrictEqual(withTtlLeft({ kind: "nodata", negativeTtl: null }, 5), {
    kind: "nodata",
    negativeTtl: 5,
  });
  const failure = { kind: "tempfail", reason: "SERVFAIL", cause: "servfail" } as const;
  assert.deepStrictEqual(withTtlLeft(failure, 5), failure);
});

Deno.test("workerCount: --workers is split off the router's flags", () => {
  assert.deepStrictEqual(workerCount(["-p", "1", "--workers", "3", "-v"]), {
    workers: 3,
    rest: ["-p", "1", "-v"],
  });
  assert.deepStrictEqual(workerCount(["-p", "1"]), { workers: 2, rest: ["-p", "1"] });
  assert.deepStrictEqual(
    workerCount(["--workers", "0"]),
    "option '--workers' needs a number from 1 to 64, not '0'",
  );
});

Deno.test("multicore router: 2 workers on one port, one DNS query per domain", async () => {
  const domains = Array.from({ length: 20 }, (_, i) => `d${i}.example`);
  const dns = await startFakeDns({
    zone: Object.fromEntries(domains.map((domain, i): [string, FakeDnsBehaviour] => [
      domain,
      {
        kind: "mx",
        records: [{
          preference: 10,
          exchange: i % 2 === 0 ? `${i}.mail.protection.outlook.com` : `mx.${domain}`,
        }],
      },
    ])),
  });
  // Slow to answer, so both workers miss it at once and the owner must coalesce their queries.
  dns.setZone("slow.example", {
    kind: "delay",
    ms: 300,
    then: { kind: "mx", records: [{ preference: 0, exchange: "mx.slow.example" }] },
  });
  const tmp = await Deno.makeTempDir();
  const port = await freePort();
  await Deno.writeTextFile(
    `${tmp}/rules.conf`,
    "suffix:mail.protection.outlook.com relay:[o365.example]:587\n",
  );
  const permissions = withExtraPaths(await compilePermissionFlags(), [tmp]).map((flag) =>
    flag.startsWith("--allow-read=") ? `${flag},${PROJECT_ROOT}` : flag
  );
  const router = spawnCaptured(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      "--unstable-net",
      ...permissions,
      `${PROJECT_ROOT}/bench/multicore_router.ts`,
      "--workers",
      "2",
      "-c",
      `${tmp}/rules.conf`,
      "-p",
      String(port),
      "--dns-server",
      `127.0.0.1:${dns.port}`,
      "-v", // every lookup logged, not only matches
    ],
    env: { NO_COLOR: "1" },
  });
  const clients: LineClient[] = [];
  try {
    await waitFor(() => router.stderr().split(`listening on 127.0.0.1:${port}`).length === 3, {
      what: "both workers listening",
      timeoutMs: 30_000,
    });
    // 16 connections: the kernel spreads them over both workers (all on one: 1 in 32,768).
    for (let i = 0; i < 16; i++) clients.push(await LineClient.connect(port));
    const askAll = async (client: LineClient) => {
      for (let i = 0; i < domains.length; i++) {
        const expected = i % 2 === 0 ? "200 relay:[o365.example]:587" : "500 NO%20RESULT";
        assert.equal(await client.get(`user@${domains[i]}`), expected);
      }
    };
    await Promise.all(clients.map(async (client) => {
      assert.equal(await client.get("user@slow.example"), "500 NO%20RESULT");
    }));
    assert.equal(dns.queriesFor("slow.example"), 1);
    // One worker asks DNS (through the owner) for every domain; the owner sends each answer to
    // the other worker too. Then every connection asks again: hits on both workers.
    await askAll(clients[0]);
    await delay(100);
    await Promise.all(clients.map(askAll));
    assert.equal(dns.queryCount, domains.length + 1);
    for (const domain of domains) assert.equal(dns.queriesFor(domain), 1, domain);
    const lookups = clients.length + domains.length * (1 + clients.length);
    const lines = () => router.stderr().split("\n").filter((line) => line.includes(" lookup "));
    await waitFor(() => lines().length === lookups, { what: `${lookups} lookup lines` });
    assert(lines().some((line) => line.includes("router-1 lookup ")), "worker 1 answered");
    assert(lines().some((line) => line.includes("router-2 lookup ")), "worker 2 answered");
    // Only the first round was not a hit: the other worker had the answers already.
    const fromDns = lines().filter((line) =>
      line.includes(" source=dns ") && !line.includes("slow.example")
    );
    assert.equal(fromDns.length, domains.length, fromDns.join("\n"));
  } finally {
    for (const client of clients) client.close();
    await router.stop();
    await dns.close();
    await Deno.remove(tmp, { recursive: true });
  }
});
