/**
 * The MX cache between the router and DNS: TTLs from DNS, negative and failure caching, one query
 * per domain however many ask (coalescing), serve-stale (RFC 8767), prefetch of hot entries, and
 * an LRU bound.
 *
 * A fresh hit is answered synchronously, without a promise: Postfix waits for every lookup.
 *
 * @module
 */

import { LRUCache } from "lru-cache";
import type { MxOutcome, MxResolver, TempFailAnswer } from "../dns/types.ts";

/** Passed to every LRU get: saves the library allocating a fresh options object per lookup. */
const GET_OPTIONS = {};

/** Tuning of the cache; every duration in seconds as on the command line, except where named. */
export interface CacheOptions {
  /** --cache-ttl: the longest any answer is cached; 0 disables caching entirely. */
  cacheTtl: number;
  /** --min-ttl: the shortest a positive or negative answer is cached. */
  minTtl: number;
  /** --negative-ttl: the longest NXDOMAIN and NODATA are cached. */
  negativeTtl: number;
  /** --failure-ttl: how long a failed lookup answers 400 at once instead of asking DNS again. */
  failureTtl: number;
  /** --stale-ttl: how long past expiry an entry may still be served when DNS fails; 0: never. */
  staleTtl: number;
  /** --stale-answer-ms: how long a lookup of an expired entry waits for DNS before answering stale. */
  staleAnswerMs: number;
  /** --cache-size: the most domains kept; least recently used go first. */
  cacheSize: number;
}

/** The defaults of the command line. */
export const DEFAULT_CACHE_OPTIONS: CacheOptions = {
  cacheTtl: 3600,
  minTtl: 30,
  negativeTtl: 300,
  failureTtl: 10,
  staleTtl: 86400,
  staleAnswerMs: 400,
  cacheSize: 100_000,
};

/** A usable DNS answer as cached; `memo` is the router's per-entry decision slot. */
export interface CacheEntry<M> {
  outcome: Exclude<MxOutcome, TempFailAnswer>;
  /** Epoch ms until which the entry is fresh. */
  freshUntil: number;
  /**
   * The TTL it was cached with, in seconds: hits in its last 10 % trigger a background refresh.
   * (The refresh and stale deadlines are derived, not stored: each stored epoch is a boxed
   * number, 16 bytes a domain.)
   */
  ttlSeconds: number;
  /** Whatever the router memoizes for this answer (dropped with the entry). */
  memo: M | undefined;
  /** What the memo was made for (the router's rules): a memo is valid while they are. */
  memoFor: unknown;
}

/**
 * A cached answer as it outlives the process (--cache-file): the DNS outcome and when it stops
 * being fresh, nothing the rules decided (they may change before it is read back).
 */
export interface SavedEntry {
  /** The domain as cached: lower-case ASCII, no trailing dot. */
  domain: string;
  outcome: Exclude<MxOutcome, TempFailAnswer>;
  /** Epoch ms until which the entry is fresh. */
  freshUntil: number;
}

/** What {@linkcode MxCache.importEntries} did with the entries it was given. */
export interface CacheImport {
  /** Taken in as fresh: answered from the cache until they expire. */
  fresh: number;
  /** Taken in already expired but within --stale-ttl: refreshed on use, answered when DNS fails. */
  stale: number;
  /** Left out: past --stale-ttl, beyond --cache-size, already cached, or caching is off. */
  dropped: number;
}

/** Where an answer came from, for logs and metrics. */
export type AnswerSource = "cache" | "dns" | "stale" | "failure";

/** The cache's answer to one lookup. */
export interface CacheAnswer<M> {
  /** The usable entry, or null when the answer is a failure (outcome is then a tempfail). */
  entry: CacheEntry<M> | null;
  outcome: MxOutcome;
  source: AnswerSource;
}

/** Counters kept by the cache; exposed as metrics and in the periodic stats line. */
export interface CacheCounters {
  hits: number;
  misses: number;
  staleAnswers: number;
  prefetches: number;
  coalesced: number;
  dnsQueries: number;
  failures: number;
  failureHits: number;
}

