import assert from "node:assert/strict";
import { configureSync, getLogger, resetSync } from "@logtape/logtape";
import { createStderrSink, LOG_CATEGORY, lookupLogger } from "../lib/log.ts";
import { parseConfig } from "../lib/config.ts";
import { decide } from "../lib/router.ts";

function capture(journal: boolean) {
  const chunks: string[] = [];
  const sink = createStderrSink({
    journal,
    write: (bytes) => chunks.push(new TextDecoder().decode(bytes)),
  });
  resetSync();
  configureSync({
    sinks: { test: sink },
    loggers: [
      { category: LOG_CATEGORY, lowestLevel: "debug", sinks: ["test"] },
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
    parsed.ruleSet,
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
