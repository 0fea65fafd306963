/**
 * `deno task bench --stretch`: what more than one core gains on 8 connections.
 *
 * - The router itself: main.ts (one thread) against bench/multicore_router.ts (the router in 2
 *   workers sharing the port with SO_REUSEPORT; misses asked of one owner thread, so one DNS query
 *   per domain). Each round starts both fresh: a cold pass over the workload from an empty cache
 *   (time, and DNS queries per distinct domain as the DNS server counts them), then cache hits.
 * - The ceiling: the Deno floor server in one process, then in two sharing the port.
 *
 * Nothing is pinned: the load generator needs a core too. SO_REUSEPORT needs `--unstable-net` in
 * Deno 2.9, so the product stays on one thread (no unstable APIs) and this stays an experiment.
 *
 * @module
 */

import { freePort } from "../tests/support/e2e_util.ts";
import { median } from "./report.ts";
import {
  DnsProcess,
  type FloorHandle,
  type LoadgenTool,
  runLoadgen,
  startDenoFloor,
  startRouter,
} from "./processes.ts";
import {
  type BenchInputs,
  chooseLoadgen,
  type MachineFacts,
  machineFacts,
  writeInputs,
} from "./setup.ts";

/** Options of {@linkcode runStretch}. */
export interface StretchOptions {
  seconds: number;
  rounds: number;
  denoLoadgen: boolean;
}

/** One variant of the router, over the rounds (medians, and every round). */
export interface RouterVariantResult {
  /** 1: main.ts; 2: the router in 2 workers. */
  threads: number;
  hitRate: number;
  hitRates: number[];
  coldSeconds: number;
  coldRounds: number[];
  /** DNS queries the DNS server received per distinct domain, in each round's cold pass. */
  queriesPerDomain: number[];
  /** Replies other than the expected ones, summed over the rounds (must be 0). */
  wrongReplies: number;
}

/** What the stretch experiment measured; written to bench/results.json under "stretch". */
export interface StretchResults {
  machine: MachineFacts;
  conns: number;
  /** The router in one thread and in 2 workers. */
  router: RouterVariantResult[];
  /** Router: hits/s of 2 workers over 1 thread. */
  routerGain: number;
  /** Median lookups/s of the floor in 1 and in 2 processes sharing the port, and every round. */
  rates: { processes: number; rate: number; rounds: number[] }[];
  /** Floor: two processes over one. */
  gain: number;
}

/** Connections the load generator opens: Postfix-like concurrency on a busy host. */
const CONNS = 8;

function say(text: string): void {
  console.error(`stretch: ${text}`);
}