interface FailureEntry {
  outcome: TempFailAnswer;
  until: number;
}

/**
 * Told when a new DNS answer replaces a cached entry (a prefetch, or a refresh of an expired
 * entry still within --stale-ttl; one past it is dropped before DNS is asked), after the new entry
 * is stored. A failure replaces nothing. It runs as the answer is stored, before any lookup
 * waiting for it: it must not throw.
 */
export type ReplaceHook<M> = (domain: string, previous: CacheEntry<M>, next: CacheEntry<M>) => void;

/**
 * Cache counters all at zero, as a new cache starts.
 *
 * @example
 * ```ts
 * emptyCacheCounters().hits; // 0
 * ```
 */
export function emptyCacheCounters(): CacheCounters {
  return {
    hits: 0,
    misses: 0,
    staleAnswers: 0,
    prefetches: 0,
    coalesced: 0,
    dnsQueries: 0,
    failures: 0,
    failureHits: 0,
  };
}

/** Options of {@linkcode MxCache}. */
export interface MxCacheInit {
  resolver: MxResolver;
  options: CacheOptions;
  /** Epoch milliseconds; injected so tests control time. */
  now?: () => number;
}

/**
 * The cache. `lookup` returns a {@linkcode CacheAnswer} directly on a fresh hit and a promise
 * otherwise; it never rejects.
 *
 * @example
 * ```ts
 * import type { MxResolver } from "../dns/types.ts";
 *
 * declare const resolver: MxResolver;
 * const cache = new MxCache({ resolver, options: DEFAULT_CACHE_OPTIONS });
 * const answer = await cache.lookup("example.com");
 * ```
 */
export class MxCache<M = unknown> {
  /** Counters since start. */
  readonly counters: CacheCounters = emptyCacheCounters();
  readonly #resolver: MxResolver;
  readonly #options: CacheOptions;
  readonly #now: () => number;
  readonly #entries: LRUCache<string, CacheEntry<M>> | null;
  readonly #failures: LRUCache<string, FailureEntry> | null;
  readonly #inflight = new Map<string, Promise<MxOutcome>>();
  /** Told of each cached entry a new answer replaces; set by the router that memoizes here. */
  onReplace: ReplaceHook<M> | null = null;

  constructor(init: MxCacheInit) {
    this.#resolver = init.resolver;
    this.#options = init.options;
    this.#now = init.now ?? Date.now;
    const enabled = init.options.cacheTtl > 0;
    const max = Math.max(1, init.options.cacheSize);
    this.#entries = enabled ? new LRUCache({ max }) : null;
    this.#failures = enabled && init.options.failureTtl > 0 ? new LRUCache({ max }) : null;
  }

  /** Domains cached now (fresh or stale). */
  get size(): number {
    return this.#entries?.size ?? 0;
  }

