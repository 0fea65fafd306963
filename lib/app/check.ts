/**
 * `check`: validates a rules file and describes it for a person, like `postfix check` or
 * `nginx -t`.
 *
 * @module
 */

import type { CheckOptions } from "./cli.ts";
import { PROVIDER_CATALOG, providerById } from "../routing/providers.ts";
import { errorMessage, plural } from "../common/errors.ts";
import { err, ok, type Result } from "../common/result.ts";
import {
  COMPARISON_STEPS,
  MAX_RULE_INSTRUCTIONS,
  REGEX_STEP_BUDGET,
  WORST_LOOKUP_MS,
} from "../routing/regex.ts";
import { MAX_MX_HOSTS } from "../dns/answer.ts";

/** The longest host name DNS allows, in characters. */
const MAX_NAME_LENGTH = 253;
import type { RuleSet } from "../routing/rules.ts";
import { loadRuleSet } from "./load.ts";

/** What `check` prints for a valid file. */
export interface CheckReport {
  /** One line per rule: line number, kind, pattern, result. */
  rules: string[];
  /** One line per pool member: pool, weight, result. */
  pools: string[];
  /** Advice that does not make the file invalid. */
  warnings: string[];
}

/**
 * Lists the rules and warns about plain substring patterns, which a lookalike MX such as
 * `protection.outlook.com.attacker.example` also matches.
 *
 * @example
 * ```ts
 * import type { RuleSet } from "../routing/rules.ts";
 *
 * declare const ruleSet: RuleSet;
 * describeRuleSet(ruleSet).warnings; // ["/etc/r.conf, line 3: ... use suffix:outlook.com"]
 * ```
 */
export function describeRuleSet(ruleSet: RuleSet): CheckReport {
  const rules: string[] = [];
  const warnings: string[] = [];
  for (const rule of ruleSet.rules) {
    const shown = rule.kind === "regex"
      ? `/${rule.value}/`
      : rule.kind === "provider"
      ? `${rule.value} (${providerById(rule.value)?.suffixes.join(", ")})`
      : rule.value;
    const mode = rule.kind === "domain" || rule.mode === "any" ? "" : ` [${rule.mode}]`;
    rules.push(`line ${rule.line}: ${rule.kind.padEnd(9)} ${shown}${mode} -> ${rule.result}`);
    if (rule.kind === "substring") {
      const suggestion = rule.value.replace(/^\.+/, "");
      warnings.push(
        `${ruleSet.file}, line ${rule.line}: warning: substring pattern "${rule.pattern}" also ` +
          `matches lookalike MX hosts such as ${suggestion}.attacker.example; ` +
          `use "suffix:${suggestion}" to match that domain and its subdomains only`,
      );
    }
  }
  warnings.push(...partialProviderWarnings(ruleSet));
  const pools: string[] = [];
  for (const pool of ruleSet.pools.values()) {
    pools.push(`pool ${pool.name} (line ${pool.line}), total weight ${pool.totalWeight}:`);
    for (const member of pool.members) {
      const share = Math.round((member.weight / pool.totalWeight) * 100);
      pools.push(`  weight ${member.weight} (${share} %) -> ${member.result}`);
    }
  }
  return { rules, pools, warnings };
}

/**
 * Warns about a rule that catches the MX hosts of a catalog provider under some of its suffixes
 * but leaves others to another route, such as `suffix:mail.protection.outlook.com` without
 * `mx.microsoft`: when the provider moves a domain to its other MX names, its mail silently
 * leaves by the default route. A suffix counts as covered when a rule with the same result
 * matches a host under it.
 *
 * @example
 * ```ts
 * import type { RuleSet } from "../routing/rules.ts";
 *
 * declare const ruleSet: RuleSet;
 * partialProviderWarnings(ruleSet);
 * // ["/etc/r.conf, line 2: warning: ... use provider:microsoft365"]
 * ```
 */
