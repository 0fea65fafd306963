/**
 * `deno task bench`: the router against the Deno and C floors on cache hits, a cold pass over
 * the workload, memory with 100,000 domains cached, and answers while the DNS is dead. Every
 * figure comes from outside the router process (load generator, /proc, the metrics endpoint).
 *
 * @module
 */

import type { LoadResult } from "./loadgen.ts";
import {
  cpuSeconds,
  DnsProcess,
  type FloorHandle,
  hasTaskset,
  metricSum,
  pinProcess,
  type RouterHandle,
  rssBytes,
  runLoadgen,
  scrapeMetrics,
  sleep,
  startCFloor,
  startDenoFloor,
  startRouter,
  timedLookups,
} from "./processes.ts";
import {
  chooseLoadgen,
  type MachineFacts,
  machineFacts,
  SEED,
  STALE_PROBE_DOMAIN,
  writeInputs,
} from "./setup.ts";
import { freshKeys } from "./workload.ts";

/** Options of {@linkcode runBench}. */
export interface BenchOptions {
  /** Seconds of each hit measurement round (after a 1 s warm-up). */
  seconds: number;
  /** Rounds per target and connection count; the median is reported. */
  rounds: number;
  /** Use the Deno load generator even when the C one builds. */
  denoLoadgen: boolean;
  /** Keep the temporary directory (logs, inputs). */
  keep: boolean;
  /** More `deno run` flags for the router, e.g. `--v8-flags=--max-semi-space-size=1`. */
  routerDenoFlags: string[];
}