  /**
   * The usable entries (fresh, or stale within --stale-ttl), most recently used first, for
   * saving. Failures are not among them: they say nothing worth keeping after a restart.
   */
  exportEntries(): SavedEntry[] {
    const saved: SavedEntry[] = [];
    if (this.#entries === null) return saved;
    const oldest = this.#now() - this.#options.staleTtl * 1000;
    // Iterating neither reorders the LRU nor drops entries.
    for (const [domain, { outcome, freshUntil }] of this.#entries.entries()) {
      if (freshUntil > oldest) saved.push({ domain, outcome, freshUntil });
    }
    return saved;
  }

  /**
   * Takes saved entries in, most recently used first, before serving. Their lifetimes follow
   * today's options: an entry is fresh until the earlier of its saved time and now plus the TTL
   * the current flags give its answer (a lowered --cache-ttl, or a clock set back, cannot make an
   * answer live longer); one already expired is stale, used as serve-stale allows; one expired for
   * more than --stale-ttl is dropped. At most --cache-size entries are kept, the first given; a
   * domain already cached keeps its entry.
   */
  importEntries(entries: readonly SavedEntry[]): CacheImport {
    const counts: CacheImport = { fresh: 0, stale: 0, dropped: 0 };
    const store = this.#entries;
    if (store === null) {
      counts.dropped = entries.length;
      return counts;
    }
    const now = this.#now();
    const kept: [string, CacheEntry<M>][] = [];
    for (const { domain, outcome, freshUntil: savedUntil } of entries) {
      if (
        kept.length >= store.max || store.has(domain) ||
        savedUntil + this.#options.staleTtl * 1000 <= now
      ) {
        counts.dropped++;
        continue;
      }
      const ttlSeconds = cacheLifetime(outcome, this.#options);
      const freshUntil = Math.min(savedUntil, now + ttlSeconds * 1000);
      if (now < freshUntil) counts.fresh++;
      else counts.stale++;
      kept.push([domain, { outcome, freshUntil, ttlSeconds, memo: undefined, memoFor: undefined }]);
    }
    // Least recently used first, so the LRU order comes back as it was saved.
    for (let i = kept.length - 1; i >= 0; i--) store.set(kept[i][0], kept[i][1]);
    return counts;
  }

  /**
   * The entry of a domain when it is cached and fresh, else null (then `lookup` answers). The
   * hit path: it allocates nothing, and reads the clock only for a cached domain. A hit is
   * counted, and refreshed in the background in its last 10 %.
   */
  fresh(domain: string): CacheEntry<M> | null {
    const entry = this.#entries?.get(domain, GET_OPTIONS);
    if (entry === undefined) return null;
    const now = this.#now();
    if (now >= entry.freshUntil) return null;
    this.#hit(domain, entry, now);
    return entry;
  }

  /** Answers for one ASCII domain: from memory when possible, else from DNS (coalesced). */
  lookup(domain: string): CacheAnswer<M> | Promise<CacheAnswer<M>> {
    const entries = this.#entries;
    if (entries === null) {
      this.counters.misses++;
      return this.#fromDns(domain);
    }
    const now = this.#now();
    const entry = entries.get(domain, GET_OPTIONS);
    if (entry !== undefined) {
      if (now < entry.freshUntil) {
        this.#hit(domain, entry, now);
        return { entry, outcome: entry.outcome, source: "cache" };
      }
      if (now < entry.freshUntil + this.#options.staleTtl * 1000) {
        return this.#refreshOrStale(domain, entry, now);
      }
      entries.delete(domain);
    }
    const failure = this.#recentFailure(domain, now);
    if (failure !== null) {
      this.counters.failureHits++;
      return { entry: null, outcome: failure, source: "failure" };
    }
    this.counters.misses++;
    return this.#fromDns(domain);
  }

  #hit(domain: string, entry: CacheEntry<M>, now: number): void {
    this.counters.hits++;
    if (
      now >= entry.freshUntil - entry.ttlSeconds * 100 && !this.#inflight.has(domain) &&
      !this.#recentFailure(domain, now)
    ) {
      this.counters.prefetches++;
      this.#query(domain);
    }
  }

  async #fromDns(domain: string): Promise<CacheAnswer<M>> {
    const outcome = await this.#query(domain);
    if (outcome.kind === "tempfail") return { entry: null, outcome, source: "dns" };
    return { entry: this.#entryFor(domain, outcome), outcome, source: "dns" };
  }

  /**
   * The entry `#query` stored for this outcome; a new unstored one when caching is off or it was
   * evicted already, so the router still has a slot for its decision.
   */
  #entryFor(domain: string, outcome: Exclude<MxOutcome, TempFailAnswer>): CacheEntry<M> {
    const stored = this.#entries?.peek(domain);
    return stored !== undefined && stored.outcome === outcome ? stored : this.#newEntry(outcome);
  }

