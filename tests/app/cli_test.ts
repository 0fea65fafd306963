import assert from "node:assert/strict";
import { DEFAULT_CACHE_OPTIONS } from "../../lib/routing/cache.ts";
import { DEFAULT_CONFIG, HELP, parseCommandLine, SERVE_FLAGS } from "../../lib/app/cli.ts";
import { HEALTH_DEFAULTS } from "../../lib/app/health_check.ts";

Deno.test("defaults match the original router", () => {
  const command = parseCommandLine([]);
  assert.equal(command.kind, "serve");
  if (command.kind !== "serve") return;
  const o = command.options;
  assert.equal(o.config, DEFAULT_CONFIG);
  assert.equal(o.port, 10099);
  assert.equal(o.host, "127.0.0.1");
  assert.equal(o.cache.cacheTtl, 3600);
  assert.equal(o.idleTimeoutMs, 600_000);
  assert.equal(o.dnsTimeoutMs, 5000);
  assert.deepEqual(o.dnsServers, []);
  assert.equal(o.verbosity, "info");
});

Deno.test("the original's short and long flags keep their meaning", () => {
  const command = parseCommandLine([
    "-c",
    "/tmp/r.conf",
    "-p",
    "2525",
    "-H",
    "::1",
    "--cache-ttl",
    "0",
    "--timeout",
    "30",
    "-v",
    "--dns-server",
    "127.0.0.1:5353",
    "--dns-server",
    "[::1]:53",
    "--dns-timeout",
    "0.5",
  ]);
  assert.equal(command.kind, "serve");
  if (command.kind !== "serve") return;
  const o = command.options;
  assert.deepEqual(
    [o.config, o.port, o.host, o.cache.cacheTtl, o.idleTimeoutMs, o.verbosity, o.dnsTimeoutMs],
    ["/tmp/r.conf", 2525, "::1", 0, 30_000, "debug", 500],
  );
  assert.deepEqual(o.dnsServers, ["127.0.0.1:5353", "[::1]:53"]);
  const quiet = parseCommandLine(["--quiet", "--config=/x"]);
  assert.ok(quiet.kind === "serve" && quiet.options.verbosity === "error");
});

Deno.test("help and version", () => {
  assert.equal(parseCommandLine(["-h"]).kind, "help");
  assert.equal(parseCommandLine(["--help"]).kind, "help");
  assert.equal(parseCommandLine(["--version"]).kind, "version");
});

Deno.test("unknown and malformed flags give a one-line error naming the flag", () => {
  const cases: [string[], RegExp][] = [
    [["--bogus"], /^unknown option '--bogus'$/],
    [["-x"], /^unknown option '-x'$/],
    [["-p"], /^option '-p, --port <value>' needs a value$|needs a value/],
    [["-p", "http"], /^option '--port' needs a whole number from 0 to 65535, not 'http'$/],
    [["-p", "70000"], /^option '--port' is out of range: 70000/],
    [["--cache-ttl", "-5"], /--cache-ttl/],
    [["--timeout", "1e3"], /^option '--timeout' needs a number/],
    [["-v", "-q"], /cannot be used together/],
    [["serve"], /^unexpected argument 'serve'$/],
  ];
  for (const [args, expected] of cases) {
    const command = parseCommandLine(args);
    assert.equal(command.kind, "error", args.join(" "));
    if (command.kind === "error") {
      assert.match(command.message, expected, args.join(" "));
      assert.ok(!command.message.includes("\n"), "one line");
    }
  }
});

Deno.test("--dns-tcp: off by default, on when given", () => {
  const plain = parseCommandLine([]);
  const tcp = parseCommandLine(["--dns-tcp"]);
  assert.ok(plain.kind === "serve" && plain.options.dnsTcp === false);
  assert.ok(tcp.kind === "serve" && tcp.options.dnsTcp === true);
  const withValue = parseCommandLine(["--dns-tcp=yes"]);
  assert.equal(withValue.kind, "error");
});

Deno.test("socketmap, unix socket, metrics and dry-run flags", () => {
  const command = parseCommandLine([
    "--port",
    "0",
    "--socketmap",
    "unix:/run/x/mxroute",
    "--socketmap",
    "127.0.0.1:10100",
    "--socket-mode",
    "0640",
    "--socket-group",
    "postfix",
    "--metrics",
    "127.0.0.1:9110",
    "--dry-run",
  ]);
  assert.equal(command.kind, "serve");
  if (command.kind !== "serve") return;
  const o = command.options;
  assert.deepEqual(o.socketmap, [
    { transport: "unix", path: "/run/x/mxroute" },
    { transport: "tcp", host: "127.0.0.1", port: 10100 },
  ]);
  assert.deepEqual([o.port, o.socketMode, o.socketGroup, o.metrics, o.dryRun], [
    0,
    0o640,
    "postfix",
    { host: "127.0.0.1", port: 9110 },
    true,
  ]);
  const noListener = parseCommandLine(["--port", "0"]);
  assert.ok(noListener.kind === "error" && /give --socketmap/.test(noListener.message));
  const badMode = parseCommandLine(["--socket-mode", "999"]);
  assert.ok(badMode.kind === "error" && /--socket-mode/.test(badMode.message));
});

