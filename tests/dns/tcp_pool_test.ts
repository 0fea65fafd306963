import assert from "node:assert/strict";
import { createResolver, type DnsQueryEvent } from "../../lib/dns/resolver.ts";
import { TcpPool } from "../../lib/dns/tcp_pool.ts";
import { interpretReply } from "../../lib/dns/answer.ts";
import type { Exchange, ExchangeRequest } from "../../lib/dns/transport.ts";
import type { DnsServer } from "../../lib/dns/types.ts";
import { formatHostPort } from "../../lib/common/address.ts";
import { closeQuietly } from "../../lib/common/errors.ts";
import { replyTo, startFakeDns, tcpMessages } from "../support/fake_dns.ts";

/** Waits (up to a second) until `done` says so; the assertions after it tell what failed. */
async function waitUntil(done: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !done(); i++) await new Promise((r) => setTimeout(r, 10));
}

/** The question name of a query (uncompressed, as the router writes it). */
function questionName(query: Uint8Array): string {
  const labels: string[] = [];
  for (let offset = 12; query[offset] !== 0; offset += query[offset] + 1) {
    labels.push(new TextDecoder().decode(query.subarray(offset + 1, offset + 1 + query[offset])));
  }
  return labels.join(".");
}

/** An MX answer naming `mx.<name>`, as the server's reply to `query`. */
function mxReply(query: Uint8Array): Uint8Array {
  const name = questionName(query);
  return replyTo(query, {
    answers: [{
      type: "MX",
      name,
      ttl: 300,
      class: "IN",
      data: { preference: 10, exchange: `mx.${name}` },
    }],
  });
}

function framed(message: Uint8Array): Uint8Array {
  const frame = new Uint8Array(message.length + 2);
  frame[0] = message.length >> 8;
  frame[1] = message.length & 0xff;
  frame.set(message, 2);
  return frame;
}

/** What a scripted server is told of each query. */
interface QueryContext {
  /** Which connection (0 for the first accepted). */
  connection: number;
  query: Uint8Array;
  send(reply: Uint8Array): void;
  /** Writes bytes as they are (already framed), in pieces of `piece` bytes. */
  sendRaw(bytes: Uint8Array, piece: number): void;
  /** Closes this connection. */
  hangUp(): void;
}

/** A DNS-over-TCP server whose every answer the test scripts. */
class ScriptedTcpServer {
  readonly server: DnsServer;
  /** Queries by connection, in arrival order. */
  readonly queries: Uint8Array[][] = [];
  /** Connections the client closed (read returned end of stream), by index. */
  readonly closedByClient: number[] = [];
  readonly #listener: Deno.TcpListener;
  readonly #conns = new Set<Deno.TcpConn>();
  readonly #tasks: Promise<void>[] = [];

  constructor(onQuery: (context: QueryContext) => void) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.server = { host: "127.0.0.1", port: this.#listener.addr.port };
    this.#tasks.push(this.#accept(onQuery));
  }

