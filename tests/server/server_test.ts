import assert from "node:assert/strict";
import { configureSync, type LogRecord, resetSync } from "@logtape/logtape";
import { DEFAULT_CACHE_OPTIONS, MxCache } from "../../lib/routing/cache.ts";
import { parseConfig } from "../../lib/routing/rules_file.ts";
import { type Decision, Router } from "../../lib/routing/router.ts";
import { ConnectionLimit } from "../../lib/server/connection_limit.ts";
import { LOG_CATEGORY } from "../../lib/common/log.ts";
import { TableServer } from "../../lib/server/server.ts";
import { tcpTableCodec } from "../../lib/server/tcp_table.ts";
import { FakeResolver } from "../support/fake_resolver.ts";
import { LineClient } from "../support/tcp_client.ts";

const RULES = "suffix:mail.protection.outlook.com relay:[o365.example]:587\n" +
  "suffix:google.com smtp:[a.example]:25, [b.example]:25\n";

function startServer(
  options: { idleTimeoutMs?: number; maxConnections?: number; stuckTimeoutMs?: number } = {},
) {
  const parsed = parseConfig(RULES, "test.conf");
  if (!parsed.ok) throw new Error("bad rules");
  const resolver = new FakeResolver()
    .answer("contoso.example", {
      kind: "mx",
      hosts: ["contoso.mail.protection.outlook.com"],
      ttl: 300,
    })
    .answer("gmail.example", { kind: "mx", hosts: ["aspmx.l.google.com"], ttl: 300 })
    .answer("other.example", { kind: "mx", hosts: ["mx.other.example"], ttl: 300 })
    .answer("broken.example", {
      kind: "tempfail",
      reason: "SERVFAIL from test",
      cause: "servfail",
    });
  const cache = new MxCache<Decision>({ resolver, options: DEFAULT_CACHE_OPTIONS });
  const router = new Router({ cache, ruleSet: parsed.value.ruleSet });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const limit = new ConnectionLimit(options.maxConnections ?? 100);
  const server = new TableServer({
    listener,
    codec: tcpTableCodec,
    router,
    idleTimeoutMs: options.idleTimeoutMs ?? 0,
    stuckTimeoutMs: options.stuckTimeoutMs ?? 10_000,
    limit,
  });
  const serving = server.serve();
  const port = (listener.addr as Deno.NetAddr).port;
  const clients: LineClient[] = [];
  return {
    port,
    server,
    resolver,
    limit,
    async client() {
      const client = await LineClient.connect(port);
      clients.push(client);
      return client;
    },
    async [Symbol.asyncDispose]() {
      for (const client of clients) client.close();
      await server.stop(1000);
      await serving;
    },
  };
}

Deno.test("answers 200, 500 and 400 as tcp_table(5) says, many requests per connection", async () => {
  await using s = await startServer();
  const client = await s.client();
  assert.equal(await client.get("user@contoso.example"), "200 relay:[o365.example]:587");
  assert.equal(await client.get("user@gmail.example"), "200 smtp:[a.example]:25,%20[b.example]:25");
  assert.equal(await client.get("user@other.example"), "500 NO%20RESULT");
  assert.equal(await client.get("user@broken.example"), "400 SERVFAIL%20from%20test");
  assert.equal(await client.get("*"), "500 NO%20RESULT");
});

Deno.test("pipelined requests in one write are answered in order", async () => {
  await using s = await startServer();
  const client = await s.client();
  s.resolver.hold(); // first lookups wait, later ones too: order must still hold
  await client.send(
    "get a@contoso.example\nget b@other.example\nget localhost\nget c@broken.example\n" +
      "get d@gmail.example\n",
  );
  setTimeout(() => s.resolver.release(), 50);
  assert.equal(await client.line(), "200 relay:[o365.example]:587");
  assert.equal(await client.line(), "500 NO%20RESULT");
  assert.equal(await client.line(), "500 NO%20RESULT");
  assert.equal(await client.line(), "400 SERVFAIL%20from%20test");
  assert.equal(await client.line(), "200 smtp:[a.example]:25,%20[b.example]:25");
});

Deno.test("a request split across writes is answered once complete", async () => {
  await using s = await startServer();
  const client = await s.client();
  await client.send("ge");
  await new Promise((resolve) => setTimeout(resolve, 30));
  await client.send("t user@conto");
  await new Promise((resolve) => setTimeout(resolve, 30));
  await client.send("so.example\r\nget user@other.example\n");
  assert.equal(await client.line(), "200 relay:[o365.example]:587");
  assert.equal(await client.line(), "500 NO%20RESULT");
});

Deno.test("an unknown command gets 400 and the connection stays usable", async () => {
  await using s = await startServer();
  const client = await s.client();
  assert.match(await client.get("x") ?? "", /^200|^500/); // "get x": a key, not a command error
  await client.send("put a b\n");
  assert.match(await client.line() ?? "", /^400 unknown%20command%20"put"/);
  await client.send("get user@%ZZ\n");
  assert.match(await client.line() ?? "", /^400 bad%20%25-encoding/);
  assert.equal(await client.get("user@contoso.example"), "200 relay:[o365.example]:587");
});

