/**
 * The config file: text in, rules or errors with line numbers out. Pure: the caller reads the
 * file, so tests and `check` use exactly what the server uses.
 *
 * Format (the original's, unchanged): one rule per line, `PATTERN whitespace RESULT`, the result
 * being the rest of the line; `#` comment lines and blank lines are ignored. New: a line
 * `pool:NAME WEIGHT RESULT | WEIGHT RESULT ...` defines a weighted relay pool, and a rule whose
 * result is `pool:NAME` shares its traffic over the members; `provider:ID` matches the MX names of
 * a provider of the built-in catalog; `domain:NAME` and `domain:.NAME` rules match the recipient
 * domain before DNS; the result `DUNNO` answers "not found"; a pattern may start with a match
 * mode, `any:`, `primary:` or `all:` (which MX hosts decide).
 *
 * Whatever the original accepted still loads, with a warning where it cannot do what the admin
 * meant (a line without result, an unknown `word:` prefix, a missing pool, a duplicate pattern):
 * a router that refuses to start makes Postfix defer all mail.
 *
 * @module
 */

import { domainToASCII } from "node:url";
import { err, ok, type Result } from "../common/result.ts";
import { compileRegex, REGEX_STEP_BUDGET, regexSteps } from "./regex.ts";
import { PROVIDER_IDS } from "./providers.ts";
import {
  makeMatcher,
  type MatchMode,
  type PatternKind,
  type Pool,
  type Rule,
  type RuleSet,
} from "./rules.ts";

/** One problem in a config file, Postfix style: where, what, and how to fix it. */
export interface ConfigError {
  file: string;
  /** 1-based line number, or 0 for the file as a whole. */
  line: number;
  message: string;
}

/** Options of {@linkcode parseConfig}. */
export interface ParseOptions {
  /** The match mode of rules that name none (`--match-mode`); default `any`. */
  matchMode?: MatchMode;
}

/**
 * A config file that loads: its rules, and the warnings about lines that load but may not do
 * what was meant.
 */
export interface ParsedConfig {
  ruleSet: RuleSet;
  warnings: ConfigError[];
}

const KIND_PREFIX = /^([a-z][a-z0-9_-]*):(.*)$/i;
/** An optional match mode in front of a pattern: `primary:provider:google`. */
const MODE_PREFIX = /^(any|primary|all):(.+)$/i;
const KNOWN_KINDS = 'known kinds are "suffix:", "exact:", "provider:", "domain:", "/regex/", ' +
  "or a plain substring";
/** The characters of host names (underscore included: it occurs in real DNS names). */
const HOST_CHARACTERS = /^[a-z0-9._-]+$/;
/** The result that answers "not found", as in Postfix's access(5). */
const NOT_FOUND_RESULT = /^dunno$/i;
const BYTE_ORDER_MARK = "\uFEFF";

/**
 * Parses config text into a rule set with its warnings, or returns every error found (not just
 * the first) that keeps the file from loading.
 *
 * @example
 * ```ts
 * const parsed = parseConfig("suffix:outlook.com relay:[o365.example]:587\n", "/etc/r.conf");
 * if (parsed.ok) console.log(parsed.value.ruleSet.rules.length); // 1
 * else console.error(parsed.error.map(formatConfigError).join("\n"));
 * ```
 */
