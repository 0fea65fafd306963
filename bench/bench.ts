/**
 * `deno task bench`: the router against the Deno, lookup and C floors on cache hits, a cold pass
 * over the workload, memory with 100,000 domains cached, and answers while the DNS is dead. Every
 * figure comes from outside the router process (load generator, /proc, the metrics endpoint).
 *
 * @module
 */

import { SERVE_FLAGS } from "../lib/app/cli.ts";
import type { LoadResult } from "./loadgen.ts";
import {
  canPin,
  cpuSeconds,
  DnsProcess,
  type FloorHandle,
  loadgenCpus,
  metricSum,
  pinProcess,
  type RouterHandle,
  rssBytes,
  runLoadgen,
  scrapeMetrics,
  startCFloor,
  startDenoFloor,
  startRouter,
  timedLookups,
} from "./processes.ts";
import { delay } from "../tests/support/e2e_util.ts";
import { type BenchResults, evaluateTargets, hitRatios, type HitRow, hitRow } from "./report.ts";
import {
  chooseLoadgen,
  machineFacts,
  SEED,
  STALE_PROBE_DOMAIN,
  STALE_PROBE_TTL_S,
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

const MB = 1024 * 1024;

function say(text: string): void {
  console.error(`bench: ${text}`);
}

/** Runs the load generator against a port; `cpus` pins it (taskset). */
type RunLoad = (
  port: number,
  conns: number,
  keyFile: string,
  seconds: number,
  cpus?: string,
) => Promise<LoadResult>;

/** A server the hit runs measure. */
interface HitTarget {
  name: HitRow["target"];
  port: number;
  pid: number;
  conns: number[];
}

/**
 * Cache hits on 1 and on 8 connections for every target, in interleaved rounds so that a slow
 * stretch of the shared machine hits every target alike.
 */
async function measureHits(
  targets: HitTarget[],
  options: { run: RunLoad; keysPath: string; pinning: boolean; bench: BenchOptions },
): Promise<HitRow[]> {
  const { run, keysPath, pinning, bench } = options;
  const hits: HitRow[] = [];
  for (const conns of [1, 8]) {
    const active = targets.filter((t) => t.conns.includes(conns));
    const cpus = pinning ? loadgenCpus(conns) : undefined;
    const measure = async (target: HitTarget, seconds: number) => {
      if (pinning) await pinProcess(target.pid, "0");
      try {
        return await run(target.port, conns, keysPath, seconds, cpus);
      } finally {
        if (pinning) await pinProcess(target.pid, "0-1");
      }
    };
    for (const target of active) await measure(target, 1); // Warm-up.
    const rounds = new Map<HitRow["target"], LoadResult[]>();
    for (let round = 1; round <= bench.rounds; round++) {
      for (const target of active) {
        const result = await measure(target, bench.seconds);
        rounds.set(target.name, [...(rounds.get(target.name) ?? []), result]);
        say(
          `hits: ${target.name}, ${conns} conn, round ${round}: ${result.rate.toFixed(0)}/s, ` +
            `p50 ${result.p50Us} µs, p99 ${result.p99Us} µs`,
        );
      }
    }
    for (const target of active) hits.push(hitRow(target.name, rounds.get(target.name) ?? []));
  }
  return hits;
}

/** A cold pass: one pass over the workload on 8 connections, timed by the load generator. */
interface ColdPass {
  load: LoadResult;
  /** CPU the router and the DNS server used during it, and the queries the DNS server got. */
  routerCpuSeconds: number;
  dnsCpuSeconds: number;
  dnsQueries: number;
}

async function coldPass(
  router: RouterHandle,
  context: { run: RunLoad; dns: DnsProcess; keysPath: string },
): Promise<ColdPass> {
  const { run, dns, keysPath } = context;
  const queriesBefore = await dns.queries();
  const cpu = async () => [(await cpuSeconds(router.pid)) ?? 0, (await cpuSeconds(dns.pid)) ?? 0];
  const [routerBefore, dnsBefore] = await cpu();
  const load = await run(router.port, 8, keysPath, 0);
  const [routerAfter, dnsAfter] = await cpu();
  say(`  ${load.secs.toFixed(2)} s`);
  return {
    load,
    routerCpuSeconds: routerAfter - routerBefore,
    dnsCpuSeconds: dnsAfter - dnsBefore,
    dnsQueries: (await dns.queries()) - queriesBefore,
  };
}

/**
 * 100,000 domains into a fresh router with the production flags (no --metrics, as the systemd
 * unit runs it): the cost of cached domains alone, without the heap V8 keeps from the hit runs.
 * Without metrics, the DNS server counts what went in: one query per domain, and none when a
 * sample is asked again.
 */
async function fillFreshRouter(
  options: { router: RouterHandle; dns: DnsProcess; run: RunLoad; dir: string },
): Promise<{ rssStart: number; rss: number; entries: number }> {
  const { router, dns, run, dir } = options;
  const rssStart = (await rssBytes(router.pid)) ?? 0;
  const keys = freshKeys("fresh", 0, 100_000);
  const keysPath = `${dir}/fresh.txt`;
  await Deno.writeTextFile(keysPath, keys.join("\n") + "\n");
  const dnsBefore = await dns.queries();
  const fill = await run(router.port, 8, keysPath, 0);
  const dnsAfter = await dns.queries();
  await delay(500);
  const rss = (await rssBytes(router.pid)) ?? 0;
  const samplePath = `${dir}/fresh-sample.txt`;
  await Deno.writeTextFile(samplePath, keys.filter((_, i) => i % 100 === 0).join("\n") + "\n");
  await run(router.port, 1, samplePath, 0);
  const sampleQueries = (await dns.queries()) - dnsAfter;
  const entries = sampleQueries === 0 ? dnsAfter - dnsBefore : 0;
  say(
    `  ${entries} entries in ${fill.secs.toFixed(2)} s (${sampleQueries} queries ` +
      `when 1 % were asked again); RSS ${(rss / MB).toFixed(0)} MB`,
  );
  return { rssStart, rss, entries };
}

/**
 * With the DNS server down: 200 known domains, one expired past its TTL (served stale) and one
 * never seen (a 400 after --dns-timeout).
 */
async function probeDeadDns(
  options: {
    port: number;
    dns: DnsProcess;
    knownKeys: string[];
    probeKey: string;
    probeAt: number;
  },
): Promise<BenchResults["deadDns"]> {
  const { port, dns, knownKeys, probeKey, probeAt } = options;
  // The probe domain has the shortest TTL: expired by now.
  const staleWait = (STALE_PROBE_TTL_S + 1) * 1000 - (performance.now() - probeAt);
  if (staleWait > 0) await delay(staleWait);
  await dns.down();
  try {
    const known = await timedLookups(port, knownKeys);
    const knownMs = known.map((k) => k.ms).sort((a, b) => a - b);
    const knownReplies: Record<string, number> = {};
    for (const k of known) {
      const code = k.reply.slice(0, 3);
      knownReplies[code] = (knownReplies[code] ?? 0) + 1;
    }
    const staleAgeS = (performance.now() - probeAt) / 1000;
    const [stale, unknown] = await Promise.all([
      timedLookups(port, [probeKey]),
      timedLookups(port, ["someone@never-seen-before.bench.example"]),
    ]);
    return {
      knownP50Ms: knownMs[Math.floor(knownMs.length / 2)],
      knownMaxMs: knownMs[knownMs.length - 1],
      knownReplies,
      staleMs: stale[0].ms,
      staleReply: stale[0].reply,
      staleAgeS,
      unknownMs: unknown[0].ms,
      unknownReply: unknown[0].reply,
      dnsTimeoutS: Number(SERVE_FLAGS.find((flag) => flag.name === "dns-timeout")?.default),
    };
  } finally {
    await dns.up();
  }
}

/** Runs the benchmark and returns what it measured (run.ts prints and saves it). */
export async function runBench(options: BenchOptions): Promise<BenchResults> {
  const wallStart = performance.now();
  const dir = await Deno.makeTempDir({ prefix: "mxrouter-bench-" });
  const stops: (() => Promise<void>)[] = [];
  try {
    const machine = await machineFacts();
    const inputs = await writeInputs(dir, "long");
    const { workload } = inputs;
    const loadgen = await chooseLoadgen(options.denoLoadgen);
    say(`${loadgen.note}; inputs in ${dir}`);
    if (loadgen.warning !== null) say(`WARNING: ${loadgen.warning}`);
    const dns = await DnsProcess.start(inputs.zonePath);
    stops.push(() => dns.stop());
    const common = {
      rulesPath: inputs.rulesPath,
      tmpDir: dir,
      dnsPort: dns.port,
      denoFlags: options.routerDenoFlags,
    };
    const [router, metricsRouter, denoFloor, lookupFloor, cFloor] = await Promise.all([
      startRouter({ ...common, logPath: `${dir}/router.log` }),
      startRouter({ ...common, logPath: `${dir}/router-metrics.log`, metrics: true }),
      startDenoFloor(),
      startDenoFloor({ lookupPath: inputs.expectedPath }),
      loadgen.cTools === null ? Promise.resolve(null) : startCFloor(loadgen.cTools.floor),
    ]);
    const handles: (RouterHandle | FloorHandle | null)[] = [
      router,
      metricsRouter,
      denoFloor,
      lookupFloor,
      cFloor,
    ];
    for (const handle of handles) if (handle !== null) stops.push(() => handle.stop());
    say(`routers: production flags pid ${router.pid}, with --metrics pid ${metricsRouter.pid}`);
    const run: RunLoad = (port, conns, keyFile, seconds, cpus) =>
      runLoadgen(loadgen.tool, { port, conns, keyFile, seconds, cpus });
    const pinning = await canPin(machine.cores);

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

    const passContext = { run, dns, keysPath: inputs.keysPath };
    say("cold pass (router with production flags)");
    const cold = await coldPass(router, passContext);
    const rssAfterPass = (await rssBytes(router.pid)) ?? 0;

    const tcpRouter = await startRouter({
      ...common,
      logPath: `${dir}/router-dns-tcp.log`,
      routerFlags: ["--dns-tcp"],
    });
    stops.push(() => tcpRouter.stop());
    say(`cold pass (a fresh router with production flags and --dns-tcp, pid ${tcpRouter.pid})`);
    const coldTcp = await coldPass(tcpRouter, passContext);
    await tcpRouter.stop();

    const hits = await measureHits([
      { name: "deno-floor", port: denoFloor.port, pid: denoFloor.pid, conns: [1, 8] },
      { name: "lookup-floor", port: lookupFloor.port, pid: lookupFloor.pid, conns: [1, 8] },
      ...(cFloor === null
        ? []
        : [{ name: "c-floor" as const, port: cFloor.port, pid: cFloor.pid, conns: [1, 8] }]),
      { name: "router", port: router.port, pid: router.pid, conns: [1, 8] },
      { name: "router+metrics", port: metricsRouter.port, pid: metricsRouter.pid, conns: [8] },
    ], { run, keysPath: inputs.keysPath, pinning, bench: options });

    say("filling the cache to 100,000 domains (router with --metrics)");
    const entriesAfterPass = metricSum(metricsAfterPass, "mxrouter_cache_entries");
    const rssMetricsAfterPass = (await rssBytes(metricsRouter.pid)) ?? 0;
    const fillCount = Math.max(0, 100_000 - entriesAfterPass);
    const fillPath = `${dir}/fill.txt`;
    await Deno.writeTextFile(fillPath, freshKeys("fill", 0, fillCount).join("\n") + "\n");
    const fill = await run(metricsRouter.port, 8, fillPath, 0);
    await delay(500);
    const metricsAfterFill = await scrapeMetrics(metricsRouter.metricsPort ?? 0);
    const entriesAfterFill = metricSum(metricsAfterFill, "mxrouter_cache_entries");
    const rssAfterFill = (await rssBytes(metricsRouter.pid)) ?? 0;
    say(`  ${fillCount} domains in ${fill.secs.toFixed(2)} s; ${entriesAfterFill} entries`);

    const freshRouter = await startRouter({ ...common, logPath: `${dir}/router-fresh.log` });
    say(`filling a fresh router (production flags, pid ${freshRouter.pid}) with 100,000 domains`);
    stops.push(() => freshRouter.stop());
    const fresh = await fillFreshRouter({ router: freshRouter, dns, run, dir });
    await freshRouter.stop();

    say("DNS dead: known, expired and unknown domains");
    const deadDns = await probeDeadDns({
      port: router.port,
      dns,
      knownKeys: workload.keys.slice(0, 200),
      probeKey,
      probeAt,
    });

    const queriesFromMetrics = metricSum(metricsAfterPass, "mxrouter_dns_queries_total");
    const results: BenchResults = {
      machine,
      setup: {
        loadgen: loadgen.note,
        loadgenWarning: loadgen.warning,
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
      ratios: hitRatios(hits),
      cold: {
        seconds: cold.load.secs,
        rate: cold.load.rate,
        p99Us: cold.load.p99Us,
        codes: cold.load.codes,
        dnsQueriesRouterMetrics: queriesFromMetrics,
        dnsQueriesServer: dnsAfterMetricsPass - dnsBefore,
        queriesPerDistinctDomain: queriesFromMetrics / workload.distinctDomains,
        secondsWithMetrics: coldMetrics.secs,
        routerCpuSeconds: cold.routerCpuSeconds,
        dnsCpuSeconds: cold.dnsCpuSeconds,
      },
      coldDnsTcp: {
        seconds: coldTcp.load.secs,
        rate: coldTcp.load.rate,
        p99Us: coldTcp.load.p99Us,
        codes: coldTcp.load.codes,
        dnsQueriesServer: coldTcp.dnsQueries,
        queriesPerDistinctDomain: coldTcp.dnsQueries / workload.distinctDomains,
        routerCpuSeconds: coldTcp.routerCpuSeconds,
        dnsCpuSeconds: coldTcp.dnsCpuSeconds,
      },
      memory: {
        rssStartMB: rssStart / MB,
        rssAfterPassMB: rssAfterPass / MB,
        rssAfterFillMB: rssAfterFill / MB,
        entriesAfterPass,
        entriesAfterFill,
        fillSeconds: fill.secs,
        freshRssStartMB: fresh.rssStart / MB,
        freshRssFilledMB: fresh.rss / MB,
        freshEntries: fresh.entries,
        freshBytesPerDomain: fresh.entries > 0 ? (fresh.rss - fresh.rssStart) / fresh.entries : 0,
        bytesPerDomain: (rssAfterFill - rssMetricsAfterPass) /
          Math.max(1, entriesAfterFill - entriesAfterPass),
      },
      deadDns,
      targets: [],
      wallSeconds: 0,
    };
    if (cold.dnsQueries !== workload.distinctDomains) {
      say(
        `note: the production router's pass sent ${cold.dnsQueries} queries for ${workload.distinctDomains} domains`,
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