  async #refreshOrStale(
    domain: string,
    stale: CacheEntry<M>,
    now: number,
  ): Promise<CacheAnswer<M>> {
    // Right after a failed refresh, answer stale at once instead of stalling on DNS again.
    const refresh = this.#recentFailure(domain, now) !== null ? null : this.#query(domain);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = refresh === null ? null : await Promise.race([
      refresh,
      new Promise<null>((resolve) => {
        timer = setTimeout(() => resolve(null), this.#options.staleAnswerMs);
      }),
    ]);
    clearTimeout(timer);
    if (outcome !== null && outcome.kind !== "tempfail") {
      this.counters.misses++; // refreshed in time: answered from DNS
      return { entry: this.#entryFor(domain, outcome), outcome, source: "dns" };
    }
    this.counters.staleAnswers++;
    return { entry: stale, outcome: stale.outcome, source: "stale" };
  }

  #recentFailure(domain: string, now: number): TempFailAnswer | null {
    const failure = this.#failures?.get(domain);
    return failure !== undefined && now < failure.until ? failure.outcome : null;
  }

  /** One DNS query per domain at a time; the result is stored when it arrives. */
  #query(domain: string): Promise<MxOutcome> {
    const pending = this.#inflight.get(domain);
    if (pending !== undefined) {
      this.counters.coalesced++;
      return pending;
    }
    this.counters.dnsQueries++;
    const query = this.#resolve(domain).then((outcome) => {
      this.#inflight.delete(domain);
      this.#store(domain, outcome);
      return outcome;
    });
    this.#inflight.set(domain, query);
    return query;
  }

  async #resolve(domain: string): Promise<MxOutcome> {
    try {
      return await this.#resolver.resolveMx(domain);
    } catch (error) {
      // The resolver promises not to throw; if it does anyway, defer rather than crash.
      return { kind: "tempfail", reason: `resolver error: ${error}`, cause: "network" };
    }
  }

  #store(domain: string, outcome: MxOutcome): void {
    if (outcome.kind === "tempfail") {
      // A failure never replaces a usable entry: the stale one keeps answering. Our own
      // overload (--max-dns-inflight), a skipped server (no query sent) and our own host's
      // errors (out of file descriptors) say nothing about the domain: not remembered.
      this.counters.failures++;
      if (outcome.cause === "overload" || outcome.cause === "down" || outcome.cause === "local") {
        return;
      }
      this.#failures?.set(domain, {
        outcome,
        until: this.#now() + this.#options.failureTtl * 1000,
      });
      return;
    }
    this.#failures?.delete(domain);
    const entries = this.#entries;
    if (entries === null) return;
    const previous = entries.peek(domain);
    const entry = this.#newEntry(outcome);
    entries.set(domain, entry);
    if (previous !== undefined) this.onReplace?.(domain, previous, entry);
  }

  #newEntry(outcome: Exclude<MxOutcome, TempFailAnswer>): CacheEntry<M> {
    const ttlSeconds = cacheLifetime(outcome, this.#options);
    return {
      outcome,
      freshUntil: this.#now() + ttlSeconds * 1000,
      ttlSeconds,
      memo: undefined,
      memoFor: undefined,
    };
  }
}

/**
 * How long an answer stays fresh, in seconds: positive answers (MX, null MX) for their smallest
 * TTL, negative ones (NXDOMAIN, NODATA) for min(SOA TTL, SOA MINIMUM) (RFC 2308), each clamped to
 * [minTtl, its maximum]; nothing is cached longer than cacheTtl.
 *
 * @example
 * ```ts
 * cacheLifetime({ kind: "mx", hosts: ["mx.example"], ttl: 5 }, DEFAULT_CACHE_OPTIONS); // 30
 * ```
 */
export function cacheLifetime(
  outcome: Exclude<MxOutcome, TempFailAnswer>,
  options: CacheOptions,
): number {
  switch (outcome.kind) {
    case "mx":
    case "nullmx":
      return clamp(outcome.ttl, options.minTtl, options.cacheTtl);
    case "nxdomain":
    case "nodata":
      // Without an SOA we know nothing about the zone's wishes: keep it briefly.
      return clamp(
        outcome.negativeTtl ?? 0,
        options.minTtl,
        Math.min(options.negativeTtl, options.cacheTtl),
      );
    default: {
      const unknown: never = outcome;
      throw new Error(`unexpected outcome ${JSON.stringify(unknown)}`);
    }
  }
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(Math.max(value, min), max);
}