export function parseConfig(
  text: string,
  file: string,
  options: ParseOptions = {},
): Result<ParsedConfig, ConfigError[]> {
  const defaultMode = options.matchMode ?? "any";
  const rules: Rule[] = [];
  const pools = new Map<string, Pool>();
  const errors: ConfigError[] = [];
  const warnings: ConfigError[] = [];
  // The same pattern twice: as the original, the last line's result at the first line's place.
  const byPattern = new Map<string, Rule>();
  if (text.startsWith(BYTE_ORDER_MARK)) {
    text = text.slice(1);
    warnings.push({
      file,
      line: 1,
      message: "warning: a UTF-8 byte order mark starts the file; it is ignored (the original " +
        "kept it on the first pattern, which then never matched); save the file without it",
    });
  }
  const lines = text.split("\n");
  for (let index = 0; index < lines.length; index++) {
    const trimmed = lines[index].trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const line = index + 1;
    const warn = (message: string) => warnings.push({ file, line, message: `warning: ${message}` });
    if (POOL_LINE.test(trimmed) && /\s/.test(trimmed)) {
      const parsed = parsePoolLine(trimmed, line);
      if (!parsed.ok) {
        // The original read the line as a rule that never matches (a host has no ":").
        warn(
          `${parsed.error}; the line is skipped, as the original never matched it, and rules ` +
            "naming the pool go to Postfix as they stand",
        );
        continue;
      }
      const pool = parsed.value;
      const first = pools.get(pool.name);
      if (first === undefined) pools.set(pool.name, pool);
      else {
        errors.push({
          file,
          line,
          message: `pool "${pool.name}" defined twice (first on line ${first.line})`,
        });
      }
      continue;
    }
    const parsed = parseRuleLine(trimmed, { lineNumber: line, defaultMode, warn });
    if (!parsed.ok) {
      errors.push({ file, line, message: parsed.error });
      continue;
    }
    const rule = parsed.value;
    if (rule === null) continue;
    const key = `${rule.mode}:${rule.kind}:${rule.value}`;
    const first = byPattern.get(key);
    if (first === undefined) {
      byPattern.set(key, rule);
      rules.push(rule);
      continue;
    }
    warn(
      `pattern "${rule.pattern}" is also on line ${first.line}; as the original did, this ` +
        `line's result "${rule.result}" is used at line ${first.line}'s place and the ` +
        `result there is ignored; remove one of the two lines`,
    );
    first.result = rule.result;
    first.answersNotFound = rule.answersNotFound;
  }
  // Pools may be defined after the rules that use them: resolve names at the end.
  for (const rule of rules) {
    const name = POOL_RESULT.exec(rule.result)?.[1];
    if (name === undefined) continue;
    const pool = pools.get(name.toLowerCase());
    if (pool === undefined) {
      warnings.push({
        file,
        line: rule.line,
        message: `warning: no pool "${name}" is defined, so the result "${rule.result}" goes ` +
          `to Postfix as it stands (a transport named "pool"), as the original did; define ` +
          `the pool with "pool:${name} WEIGHT RESULT | WEIGHT RESULT"`,
      });
    } else rule.pool = pool;
  }
  if (errors.length === 0 && rules.length === 0) {
    errors.push({
      file,
      line: 0,
      message: 'no rules: add at least one "PATTERN RESULT" line, e.g. ' +
        '"suffix:mail.protection.outlook.com relay:[office365-relay.example.com]:587"',
    });
  }
  if (errors.length > 0) {
    errors.sort((a, b) => a.line - b.line);
    return err(errors);
  }
  const regexes = rules.filter((rule) => rule.kind === "regex");
  const typical = TYPICAL_MX_NAMES * regexes.reduce(
    (sum, rule) => sum + regexSteps(rule.cost, TYPICAL_MX_NAME_LENGTH),
    0,
  );
  if (typical > REGEX_STEP_BUDGET) {
    warnings.push({
      file,
      line: 0,
      message: `warning: ${regexes.length} regex rules together are too costly: a domain with ` +
        `${TYPICAL_MX_NAMES} MX names of ${TYPICAL_MX_NAME_LENGTH} characters would take ` +
        `${typical} steps to compare, over the budget of ${REGEX_STEP_BUDGET} a lookup has, and ` +
        "answer 400 whenever no earlier rule matches; use suffix:, exact: or provider: rules",
    });
  }
  warnings.sort((a, b) => a.line - b.line);
  const mxRules = rules.filter((rule) => rule.kind !== "domain");
  const domainRules = new Map<string, Rule>();
  for (const rule of rules) if (rule.kind === "domain") domainRules.set(rule.value, rule);
  return ok({ ruleSet: { file, rules, mxRules, domainRules, pools }, warnings });
}

/** A large real MX set, for the regex budget warning: 10 names of 40 characters. */
const TYPICAL_MX_NAMES = 10;
const TYPICAL_MX_NAME_LENGTH = 40;

/**
 * The longest result a Postfix tcp_table reply can carry once percent-encoded: a line holds 4096
 * bytes with `200 ` and the newline (tcp_table(5)). The tcp_table codec has the same bound.
 */
export const MAX_RESULT_BYTES = 4091;

/**
 * The length of a result in tcp_table's encoding: space, controls, `%` and non-ASCII as %XX.
 *
 * @example
 * ```ts
 * encodedResultLength("relay:[r1.example]:587"); // 22
 * encodedResultLength("smtp:[mail.müller.example]"); // 31: ü is two bytes, each %XX
 * ```
 */
export function encodedResultLength(result: string): number {
  let length = 0;
  for (const byte of new TextEncoder().encode(result)) {
    length += byte <= 0x20 || byte >= 0x7f || byte === 0x25 ? 3 : 1;
  }
  return length;
}