Deno.test("check and query subcommands", () => {
  assert.deepEqual(parseCommandLine(["check", "-c", "/etc/r.conf"]), {
    kind: "check",
    options: { config: "/etc/r.conf", strict: false, matchMode: "any" },
  });
  assert.deepEqual(parseCommandLine(["check", "--strict"]), {
    kind: "check",
    options: {
      config: "/etc/postfix/postfix-mx-pattern-router.conf",
      strict: true,
      matchMode: "any",
    },
  });
  const query = parseCommandLine([
    "query",
    "--json",
    "--dns-server",
    "127.0.0.1:53",
    "a@b.example",
  ]);
  assert.equal(query.kind, "query");
  if (query.kind === "query") {
    assert.deepEqual(query.options.keys, ["a@b.example"]);
    assert.equal(query.options.json, true);
  }
  const empty = parseCommandLine(["query"]);
  assert.ok(empty.kind === "error" && /at least one KEY/.test(empty.message));
  // health parses its own arguments: a mistake there is UNKNOWN (exit 3), not a usage error.
  assert.deepEqual(parseCommandLine(["health", "--tcp", "127.0.0.1:1", "--bogus"]), {
    kind: "health",
    args: ["--tcp", "127.0.0.1:1", "--bogus"],
  });
});

Deno.test("each cache flag reaches the cache; no flags give the cache's defaults", () => {
  const command = parseCommandLine([
    "--cache-ttl",
    "100",
    "--min-ttl",
    "5",
    "--negative-ttl",
    "60",
    "--failure-ttl",
    "3",
    "--stale-ttl",
    "900",
    "--stale-answer-ms",
    "250",
    "--cache-size",
    "7",
  ]);
  assert.equal(command.kind, "serve");
  if (command.kind !== "serve") return;
  assert.deepEqual(command.options.cache, {
    cacheTtl: 100,
    minTtl: 5,
    negativeTtl: 60,
    failureTtl: 3,
    staleTtl: 900,
    staleAnswerMs: 250,
    cacheSize: 7,
  });
  const defaults = parseCommandLine([]);
  if (defaults.kind !== "serve") throw new Error(defaults.kind);
  assert.deepEqual(defaults.options.cache, DEFAULT_CACHE_OPTIONS);
});

Deno.test("--match-mode: any by default, one of any, primary or all; providers takes nothing", () => {
  const serve = parseCommandLine(["--match-mode", "PRIMARY"]);
  assert.ok(serve.kind === "serve");
  assert.equal(serve.options.matchMode, "primary");
  const plain = parseCommandLine([]);
  assert.ok(plain.kind === "serve");
  assert.equal(plain.options.matchMode, "any");
  assert.deepEqual(parseCommandLine(["--match-mode", "first"]), {
    kind: "error",
    message: "option '--match-mode' takes any, primary, all, not 'first'",
  });
  const query = parseCommandLine(["query", "--match-mode", "all", "a@b.example"]);
  assert.ok(query.kind === "query");
  assert.equal(query.options.matchMode, "all");
  assert.deepEqual(parseCommandLine(["providers"]), { kind: "providers" });
  assert.equal(parseCommandLine(["providers", "x"]).kind, "error");
});

Deno.test("listener addresses are checked with the other flags, before anything listens", () => {
  const cases: [string[], RegExp][] = [
    [["--metrics", "9110"], /^option '--metrics' needs HOST:PORT, not '9110'$/],
    [
      ["--dns-server", "dns.example"],
      /^option '--dns-server': bad DNS server address "dns\.example"/,
    ],
    [["--metrics", "unix:/run/m"], /^option '--metrics' needs HOST:PORT/],
    [["--socketmap", "unix:relative"], /^option '--socketmap' "unix:relative": a unix socket/],
    [["--socketmap", "127.0.0.1:10099"], /^127\.0\.0\.1:10099 is given twice/],
    [["--socketmap", "unix:/r/s", "--socketmap", "unix:/r/s"], /^unix:\/r\/s is given twice/],
  ];
  for (const [args, expected] of cases) {
    const command = parseCommandLine(args);
    assert.equal(command.kind, "error", args.join(" "));
    if (command.kind === "error") assert.match(command.message, expected, args.join(" "));
  }
});

Deno.test("--help shows every flag of the one table, with the table's defaults", () => {
  for (const flag of SERVE_FLAGS) {
    assert.match(HELP, new RegExp(`--${flag.name}\\b`), flag.name);
    if (flag.default !== undefined) {
      const at = new RegExp(`^  (?:-\\w, | {4})--${flag.name}\\b`);
      const line = HELP.split("\n").findIndex((l) => at.test(l));
      const text = HELP.split("\n").slice(line, line + 4).join(" ");
      assert.ok(text.includes(`(default ${flag.default})`), `${flag.name}: ${text}`);
    }
  }
  assert.match(
    HELP,
    /--cache-ttl SECONDS {2}longest any answer is cached; 0 disables caching \(default 3600\)/,
  );
});

Deno.test("--cache-file PATH: off by default, a path when given, never empty", () => {
  const defaults = parseCommandLine([]);
  assert.ok(defaults.kind === "serve");
  assert.equal(defaults.options.cacheFile, null);
  const given = parseCommandLine(["--cache-file", "/var/lib/postfix-mx-pattern-router/cache"]);
  assert.ok(given.kind === "serve");
  assert.equal(given.options.cacheFile, "/var/lib/postfix-mx-pattern-router/cache");
  assert.deepEqual(parseCommandLine(["--cache-file", ""]), {
    kind: "error",
    message: "option '--cache-file' needs a path",
  });
});

Deno.test("health's default address is the server's default tcp_table address", () => {
  const defaultOf = (name: string) => SERVE_FLAGS.find((flag) => flag.name === name)?.default;
  assert.equal(HEALTH_DEFAULTS.tcp, `${defaultOf("host")}:${defaultOf("port")}`);
});
