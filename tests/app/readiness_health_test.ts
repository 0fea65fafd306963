/**
 * The router process under systemd's eyes and a monitor's: Type=notify messages on a fake
 * NOTIFY_SOCKET, the start-up DNS probe, `GET /healthz`, and the `health` subcommand.
 *
 * Stable Deno cannot open a unix datagram socket, so the fake NOTIFY_SOCKET is a python3 one.
 *
 * @module
 */

import assert from "node:assert/strict";
import { isCi } from "../support/e2e_env.ts";
import { findBinary, freePort, run, spawnCaptured, waitFor } from "../support/e2e_util.ts";
import { startFakeDns } from "../support/fake_dns.ts";
import { RULES, startRouterFixture } from "../support/router_fixture.ts";
import {
  compilePermissionFlags,
  PROJECT_ROOT,
  startRouter,
  withExtraPaths,
} from "../support/router_process.ts";

/**
 * Receives datagrams on a unix socket and prints each as a JSON string line. `recv` without
 * room for ancillary data closes the descriptors a message carries: systemd-notify's BARRIER=1
 * pipe is closed, which is the acknowledgement systemd gives once it has read the messages.
 */
const NOTIFY_SOCKET_SCRIPT = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
while True:
    print(json.dumps(s.recv(65536).decode()), flush=True)
