/**
 * Routing rules and the pure match of MX host names against them.
 *
 * @module
 */

import { compileRegex, REGEX_STEP_BUDGET, regexSteps } from "./regex.ts";
import { providerOf } from "./providers.ts";

/**
 * How a rule's pattern is compared: with an MX host name (`substring`, `suffix`, `exact`,
 * `regex`, `provider` for the catalog's suffixes of one provider), or with the recipient domain
 * itself, before any DNS lookup (`domain`).
 */
export type PatternKind = "substring" | "suffix" | "exact" | "regex" | "provider" | "domain";

/**
 * Which MX hosts decide whether a rule matches a domain: `any` one of them (tried in preference
 * order), only the `primary` ones (the lowest preference), or `all` of them.
 */
export type MatchMode = "any" | "primary" | "all";

/** The match modes, for flags and messages. */
export const MATCH_MODES: readonly MatchMode[] = ["any", "primary", "all"];

/** One `PATTERN RESULT` line of the config file. */
export interface Rule {
  /** 1-based line number in the config file, for logs, `check`, `query` and metrics. */
  line: number;
  /** The pattern as written in the file. */
  pattern: string;
  /** The kind of comparison. */
  kind: PatternKind;
  /** Which MX hosts decide (`domain:` rules: unused). */
  mode: MatchMode;
  /**
   * What one comparison with a name costs, in RE2 instructions per character (regex rules), or 0
   * (the other kinds compare strings in native code): counted against the lookup's budget.
   */
  cost: number;
  /** The lower-cased pattern text without its kind prefix (for regex: the source). */
  value: string;
  /** The Postfix result to answer, e.g. `relay:[office365-relay.example.com]:587`. */
  result: string;
  /** The result is `DUNNO`: answer "not found", so Postfix goes on to its next table. */
  answersNotFound: boolean;
  /** The pool named by a `pool:NAME` result, whose members share this rule's traffic. */
  pool: Pool | null;
  /** Lookups answered by this rule since the rules were loaded (for metrics and stats). */
  matches: number;
  /** The same lookups by the provider label of the host that matched (`other`, `none`). */
  matchesByProvider: Map<string, number>;
  /** True when the (lower-case, dot-less) host name matches. */
  test: (host: string) => boolean;
}

/** One member of a weighted relay pool. */
export interface PoolMember {
  /** A full Postfix result; may itself be a failover list. */
  result: string;
  /** Positive integer share of the traffic. */
  weight: number;
  /** Smooth weighted round-robin state. */
  current: number;
  /** Lookups that picked this member. */
  picks: number;
}

/** A weighted relay pool: `pool:NAME WEIGHT RESULT | WEIGHT RESULT ...`. */
export interface Pool {
  name: string;
  line: number;
  members: PoolMember[];
  totalWeight: number;
}

/**
 * Picks the next member, smooth weighted round-robin as nginx does: weights 3:1 give
 * a a b a, a a b a, ... (spread, not in runs), deterministically.
 *
 * @example
 * ```ts
 * declare const pool: Pool; // pool:relays 3 relay:[r1.example]:587 | 1 relay:[r2.example]:587
 * pool.members[pickMember(pool)].result; // "relay:[r1.example]:587"
 * ```
 */
export function pickMember(pool: Pool): number {
  const members = pool.members;
  let best = 0;
  for (let i = 0; i < members.length; i++) {
    members[i].current += members[i].weight;
    if (members[i].current > members[best].current) best = i;
  }
  members[best].current -= pool.totalWeight;
  members[best].picks++;
  return best;
}

/** Rules of one config file, in file order. Replaced as a whole on reload. */
export interface RuleSet {
  /** Path of the file the rules came from. */
  file: string;
  /** Every rule in file order (for listings, counts and metrics). */
  rules: readonly Rule[];
  /** The rules matched against MX host names, in file order: the first match wins. */
  mxRules: readonly Rule[];
  /**
   * The `domain:` rules by the name they match: `example.com` for that domain, `.example.com`
   * for its subdomains. Asked before DNS and before every MX rule.
   */
  domainRules: ReadonlyMap<string, Rule>;
  /** Pools by name. */
  pools: ReadonlyMap<string, Pool>;
}

