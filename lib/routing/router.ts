/**
 * From a lookup key to a decision: key → domain → cached or fresh DNS answer → rules.
 *
 * {@linkcode decide} is the pure heart (no I/O, no clock); {@linkcode Router} wires it to the
 * cache and memoizes the decision on each cache entry, so a hit costs a map lookup.
 *
 * @module
 */

import type { AnswerSource, CacheAnswer, CacheEntry, MxCache } from "./cache.ts";
import type { MxAnswer, MxOutcome } from "../dns/types.ts";
import { PROVIDER_IDS, providerOf } from "./providers.ts";
import { REGEX_STEP_BUDGET } from "./regex.ts";
import { domainFromKey, domainPart, plainDomain } from "./keys.ts";
import {
  domainRuleFor,
  matchImplicitMx,
  matchInSlices,
  matchRules,
  pickMember,
  type Pool,
  type PoolMember,
  type RegexBudgetExceeded,
  regexWork,
  type Rule,
  type RuleMatch,
  type RuleSet,
} from "./rules.ts";

/** What kind of answer a lookup got; a fixed label set for logs and metrics. */
export type DecisionLabel = "match" | "nomatch" | "tempfail" | "invalid";

/** The answer to one lookup, protocol-neutral. */
export interface Decision {
  label: DecisionLabel;
  /** The Postfix result when a rule matched (for a pool rule: `pool:NAME`), else null. */
  result: string | null;
  /** Why there is no result (for logs, and the text of a temporary failure). */
  reason: string;
  /** The rule that matched (inline rather than a match object: one object less per domain). */
  rule: Rule | null;
  /** The MX host (for NODATA, the domain) the rule matched; null for a `domain:` rule. */
  matchedHost: string | null;
  /** The MX hosts in the order they were tried (the domain itself for NODATA). */
  hosts: readonly string[];
  /**
   * The catalog id of the provider of the MX host that decided, or when no host matched, of the
   * first (most preferred) host; null for a host outside the catalog, or when there is no host.
   */
  provider: string | null;
}

function makeDecision(
  fields: Pick<Decision, "label" | "reason" | "hosts"> & Partial<Decision>,
): Decision {
  // Every field written here, in one order: one compact shape for every decision (a spread of
  // `fields` gave each cached decision an out-of-object property array, 40 bytes a domain).
  const matchedHost = fields.matchedHost ?? null;
  const host = matchedHost ?? fields.hosts[0];
  return {
    label: fields.label,
    result: fields.result ?? null,
    reason: fields.reason,
    rule: fields.rule ?? null,
    matchedHost,
    hosts: fields.hosts,
    // Found once per decision, so a cache hit never searches the catalog.
    provider: host === undefined ? null : providerOf(host)?.id ?? null,
  };
}

/** The provider label of a host outside the catalog (and of a domain that is its own MX host). */
export const OTHER_PROVIDER = "other";

/**
 * The provider label of a lookup without an MX host (NXDOMAIN, null MX, a DNS failure, an invalid
 * key, a `domain:` rule answered without DNS), and the route of a decision that answers not found.
 */
export const NO_PROVIDER = "none";

/**
 * Every provider label, a fixed set for metrics: the catalog ids, then {@linkcode OTHER_PROVIDER}
 * and {@linkcode NO_PROVIDER}.
 *
 * @example
 * ```ts
 * PROVIDER_LABELS.includes("microsoft365"); // true
 * ```
 */
export const PROVIDER_LABELS: readonly string[] = [...PROVIDER_IDS, OTHER_PROVIDER, NO_PROVIDER];

/**
 * The provider label a lookup is counted under: the decision's provider, else `other` when it has
 * an MX host, else `none`.
 *
 * @example
 * ```ts
 * import type { MxAnswer, MxOutcome } from "../dns/types.ts";
 * import type { RuleSet } from "./rules.ts";
 *
 * declare const outcome: MxOutcome; // contoso.com's MX: *.mail.protection.outlook.com
 * declare const ruleSet: RuleSet;
 * providerLabel(decide("contoso.com", outcome, ruleSet)); // "microsoft365"
 * ```
 */
export function providerLabel(decision: Decision): string {
  return decision.provider ?? (decision.hosts.length > 0 ? OTHER_PROVIDER : NO_PROVIDER);
}

/**
 * Where a decision routes a domain, as a decision change names it: for a match, the provider of
 * the host that decided (`other` outside the catalog, or for a `domain:` rule); `none` for not
 * found.
 *
 * @example
 * ```ts
 * import type { MxAnswer, MxOutcome } from "../dns/types.ts";
 * import type { RuleSet } from "./rules.ts";
 *
 * declare const outcome: MxOutcome; // contoso.com's MX: *.mail.protection.outlook.com
 * declare const ruleSet: RuleSet;
 * routeLabel(decide("contoso.com", outcome, ruleSet)); // "microsoft365", or "none" without a rule
 * ```
 */