Deno.test("a line over 4096 bytes gets 400 and the connection is closed", async () => {
  await using s = await startServer();
  const client = await s.client();
  await client.send("get " + "a".repeat(5000));
  assert.match(await client.line() ?? "", /^400 request%20longer%20than%204096%20bytes$/);
  assert.equal(await client.line(), null);
  // The server is fine: a new connection works.
  const other = await s.client();
  assert.equal(await other.get("user@contoso.example"), "200 relay:[o365.example]:587");
});

Deno.test("idle connections are closed after --timeout", async () => {
  await using s = await startServer({ idleTimeoutMs: 200 });
  const client = await s.client();
  assert.equal(await client.get("user@contoso.example"), "200 relay:[o365.example]:587");
  const started = Date.now();
  assert.equal(await client.line(3000), null);
  const waited = Date.now() - started;
  assert.ok(waited >= 150 && waited < 2000, `closed after ${waited} ms`);
  assert.equal(s.server.connections, 0);
});

Deno.test("many concurrent connections are served", async () => {
  await using s = await startServer();
  const clients = await Promise.all(Array.from({ length: 50 }, () => s.client()));
  const replies = await Promise.all(clients.map((c, i) => c.get(`u${i}@contoso.example`)));
  for (const reply of replies) assert.equal(reply, "200 relay:[o365.example]:587");
  assert.equal(s.resolver.total, 1);
});

Deno.test("past --max-connections with every reply under way, a new connection is still served", async () => {
  // Clients that pipeline requests and never read the replies look busy for minutes: the one
  // that waited longest gives way, so Postfix is never locked out.
  await using s = await startServer({ maxConnections: 2 });
  const a = await s.client();
  const b = await s.client();
  s.resolver.hold();
  await a.send("get user@contoso.example\n");
  await b.send("get user@gmail.example\n");
  await new Promise((resolve) => setTimeout(resolve, 50));
  const c = await s.client();
  await c.send("get user@contoso.example\n");
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(s.limit.refused, 0);
  assert.equal(s.limit.evicted, 1);
  s.resolver.release();
  assert.equal(await a.line().catch(() => null), null, "the one waiting longest was closed");
  assert.equal(await b.line(), "200 smtp:[a.example]:25,%20[b.example]:25");
  assert.equal(await c.line(), "200 relay:[o365.example]:587");
});

Deno.test("the --max-connections lock-out fails: a client holding every connection with a cached lookup a second on each cannot keep a new one out", async () => {
  const max = 20;
  await using s = await startServer({ maxConnections: max });
  const hoarded = await Promise.all(Array.from({ length: max }, () => s.client()));
  assert.equal(await hoarded[0].get("user@contoso.example"), "200 relay:[o365.example]:587");
  // Each connection asks once a second, spread over the second: none is ever idle for long.
  let asking = true;
  const hoarding = hoarded.map(async (client, i) => {
    await new Promise((resolve) => setTimeout(resolve, (i * 1000) / max));
    while (asking) {
      if (await client.get("user@contoso.example").catch(() => null) === null) return "closed";
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    return "served";
  });
  try {
    await new Promise((resolve) => setTimeout(resolve, 2500));
    for (let i = 0; i < 3; i++) {
      // Postfix's connection, new each time (it reconnects after finding its own closed).
      const postfix = await s.client();
      assert.equal(
        await postfix.get(`user${i}@gmail.example`),
        "200 smtp:[a.example]:25,%20[b.example]:25",
        `new connection ${i + 1} served`,
      );
    }
    // Long enough for every hoarding client to ask again and find out.
    await new Promise((resolve) => setTimeout(resolve, 1200));
  } finally {
    asking = false;
  }
  const ends = await Promise.all(hoarding);
  assert.equal(s.limit.refused, 0);
  assert.equal(s.limit.evicted, 3);
  assert.equal(ends.filter((end) => end === "closed").length, 3, "one hoarded connection each");
});

Deno.test("a hoarded connection that only drips bytes gives way before one that asks", async () => {
  await using s = await startServer({ maxConnections: 2 });
  const dripping = await s.client();
  const asking = await s.client();
  await dripping.send("get user@conto");
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setTimeout(resolve, 30));
    await dripping.send("s"); // bytes of an unfinished request: not a request answered
    assert.equal(await asking.get("user@contoso.example"), "200 relay:[o365.example]:587");
  }
  const postfix = await s.client();
  assert.equal(await postfix.get("user@other.example"), "500 NO%20RESULT");
  assert.equal(await dripping.line().catch(() => null), null, "the dripping one was closed");
  assert.equal(await asking.get("user@contoso.example"), "200 relay:[o365.example]:587");
});