  async #accept(onQuery: (context: QueryContext) => void): Promise<void> {
    for await (const conn of this.#listener) {
      const connection = this.queries.length;
      this.queries.push([]);
      this.#conns.add(conn);
      this.#tasks.push(this.#serve(conn, connection, onQuery));
    }
  }

  async #serve(
    conn: Deno.TcpConn,
    connection: number,
    onQuery: (context: QueryContext) => void,
  ): Promise<void> {
    const context = {
      connection,
      send: (reply: Uint8Array) => conn.write(framed(reply)).catch(() => {}),
      sendRaw: async (bytes: Uint8Array, piece: number) => {
        for (let offset = 0; offset < bytes.length; offset += piece) {
          const part = bytes.subarray(offset, Math.min(offset + piece, bytes.length));
          for (let written = 0; written < part.length;) {
            written += await conn.write(part.subarray(written));
          }
          await new Promise((resolve) => setTimeout(resolve, 0));
        }
      },
      hangUp: () => closeQuietly(conn),
    };
    try {
      for await (const query of tcpMessages(conn)) {
        this.queries[connection].push(query);
        onQuery({ ...context, query });
      }
      this.closedByClient.push(connection);
    } catch {
      // Hung up by the script.
    } finally {
      this.#conns.delete(conn);
      closeQuietly(conn);
    }
  }

  async close(): Promise<void> {
    closeQuietly(this.#listener);
    for (const conn of this.#conns) closeQuietly(conn);
    await Promise.allSettled(this.#tasks);
  }
}

function request(server: DnsServer, name: string, waitMs = 2000): ExchangeRequest {
  return { server, from: formatHostPort(server), name, deadline: performance.now() + waitMs };
}

/** The MX host an exchange for `name` answered (the scripted servers answer `mx.<name>`). */
function mxHostOf(exchange: Exchange, name: string): string {
  assert.equal(exchange.kind, "reply", JSON.stringify(exchange));
  if (exchange.kind !== "reply") return "";
  const outcome = interpretReply(exchange.reply, { name, from: "test" });
  return outcome.kind === "mx" ? outcome.hosts.join(",") : outcome.kind;
}

Deno.test("--dns-tcp: lookups go over TCP, never UDP, with the answers UDP gives", async () => {
  const fake = await startFakeDns({
    zone: {
      "a.example": { kind: "mx", records: [{ preference: 10, exchange: "mx.a.example" }] },
      "b.example": { kind: "nxdomain", soa: { ttl: 600, minimum: 60 } },
      "c.example": { kind: "servfail" },
    },
  });
  const events: DnsQueryEvent[] = [];
  try {
    await using resolver = createResolver({
      servers: [fake.server],
      timeoutMs: 2000,
      transport: "tcp",
      onQuery: (event) => events.push(event),
    });
    const [a, b, c] = await Promise.all(
      ["a.example", "b.example", "c.example"].map((name) => resolver.resolveMx(name)),
    );
    assert.deepEqual(a, { kind: "mx", hosts: ["mx.a.example"], ttl: 300 });
    assert.deepEqual(b, { kind: "nxdomain", negativeTtl: 60 });
    assert.equal(c.kind, "tempfail");
    assert.match(c.kind === "tempfail" ? c.reason : "", /SERVFAIL/);
    assert.equal(fake.udpSources.length, 0, "nothing went over UDP");
    assert.equal(fake.queriesFor("c.example"), 2, "SERVFAIL is retried as over UDP");
    assert.ok(events.every((event) => event.transport === "tcp"), JSON.stringify(events));
  } finally {
    await fake.close();
  }
});

Deno.test("concurrent queries: one connection each up to the limit, the rest wait their turn", async () => {
  const held: QueryContext[] = [];
  const scripted = new ScriptedTcpServer((context) => {
    held.push(context);
    // Answer the first four at once, last asked first; later ones at once.
    if (held.length === 4) { for (const { query, send } of held.reverse()) send(mxReply(query)); }
    if (held.length > 4) context.send(mxReply(context.query));
  });
  const pool = new TcpPool({ maxConnectionsPerServer: 4 });
  try {
    const names = Array.from({ length: 10 }, (_, i) => `d${i}.example`);
    const exchanges = await Promise.all(
      names.map((n) => pool.exchange(request(scripted.server, n))),
    );
    for (const [i, exchange] of exchanges.entries()) {
      assert.equal(mxHostOf(exchange, names[i]), `mx.${names[i]}`);
    }
    assert.equal(scripted.queries.length, 4, "four connections, kept for the queries after");
    assert.equal(scripted.queries.flat().length, 10);
    assert.ok(scripted.queries.every((queries) => queries.length >= 1));
  } finally {
    await pool.close();
    await scripted.close();
  }
});

Deno.test("one query at a time per connection: the next is sent only after the answer", async () => {
  let inFlight = 0;
  let most = 0;
  const scripted = new ScriptedTcpServer((context) => {
    most = Math.max(most, ++inFlight);
    setTimeout(() => {
      inFlight--;
      context.send(mxReply(context.query));
    }, 5);
  });
  const pool = new TcpPool({ maxConnectionsPerServer: 1 });
  try {
    const names = Array.from({ length: 5 }, (_, i) => `s${i}.example`);
    const exchanges = await Promise.all(
      names.map((n) => pool.exchange(request(scripted.server, n))),
    );
    for (const [i, exchange] of exchanges.entries()) {
      assert.equal(mxHostOf(exchange, names[i]), `mx.${names[i]}`);
    }
    assert.equal(most, 1, "never two queries on the connection at once");
    assert.deepEqual(scripted.queries.map((queries) => queries.length), [5]);
  } finally {
    await pool.close();
    await scripted.close();
  }
});
Deno.test("a slow answer does not hold up the ones after it (fake server, delay)", async () => {
  const fake = await startFakeDns({
    zone: {
      "slow.example": {
        kind: "delay",
        ms: 400,
        then: { kind: "mx", records: [{ preference: 1, exchange: "mx.slow.example" }] },
      },
      "fast.example": { kind: "mx", records: [{ preference: 1, exchange: "mx.fast.example" }] },
    },
  });
  const pool = new TcpPool();
  try {
    const started = performance.now();
    const slow = pool.exchange(request(fake.server, "slow.example"));
    const fast = await pool.exchange(request(fake.server, "fast.example"));
    assert.ok(performance.now() - started < 300, "the fast answer came before the slow one");
    assert.equal(mxHostOf(fast, "fast.example"), "mx.fast.example");
    assert.equal(mxHostOf(await slow, "slow.example"), "mx.slow.example");
  } finally {
    await pool.close();
    await fake.close();
  }
});

Deno.test("no answer: timeout by the deadline; that connection is closed, the next query opens one", async () => {
  const scripted = new ScriptedTcpServer((context) => {
    if (context.connection > 0) context.send(mxReply(context.query));
  });
  const pool = new TcpPool();
  try {
    const started = performance.now();
    const silent = await pool.exchange(request(scripted.server, "silent.example", 200));
    const elapsed = performance.now() - started;
    assert.equal(silent.kind, "fail");
    assert.equal(silent.kind === "fail" && silent.failure.cause, "timeout");
    assert.match(silent.kind === "fail" ? silent.failure.reason : "", /over TCP within 200 ms/);
    assert.ok(elapsed >= 190 && elapsed < 1000, `ended after ${elapsed} ms`);
    const next = await pool.exchange(request(scripted.server, "next.example"));
    assert.equal(mxHostOf(next, "next.example"), "mx.next.example");
    assert.equal(scripted.queries.length, 2, "the next query took a new connection");
  } finally {
    await pool.close();
    await scripted.close();
  }
});

Deno.test("the server hangs up under a query: it is sent once more on a new connection", async () => {
  const scripted = new ScriptedTcpServer((context) => {
    if (context.connection === 0) context.hangUp();
    else context.send(mxReply(context.query));
  });
  const pool = new TcpPool();
  try {
    const started = performance.now();
    const answer = await pool.exchange(request(scripted.server, "a.example"));
    assert.equal(mxHostOf(answer, "a.example"), "mx.a.example");
    assert.ok(performance.now() - started < 1000, "at once, not after a timeout");
    assert.deepEqual(scripted.queries.map((queries) => queries.length), [1, 1]);
    const [first, second] = scripted.queries.map(([query]) => (query[0] << 8) | query[1]);
    assert.notEqual(first, second, "a new ID on the new connection");
  } finally {
    await pool.close();
    await scripted.close();
  }
});

Deno.test("a server that hangs up again: the query fails at once, the resolver retries", async () => {
  // Connections 0 and 1 are the pipeliner's (the query and its one resend), 2 and 3 the
  // resolver's first attempt; the resolver's second attempt is answered.
  const scripted = new ScriptedTcpServer((context) => {
    if (context.connection < 4) context.hangUp();
    else context.send(mxReply(context.query));
  });
  try {
    const pool = new TcpPool();
    const started = performance.now();
    const failed = await pool.exchange(request(scripted.server, "a.example"));
    assert.equal(failed.kind === "fail" && failed.failure.cause, "network");
    assert.match(
      failed.kind === "fail" ? failed.failure.reason : "",
      /over TCP: connection closed/,
    );
    assert.ok(performance.now() - started < 1000);
    await pool.close();

    await using resolver = createResolver({
      servers: [scripted.server],
      timeoutMs: 2000,
      transport: "tcp",
    });
    const outcome = await resolver.resolveMx("b.example");
    assert.deepEqual(outcome, { kind: "mx", hosts: ["mx.b.example"], ttl: 300 });
    assert.ok(performance.now() - started < 1000, "no timeout waited for");
    assert.equal(scripted.queries.length, 5);
  } finally {
    await scripted.close();
  }
});

Deno.test("nothing listening: the query fails at once as a network error", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = { host: "127.0.0.1", port: listener.addr.port };
  listener.close();
  const pool = new TcpPool();
  try {
    const started = performance.now();
    const failed = await pool.exchange(request(server, "a.example"));
    assert.equal(failed.kind === "fail" && failed.failure.cause, "network");
    assert.match(failed.kind === "fail" ? failed.failure.reason : "", /over TCP: connect: /);
    assert.ok(performance.now() - started < 1000);
  } finally {
    await pool.close();
  }
});

Deno.test("an answer with our ID but another question is malformed, not used", async () => {
  const scripted = new ScriptedTcpServer((context) => {
    context.send(replyTo(context.query, { questionName: "other.example" }));
  });
  const pool = new TcpPool();
  try {
    const failed = await pool.exchange(request(scripted.server, "a.example"));
    assert.equal(failed.kind === "fail" && failed.failure.cause, "malformed");
    assert.match(failed.kind === "fail" ? failed.failure.reason : "", /over TCP/);
  } finally {
    await pool.close();
    await scripted.close();
  }
});

Deno.test("an answer to a timed-out query never meets the next one (its connection is closed)", async () => {
  let first: QueryContext | null = null;
  const scripted = new ScriptedTcpServer((context) => {
    if (first === null) {
      first = context;
      return;
    }
    first.send(mxReply(first.query)); // Late, for the query that gave up.
    context.send(mxReply(context.query));
  });
  const pool = new TcpPool();
  try {
    const gaveUp = await pool.exchange(request(scripted.server, "old.example", 100));
    assert.equal(gaveUp.kind === "fail" && gaveUp.failure.cause, "timeout");
    const next = await pool.exchange(request(scripted.server, "new.example"));
    assert.equal(mxHostOf(next, "new.example"), "mx.new.example");
    assert.equal(scripted.queries.length, 2, "the next query went on a new connection");
    await waitUntil(() => scripted.closedByClient.includes(0));
    assert.ok(scripted.closedByClient.includes(0), "the timed-out query's connection was closed");
  } finally {
    await pool.close();
    await scripted.close();
  }
});

Deno.test("an idle connection is closed by us; the next query opens a new one", async () => {
  const scripted = new ScriptedTcpServer((context) => context.send(mxReply(context.query)));
  const pool = new TcpPool({ idleCloseMs: 100 });
  try {
    assert.equal(
      mxHostOf(await pool.exchange(request(scripted.server, "a.example")), "a.example"),
      "mx." + "a.example",
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(
      mxHostOf(await pool.exchange(request(scripted.server, "b.example")), "b.example"),
      "mx." + "b.example",
    );
    assert.equal(scripted.queries.length, 1, "used again within the idle time");
    await waitUntil(() => scripted.closedByClient.length > 0);
    assert.deepEqual(scripted.closedByClient, [0]);
    assert.equal(
      mxHostOf(await pool.exchange(request(scripted.server, "c.example")), "c.example"),
      "mx." + "c.example",
    );
    assert.equal(scripted.queries.length, 2);
  } finally {
    await pool.close();
    await scripted.close();
  }
});

Deno.test("close() (even twice) lets pending queries end, then closes the connections", async () => {
  let held: QueryContext | null = null;
  const scripted = new ScriptedTcpServer((context) => held = context);
  const pool = new TcpPool();
  try {
    const answer = pool.exchange(request(scripted.server, "a.example"));
    await waitUntil(() => held !== null);
    const closed = pool.close();
    const closedAgain = pool.close(); // The same wait, not a second one that never ends.
    const refused = await pool.exchange(request(scripted.server, "b.example"));
    assert.match(refused.kind === "fail" ? refused.failure.reason : "", /resolver closed/);
    held!.send(mxReply(held!.query));
    assert.equal(mxHostOf(await answer, "a.example"), "mx.a.example");
    await Promise.all([closed, closedAgain]);
    await waitUntil(() => scripted.closedByClient.length > 0);
    assert.deepEqual(scripted.closedByClient, [0]);
  } finally {
    await scripted.close();
  }
});

Deno.test("answers up to 64 kB, split across reads, are framed right", async () => {
  const big = (query: Uint8Array, count: number) => {
    const name = questionName(query);
    return replyTo(query, {
      answers: Array.from({ length: count }, (_, i) => ({
        type: "MX" as const,
        name,
        ttl: 300,
        class: "IN",
        data: { preference: i, exchange: `mx${i}.${"x".repeat(40)}.${name}` },
      })),
    });
  };
  const scripted = new ScriptedTcpServer((context) => {
    const reply = big(context.query, 600);
    assert.ok(reply.length > 40_000 && reply.length < 65_535, `${reply.length} bytes`);
    context.sendRaw(framed(reply), 997);
  });
  const pool = new TcpPool({ maxConnectionsPerServer: 1 });
  try {
    // Two in turn on one connection: the second answer's frame starts where the first ended.
    for (const name of ["b1.example", "b2.example"]) {
      const answer = await pool.exchange(request(scripted.server, name));
      assert.equal(answer.kind, "reply", JSON.stringify(answer).slice(0, 200));
      const size = answer.kind === "reply" ? answer.reply.packet?.answers?.length : 0;
      assert.equal(size, 600);
    }
    assert.deepEqual(scripted.queries.map((queries) => queries.length), [2]);
  } finally {
    await pool.close();
    await scripted.close();
  }
});
/** Sockets of this host in SYN-SENT towards `port` (from /proc/net/tcp). */
function synSentTo(port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  return Deno.readTextFileSync("/proc/net/tcp").split("\n").slice(1)
    .filter((line) => {
      const fields = line.trim().split(/\s+/);
      return fields[2]?.endsWith(`:${hexPort}`) && fields[3] === "02";
    }).length;
}

Deno.test("a connect that hangs (full backlog): the query times out and the connect is abandoned", async () => {
  // A listener that never accepts, its backlog filled: the next connect waits for minutes.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  const filling: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 4096; i++) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const conn = await Promise.race([
        Deno.connect({ hostname: "127.0.0.1", port }),
        new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), 200)),
      ]);
      clearTimeout(timer);
      if (conn === null) break;
      filling.push(conn);
    }
    // The connect that found the backlog full is still pending: count it out.
    const baseline = synSentTo(port);
    const pool = new TcpPool();
    const started = performance.now();
    const answer = await pool.exchange(request({ host: "127.0.0.1", port }, "a.example", 200));
    assert.equal(answer.kind === "fail" && answer.failure.cause, "timeout");
    assert.ok(performance.now() - started < 1000);
    await pool.close();
    assert.ok(performance.now() - started < 1000, "close() did not wait for the connect");
    // The socket closes a moment after the abort.
    await waitUntil(() => synSentTo(port) <= baseline);
    assert.equal(synSentTo(port), baseline, "our half-open connect was closed");
  } finally {
    for (const conn of filling) closeQuietly(conn);
    closeQuietly(listener);
  }
});

