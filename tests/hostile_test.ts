/**
 * A flood of hostile clients against the real router process: it keeps serving a well-behaved
 * client, bounded in memory, and answers normally afterwards.
 */

import assert from "node:assert/strict";
import { startRouterFixture } from "./support/router_fixture.ts";
import { LineClient } from "./support/tcp_client.ts";

const encoder = new TextEncoder();

function rssBytes(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

function randomBytes(length: number): Uint8Array {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return bytes.map((b) => (b === 10 ? 11 : b)); // never a newline
}

Deno.test("3,000 hostile connections: a good client is still served, memory stays bounded", async () => {
  await using fixture = await startRouterFixture();
  const port = fixture.router.port;
  const warm = await LineClient.connect(port);
  assert.equal(await warm.get("a@contoso.test"), "200 relay:[o365.example]:587");
  warm.close();
  const rssBefore = rssBytes(fixture.router.pid);

  const conns: Deno.Conn[] = [];
  const open = async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conns.push(conn);
    return conn;
  };
  const quietly = (work: Promise<unknown>) => work.catch(() => {});
  const tasks: Promise<unknown>[] = [];
  let dripping = true;
  // 2,400 that send nothing at all.
  for (let i = 0; i < 2400; i++) await open();
  // 200 sending random bytes without a newline.
  for (let i = 0; i < 200; i++) {
    const conn = await open();
    tasks.push(quietly(conn.write(randomBytes(3000))));
  }
  // 200 dripping one byte a second.
  for (let i = 0; i < 200; i++) {
    const conn = await open();
    tasks.push(quietly((async () => {
      while (dripping) {
        await conn.write(encoder.encode("g"));
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    })()));
  }
  // 200 with bad escapes, oversize keys, unknown verbs, NULs and CRLF.
  for (let i = 0; i < 200; i++) {
    const conn = await open();
    const junk = [
      "get a@%ZZ.test\n",
      "get a@b.test%\n",
      "get %FF%FE\n",
      "hello\r\n",
      "get \0\0\n",
      "get " + "x".repeat(70_000) + "\n",
    ][i % 6];
    tasks.push(quietly(conn.write(encoder.encode(junk))));
  }

  // The well-behaved client connects after the flood and makes 2,000 lookups.
  const client = await LineClient.connect(port);
  const latencies: number[] = [];
  const domains = ["contoso.test", "gmail.test", "other.test", "gone.test", "mail.implicit.test"];
  const expected: Record<string, RegExp> = {
    "contoso.test": /^200 relay:\[o365\.example\]:587$/,
    "gmail.test": /^200 smtp:/,
    "other.test": /^500 /,
    "gone.test": /^500 /,
    "mail.implicit.test": /^200 relay:\[implicit\.example\]:25$/,
  };
  for (let i = 0; i < 2000; i++) {
    const domain = domains[i % domains.length];
    const started = performance.now();
    const reply = await client.get(`user${i}@${domain}`);
    latencies.push(performance.now() - started);
    assert.match(reply ?? "closed", expected[domain], domain);
  }
  const rssAfter = rssBytes(fixture.router.pid);
  latencies.sort((a, b) => a - b);
  const p99 = latencies[Math.floor(latencies.length * 0.99)];
  const growth = (rssAfter - rssBefore) / 1048576;
  console.log(
    `hostile flood: good client p99 ${p99.toFixed(2)} ms, p50 ${latencies[1000].toFixed(2)} ms; ` +
      `router RSS growth ${growth.toFixed(1)} MB (${(rssBefore / 1048576).toFixed(1)} → ` +
      `${(rssAfter / 1048576).toFixed(1)} MB) with ${conns.length} hostile connections`,
  );
  assert.ok(growth <= 64, `RSS grew by ${growth.toFixed(1)} MB`);

  dripping = false;
  for (const conn of conns) {
    try {
      conn.close();
    } catch {
      // closed by the router already (oversize, bad framing)
    }
  }
  await Promise.all(tasks);
  // Afterwards the router answers normally.
  assert.equal(await client.get("z@contoso.test"), "200 relay:[o365.example]:587");
  client.close();
  assert.ok(fixture.router.stderr().includes("listening on"));
});
