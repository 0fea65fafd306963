/**
 * The bench's report: the markdown it prints is made of well-formed tables, with or without the
 * C floor, and it warns when its figures do not compare (a busy machine, no C load generator).
 */

import assert from "node:assert/strict";
import type { LoadResult } from "../bench/loadgen.ts";
import {
  type BenchResults,
  evaluateTargets,
  formatBench,
  hitRatios,
  type HitRow,
  hitRow,
} from "../bench/report.ts";
import { busyPercent } from "../bench/setup.ts";

/** One load generator run at `rate` lookups/s for 3 s, all replies `code`. */
function load(conns: number, rate: number, code: 200 | 500): LoadResult {
  const lookups = rate * 3;
  return {
    conns,
    lookups,
    secs: 3,
    rate,
    p50Us: conns === 1 ? 15 : 60,
    p99Us: conns === 1 ? 20 : 150,
    maxUs: 2000,
    codes: { 200: code === 200 ? lookups : 0, 400: 0, 500: code === 500 ? lookups : 0, other: 0 },
    errors: 0,
  };
}

/** Results as a run makes them: hits of three rounds per target, ratios and targets computed. */
function sampleResults(options: { cFloor: boolean }): BenchResults {
  const rates: [HitRow["target"], number, number][] = [
    ["deno-floor", 64_000, 130_000],
    ["lookup-floor", 63_000, 120_000],
    ["router", 55_000, 93_000],
    ...(options.cFloor ? [["c-floor", 81_000, 118_000] as [HitRow["target"], number, number]] : []),
  ];
  const hits: HitRow[] = [];
  for (const [target, one, eight] of rates) {
    const code = target === "router" ? 200 : 500;
    hits.push(hitRow(target, [0.98, 1, 1.01].map((f) => load(1, one * f, code))));
    hits.push(hitRow(target, [0.98, 1, 1.01].map((f) => load(8, eight * f, code))));
  }
  hits.push(hitRow("router+metrics", [load(8, 90_000, 200)]));
  const results: BenchResults = {
    machine: {
      cpu: "AMD EPYC",
      cores: 2,
      memoryGiB: 24,
      kernel: "6.18",
      deno: "2.9.6",
      revision: "abc1234",
      v8: "15.0",
      typescript: "6.0",
      date: "2025-06-01T00:00:00.000Z",
      busyPercentBefore: 1,
    },
    setup: {
      loadgen: options.cFloor ? "C loadgen" : "Deno loadgen (bench/loadgen.ts)",
      loadgenWarning: options.cFloor ? null : "the C load generator and floor were not built",
      seed: 1,
      zoneDomains: 20_000,
      workloadKeys: 100_000,
      distinctDomains: 13_184,
      expected200: 61_948,
      secondsPerHitRun: 3,
      hitRounds: 3,
      pinning: "none",
      routerCommand: ["deno", "run", "main.ts"],
      routerDenoFlags: [],
      routerFlags: "production",
      log: "stderr to a file",
    },
    hits,
    ratios: hitRatios(hits),
    cold: {
      seconds: 2.4,
      rate: 41_000,
      p99Us: 9000,
      codes: { 200: 61_948, 400: 0, 500: 38_052, other: 0 },
      dnsQueriesRouterMetrics: 13_184,
      dnsQueriesServer: 13_184,
      queriesPerDistinctDomain: 1,
      secondsWithMetrics: 2.5,
      routerCpuSeconds: 2.1,
      dnsCpuSeconds: 0.7,
    },
    coldDnsTcp: {
      seconds: 1.9,
      rate: 52_000,
      p99Us: 7000,
      codes: { 200: 61_948, 400: 0, 500: 38_052, other: 0 },
      dnsQueriesServer: 13_184,
      queriesPerDistinctDomain: 1,
      routerCpuSeconds: 1.8,
      dnsCpuSeconds: 0.3,
    },
    memory: {
      rssStartMB: 57,
      rssAfterPassMB: 84,
      rssAfterFillMB: 146,
      entriesAfterPass: 13_184,
      entriesAfterFill: 100_000,
      fillSeconds: 9,
      freshRssStartMB: 57,
      freshRssFilledMB: 144,
      freshEntries: 100_000,
      freshBytesPerDomain: 921,
      bytesPerDomain: 700,
    },
    deadDns: {
      knownP50Ms: 0.03,
      knownMaxMs: 0.6,
      knownReplies: { 200: 120, 500: 80 },
      staleMs: 402,
      staleReply: "200 relay:[office365-relay.example.com]:587",
      staleAgeS: 86,
      unknownMs: 2500,
      unknownReply: "400 4.4.3 DNS timeout",
      dnsTimeoutS: 5,
    },
    targets: [],
    wallSeconds: 120,
  };
  results.targets = evaluateTargets(results);
  return results;
}

