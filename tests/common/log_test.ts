import assert from "node:assert/strict";
import { configureSync, getLogger, type LogLevel, resetSync } from "@logtape/logtape";
import { createStderrSink, escapeControl, LOG_CATEGORY, writeFatal } from "../../lib/common/log.ts";
import { failureLogger, lookupLogger } from "../../lib/app/lookup_log.ts";
import { parseConfig } from "../../lib/routing/rules_file.ts";
import { decide, type LookupReport } from "../../lib/routing/router.ts";

function capture(journal: boolean, level: LogLevel = "debug") {
  const chunks: string[] = [];
  const sink = createStderrSink({
    journal,
    write: (bytes) => chunks.push(new TextDecoder().decode(bytes)),
  });
  resetSync();
  configureSync({
    sinks: { test: sink },
    loggers: [
      { category: LOG_CATEGORY, lowestLevel: level, sinks: ["test"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: ["test"] },
    ],
  });
  return { chunks, flush: sink.flush, sink };
}

Deno.test("journal lines carry syslog priorities; terminal lines a timestamp and level", () => {
  const journal = capture(true);
  const log = getLogger(LOG_CATEGORY);
  log.error("bad thing");
  log.info("good thing");
  log.debug("detail");
  journal.flush();
  assert.equal(journal.chunks.join(""), "<3>bad thing\n<6>good thing\n<7>detail\n");
  const terminal = capture(false);
  log.warning("careful");
  terminal.flush();
  assert.match(
    terminal.chunks.join(""),
    /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARNING careful\n$/,
  );
  resetSync();
});

Deno.test("lines are batched: one write for a burst; errors are written at once", () => {
  const out = capture(true);
  const log = getLogger(LOG_CATEGORY);
  for (let i = 0; i < 100; i++) log.info("line");
  assert.equal(out.chunks.length, 0, "nothing written yet");
  log.error("now");
  assert.equal(out.chunks.length, 1, "an error flushes everything pending in one write");
  assert.equal(out.chunks[0].split("\n").length, 102);
  resetSync();
});

Deno.test("a lookup line keeps braces in keys literal and says what was decided", () => {
  const out = capture(true);
  const parsed = parseConfig("suffix:outlook.com relay:[a.example]:587\n", "r.conf");
  assert.ok(parsed.ok);
  const decision = decide(
    "x.example",
    { kind: "mx", hosts: ["m.outlook.com"], ttl: 60 },
    parsed.value.ruleSet,
  );
  lookupLogger({ sink: out.sink, modeTag: "" }).report({
    key: "{user}@x.example",
    domain: "x.example",
    decision,
    answer: decision,
    source: "cache",
    startedAt: performance.now(),
  });
  out.flush();
  assert.match(
    out.chunks.join(""),
    /^<6>lookup \{user\}@x\.example domain=x\.example mx=m\.outlook\.com matched=m\.outlook\.com rule=line 1 suffix:outlook\.com reply="200 relay:\[a\.example\]:587" source=cache ms=\d+\.\d\d\n$/,
  );
  resetSync();
});

Deno.test("a failing stderr loses lines, never the router", () => {
  let attempts = 0;
  const sink = createStderrSink({
    journal: true,
    write: () => {
      attempts++;
      throw new Error("EPIPE");
    },
  });
  resetSync();
  configureSync({
    sinks: { broken: sink },
    loggers: [{ category: LOG_CATEGORY, lowestLevel: "info", sinks: ["broken"] }, {
      category: ["logtape", "meta"],
      lowestLevel: "fatal",
      sinks: [],
    }],
  });
  getLogger(LOG_CATEGORY).error("x");
  sink.flush();
  // The error was written at once (and failed), and the next line is accepted as before.
  assert.equal(attempts, 1);
  sink.appendLine("info", "after", Date.now());
  sink.flush();
  assert.equal(attempts, 2);
  resetSync();
});

Deno.test("a line longer than the write buffer is written whole, its newline kept", () => {
  const out = capture(true);
  out.sink.appendLine("info", "before", Date.now());
  out.sink.appendLine("info", "x".repeat(140_000), Date.now());
  out.sink.appendLine("info", "é".repeat(70_000), Date.now());
  out.sink.appendLine("info", "next", Date.now());
  out.flush();
  const lines = out.chunks.join("").split("\n");
  assert.deepEqual(lines.map((l) => l.length), [9, 140_003, 70_003, 7, 0]);
  assert.equal(lines[3], "<6>next");
  resetSync();
});

Deno.test("a long burst of mixed lines comes out whole and in order, in writes of many lines", () => {
  const out = capture(true);
  const expected: string[] = [];
  for (let i = 0; i < 3000; i++) {
    // Multi-byte text and odd lengths make chunk edges fall anywhere in a line.
    const text = i === 1500
      ? "y".repeat(20_000)
      : `line ${i} ${"é".repeat(i % 37)}${"x".repeat(i % 101)}`;
    out.sink.appendLine("info", text, Date.now());
    expected.push(`<6>${text}\n`);
  }
  out.flush();
  assert.equal(out.chunks.join(""), expected.join(""));
  const bytes = out.chunks.map((chunk) => new TextEncoder().encode(chunk).length);
  assert.ok(bytes.length > 1, "a burst this long is written in several writes");
  assert.ok(bytes.slice(0, -1).every((n) => n >= 8_000 && n <= 100_000), JSON.stringify(bytes));
  resetSync();
});

/** A temporary failure of `domain`, as the router reports it. */
function tempfail(domain: string, reason = "SERVFAIL from 127.0.0.1:53"): LookupReport {
  const decision = decide(domain, { kind: "tempfail", reason, cause: "servfail" }, someRules());
  return { key: `user@${domain}`, domain, decision, answer: decision, source: "dns", startedAt: 0 };
}

function someRules() {
  const parsed = parseConfig("suffix:outlook.com relay:[a.example]:587\n", "r.conf");
  assert.ok(parsed.ok);
  return parsed.value.ruleSet;
}

/** A clock the test moves, and the timers it runs by hand. */
function fakeTime() {
  const time = { now: 0, timers: [] as { at: number; callback: () => void }[] };
  return {
    time,
    now: () => time.now,
    schedule: (callback: () => void, ms: number) =>
      time.timers.push({ at: time.now + ms, callback }),
    /** Moves the clock to `at`, running the timers due by then. */
    advance(at: number) {
      time.now = at;
      const due = time.timers.filter((t) => t.at <= at);
      time.timers = time.timers.filter((t) => t.at > at);
      for (const timer of due) timer.callback();
    },
  };
}

function lines(out: { chunks: string[]; flush: () => void }): string[] {
  out.flush();
  const text = out.chunks.join("");
  out.chunks.length = 0;
  return text === "" ? [] : text.replace(/\n$/, "").split("\n");
}

Deno.test("at the default level a DNS failure is a warning, once per domain per --failure-ttl", () => {
  const out = capture(true, "info");
  const clock = fakeTime();
  const failures = failureLogger({ sink: out.sink, failureTtl: 10, ...clock });
  const observer = lookupLogger({ sink: out.sink, modeTag: "", failures });
  // What the router asks before it builds a report: hits that are not failures stay as cheap.
  assert.deepEqual(
    (["match", "nomatch", "tempfail", "invalid"] as const).map((label) => observer.wants(label)),
    [true, false, true, false],
  );
  observer.report(tempfail("a.example"));
  assert.deepEqual(lines(out), [
    "<4>DNS failure for a.example: SERVFAIL from 127.0.0.1:53; answered 400: Postfix defers",
  ]);
  clock.advance(9_999);
  observer.report(tempfail("a.example", "no answer within 2000 ms"));
  assert.deepEqual(lines(out), [], "the same domain within --failure-ttl: nothing new");
  observer.report(tempfail("b.example", "REFUSED from [::1]:53"));
  assert.deepEqual(lines(out), [
    "<4>DNS failure for b.example: REFUSED from [::1]:53; answered 400: Postfix defers",
  ]);
  clock.advance(10_000);
  observer.report(tempfail("a.example", "no answer within 2000 ms"));
  observer.report(tempfail("b.example"));
  assert.deepEqual(lines(out), [
    "<4>DNS failure for a.example: no answer within 2000 ms; answered 400: Postfix defers",
  ]);
  resetSync();
});

Deno.test("failures are not logged with -q, and in --dry-run say what Postfix was answered", () => {
  const quiet = capture(true, "error");
  const silent = failureLogger({ sink: quiet.sink, failureTtl: 10 });
  assert.equal(silent.wants("tempfail"), false);
  assert.equal(
    lookupLogger({ sink: quiet.sink, modeTag: "", failures: silent }).wants("tempfail"),
    false,
  );
  const out = capture(true, "info");
  failureLogger({ sink: out.sink, failureTtl: 10, dryRun: true }).report(tempfail("a.example"));
  assert.deepEqual(lines(out), [
    "<4>DNS failure for a.example: SERVFAIL from 127.0.0.1:53; answered not found (dry run)",
  ]);
  resetSync();
});

Deno.test("a flood of failing domains: 60 lines a minute, then one line with the count left out", () => {
  const out = capture(true, "info");
  const clock = fakeTime();
  const failures = failureLogger({ sink: out.sink, failureTtl: 10, ...clock });
  clock.advance(1_000);
  for (let i = 0; i < 1000; i++) failures.report(tempfail(`d${i}.example`));
  const first = lines(out);
  assert.equal(first.length, 60);
  assert.equal(
    first[59],
    "<4>DNS failure for d59.example: SERVFAIL from 127.0.0.1:53; answered 400: Postfix defers",
  );
  assert.equal(clock.time.timers.length, 1, "one timer for the count, however many are left out");
  clock.advance(59_999);
  assert.deepEqual(lines(out), [], "the count waits for the end of the minute");
  clock.advance(60_000);
  assert.deepEqual(lines(out), [
    "<4>DNS failures: 940 more not logged in the last minute (at most 60 lines a minute)",
  ]);
  // A new minute: lines again; the count only once a minute, and only when some were left out.
  for (let i = 1000; i < 1070; i++) failures.report(tempfail(`d${i}.example`));
  assert.equal(lines(out).length, 60);
  clock.advance(119_999);
  assert.deepEqual(lines(out), []);
  clock.advance(120_000);
  assert.deepEqual(lines(out), [
    "<4>DNS failures: 10 more not logged in the last minute (at most 60 lines a minute)",
  ]);
  clock.advance(300_000);
  assert.deepEqual(lines(out), [], "nothing left out, nothing to count");
  resetSync();
});

Deno.test("the count is written once per minute when the next failure comes before its timer", () => {
  const out = capture(true, "info");
  const clock = fakeTime();
  const failures = failureLogger({ sink: out.sink, failureTtl: 0, perMinute: 1, ...clock });
  failures.report(tempfail("a.example"));
  failures.report(tempfail("b.example"));
  assert.equal(lines(out).length, 1);
  // The next minute's first failure comes before the timer runs: it writes the count...
  clock.time.now = 60_000;
  failures.report(tempfail("c.example"));
  failures.report(tempfail("d.example"));
  assert.deepEqual(lines(out), [
    "<4>DNS failures: 1 more not logged in the last minute (at most 1 lines a minute)",
    "<4>DNS failure for c.example: SERVFAIL from 127.0.0.1:53; answered 400: Postfix defers",
  ]);
  // ...and the late timer of the old minute writes nothing: the new minute's comes at its end.
  clock.advance(60_001);
  assert.deepEqual(lines(out), []);
  clock.advance(120_000);
  assert.deepEqual(lines(out), [
    "<4>DNS failures: 1 more not logged in the last minute (at most 1 lines a minute)",
  ]);
  resetSync();
});

Deno.test("the domains remembered as logged are bounded, whatever --failure-ttl is", () => {
  const out = capture(true, "info");
  const clock = fakeTime();
  const failures = failureLogger({ sink: out.sink, failureTtl: 86_400, maxDomains: 2, ...clock });
  for (const domain of ["a.example", "b.example", "c.example", "c.example", "a.example"]) {
    failures.report(tempfail(domain));
  }
  // a.example was forgotten to make room for c.example, so it is logged again: never more memory.
  assert.deepEqual(lines(out).map((line) => line.split(" ")[3]), [
    "a.example:",
    "b.example:",
    "c.example:",
    "a.example:",
  ]);
  resetSync();
});

Deno.test("control bytes from keys, DNS and config text are logged escaped, never raw", () => {
  const out = capture(true, "debug");
  const decision = decide("x.example", { kind: "nxdomain", negativeTtl: 60 }, someRules());
  lookupLogger({ sink: out.sink, modeTag: "" }).report({
    key: "evil\n<3>forged\x1b[31m\x9b@x.example",
    domain: "x.example",
    decision,
    answer: decision,
    source: "dns",
    startedAt: 0,
  });
  failureLogger({ sink: out.sink, failureTtl: 10 }).report(
    tempfail("y.example", "malformed answer from 127.0.0.1:53: bad\rname\x7f"),
  );
  getLogger(LOG_CATEGORY).error`reload failed: ${'r.conf, line 2: bad pattern "a\u0000b\tc"'}`;
  const logged = lines(out);
  assert.deepEqual(logged, [
    '<7>lookup evil\\x0a<3>forged\\x1b[31m\\x9b@x.example domain=x.example mx=- reply="500 NO RESULT" (NXDOMAIN: no such domain) source=dns ms=0.00',
    "<4>DNS failure for y.example: malformed answer from 127.0.0.1:53: bad\\x0dname\\x7f; answered 400: Postfix defers",
    '<3>reload failed: r.conf, line 2: bad pattern "a\\x00b\\x09c"',
  ]);
  // Text without control characters, UTF-8 included, is written as it is.
  assert.equal(escapeControl("é@bücher.example ✓"), "é@bücher.example ✓");
  resetSync();
});

Deno.test("fatal start-up errors: <3> under the journal, Postfix style on a terminal, escaped", () => {
  const written: string[] = [];
  const write = (bytes: Uint8Array) => written.push(new TextDecoder().decode(bytes));
  const fatal = ["prog: fatal: r.conf, line 1: missing result", "prog: fatal: x\ny"];
  writeFatal(fatal, { journal: true, write });
  writeFatal(fatal, { journal: false, write });
  assert.deepEqual(written, [
    "<3>prog: fatal: r.conf, line 1: missing result\n<3>prog: fatal: x\\x0ay\n",
    "prog: fatal: r.conf, line 1: missing result\nprog: fatal: x\\x0ay\n",
  ]);
});
