/**
 * `query`: one lookup with real DNS, explained step by step for a person: the same key parsing,
 * DNS client and decision as the server, without the cache.
 *
 * @module
 */

import { PROGRAM, type QueryOptions } from "./cli.ts";
import { createResolver } from "../dns/resolver.ts";
import type { MxOutcome, MxResolver } from "../dns/types.ts";
import { loadDnsServers, loadRuleSet } from "./load.ts";
import { domainFromKey, domainPart, plainDomain } from "../routing/keys.ts";
import {
  answerFor,
  decide,
  type Decision,
  decisionReason,
  domainRuleDecision,
  invalidKeyDecision,
} from "../routing/router.ts";
import { domainRuleFor, matchImplicitMx, type Rule, type RuleSet } from "../routing/rules.ts";
import { providerById } from "../routing/providers.ts";
import { socketmapCodec } from "../server/socketmap.ts";
import { tcpTableCode, tcpTableCodec } from "../server/tcp_table.ts";

/** Everything `query` found out about one key. */
export interface QueryReport {
  key: string;
  /** The domain as given (after the last @), or null for keys without one. */
  domain: string | null;
  /** The ASCII form asked of DNS. */
  asciiDomain: string | null;
  /** Why the key needs no DNS lookup, if so. */
  invalid: string | null;
  /** The `domain:` rule (file:line pattern) that answers without DNS, if any. */
  domainRule: string | null;
  /**
   * The mail provider the domain is at, from the catalog: of the MX host that decided, or of
   * the most preferred one (`id (name)`); null when none of the catalog's.
   */
  provider: string | null;
  dns: { outcome: string; rcode: string; ttl: number | null; detail: string } | null;
  /**
   * Each MX host in the order tried, whether it is a primary one (lowest preference), and the
   * first rule that matches it (file:line, with its match mode) if any: the decision says which
   * rule, under its mode, decided.
   */
  hosts: { host: string; primary: boolean; rule: string | null }[];
  decision: Decision;
  /** What the lookup answers: for a pool rule, the member this lookup gets. */
  answer: Decision;
  /** The exact tcp_table reply line (without newline). */
  tcpTableReply: string;
  /** The exact socketmap reply (netstring). */
  socketmapReply: string;
  /** 0 found, 1 not found, 2 temporary failure: as postmap. */
  exitCode: 0 | 1 | 2;
}

const text = new TextDecoder();

/** `query` exits as `postmap -q` would: 0 found, 1 not found, 2 temporary failure. */
const EXIT_CODES = { 200: 0, 500: 1, 400: 2 } as const;

function describeOutcome(outcome: MxOutcome): NonNullable<QueryReport["dns"]> {
  switch (outcome.kind) {
    case "mx":
      return { outcome: "mx", rcode: "NOERROR", ttl: outcome.ttl, detail: "MX records" };
    case "nullmx":
      return {
        outcome: "nullmx",
        rcode: "NOERROR",
        ttl: outcome.ttl,
        detail: "null MX (RFC 7505)",
      };
    case "nodata":
      return {
        outcome: "nodata",
        rcode: "NOERROR",
        ttl: outcome.negativeTtl,
        detail: "no MX records: the domain itself is the implicit MX",
      };
    case "nxdomain":
      return {
        outcome: "nxdomain",
        rcode: "NXDOMAIN",
        ttl: outcome.negativeTtl,
        detail: "no such domain",
      };
    case "tempfail":
      return {
        outcome: "tempfail",
        rcode: outcome.cause.toUpperCase(),
        ttl: null,
        detail: outcome.reason,
      };
    default: {
      const unknown: never = outcome;
      throw new Error(`unexpected outcome ${JSON.stringify(unknown)}`);
    }
  }
}

/** Options of {@linkcode explainLookup}. */
export interface ExplainOptions {
  key: string;
  ruleSet: RuleSet;
  resolver: MxResolver;
}

/**
 * Looks one key up and explains the answer: the domain, its MX hosts and the rule each matched,
 * the decision, and the reply each protocol would send (`500 NO%20RESULT` for tcp_table when no
 * rule matches).
 */
