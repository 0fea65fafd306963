/**
 * `/regex/` rules, matched by RE2 (the `re2js` port): time linear in the name times the size of
 * the compiled rule, whatever the name. The recipient domain's owner chooses its MX names, so a
 * backtracking engine would let anyone stall the router (and Postfix behind it) with one crafted
 * MX record.
 *
 * RE2 has no backreferences, lookaround, atomic groups or possessive repeats; a rule using them is
 * refused with the reason. Bounded repeats expand into one copy of the repeated part each
 * (`[a-z]{0,253}` is over 500 instructions), so the regular expressions of a file together may
 * compile to at most {@linkcode MAX_REGEX_INSTRUCTIONS} instructions: a lookup visits each
 * instruction at most once per position of each MX name, which bounds its worst case.
 *
 * @module
 */

import { RE2JS, RE2JSSyntaxException } from "re2js";

/**
 * The most RE2 instructions the regular expressions of one config file may compile to together.
 * A lookup matches up to 16 MX names of up to 253 characters against every regex rule, visiting
 * each instruction at most once per position of a name: at most 16 × 254 × 48 = 195,072 steps.
 */
export const MAX_REGEX_INSTRUCTIONS = 48;

/**
 * The time of those steps, in milliseconds: the worst lookup that bench/regex_worst_case.ts
 * found for the costliest rules the limit accepts, rounded up.
 */
export const WORST_LOOKUP_MS = 3.5;

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
 * if ("test" in compiled) compiled.test("mx01.mail.icloud.com"); // true
 * compileRegex("(a)\\1"); // { error: "backreference \\1: RE2 has none ..." }
 * ```
 */
export function compileRegex(source: string): CompiledRegex | { error: string } {
  let regex: RE2JS;
  try {
    regex = RE2JS.compile(source, RE2JS.CASE_INSENSITIVE);
  } catch (error) {
    return { error: whyRefused(error) };
  }
  const instructions = regex.programSize();
  if (instructions > MAX_REGEX_INSTRUCTIONS) {
    return {
      error: `too large: it compiles to ${instructions} RE2 instructions, over the limit of ` +
        `${MAX_REGEX_INSTRUCTIONS} for all regular expressions of the file together, which ` +
        "bounds the time of a lookup; a bounded repeat such as {0,253} costs one copy of what " +
        "it repeats per count: use + or * instead, or a suffix: or exact: rule",
    };
  }
  // A Matcher's search never uses RE2's lazy DFA, which builds a state per new input position
  // (up to 8 MB per rule, and milliseconds per name for a rule like [ab]*a[ab]{16}x); the
  // bit-state backtracker and the NFA it uses instead visit each instruction at most once per
  // position of the name.
  return { test: (host) => regex.matcher(host).find(), instructions };
}

/** One regex rule of a config file, as {@linkcode regexBudgetErrors} needs it. */
export interface RegexRule {
  line: number;
  kind: string;
  /** The regex source (for other kinds: ignored). */
  value: string;
}

/**
 * The error for the regex rule that takes the file's regular expressions over
 * {@linkcode MAX_REGEX_INSTRUCTIONS} together, if any (each rule alone is checked by
 * {@linkcode compileRegex}).
 *
 * @example
 * ```ts
 * regexBudgetErrors([{ line: 3, kind: "regex", value: "^mx\\d+\\.mail\\.icloud\\.com$" }]); // []
 * ```
 */
export function regexBudgetErrors(
  rules: readonly RegexRule[],
): { line: number; message: string }[] {
  const counted: { line: number; instructions: number }[] = [];
  let total = 0;
  for (const rule of rules) {
    if (rule.kind !== "regex") continue;
    const compiled = compileRegex(rule.value);
    if (!("test" in compiled)) continue; // refused on its own line already
    total += compiled.instructions;
    counted.push({ line: rule.line, instructions: compiled.instructions });
    if (total <= MAX_REGEX_INSTRUCTIONS) continue;
    const lines = counted.map((each) => `line ${each.line}: ${each.instructions}`).join(", ");
    return [{
      line: rule.line,
      message: `regular expressions over the limit: together they compile to ${total} RE2 ` +
        `instructions (${lines}), over the limit of ${MAX_REGEX_INSTRUCTIONS}, which bounds the ` +
        "time of a lookup; use suffix: or exact: rules where they do, or simplify the regexes",
    }];
  }
  return [];
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
