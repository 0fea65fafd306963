import assert from "node:assert/strict";
import {
  checkHealth,
  type HealthCheckOptions,
  parseHealthArgs,
} from "../../lib/app/health_check.ts";

/**
 * A one-connection server that reads one request and answers `reply` (or nothing when null);
 * `request` resolves with what it read.
 */
function fakeRouter(reply: string | null) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const request = (async () => {
    const conn = await listener.accept();
    const buffer = new Uint8Array(4096);
    const read = await conn.read(buffer);
    const text = new TextDecoder().decode(buffer.subarray(0, read ?? 0));
    if (reply !== null) {
      await conn.write(new TextEncoder().encode(reply));
      conn.close();
    } else {
      // Silent: wait for the client to give up.
      await conn.read(buffer).catch(() => null);
      conn.close();
    }
    return text;
  })();
  const port = (listener.addr as Deno.NetAddr).port;
  return {
    port,
    request,
    close: async () => {
      await request.catch(() => "");
      listener.close();
    },
  };
}

function options(port: number, more: Partial<HealthCheckOptions> = {}): HealthCheckOptions {
  return {
    protocol: "tcp_table",
    address: { transport: "tcp", host: "127.0.0.1", port },
    key: "health-check@[127.0.0.1]",
    warningMs: 200,
    criticalMs: 2000,
    ...more,
  };
}

/** A clock that says `ms` passed between the start and the end of the check. */
const clockTaking = (ms: number) => {
  const times = [1000, 1000 + ms];
  return () => times.shift() ?? 1000 + ms;
};

Deno.test("health args: defaults, --socketmap unix, and UNKNOWN-worthy mistakes", () => {
  assert.deepEqual(parseHealthArgs([]), {
    ok: true,
    value: {
      protocol: "tcp_table",
      address: { transport: "tcp", host: "127.0.0.1", port: 10099 },
      key: "health-check@[127.0.0.1]",
      warningMs: 200,
      criticalMs: 2000,
    },
  });
  assert.deepEqual(
    parseHealthArgs(["--socketmap", "unix:/run/x.sock", "--key", "a@b.example", "--warning", "5"]),
    {
      ok: true,
      value: {
        protocol: "socketmap",
        address: { transport: "unix", path: "/run/x.sock" },
        key: "a@b.example",
        warningMs: 5,
        criticalMs: 2000,
      },
    },
  );
  const errors = [
    [["--tcp", "a:1", "--socketmap", "b:2"], "give --tcp or --socketmap, not both"],
    [["--tcp", "unix:/x"], "option '--tcp' needs HOST:PORT, not 'unix:/x'"],
    [["--tcp", "nohost"], `option '--tcp' "nohost": expected HOST:PORT, [IPv6]:PORT or unix:/path`],
    [["--warning", "0"], "option '--warning' needs milliseconds from 1 to 600000, not '0'"],
    [["--critical", "x"], "option '--critical' needs milliseconds from 1 to 600000, not 'x'"],
    [["--warning", "300", "--critical", "100"], "--warning 300 is over --critical 100"],
    [["--key", ""], "option '--key' needs a key, e.g. postmaster@example.com"],
  ] as const;
  for (const [args, message] of errors) {
    assert.deepEqual(parseHealthArgs([...args]), { ok: false, error: message }, args.join(" "));
  }
  const unknown = parseHealthArgs(["--bogus"]);
  assert.ok(!unknown.ok && /bogus/.test(unknown.error));
});

Deno.test("health: a tcp_table 500 in time is OK, with the request sent and perfdata", async () => {
  const router = fakeRouter("500 NO%20RESULT\n");
  try {
    const result = await checkHealth(options(router.port), { now: clockTaking(0.25) });
    assert.equal(await router.request, "get health-check@[127.0.0.1]\n");
    assert.deepEqual(result, {
      code: 0,
      line: `OK: tcp_table 127.0.0.1:${router.port} answered "500 NO%20RESULT" for ` +
        "health-check@[127.0.0.1] in 0.3 ms | time=0.250ms;200;2000;0",
    });
  } finally {
    await router.close();
  }
});

Deno.test("health: a 200 after the warning threshold is WARNING", async () => {
  const router = fakeRouter("200 relay:[a.example]:25\n");
  try {
    const result = await checkHealth(options(router.port, { key: "x@contoso.example" }), {
      now: clockTaking(350),
    });
    assert.equal(result.code, 1);
    assert.match(
      result.line,
      /^WARNING: tcp_table 127\.0\.0\.1:\d+ answered "200 relay:\[a\.example\]:25" for x@contoso\.example in 350\.0 ms \(warning at 200 ms\) \| time=350\.000ms;200;2000;0$/,
    );
  } finally {
    await router.close();
  }
});

Deno.test("health: a 400 is CRITICAL, whatever the time", async () => {
  const router = fakeRouter("400 SERVFAIL%20from%20127.0.0.1:53\n");
  try {
    const result = await checkHealth(options(router.port), { now: clockTaking(1) });
    assert.equal(result.code, 2);
    assert.match(
      result.line,
      /^CRITICAL: tcp_table 127\.0\.0\.1:\d+ answered "400 SERVFAIL%20from%20127\.0\.0\.1:53" for .* in 1\.0 ms: a temporary failure \(Postfix would defer\) \| time=/,
    );
  } finally {
    await router.close();
  }
});

Deno.test("health: socketmap NOTFOUND is OK, TEMP is CRITICAL; the request is a netstring", async () => {
  for (
    const [reply, code] of [["9:NOTFOUND ,", 0], ["16:TEMP DNS is down,", 2]] as const
  ) {
    const router = fakeRouter(reply);
    try {
      const result = await checkHealth(options(router.port, { protocol: "socketmap" }));
      assert.equal(await router.request, "32:mxroute health-check@[127.0.0.1],");
      assert.equal(result.code, code, result.line);
      assert.match(result.line, /^(OK|CRITICAL): socketmap 127\.0\.0\.1:\d+ answered "/);
    } finally {
      await router.close();
    }
  }
});

Deno.test("health: a closed port is CRITICAL, connection refused", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const result = await checkHealth(options(port));
  assert.deepEqual(result, {
    code: 2,
    line: `CRITICAL: tcp_table 127.0.0.1:${port}: connection refused: is the router running, ` +
      "and on this address?",
  });
});

Deno.test("health: no answer within --critical is CRITICAL", async () => {
  const router = fakeRouter(null);
  try {
    const result = await checkHealth(options(router.port, { warningMs: 10, criticalMs: 50 }));
    assert.deepEqual(result, {
      code: 2,
      line: `CRITICAL: tcp_table 127.0.0.1:${router.port}: no answer within 50 ms`,
    });
  } finally {
    await router.close();
  }
});

Deno.test("health: a reply that is not tcp_table is CRITICAL", async () => {
  const router = fakeRouter("HTTP/1.1 400 Bad Request\r\n");
  try {
    const result = await checkHealth(options(router.port));
    assert.equal(result.code, 2);
    assert.match(result.line, /: not a tcp_table reply \| time=/);
  } finally {
    await router.close();
  }
});
