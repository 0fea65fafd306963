/**
 * The lookup log: one line per lookup (at info for matches, debug for the rest), written
 * straight to the stderr sink, one warning per DNS failure, bounded per domain and per minute,
 * and the text of a decision that changed. The text that depends only on a rule or an MX set is made once and kept here, keyed
 * by that rule or set, so the domain model carries no log text.
 *
 * @module
 */

import { escapeControl, log, type StderrSink } from "../common/log.ts";
import {
  type Decision,
  type DecisionChange,
  type DecisionLabel,
  elapsedMs,
  type LookupObserver,
  type LookupReport,
} from "../routing/router.ts";
import type { Rule } from "../routing/rules.ts";
import { tcpTableCode } from "../server/tcp_table.ts";

/** Formats the reply a decision gives, as Postfix would see it in tcp_table terms; escaped. */
function replyText(answer: Decision): string {
  const code = tcpTableCode(answer);
  const text = code === 200 ? answer.result ?? "" : code === 400 ? answer.reason : "NO RESULT";
  return `${code} ${escapeControl(text)}`;
}

/**
 * The MX hosts as logged, escaped, by the MX set (which a decision shares with its cached DNS
 * answer): made once per set, so 100,000 cached domains log without re-joining their hosts.
 */
const hostsTexts = new WeakMap<readonly string[], string>();

/** The MX hosts as logged, escaped: "-" for none. */
function hostsText(decision: Decision): string {
  const hosts = decision.hosts;
  if (hosts.length === 0) return "-";
  let text = hostsTexts.get(hosts);
  if (text === undefined) {
    text = escapeControl(hosts.length === 1 ? hosts[0] : hosts.join(","));
    hostsTexts.set(hosts, text);
  }
  return text;
}

/** The end of the log line of a lookup a rule answers itself, made on first use. */
const ruleTails = new WeakMap<Rule, string>();

/** The part of a lookup's log line that depends only on its decision and answer; escaped. */
function decisionText(decision: Decision, answer: Decision): string {
  const mx = hostsText(decision);
  const rule = decision.rule;
  if (rule === null) {
    return `mx=${mx} reply="${replyText(answer)}" (${escapeControl(decision.reason)})`;
  }
  // Fixed per rule unless a pool picks the answer: kept per rule.
  let tail = answer === decision ? ruleTails.get(rule) : undefined;
  if (tail === undefined) {
    const pool = answer === decision ? "" : ` ${escapeControl(answer.reason)}`;
    tail = ` rule=line ${rule.line} ${escapeControl(rule.pattern)}${pool} reply="${
      replyText(answer)
    }"`;
    if (answer === decision) ruleTails.set(rule, tail);
  }
  // The matched host is one of the hosts: escaped already when it is the only one.
  const matched = decision.hosts.length === 1 ? mx : escapeControl(decision.matchedHost ?? "-");
  return `mx=${mx} matched=${matched}${tail}`;
}

/** Options of {@linkcode lookupLogger}. */
export interface LookupLoggerOptions {
  sink: StderrSink;
  /** Put before "lookup" on every line, e.g. "dry-run ". */
  modeTag: string;
  /**
   * Also given the temporary failures it wants (see {@linkcode failureLogger}): fed from this
   * observer rather than beside it, so a hit costs one observer's `wants`, not two.
   */
  failures?: LookupObserver;
}

/**
 * A lookup observer that logs one line per lookup: matches at info, everything else at debug.
 * It builds nothing when the level is off.
 *
 * The levels come from LogTape's configuration, but the lines go straight to the sink: LogTape
 * costs about 0.5 µs a record (3.3 µs with a tagged template), a twentieth of a whole cache hit,
 * and this line is written for most lookups.
 *
 * @example
 * ```ts
 * import type { StderrSink } from "../common/log.ts";
 * import type { MxCache } from "../routing/cache.ts";
 * import { type Decision, Router } from "../routing/router.ts";
 * import type { RuleSet } from "../routing/rules.ts";
 *
 * declare const sink: StderrSink;
 * declare const cache: MxCache<Decision>;
 * declare const ruleSet: RuleSet;
 * const failures = failureLogger({ sink, failureTtl: 10 });
 * const observer = lookupLogger({ sink, modeTag: "", failures });
 * const router = new Router({ cache, ruleSet, observer });
 * ```
 */
export function lookupLogger(options: LookupLoggerOptions): LookupObserver {
  const { sink, modeTag, failures } = options;
  const info = log.isEnabledFor("info");
  const debug = log.isEnabledFor("debug");
  const tempfail = debug || (failures?.wants("tempfail") ?? false);
  return {
    wants: (label: DecisionLabel) =>
      label === "match" ? info : label === "tempfail" ? tempfail : debug,
    report(report: LookupReport) {
      const { decision, answer } = report;
      if (decision.label === "tempfail" && failures?.wants("tempfail")) failures.report(report);
      if (!(decision.label === "match" ? info : debug)) return;
      const detail = decisionText(decision, answer);
      // A lookup answered at once is not timed: its constant text, not a new string per hit.
      const ms = report.startedAt === 0 ? "0.00" : elapsedMs(report).toFixed(2);
      // The domain is a valid DNS name (checked before it was looked up) or absent.
      const text = `${modeTag}lookup ${escapeControl(report.key)} domain=${
        report.domain ?? "-"
      } ${detail} source=${report.source} ms=${ms}`;
      sink.appendLine(decision.label === "match" ? "info" : "debug", text, Date.now());
    },
  };
}