/** A result Postfix could only receive cut short is refused here, never truncated later. */
function resultTooLong(result: string): string | null {
  const length = encodedResultLength(result);
  return length > MAX_RESULT_BYTES
    ? `result is ${length} bytes once encoded; a tcp_table reply holds at most ${MAX_RESULT_BYTES}`
    : null;
}

const POOL_LINE = /^pool:/i;
const POOL_RESULT = /^pool:([a-z0-9_.-]+)$/i;
const POOL_NAME = /^[a-z0-9_.-]+$/i;

/** `pool:NAME WEIGHT RESULT | WEIGHT RESULT ...`: a result never contains "|". */
function parsePoolLine(line: string, lineNumber: number): Result<Pool> {
  const split = line.search(/\s/);
  const name = (split < 0 ? line : line.slice(0, split)).slice("pool:".length).toLowerCase();
  if (!POOL_NAME.test(name)) {
    return err(`bad pool name "${name}": use letters, digits, ".", "_" or "-"`);
  }
  const body = split < 0 ? "" : line.slice(split).trim();
  if (body === "") {
    return err(`empty pool "${name}": list members as "WEIGHT RESULT | WEIGHT RESULT"`);
  }
  const members = [];
  for (const part of body.split("|")) {
    const member = /^\s*(\S+)\s+(\S.*?)\s*$/.exec(part);
    if (member === null) {
      return err(`pool "${name}": member "${part.trim()}" needs "WEIGHT RESULT"`);
    }
    if (!/^[1-9]\d{0,5}$/.test(member[1])) {
      return err(
        `pool "${name}": weight "${member[1]}" is not a positive whole number (1 to 999999)`,
      );
    }
    const tooLong = resultTooLong(member[2]);
    if (tooLong !== null) return err(`pool "${name}": ${tooLong}`);
    members.push({
      result: member[2],
      weight: Number(member[1]),
      current: 0,
      picks: 0,
    });
  }
  const totalWeight = members.reduce((sum, m) => sum + m.weight, 0);
  return ok({ name, line: lineNumber, members, totalWeight });
}

/**
 * One `PATTERN RESULT` line: a rule, null for a line skipped with a warning, or an error that
 * keeps the file from loading.
 */
function parseRuleLine(
  line: string,
  context: { lineNumber: number; defaultMode: MatchMode; warn: (message: string) => void },
): Result<Rule | null> {
  const { lineNumber, warn } = context;
  const split = line.search(/\s/);
  if (split < 0) {
    warn(
      `pattern "${line}" has no result, so the line is skipped, as the original did; ` +
        'write "PATTERN RESULT", e.g. "suffix:outlook.com relay:[relay.example.com]:587"',
    );
    return ok(null);
  }
  const pattern = line.slice(0, split);
  const result = line.slice(split).trim();
  const tooLong = resultTooLong(result);
  if (tooLong !== null) {
    // The original sent it whole, and Postfix could not read the reply: nothing to keep.
    warn(`${tooLong}; the line is skipped; shorten the result`);
    return ok(null);
  }
  if (/\s#/.test(result)) {
    warn(
      `result "${result}" holds " #": Postfix has no comments after a value, so all of it is ` +
        "the result; put comments on lines of their own",
    );
  }
  const moded = MODE_PREFIX.exec(pattern);
  const mode = moded === null ? context.defaultMode : moded[1].toLowerCase() as MatchMode;
  const written = patternKind(moded === null ? pattern : moded[2], warn);
  if (!written.ok) {
    // The original read such a line as a plain substring, which no host name contains.
    warn(`${written.error}; the line is skipped, as the original never matched it`);
    return ok(null);
  }
  const kind = written.value;
  if (moded !== null && kind.kind === "domain") {
    warn(`"${moded[1]}:" has no effect on a domain: rule, which matches no MX host; remove it`);
  }
  let test: (host: string) => boolean;
  let cost = 0;
  if (kind.kind === "regex") {
    const compiled = compileRegex(kind.value);
    if (!compiled.ok) return err(`bad regular expression ${pattern}: ${compiled.error}`);
    test = compiled.value.test;
    cost = compiled.value.instructions;
  } else {
    test = makeMatcher(kind.kind, kind.value);
  }
  return ok({
    line: lineNumber,
    pattern,
    kind: kind.kind,
    mode,
    cost,
    value: kind.value,
    result,
    answersNotFound: NOT_FOUND_RESULT.test(result),
    pool: null,
    matches: 0,
    matchesByProvider: new Map(),
    test,
  });
}

