/**
 * What one `deno task bench` run measured, the performance targets checked against it, and the
 * markdown tables printed (quoted in docs/performance.md).
 *
 * @module
 */

import type { LoadResult } from "./loadgen.ts";
import { BUSY_WARNING_PERCENT, type MachineFacts, STALE_PROBE_TTL_S } from "./setup.ts";

/** One target's hit measurements: medians over the rounds. */
export interface HitRow {
  target: "router" | "deno-floor" | "lookup-floor" | "c-floor" | "router+metrics";
  conns: number;
  /** Median lookups/s over the rounds. */
  rate: number;
  /** Lookups/s of each round. */
  rates: number[];
  p50Us: number;
  p99Us: number;
  maxUs: number;
  lookups: number;
  codes: LoadResult["codes"];
  errors: number;
}

/** Everything one run measured; written to bench/results.json. */
export interface BenchResults {
  machine: MachineFacts;
  setup: {
    loadgen: string;
    /** Why these figures do not compare with a run on the C load generator; null when they do. */
    loadgenWarning: string | null;
    seed: number;
    zoneDomains: number;
    workloadKeys: number;
    distinctDomains: number;
    expected200: number;
    secondsPerHitRun: number;
    hitRounds: number;
    pinning: string;
    routerCommand: string[];
    routerDenoFlags: string[];
    routerFlags: string;
    log: string;
  };
  hits: HitRow[];
  ratios: Record<string, number | null>;
  cold: {
    seconds: number;
    rate: number;
    p99Us: number;
    codes: LoadResult["codes"];
    dnsQueriesRouterMetrics: number;
    dnsQueriesServer: number;
    queriesPerDistinctDomain: number;
    secondsWithMetrics: number;
    /** CPU time the router and the DNS server used during the pass (production router). */
    routerCpuSeconds: number;
    dnsCpuSeconds: number;
  };
  /** The same cold pass with --dns-tcp, a fresh router. */
  coldDnsTcp: {
    seconds: number;
    rate: number;
    p99Us: number;
    codes: LoadResult["codes"];
    dnsQueriesServer: number;
    queriesPerDistinctDomain: number;
    routerCpuSeconds: number;
    dnsCpuSeconds: number;
  };
  memory: {
    rssStartMB: number;
    rssAfterPassMB: number;
    rssAfterFillMB: number;
    entriesAfterPass: number;
    entriesAfterFill: number;
    fillSeconds: number;
    /** RSS of a fresh router before and after 100,000 distinct domains, and bytes per domain. */
    freshRssStartMB: number;
    freshRssFilledMB: number;
    freshEntries: number;
    freshBytesPerDomain: number;
    bytesPerDomain: number;
  };
  deadDns: {
    knownP50Ms: number;
    knownMaxMs: number;
    knownReplies: Record<string, number>;
    staleMs: number;
    staleReply: string;
    staleAgeS: number;
    unknownMs: number;
    unknownReply: string;
    dnsTimeoutS: number;
  };
  targets: { name: string; value: string; target: string; met: boolean }[];
  wallSeconds: number;
}

/** The median of `values` (the mean of the middle two for an even count). */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** The median of each figure over the rounds, and every round's rate. */
export function hitRow(target: HitRow["target"], rounds: LoadResult[]): HitRow {
  const sum = (pick: (r: LoadResult) => number) => rounds.reduce((a, r) => a + pick(r), 0);
  return {
    target,
    conns: rounds[0]?.conns ?? 0,
    rate: median(rounds.map((r) => r.rate)),
    rates: rounds.map((r) => Math.round(r.rate)),
    p50Us: median(rounds.map((r) => r.p50Us)),
    p99Us: median(rounds.map((r) => r.p99Us)),
    maxUs: Math.max(...rounds.map((r) => r.maxUs)),
    lookups: sum((r) => r.lookups),
    codes: {
      200: sum((r) => r.codes[200]),
      400: sum((r) => r.codes[400]),
      500: sum((r) => r.codes[500]),
      other: sum((r) => r.codes.other),
    },
    errors: sum((r) => r.errors),
  };
}