export function partialProviderWarnings(ruleSet: RuleSet): string[] {
  const warnings: string[] = [];
  const sample = (suffix: string) => `mx-1.${suffix}`;
  for (const rule of ruleSet.mxRules) {
    if (rule.kind === "provider") continue;
    for (const provider of PROVIDER_CATALOG.providers) {
      const caught = provider.suffixes.filter((suffix) => rule.test(sample(suffix)));
      if (caught.length === 0) continue;
      const missed = provider.suffixes.filter((suffix) =>
        !ruleSet.mxRules.some((other) => other.result === rule.result && other.test(sample(suffix)))
      );
      if (missed.length === 0) continue;
      warnings.push(
        `${ruleSet.file}, line ${rule.line}: warning: "${rule.pattern}" catches ${provider.name} ` +
          `MX hosts under ${caught.join(", ")} but not under ${missed.join(", ")}, which ` +
          `${provider.name} also uses; use "provider:${provider.id}" to cover them all`,
      );
    }
  }
  return warnings;
}

/**
 * The transport of a Postfix result (`relay` of `relay:[r.example]:587`), or null when it names
 * none (`:nexthop` keeps the default transport; `DUNNO` answers "not found").
 */
function transportOf(result: string): string | null {
  if (/^dunno$/i.test(result)) return null;
  const colon = result.indexOf(":");
  const transport = (colon < 0 ? result : result.slice(0, colon)).trim();
  return transport === "" ? null : transport;
}

/**
 * Warns about each result whose transport is not a service of Postfix's master.cf, such as
 * `realy:[r.example]:587` typed for `relay:`: Postfix would defer that mail.
 *
 * @example
 * ```ts
 * import type { RuleSet } from "../routing/rules.ts";
 *
 * declare const ruleSet: RuleSet;
 * transportWarnings(ruleSet, new Set(["smtp", "relay"])); // ["/etc/r.conf, line 2: warning: ..."]
 * ```
 */
export function transportWarnings(ruleSet: RuleSet, services: ReadonlySet<string>): string[] {
  const warnings: string[] = [];
  const results = [
    ...ruleSet.rules.filter((rule) => rule.pool === null)
      .map((rule) => ({ line: rule.line, result: rule.result })),
    ...[...ruleSet.pools.values()].flatMap((pool) =>
      pool.members.map((member) => ({ line: pool.line, result: member.result }))
    ),
  ].sort((a, b) => a.line - b.line);
  for (const { line, result } of results) {
    const transport = transportOf(result);
    if (transport === null || services.has(transport)) continue;
    warnings.push(
      `${ruleSet.file}, line ${line}: warning: transport "${transport}" of "${result}" is not ` +
        "a service in Postfix's master.cf (postconf -M), so Postfix would defer that mail; " +
        "correct the name or add the service",
    );
  }
  return warnings;
}

/**
 * The service names of Postfix's master.cf, from `postconf -M` (which honours MAIL_CONFIG), or
 * why they cannot be had.
 */
async function masterServices(): Promise<Result<Set<string>>> {
  let output;
  try {
    output = await new Deno.Command("postconf", { args: ["-M"], stdin: "null" }).output();
  } catch (error) {
    return err(
      error instanceof Deno.errors.NotFound
        ? "postconf is not installed here; run check on the mail host"
        : `cannot run postconf: ${errorMessage(error)}`,
    );
  }
  if (!output.success) {
    const said = new TextDecoder().decode(output.stderr).trim().split("\n")[0];
    return err(`postconf -M failed: ${said}`);
  }
  const services = new Set<string>();
  for (const line of new TextDecoder().decode(output.stdout).split("\n")) {
    const name = line.trim().split(/\s+/)[0];
    if (name !== "") services.add(name);
  }
  return ok(services);
}

