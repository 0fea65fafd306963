/**
 * `/regex/` rules, matched by RE2 (the `re2js` port): time linear in the name times the size of
 * the compiled rule, whatever the name. The recipient domain's owner chooses its MX names, so a
 * backtracking engine would let anyone stall the router (and Postfix behind it) with one crafted
 * MX record.
 *
 * RE2 has no backreferences, lookaround, atomic groups or possessive repeats; a rule using them is
 * refused with the reason. Bounded repeats expand into one copy of the repeated part each
 * (`[a-z]{0,253}` is over 500 instructions), so one rule may compile to at most
 * {@linkcode MAX_RULE_INSTRUCTIONS} instructions. A comparison visits each instruction at most
 * once per position of the name, so it costs at most instructions × (length + 1) steps; a lookup
 * stops comparing before its steps pass {@linkcode REGEX_STEP_BUDGET} and answers a temporary
 * failure instead (see `matchRules`), which bounds its worst case whatever the MX names.
 *
 * @module
 */

import { RE2JS, RE2JSSyntaxException } from "re2js";
import { err, ok, type Result } from "../common/result.ts";

/**
 * The most RE2 instructions one regex rule may compile to: a comparison with one 253-character
 * name then takes at most 254 × 256 = 65,024 steps, about 1 ms.
 */
export const MAX_RULE_INSTRUCTIONS = 256;

/**
 * The most regex steps (instructions × name positions) one lookup may take. Real MX names are
 * short (3 hosts of 30 characters leave room for over 1,600 instructions of rules), and 16
 * hostile 253-character names still leave room for rules of 39 instructions together.
 */
export const REGEX_STEP_BUDGET = 160_000;

/**
 * What a comparison costs beyond its instructions, in steps: re2js spends a fixed 200-470 ns
 * setting one up, so a thousand tiny rules against short names must be counted too.
 */
export const COMPARISON_STEPS = 32;

/**
 * The steps one comparison of a regex rule with a name is charged: each instruction visited at
 * most once per position of the name, plus the fixed cost of a comparison.
 *
 * @example
 * ```ts
 * regexSteps(24, 20); // 24 × 21 + 32 = 536
 * ```
 */
export function regexSteps(instructions: number, nameLength: number): number {
  return instructions * (nameLength + 1) + COMPARISON_STEPS;
}

/**
 * The time of {@linkcode REGEX_STEP_BUDGET} steps, in milliseconds: the worst lookup that
 * bench/regex_worst_case.ts found for the costliest rules the budget allows, rounded up.
 */
export const WORST_LOOKUP_MS = 4.5;

/** A compiled `/regex/` rule. */
export interface CompiledRegex {
  /** True when the regex matches anywhere in the name (unless it anchors), case-insensitively. */
  test: (host: string) => boolean;
  /** The size of the compiled RE2 program, which bounds the work per character of a name. */
  instructions: number;
}

/**
 * Compiles a rule's regex source, case-insensitive, or says why it cannot be used (for a
 * `FILE, line N: bad regular expression /SOURCE/: REASON` error).
 *
 * @example
 * ```ts
 * const compiled = compileRegex("^mx\\d+\\.mail\\.icloud\\.com$");
 * if (compiled.ok) compiled.value.test("mx01.mail.icloud.com"); // true
 * compileRegex("(a)\\1"); // { ok: false, error: "backreference \\1: RE2 has none ..." }
 * ```
 */
export function compileRegex(source: string): Result<CompiledRegex> {
  let regex: RE2JS;
  try {
    regex = RE2JS.compile(source, RE2JS.CASE_INSENSITIVE);
  } catch (error) {
    return err(whyRefused(error));
  }
  const instructions = regex.programSize();
  if (instructions > MAX_RULE_INSTRUCTIONS) {
    return err(
      `too large: it compiles to ${instructions} RE2 instructions, over the limit of ` +
        `${MAX_RULE_INSTRUCTIONS} per rule, which bounds the time of a lookup; a bounded ` +
        "repeat such as {0,253} costs one copy of what it repeats per count: use + or * " +
        "instead, or a suffix: or exact: rule",
    );
  }
  // A Matcher's search never uses RE2's lazy DFA, which builds a state per new input position
  // (up to 8 MB per rule, and milliseconds per name for a rule like [ab]*a[ab]{16}x); the
  // bit-state backtracker and the NFA it uses instead visit each instruction at most once per
  // position of the name.
  return ok({ test: (host: string) => regex.matcher(host).find(), instructions });
}

/** Features of backtracking engines that RE2 lacks, by what its parser reports. */
const UNSUPPORTED: { description: string; construct: RegExp; feature: string }[] = [
  { description: "invalid escape sequence", construct: /^\\[1-9]/, feature: "backreference" },
  { description: "invalid escape sequence", construct: /^\\k/, feature: "backreference" },
  {
    description: "invalid or unsupported Perl syntax",
    construct: /^\(\?[=!]/,
    feature: "lookahead",
  },
  { description: "invalid named capture", construct: /^\(\?<[=!]/, feature: "lookbehind" },
  {
    description: "invalid or unsupported Perl syntax",
    construct: /^\(\?>/,
    feature: "atomic group",
  },
  {
    description: "invalid nested repetition operator",
    construct: /^.*\+$/,
    feature: "possessive repeat",
  },
];

function whyRefused(error: unknown): string {
  if (!(error instanceof RE2JSSyntaxException)) {
    return error instanceof Error ? error.message : String(error);
  }
  const description = error.getDescription();
  // RE2JS puts the case-insensitive flag in front of the source; the rule has no such prefix.
  const where = (error.getPattern() ?? "").replace(/^\(\?i\)/, "");
  for (const { description: reported, construct, feature } of UNSUPPORTED) {
    const found = description === reported ? construct.exec(where) : null;
    if (found === null) continue;
    return `${feature} ${found[0]} is not supported: rules are matched by RE2, which runs in ` +
      "time linear in the name and so has no backtracking features; rewrite the pattern " +
      "without it";
  }
  return where === "" ? description : `${description}: ${where}`;
}