/** The tables of a report: each a list of rows, each row a list of cells. */
function tables(markdown: string): string[][][] {
  const found: string[][][] = [];
  let current: string[][] | null = null;
  for (const line of markdown.split("\n")) {
    if (!line.startsWith("|")) {
      current = null;
      continue;
    }
    if (current === null) found.push(current = []);
    current.push(line.trim().split("|").slice(1, -1).map((cell) => cell.trim()));
  }
  return found;
}

Deno.test("bench report: every table row has as many cells as its header, with or without the C floor", () => {
  for (const cFloor of [true, false]) {
    const report = tables(formatBench(sampleResults({ cFloor })));
    assert.equal(report.length, 3, "the hit, figure and target tables");
    for (const table of report) {
      for (const row of table) {
        assert.equal(
          row.length,
          table[0].length,
          `row does not fit its header: ${row.join(" | ")}`,
        );
      }
    }
    const oneConn = report[0].find((row) => row[0] === "lookups/s, 1 conn");
    // The columns: router, lookup, Deno and C floors, then router / lookup, Deno and C floors.
    assert.equal(oneConn?.[4], cFloor ? "81,000 (79-82k)" : "n/a");
    assert.equal(oneConn?.[7], cFloor ? (55_000 / 81_000).toFixed(2) : "n/a");
    assert.equal(oneConn?.[6], (55_000 / 64_000).toFixed(2));
  }
});

Deno.test("busyPercent: busy share of the first eight /proc/stat fields; idle and iowait are not busy", () => {
  // +50 user, +50 system, +50 idle, +50 iowait; +50 guest, which user already counts.
  const before = "cpu  100 0 100 700 100 0 0 0 50 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
  const after = "cpu  150 0 150 750 150 0 0 0 100 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
  assert.equal(busyPercent(before, after), 50);
  // steal counts as busy (another guest had the CPU).
  assert.equal(busyPercent("cpu  0 0 0 100 0 0 0 0", "cpu  0 0 0 150 0 0 0 50"), 50);
  // Unreadable or unchanged: unknown, never "quiet".
  assert.equal(busyPercent("", after), null);
  assert.equal(busyPercent(after, after), null);
});

Deno.test("bench report: a busy machine is warned about, an unknown share is said to be unknown", () => {
  const results = sampleResults({ cFloor: true });
  const withBusy = (busy: number | null) =>
    formatBench({ ...results, machine: { ...results.machine, busyPercentBefore: busy } });
  assert.match(withBusy(35), /busy in the second before the run: 35 %/);
  assert.match(withBusy(35), /Warning: the machine was busy/);
  assert.doesNotMatch(withBusy(2), /Warning/);
  assert.match(withBusy(null), /busy in the second before the run: unknown/);
  assert.doesNotMatch(withBusy(null), /Warning/);
});

Deno.test("bench report: without the C load generator it says so in bold above the tables", () => {
  const report = formatBench(sampleResults({ cFloor: false })).split("\n");
  const warning = report.findIndex((line) =>
    line === "**Warning: the C load generator and floor were not built**"
  );
  assert.ok(warning >= 0, report.join("\n"));
  assert.ok(warning < report.findIndex((line) => line.startsWith("|")));
  assert.doesNotMatch(formatBench(sampleResults({ cFloor: true })), /Warning/);
});
