/**
 * Rule sets from rules-file text, for tests that need rules rather than the parser.
 *
 * @module
 */

import { formatConfigError, parseConfig } from "../../lib/routing/rules_file.ts";
import type { RuleSet } from "../../lib/routing/rules.ts";

/**
 * The rules of a rules-file text (read as `test.conf`); throws with the errors, file and line,
 * when it does not load.
 *
 * @example
 * ```ts
 * ruleSetOf("provider:microsoft365 relay:[o365.example]:587\n").mxRules.length; // 1
 * ```
 */
export function ruleSetOf(text: string): RuleSet {
  const parsed = parseConfig(text, "test.conf");
  if (!parsed.ok) throw new Error(parsed.error.map(formatConfigError).join("\n"));
  return parsed.value.ruleSet;
}
