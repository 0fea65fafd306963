/**
 * The soak's load generator, in its own process: closed-loop connections like loadgen.ts, mixing
 * known keys (the workload, cached before the soak) with fresh domains never seen before, and
 * checking every reply against the answer the zone implies.
 *
 * ```sh
 * deno run --allow-net --allow-read bench/soak_client.ts PLAN.json
 * ```
 *
 * Prints one JSON {@linkcode SoakReport} on stdout at the end.
 *
 * @module
 */

import { LineReader, percentile, replyCode, Samples, writeAll } from "./loadgen.ts";
import { seededRandom } from "./workload.ts";

/** What the soak client is told to do. */
export interface SoakPlan {
  host: string;
  port: number;
  conns: number;
  seconds: number;
  /** Lines `KEY TAB CODE`: the known keys and the code each should get. */
  keyFile: string;
  /** Fresh keys are `userN@{freshPrefix}{n}.example`, n < freshPool; they should get 200. */
  freshPrefix: string;
  freshPool: number;
  /** Share of requests that use a fresh key. */
  missRatio: number;
  seed: number;
}

/** Counts for one class of keys. */
export interface ClassCounts {
  requests: number;
  200: number;
  400: number;
  500: number;
  other: number;
  /** Expected 200 (a rule matches), answered 500: a misroute, e.g. a DNS failure taken as "no MX". */
  wrong500: number;
  /** Expected 500, answered 200. */
  wrong200: number;
}

/** One second of the run. */
export interface SoakSecond {
  requests: number;
  c400: number;
  wrong: number;
  maxMs: number;
}

/** What the soak client measured. */
export interface SoakReport {
  seconds: number;
  known: ClassCounts;
  fresh: ClassCounts;
  errors: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
  /** Latency of known keys only (cache hits and stale answers). */
  knownP99Us: number;
  knownMaxUs: number;
  perSecond: SoakSecond[];
  /** Up to 20 wrong answers, for the report. */
  examples: { atS: number; key: string; expected: number; reply: string }[];
}

function counts(): ClassCounts {
  return { requests: 0, 200: 0, 400: 0, 500: 0, other: 0, wrong500: 0, wrong200: 0 };
}

/** Runs the soak load described by `plan`. */
export async function runSoakClient(plan: SoakPlan): Promise<SoakReport> {
  const lines = (await Deno.readTextFile(plan.keyFile)).split("\n").filter((l) => l !== "");
  const encoder = new TextEncoder();
  const known = lines.map((line) => {
    const [key, code] = line.split("\t");
    return { key, request: encoder.encode(`get ${key}\n`), expected: Number(code) };
  });
  const report: SoakReport = {
    seconds: plan.seconds,
    known: counts(),
    fresh: counts(),
    errors: 0,
    p50Us: 0,
    p99Us: 0,
    maxUs: 0,
    knownP99Us: 0,
    knownMaxUs: 0,
    perSecond: [],
    examples: [],
  };
  const all = new Samples();
  const knownSamples = new Samples();
  const started = performance.now();
  const deadline = started + plan.seconds * 1000;
  const second = (now: number) => {
    const index = Math.floor((now - started) / 1000);
    while (report.perSecond.length <= index) {
      report.perSecond.push({ requests: 0, c400: 0, wrong: 0, maxMs: 0 });
    }
    return report.perSecond[index];
  };
  const worker = async (id: number) => {
    const random = seededRandom(plan.seed + id);
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname: plan.host, port: plan.port });
    } catch {
      report.errors++;
      return;
    }
    conn.setNoDelay(true);
    const reader = new LineReader(conn);
    let next = id * 7919;
    try {
      while (performance.now() < deadline) {
        let key: string;
        let request: Uint8Array;
        let expected: number;
        let stats: ClassCounts;
        if (random() < plan.missRatio) {
          const n = Math.floor(random() * plan.freshPool);
          key = `user${n % 97}@${plan.freshPrefix}${n}.example`;
          request = encoder.encode(`get ${key}\n`);
          expected = 200;
          stats = report.fresh;
        } else {
          const entry = known[next++ % known.length];
          ({ key, request, expected } = entry);
          stats = report.known;
        }
        const t0 = performance.now();
        await writeAll(conn, request);
        const line = await reader.nextLine();
        const t1 = performance.now();
        if (line === null) {
          report.errors++;
          break;
        }
        const code = replyCode(line);
        const us = (t1 - t0) * 1000;
        all.push(us);
        if (stats === report.known) knownSamples.push(us);
        stats.requests++;
        const bucket = second(t1);
        bucket.requests++;
        bucket.maxMs = Math.max(bucket.maxMs, us / 1000);
        if (code === 200 || code === 400 || code === 500) stats[code]++;
        else stats.other++;
        if (code === 400) bucket.c400++;
        const wrong = (expected === 200 && code === 500) || (expected === 500 && code === 200);
        if (wrong) {
          if (code === 500) stats.wrong500++;
          else stats.wrong200++;
          bucket.wrong++;
          if (report.examples.length < 20) {
            report.examples.push({
              atS: Math.round(t1 - started) / 1000,
              key,
              expected,
              reply: new TextDecoder().decode(line),
            });
          }
        }
      }
    } catch {
      report.errors++;
    } finally {
      conn.close();
    }
  };
  await Promise.all(Array.from({ length: plan.conns }, (_, id) => worker(id)));
  const sorted = all.values().sort();
  report.p50Us = percentile(sorted, 0.5);
  report.p99Us = percentile(sorted, 0.99);
  report.maxUs = sorted.length > 0 ? sorted[sorted.length - 1] : 0;
  const knownSorted = knownSamples.values().sort();
  report.knownP99Us = percentile(knownSorted, 0.99);
  report.knownMaxUs = knownSorted.length > 0 ? knownSorted[knownSorted.length - 1] : 0;
  return report;
}

if (import.meta.main) {
  const plan = JSON.parse(await Deno.readTextFile(Deno.args[0])) as SoakPlan;
  console.log(JSON.stringify(await runSoakClient(plan)));
}