/** The hit-rate ratios reported on 1 and 8 connections, as [numerator, denominator]. */
const HIT_RATIO_PAIRS: [HitRow["target"], HitRow["target"]][] = [
  ["router", "deno-floor"],
  ["router", "c-floor"],
  ["router", "lookup-floor"],
  ["lookup-floor", "deno-floor"],
  ["deno-floor", "c-floor"],
];

/**
 * Ratios of hit rates: router to each floor, the lookup floor to the Deno floor (the most a
 * router that finds the domain per request can reach here), and the Deno floor to the C floor.
 */
export function hitRatios(hits: HitRow[]): Record<string, number | null> {
  const find = (target: HitRow["target"], conns: number) =>
    hits.find((h) => h.target === target && h.conns === conns) ?? null;
  const ratio = (a: HitRow | null, b: HitRow | null) =>
    a === null || b === null || b.rate === 0 ? null : a.rate / b.rate;
  const ratios: Record<string, number | null> = {};
  for (const conns of [1, 8]) {
    for (const [a, b] of HIT_RATIO_PAIRS) {
      ratios[`${a}/${b}@${conns}`] = ratio(find(a, conns), find(b, conns));
    }
  }
  ratios["router+metrics/router@8"] = ratio(find("router+metrics", 8), find("router", 8));
  return ratios;
}

/** Each performance target, with the measured value and whether it is met. */
export function evaluateTargets(r: BenchResults): BenchResults["targets"] {
  const out: BenchResults["targets"] = [];
  const add = (name: string, value: number | null, text: string, target: string, met: boolean) =>
    out.push({ name, value: value === null ? "n/a" : text, target, met: value !== null && met });
  for (const conns of [1, 8]) {
    const deno = r.ratios[`router/deno-floor@${conns}`];
    add(`hits/s vs Deno floor, ${conns} conn`, deno, fixed(deno, 2), "≥ 0.95", (deno ?? 0) >= 0.95);
    const c = r.ratios[`router/c-floor@${conns}`];
    const want = conns === 1 ? 0.75 : 0.6;
    add(`hits/s vs C floor, ${conns} conn`, c, fixed(c, 2), `≥ ${want}`, (c ?? 0) >= want);
  }
  const p99 = r.hits.find((h) => h.target === "router" && h.conns === 8)?.p99Us ?? null;
  add("hit p99, 8 conns", p99, `${p99} µs`, "≤ 400 µs", (p99 ?? Infinity) <= 400);
  add(
    "cold pass",
    r.cold.seconds,
    `${r.cold.seconds.toFixed(2)} s`,
    "≤ 2.0 s",
    r.cold.seconds <= 2,
  );
  const t = r.coldDnsTcp;
  add(
    "cold pass with --dns-tcp",
    t.seconds,
    `${t.seconds.toFixed(2)} s (${t.queriesPerDistinctDomain.toFixed(3)} queries/domain)`,
    "≤ 2.0 s",
    t.seconds <= 2 && Math.abs(t.queriesPerDistinctDomain - 1) < 0.005,
  );
  const q = r.cold.queriesPerDistinctDomain;
  add("DNS queries per distinct domain", q, q.toFixed(3), "= 1.00", Math.abs(q - 1) < 0.005);
  const rss = (which: string, mb: number, entries: number) =>
    add(
      `RSS, 100,000 domains cached (${which})`,
      mb,
      `${mb.toFixed(0)} MB`,
      "≤ 150 MB",
      entries >= 100_000 && mb <= 150,
    );
  rss("after the whole run", r.memory.rssAfterFillMB, r.memory.entriesAfterFill);
  rss("fresh router, production flags", r.memory.freshRssFilledMB, r.memory.freshEntries);
  const unknown400 = r.deadDns.unknownReply.startsWith("400");
  add(
    "unknown domain, DNS dead",
    r.deadDns.unknownMs,
    `${r.deadDns.unknownReply.slice(0, 3)} in ${(r.deadDns.unknownMs / 1000).toFixed(2)} s`,
    "400 within --dns-timeout (5 s)",
    unknown400 && r.deadDns.unknownMs <= r.deadDns.dnsTimeoutS * 1000 + 250,
  );
  return out;
}

function busyText(percent: number | null): string {
  return percent === null ? "unknown" : `${percent.toFixed(0)} %`;
}