export function routeLabel(decision: Decision): string {
  return decision.label !== "match" ? NO_PROVIDER : decision.provider ?? OTHER_PROVIDER;
}

/**
 * Decides the answer for a domain from its DNS outcome and the rules, per the DNS outcome table:
 * a `domain:` rule for the domain wins over everything; MX → match the hosts; NODATA → match the
 * domain itself (implicit MX) against the label-exact rules; null MX and NXDOMAIN → not found;
 * anything else → temporary failure, never a guess.
 *
 * @example
 * ```ts
 * import type { RuleSet } from "./rules.ts";
 *
 * declare const ruleSet: RuleSet;
 * decide("example.com", { kind: "nxdomain", negativeTtl: 300 }, ruleSet).label; // "nomatch"
 * ```
 */
export function decide(domain: string, outcome: MxOutcome, ruleSet: RuleSet): Decision {
  const override = domainRuleFor(domain, ruleSet);
  if (override !== null) return domainRuleDecision(override);
  switch (outcome.kind) {
    case "mx":
      return mxDecision(
        outcome,
        matchRules(
          { hosts: outcome.hosts, primaryCount: outcome.primaryCount ?? 1 },
          ruleSet.mxRules,
        ),
      );
    case "nodata":
      return decideMatch(
        matchImplicitMx(domain, ruleSet.mxRules),
        [domain],
        "no MX records; no suffix:, exact: or provider: rule matches the domain itself",
      );
    case "nullmx":
      return makeDecision({
        label: "nomatch",
        reason: "null MX: the domain takes no mail",
        hosts: [],
      });
    case "nxdomain":
      return makeDecision({
        label: "nomatch",
        reason: "NXDOMAIN: no such domain",
        hosts: [],
      });
    case "tempfail":
      return makeDecision({ label: "tempfail", reason: outcome.reason, hosts: [] });
    default: {
      const unknown: never = outcome;
      throw new Error(`unexpected DNS outcome ${JSON.stringify(unknown)}`);
    }
  }
}

/** The decision for an MX answer from what matching its hosts found. */
function mxDecision(outcome: MxAnswer, match: RuleMatch | RegexBudgetExceeded | null): Decision {
  if (match !== null && "exceeded" in match) {
    return makeDecision({
      label: "tempfail",
      reason: `MX names too long for the regex rules: comparing them would take over ` +
        `${REGEX_STEP_BUDGET} steps (${outcome.hosts.length} hosts)`,
      hosts: outcome.hosts,
    });
  }
  return decideMatch(match, outcome.hosts, "no rule matches the MX hosts");
}

/**
 * Regex work after which {@linkcode decideInSlices} lets other work run: about 0.3 ms, so a
 * cached lookup on another connection waits at most about that long behind a costly decision.
 */
export const SLICE_STEPS = 20_000;

/**
 * {@linkcode decide}, but an MX set whose regex comparisons cost more than
 * {@linkcode SLICE_STEPS} is matched one host at a time, with `pause()` awaited between hosts
 * once that much work is done: the one JavaScript thread serves other connections meanwhile.
 *
 * @example
 * ```ts
 * import type { MxAnswer, MxOutcome } from "../dns/types.ts";
 * import type { RuleSet } from "./rules.ts";
 *
 * declare const outcome: MxOutcome;
 * declare const ruleSet: RuleSet;
 * const pause = () => new Promise<void>((resolve) => setTimeout(resolve, 0));
 * const decision = await decideInSlices("example.com", outcome, { ruleSet, pause });
 * ```
 */
export async function decideInSlices(
  domain: string,
  outcome: MxOutcome,
  options: { ruleSet: RuleSet; pause: () => Promise<void> },
): Promise<Decision> {
  const { ruleSet, pause } = options;
  if (outcome.kind !== "mx" || domainRuleFor(domain, ruleSet) !== null) {
    return decide(domain, outcome, ruleSet);
  }
  const matching = matchInSlices(
    { hosts: outcome.hosts, primaryCount: outcome.primaryCount ?? 1 },
    ruleSet.mxRules,
  );
  let pausedAt = 0;
  for (;;) {
    const next = matching.next();
    if (next.done) return mxDecision(outcome, next.value);
    if (next.value - pausedAt >= SLICE_STEPS) {
      pausedAt = next.value;
      await pause();
    }
  }
}