Deno.test("idle connections the server has dropped: a query lost on one is sent on a new one", async () => {
  let dropOld = false;
  const scripted = new ScriptedTcpServer((context) => {
    // After a server restart every old connection is cut when used; new ones answer.
    if (dropOld && context.connection < 3) context.hangUp();
    else context.send(mxReply(context.query));
  });
  const pool = new TcpPool();
  try {
    const warm = ["w1.example", "w2.example", "w3.example"];
    await Promise.all(warm.map((name) => pool.exchange(request(scripted.server, name))));
    assert.equal(scripted.queries.length, 3, "three connections kept");
    dropOld = true;
    const answer = await pool.exchange(request(scripted.server, "after.example"));
    assert.equal(mxHostOf(answer, "after.example"), "mx.after.example");
    assert.equal(scripted.queries.length, 4, "resent on a new connection, not another old one");
  } finally {
    await pool.close();
    await scripted.close();
  }
});

Deno.test("a liveness probe (urgent) takes a connection of its own when all are busy, and gives it back", async () => {
  // Answers the probe `. NS`; never the lookup that holds the only connection.
  const scripted = new ScriptedTcpServer(({ query, send }) => {
    if (questionName(query) === "") send(replyTo(query, { rcode: 3 }));
  });
  const pool = new TcpPool({ maxConnectionsPerServer: 1 });
  try {
    const stuck = pool.exchange(request(scripted.server, "slow.example", 1500));
    await waitUntil(() => scripted.queries.length === 1);
    const started = performance.now();
    const probe = await pool.exchange({
      ...request(scripted.server, ".", 1000),
      type: "NS",
      urgent: true,
    });
    assert.equal(probe.kind, "reply", JSON.stringify(probe));
    assert.ok(performance.now() - started < 500, "not queued behind the stuck lookup");
    assert.equal(scripted.queries.length, 2, "on a second connection");
    // Over the maximum, the probe's connection is closed rather than kept idle.
    await waitUntil(() => scripted.closedByClient.length === 1);
    assert.deepEqual(scripted.closedByClient, [1]);
    assert.equal((await stuck).kind, "fail");
  } finally {
    await pool.close();
    await scripted.close();
  }
});
