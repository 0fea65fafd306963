/**
 * What every benchmark mode shares: a temporary directory with the zone, the keys and the rules,
 * the machine's facts, and the choice of load generator.
 *
 * @module
 */

import { buildCTools, type CTools, type LoadgenTool } from "./processes.ts";
import {
  BENCH_RULES,
  generateWorkload,
  generateZone,
  type TtlProfile,
  type Workload,
  type ZoneDomain,
  zoneFile,
} from "./workload.ts";
import type { FakeDnsBehaviour } from "../tests/support/fake_dns.ts";
import { delay } from "../tests/support/e2e_util.ts";

/** The seed of every generated input: same seed, same zone, same keys. */
export const SEED = 20250601;

/** A name in the zone with the shortest TTL the router keeps (30 s), to test serve-stale. */
export const STALE_PROBE_DOMAIN = "stale-probe.bench.example";
/** Its TTL, in seconds: the shortest the router keeps (--min-ttl), so it expires first. */
export const STALE_PROBE_TTL_S = 30;

/** The machine a run happened on. */
export interface MachineFacts {
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  deno: string;
  /** The router's code: `git describe`-like commit, with "+dirty" for uncommitted lib/ or main.ts. */
  revision: string;
  v8: string;
  typescript: string;
  date: string;
  /**
   * How busy the CPUs were in the second before the run, in per cent of all cores (null: unknown,
   * no /proc/stat): other work on these 2 cores (a test run, a compile) lowers every figure, the
   * cold pass most.
   */
  busyPercentBefore: number | null;
}

/** Above this share of busy CPU before the run, the report warns that its figures are low. */
export const BUSY_WARNING_PERCENT = 10;

/**
 * The share of all CPUs busy between two readings of /proc/stat, in per cent; null when either
 * lacks the `cpu` line. Counts the first eight fields (user, nice, system, idle, iowait, irq,
 * softirq, steal; guest time is already inside user and nice); idle and iowait are not busy.
 *
 * @example
 * ```ts
 * busyPercent("cpu  100 0 100 700 100 0 0 0", "cpu  150 0 150 750 150 0 0 0"); // 50
 * ```
 */
export function busyPercent(before: string, after: string): number | null {
  const read = (stat: string) => {
    const line = stat.split("\n").find((l) => l.startsWith("cpu "));
    if (line === undefined) return null;
    const fields = line.trim().split(/\s+/).slice(1, 9).map(Number);
    if (fields.length < 5 || fields.some((f) => !Number.isFinite(f))) return null;
    return { total: fields.reduce((a, b) => a + b, 0), idle: fields[3] + fields[4] };
  };
  const [a, b] = [read(before), read(after)];
  if (a === null || b === null || b.total <= a.total) return null;
  return 100 * (1 - (b.idle - a.idle) / (b.total - a.total));
}

/** How busy the CPUs are over the next `ms`, by {@linkcode busyPercent}; null if unknown. */
export async function cpuBusyPercent(ms = 1000): Promise<number | null> {
  const sample = () => Deno.readTextFile("/proc/stat").catch(() => "");
  const before = await sample();
  await delay(ms);
  return busyPercent(before, await sample());
}

/** Reads the machine's facts. */
export async function machineFacts(): Promise<MachineFacts> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? "unknown";
  return {
    cpu: model,
    cores: navigator.hardwareConcurrency,
    memoryGiB: Math.round(Deno.systemMemoryInfo().total / 2 ** 30),
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    revision: await revision(),
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    date: new Date().toISOString(),
    busyPercentBefore: await cpuBusyPercent(),
  };
}

async function git(args: string[]): Promise<string | null> {
  try {
    const output = await new Deno.Command("git", {
      args,
      cwd: new URL("..", import.meta.url).pathname,
      stdout: "piped",
      stderr: "null",
    }).output();
    return output.success ? new TextDecoder().decode(output.stdout).trim() : null;
  } catch {
    return null;
  }
}

async function revision(): Promise<string> {
  const commit = await git(["rev-parse", "--short", "HEAD"]);
  if (commit === null) return "unknown";
  const dirty = await git(["status", "--porcelain", "--", "lib", "main.ts", "deno.json"]);
  return dirty ? `${commit}+dirty` : commit;
}