function decideMatch(match: RuleMatch | null, hosts: readonly string[], noMatch: string): Decision {
  if (match === null) return makeDecision({ label: "nomatch", reason: noMatch, hosts });
  if (match.rule.answersNotFound) {
    return makeDecision({
      label: "nomatch",
      reason: `${match.host} matches line ${match.rule.line} (DUNNO): not found`,
      rule: match.rule,
      matchedHost: match.host,
      hosts,
    });
  }
  return makeDecision({
    label: "match",
    result: match.rule.result,
    reason: "a rule matches",
    rule: match.rule,
    matchedHost: match.host,
    hosts,
  });
}

/**
 * The decisions of `domain:` rules, one per rule (they do not depend on the domain), so that a
 * domain answered without DNS, and so never cached, costs no allocation per lookup.
 */
const domainDecisions = new WeakMap<Rule, Decision>();

/**
 * The decision of a `domain:` rule: its result, or "not found" for `DUNNO`. Made without DNS.
 *
 * @example
 * ```ts
 * import type { Rule } from "./rules.ts";
 *
 * declare const rule: Rule; // domain:contoso.com smtp:[mail.contoso.com]:25
 * domainRuleDecision(rule).result; // "smtp:[mail.contoso.com]:25"
 * ```
 */
export function domainRuleDecision(rule: Rule): Decision {
  let decision = domainDecisions.get(rule);
  if (decision === undefined) {
    decision = rule.answersNotFound
      ? makeDecision({
        label: "nomatch",
        reason: `domain rule on line ${rule.line} (${rule.pattern} DUNNO): not found`,
        rule,
        hosts: [],
      })
      : makeDecision({
        label: "match",
        result: rule.result,
        reason: "a domain rule matches",
        rule,
        hosts: [],
      });
    domainDecisions.set(rule, decision);
  }
  return decision;
}

/** What a lookup answers when it picks a pool member: made once per member. */
const memberAnswers = new WeakMap<PoolMember, Decision>();

/** The answer of a pool member: made once, shared by every lookup that picks it. */
function memberAnswer(pool: Pool, index: number): Decision {
  const member = pool.members[index];
  let answer = memberAnswers.get(member);
  if (answer === undefined) {
    answer = makeDecision({
      label: "match",
      result: member.result,
      reason: `pool ${pool.name} member ${index + 1} (weight ${member.weight})`,
      hosts: [],
    });
    memberAnswers.set(member, answer);
  }
  return answer;
}

/**
 * What a decision answers: for a pool rule, the next member by smooth weighted round-robin
 * (a pick per call); otherwise the decision itself.
 *
 * @example
 * ```ts
 * declare const decision: Decision; // matched a rule whose result is pool:relays
 * answerFor(decision).result; // "relay:[r1.example]:587"
 * ```
 */
export function answerFor(decision: Decision): Decision {
  const pool = decision.rule?.pool ?? null;
  return pool === null ? decision : memberAnswer(pool, pickMember(pool));
}

/**
 * Why a decision answers as it does, for people: for a match, which MX host matched which line
 * (derived, so cached decisions hold no text of their own); otherwise its reason.
 *
 * @example
 * ```ts
 * declare const decision: Decision;
 * decisionReason(decision); // "c.mail.protection.outlook.com matches line 1"
 * ```
 */
export function decisionReason(decision: Decision): string {
  if (decision.label !== "match" || decision.rule === null) return decision.reason;
  return decision.rule.kind === "domain"
    ? `the domain matches line ${decision.rule.line}`
    : `${decision.matchedHost} matches line ${decision.rule.line}`;
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
  /** The decision for the domain. */
  decision: Decision;
  /** What it answers (a pool member for a pool rule; the decision itself otherwise). */
  answer: Decision;
  /** Where the answer came from: the cache or DNS, the key alone, or a `domain:` rule. */
  source: AnswerSource | "key" | "rules";
  /**
   * When the lookup started, from `performance.now()`; 0 when it was answered at once (a cache
   * hit: a few microseconds, so the clock is not read twice for it).
   */
  startedAt: number;
}

/**
 * How long a reported lookup took, in milliseconds; 0 for one answered at once (not timed).
 *
 * @example
 * ```ts
 * const observer: LookupObserver = {
 *   wants: (label) => label === "tempfail",
 *   report: (lookup) => console.log(`${lookup.key}: ${elapsedMs(lookup).toFixed(1)} ms`),
 * };
 * ```
 */
export function elapsedMs(report: LookupReport): number {
  return report.startedAt === 0 ? 0 : performance.now() - report.startedAt;
}