/**
 * `check`: prints the rules (and pools, and the size of each regex) of a valid file
 * and returns 0, or prints every error with file and line and returns 1. Warnings are printed
 * and, with `--strict`, return 1 too.
 *
 * @example
 * ```ts
 * const code = await runCheck({
 *   config: "/etc/postfix/postfix-mx-pattern-router.conf",
 *   strict: false,
 *   matchMode: "any",
 * });
 * Deno.exit(code);
 * ```
 */
export async function runCheck(options: CheckOptions): Promise<number> {
  const loaded = await loadRuleSet(options.config, { matchMode: options.matchMode });
  if (!loaded.ok) {
    for (const error of loaded.error) console.error(error);
    console.error(`${options.config}: invalid; the router would refuse to start`);
    return 1;
  }
  const { ruleSet } = loaded.value;
  const report = describeRuleSet(ruleSet);
  const services = await masterServices();
  const warnings = [
    ...loaded.value.warnings,
    ...report.warnings,
    ...(services.ok ? transportWarnings(ruleSet, services.value) : []),
  ].sort((a, b) => lineOf(a) - lineOf(b));
  console.log(`${options.config}: ${plural(ruleSet.rules.length, "rule")}`);
  for (const line of report.rules) console.log(`  ${line}`);
  for (const line of describeRegexes(ruleSet)) console.log(`  ${line}`);
  if (report.pools.length > 0) {
    console.log(`${options.config}: ${plural(ruleSet.pools.size, "pool")}`);
  }
  for (const line of report.pools) console.log(`  ${line}`);
  for (const warning of warnings) console.error(warning);
  if (!services.ok) {
    console.log(
      `${options.config}: result transports not checked against master.cf: ${services.error}`,
    );
  }
  if (options.strict && warnings.length > 0) {
    console.error(
      `${options.config}: ${plural(warnings.length, "warning")}; invalid with --strict`,
    );
    return 1;
  }
  console.log(`${options.config}: valid`);
  return 0;
}

/** The line number of a `FILE, line N: ...` message; 0 for the file as a whole. */
function lineOf(message: string): number {
  return Number(/, line (\d+): /.exec(message)?.[1] ?? 0);
}

/**
 * The compiled size of each regex rule, and how long the MX names of a domain may be in all
 * before its lookup would pass the regex budget (nothing when the file has no regex rule).
 *
 * @example
 * ```ts
 * import type { RuleSet } from "../routing/rules.ts";
 *
 * declare const ruleSet: RuleSet;
 * describeRegexes(ruleSet);
 * // ["line 4: regex compiles to 8 RE2 instructions (limit 256)", "regex rules: 8 ..."]
 * ```
 */
export function describeRegexes(ruleSet: RuleSet): string[] {
  const regexes = ruleSet.mxRules.filter((rule) => rule.kind === "regex");
  if (regexes.length === 0) return [];
  const lines = regexes.map((rule) =>
    `line ${rule.line}: regex compiles to ${rule.cost} RE2 instructions ` +
    `(limit ${MAX_RULE_INSTRUCTIONS})`
  );
  const total = regexes.reduce((sum, rule) => sum + rule.cost, 0);
  // The longest names that 16 MX hosts may each have and still be compared with every rule.
  const perHost = (REGEX_STEP_BUDGET / MAX_MX_HOSTS - COMPARISON_STEPS * regexes.length) / total;
  const longest = Math.floor(perHost) - 1;
  lines.push(
    `regex rules: ${total} RE2 instructions together; ` +
      (longest >= MAX_NAME_LENGTH
        ? `every MX set is compared in full (even ${MAX_MX_HOSTS} names of ${MAX_NAME_LENGTH} ` +
          `characters), in at most about ${WORST_LOOKUP_MS} ms`
        : `${MAX_MX_HOSTS} MX names of up to ${Math.max(0, longest)} characters each are ` +
          `compared in full (real ones have tens); a longer set answers 400, after at most ` +
          `about ${WORST_LOOKUP_MS} ms`),
  );
  return lines;
}
