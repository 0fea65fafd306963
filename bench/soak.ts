/**
 * `deno task bench --soak`: mixed load (known keys and fresh domains) against the router with
 * production flags while the DNS fails for 5 s every 30 s, alternately dead (every query times
 * out) and answering SERVFAIL. Checks that no reply of 500 comes from a DNS failure, counts the
 * 400s, samples RSS every 10 s and reports the latency.
 *
 * @module
 */

import {
  DnsProcess,
  HOST,
  metricSum,
  type RouterHandle,
  rssBytes,
  runLoadgen,
  scrapeMetrics,
  startRouter,
} from "./processes.ts";
import { delay } from "../tests/support/e2e_util.ts";
import { type MachineFacts, machineFacts, SEED, writeInputs } from "./setup.ts";
import type { SoakPlan, SoakReport } from "./soak_client.ts";
import { PROJECT_ROOT } from "../tests/support/router_process.ts";

/** Options of {@linkcode runSoak}. */
export interface SoakOptions {
  seconds: number;
  keep: boolean;
  /** More `deno run` flags for the router, e.g. `--v8-flags=--max-semi-space-size=1`. */
  routerDenoFlags: string[];
  /** More router flags, e.g. `--dns-tcp`. */
  routerFlags: string[];
}

/** One DNS outage of the soak. */
export interface Outage {
  kind: "dead" | "servfail";
  fromS: number;
  toS: number;
}

/** What the soak measured; written to bench/results.json under "soak". */
export interface SoakResults {
  machine: MachineFacts;
  seconds: number;
  /** Extra `deno run` flags the router got (none: production flags). */
  routerDenoFlags: string[];
  /** Extra router flags (e.g. `--dns-tcp`). */
  routerFlags: string[];
  conns: number;
  missRatio: number;
  freshPool: number;
  outages: Outage[];
  client: SoakReport;
  /** [seconds since the start, RSS in MB]. */
  rss: [number, number][];
  /** (max - min) / min of the samples from `flatFromS` on. */
  rssSpread: number;
  flatFromS: number;
  metrics: Record<string, number>;
  verdict: { no500FromDns: boolean; knownNever400: boolean; rssFlat: boolean };
}

const OUTAGE_EVERY_S = 30;
const OUTAGE_S = 5;
const FIRST_OUTAGE_S = 20;

function say(text: string): void {
  console.error(`soak: ${text}`);
}

/** Runs the soak and returns what it measured (run.ts prints and saves it). */
export async function runSoak(options: SoakOptions): Promise<SoakResults> {
  const dir = await Deno.makeTempDir({ prefix: "mxrouter-soak-" });
  const stops: (() => Promise<void>)[] = [];
  try {
    const machine = await machineFacts();
    const inputs = await writeInputs(dir, "short");
    const dns = await DnsProcess.start(inputs.zonePath);
    stops.push(() => dns.stop());
    const router: RouterHandle = await startRouter({
      rulesPath: inputs.rulesPath,
      tmpDir: dir,
      dnsPort: dns.port,
      logPath: `${dir}/router.log`,
      metrics: true,
      denoFlags: options.routerDenoFlags,
      routerFlags: options.routerFlags,
    });
    stops.push(() => router.stop());
    say("warming the cache with the workload");
    // The Deno load generator: how fast this pass goes does not matter to the soak.
    await runLoadgen({ kind: "deno" }, {
      port: router.port,
      conns: 8,
      keyFile: inputs.keysPath,
      seconds: 0,
    });

    const plan: SoakPlan = {
      host: HOST,
      port: router.port,
      conns: 8,
      seconds: options.seconds,
      keyFile: inputs.expectedPath,
      freshPrefix: "fresh",
      freshPool: 50_000,
      missRatio: 0.1,
      seed: SEED,
    };
    const planPath = `${dir}/soak-plan.json`;
    await Deno.writeTextFile(planPath, JSON.stringify(plan));
    say(`${options.seconds} s of mixed load; DNS fails ${OUTAGE_S} s every ${OUTAGE_EVERY_S} s`);
    const client = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net",
        "--allow-read",
        `${PROJECT_ROOT}/bench/soak_client.ts`,
        planPath,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const started = performance.now();
    const elapsed = () => (performance.now() - started) / 1000;
    const rss: [number, number][] = [];
    const outages: Outage[] = [];
    let nextSample = 0;
    let nextOutage = FIRST_OUTAGE_S;
    let dead = true;
    while (elapsed() < options.seconds) {
      const now = elapsed();
      if (now >= nextSample) {
        rss.push([Math.round(now), ((await rssBytes(router.pid)) ?? 0) / 2 ** 20]);
        nextSample += 10;
      }
      if (now >= nextOutage && now + 1 < options.seconds) {
        const kind = dead ? "dead" : "servfail";
        await (dead ? dns.down() : dns.servfail());
        const fromS = elapsed();
        say(`  ${fromS.toFixed(0)} s: DNS ${kind} for ${OUTAGE_S} s`);
        await delay(Math.min(OUTAGE_S, options.seconds - fromS) * 1000);
        await dns.up();
        outages.push({ kind, fromS, toS: elapsed() });
        dead = !dead;
        nextOutage += OUTAGE_EVERY_S;
        continue;
      }
      await delay(Math.max(0.01, Math.min(nextSample, nextOutage) - elapsed()) * 1000);
    }
    const output = await client;
    const report = JSON.parse(new TextDecoder().decode(output.stdout)) as SoakReport;
    rss.push([Math.round(elapsed()), ((await rssBytes(router.pid)) ?? 0) / 2 ** 20]);
    const samples = await scrapeMetrics(router.metricsPort ?? 0);
    const metrics: Record<string, number> = {};
    for (
      const name of [
        "mxrouter_cache_entries",
        "mxrouter_cache_hits_total",
        "mxrouter_cache_misses_total",
        "mxrouter_cache_stale_answers_total",
        "mxrouter_cache_prefetches_total",
        "mxrouter_cache_coalesced_total",
        "mxrouter_cache_failure_answers_total",
        "mxrouter_dns_queries_total",
      ]
    ) metrics[name] = metricSum(samples, name);
    for (const [key, value] of samples) {
      if (
        key.startsWith("mxrouter_dns_queries_total{") || key.startsWith("mxrouter_lookups_total{")
      ) {
        metrics[key] = value;
      }
    }
    const flatFromS = Math.min(60, Math.floor(options.seconds / 2));
    const flat = rss.filter(([t]) => t >= flatFromS).map(([, mb]) => mb);
    const rssSpread = flat.length < 2
      ? 0
      : (Math.max(...flat) - Math.min(...flat)) / Math.min(...flat);
    return {
      machine,
      seconds: options.seconds,
      routerDenoFlags: options.routerDenoFlags,
      routerFlags: options.routerFlags,
      conns: plan.conns,
      missRatio: plan.missRatio,
      freshPool: plan.freshPool,
      outages,
      client: report,
      rss,
      rssSpread,
      flatFromS,
      metrics,
      verdict: {
        no500FromDns: report.known.wrong500 + report.fresh.wrong500 === 0,
        knownNever400: report.known[400] === 0,
        rssFlat: rssSpread <= 0.1,
      },
    };
  } finally {
    await Promise.all(stops.map((stop) => stop().catch(() => {})));
    if (!options.keep) await Deno.remove(dir, { recursive: true }).catch(() => {});
    else say(`kept ${dir}`);
  }
}

