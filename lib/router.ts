/**
 * From a lookup key to a decision: key → domain → cached or fresh DNS answer → rules.
 *
 * {@linkcode decide} is the pure heart (no I/O, no clock); {@linkcode Router} wires it to the
 * cache and memoizes the decision on each cache entry, so a hit costs a map lookup.
 *
 * @module
 */

import type { AnswerSource, CacheAnswer, MxCache } from "./cache.ts";
import type { MxOutcome } from "./dns_types.ts";
import { domainFromKey } from "./keys.ts";
import { matchRules, pickMember, type RuleMatch, type RuleSet } from "./rules.ts";

/** What kind of answer a lookup got; a fixed label set for logs and metrics. */
export type DecisionLabel = "match" | "nomatch" | "tempfail" | "invalid";

/** The answer to one lookup, protocol-neutral. */
export interface Decision {
  label: DecisionLabel;
  /** The Postfix result when a rule matched, else null. */
  result: string | null;
  /** Why there is no result (for logs, and the text of a temporary failure). */
  reason: string;
  /** The MX host and rule that matched. */
  match: RuleMatch | null;
  /** The MX hosts in the order they were tried (the domain itself for NODATA). */
  hosts: readonly string[];
  /** Encoded reply bytes per protocol, built once per decision by the codecs. */
  replies: (Uint8Array | undefined)[];
  /** For a rule with a `pool:NAME` result: one decision per member, picked per lookup. */
  members: Decision[] | null;
}

function makeDecision(
  fields: Omit<Decision, "replies" | "match" | "result" | "members"> & Partial<Decision>,
): Decision {
  return { result: null, match: null, members: null, ...fields, replies: [] };
}

/**
 * Decides the answer for a domain from its DNS outcome and the rules, per the DNS outcome table:
 * MX → match the hosts; NODATA → match the domain itself (implicit MX); null MX and NXDOMAIN →
 * not found; anything else → temporary failure, never a guess.
 *
 * @example
 * ```ts
 * decide("example.com", { kind: "nxdomain", negativeTtl: 300 }, ruleSet).label; // "nomatch"
 * ```
 */
export function decide(domain: string, outcome: MxOutcome, ruleSet: RuleSet): Decision {
  switch (outcome.kind) {
    case "mx":
      return decideHosts(outcome.hosts, ruleSet, "no rule matches the MX hosts");
    case "nodata":
      return decideHosts([domain], ruleSet, "no MX records; no rule matches the domain itself");
    case "nullmx":
      return makeDecision({
        label: "nomatch",
        reason: "null MX: the domain takes no mail",
        hosts: [],
      });
    case "nxdomain":
      return makeDecision({ label: "nomatch", reason: "NXDOMAIN: no such domain", hosts: [] });
    case "tempfail":
      return makeDecision({ label: "tempfail", reason: outcome.reason, hosts: [] });
    default: {
      const unknown: never = outcome;
      throw new Error(`unexpected DNS outcome ${JSON.stringify(unknown)}`);
    }
  }
}

function decideHosts(hosts: readonly string[], ruleSet: RuleSet, noMatch: string): Decision {
  const match = matchRules(hosts, ruleSet.rules);
  if (match === null) return makeDecision({ label: "nomatch", reason: noMatch, hosts });
  const pool = match.rule.pool;
  if (pool !== null) {
    const reason = `${match.host} matches line ${match.rule.line}, pool ${pool.name}`;
    return makeDecision({
      label: "match",
      result: match.rule.result,
      reason,
      match,
      hosts,
      members: pool.members.map((member, index) =>
        makeDecision({
          label: "match",
          result: member.result,
          reason: `${reason} member ${index + 1} (weight ${member.weight})`,
          match,
          hosts,
        })
      ),
    });
  }
  return makeDecision({
    label: "match",
    result: match.rule.result,
    reason: `${match.host} matches line ${match.rule.line}`,
    match,
    hosts,
  });
}

/**
 * The decision for a key that names no domain worth looking up: not found, without DNS.
 *
 * @example
 * ```ts
 * invalidKeyDecision("wildcard key").label; // "invalid"
 * ```
 */
