/**
 * `check`: validates a rules file and describes it for a person, like `postfix check` or
 * `nginx -t`.
 *
 * @module
 */

import type { CheckOptions } from "./cli.ts";
import { worstMatchMs } from "./regex_safety.ts";
import type { Rule, RuleSet } from "./rules.ts";
import { loadRuleSet } from "./setup.ts";

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
 * describeRuleSet(ruleSet).warnings; // ["/etc/r.conf, line 3: ... use suffix:outlook.com"]
 * ```
 */
export function describeRuleSet(ruleSet: RuleSet): CheckReport {
  const rules: string[] = [];
  const warnings: string[] = [];
  for (const rule of ruleSet.rules) {
    const shown = rule.kind === "regex" ? `/${rule.value}/` : rule.value;
    rules.push(`line ${rule.line}: ${rule.kind.padEnd(9)} ${shown} -> ${rule.result}`);
    if (rule.kind === "substring") {
      const suggestion = rule.value.replace(/^\.+/, "");
      warnings.push(
        `${ruleSet.file}, line ${rule.line}: warning: substring pattern "${rule.pattern}" also ` +
          `matches lookalike MX hosts such as ${suggestion}.attacker.example; ` +
          `use "suffix:${suggestion}" to match that domain and its subdomains only`,
      );
    }
  }
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
 * `check`: prints the rules (and pools, and each regex's measured worst case) of a valid file
 * and returns 0, or prints every error with file and line and returns 1.
 */
export async function runCheck(options: CheckOptions): Promise<number> {
  const rules = await loadRuleSet(options.config);
  if (!rules.ok) {
    for (const error of rules.errors) console.error(error);
    console.error(`${options.config}: invalid; the router would refuse to start`);
    return 1;
  }
  const report = describeRuleSet(rules.value);
  console.log(`${options.config}: ${rules.value.rules.length} rules`);
  for (const line of report.rules) console.log(`  ${line}`);
  for (const { rule, worstMs } of regexTimings(rules.value)) {
    console.log(
      `  line ${rule.line}: regex worst case ${worstMs.toFixed(3)} ms on a 253-character name`,
    );
  }
  if (report.pools.length > 0) console.log(`${options.config}: ${rules.value.pools.size} pools`);
  for (const line of report.pools) console.log(`  ${line}`);
  for (const warning of report.warnings) console.error(warning);
  console.log(`${options.config}: valid`);
  return 0;
}

/** The measured worst-case match time of each regex rule on hostile 253-character names. */
function regexTimings(ruleSet: RuleSet): { rule: Rule; worstMs: number }[] {
  return ruleSet.rules.filter((rule) => rule.kind === "regex").map((rule) => ({
    rule,
    worstMs: worstMatchMs(new RegExp(rule.value, "i")),
  }));
}