/**
 * The log line of a cached domain whose decision changed: where it routed and routes (as the
 * decision-change metric labels them), then what it answered and answers, by which rule line and
 * which MX hosts.
 *
 * @example
 * ```ts
 * import type { DecisionChange } from "../routing/router.ts";
 *
 * declare const change: DecisionChange;
 * decisionChangeText(change);
 * // "domain contoso.com: google -> microsoft365 (was relay:[g]:587 by line 1, MX aspmx.l.google.com;
 * //  now relay:[m]:587 by line 2, MX contoso-com.mail.protection.outlook.com)"
 * ```
 */
export function decisionChangeText(change: DecisionChange): string {
  const { domain, previous, next, from, to } = change;
  return `domain ${domain}: ${from} -> ${to} (was ${decisionSide(previous)}; now ${
    decisionSide(next)
  })`;
}

/** What a decision answers, by which rule, from which MX hosts; escaped. */
function decisionSide(decision: Decision): string {
  const rule = decision.rule;
  const answer = decision.label === "match"
    ? `${escapeControl(decision.result ?? "")}${rule === null ? "" : ` by line ${rule.line}`}`
    : rule !== null
    ? `not found by line ${rule.line} (DUNNO)`
    : `not found (${escapeControl(decision.reason)})`;
  return `${answer}, ${decision.hosts.length === 0 ? "no MX host" : `MX ${hostsText(decision)}`}`;
}

/** Failure lines a minute, across all domains, unless told otherwise. */
const FAILURE_LINES_PER_MINUTE = 60;
/** Domains remembered as just logged, at most: bounds memory whatever --failure-ttl is. */
const FAILURE_DOMAINS_REMEMBERED = 10_000;
const MINUTE_MS = 60_000;

/** Options of {@linkcode failureLogger}. */
export interface FailureLoggerOptions {
  sink: StderrSink;
  /** --failure-ttl in seconds: each domain's failure is logged at most once this long. */
  failureTtl: number;
  /** --dry-run: Postfix was answered "not found", not `400`. */
  dryRun?: boolean;
  /** The most failure lines a minute across all domains; default 60. */
  perMinute?: number;
  /** The most domains remembered as logged; default 10,000. */
  maxDomains?: number;
  /** Monotonic milliseconds; injected so tests control time. Default `performance.now`. */
  now?: () => number;
  /** Calls `callback` in `ms` milliseconds; injected for tests. Default an unref'd timer. */
  schedule?: (callback: () => void, ms: number) => void;
}

function unrefTimeout(callback: () => void, ms: number): void {
  Deno.unrefTimer(setTimeout(callback, ms));
}

/**
 * A lookup observer that logs temporary failures (the lookups answered `400` because DNS
 * failed) at warning, so the default level shows them: the domain and the reason, which names
 * the server. Each domain at most once per `failureTtl` (its failure is cached that long, so
 * repeats say nothing new), and at most `perMinute` lines a minute in all: past that, failures are
 * counted, and one line a minute says how many were not logged. Wants nothing when warnings are
 * off (-q).
 *
 * @example
 * ```ts
 * import { createStderrSink } from "../common/log.ts";
 *
 * const sink = createStderrSink({ journal: Deno.env.has("JOURNAL_STREAM") });
 * const failures = failureLogger({ sink, failureTtl: 10 });
 * const observer = lookupLogger({ sink, modeTag: "", failures });
 * ```
 */
export function failureLogger(options: FailureLoggerOptions): LookupObserver {
  const { sink } = options;
  const ttlMs = options.failureTtl * 1000;
  const perMinute = options.perMinute ?? FAILURE_LINES_PER_MINUTE;
  const maxDomains = options.maxDomains ?? FAILURE_DOMAINS_REMEMBERED;
  const now = options.now ?? (() => performance.now());
  const schedule = options.schedule ?? unrefTimeout;
  const outcome = options.dryRun ? "answered not found (dry run)" : "answered 400: Postfix defers";
  const enabled = log.isEnabledFor("warning");
  // Domain → when its failure was logged, oldest first (a domain is only ever added anew).
  const logged = new Map<string, number>();
  let minuteStart = now();
  let minute = 0;
  let linesThisMinute = 0;
  let suppressed = 0;

  const startMinute = (at: number) => {
    if (suppressed > 0) {
      const text = `DNS failures: ${suppressed} more not logged in the last minute ` +
        `(at most ${perMinute} lines a minute)`;
      sink.appendLine("warning", text, Date.now());
    }
    minuteStart = at;
    minute++;
    linesThisMinute = 0;
    suppressed = 0;
  };
  const suppress = (at: number) => {
    if (suppressed++ > 0) return;
    // The count is written when the minute ends, whether or not another failure comes.
    const current = minute;
    schedule(() => {
      if (minute === current) startMinute(now());
    }, minuteStart + MINUTE_MS - at);
  };

  return {
    wants: (label: DecisionLabel) => enabled && label === "tempfail",
    report(report: LookupReport) {
      const domain = report.domain;
      if (report.decision.label !== "tempfail" || domain === null) return;
      const at = now();
      for (const [name, loggedAt] of logged) {
        if (at - loggedAt < ttlMs) break;
        logged.delete(name);
      }
      if (logged.has(domain)) return;
      if (at - minuteStart >= MINUTE_MS) startMinute(at);
      if (linesThisMinute >= perMinute) {
        suppress(at);
        return;
      }
      linesThisMinute++;
      logged.set(domain, at);
      if (logged.size > maxDomains) logged.delete(logged.keys().next().value!);
      sink.appendLine(
        "warning",
        `DNS failure for ${domain}: ${escapeControl(report.decision.reason)}; ${outcome}`,
        Date.now(),
      );
    },
  };
}