/** The soak's results as markdown. */
export function formatSoak(r: SoakResults): string {
  const c = r.client;
  const total = c.known.requests + c.fresh.requests;
  const lines = [
    `Machine: ${r.machine.cpu}, ${r.machine.cores} cores; Deno ${r.machine.deno}; router at ${r.machine.revision}; ${r.machine.date}.`,
    `Soak: ${r.seconds} s, ${r.conns} connections, ${r.missRatio * 100} % fresh domains (pool of ${
      r.freshPool.toLocaleString("en-US")
    }), TTLs 30-120 s; router flags: production${
      [...(r.routerFlags ?? []), ...r.routerDenoFlags].map((flag) => ` + ${flag}`).join("")
    }; DNS outages: ${
      r.outages.map((o) => `${o.kind} ${o.fromS.toFixed(0)}-${o.toS.toFixed(0)} s`).join(", ")
    }.`,
    "",
    "| figure | value | wanted |",
    "|---|---|---|",
    `| requests | ${total.toLocaleString("en-US")} (${
      Math.round(total / r.seconds)
    }/s), errors ${c.errors} | |`,
    `| 500 where a rule matches (DNS failure taken as "not found") | known ${c.known.wrong500}, fresh ${c.fresh.wrong500} | 0 |`,
    `| 200 where no rule matches | ${c.known.wrong200 + c.fresh.wrong200} | 0 |`,
    `| 400 for known (cached) domains | ${c.known[400]} of ${
      c.known.requests.toLocaleString("en-US")
    } | 0 (serve stale) |`,
    `| 400 for fresh domains | ${c.fresh[400]} of ${
      c.fresh.requests.toLocaleString("en-US")
    } | only during and just after outages |`,
    `| latency, all | p50 ${(c.p50Us / 1000).toFixed(3)} ms, p99 ${
      (c.p99Us / 1000).toFixed(2)
    } ms, max ${(c.maxUs / 1000).toFixed(0)} ms | |`,
    `| latency, known domains | p99 ${(c.knownP99Us / 1000).toFixed(2)} ms, max ${
      (c.knownMaxUs / 1000).toFixed(0)
    } ms | |`,
    `| RSS every 10 s (MB) | ${r.rss.map(([t, mb]) => `${t}s:${mb.toFixed(0)}`).join(" ")} | |`,
    `| RSS spread from ${r.flatFromS} s on | ${(r.rssSpread * 100).toFixed(1)} % | ≤ 10 % |`,
    `| stale answers / failure-cache answers / DNS queries | ${
      r.metrics["mxrouter_cache_stale_answers_total"]
    } / ${r.metrics["mxrouter_cache_failure_answers_total"]} / ${
      r.metrics["mxrouter_dns_queries_total"]
    } | |`,
    "",
    `Verdict: no 500 from DNS failures: ${r.verdict.no500FromDns ? "yes" : "**no**"}; ` +
    `known domains never 400: ${r.verdict.knownNever400 ? "yes" : "**no**"}; ` +
    `RSS flat within 10 %: ${r.verdict.rssFlat ? "yes" : "**no**"}.`,
  ];
  if (c.examples.length > 0) {
    lines.push("", "Wrong answers (first ones):");
    for (const e of c.examples.slice(0, 5)) {
      lines.push(`- at ${e.atS} s: ${e.key} expected ${e.expected}, got \`${e.reply}\``);
    }
  }
  return lines.join("\n");
}