`;

/** Declares a test that needs these programs: skipped where missing, failed under CI=true. */
function testNeeding(programs: string[], name: string, fn: () => Promise<void>): void {
  const missing = programs.filter((program) => findBinary(program) === null);
  if (missing.length === 0) {
    Deno.test(name, fn);
  } else if (isCi()) {
    Deno.test(name, () => {
      throw new Error(`CI=true and ${missing.join(", ")} missing: apt-get install systemd python3`);
    });
  } else {
    Deno.test({ name: `${name} (skipped: ${missing.join(", ")} missing)`, ignore: true, fn() {} });
  }
}

testNeeding(
  ["systemd-notify", "python3"],
  "systemd notify: READY=1 after start, RELOADING=1 and READY=1 around SIGHUP, STOPPING=1 on SIGTERM",
  async () => {
    const tmp = await Deno.makeTempDir({ prefix: "mxrouter-notify-" });
    const socketPath = `${tmp}/notify`;
    const receiver = spawnCaptured(findBinary("python3")!, {
      args: ["-c", NOTIFY_SOCKET_SCRIPT, socketPath],
    });
    const messages = () =>
      receiver.stdout().split("\n").slice(1).filter((line) => line !== "")
        .map((line) => JSON.parse(line) as string)
        // The barrier is systemd-notify's own; STATUS alone is the periodic update.
        .filter((message) => message !== "BARRIER=1");
    const dns = await startFakeDns({ fallback: { kind: "nxdomain" } });
    try {
      await waitFor(() => receiver.stdout().startsWith("bound"), {
        what: "the fake NOTIFY_SOCKET",
        detail: () => receiver.stderr(),
      });
      await Deno.writeTextFile(`${tmp}/rules.conf`, RULES);
      const router = await startRouter({
        configPath: `${tmp}/rules.conf`,
        tmpDir: tmp,
        dnsServers: [`127.0.0.1:${dns.port}`],
        env: { NOTIFY_SOCKET: socketPath },
      });
      const seen = (count: number, what: string) =>
        waitFor(() => messages().length >= count, {
          what,
          detail: () => `${JSON.stringify(messages())}\n${router.stderr()}`,
        });
      await seen(1, "READY=1");
      router.kill("SIGHUP");
      await seen(3, "RELOADING=1 and READY=1");
      assert.equal(await router.stop(), 0);
      await seen(4, "STOPPING=1");
      assert.deepEqual(messages().map((message) => message.split("\n")[0]), [
        "READY=1",
        "RELOADING=1",
        "READY=1",
        "STOPPING=1",
      ]);
      assert.match(
        messages()[0],
        /^READY=1\nSTATUS=0 lookups, cache hit ratio -, 0 DNS failures$/,
      );
      assert.doesNotMatch(router.stderr(), /systemd notification/, "no failure logged");
    } finally {
      await receiver.stop();
      await dns.close();
      await Deno.remove(tmp, { recursive: true });
    }
  },
);

Deno.test("systemd notify: without NOTIFY_SOCKET, systemd-notify is never run", async () => {
  assert.equal(Deno.env.get("NOTIFY_SOCKET"), undefined, "the test itself runs without it");
  const tmp = await Deno.makeTempDir({ prefix: "mxrouter-notify-" });
  // A systemd-notify first on the PATH that records each run.
  await Deno.mkdir(`${tmp}/bin`);
  const record = `${tmp}/runs`;
  await Deno.writeTextFile(`${tmp}/bin/systemd-notify`, `#!/bin/sh\necho "$@" >> ${record}\n`);
  await Deno.chmod(`${tmp}/bin/systemd-notify`, 0o755);
  await Deno.writeTextFile(`${tmp}/rules.conf`, RULES);
  const dns = await startFakeDns({ fallback: { kind: "nxdomain" } });
  const runs = () => Deno.readTextFile(record).catch(() => "");
  try {
    const startStop = async (env: Record<string, string>) => {
      const router = await startRouter({
        configPath: `${tmp}/rules.conf`,
        tmpDir: tmp,
        dnsServers: [`127.0.0.1:${dns.port}`],
        env: { PATH: `${tmp}/bin:${Deno.env.get("PATH")}`, ...env },
      });
      router.kill("SIGHUP");
      await waitFor(() => router.stderr().includes("reloaded"), { what: "the reload" });
      assert.equal(await router.stop(), 0);
    };
    await startStop({});
    assert.equal(await runs(), "", "nothing run without NOTIFY_SOCKET");
    // The same router with NOTIFY_SOCKET runs the recorder: the PATH trick works.
    await startStop({ NOTIFY_SOCKET: `${tmp}/nowhere` });
    assert.match(await runs(), /^READY=1 STATUS=.*\nRELOADING=1\nREADY=1 STATUS=.*\nSTOPPING=1\n$/);
  } finally {
    await dns.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("without permission to read NOTIFY_SOCKET: an error with the fix, and the router serves", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "mxrouter-notify-" });
  const dns = await startFakeDns({ fallback: { kind: "nxdomain" } });
  const port = await freePort();
  // The compile task's flags but an --allow-env without NOTIFY_SOCKET, as an old wrapper has.
  const flags = withExtraPaths(await compilePermissionFlags(), [tmp]).map((flag) =>
    flag.startsWith("--allow-env=") ? "--allow-env=JOURNAL_STREAM" : flag
  );
  await Deno.writeTextFile(`${tmp}/rules.conf`, RULES);
  const router = spawnCaptured(Deno.execPath(), {
    args: ["run", "--no-prompt", ...flags, `${PROJECT_ROOT}/main.ts`, "-c", `${tmp}/rules.conf`]
      .concat(["-p", String(port), "--dns-server", `127.0.0.1:${dns.port}`]),
    env: { NO_COLOR: "1", NOTIFY_SOCKET: `${tmp}/notify` },
  });
  try {
    await waitFor(() => router.stderr().includes(`listening on 127.0.0.1:${port}`), {
      what: "listening",
      detail: () => router.stderr(),
    });
    assert.match(
      router.stderr(),
      /cannot read NOTIFY_SOCKET \(.*\): systemd is not told that the router is ready, and a Type=notify start times out; run it with --allow-env=NOTIFY_SOCKET --allow-run=systemd-notify/,
    );
  } finally {
    await router.stop();
    await dns.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("a --dns-server that does not answer: an error naming it and the fix, and the router starts", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "mxrouter-deaddns-" });
  const silent = await startFakeDns({ fallback: { kind: "silence" } });
  const metricsPort = await freePort();
  try {
    await Deno.writeTextFile(`${tmp}/rules.conf`, RULES);
    const router = await startRouter({
      configPath: `${tmp}/rules.conf`,
      tmpDir: tmp,
      dnsServers: [`127.0.0.1:${silent.port}`],
      args: ["--metrics", `127.0.0.1:${metricsPort}`],
    });
    try {
      const error = new RegExp(
        `DNS server 127\\.0\\.0\\.1:${silent.port} does not answer: no reply within 1000 ms to a ` +
          "liveness probe \\(\\. NS\\); lookups it should answer get 400 \\(Postfix defers\\) " +
          `until it does\\. Fix: start the resolver on 127\\.0\\.0\\.1:${silent.port}, or name a ` +
          "working server with --dns-server or in /etc/resolv\\.conf",
      );
      await waitFor(() => error.test(router.stderr()), {
        what: "the error naming the silent DNS server",
        detail: () => router.stderr(),
      });
      assert.equal(silent.queriesFor("."), 1, "probed once with . NS");
      // Serving: a key that needs no DNS is answered; a domain gets 400 at once (server down).
      const health = await runMain(["health", "--tcp", `127.0.0.1:${router.port}`], tmp);
      assert.equal(health.code, 0, health.stdout);
      // /healthz says why, with the server and since when.
      const response = await fetch(`http://127.0.0.1:${metricsPort}/healthz`);
      assert.equal(response.status, 503);
      assert.match(
        await response.text(),
        new RegExp(
          `^DNS not answering: 127\\.0\\.0\\.1:${silent.port} down since \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z, never replied\\n$`,
        ),
      );
    } finally {
      await router.stop();
    }
  } finally {
    await silent.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("GET /healthz: 200 ok while DNS answers, before and after lookups", async () => {
  const metricsPort = await freePort();
  await using fixture = await startRouterFixture({
    args: ["--metrics", `127.0.0.1:${metricsPort}`],
  });
  const healthz = async () => {
    const response = await fetch(`http://127.0.0.1:${metricsPort}/healthz`);
    return [response.status, await response.text()];
  };
  assert.deepEqual(await healthz(), [200, "ok\n"]);
  const lookup = await runMain(
    ["health", "--tcp", `127.0.0.1:${fixture.router.port}`, "--key", "a@contoso.test"],
    fixture.tmpDir,
  );
  assert.equal(lookup.code, 0, lookup.stdout);
  assert.deepEqual(await healthz(), [200, "ok\n"]);
  assert.equal(fixture.router.stderr().includes("does not answer"), false, "the probe got a reply");
});

async function runMain(args: string[], tmpDir: string) {
  const flags = withExtraPaths(await compilePermissionFlags(), [tmpDir]);
  return await run(Deno.execPath(), {
    args: ["run", "--no-prompt", ...flags, `${PROJECT_ROOT}/main.ts`, ...args],
  });
}

Deno.test("health subcommand against a running router: OK, CRITICAL for a 400, socketmap too", async () => {
  const socketmapPort = await freePort();
  await using fixture = await startRouterFixture({
    args: (tmp) => [
      "--socketmap",
      `127.0.0.1:${socketmapPort}`,
      "--socketmap",
      `unix:${tmp}/mxroute.sock`,
    ],
  });
  const tcp = `127.0.0.1:${fixture.router.port}`;
  const ok = await runMain(["health", "--tcp", tcp], fixture.tmpDir);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.match(
    ok.stdout,
    new RegExp(
      `^OK: tcp_table ${tcp} answered "500 NO%20RESULT" for health-check@\\[127\\.0\\.0\\.1\\] in [\\d.]+ ms \\| time=[\\d.]+ms;200;2000;0\\n$`,
    ),
  );
  const found = await runMain(["health", "--tcp", tcp, "--key", "a@contoso.test"], fixture.tmpDir);
  assert.equal(found.code, 0, found.stdout);
  assert.match(found.stdout, /answered "200 relay:\[o365\.example\]:587"/);
  const failing = await runMain(
    ["health", "--tcp", tcp, "--key", "a@servfail.test"],
    fixture.tmpDir,
  );
  assert.equal(failing.code, 2, failing.stdout);
  assert.match(
    failing.stdout,
    /^CRITICAL: tcp_table .* answered "400 SERVFAIL.*a temporary failure/,
  );
  const socketmap = await runMain(
    ["health", "--socketmap", `127.0.0.1:${socketmapPort}`],
    fixture.tmpDir,
  );
  assert.equal(socketmap.code, 0, socketmap.stdout);
  assert.match(socketmap.stdout, /^OK: socketmap 127\.0\.0\.1:\d+ answered "NOTFOUND "/);
  const unix = await runMain(
    ["health", "--socketmap", `unix:${fixture.tmpDir}/mxroute.sock`, "--key", "a@contoso.test"],
    fixture.tmpDir,
  );
  assert.equal(unix.code, 0, unix.stdout);
  assert.match(unix.stdout, /^OK: socketmap unix:\S+ answered "OK relay:\[o365\.example\]:587"/);
  const unknown = await runMain(["health", "--warning", "fast"], fixture.tmpDir);
  assert.equal(unknown.code, 3);
  assert.match(unknown.stdout, /^UNKNOWN: option '--warning' needs milliseconds/);
  assert.equal(unknown.stdout.trimEnd().split("\n").length, 1, "one line");
});

Deno.test("health subcommand against a closed port: CRITICAL, connection refused", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "mxrouter-health-" });
  try {
    const port = await freePort();
    const result = await runMain(["health", "--tcp", `127.0.0.1:${port}`], tmp);
    assert.equal(result.code, 2);
    assert.equal(
      result.stdout,
      `CRITICAL: tcp_table 127.0.0.1:${port}: connection refused: is the router running, and on this address?\n`,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