/**
 * Receives finished lookups; `wants` lets the router skip reports nobody reads. A report is valid
 * during the `report` call only (the router refills one object): copy what you keep.
 */
export interface LookupObserver {
  wants(label: DecisionLabel): boolean;
  report(lookup: LookupReport): void;
}

/**
 * Combines observers: each gets the reports it wants.
 *
 * @example
 * ```ts
 * declare const logObserver: LookupObserver;
 * declare const metricsObserver: LookupObserver;
 * const observer = combineObservers([logObserver, metricsObserver]);
 * ```
 */
export function combineObservers(observers: LookupObserver[]): LookupObserver {
  if (observers.length === 1) return observers[0];
  return {
    wants: (label) => observers.some((o) => o.wants(label)),
    report: (report) => {
      for (const observer of observers) {
        if (observer.wants(report.decision.label)) observer.report(report);
      }
    },
  };
}

/** Lookup counts by label, since start. */
export type LookupCounts = Record<DecisionLabel, number>;

/**
 * A cached domain whose decision changed when a new DNS answer replaced its entry, under the
 * same rules. Temporary failures are never compared: a failed refresh keeps the old entry.
 */
export interface DecisionChange {
  /** The ASCII domain. */
  domain: string;
  /** The decision made from the replaced answer. */
  previous: Decision;
  /** The decision made from the new answer. */
  next: Decision;
  /** {@linkcode routeLabel} of `previous`: a provider id, `other` or `none`. */
  from: string;
  /** {@linkcode routeLabel} of `next`. */
  to: string;
}

/** Options of {@linkcode Router}. */
export interface RouterInit {
  cache: MxCache<Decision>;
  ruleSet: RuleSet;
  observer?: LookupObserver;
  /** Decide, log and count as usual, but answer "not found" (safe rollout). */
  dryRun?: boolean;
  /**
   * Lets other work run between the slices of a costly decision (see decideInSlices); the default
   * waits for the next turn of the event loop, after pending I/O.
   */
  pause?: () => Promise<void>;
  /**
   * Told when a refresh changes a cached domain's decision: where it routes (`from`, `to`) or
   * what it answers. Only for a replaced entry whose decision was made under the rules in force
   * (a reload changes decisions without the domain changing). Called while the cache stores the
   * new answer: it must not throw.
   */
  onDecisionChange?: (change: DecisionChange) => void;
}

/**
 * Routes lookup keys. `route` answers synchronously on a cache hit and with a promise otherwise;
 * it never rejects. Assigning `ruleSet` (reload) takes effect for the next lookup everywhere.
 *
 * @example
 * ```ts
 * import type { MxCache } from "./cache.ts";
 * import type { RuleSet } from "./rules.ts";
 *
 * declare const cache: MxCache<Decision>;
 * declare const ruleSet: RuleSet;
 * const router = new Router({ cache, ruleSet });
 * const decision = await router.route("user@example.com");
 * ```
 */