/** One target's hit measurements: medians over the rounds. */
export interface HitRow {
  target: "router" | "deno-floor" | "c-floor" | "router+metrics";
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
    cacheEntries: number;
    secondsWithMetrics: number;
    /** CPU time the router and the DNS server used during the pass (production router). */
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

const MB = 1024 * 1024;

/** The median of `values` (the mean of the middle two for an even count). */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** The median of each figure over the rounds, and every round's rate. */
function hitRow(target: HitRow["target"], rounds: LoadResult[]): HitRow {
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

function say(text: string): void {
  console.error(`bench: ${text}`);
}

/** Runs the benchmark; prints the table on stdout and writes bench/results.json. */
export async function runBench(options: BenchOptions): Promise<BenchResults> {
  const wallStart = performance.now();
  const dir = await Deno.makeTempDir({ prefix: "mxrouter-bench-" });
  const stops: (() => Promise<void>)[] = [];
  try {
    const machine = await machineFacts();
    const inputs = await writeInputs(dir, "long");
    const { workload } = inputs;
    const loadgen = await chooseLoadgen(dir, options.denoLoadgen);
    say(`${loadgen.note}; inputs in ${dir}`);
    const dns = await DnsProcess.start(inputs.zonePath);
    stops.push(() => dns.stop());
    const common = {
      rulesPath: inputs.rulesPath,
      tmpDir: dir,
      dnsPort: dns.port,
      denoFlags: options.routerDenoFlags,
    };
    const [router, metricsRouter, denoFloor, cFloor] = await Promise.all([
      startRouter({ ...common, logPath: `${dir}/router.log` }),
      startRouter({ ...common, logPath: `${dir}/router-metrics.log`, metrics: true }),
      startDenoFloor(),
      loadgen.cTools === null ? Promise.resolve(null) : startCFloor(loadgen.cTools.floor),
    ]);
    const handles: (RouterHandle | FloorHandle | null)[] = [
      router,
      metricsRouter,
      denoFloor,
      cFloor,
    ];
    for (const handle of handles) if (handle !== null) stops.push(() => handle.stop());
    const run = (port: number, conns: number, keyFile: string, seconds: number, cpus?: string) =>
      runLoadgen(loadgen.tool, { port, conns, keyFile, seconds, cpus });
    // Unpinned, one connection is bimodal on these VMs (the C floor gives 14,000 or 67,000/s):
    // a wake-up across vCPUs costs about 25 µs. So the hit runs pin the server to CPU 0 and the
    // load generator to CPU 0 too (1 connection: pure per-request cost, no cross-CPU wake-up) or
    // to CPU 1 (8 connections: each side has a core).
    const pinning = machine.cores >= 2 && await hasTaskset();

    // Known, with the shortest TTL: expired (and served stale) by the time the DNS dies.
    const probeKey = `postmaster@${STALE_PROBE_DOMAIN}`;
    await timedLookups(router.port, [probeKey]);
    const probeAt = performance.now();
    const rssStart = (await rssBytes(router.pid)) ?? 0;

    say("cold pass (router with --metrics, for the DNS query count)");
    const dnsBefore = await dns.queries();
    const coldMetrics = await run(metricsRouter.port, 8, inputs.keysPath, 0);
    const metricsAfterPass = await scrapeMetrics(metricsRouter.metricsPort ?? 0);
    const dnsAfterMetricsPass = await dns.queries();
    say(`  ${coldMetrics.secs.toFixed(2)} s`);

    say("cold pass (router with production flags)");
    const cpuBefore = [await cpuSeconds(router.pid), await cpuSeconds(dns.pid)];
    const cold = await run(router.port, 8, inputs.keysPath, 0);
    const cpuAfter = [await cpuSeconds(router.pid), await cpuSeconds(dns.pid)];
    const dnsAfterProdPass = await dns.queries();
    say(`  ${cold.secs.toFixed(2)} s`);
    const rssAfterPass = (await rssBytes(router.pid)) ?? 0;

    const hits: HitRow[] = [];
    const targets: { name: HitRow["target"]; port: number; conns: number[] }[] = [
      { name: "deno-floor", port: denoFloor.port, conns: [1, 8] },
      ...(cFloor === null ? [] : [{ name: "c-floor" as const, port: cFloor.port, conns: [1, 8] }]),
      { name: "router", port: router.port, conns: [1, 8] },
      { name: "router+metrics", port: metricsRouter.port, conns: [8] },
    ];
    const pids: Record<HitRow["target"], number> = {
      "deno-floor": denoFloor.pid,
      "c-floor": cFloor?.pid ?? 0,
      router: router.pid,
      "router+metrics": metricsRouter.pid,
    };
    for (const conns of [1, 8]) {
      const active = targets.filter((t) => t.conns.includes(conns));
      const cpus = pinning ? (conns === 1 ? "0" : "1") : undefined;
      const measure = async (target: (typeof targets)[number], seconds: number) => {
        if (pinning) await pinProcess(pids[target.name], "0");
        try {
          return await run(target.port, conns, inputs.keysPath, seconds, cpus);
        } finally {
          if (pinning) await pinProcess(pids[target.name], "0-1");
        }
      };
      for (const target of active) await measure(target, 1); // Warm-up.
      // Rounds in turn, so that a slow stretch of the shared machine hits every target alike.
      const rounds = new Map<HitRow["target"], LoadResult[]>();
      for (let round = 1; round <= options.rounds; round++) {
        for (const target of active) {
          const result = await measure(target, options.seconds);
          rounds.set(target.name, [...(rounds.get(target.name) ?? []), result]);
          say(
            `hits: ${target.name}, ${conns} conn, round ${round}: ${result.rate.toFixed(0)}/s, ` +
              `p50 ${result.p50Us} µs, p99 ${result.p99Us} µs`,
          );
        }
      }
      for (const target of active) hits.push(hitRow(target.name, rounds.get(target.name) ?? []));
    }

    say("filling the cache to 100,000 domains (router with --metrics)");
    const entriesAfterPass = metricSum(metricsAfterPass, "mxrouter_cache_entries");
    const rssMetricsAfterPass = (await rssBytes(metricsRouter.pid)) ?? 0;
    const fillCount = Math.max(0, 100_000 - entriesAfterPass);
    const fillPath = `${dir}/fill.txt`;
    await Deno.writeTextFile(fillPath, freshKeys("fill", 0, fillCount).join("\n") + "\n");
    const fill = await run(metricsRouter.port, 8, fillPath, 0);
    await sleep(500);
    const metricsAfterFill = await scrapeMetrics(metricsRouter.metricsPort ?? 0);
    const entriesAfterFill = metricSum(metricsAfterFill, "mxrouter_cache_entries");
    const rssAfterFill = (await rssBytes(metricsRouter.pid)) ?? 0;
    say(`  ${fillCount} domains in ${fill.secs.toFixed(2)} s; ${entriesAfterFill} entries`);

    // The same fill in a fresh router with the production flags (no --metrics, as the systemd
    // unit runs it): the cost of cached domains alone, without the heap V8 keeps from the hit
    // runs above. Without metrics, the DNS server counts what went in: one query per domain, and
    // none when a sample is asked again.
    say("filling a fresh router (production flags) with 100,000 domains");
    const fresh = await startRouter({ ...common, logPath: `${dir}/router-fresh.log` });
    stops.push(() => fresh.stop());
    const freshRssStart = (await rssBytes(fresh.pid)) ?? 0;
    const freshKeyList = freshKeys("fresh", 0, 100_000);
    const freshPath = `${dir}/fresh.txt`;
    await Deno.writeTextFile(freshPath, freshKeyList.join("\n") + "\n");
    const dnsBeforeFresh = await dns.queries();
    const freshFill = await run(fresh.port, 8, freshPath, 0);
    const dnsAfterFresh = await dns.queries();
    await sleep(500);
    const freshRss = (await rssBytes(fresh.pid)) ?? 0;
    const samplePath = `${dir}/fresh-sample.txt`;
    await Deno.writeTextFile(
      samplePath,
      freshKeyList.filter((_, i) => i % 100 === 0).join("\n") + "\n",
    );
    await run(fresh.port, 1, samplePath, 0);
    const sampleQueries = (await dns.queries()) - dnsAfterFresh;
    const freshEntries = sampleQueries === 0 ? dnsAfterFresh - dnsBeforeFresh : 0;
    await fresh.stop();
    say(
      `  ${freshEntries} entries in ${freshFill.secs.toFixed(2)} s (${sampleQueries} queries ` +
        `when 1 % were asked again); RSS ${(freshRss / 1048576).toFixed(0)} MB`,
    );

    say("DNS dead: known, expired and unknown domains");
    const staleWait = 31_000 - (performance.now() - probeAt);
    if (staleWait > 0) await sleep(staleWait);
    await dns.down();
    const knownKeys = workload.keys.slice(0, 200);
    const known = await timedLookups(router.port, knownKeys);
    const knownMs = known.map((k) => k.ms).sort((a, b) => a - b);
    const knownReplies: Record<string, number> = {};
    for (const k of known) {
      const code = k.reply.slice(0, 3);
      knownReplies[code] = (knownReplies[code] ?? 0) + 1;
    }
    const staleAgeS = (performance.now() - probeAt) / 1000;
    const [stale, unknown] = await Promise.all([
      timedLookups(router.port, [probeKey]),
      timedLookups(router.port, ["someone@never-seen-before.bench.example"]),
    ]);
    await dns.up();

    const find = (target: HitRow["target"], conns: number) =>
      hits.find((h) => h.target === target && h.conns === conns) ?? null;
    const ratio = (a: HitRow | null, b: HitRow | null) =>
      a === null || b === null || b.rate === 0 ? null : a.rate / b.rate;
    const ratios: Record<string, number | null> = {};
    for (const conns of [1, 8]) {
      ratios[`router/deno-floor@${conns}`] = ratio(
        find("router", conns),
        find("deno-floor", conns),
      );
      ratios[`router/c-floor@${conns}`] = ratio(find("router", conns), find("c-floor", conns));
      ratios[`deno-floor/c-floor@${conns}`] = ratio(
        find("deno-floor", conns),
        find("c-floor", conns),
      );
    }
    ratios["router+metrics/router@8"] = ratio(find("router+metrics", 8), find("router", 8));

    const queriesFromMetrics = metricSum(metricsAfterPass, "mxrouter_dns_queries_total");
    const results: BenchResults = {
      machine,
      setup: {
        loadgen: loadgen.note,
        seed: SEED,
        zoneDomains: inputs.zone.length,
        workloadKeys: workload.keys.length,
        distinctDomains: workload.distinctDomains,
        expected200: workload.expectedCounts[200],
        secondsPerHitRun: options.seconds,
        hitRounds: options.rounds,
        pinning: pinning
          ? "hit runs: server on CPU 0; load generator on CPU 0 (1 conn) or CPU 1 (8 conns)"
          : "none (taskset missing or one core)",
        routerCommand: router.command,
        routerDenoFlags: options.routerDenoFlags,
        routerFlags: "production (systemd unit): default verbosity (info, one line per match, " +
          "stderr to a file), default cache and DNS timeout; --metrics only on router+metrics",
        log: "stderr to a file in the temporary directory",
      },
      hits,
      ratios,
      cold: {
        seconds: cold.secs,
        rate: cold.rate,
        p99Us: cold.p99Us,
        codes: cold.codes,
        dnsQueriesRouterMetrics: queriesFromMetrics,
        dnsQueriesServer: dnsAfterMetricsPass - dnsBefore,
        queriesPerDistinctDomain: queriesFromMetrics / workload.distinctDomains,
        cacheEntries: entriesAfterPass,
        secondsWithMetrics: coldMetrics.secs,
        routerCpuSeconds: (cpuAfter[0] ?? 0) - (cpuBefore[0] ?? 0),
        dnsCpuSeconds: (cpuAfter[1] ?? 0) - (cpuBefore[1] ?? 0),
      },
      memory: {
        rssStartMB: rssStart / MB,
        rssAfterPassMB: rssAfterPass / MB,
        rssAfterFillMB: rssAfterFill / MB,
        entriesAfterPass,
        entriesAfterFill,
        fillSeconds: fill.secs,
        freshRssStartMB: freshRssStart / 1048576,
        freshRssFilledMB: freshRss / 1048576,
        freshEntries,
        freshBytesPerDomain: freshEntries > 0 ? (freshRss - freshRssStart) / freshEntries : 0,
        bytesPerDomain: (rssAfterFill - rssMetricsAfterPass) /
          Math.max(1, entriesAfterFill - entriesAfterPass),
      },
      deadDns: {
        knownP50Ms: knownMs[Math.floor(knownMs.length / 2)],
        knownMaxMs: knownMs[knownMs.length - 1],
        knownReplies,
        staleMs: stale[0].ms,
        staleReply: stale[0].reply,
        staleAgeS,
        unknownMs: unknown[0].ms,
        unknownReply: unknown[0].reply,
        dnsTimeoutS: 5,
      },
      targets: [],
      wallSeconds: 0,
    };
    if (dnsAfterProdPass - dnsAfterMetricsPass !== workload.distinctDomains) {
      say(
        `note: the production router's pass sent ${
          dnsAfterProdPass - dnsAfterMetricsPass
        } queries for ${workload.distinctDomains} domains`,
      );
    }
    results.targets = evaluateTargets(results);
    results.wallSeconds = (performance.now() - wallStart) / 1000;
    return results;
  } finally {
    await Promise.all(stops.map((stop) => stop().catch(() => {})));
    if (!options.keep) await Deno.remove(dir, { recursive: true }).catch(() => {});
    else say(`kept ${dir}`);
  }
}

function evaluateTargets(r: BenchResults): BenchResults["targets"] {
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
      `Deno ${m.deno} (V8 ${m.v8}); router at ${m.revision}; ${m.date}.`,
  );
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
    "| cache hits | router | Deno floor | C floor | router / Deno floor | router / C floor |",
  );
  lines.push("|---|---:|---:|---:|---:|---:|");
  for (const conns of [1, 8]) {
    const [router, deno, c] = [
      row("router", conns),
      row("deno-floor", conns),
      row("c-floor", conns),
    ];
    const us = (x: HitRow | undefined, f: "p50Us" | "p99Us") => x === undefined ? "n/a" : `${x[f]}`;
    lines.push(
      `| lookups/s, ${conns} conn | ${rate(router)} | ${rate(deno)} | ${rate(c)} | ${
        fixed(r.ratios[`router/deno-floor@${conns}`], 2)
      } | ${fixed(r.ratios[`router/c-floor@${conns}`], 2)} |`,
    );
    for (const f of ["p50Us", "p99Us"] as const) {
      lines.push(
        `| ${f.slice(0, 3)} µs, ${conns} conn | ${us(router, f)} | ${us(deno, f)} | ${
          us(c, f)
        } | | |`,
      );
    }
  }
  const withMetrics = row("router+metrics", 8);
  if (withMetrics !== undefined) {
    lines.push(
      `| router with --metrics, 8 conns | ${
        rate(withMetrics)
      }/s, p99 ${withMetrics.p99Us} µs | | | ${
        fixed(r.ratios["router+metrics/router@8"], 2)
      } of the router | |`,
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
    `| DNS dead: known domain expired ${(d.staleAgeS - 30).toFixed(0)} s ago (serve-stale) | ${
      d.staleMs.toFixed(0)
    } ms, \`${d.staleReply}\` |`,
  );
  lines.push(
    `| DNS dead: unknown domain | ${(d.unknownMs / 1000).toFixed(2)} s, \`${d.unknownReply}\` |`,
  );
  lines.push("");
  lines.push("| target (issue 6) | measured | wanted | met |");
  lines.push("|---|---|---|---|");
  for (const t of r.targets) {
    lines.push(`| ${t.name} | ${t.value} | ${t.target} | ${t.met ? "yes" : "**no**"} |`);
  }
  lines.push("");
  lines.push(`Wall time ${r.wallSeconds.toFixed(0)} s.`);
  return lines.join("\n");
}
