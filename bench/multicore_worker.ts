/**
 * One worker of bench/multicore_router.ts: the router's own parts (rules, cache, router, log,
 * tcp_table server) on a listener that shares the port with the other workers (SO_REUSEPORT).
 * Its cache asks the owner thread instead of DNS, so each domain costs one DNS query in all.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { MxCache } from "../lib/cache.ts";
import { cacheOptionsOf, type ServeOptions } from "../lib/cli.ts";
import { ConnectionLimit } from "../lib/connection_limit.ts";
import type { MxOutcome, MxResolver } from "../lib/dns_types.ts";
import { log, lookupLogger, setupLogging } from "../lib/log.ts";
import { type Decision, Router } from "../lib/router.ts";
import { REQUEST_TIMEOUT_MS, TableServer } from "../lib/server.ts";
import { loadRuleSet } from "../lib/setup.ts";
import { tcpTableCodec } from "../lib/tcp_table.ts";
import type { OwnerReply, OwnerRequest } from "./multicore_router.ts";

/**
 * Sends misses to the owner thread; its answers come back by id. Answers other workers asked
 * for are handed to the cache as if it had asked (`push`), without a round trip.
 */
class OwnerResolver implements MxResolver {
  readonly #waiting = new Map<number, (outcome: MxOutcome) => void>();
  readonly #pushed = new Map<string, MxOutcome>();
  #nextId = 0;

  resolveMx(domain: string): Promise<MxOutcome> {
    const pushed = this.#pushed.get(domain);
    if (pushed !== undefined) {
      this.#pushed.delete(domain);
      return Promise.resolve(pushed);
    }
    const id = this.#nextId++;
    const request: OwnerRequest = { id, domain };
    self.postMessage(request);
    return new Promise((resolve) => this.#waiting.set(id, resolve));
  }

  /** Settles the lookup an owner's reply answers. */
  settle(reply: OwnerReply): void {
    if (reply.id === null) return;
    this.#waiting.get(reply.id)?.(reply.outcome);
    this.#waiting.delete(reply.id);
  }

  /**
   * Runs `lookup` with the answer ready for its query of the domain. The cache asks its resolver
   * synchronously within `lookup` on a miss; the answer is dropped after, so it is never used
   * later, when it may be old (a lookup coalesced with a query under way asks nothing).
   */
  withAnswer(reply: OwnerReply, lookup: () => void): void {
    this.#pushed.set(reply.domain, reply.outcome);
    lookup();
    this.#pushed.delete(reply.domain);
  }
}

async function serve(options: ServeOptions): Promise<void> {
  const sink = setupLogging({ verbosity: options.verbosity, journal: false });
  const rules = await loadRuleSet(options.config);
  if (!rules.ok) {
    log.error`${self.name}: ${rules.errors.join("; ")}`;
    sink.flush();
    self.close();
    return;
  }
  const resolver = new OwnerResolver();
  self.onmessage = (event: MessageEvent<OwnerReply>) => {
    const reply = event.data;
    if (reply.id !== null) {
      resolver.settle(reply);
    } else if (cache.fresh(reply.domain) === null) {
      // Cached through the usual path: the lookup's query finds the pushed answer at once.
      resolver.withAnswer(reply, () => cache.lookup(reply.domain));
    }
  };
  const cache = new MxCache<Decision>({
    resolver,
    options: cacheOptionsOf(options),
  });
  const router = new Router({
    cache,
    ruleSet: rules.value,
    // Each line names its worker, so a test can see that both answered.
    observer: lookupLogger({ sink, modeTag: `${self.name} ` }),
  });
  // `reusePort` is an unstable option (--unstable-net): spread so the stable types accept it.
  const listener = Deno.listen({
    hostname: options.host,
    port: options.port,
    ...{ reusePort: true },
  });
  const server = new TableServer({
    listener,
    codec: tcpTableCodec,
    router,
    idleTimeoutMs: options.idleTimeoutMs,
    stuckTimeoutMs: options.dnsTimeoutMs + REQUEST_TIMEOUT_MS,
    limit: new ConnectionLimit(options.maxConnections),
  });
  log.info`${self.name} listening on ${options.host}:${options.port} (tcp_table, SO_REUSEPORT)`;
  await server.serve();
}

self.onmessage = (event: MessageEvent<ServeOptions>) => {
  serve(event.data);
};