export class Router {
  /** The rules in force; replace the whole object to reload. */
  ruleSet: RuleSet;
  /** Lookup counts by provider label (every one of {@linkcode PROVIDER_LABELS}), then by label. */
  readonly countsByProvider: ReadonlyMap<string, LookupCounts> = new Map(
    PROVIDER_LABELS.map((
      provider,
    ) => [provider, { match: 0, nomatch: 0, tempfail: 0, invalid: 0 }]),
  );
  readonly #cache: MxCache<Decision>;
  readonly #observer: LookupObserver | undefined;
  readonly #dryRun: boolean;
  readonly #pause: () => Promise<void>;
  readonly #report: LookupReport = {
    key: "",
    domain: null,
    decision: DRY_RUN_ANSWER,
    answer: DRY_RUN_ANSWER,
    source: "key",
    startedAt: 0,
  };

  constructor(init: RouterInit) {
    this.#cache = init.cache;
    this.ruleSet = init.ruleSet;
    this.#observer = init.observer;
    this.#dryRun = init.dryRun ?? false;
    this.#pause = init.pause ?? (() => new Promise((resolve) => setTimeout(resolve, 0)));
    const onDecisionChange = init.onDecisionChange;
    if (onDecisionChange !== undefined) {
      init.cache.onReplace = (domain, previous, next) =>
        this.#compare(domain, previous, next, onDecisionChange);
    }
  }

  /** Lookup counts by label, summed over the providers. */
  get counts(): LookupCounts {
    const sum: LookupCounts = { match: 0, nomatch: 0, tempfail: 0, invalid: 0 };
    for (const counts of this.countsByProvider.values()) {
      sum.match += counts.match;
      sum.nomatch += counts.nomatch;
      sum.tempfail += counts.tempfail;
      sum.invalid += counts.invalid;
    }
    return sum;
  }

  /** Decides the answer for one key. */
  route(key: string): Decision | Promise<Decision> {
    // A fresh hit is looked up before any check of the key: a domain in the cache was valid when
    // it went in. This is the key's cache key if it is valid.
    const known = plainDomain(domainPart(key));
    const entry = this.#cache.fresh(known);
    if (entry !== null) return this.#finish(this.#memo(entry, known), key, known, "cache", 0);
    const parsed = domainFromKey(key);
    if (!parsed.ok) return this.#finish(invalidKeyDecision(parsed.error), key, null, "key", 0);
    const domain = parsed.value;
    // A domain rule answers without DNS; a cached domain meets it in its memoized decision.
    const override = domainRuleFor(domain, this.ruleSet);
    if (override !== null) {
      return this.#finish(domainRuleDecision(override), key, domain, "rules", 0);
    }
    const answer = this.#cache.lookup(domain);
    if (answer instanceof Promise) {
      const startedAt = this.#observer !== undefined ? performance.now() : 0;
      return answer.then((settled) => {
        const finish = (decision: Decision) =>
          this.#finish(decision, key, domain, settled.source, startedAt);
        const outcome = settled.outcome;
        // Most answers cost little to match: decided at once, without a promise more.
        return outcome.kind === "mx" &&
            regexWork(outcome.hosts, this.ruleSet.mxRules) > SLICE_STEPS
          ? this.#sliced(settled, domain).then(finish)
          : finish(this.#decision(settled, domain));
      });
    }
    return this.#finish(this.#decision(answer, domain), key, domain, answer.source, 0);
  }

  /**
   * The decision for an answer that came from DNS, matched in slices (see decideInSlices) and
   * memoized on its cache entry: a costly MX set does not hold up the lookups answered meanwhile.
   */
  async #sliced(answer: CacheAnswer<Decision>, domain: string): Promise<Decision> {
    const entry = answer.entry;
    if (entry !== null && entry.memo !== undefined && entry.memoFor === this.ruleSet) {
      return entry.memo;
    }
    const ruleSet = this.ruleSet;
    const decision = await decideInSlices(domain, answer.outcome, { ruleSet, pause: this.#pause });
    if (entry !== null && ruleSet === this.ruleSet) {
      entry.memoFor = ruleSet;
      entry.memo = decision;
    }
    return decision;
  }

  #decision(answer: CacheAnswer<Decision>, domain: string): Decision {
    const entry = answer.entry;
    return entry === null
      ? decide(domain, answer.outcome, this.ruleSet)
      : this.#memo(entry, domain);
  }

  #memo(entry: CacheEntry<Decision>, domain: string): Decision {
    if (entry.memo !== undefined && entry.memoFor === this.ruleSet) return entry.memo;
    entry.memoFor = this.ruleSet;
    return entry.memo = decide(domain, entry.outcome, this.ruleSet);
  }

  /**
   * A new answer replaced a cached one: decide it now (memoized on the new entry, so the next
   * lookup reuses it) and report a change from the old decision, if that was made under these
   * rules. Routing elsewhere or answering otherwise is a change; failing is not.
   */
  #compare(
    domain: string,
    replaced: CacheEntry<Decision>,
    entry: CacheEntry<Decision>,
    report: (change: DecisionChange) => void,
  ): void {
    const previous = replaced.memo;
    if (previous === undefined || replaced.memoFor !== this.ruleSet) return;
    const next = this.#memo(entry, domain);
    if (previous.label === "tempfail" || next.label === "tempfail") return;
    const from = routeLabel(previous);
    const to = routeLabel(next);
    if (from === to && previous.result === next.result) return;
    report({ domain, previous, next, from, to });
  }

  #finish(
    decision: Decision,
    key: string,
    domain: string | null,
    source: LookupReport["source"],
    startedAt: number,
  ): Decision {
    const reply = answerFor(decision);
    const provider = providerLabel(decision);
    this.countsByProvider.get(provider)![decision.label]++;
    const rule = decision.rule;
    if (rule !== null) {
      rule.matches++;
      const byProvider = rule.matchesByProvider;
      byProvider.set(provider, (byProvider.get(provider) ?? 0) + 1);
    }
    if (this.#observer?.wants(decision.label)) {
      // One report object, refilled per lookup: observers read it during the call only.
      const report = this.#report;
      report.key = key;
      report.domain = domain;
      report.decision = decision;
      report.answer = reply;
      report.source = source;
      report.startedAt = startedAt;
      this.#observer.report(report);
    }
    return this.#dryRun ? DRY_RUN_ANSWER : reply;
  }
}