/** Runs the experiment (rounds interleaved, so drift hits both variants alike). */
export async function runStretch(options: StretchOptions): Promise<StretchResults> {
  const dir = await Deno.makeTempDir({ prefix: "mxrouter-stretch-" });
  let dns: DnsProcess | null = null;
  try {
    const machine = await machineFacts();
    const inputs = await writeInputs(dir, "long");
    const loadgen = await chooseLoadgen(dir, options.denoLoadgen);
    const routerRounds = new Map<number, RouterRound[]>([[1, []], [2, []]]);
    const floorRounds = new Map<number, number[]>([[1, []], [2, []]]);
    const dnsServer = await DnsProcess.start(inputs.zonePath);
    dns = dnsServer;
    for (let round = 1; round <= options.rounds; round++) {
      for (const threads of [1, 2]) {
        const result = await measureRouter({
          threads,
          inputs,
          dir,
          dns: dnsServer,
          tool: loadgen.tool,
          seconds: options.seconds,
        });
        routerRounds.get(threads)!.push(result);
        say(
          `router, ${threads} thread(s), round ${round}: cold ${
            result.coldSeconds.toFixed(2)
          } s, ` +
            `${result.queriesPerDomain.toFixed(3)} queries per domain, ` +
            `hits ${result.hitRate.toFixed(0)}/s`,
        );
      }
      for (const processes of [1, 2]) {
        const rate = await measureFloor(processes, inputs, loadgen.tool, options.seconds);
        floorRounds.get(processes)!.push(rate);
        say(`floor, ${processes} process(es), round ${round}: ${rate.toFixed(0)}/s`);
      }
    }
    const router = [...routerRounds].map(([threads, list]) => ({
      threads,
      hitRate: median(list.map((r) => r.hitRate)),
      hitRates: list.map((r) => r.hitRate),
      coldSeconds: median(list.map((r) => r.coldSeconds)),
      coldRounds: list.map((r) => r.coldSeconds),
      queriesPerDomain: list.map((r) => r.queriesPerDomain),
      wrongReplies: list.reduce((sum, r) => sum + r.wrongReplies, 0),
    }));
    const rates = [...floorRounds].map(([processes, list]) => ({
      processes,
      rate: median(list),
      rounds: list,
    }));
    return {
      machine,
      conns: CONNS,
      router,
      routerGain: router[1].hitRate / router[0].hitRate,
      rates,
      gain: rates[1].rate / rates[0].rate,
    };
  } finally {
    await dns?.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

interface RouterRound {
  hitRate: number;
  coldSeconds: number;
  queriesPerDomain: number;
  wrongReplies: number;
}

/** One round of one router variant: a fresh router, a cold pass, then hits. */
async function measureRouter(
  run: {
    threads: number;
    inputs: BenchInputs;
    dir: string;
    dns: DnsProcess;
    tool: LoadgenTool;
    seconds: number;
  },
): Promise<RouterRound> {
  const { inputs, dns } = run;
  const router = await startRouter({
    rulesPath: inputs.rulesPath,
    tmpDir: run.dir,
    dnsPort: dns.port,
    logPath: `${run.dir}/router-${run.threads}.log`,
    workers: run.threads === 1 ? undefined : run.threads,
  });
  try {
    const queriesBefore = await dns.queries();
    const keyFile = inputs.keysPath;
    const cold = await runLoadgen(run.tool, {
      port: router.port,
      conns: CONNS,
      keyFile,
      seconds: 0,
    });
    const queries = await dns.queries() - queriesBefore;
    const expected = inputs.workload.expectedCounts;
    const wrongReplies = Math.abs(cold.codes[200] - expected[200]) + cold.codes[400] +
      cold.codes.other + cold.errors;
    return {
      hitRate: await hitRate(run.tool, { port: router.port, keyFile, seconds: run.seconds }),
      coldSeconds: cold.secs,
      queriesPerDomain: queries / inputs.workload.distinctDomains,
      wrongReplies,
    };
  } finally {
    await router.stop();
  }
}

/** Lookups/s on {@linkcode CONNS} connections for `seconds`, after a 1 s warm-up of the same load. */
async function hitRate(
  tool: LoadgenTool,
  run: { port: number; keyFile: string; seconds: number },
): Promise<number> {
  await runLoadgen(tool, { ...run, conns: CONNS, seconds: 1 });
  return (await runLoadgen(tool, { ...run, conns: CONNS })).rate;
}

/** The floor in `processes` processes sharing one port: lookups/s on 8 connections. */
async function measureFloor(
  processes: number,
  inputs: BenchInputs,
  tool: LoadgenTool,
  seconds: number,
): Promise<number> {
  const port = await freePort();
  const floors: FloorHandle[] = [];
  try {
    for (let i = 0; i < processes; i++) {
      floors.push(await startDenoFloor({ port, reusePort: true }));
    }
    return await hitRate(tool, { port, keyFile: inputs.keysPath, seconds });
  } finally {
    await Promise.all(floors.map((floor) => floor.stop()));
  }
}

/** The markdown tables of the experiment. */
export function formatStretch(results: StretchResults): string {
  const m = results.machine;
  const [one, two] = results.router;
  const list = (values: number[], digits: number) =>
    values.map((v) => v.toFixed(digits)).join(", ");
  const lines = [
    `Machine: ${m.cpu}, ${m.cores} cores; Deno ${m.deno}; router at ${m.revision}; ${m.date}.`,
    "",
    `| router on ${results.conns} connections, unpinned | 1 thread (main.ts) | 2 workers (SO_REUSEPORT) |`,
    "|---|---:|---:|",
    `| cache hits, lookups/s (median) | ${one.hitRate.toFixed(0)} | ${two.hitRate.toFixed(0)} |`,
    `| cache hits, each round | ${list(one.hitRates, 0)} | ${list(two.hitRates, 0)} |`,
    `| cold pass, s (median) | ${one.coldSeconds.toFixed(2)} | ${two.coldSeconds.toFixed(2)} |`,
    `| cold pass, each round | ${list(one.coldRounds, 2)} | ${list(two.coldRounds, 2)} |`,
    `| DNS queries per distinct domain, each round | ${list(one.queriesPerDomain, 3)} | ${
      list(two.queriesPerDomain, 3)
    } |`,
    `| unexpected replies in the cold passes | ${one.wrongReplies} | ${two.wrongReplies} |`,
    `| hits: gain, 2 workers over 1 thread | | ${results.routerGain.toFixed(2)}× |`,
    "",
    `| Deno floor on ${results.conns} connections (SO_REUSEPORT) | lookups/s |`,
    "|---|---:|",
  ];
  for (const row of results.rates) {
    lines.push(
      `| ${row.processes} process${row.processes > 1 ? "es" : ""} | ${row.rate.toFixed(0)} |`,
    );
  }
  lines.push(`| gain, 2 over 1 | ${results.gain.toFixed(2)}× |`);
  return lines.join("\n");
}
