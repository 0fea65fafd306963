import assert from "node:assert/strict";
import { DEFAULT_CONFIG, parseCommandLine } from "../lib/cli.ts";

Deno.test("defaults match the original router", () => {
  const command = parseCommandLine([]);
  assert.equal(command.kind, "serve");
  if (command.kind !== "serve") return;
  const o = command.options;
  assert.equal(o.config, DEFAULT_CONFIG);
  assert.equal(o.port, 10099);
  assert.equal(o.host, "127.0.0.1");
  assert.equal(o.cacheTtl, 3600);
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
    [o.config, o.port, o.host, o.cacheTtl, o.idleTimeoutMs, o.verbosity, o.dnsTimeoutMs],
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
    [["-p", "http"], /^option '--port' needs a whole number from 1 to 65535, not 'http'$/],
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
