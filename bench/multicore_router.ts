/**
 * The stretch experiment of issue 6, built for real: the router in several workers sharing one
 * port with SO_REUSEPORT, keeping one DNS query per domain. Not the product: SO_REUSEPORT needs
 * `--unstable-net` in Deno 2.9, and the router uses no unstable API.
 *
 * How the cache is shared: every worker answers hits from its own cache (a hit never leaves its
 * thread); a worker's miss goes to this thread, the owner, which alone asks DNS. The owner keeps
 * one cache of DNS answers for all workers, so concurrent misses for one domain are coalesced into
 * one query and a domain one worker asked about is answered to the next from memory. Each answer
 * from DNS is also sent to every other worker, so their caches fill too and the next lookup of
 * the domain is a hit wherever it lands. Answers go with the TTL that is left (no shorter than
 * --min-ttl, as for every cached answer).
 *
 * ```sh
 * deno run --unstable-net <the compile task's permissions> bench/multicore_router.ts \
 *   --workers 2 <the router's own flags>
 * ```
 *
 * @module
 */

import { MxCache } from "../lib/cache.ts";
import { cacheOptionsOf, parseCommandLine, PROGRAM } from "../lib/cli.ts";
import { createResolver } from "../lib/dns.ts";
import type { MxOutcome } from "../lib/dns_types.ts";
import { Limiter } from "../lib/limiter.ts";
import { loadDnsServers } from "../lib/setup.ts";

/** A worker's miss: the domain to look up, and the id its answer comes back with. */
export interface OwnerRequest {
  id: number;
  domain: string;
}

/**
 * The owner's answer to an {@linkcode OwnerRequest} (`id` set), or a DNS answer another worker
 * asked for, to cache (`id` null).
 */
export interface OwnerReply {
  id: number | null;
  domain: string;
  outcome: MxOutcome;
}

/**
 * An outcome the owner's cache holds, with the TTL left instead of the TTL it came with (at least
 * 1 s), so a worker's copy expires when the owner's does.
 *
 * @example
 * ```ts
 * withTtlLeft({ kind: "mx", hosts: ["mx.example"], ttl: 300 }, 42); // ttl 42
 * ```
 */
export function withTtlLeft(outcome: MxOutcome, seconds: number): MxOutcome {
  const left = Math.max(1, Math.floor(seconds));
  switch (outcome.kind) {
    case "mx":
    case "nullmx":
      return { ...outcome, ttl: left };
    case "nodata":
    case "nxdomain":
      return { ...outcome, negativeTtl: left };
    case "tempfail":
      return outcome;
  }
}

/** Splits `--workers N` off the router's own arguments. */
export function workerCount(args: string[]): { workers: number; rest: string[] } | string {
  const at = args.indexOf("--workers");
  if (at < 0) return { workers: 2, rest: args };
  const workers = Number(args[at + 1]);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) {
    return `option '--workers' needs a number from 1 to 64, not '${args[at + 1]}'`;
  }
  return { workers, rest: [...args.slice(0, at), ...args.slice(at + 2)] };
}

async function main(): Promise<void> {
  const split = workerCount(Deno.args);
  const command = typeof split === "string" ? null : parseCommandLine(split.rest);
  if (typeof split === "string" || command?.kind !== "serve") {
    console.error(`${PROGRAM}: ${typeof split === "string" ? split : "usage: see --help"}`);
    Deno.exit(2);
  }
  const options = command.options;
  const servers = await loadDnsServers(options.dnsServers);
  if (!servers.ok) {
    console.error(`${PROGRAM}: fatal: ${servers.errors.join("; ")}`);
    Deno.exit(1);
  }
  const resolver = createResolver({
    servers: servers.value,
    timeoutMs: options.dnsTimeoutMs,
    limiter: new Limiter(options.maxDnsInflight),
  });
  const cache = new MxCache({
    resolver,
    options: cacheOptionsOf(options),
  });
  const workers: Worker[] = [];
  const answer = async (request: OwnerRequest, asker: Worker): Promise<void> => {
    const { id, domain } = request;
    const settled = await cache.lookup(domain);
    const entry = settled.entry;
    if (entry === null) {
      asker.postMessage({ id, domain, outcome: settled.outcome } satisfies OwnerReply);
      return;
    }
    // A stale answer (DNS down) goes with the shortest TTL, which the worker's cache raises to
    // --min-ttl: it asks again that much later (the router itself retries a stale entry sooner).
    const left = settled.source === "stale" ? 1 : (entry.freshUntil - Date.now()) / 1000;
    const outcome = withTtlLeft(entry.outcome, left);
    asker.postMessage({ id, domain, outcome } satisfies OwnerReply);
    if (settled.source !== "dns") return;
    for (const worker of workers) {
      if (worker !== asker) worker.postMessage({ id: null, domain, outcome } satisfies OwnerReply);
    }
  };
  for (let i = 0; i < split.workers; i++) {
    const worker = new Worker(new URL("./multicore_worker.ts", import.meta.url), {
      type: "module",
      name: `router-${i + 1}`,
    });
    worker.onmessage = (event: MessageEvent<OwnerRequest>) => answer(event.data, worker);
    worker.postMessage(options);
    workers.push(worker);
  }
  Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
}

if (import.meta.main) await main();