export function invalidKeyDecision(reason: string): Decision {
  return makeDecision({ label: "invalid", reason: `invalid key: ${reason}`, hosts: [] });
}

/** What every lookup answers in dry-run mode: "not found", so Postfix routes as before. */
const DRY_RUN_ANSWER = makeDecision({
  label: "nomatch",
  reason: "dry run: decided and logged, answered not found",
  hosts: [],
});

/** One finished lookup, as logs and `query` see it. */
export interface LookupReport {
  key: string;
  /** The ASCII domain, or null when the key names no domain. */
  domain: string | null;
  decision: Decision;
  source: AnswerSource | "key";
  /** When the lookup started, from `performance.now()`. */
  startedAt: number;
}

/** Receives finished lookups; `wants` lets the router skip building reports nobody reads. */
export interface LookupObserver {
  wants(label: DecisionLabel): boolean;
  report(lookup: LookupReport): void;
}

/** Lookup counts by label, since start. */
export type LookupCounts = Record<DecisionLabel, number>;

/** Options of {@linkcode Router}. */
export interface RouterInit {
  cache: MxCache<Memo>;
  ruleSet: RuleSet;
  observer?: LookupObserver;
  /** Decide, log and count as usual, but answer "not found" (safe rollout). */
  dryRun?: boolean;
}

/** The decision memoized on a cache entry, valid while the rule set is the same object. */
export interface Memo {
  ruleSet: RuleSet;
  decision: Decision;
}

/**
 * Routes lookup keys. `route` answers synchronously on a cache hit and with a promise otherwise;
 * it never rejects. Assigning `ruleSet` (reload) takes effect for the next lookup everywhere.
 *
 * @example
 * ```ts
 * const router = new Router({ cache, ruleSet });
 * const decision = await router.route("user@example.com");
 * ```
 */
export class Router {
  /** The rules in force; replace the whole object to reload. */
  ruleSet: RuleSet;
  /** Lookup counts by label. */
  readonly counts: LookupCounts = { match: 0, nomatch: 0, tempfail: 0, invalid: 0 };
  readonly #cache: MxCache<Memo>;
  readonly #observer: LookupObserver | undefined;
  readonly #dryRun: boolean;

  constructor(init: RouterInit) {
    this.#cache = init.cache;
    this.ruleSet = init.ruleSet;
    this.#observer = init.observer;
    this.#dryRun = init.dryRun ?? false;
  }

  /** Decides the answer for one key. */
  route(key: string): Decision | Promise<Decision> {
    const startedAt = this.#observer === undefined ? 0 : performance.now();
    const parsed = domainFromKey(key);
    if (!parsed.ok) {
      return this.#finish(invalidKeyDecision(parsed.reason), {
        key,
        domain: null,
        source: "key",
        startedAt,
      });
    }
    const domain = parsed.domain;
    const answer = this.#cache.lookup(domain);
    if (answer instanceof Promise) {
      return answer.then((settled) => this.#answer(settled, { key, domain, startedAt }));
    }
    return this.#answer(answer, { key, domain, startedAt });
  }

  #answer(
    answer: CacheAnswer<Memo>,
    context: { key: string; domain: string; startedAt: number },
  ): Decision {
    const entry = answer.entry;
    let decision: Decision;
    if (entry === null) {
      decision = decide(context.domain, answer.outcome, this.ruleSet);
    } else if (entry.memo !== undefined && entry.memo.ruleSet === this.ruleSet) {
      decision = entry.memo.decision;
    } else {
      decision = decide(context.domain, entry.outcome, this.ruleSet);
      entry.memo = { ruleSet: this.ruleSet, decision };
    }
    return this.#finish(decision, { ...context, source: answer.source });
  }

  #finish(decided: Decision, context: Omit<LookupReport, "decision">): Decision {
    let decision = decided;
    if (decision.match !== null) {
      decision.match.rule.matches++;
      const pool = decision.match.rule.pool;
      if (pool !== null && decision.members !== null) {
        decision = decision.members[pickMember(pool)];
      }
    }
    this.counts[decision.label]++;
    if (this.#observer?.wants(decision.label)) {
      this.#observer.report({ ...context, decision });
    }
    return this.#dryRun ? DRY_RUN_ANSWER : decision;
  }
}
