/**
 * Running the router for years: socketmap over TCP and unix sockets, reload, clean stop, the
 * check and query subcommands, metrics, and the systemd unit's exposure.
 */

import assert from "node:assert/strict";
import { delay, findBinary, freePort, run, spawnCaptured, waitFor } from "./support/e2e_util.ts";
import { isCi } from "./support/e2e_env.ts";
import { postmapQuery } from "./support/postfix.ts";
import { O365, postmapTest, RULES, startRouterFixture, ZONE } from "./support/router_fixture.ts";
import {
  compilePermissionFlags,
  PROJECT_ROOT,
  startRouter,
  withExtraPaths,
} from "./support/router_process.ts";
import { LineClient } from "./support/tcp_client.ts";
import { startFakeDns } from "./support/fake_dns.ts";

const encoder = new TextEncoder();
const netstring = (text: string) => `${encoder.encode(text).length}:${text},`;

async function readUntil(conn: Deno.Conn, done: (text: string) => boolean): Promise<string> {
  const buffer = new Uint8Array(65536);
  let text = "";
  const deadline = Date.now() + 5000;
  while (!done(text)) {
    if (Date.now() > deadline) throw new Error(`timed out; got ${JSON.stringify(text)}`);
    const read = await conn.read(buffer);
    if (read === null) break;
    text += new TextDecoder().decode(buffer.subarray(0, read));
  }
  return text;
}

Deno.test("socketmap over TCP and over a unix socket, with the socket mode asked for", async () => {
  const socketPort = await freePort();
  let socketPath = "";
  await assert.rejects(
    startRouterFixture({
      args: (tmp) => {
        Deno.writeTextFileSync(`${tmp}/taken`, ""); // not a socket: must be refused, not deleted
        return ["--socketmap", `unix:${tmp}/taken`];
      },
    }),
    /taken exists and is not a socket/,
  );
  await assert.rejects(
    startRouterFixture({
      args: (tmp) => ["--socketmap", `unix:${tmp}/twice`, "--socketmap", `unix:${tmp}/twice`],
    }),
    /unix:\S+\/twice is given twice: each address serves one protocol/,
  );
  await using fixture = await startRouterFixture({
    args: (tmp) => {
      socketPath = `${tmp}/mxroute.sock`;
      return [
        "--socketmap",
        `127.0.0.1:${socketPort}`,
        "--socketmap",
        `unix:${socketPath}`,
        "--socket-mode",
        "0640",
      ];
    },
  });
  const stat = await Deno.stat(socketPath);
  assert.equal(stat.isSocket, true);
  assert.equal(stat.mode! & 0o777, 0o640);
  for (
    const conn of [
      await Deno.connect({ hostname: "127.0.0.1", port: socketPort }),
      await Deno.connect({ transport: "unix", path: socketPath }),
    ]
  ) {
    await conn.write(encoder.encode(
      netstring("mxroute a@contoso.test") + netstring("mxroute a@other.test") +
        netstring("mxroute a@servfail.test") + netstring("mxroute"),
    ));
    const replies = await readUntil(conn, (t) => (t.match(/,/g) ?? []).length >= 4);
    assert.match(
      replies,
      /^27:OK relay:\[o365\.example\]:587,9:NOTFOUND ,\d+:TEMP SERVFAIL from 127\.0\.0\.1:\d+,\d+:PERM malformed request: expected "NAME KEY",$/,
    );
    await conn.write(encoder.encode("9x:garbage,"));
    assert.match(
      await readUntil(conn, (t) => t.endsWith(",")),
      /^\d+:PERM malformed netstring length,$/,
    );
    assert.equal(await conn.read(new Uint8Array(10)), null, "closed after a framing error");
    conn.close();
  }
  await fixture.router.stop();
  await assert.rejects(Deno.lstat(socketPath), Deno.errors.NotFound, "socket removed at stop");
});

