/**
 * `deno task bench --profile`: the router's hit path under V8's CPU profiler. Starts the router
 * with production flags and `--cpu-prof`, fills its cache with the workload, runs cache hits on 8
 * connections, stops it, and prints the functions with the most self time of the hit run (or, with
 * `--profile-phase cold`, of the cold pass).
 *
 * @module
 */

import {
  canPin,
  DnsProcess,
  loadgenCpus,
  pinProcess,
  runLoadgen,
  startRouter,
} from "./processes.ts";
import { chooseLoadgen, writeInputs } from "./setup.ts";

/** Options of {@linkcode runProfile}. */
export interface ProfileOptions {
  seconds: number;
  conns: number;
  /** `hits`: the hit path (after a pass that fills the cache); `cold`: the cold pass itself. */
  phase: "hits" | "cold";
  keep: boolean;
  /** More `deno run` flags for the router, e.g. `--v8-flags=--max-semi-space-size=1`. */
  routerDenoFlags: string[];
  denoLoadgen: boolean;
  /** Where to copy the .cpuprofile (open it in Chrome DevTools). */
  output: string;
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** One function's share of the profile. */
export interface ProfileEntry {
  name: string;
  location: string;
  selfMs: number;
  selfPercent: number;
  totalPercent: number;
}

/**
 * Self and total time per function (by name and location) of a V8 .cpuprofile, counting only the
 * samples taken between `fromEndUs` and `toEndUs` microseconds before the profile's end (default:
 * all of it).
 */
export function summarizeProfile(
  profile: CpuProfile,
  window: { fromEndUs: number; toEndUs: number } = { fromEndUs: Infinity, toEndUs: 0 },
): ProfileEntry[] {
  const selfUs = new Map<number, number>();
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    const beforeEnd = profile.endTime - at;
    if (beforeEnd > window.fromEndUs || beforeEnd < window.toEndUs) continue;
    const id = profile.samples[i];
    selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
  }
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const keyOf = (node: ProfileNode) => {
    const f = node.callFrame;
    const file = f.url.replace(/^file:\/\/.*?\/(lib|bench|tests|main\.ts)/, "$1")
      .replace(/^.*\/node_modules\//, "npm:").replace(/^.*\/registry\.npmjs\.org\//, "npm:");
    return `${f.functionName || "(anonymous)"}\t${file ? `${file}:${f.lineNumber + 1}` : ""}`;
  };
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let all = 0;
  for (const [id, us] of selfUs) {
    all += us;
    const node = byId.get(id);
    if (node === undefined) continue;
    const key = keyOf(node);
    self.set(key, (self.get(key) ?? 0) + us);
    // Inclusive time: once per function per stack, however deep the recursion.
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const k = keyOf(byId.get(at)!);
      if (seen.has(k)) continue;
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + us);
    }
  }
  return [...self.entries()].map(([key, us]) => {
    const [name, location] = key.split("\t");
    return {
      name,
      location,
      selfMs: us / 1000,
      selfPercent: (100 * us) / all,
      totalPercent: (100 * (total.get(key) ?? 0)) / all,
    };
  }).sort((a, b) => b.selfMs - a.selfMs);
}

/** Profiles the router (the hit path, or the cold pass); returns the functions by self time. */
export async function runProfile(options: ProfileOptions): Promise<ProfileEntry[]> {
  const dir = await Deno.makeTempDir({ prefix: "mxrouter-profile-" });
  const profileDir = `${dir}/profile`;
  let hitStart = 0;
  let hitEnd = 0;
  let stopped = 0;
  try {
    const inputs = await writeInputs(dir, "long");
    const loadgen = await chooseLoadgen(dir, options.denoLoadgen);
    const dns = await DnsProcess.start(inputs.zonePath);
    try {
      const router = await startRouter({
        rulesPath: inputs.rulesPath,
        tmpDir: dir,
        dnsPort: dns.port,
        logPath: `${dir}/router.log`,
        denoFlags: ["--cpu-prof", `--cpu-prof-dir=${profileDir}`, ...options.routerDenoFlags],
      });
      // Pinned as in the benchmark's hit runs (see bench.ts), once the cache is full.
      const pinning = await canPin(navigator.hardwareConcurrency);
      let cpus: string | undefined;
      const run = (seconds: number) =>
        runLoadgen(loadgen.tool, {
          port: router.port,
          conns: options.conns,
          keyFile: inputs.keysPath,
          seconds,
          cpus,
        });
      try {
        const coldStart = performance.now();
        const cold = await run(0); // Fills the cache: what follows is hits only.
        const coldEnd = performance.now();
        if (options.phase === "cold") {
          [hitStart, hitEnd] = [coldStart, coldEnd];
          console.error(`profile: cold pass in ${cold.secs.toFixed(2)} s under the profiler`);
        } else {
          if (pinning && await pinProcess(router.pid, "0")) cpus = loadgenCpus(options.conns);
          await run(1);
          hitStart = performance.now();
          const hits = await run(options.seconds);
          hitEnd = performance.now();
          console.error(
            `profile: ${Math.round(hits.rate)}/s on ${options.conns} conns under the profiler`,
          );
        }
      } finally {
        await router.stop();
        stopped = performance.now();
      }
    } finally {
      await dns.stop();
    }
    const files = [...Deno.readDirSync(profileDir)].filter((f) => f.name.endsWith(".cpuprofile"));
    if (files.length === 0) throw new Error("the router wrote no .cpuprofile");
    const path = `${profileDir}/${files[0].name}`;
    await Deno.copyFile(path, options.output);
    const profile = JSON.parse(await Deno.readTextFile(path)) as CpuProfile;
    // Only the phase profiled: it ended (stopped - hitEnd) ms before the profile did.
    return summarizeProfile(profile, {
      fromEndUs: (stopped - hitStart) * 1000,
      toEndUs: (stopped - hitEnd) * 1000,
    });
  } finally {
    if (!options.keep) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** The top entries as a markdown table. */
export function formatProfile(entries: ProfileEntry[], top = 30): string {
  const lines = ["| self % | total % | self ms | function | where |", "|---:|---:|---:|---|---|"];
  for (const e of entries.slice(0, top)) {
    lines.push(
      `| ${e.selfPercent.toFixed(1)} | ${e.totalPercent.toFixed(1)} | ${
        e.selfMs.toFixed(0)
      } | ${e.name} | ${e.location} |`,
    );
  }
  return lines.join("\n");
}