/** The generated inputs, written to files in `dir`. */
export interface BenchInputs {
  zone: ZoneDomain[];
  workload: Workload;
  zonePath: string;
  rulesPath: string;
  /** The workload's keys, one per line, for the load generators. */
  keysPath: string;
  /** `KEY TAB CODE` lines, for the soak client. */
  expectedPath: string;
}

/** Generates the zone and workload for `profile` and writes them into `dir`. */
export async function writeInputs(dir: string, profile: TtlProfile): Promise<BenchInputs> {
  const zone = generateZone({ domains: 20_000, seed: SEED, ttl: profile });
  const workload = generateWorkload(zone, { keys: 100_000, seed: SEED });
  const file = zoneFile(zone, profile);
  const probe: FakeDnsBehaviour = {
    kind: "mx",
    records: [{ preference: 0, exchange: "stale-probe.mail.protection.outlook.com" }],
    ttl: STALE_PROBE_TTL_S,
  };
  file.zone[STALE_PROBE_DOMAIN] = probe;
  const inputs: BenchInputs = {
    zone,
    workload,
    zonePath: `${dir}/zone.json`,
    rulesPath: `${dir}/rules.conf`,
    keysPath: `${dir}/keys.txt`,
    expectedPath: `${dir}/expected.tsv`,
  };
  await Deno.writeTextFile(inputs.zonePath, JSON.stringify(file));
  await Deno.writeTextFile(inputs.rulesPath, BENCH_RULES);
  await Deno.writeTextFile(inputs.keysPath, workload.keys.join("\n") + "\n");
  await Deno.writeTextFile(
    inputs.expectedPath,
    workload.keys.map((key, i) => `${key}\t${workload.expected[i]}`).join("\n") + "\n",
  );
  return inputs;
}

/** The load generator that drives the servers, and what the report says about it. */
export interface LoadgenChoice {
  tool: LoadgenTool;
  /** The C load generator and floor, or null when they could not be built. */
  cTools: CTools | null;
  /** Which load generator, for the report's setup line. */
  note: string;
  /** Why the figures do not compare with a run on the C load generator; null when they do. */
  warning: string | null;
}

/**
 * The C load generator when the system's C compiler builds it, else the Deno one with a warning
 * for the report: its own cost per request lowers every rate, so the ratios differ. `forceDeno`
 * takes the Deno one anyway (`--deno-loadgen`).
 */
export async function chooseLoadgen(forceDeno: boolean): Promise<LoadgenChoice> {
  const built = await buildCTools();
  if (built.tools === null) {
    return {
      tool: { kind: "deno" },
      cTools: null,
      note: "Deno loadgen (bench/loadgen.ts)",
      warning: `the C load generator and floor were not built (${built.why}), so the Deno ` +
        "load generator drives the servers and there is no C floor: these figures do not " +
        "compare with a run that had them. Install a C compiler (apt-get install gcc) and " +
        "run again.",
    };
  }
  if (forceDeno) {
    return {
      tool: { kind: "deno" },
      cTools: built.tools,
      note: "Deno loadgen (--deno-loadgen)",
      warning: "--deno-loadgen: the Deno load generator drives the servers, so these figures " +
        "do not compare with a run on the C one.",
    };
  }
  return {
    tool: { kind: "c", binary: built.tools.loadgen },
    cTools: built.tools,
    note: `C loadgen (${built.why})`,
    warning: null,
  };
}

/** Writes `section` into bench/results.json, keeping the other sections. */
export async function writeResults(section: string, value: unknown): Promise<string> {
  const path = new URL("./results.json", import.meta.url).pathname;
  let all: Record<string, unknown> = {};
  try {
    all = JSON.parse(await Deno.readTextFile(path));
  } catch {
    // First run, or an unreadable file: start afresh.
  }
  all[section] = value;
  await Deno.writeTextFile(`${path}.tmp`, JSON.stringify(all, null, 2) + "\n");
  await Deno.rename(`${path}.tmp`, path);
  return path;
}