function fixed(value: number | null, digits: number): string {
  return value === null ? "n/a" : value.toFixed(digits);
}

/** The median rate and, for several rounds, their range in thousands: "32,711 (29-38k)". */
function rate(row: HitRow | undefined): string {
  if (row === undefined) return "n/a";
  const median = Math.round(row.rate).toLocaleString("en-US");
  if (row.rates.length < 2) return median;
  const k = (x: number) => Math.round(x / 1000);
  return `${median} (${k(Math.min(...row.rates))}-${k(Math.max(...row.rates))}k)`;
}

/** The results as markdown: the hit table, the other figures, the targets. */
export function formatBench(r: BenchResults): string {
  const row = (target: HitRow["target"], conns: number) =>
    r.hits.find((h) => h.target === target && h.conns === conns);
  const lines: string[] = [];
  const m = r.machine;
  lines.push(
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Linux ${m.kernel}; ` +
      `Deno ${m.deno} (V8 ${m.v8}); router at ${m.revision}; ${m.date}; CPUs busy in the ` +
      `second before the run: ${busyText(m.busyPercentBefore)}.`,
  );
  if ((m.busyPercentBefore ?? 0) > BUSY_WARNING_PERCENT) {
    lines.push(
      `**Warning: the machine was busy before the run (${busyText(m.busyPercentBefore)} of ` +
        `its CPUs); every figure is low, the cold pass most. Run it again on a quiet machine.**`,
    );
  }
  if (r.setup.loadgenWarning !== null) lines.push(`**Warning: ${r.setup.loadgenWarning}**`);
  lines.push(
    `Workload: ${r.setup.workloadKeys.toLocaleString("en-US")} keys over ` +
      `${
        r.setup.distinctDomains.toLocaleString("en-US")
      } distinct domains (Zipf, seed ${r.setup.seed}) ` +
      `from a zone of ${r.setup.zoneDomains.toLocaleString("en-US")}; ${r.setup.loadgen}; ` +
      `hits: median of ${r.setup.hitRounds} interleaved rounds of ${r.setup.secondsPerHitRun} s ` +
      `after 1 s of warm-up; pinning: ${r.setup.pinning}.` +
      (r.setup.routerDenoFlags.length > 0
        ? ` Router with extra flags: ${r.setup.routerDenoFlags.join(" ")}.`
        : ""),
  );
  lines.push("");
  lines.push(
    "| cache hits | router | lookup floor | Deno floor | C floor | router / lookup floor | " +
      "router / Deno floor | router / C floor | lookup floor / Deno floor |",
  );
  lines.push("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const conns of [1, 8]) {
    const [router, lookup, deno, c] = [
      row("router", conns),
      row("lookup-floor", conns),
      row("deno-floor", conns),
      row("c-floor", conns),
    ];
    const us = (x: HitRow | undefined, f: "p50Us" | "p99Us") => x === undefined ? "n/a" : `${x[f]}`;
    const ratioOf = (name: string) => fixed(r.ratios[`${name}@${conns}`], 2);
    lines.push(
      `| lookups/s, ${conns} conn | ${rate(router)} | ${rate(lookup)} | ${rate(deno)} | ` +
        `${rate(c)} | ${ratioOf("router/lookup-floor")} | ${ratioOf("router/deno-floor")} | ` +
        `${ratioOf("router/c-floor")} | ${ratioOf("lookup-floor/deno-floor")} |`,
    );
    for (const f of ["p50Us", "p99Us"] as const) {
      lines.push(
        `| ${f.slice(0, 3)} µs, ${conns} conn | ${us(router, f)} | ${us(lookup, f)} | ` +
          `${us(deno, f)} | ${us(c, f)} | | | | |`,
      );
    }
  }
  const withMetrics = row("router+metrics", 8);
  if (withMetrics !== undefined) {
    lines.push(
      `| router with --metrics, 8 conns | ${rate(withMetrics)}/s, p99 ${withMetrics.p99Us} µs ` +
        `(${fixed(r.ratios["router+metrics/router@8"], 2)} of the router) | | | | | | | |`,
    );
  }
  lines.push("");
  lines.push("| figure | value |");
  lines.push("|---|---|");
  const c = r.cold;
  lines.push(
    `| cold pass, whole workload, 8 conns, empty cache | ${c.seconds.toFixed(2)} s ` +
      `(${Math.round(c.rate).toLocaleString("en-US")}/s, p99 ${(c.p99Us / 1000).toFixed(1)} ms; ` +
      `with --metrics ${c.secondsWithMetrics.toFixed(2)} s); CPU used: router ` +
      `${c.routerCpuSeconds.toFixed(2)} s, DNS server ${c.dnsCpuSeconds.toFixed(2)} s |`,
  );
  const t = r.coldDnsTcp;
  lines.push(
    `| the same cold pass with --dns-tcp (fresh router) | ${t.seconds.toFixed(2)} s ` +
      `(${Math.round(t.rate).toLocaleString("en-US")}/s, p99 ${(t.p99Us / 1000).toFixed(1)} ms); ` +
      `${t.queriesPerDistinctDomain.toFixed(3)} queries per distinct domain; replies 200: ` +
      `${t.codes[200]}, 500: ${t.codes[500]}, 400: ${t.codes[400]}; CPU used: router ` +
      `${t.routerCpuSeconds.toFixed(2)} s, DNS server ${t.dnsCpuSeconds.toFixed(2)} s |`,
  );
  lines.push(
    `| DNS queries per distinct domain (cold pass) | ${c.queriesPerDistinctDomain.toFixed(3)} ` +
      `(${c.dnsQueriesRouterMetrics} queries per the router's metrics, ${c.dnsQueriesServer} ` +
      `received by the DNS server, ${r.setup.distinctDomains} domains) |`,
  );
  lines.push(
    `| replies in the cold pass | 200: ${c.codes[200]}, 500: ${c.codes[500]}, 400: ${
      c.codes[400]
    } (expected 200: ${r.setup.expected200}) |`,
  );
  const mem = r.memory;
  lines.push(
    `| router RSS: at start / after the pass (${mem.entriesAfterPass} domains) | ${
      mem.rssStartMB.toFixed(0)
    } MB / ${mem.rssAfterPassMB.toFixed(0)} MB |`,
  );
  lines.push(
    `| router RSS with ${mem.entriesAfterFill.toLocaleString("en-US")} domains cached | ${
      mem.rssAfterFillMB.toFixed(0)
    } MB (${Math.round(mem.bytesPerDomain)} bytes per added domain; fill of ${
      (mem.entriesAfterFill - mem.entriesAfterPass).toLocaleString("en-US")
    } domains took ${mem.fillSeconds.toFixed(1)} s) |`,
  );
  lines.push(
    `| fresh router RSS (production flags), ${
      mem.freshEntries.toLocaleString("en-US")
    } domains cached | ${mem.freshRssFilledMB.toFixed(0)} MB (from ${
      mem.freshRssStartMB.toFixed(0)
    } MB: ${Math.round(mem.freshBytesPerDomain)} bytes per domain) |`,
  );
  const d = r.deadDns;
  lines.push(
    `| DNS dead: known (cached) domain | p50 ${d.knownP50Ms.toFixed(3)} ms, max ${
      d.knownMaxMs.toFixed(3)
    } ms over 200 lookups (replies ${JSON.stringify(d.knownReplies)}) |`,
  );
  lines.push(
    `| DNS dead: known domain expired ${
      (d.staleAgeS - STALE_PROBE_TTL_S).toFixed(0)
    } s ago (serve-stale) | ${d.staleMs.toFixed(0)} ms, \`${d.staleReply}\` |`,
  );
  lines.push(
    `| DNS dead: unknown domain | ${(d.unknownMs / 1000).toFixed(2)} s, \`${d.unknownReply}\` |`,
  );
  lines.push("");
  lines.push("| performance target | measured | wanted | met |");
  lines.push("|---|---|---|---|");
  for (const t of r.targets) {
    lines.push(`| ${t.name} | ${t.value} | ${t.target} | ${t.met ? "yes" : "**no**"} |`);
  }
  lines.push("");
  lines.push(`Wall time ${r.wallSeconds.toFixed(0)} s.`);
  return lines.join("\n");
}