/** Which MX host matched which rule. */
export interface RuleMatch {
  rule: Rule;
  host: string;
}

/**
 * Builds the test function of a pattern; the value must already be lower case (regex: source).
 *
 * @example
 * ```ts
 * makeMatcher("suffix", "outlook.com")("x.mail.protection.outlook.com"); // true
 * makeMatcher("suffix", "outlook.com")("outlook.com.attacker.example"); // false
 * ```
 */
export function makeMatcher(kind: PatternKind, value: string): (host: string) => boolean {
  switch (kind) {
    case "substring": {
      // The original compared with the name as dnspython writes it, with a trailing dot, so
      // "outlook.com." matched "x.outlook.com": the dot may stand for the end of the name.
      if (!value.endsWith(".")) return (host) => host.includes(value);
      const atEnd = value.slice(0, -1);
      return (host) => host.includes(value) || host.endsWith(atEnd);
    }
    case "exact":
    case "domain":
      return (host) => host === value;
    case "provider":
      return (host) => providerOf(host)?.id === value;
    case "suffix": {
      const dotted = "." + value;
      return (host) => host === value || host.endsWith(dotted);
    }
    case "regex": {
      const compiled = compileRegex(value);
      if (!compiled.ok) throw new Error(compiled.error);
      return compiled.value.test;
    }
    default: {
      const unknown: never = kind;
      throw new Error(`unknown pattern kind ${unknown}`);
    }
  }
}

/** The MX hosts of a domain as matching needs them: in preference order, primary ones first. */
export interface MxHosts {
  hosts: readonly string[];
  /** How many of `hosts`, from the first, have the lowest preference. */
  primaryCount: number;
}

/**
 * A lookup whose regex comparisons would cost more than {@linkcode REGEX_STEP_BUDGET}: only
 * MX names far longer than real ones get here, and the answer is a temporary failure.
 */
export interface RegexBudgetExceeded {
  exceeded: true;
  /** The steps the comparisons made and the one refused would have taken. */
  steps: number;
}

/**
 * Finds the rule for a domain's MX hosts: hosts in preference order, and for each host the
 * rules in file order; the first match wins. A rule in mode `primary` considers only the
 * primary hosts; one in mode `all` matches only when it matches every host.
 *
 * Regex comparisons are counted (RE2 instructions × characters): before one would take the
 * lookup past {@linkcode REGEX_STEP_BUDGET}, matching stops, so no MX set can hold the router
 * longer than that budget allows, however its names are built.
 *
 * @example
 * ```ts
 * import type { RuleSet } from "./rules.ts";
 *
 * declare const ruleSet: RuleSet;
 * matchRules({ hosts: ["aspmx.l.google.com"], primaryCount: 1 }, ruleSet.mxRules);
 * // { rule, host } or null
 * ```
 */
export function matchRules(
  mx: MxHosts,
  rules: readonly Rule[],
): RuleMatch | RegexBudgetExceeded | null {
  const matching = matchInSlices(mx, rules);
  for (;;) {
    const next = matching.next();
    if (next.done) return next.value;
  }
}

/**
 * The most regex work matching these hosts can take, in the steps of the lookup budget: each
 * regex rule against each host. 0 for rules without regexes.
 *
 * @example
 * ```ts
 * import type { RuleSet } from "./rules.ts";
 *
 * declare const ruleSet: RuleSet;
 * regexWork(["mx1.example.org", "mx2.example.org"], ruleSet.mxRules); // 0 without regex rules
 * ```
 */
export function regexWork(hosts: readonly string[], rules: readonly Rule[]): number {
  let steps = 0;
  for (const rule of rules) {
    if (rule.cost === 0) continue;
    for (const host of hosts) steps += regexSteps(rule.cost, host.length);
  }
  return steps;
}