Deno.test("stop answers requests already read, then closes", async () => {
  const s = await startServer();
  const client = await s.client();
  s.resolver.hold();
  await client.send("get user@contoso.example\n");
  await new Promise((resolve) => setTimeout(resolve, 30));
  const stopping = s.server.stop(2000);
  setTimeout(() => s.resolver.release(), 50);
  assert.equal(await client.line(), "200 relay:[o365.example]:587");
  await stopping;
  assert.equal(await client.line(), null);
  client.close();
  await s[Symbol.asyncDispose]();
});

Deno.test("a request dripped byte by byte is cut off after the request timeout", async () => {
  await using s = await startServer({ idleTimeoutMs: 300 });
  const client = await s.client();
  const started = Date.now();
  let closed = false;
  for (const byte of "get user@contoso.example-never-ending") {
    try {
      await client.send(byte);
    } catch {
      closed = true;
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 60));
    if (s.server.connections === 0) {
      closed = true;
      break;
    }
  }
  assert.ok(closed, "the dripping connection was closed");
  const waited = Date.now() - started;
  assert.ok(waited >= 250 && waited < 2000, `closed after ${waited} ms`);
});

Deno.test("after a request long enough to grow the buffer, the connection serves on", async () => {
  await using s = await startServer();
  const client = await s.client();
  // 3 kB: over the first buffer, under the line bound; sent in two parts, so the buffer grows.
  const key = "x".repeat(3000) + "@other.example";
  await client.send(`get ${key.slice(0, 1500)}`);
  await new Promise((resolve) => setTimeout(resolve, 20));
  await client.send(`${key.slice(1500)}\nget user@contoso.example\n`);
  assert.equal(await client.line(), "500 NO%20RESULT");
  assert.equal(await client.line(), "200 relay:[o365.example]:587");
  for (const part of ["get user@gmail.", "example\nget user@contoso.example\n"]) {
    await client.send(part);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.equal(await client.line(), "200 smtp:[a.example]:25,%20[b.example]:25");
  assert.equal(await client.line(), "200 relay:[o365.example]:587");
});

Deno.test("a client that makes progress is not cut off, though each read ends mid-request", async () => {
  await using s = await startServer({ idleTimeoutMs: 300 });
  const client = await s.client();
  // Every 60 ms: finish the request begun before and begin the next (9 × 60 ms > 300 ms).
  await client.send("get user@contoso.ex");
  for (let i = 0; i < 9; i++) {
    await new Promise((resolve) => setTimeout(resolve, 60));
    await client.send("ample\nget user@contoso.ex");
    assert.equal(await client.line(), "200 relay:[o365.example]:587", `request ${i + 1}`);
  }
  assert.equal(s.server.connections, 1, "the pipelining connection is still open");
});

Deno.test("a client that never reads its replies cannot make the server buffer without bound", async () => {
  await using s = await startServer({ stuckTimeoutMs: 300 });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
  const chunk = new TextEncoder().encode("get user@contoso.example\n".repeat(4000));
  const flooding = (async () => {
    try {
      for (let i = 0; i < 200; i++) await conn.write(chunk); // 20 MB of requests, never reading
    } catch {
      // the server closed us: expected
    }
  })();
  const deadline = Date.now() + 10_000;
  while (s.server.connections === 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(s.server.connections, 1, "accepted, flooding");
  while (s.server.connections > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal(s.server.connections, 0, "the stuck connection was closed");
  conn.close();
  await flooding;
  const other = await s.client();
  assert.equal(await other.get("user@contoso.example"), "200 relay:[o365.example]:587");
});

Deno.test("failed accepts (out of file descriptors) are logged once a minute, not at every retry", async () => {
  const parsed = parseConfig(RULES, "test.conf");
  if (!parsed.ok) throw new Error("bad rules");
  const cache = new MxCache<Decision>({
    resolver: new FakeResolver(),
    options: DEFAULT_CACHE_OPTIONS,
  });
  let failures = 0;
  const listener = {
    accept() {
      // Five failures, then the listener is closed.
      if (++failures > 5) return Promise.reject(new Deno.errors.BadResource("closed"));
      return Promise.reject(new Error("Too many open files (os error 24)"));
    },
    close() {},
  } as unknown as Deno.Listener;
  const lines: string[] = [];
  configureSync({
    sinks: {
      test: (record: LogRecord) => lines.push(record.message.map((part) => String(part)).join("")),
    },
    loggers: [
      { category: LOG_CATEGORY, lowestLevel: "debug", sinks: ["test"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
    ],
  });
  try {
    await new TableServer({
      listener,
      codec: tcpTableCodec,
      router: new Router({ cache, ruleSet: parsed.value.ruleSet }),
      idleTimeoutMs: 0,
      stuckTimeoutMs: 1000,
      limit: new ConnectionLimit(10),
    }).serve();
  } finally {
    resetSync();
  }
  assert.equal(failures, 6);
  assert.deepEqual(lines, [
    "tcp_table: accept failed: Too many open files (os error 24); retrying every 100 ms",
  ]);
});
