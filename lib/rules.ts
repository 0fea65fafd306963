/**
 * Routing rules and the pure match of MX host names against them.
 *
 * @module
 */

import { compileRegex } from "./regex.ts";
import type { Decision } from "./router.ts";

/**
 * How a rule's pattern is compared: with an MX host name (`substring`, `suffix`, `exact`,
 * `regex`), or with the recipient domain itself, before any DNS lookup (`domain`).
 */
export type PatternKind = "substring" | "suffix" | "exact" | "regex" | "domain";

/** One `PATTERN RESULT` line of the config file. */
export interface Rule {
  /** 1-based line number in the config file, for logs, `check`, `query` and metrics. */
  line: number;
  /** The pattern as written in the file. */
  pattern: string;
  /** The kind of comparison. */
  kind: PatternKind;
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
  /** Encoded replies per protocol, shared by every decision this rule makes. */
  replies: (Uint8Array | undefined)[];
  /** The end of the log line of a lookup this rule answers itself, set by the log on first use. */
  logTail: string | undefined;
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
  /** What a lookup that picks this member answers, made on first use (see router.ts). */
  answer: Decision | undefined;
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
    case "substring":
      return (host) => host.includes(value);
    case "exact":
    case "domain":
      return (host) => host === value;
    case "suffix": {
      const dotted = "." + value;
      return (host) => host === value || host.endsWith(dotted);
    }
    case "regex": {
      const compiled = compileRegex(value);
      if ("error" in compiled) throw new Error(compiled.error);
      return compiled.test;
    }
    default: {
      const unknown: never = kind;
      throw new Error(`unknown pattern kind ${unknown}`);
    }
  }
}

/**
 * Finds the rule for a list of MX hosts: hosts in the order given (lowest preference first),
 * and for each host the rules in file order; the first match wins.
 *
 * @example
 * ```ts
 * matchRules(["aspmx.l.google.com"], ruleSet.rules); // { rule, host } or null
 * ```
 */
export function matchRules(hosts: readonly string[], rules: readonly Rule[]): RuleMatch | null {
  for (const host of hosts) {
    for (const rule of rules) {
      if (rule.test(host)) return { rule, host };
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
 * only `suffix:` and `exact:` rules compare whole labels, so only they may match it. A plain
 * substring or a regex written for MX host names must not route `fanicloud.com` as iCloud.
 *
 * @example
 * ```ts
 * matchImplicitMx("fanicloud.com", ruleSet.mxRules); // null for the rule "icloud.com ..."
 * ```
 */
export function matchImplicitMx(domain: string, rules: readonly Rule[]): RuleMatch | null {
  for (const rule of rules) {
    if ((rule.kind === "suffix" || rule.kind === "exact") && rule.test(domain)) {
      return { rule, host: domain };
    }
  }
  return null;
}