/**
 * {@linkcode matchRules}, one host at a time: yields the regex steps spent so far after each
 * host, so that a caller may let other work run between hosts, and returns what matchRules
 * returns.
 *
 * @example
 * ```ts
 * import type { RuleSet } from "./rules.ts";
 *
 * declare const ruleSet: RuleSet;
 * const matching = matchInSlices({ hosts: ["mx.example.org"], primaryCount: 1 }, ruleSet.mxRules);
 * let next = matching.next();
 * while (!next.done) next = matching.next(); // next.value: the match, or null
 * ```
 */
export function* matchInSlices(
  mx: MxHosts,
  rules: readonly Rule[],
): Generator<number, RuleMatch | RegexBudgetExceeded | null> {
  const { hosts, primaryCount } = mx;
  // Each host's provider, found once per lookup however many provider: rules ask.
  let providers: (string | null)[] | null = null;
  const test = (rule: Rule, index: number): boolean => {
    if (rule.kind !== "provider") return rule.test(hosts[index]);
    providers ??= hosts.map((host) => providerOf(host)?.id ?? null);
    return providers[index] === rule.value;
  };
  let steps = 0;
  const affordable = (rule: Rule, host: string): boolean => {
    if (rule.cost === 0) return true;
    steps += regexSteps(rule.cost, host.length);
    return steps <= REGEX_STEP_BUDGET;
  };
  for (let index = 0; index < hosts.length; index++) {
    if (index > 0) yield steps;
    const host = hosts[index];
    for (const rule of rules) {
      // All hosts match only if the first does: an `all` rule is decided at the first host.
      if (rule.mode === "all" ? index > 0 : rule.mode === "primary" && index >= primaryCount) {
        continue;
      }
      if (!affordable(rule, host)) return { exceeded: true, steps };
      if (!test(rule, index)) continue;
      if (rule.mode === "all") {
        let every = true;
        for (let other = 1; other < hosts.length && every; other++) {
          if (!affordable(rule, hosts[other])) return { exceeded: true, steps };
          every = test(rule, other);
        }
        if (!every) continue;
      }
      return { rule, host };
    }
  }
  return null;
}

/**
 * The `domain:` rule for a recipient domain, as Postfix searches transport(5): the domain
 * itself, then each parent domain from the nearest (`.a.example.com` before `.example.com`).
 *
 * @example
 * ```ts
 * declare const ruleSet: RuleSet;
 * domainRuleFor("mail.contoso.com", ruleSet)?.line; // the line of "domain:.contoso.com ..."
 * ```
 */
export function domainRuleFor(domain: string, ruleSet: RuleSet): Rule | null {
  const rules = ruleSet.domainRules;
  if (rules.size === 0) return null;
  const exact = rules.get(domain);
  if (exact !== undefined) return exact;
  for (let dot = domain.indexOf("."); dot >= 0; dot = domain.indexOf(".", dot + 1)) {
    const parent = rules.get(domain.slice(dot));
    if (parent !== undefined) return parent;
  }
  return null;
}

/**
 * Finds the rule for a domain without MX records, which is its own mail host (RFC 5321 §5.1):
 * only `suffix:`, `exact:` and `provider:` rules compare whole labels, so only they may match it.
 * A plain substring or a regex written for MX host names must not route `fanicloud.com` as
 * iCloud. With one host, every match mode means the same.
 *
 * @example
 * ```ts
 * declare const ruleSet: RuleSet;
 * matchImplicitMx("fanicloud.com", ruleSet.mxRules); // null for the rule "icloud.com ..."
 * ```
 */
export function matchImplicitMx(domain: string, rules: readonly Rule[]): RuleMatch | null {
  for (const rule of rules) {
    if (LABEL_EXACT.has(rule.kind) && rule.test(domain)) return { rule, host: domain };
  }
  return null;
}

/** The kinds that compare whole labels, and so may match a domain that is its own MX. */
const LABEL_EXACT: ReadonlySet<PatternKind> = new Set(["suffix", "exact", "provider"]);