/** A pattern as read: its kind, and the value it compares (lower case, without the prefix). */
type ParsedPattern = { kind: PatternKind; value: string };

function patternKind(
  pattern: string,
  warn: (message: string) => void,
): Result<ParsedPattern> {
  if (pattern.startsWith("/")) {
    if (pattern.length < 3 || !pattern.endsWith("/")) {
      return err(
        `bad regular expression ${pattern}: write it as /REGEX/ with no spaces ` +
          "(use \\s or [ ] for a space); it is always case-insensitive",
      );
    }
    return ok({ kind: "regex", value: pattern.slice(1, -1) });
  }
  const prefixed = KIND_PREFIX.exec(pattern);
  const kind = prefixed?.[1].toLowerCase();
  if (kind === "provider" && prefixed !== null) {
    return ok(providerPattern(pattern, prefixed[2], warn));
  }
  if (prefixed === null || (kind !== "suffix" && kind !== "exact" && kind !== "domain")) {
    const value = pattern.toLowerCase();
    if (prefixed !== null) {
      warn(
        `unknown pattern kind "${prefixed[1]}:" in "${pattern}": read as a plain substring, as ` +
          `the original did, which no host name contains; ${KNOWN_KINDS}`,
      );
    } else if (!HOST_CHARACTERS.test(value)) {
      warn(neverMatches(pattern));
    }
    return ok({ kind: "substring", value });
  }
  let value = prefixed[2].toLowerCase().replace(/\.$/, "");
  if (kind === "domain") return domainPattern(pattern, value, warn);
  const bare = value.replace(/^(\*\.|\.)+/, "");
  if (bare !== value && bare !== "") {
    warn(
      `"${pattern}" is read as "${kind}:${bare}" (${
        kind === "suffix" ? "that name and every name under it" : "that name only"
      }); write it that way`,
    );
    value = bare;
  }
  if (value === "") return err(`empty ${kind}: pattern: name a host after "${kind}:"`);
  if (!HOST_CHARACTERS.test(value)) warn(neverMatches(pattern));
  return ok({ kind, value });
}

/**
 * `provider:ID`: the MX name suffixes of one provider of the built-in catalog. An unknown id is
 * read as the original read any `word:` prefix, a substring no host name contains, with a warning.
 */
function providerPattern(
  pattern: string,
  written: string,
  warn: (message: string) => void,
): ParsedPattern {
  const id = written.toLowerCase();
  if (PROVIDER_IDS.includes(id)) return { kind: "provider", value: id };
  warn(
    `unknown provider "${written}" in "${pattern}": it never matches; known providers are ` +
      `${PROVIDER_IDS.join(", ")} (see the providers command)`,
  );
  return { kind: "substring", value: pattern.toLowerCase() };
}

/** `domain:NAME` (that domain) or `domain:.NAME` (its subdomains), in A-label form. */
function domainPattern(
  pattern: string,
  written: string,
  warn: (message: string) => void,
): Result<ParsedPattern> {
  let value = written;
  if (value.startsWith("*.")) {
    value = value.slice(1);
    warn(`"${pattern}" is read as "domain:${value}" (every subdomain); write it that way`);
  }
  const subdomains = value.startsWith(".");
  const name = subdomains ? value.slice(1) : value;
  const ascii = HOST_CHARACTERS.test(name) ? name : domainToASCII(name);
  const labels = ascii.split(".");
  if (
    ascii === "" || ascii.length > 253 || !HOST_CHARACTERS.test(ascii) ||
    labels.some((label) => label === "" || label.length > 63)
  ) {
    return err(
      `bad domain pattern "${pattern}": write "domain:example.com" for that domain ` +
        'or "domain:.example.com" for its subdomains',
    );
  }
  return ok({ kind: "domain", value: subdomains ? `.${ascii}` : ascii });
}

function neverMatches(pattern: string): string {
  return `pattern "${pattern}" has characters no host name has (host names hold only letters, ` +
    "digits, dots, hyphens and underscores), so it never matches; correct or remove it";
}

/**
 * Formats an error the way Postfix does: `FILE, line N: MESSAGE` (or `FILE: MESSAGE`).
 *
 * @example
 * ```ts
 * formatConfigError({ file: "/etc/r.conf", line: 3, message: "missing result" });
 * // "/etc/r.conf, line 3: missing result"
 * ```
 */
export function formatConfigError(error: ConfigError): string {
  return error.line > 0
    ? `${error.file}, line ${error.line}: ${error.message}`
    : `${error.file}: ${error.message}`;
}