postmapTest("postmap -q socketmap:inet and socketmap:unix", async (configDir) => {
  const socketPort = await freePort();
  let socketPath = "";
  await using _fixture = await startRouterFixture({
    args: (tmp) => {
      socketPath = `${tmp}/mxroute.sock`;
      return ["--socketmap", `127.0.0.1:${socketPort}`, "--socketmap", `unix:${socketPath}`];
    },
  });
  for (
    const table of [
      `socketmap:inet:127.0.0.1:${socketPort}:mxroute`,
      `socketmap:unix:${socketPath}:mxroute`,
    ]
  ) {
    const found = await postmapQuery({ configDir, table, key: "x@contoso.test" });
    assert.deepEqual([found.code, found.value], [0, O365], table);
    const missing = await postmapQuery({ configDir, table, key: "x@other.test" });
    assert.deepEqual([missing.code, missing.value], [1, null], table);
  }
});

Deno.test("reload with a good and a broken file while a client keeps querying", async () => {
  await using fixture = await startRouterFixture();
  const client = await LineClient.connect(fixture.router.port);
  let stop = false;
  const replies: string[] = [];
  const querying = (async () => {
    while (!stop) replies.push(await client.get("a@other.test") ?? "closed");
  })();
  try {
    await new Promise((r) => setTimeout(r, 100));
    await Deno.writeTextFile(
      fixture.configPath,
      RULES + "suffix:other.test relay:[new.example]:25\n",
    );
    fixture.router.kill("SIGHUP");
    await waitForLog(fixture.router.stderr, /reloaded 4 rules/);
    await new Promise((r) => setTimeout(r, 100));
    await Deno.writeTextFile(fixture.configPath, "/[unclosed/ relay:x\n");
    fixture.router.kill("SIGHUP");
    await waitForLog(
      fixture.router.stderr,
      /reload failed, keeping the old rules: .*rules\.conf, line 1: bad regular expression/,
    );
    await new Promise((r) => setTimeout(r, 100));
  } finally {
    stop = true;
    await querying;
    client.close();
  }
  assert.ok(replies.length > 10, `${replies.length} replies`);
  const kinds = new Set(replies);
  assert.deepEqual([...kinds].sort(), ["200 relay:[new.example]:25", "500 NO%20RESULT"].sort());
  // Before the reload not found, after it the new rule, and the broken file changed nothing.
  const firstNew = replies.indexOf("200 relay:[new.example]:25");
  assert.ok(replies.slice(firstNew).every((r) => r === "200 relay:[new.example]:25"));
});