async function explainLookup(options: ExplainOptions): Promise<QueryReport> {
  const { key, ruleSet } = options;
  const domain = domainPart(key);
  const parsed = domainFromKey(key);
  let decision: Decision;
  let dns: QueryReport["dns"] = null;
  let asciiDomain: string | null = null;
  let override: Rule | null = null;
  let outcome: MxOutcome | null = null;
  if (!parsed.ok) {
    decision = invalidKeyDecision(parsed.error);
  } else if ((override = domainRuleFor(parsed.value, ruleSet)) !== null) {
    asciiDomain = parsed.value;
    decision = domainRuleDecision(override);
  } else {
    asciiDomain = parsed.value;
    outcome = await options.resolver.resolveMx(parsed.value);
    dns = describeOutcome(outcome);
    decision = decide(parsed.value, outcome, ruleSet);
  }
  // A pool answers with one member per lookup: show the one this lookup gets.
  const answer = answerFor(decision);
  const implicitMx = dns?.outcome === "nodata";
  const primaryCount = outcome?.kind === "mx" ? outcome.primaryCount ?? 1 : 1;
  const hosts = decision.hosts.map((host, index) => {
    const describe = (rule: Rule) => `${ruleSet.file}:${rule.line} ${rule.pattern}`;
    if (implicitMx) {
      const match = matchImplicitMx(host, ruleSet.mxRules);
      return { host, primary: true, rule: match === null ? null : describe(match.rule) };
    }
    // The first rule that matches this host under its mode, as matching considers it; else the
    // first that matches the host but whose mode leaves it out (a backup MX under primary:).
    const considered = (rule: Rule) =>
      rule.mode === "any" ||
      (rule.mode === "primary"
        ? index < primaryCount
        : decision.hosts.every((other) => rule.test(other)));
    const matching = ruleSet.mxRules.filter((rule) => rule.test(host));
    const counted = matching.find(considered);
    const leftOut = counted === undefined ? matching[0] : undefined;
    return {
      host,
      primary: index < primaryCount,
      rule: counted !== undefined
        ? `${describe(counted)} (mode ${counted.mode})`
        : leftOut !== undefined
        ? `${describe(leftOut)} only outside its mode ${leftOut.mode}`
        : null,
    };
  });
  return {
    key,
    domain,
    asciiDomain,
    invalid: parsed.ok ? null : parsed.error,
    domainRule: override === null ? null : `${ruleSet.file}:${override.line} ${override.pattern}`,
    provider: providerText(decision.provider),
    dns,
    hosts,
    decision,
    answer,
    tcpTableReply: text.decode(tcpTableCodec.encode(answer)).trimEnd(),
    socketmapReply: text.decode(socketmapCodec.encode(answer)),
    exitCode: EXIT_CODES[tcpTableCode(decision)],
  };
}

/** A catalog id as a person reads it: `microsoft365 (Microsoft 365 (Exchange Online))`. */
function providerText(id: string | null): string | null {
  const provider = id === null ? null : providerById(id);
  return provider === null ? null : `${provider.id} (${provider.name})`;
}

/** Formats a report as lines for a terminal. */
function formatQueryReport(report: QueryReport): string {
  const lines = [`key:      ${report.key}`];
  if (report.invalid !== null) {
    lines.push(`domain:   ${report.domain} (no DNS lookup: ${report.invalid})`);
  } else {
    const asIs = report.domain === null ? undefined : plainDomain(report.domain);
    const ascii = report.asciiDomain !== asIs ? ` (ASCII: ${report.asciiDomain})` : "";
    lines.push(`domain:   ${report.domain}${ascii}`);
  }
  if (report.domainRule !== null) {
    lines.push(`rule:     ${report.domainRule} (a domain rule: no DNS lookup)`);
  }
  if (report.dns !== null) {
    const ttl = report.dns.ttl === null ? "" : `, TTL ${report.dns.ttl}s`;
    lines.push(`dns:      ${report.dns.rcode}${ttl}: ${report.dns.detail}`);
  }
  if (report.hosts.length > 0) {
    lines.push("mx hosts, in the order tried:");
    report.hosts.forEach(({ host, primary, rule }, index) => {
      const matches = rule === null ? "no rule matches" : `matches ${rule}`;
      lines.push(`  ${index + 1}. ${host}${primary ? " (primary)" : ""}  ${matches}`);
    });
  }
  if (report.provider !== null) lines.push(`provider: ${report.provider}`);
  const pool = report.decision.rule?.pool;
  lines.push(`decision: ${report.decision.label}: ${decisionReason(report.decision)}`);
  if (pool) lines.push(`pool:     ${pool.name}: this lookup gets ${report.answer.reason}`);
  lines.push(`tcp_table reply: ${report.tcpTableReply}`);
  lines.push(`socketmap reply: ${report.socketmapReply}`);
  return lines.join("\n");
}

/**
 * `query`: looks each key up with real DNS and prints the explanation (or JSON); returns the
 * worst exit code: 0 found, 1 not found, 2 temporary failure or unusable configuration.
 *
 * @example
 * ```ts
 * const code = await runQuery({
 *   config: "/etc/postfix/postfix-mx-pattern-router.conf",
 *   matchMode: "any",
 *   dnsServers: ["127.0.0.1"],
 *   dnsTimeoutMs: 10_000,
 *   dnsTcp: false,
 *   json: false,
 *   keys: ["user@contoso.com"],
 * });
 * Deno.exit(code);
 * ```
 */
export async function runQuery(options: QueryOptions): Promise<number> {
  // Nothing to look up with: exit 2, as for a temporary failure.
  const unusable = (errors: string[]) => {
    for (const error of errors) console.error(`${PROGRAM}: ${error}`);
    return 2;
  };
  const rules = await loadRuleSet(options.config, { matchMode: options.matchMode });
  if (!rules.ok) return unusable(rules.error);
  const dnsServers = await loadDnsServers(options.dnsServers);
  if (!dnsServers.ok) return unusable(dnsServers.error);
  await using resolver = createResolver({
    servers: dnsServers.value,
    timeoutMs: options.dnsTimeoutMs,
    transport: options.dnsTcp ? "tcp" : "udp",
  });
  let exitCode = 0;
  const reports = [];
  for (const key of options.keys) {
    const report = await explainLookup({ key, ruleSet: rules.value.ruleSet, resolver });
    exitCode = Math.max(exitCode, report.exitCode);
    if (options.json) reports.push(report);
    else console.log(formatQueryReport(report) + "\n");
  }
  if (options.json) {
    console.log(JSON.stringify(
      reports.map(({ decision, answer, ...rest }) => ({
        ...rest,
        decision: {
          label: decision.label,
          result: decision.result,
          reason: decisionReason(decision),
        },
        answer: answer.result,
      })),
      null,
      2,
    ));
  }
  return exitCode;
}
