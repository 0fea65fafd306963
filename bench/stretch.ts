/**
 * `deno task bench --stretch`: what more than one core could gain here. The router would need
 * `Deno.listen({ reusePort: true })` in several workers or processes, and Deno 2.9 accepts that
 * only with `--unstable-net`, which the router does not use (no unstable APIs). So this measures
 * the ceiling instead: the Deno floor server in one process, then in two sharing the port with
 * SO_REUSEPORT, on 8 connections, unpinned (the load generator needs a core too).
 *
 * @module
 */

import { freePort } from "../tests/support/e2e_util.ts";
import { median } from "./report.ts";
import { type FloorHandle, runLoadgen, startDenoFloor } from "./processes.ts";
import { chooseLoadgen, type MachineFacts, machineFacts, writeInputs } from "./setup.ts";

/** Options of {@linkcode runStretch}. */
export interface StretchOptions {
  seconds: number;
  rounds: number;
  denoLoadgen: boolean;
}

/** What the stretch experiment measured; written to bench/results.json under "stretch". */
export interface StretchResults {
  machine: MachineFacts;
  conns: number;
  /** Median lookups/s of the floor in 1 and in 2 processes sharing the port, and every round. */
  rates: { processes: number; rate: number; rounds: number[] }[];
  /** Two processes over one. */
  gain: number;
}

function say(text: string): void {
  console.error(`stretch: ${text}`);
}

/** Runs the experiment (rounds interleaved, so drift hits both alike). */
export async function runStretch(options: StretchOptions): Promise<StretchResults> {
  const dir = await Deno.makeTempDir({ prefix: "mxrouter-stretch-" });
  try {
    const machine = await machineFacts();
    const inputs = await writeInputs(dir, "long");
    const loadgen = await chooseLoadgen(dir, options.denoLoadgen);
    const conns = 8;
    const rounds = new Map<number, number[]>([[1, []], [2, []]]);
    for (let round = 1; round <= options.rounds; round++) {
      for (const processes of [1, 2]) {
        const port = await freePort();
        const floors: FloorHandle[] = [];
        try {
          for (let i = 0; i < processes; i++) {
            floors.push(await startDenoFloor({ port, reusePort: true }));
          }
          await runLoadgen(loadgen.tool, { port, conns, keyFile: inputs.keysPath, seconds: 1 });
          const result = await runLoadgen(loadgen.tool, {
            port,
            conns,
            keyFile: inputs.keysPath,
            seconds: options.seconds,
          });
          rounds.get(processes)!.push(result.rate);
          say(`${processes} process(es), round ${round}: ${result.rate.toFixed(0)}/s`);
        } finally {
          await Promise.all(floors.map((floor) => floor.stop()));
        }
      }
    }
    const rates = [...rounds].map(([processes, list]) => ({
      processes,
      rate: median(list),
      rounds: list,
    }));
    return { machine, conns, rates, gain: rates[1].rate / rates[0].rate };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** The markdown table of the experiment. */
export function formatStretch(results: StretchResults): string {
  const m = results.machine;
  const lines = [
    `Machine: ${m.cpu}, ${m.cores} cores; Deno ${m.deno}; ${m.date}.`,
    "",
    `| Deno floor on ${results.conns} connections (SO_REUSEPORT, --unstable-net) | lookups/s |`,
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