async function waitForLog(stderr: () => string, pattern: RegExp): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!pattern.test(stderr())) {
    if (Date.now() > deadline) throw new Error(`log never matched ${pattern}:\n${stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Starts the router on a rules file that is a pipe, so its read of the rules waits for the
 * test, mid-start: a signal sent before the rules are written arrives while it is starting.
 */
async function startOnPipe(tmp: string, dnsPort: number) {
  const fifo = `${tmp}/rules.conf`;
  assert.equal((await run("mkfifo", { args: [fifo] })).code, 0);
  const port = await freePort();
  const permissions = withExtraPaths(await compilePermissionFlags(), [tmp]);
  const router = spawnCaptured(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      ...permissions,
      `${PROJECT_ROOT}/main.ts`,
      "-c",
      fifo,
      "-p",
      String(port),
      "--dns-server",
      `127.0.0.1:${dnsPort}`,
    ],
    env: { NO_COLOR: "1" },
  });
  return { fifo, port, router };
}

Deno.test("a SIGHUP while starting (systemctl reload at once) is a reload, not death", async () => {
  const tmp = await Deno.makeTempDir();
  const dns = await startFakeDns({
    zone: { "implicit.test": { kind: "nodata" }, "new.test": { kind: "nodata" } },
  });
  const { fifo, port, router } = await startOnPipe(tmp, dns.port);
  const feed = async (text: string) => {
    // Opening for writing returns once the router has opened the file to read it.
    using file = await Deno.open(fifo, { write: true });
    await file.write(encoder.encode(text));
  };
  try {
    const file = await Deno.open(fifo, { write: true });
    try {
      router.kill("SIGHUP"); // the router is reading its rules: not serving yet
      await delay(300);
      assert.equal(router.exited(), false, `killed by SIGHUP:\n${router.stderr()}`);
      await file.write(encoder.encode(RULES));
    } finally {
      file.close();
    }
    // The reload it owes reads the rules again (once serving, so the first read is closed): a
    // rule added since then is in force after.
    await waitFor(() => router.stderr().includes(`listening on 127.0.0.1:${port}`), {
      what: "listening",
      detail: () => router.stderr(),
    });
    await feed(RULES + "suffix:new.test relay:[new.example]:25\n");
    await waitFor(() => router.stderr().includes("reloaded 4 rules"), {
      what: "the reload",
      detail: () => router.stderr(),
    });
    const client = await LineClient.connect(port);
    assert.equal(await client.get("a@new.test"), "200 relay:[new.example]:25");
    client.close();
  } finally {
    await router.stop();
    await dns.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("a SIGTERM while starting (systemctl stop at once) stops it cleanly once built", async () => {
  const tmp = await Deno.makeTempDir();
  const dns = await startFakeDns({ zone: {} });
  const { fifo, router } = await startOnPipe(tmp, dns.port);
  try {
    const file = await Deno.open(fifo, { write: true });
    try {
      router.kill("SIGTERM"); // the router is reading its rules: not serving yet
      await delay(300);
      assert.equal(router.exited(), false, `killed by SIGTERM:\n${router.stderr()}`);
      await file.write(encoder.encode(RULES));
    } finally {
      file.close();
    }
    const status = await router.status;
    assert.equal(status.code, 0, router.stderr());
    assert.match(router.stderr(), /SIGTERM: stopping/);
  } finally {
    await router.stop();
    await dns.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("SIGTERM with requests in flight: all answered, exit 0", async () => {
  await using fixture = await startRouterFixture();
  const clients = await Promise.all([1, 2, 3].map(() => LineClient.connect(fixture.router.port)));
  try {
    // slow.test answers after 150 ms: these are in flight when SIGTERM arrives.
    for (const [i, client] of clients.entries()) {
      await client.send(`get u${i}@slow.test\nget u${i}@contoso.test\n`);
    }
    await new Promise((r) => setTimeout(r, 50));
    const exit = fixture.router.stop({ timeoutMs: 8000 });
    for (const client of clients) {
      assert.equal(await client.line(), "200 relay:[o365.example]:587");
      assert.equal(await client.line(), "200 relay:[o365.example]:587");
    }
    assert.equal(await exit, 0);
    assert.match(fixture.router.stderr(), /SIGTERM: stopping/);
  } finally {
    for (const client of clients) client.close();
  }
});

async function runMain(args: string[], tmpDir: string, env?: Record<string, string>) {
  const flags = withExtraPaths(await compilePermissionFlags(), [tmpDir]);
  return await run(Deno.execPath(), {
    args: ["run", "--no-prompt", ...flags, `${PROJECT_ROOT}/main.ts`, ...args],
    env,
  });
}

Deno.test("check: lists rules and pools, warns about substrings, exit 0 valid and 1 invalid", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "mxrouter-check-" });
  try {
    const good = `${tmp}/good.conf`;
    await Deno.writeTextFile(
      good,
      RULES + "outlook.com pool:o365\npool:o365 3 relay:[r1]:587 | 1 relay:[r2]:587\n",
    );
    const ok = await runMain(["check", "-c", good], tmp);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /good\.conf: 4 rules/);
    assert.match(
      ok.stdout,
      /line 2: suffix {4}mail\.protection\.outlook\.com -> relay:\[o365\.example\]:587/,
    );
    assert.match(
      ok.stdout,
      /pool o365 \(line 6\), total weight 4:\n {4}weight 3 \(75 %\) -> relay:\[r1\]:587\n {4}weight 1 \(25 %\) -> relay:\[r2\]:587/,
    );
    assert.match(ok.stdout, /good\.conf: valid/);
    assert.match(
      ok.stderr,
      /good\.conf, line 5: warning: substring pattern "outlook\.com".*suffix:outlook\.com/,
    );
    const bad = `${tmp}/bad.conf`;
    await Deno.writeTextFile(bad, "suffix:a.example relay:x\nnope\n/(/ relay:y\n");
    const failed = await runMain(["check", "-c", bad], tmp);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /bad\.conf, line 3: bad regular expression/);
    assert.match(failed.stderr, /bad\.conf: invalid; the router would refuse to start/);
    const missing = await runMain(["check", "-c", `${tmp}/absent.conf`], tmp);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /absent\.conf: cannot read the rules file: no such file/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

postmapTest(
  "check: warnings, transports missing from master.cf, and --strict",
  async (configDir) => {
    // postconf -M reads master.cf from MAIL_CONFIG: a private one with two services.
    await Deno.writeTextFile(
      `${configDir}/master.cf`,
      "smtp      unix  -       -       n       -       -       smtp\n" +
        "relay     unix  -       -       n       -       -       smtp\n",
    );
    const file = `${configDir}/rules.conf`;
    await Deno.writeTextFile(
      file,
      "suffix:mail.protection.outlook.com realy:[o365.example]:587\n" +
        "suffix:google.com smtp:[g.example]:25\nlonely-pattern\n",
    );
    const env = { MAIL_CONFIG: configDir };
    const lenient = await runMain(["check", "-c", file], configDir, env);
    assert.equal(lenient.code, 0, lenient.stderr);
    assert.match(
      lenient.stderr,
      /rules\.conf, line 1: warning: transport "realy" .* not a service in Postfix's master\.cf/,
    );
    assert.doesNotMatch(lenient.stderr, /line 2: warning: transport/);
    assert.match(
      lenient.stderr,
      /rules\.conf, line 3: warning: pattern "lonely-pattern" has no result/,
    );
    assert.match(lenient.stdout, /rules\.conf: 2 rules\n/);
    assert.match(lenient.stdout, /rules\.conf: valid/);
    const strict = await runMain(["check", "--strict", "-c", file], configDir, env);
    assert.equal(strict.code, 1);
    assert.match(strict.stderr, /rules\.conf: 4 warnings; invalid with --strict/);
    // Without postconf on the PATH, check says it could not look.
    const noPostconf = await runMain(["check", "-c", file], configDir, {
      ...env,
      PATH: "/nonexistent",
    });
    assert.equal(noPostconf.code, 0, noPostconf.stderr);
    assert.match(
      noPostconf.stdout,
      /result transports not checked against master\.cf: postconf is not installed here/,
    );
  },
);

Deno.test("a rules file outside the binary's read paths: the error says where to put it", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "mxrouter-paths-" });
  try {
    await Deno.writeTextFile(`${tmp}/rules.conf`, "suffix:outlook.com relay:[a]:25\n");
    // The compile task's permissions as they are: the temporary directory is not among them.
    const flags = await compilePermissionFlags();
    const result = await run(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        ...flags,
        `${PROJECT_ROOT}/main.ts`,
        "check",
        "-c",
        `${tmp}/rules.conf`,
      ],
    });
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /rules\.conf: cannot read the rules file: outside the paths the router may use, .*put the file under \/etc\/postfix, or rebuild/,
    );
    assert.doesNotMatch(result.stderr, /run with a wider/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("query: under a primary: rule, a backup MX at the provider is shown as left out", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "mxrouter-query-" });
  const dns = await startFakeDns({
    zone: {
      "hybrid.test": {
        kind: "mx",
        records: [
          { preference: 10, exchange: "mail.hybrid.test" },
          { preference: 20, exchange: "hybrid-test.mail.protection.outlook.com" },
        ],
        ttl: 300,
      },
    },
  });
  try {
    const config = `${tmp}/rules.conf`;
    await Deno.writeTextFile(config, "primary:provider:microsoft365 relay:[o365.example]:587\n");
    const args = ["query", "-c", config, "--dns-server", `127.0.0.1:${dns.port}`, "u@hybrid.test"];
    const result = await runMain(args, tmp);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stdout, /1\. mail\.hybrid\.test \(primary\) {2}no rule matches/);
    assert.match(
      result.stdout,
      /2\. hybrid-test\.mail\.protection\.outlook\.com {2}matches .*rules\.conf:1 primary:provider:microsoft365 only outside its mode primary/,
    );
    assert.match(result.stdout, /tcp_table reply: 500 NO%20RESULT/);
  } finally {
    await dns.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("providers: lists the catalog with each provider's suffixes and source", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "mxrouter-providers-" });
  try {
    const listed = await runMain(["providers"], tmp);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /microsoft365/);
    assert.match(listed.stdout, /mail\.protection\.outlook\.com, mx\.microsoft/);
    assert.match(listed.stdout, /https:\/\/learn\.microsoft\.com\//);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("query: explains the lookup; exit 0 found, 1 not found, 2 temporary failure", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "mxrouter-query-" });
  const { ZONE } = await import("./support/router_fixture.ts");
  const dns = await startFakeDns({ zone: ZONE });
  try {
    const config = `${tmp}/rules.conf`;
    await Deno.writeTextFile(config, RULES);
    const base = [
      "query",
      "-c",
      config,
      "--dns-server",
      `127.0.0.1:${dns.port}`,
      "--dns-timeout",
      "0.5",
    ];
    const found = await runMain([...base, "a@contoso.test"], tmp);
    assert.equal(found.code, 0, found.stderr);
    assert.match(found.stdout, /dns: {6}NOERROR, TTL 300s: MX records/);
    assert.match(
      found.stdout,
      /1\. contoso-test\.mail\.protection\.outlook\.com \(primary\) {2}matches .*rules\.conf:2 suffix:mail\.protection\.outlook\.com \(mode any\)/,
    );
    assert.match(found.stdout, /2\. backup\.other\.test {2}no rule matches/);
    assert.match(found.stdout, /provider: microsoft365 \(Microsoft 365 \(Exchange Online\)\)\n/);
    assert.match(found.stdout, /tcp_table reply: 200 relay:\[o365\.example\]:587/);
    const utf8 = await runMain([...base, "jörg@müller.test"], tmp);
    assert.match(utf8.stdout, /domain: {3}müller\.test \(ASCII: xn--mller-kva\.test\)/);
    const missing = await runMain([...base, "a@gone.test"], tmp);
    assert.equal(missing.code, 1);
    assert.match(missing.stdout, /NXDOMAIN, TTL 60s/);
    assert.match(missing.stdout, /tcp_table reply: 500 NO%20RESULT/);
    const failed = await runMain([...base, "--json", "a@servfail.test"], tmp);
    assert.equal(failed.code, 2);
    const report = JSON.parse(failed.stdout)[0];
    assert.equal(report.decision.label, "tempfail");
    assert.match(report.tcpTableReply, /^400 SERVFAIL/);
    const matched = JSON.parse((await runMain([...base, "--json", "a@contoso.test"], tmp)).stdout);
    assert.equal(
      matched[0].decision.reason,
      "contoso-test.mail.protection.outlook.com matches line 2",
    );
    // --dns-tcp asks the same server over TCP only, with the same answer.
    const udpBefore = dns.udpSources.length;
    const overTcp = await runMain([...base, "--dns-tcp", "a@contoso.test"], tmp);
    assert.equal(overTcp.code, 0, overTcp.stderr);
    assert.match(overTcp.stdout, /tcp_table reply: 200 relay:\[o365\.example\]:587/);
    assert.equal(dns.udpSources.length, udpBefore, "no UDP query with --dns-tcp");
    const unusable = await runMain(["query", "-c", `${tmp}/missing.conf`, "a@contoso.test"], tmp);
    assert.equal(unusable.code, 2);
    assert.match(unusable.stderr, /^postfix-mx-pattern-router: .*missing\.conf: cannot read/m);
  } finally {
    await dns.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("metrics: a scrape's counters match the lookups made; 404 elsewhere", async () => {
  const metricsPort = await freePort();
  await using fixture = await startRouterFixture({
    args: ["--metrics", `127.0.0.1:${metricsPort}`],
  });
  const client = await LineClient.connect(fixture.router.port);
  try {
    for (
      const key of [
        "a@contoso.test",
        "b@contoso.test",
        "a@other.test",
        "a@servfail.test",
        "user@a..b.test",
      ]
    ) {
      await client.get(key);
    }
  } finally {
    client.close();
  }
  const response = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  const text = await response.text();
  assert.equal(response.status, 200);
  const value = (series: string) => {
    const line = text.split("\n").find((l) => l.startsWith(series + " "));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };
  assert.equal(value('mxrouter_lookups_total{result="match",provider="microsoft365"}'), 2);
  assert.equal(value('mxrouter_lookups_total{result="nomatch",provider="other"}'), 1);
  assert.equal(value('mxrouter_lookups_total{result="tempfail",provider="none"}'), 1);
  assert.equal(value('mxrouter_lookups_total{result="invalid",provider="none"}'), 1);
  assert.equal(value("mxrouter_cache_hits_total"), 1);
  assert.equal(value("mxrouter_cache_misses_total"), 3);
  assert.equal(value("mxrouter_cache_entries"), 2);
  assert.equal(value('mxrouter_dns_queries_total{rcode="noerror"}'), 2);
  assert.ok((value('mxrouter_dns_queries_total{rcode="servfail"}') ?? 0) >= 1);
  assert.equal(value('mxrouter_rule_matches_total{line="2",provider="microsoft365"}'), 2);
  assert.equal(value("mxrouter_rules_loaded"), 3);
  assert.equal(value('mxrouter_build_info{version="1.0.0"}'), 1);
  assert.equal(value("mxrouter_lookup_duration_seconds_count"), 5);
  assert.equal(value("mxrouter_connections_refused_total"), 0);
  assert.equal(value("mxrouter_connections_evicted_total"), 0);
  assert.ok(!/contoso/.test(text), "no domain names in labels");
  const other = await fetch(`http://127.0.0.1:${metricsPort}/other`);
  assert.equal(other.status, 404);
  await other.body?.cancel();
});

