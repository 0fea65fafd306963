/**
 * Entry of `deno task bench`.
 *
 * ```sh
 * deno task bench                      # the benchmark (under 3 minutes on 2 cores)
 * deno task bench --seconds 1 --rounds 1  # a check that it runs (about 70 s; figures too noisy)
 * deno task bench --soak               # 5 minutes of mixed load with DNS outages
 * deno task bench --soak --soak-seconds 60
 * deno task bench --soak --soak-dns-tcp  # the same with the router's --dns-tcp
 * # A CPU profile of each router the bench starts, named by its pid (the progress lines give
 * # each router's), with a markdown summary of the functions by self time beside it:
 * deno task bench --router-deno-flag=--cpu-prof --router-deno-flag=--cpu-prof-md \
 *   --router-deno-flag=--cpu-prof-dir=/tmp/mxrouter-profile
 * ```
 *
 * Other flags: `--seconds N` and `--rounds N` (each hit figure is the median of N interleaved
 * rounds of that many seconds; default 3 and 3), `--deno-loadgen` (the Deno load generator instead
 * of the C one), `--keep` (keep the temporary directory with logs and inputs),
 * `--router-deno-flag FLAG` (repeatable: a `deno run` flag for every router the bench starts, e.g.
 * `--router-deno-flag=--v8-flags=--max-semi-space-size=1` to try one, or `--cpu-prof`).
 *
 * The C load generator and floor (bench/loadgen.c, bench/floor.c) are built with the system's `cc`
 * into bench/build/; without a compiler the Deno load generator runs, there is no C floor, and the
 * report says so in bold. The markdown tables go to stdout, progress to stderr; results go to
 * bench/results.json (not kept in git).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { runBench } from "./bench.ts";
import { formatBench } from "./report.ts";
import { writeResults } from "./setup.ts";
import { formatSoak, runSoak } from "./soak.ts";

const USAGE = "usage: deno task bench [--seconds N] [--rounds N] [--deno-loadgen] [--keep] " +
  "[--router-deno-flag FLAG]...\n" +
  "       deno task bench --soak [--soak-seconds N] [--soak-dns-tcp]";

function positive(text: string | undefined, fallback: number, flag: string): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`bench: ${flag} needs a positive number, not "${text}"\n${USAGE}`);
    Deno.exit(2);
  }
  return value;
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      strict: true,
      options: {
        soak: { type: "boolean" },
        "soak-seconds": { type: "string" },
        "soak-dns-tcp": { type: "boolean" },
        seconds: { type: "string" },
        rounds: { type: "string" },
        "deno-loadgen": { type: "boolean" },
        keep: { type: "boolean" },
        "router-deno-flag": { type: "string", multiple: true },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    console.error(`bench: ${error instanceof Error ? error.message : error}\n${USAGE}`);
    Deno.exit(2);
  }
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const keep = values.keep ?? false;
  const routerDenoFlags = values["router-deno-flag"] ?? [];
  if (values.soak || values["soak-seconds"] !== undefined) {
    const results = await runSoak({
      seconds: positive(values["soak-seconds"], 300, "--soak-seconds"),
      keep,
      routerDenoFlags,
      routerFlags: values["soak-dns-tcp"] ? ["--dns-tcp"] : [],
    });
    console.log(formatSoak(results));
    console.error(`soak: results in ${await writeResults("soak", results)}`);
    return;
  }
  const results = await runBench({
    seconds: positive(values.seconds, 3, "--seconds"),
    rounds: Math.round(positive(values.rounds, 3, "--rounds")),
    denoLoadgen: values["deno-loadgen"] ?? false,
    keep,
    routerDenoFlags,
  });
  console.log(formatBench(results));
  console.error(`bench: results in ${await writeResults("bench", results)}`);
}

if (import.meta.main) await main();
