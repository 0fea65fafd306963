/**
 * The config file: text in, rules or errors with line numbers out. Pure: the caller reads the
 * file, so tests and `check` use exactly what the server uses.
 *
 * Format (the original's, unchanged): one rule per line, `PATTERN whitespace RESULT`, the result
 * being the rest of the line; `#` comment lines and blank lines are ignored. New: a line
 * `pool:NAME WEIGHT RESULT | WEIGHT RESULT ...` defines a weighted relay pool, and a rule whose
 * result is `pool:NAME` shares its traffic over the members.
 *
 * @module
 */

import { errorMessage } from "./errors.ts";
import { regexHazard } from "./regex_safety.ts";
import { encodeTcpTable, MAX_TCP_TABLE_TEXT } from "./tcp_table.ts";
import { makeMatcher, type PatternKind, type Pool, type Rule, type RuleSet } from "./rules.ts";

/** One problem in a config file, Postfix style: where, what, and how to fix it. */
export interface ConfigError {
  file: string;
  /** 1-based line number, or 0 for the file as a whole. */
  line: number;
  message: string;
}

/** The outcome of parsing a config file. */
export type ConfigResult =
  | { ok: true; ruleSet: RuleSet }
  | { ok: false; errors: ConfigError[] };

const KIND_PREFIX = /^([a-z][a-z0-9_-]*):(.*)$/i;
const KNOWN_KINDS = 'known kinds are "suffix:", "exact:", "/regex/", or a plain substring';

/**
 * Parses config text into a rule set, or returns every error found (not just the first).
 *
 * @example
 * ```ts
 * const result = parseConfig("suffix:outlook.com relay:[o365.example]:587\n", "/etc/r.conf");
 * if (result.ok) console.log(result.ruleSet.rules.length); // 1
 * ```
 */
export function parseConfig(text: string, file: string): ConfigResult {
  const rules: Rule[] = [];
  const pools = new Map<string, Pool>();
  const errors: ConfigError[] = [];
  const lines = text.split("\n");
  for (let index = 0; index < lines.length; index++) {
    const trimmed = lines[index].trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const line = index + 1;
    if (POOL_LINE.test(trimmed)) {
      const pool = parsePoolLine(trimmed, line);
      if ("message" in pool) errors.push({ file, line, message: pool.message });
      else if (pools.has(pool.name)) {
        const first = pools.get(pool.name)?.line;
        errors.push({
          file,
          line,
          message: `pool "${pool.name}" defined twice (first on line ${first})`,
        });
      } else pools.set(pool.name, pool);
      continue;
    }
    const parsed = parseRuleLine(trimmed, line);
    if ("message" in parsed) errors.push({ file, line, message: parsed.message });
    else rules.push(parsed);
  }
  // Pools may be defined after the rules that use them: resolve names at the end.
  for (const rule of rules) {
    const name = POOL_RESULT.exec(rule.result)?.[1];
    if (name === undefined) continue;
    const pool = pools.get(name.toLowerCase());
    if (pool === undefined) {
      errors.push({
        file,
        line: rule.line,
        message:
          `unknown pool "${name}": define it with "pool:${name} WEIGHT RESULT | WEIGHT RESULT"`,
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
    return { ok: false, errors };
  }
  return { ok: true, ruleSet: { file, rules, pools } };
}

/** A result Postfix could only receive cut short is refused here, never truncated later. */
function resultTooLong(result: string): string | null {
  const length = encodeTcpTable(result).length;
  return length > MAX_TCP_TABLE_TEXT
    ? `result is ${length} bytes once encoded; a tcp_table reply holds at most ${MAX_TCP_TABLE_TEXT}`
    : null;
}

const POOL_LINE = /^pool:/i;
const POOL_RESULT = /^pool:([a-z0-9_.-]+)$/i;
const POOL_NAME = /^[a-z0-9_.-]+$/i;

/** `pool:NAME WEIGHT RESULT | WEIGHT RESULT ...`: a result never contains "|". */
function parsePoolLine(line: string, lineNumber: number): Pool | { message: string } {
  const split = line.search(/\s/);
  const name = (split < 0 ? line : line.slice(0, split)).slice("pool:".length).toLowerCase();
  if (!POOL_NAME.test(name)) {
    return { message: `bad pool name "${name}": use letters, digits, ".", "_" or "-"` };
  }
  const body = split < 0 ? "" : line.slice(split).trim();
  if (body === "") {
    return { message: `empty pool "${name}": list members as "WEIGHT RESULT | WEIGHT RESULT"` };
  }
  const members = [];
  for (const part of body.split("|")) {
    const member = /^\s*(\S+)\s+(\S.*?)\s*$/.exec(part);
    if (member === null) {
      return { message: `pool "${name}": member "${part.trim()}" needs "WEIGHT RESULT"` };
    }
    if (!/^[1-9]\d{0,5}$/.test(member[1])) {
      return {
        message: `pool "${name}": weight "${
          member[1]
        }" is not a positive whole number (1 to 999999)`,
      };
    }
    const tooLong = resultTooLong(member[2]);
    if (tooLong !== null) return { message: `pool "${name}": ${tooLong}` };
    members.push({
      result: member[2],
      weight: Number(member[1]),
      current: 0,
      picks: 0,
      answer: undefined,
    });
  }
  const totalWeight = members.reduce((sum, m) => sum + m.weight, 0);
  return { name, line: lineNumber, members, totalWeight };
}

function parseRuleLine(line: string, lineNumber: number): Rule | { message: string } {
  const split = line.search(/\s/);
  if (split < 0) {
    return {
      message: `missing result after pattern "${line}": expected "PATTERN RESULT", ` +
        'e.g. "suffix:outlook.com relay:[relay.example.com]:587"',
    };
  }
  const pattern = line.slice(0, split);
  const result = line.slice(split).trim();
  const tooLong = resultTooLong(result);
  if (tooLong !== null) return { message: tooLong };
  const kind = patternKind(pattern);
  if ("message" in kind) return kind;
  const hazard = kind.kind === "regex" ? regexHazard(kind.value) : null;
  if (hazard !== null) return { message: `unsafe regular expression ${pattern}: ${hazard}` };
  let test: (host: string) => boolean;
  try {
    test = makeMatcher(kind.kind, kind.value);
  } catch (error) {
    const why = errorMessage(error);
    return { message: `bad regular expression ${pattern}: ${why}` };
  }
  return {
    line: lineNumber,
    pattern,
    kind: kind.kind,
    value: kind.value,
    result,
    pool: null,
    matches: 0,
    replies: [],
    logTail: undefined,
    test,
  };
}

function patternKind(pattern: string): { kind: PatternKind; value: string } | { message: string } {
  if (pattern.startsWith("/")) {
    if (pattern.length < 3 || !pattern.endsWith("/")) {
      return {
        message: `bad regular expression ${pattern}: write it as /REGEX/ with no spaces ` +
          "(use \\s or [ ] for a space); it is always case-insensitive",
      };
    }
    return { kind: "regex", value: pattern.slice(1, -1) };
  }
  const prefixed = KIND_PREFIX.exec(pattern);
  if (prefixed) {
    const kind = prefixed[1].toLowerCase();
    const value = prefixed[2].toLowerCase().replace(/\.$/, "");
    if (kind !== "suffix" && kind !== "exact") {
      return { message: `unknown pattern kind "${prefixed[1]}:" in "${pattern}": ${KNOWN_KINDS}` };
    }
    if (value === "") return { message: `empty ${kind}: pattern: name a host after "${kind}:"` };
    return { kind, value };
  }
  return { kind: "substring", value: pattern.toLowerCase() };
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