/**
 * What the unit's exposure is made of, by systemd-analyze's check names: what V8 and the job
 * need (JIT memory, sockets, the network, the clock device ProtectClock leaves readable), plus
 * two settings worth 0.2 each: NotifyAccess=all (readiness is sent by a systemd-notify child) and
 * no IP address allow list (the resolver may be on another host; ip-restrict.conf.example
 * restricts it to loopback).
 */
const UNIT_EXPOSURE = [
  "DeviceAllow=",
  "IPAddressDeny=",
  "MemoryDenyWriteExecute=",
  "NotifyAccess=",
  "PrivateNetwork=",
  "RestrictAddressFamilies=~AF_(INET|INET6)",
  "RestrictAddressFamilies=~AF_UNIX",
  "RootDirectory=/RootImage=",
];

Deno.test("systemd unit: systemd-analyze security, without and with the ip-restrict drop-in", async (t) => {
  const analyze = findBinary("systemd-analyze");
  if (analyze === null) {
    if (isCi()) throw new Error("CI=true and systemd-analyze is missing: apt-get install systemd");
    await t.step({ name: "skipped: apt-get install systemd", ignore: true, fn() {} });
    return;
  }
  const security = async (unit: string) => {
    const result = await run(analyze, { args: ["security", "--offline=true", unit] });
    const text = result.stdout + result.stderr;
    const exposure = /Overall exposure level for .*: ([\d.]+)/.exec(text);
    assert.ok(exposure, text);
    const exposed = [...text.matchAll(/^✗ (\S+)/gm)].map((m) => m[1]).sort();
    return { exposure: Number(exposure[1]), exposed, text };
  };
  const unit = `${PROJECT_ROOT}/systemd/postfix-mx-pattern-router.service`;
  const plain = await security(unit);
  assert.deepEqual(plain.exposed, UNIT_EXPOSURE, plain.text);
  assert.ok(plain.exposure <= 1.3, `exposure ${plain.exposure}`);
  // Installed with the drop-in, the unit allows loopback only.
  const tmp = await Deno.makeTempDir({ prefix: "mxrouter-unit-" });
  try {
    await Deno.mkdir(`${tmp}/postfix-mx-pattern-router.service.d`);
    await Deno.copyFile(unit, `${tmp}/postfix-mx-pattern-router.service`);
    await Deno.copyFile(
      `${PROJECT_ROOT}/systemd/ip-restrict.conf.example`,
      `${tmp}/postfix-mx-pattern-router.service.d/ip-restrict.conf`,
    );
    const restricted = await security(`${tmp}/postfix-mx-pattern-router.service`);
    assert.match(
      restricted.text,
      /IPAddressDeny=\s+Service defines IP address allow list with only localhost entries/,
    );
    assert.ok(restricted.exposure <= 1.1, `exposure ${restricted.exposure}`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
  const unitText = await Deno.readTextFile(unit);
  for (
    const setting of [
      "Type=notify\n",
      "NotifyAccess=all\n",
      "ExecReload=/bin/kill -HUP $MAINPID",
      "Restart=on-failure",
      "DynamicUser=yes",
      "RuntimeDirectory=",
    ]
  ) {
    assert.ok(unitText.includes(setting), setting);
  }
  assert.doesNotMatch(unitText, /^IPAddress(Allow|Deny)=/m, "no allow list by default");
});

Deno.test("--dry-run: answers not found, logs the real decision, survives a reload", async () => {
  await using fixture = await startRouterFixture({ args: ["--dry-run"] });
  const client = await LineClient.connect(fixture.router.port);
  try {
    assert.match(fixture.router.stderr(), /dry-run \(every answer is "not found"\), listening on/);
    assert.equal(await client.get("a@contoso.test"), "500 NO%20RESULT");
    await waitForLog(
      fixture.router.stderr,
      /dry-run lookup a@contoso\.test .*reply="200 relay:\[o365\.example\]:587"/,
    );
    fixture.router.kill("SIGHUP");
    await waitForLog(fixture.router.stderr, /reloaded 3 rules/);
    assert.equal(await client.get("b@contoso.test"), "500 NO%20RESULT");
    await waitForLog(fixture.router.stderr, /dry-run lookup b@contoso\.test .*reply="200 /);
  } finally {
    client.close();
  }
});

Deno.test("under the journal: fatal start-up errors at <3>, DNS failures at <4> once, keys escaped", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "mxrouter-journal-" });
  const dns = await startFakeDns({
    zone: {
      "servfail.test": { kind: "servfail" },
      "contoso.test": ZONE["contoso.test"],
    },
  });
  const journal = { JOURNAL_STREAM: "8:12345" };
  try {
    // `journalctl -p err` must show why the service did not start.
    let startError = "";
    await startRouter({
      configPath: `${tmp}/missing.conf`,
      tmpDir: tmp,
      dnsServers: [`127.0.0.1:${dns.port}`],
      env: journal,
    }).catch((error: Error) => startError = error.message);
    const stderr = startError.slice(startError.indexOf("stderr:\n") + "stderr:\n".length);
    assert.equal(
      stderr,
      `<3>postfix-mx-pattern-router: fatal: ${tmp}/missing.conf: cannot read the rules file: no such file\n`,
    );

    await Deno.writeTextFile(`${tmp}/rules.conf`, RULES);
    const router = await startRouter({
      configPath: `${tmp}/rules.conf`,
      tmpDir: tmp,
      dnsServers: [`127.0.0.1:${dns.port}`],
      env: journal,
      args: ["--failure-ttl", "30"],
    });
    const client = await LineClient.connect(router.port);
    try {
      for (let i = 0; i < 3; i++) {
        assert.match(await client.get(`u${i}@servfail.test`) ?? "", /^400 SERVFAIL/);
      }
      // A newline in the key (%0A on the wire) must not start a forged line of its own.
      assert.equal(await client.get("x%0A<3>forged@contoso.test"), `200 ${O365}`);
      await waitForLog(router.stderr, /lookup x.*contoso/);
    } finally {
      client.close();
      await router.stop();
    }
    const lines = router.stderr().trimEnd().split("\n");
    assert.deepEqual(
      lines.filter((line) => !/^<[0-7]>/.test(line)),
      [],
      "every line has a priority",
    );
    assert.deepEqual(lines.filter((line) => line.includes("servfail.test")), [
      `<4>DNS failure for servfail.test: SERVFAIL from 127.0.0.1:${dns.port}; answered 400: Postfix defers`,
    ]);
    assert.ok(
      lines.some((line) => line.startsWith("<6>lookup x\\x0a<3>forged@contoso.test domain=")),
      lines.join("\n"),
    );
    assert.ok(!lines.some((line) => line.startsWith("<3>forged")), lines.join("\n"));
  } finally {
    await dns.close();
    await Deno.remove(tmp, { recursive: true });
  }
});
