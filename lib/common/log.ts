/**
 * Logging to stderr: one line per event, syslog priority prefixes when stderr is the systemd
 * journal, writes batched so a burst of lookups costs one write. Events go through LogTape, but
 * for the per-lookup lines, which go straight to the same sink (see {@linkcode lookupLogger}).
 *
 * @module
 */

import {
  configureSync,
  getLogger,
  type LogLevel,
  type LogRecord,
  resetSync,
  type Sink,
} from "@logtape/logtape";
import {
  type Decision,
  type DecisionLabel,
  elapsedMs,
  type LookupObserver,
  type LookupReport,
} from "../routing/router.ts";

/** The router's logger category. */
export const LOG_CATEGORY = ["postfix-mx-pattern-router"];

/** The router's logger. */
export const log = getLogger(LOG_CATEGORY);

/** How much to log: -v, default, -q. */
export type Verbosity = "debug" | "info" | "error";

const PRIORITY: Record<LogLevel, string> = {
  trace: "<7>",
  debug: "<7>",
  info: "<6>",
  warning: "<4>",
  error: "<3>",
  fatal: "<2>",
};

/**
 * Renders a record's message: strings as they are, values via String(), control characters
 * escaped (values carry config text, file names and errors).
 */
function renderMessage(record: LogRecord): string {
  let text = "";
  for (let i = 0; i < record.message.length; i++) {
    const part = record.message[i];
    text += i % 2 === 0 ? part as string : String(part);
  }
  return escapeControl(text);
}

// C0 controls, DEL and C1 controls: a newline would forge a log line, an escape sequence would
// drive the admin's terminal (C1 too, in a UTF-8 terminal).
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f\x7f-\x9f]/;
// deno-lint-ignore no-control-regex
const CONTROLS = /[\x00-\x1f\x7f-\x9f]/g;

function hexEscape(control: string): string {
  return `\\x${control.charCodeAt(0).toString(16).padStart(2, "0")}`;
}

/**
 * Text from outside (lookup keys, DNS reasons, config text) made safe for one log line: each
 * control character becomes `\xNN`, its code in hex, as in C and `systemd-escape`. Not `%XX`:
 * that is tcp_table's own encoding, so a logged `%0A` would read as the request's bytes on the
 * wire. Clean text is returned as it is, after one scan.
 *
 * @example
 * ```ts
 * escapeControl("a\nb@example.com"); // "a\\x0ab@example.com"
 * ```
 */
export function escapeControl(text: string): string {
  return CONTROL.test(text) ? text.replace(CONTROLS, hexEscape) : text;
}

/** Options of {@linkcode createStderrSink}. */
export interface StderrSinkOptions {
  /** True when stderr is the journal: prefix `<N>` priorities, no timestamp (journald adds it). */
  journal: boolean;
  /** Where the bytes go; stderr by default (tests capture). */
  write?: (bytes: Uint8Array) => void;
}

/** Pending log text is written at least this often... */
const FLUSH_INTERVAL_MS = 20;
/** ...or as soon as this many bytes are pending. */
const FLUSH_BYTES = 65536;
/**
 * Lines are joined into a string and encoded a few kilobytes at a time: about 100 ns a line
 * cheaper than encoding each line as it comes (200-character lookup lines), without the stall of
 * flattening and encoding 64 kB at once, which showed in the p99 of lookups.
 */
const ENCODE_CHARS = 4096;

/**
 * A LogTape sink for stderr that gathers lines and writes them every
 * {@linkcode FLUSH_INTERVAL_MS} (or {@linkcode FLUSH_BYTES}): one write per burst instead of a
 * system call per lookup, which would cost more than the lookup itself. Call `flush` before
 * exiting.
 *
 * @example
 * ```ts
 * const sink = createStderrSink({ journal: Deno.env.get("JOURNAL_STREAM") !== undefined });
 * ```
 */
export function createStderrSink(options: StderrSinkOptions): StderrSink {
  const encoder = new TextEncoder();
  const write = options.write ?? ((bytes: Uint8Array) => writeAllSync(Deno.stderr, bytes));
  const writeQuietly = (bytes: Uint8Array) => {
    try {
      write(bytes);
    } catch {
      // stderr is gone (closed pipe, journald restarting): losing log lines must not stop
      // the router answering Postfix.
    }
  };
  // Room for a full burst plus one encoded chunk (a UTF-16 unit takes at most 3 bytes).
  const buffer = new Uint8Array(FLUSH_BYTES + (ENCODE_CHARS + 4096) * 3);
  let used = 0;
  let pending = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  // Formatting a Date costs more than the rest of a line: reuse it within a millisecond.
  let stampMs = -1;
  let stamp = "";
  const encodePending = () => {
    if (pending.length === 0) return;
    const text = pending;
    pending = "";
    if (used + text.length * 3 > buffer.length) {
      writeQuietly(buffer.subarray(0, used));
      used = 0;
    }
    if (text.length * 3 > buffer.length) {
      // A line with a 100 kB socketmap key: encoded on its own, written whole.
      writeQuietly(encoder.encode(text));
      return;
    }
    used += encoder.encodeInto(text, buffer.subarray(used)).written;
  };
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    encodePending();
    if (used === 0) return;
    const bytes = buffer.subarray(0, used);
    used = 0;
    writeQuietly(bytes);
  };
  const appendLine = (level: LogLevel, text: string, timestamp: number) => {
    let line: string;
    if (options.journal) {
      line = `${PRIORITY[level]}${text}\n`;
    } else {
      if (timestamp !== stampMs) {
        stampMs = timestamp;
        stamp = new Date(stampMs).toISOString();
      }
      line = `${stamp} ${LEVEL_NAME[level]} ${text}\n`;
    }
    pending += line;
    if (pending.length >= ENCODE_CHARS) encodePending();
    if (used >= FLUSH_BYTES || level === "error" || level === "fatal") {
      flush();
    } else if (timer === undefined) {
      timer = setTimeout(flush, FLUSH_INTERVAL_MS);
      Deno.unrefTimer(timer);
    }
  };
  const sink = (record: LogRecord) =>
    appendLine(record.level, renderMessage(record), record.timestamp);
  return Object.assign(sink, { flush, appendLine });
}

/** The stderr sink: a LogTape sink, plus direct appends for the per-lookup lines. */
export type StderrSink = Sink & {
  /** Writes what is pending now. */
  flush(): void;
  /**
   * Adds one line, formatted like a record's; for the hot path, see {@linkcode lookupLogger}.
   * The text is written as given: pass every field from outside through {@linkcode escapeControl}.
   */
  appendLine(level: LogLevel, text: string, timestamp: number): void;
};

const LEVEL_NAME: Record<LogLevel, string> = {
  trace: "TRACE",
  debug: "DEBUG",
  info: "INFO",
  warning: "WARNING",
  error: "ERROR",
  fatal: "FATAL",
};

function writeAllSync(file: { writeSync(bytes: Uint8Array): number }, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.length) offset += file.writeSync(bytes.subarray(offset));
}

/** Options of {@linkcode setupLogging}. */
export interface LoggingOptions {
  verbosity: Verbosity;
  /** True when stderr is connected to the journal (JOURNAL_STREAM is set). */
  journal: boolean;
}

/**
 * Configures LogTape for the process; returns the sink (call its `flush` before exiting, and
 * give it to {@linkcode lookupLogger}).
 */
export function setupLogging(options: LoggingOptions): StderrSink {
  const sink = createStderrSink({ journal: options.journal });
  processSink = sink;
  resetSync();
  configureSync({
    sinks: { stderr: sink },
    loggers: [
      { category: LOG_CATEGORY, lowestLevel: options.verbosity, sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
  return sink;
}

/** The sink of {@linkcode setupLogging}: its pending lines go out before a fatal error's. */
let processSink: StderrSink | null = null;

/** Options of {@linkcode writeFatal}. */
export interface FatalOptions {
  /** Stderr is the journal; default: JOURNAL_STREAM is set. */
  journal?: boolean;
  /** Where the bytes go; stderr by default (tests capture). */
  write?: (bytes: Uint8Array) => void;
}

/**
 * Writes the lines of an error that stops the router, at once and escaped, as a person running
 * it by hand expects (`program: fatal: file, line N: ...`, no timestamp); under the journal each
 * with the error priority `<3>` like every other error line, so `journalctl -p err` shows why
 * the service did not start. Lines the sink holds are written first.
 *
 * @example
 * ```ts
 * writeFatal(["postfix-mx-pattern-router: fatal: rules.conf, line 3: missing result"]);
 * Deno.exit(1);
 * ```
 */
export function writeFatal(lines: readonly string[], options: FatalOptions = {}): void {
  processSink?.flush();
  const journal = options.journal ?? Deno.env.get("JOURNAL_STREAM") !== undefined;
  const prefix = journal ? PRIORITY.error : "";
  const text = lines.map((line) => `${prefix}${escapeControl(line)}\n`).join("");
  const bytes = new TextEncoder().encode(text);
  try {
    if (options.write !== undefined) options.write(bytes);
    else writeAllSync(Deno.stderr, bytes);
  } catch {
    // Stderr is gone: the exit status still tells.
  }
}

/** Formats the reply a decision gives, as Postfix would see it in tcp_table terms; escaped. */
function replyText(answer: Decision): string {
  if (answer.label === "match") return `200 ${escapeControl(answer.result ?? "")}`;
  if (answer.label === "tempfail") return `400 ${escapeControl(answer.reason)}`;
  return "500 NO RESULT";
}

/**
 * The MX hosts as logged, escaped: "-" for none. Made once per decision (and kept with a cached
 * one: for a single clean host, the host's own string); nothing else of the line is kept per
 * domain, so 100,000 cached domains do not hold 100,000 near-copies of the same text.
 */
function hostsText(decision: Decision): string {
  const hosts = decision.hosts;
  return decision.hostsText ??= escapeControl(
    hosts.length <= 1 ? hosts[0] ?? "-" : hosts.join(","),
  );
}

/** The part of a lookup's log line that depends only on its decision and answer; escaped. */
function decisionText(decision: Decision, answer: Decision): string {
  const mx = hostsText(decision);
  const rule = decision.rule;
  if (rule === null) {
    return `mx=${mx} reply="${replyText(answer)}" (${escapeControl(decision.reason)})`;
  }
  // Fixed per rule unless a pool picks the answer: kept on the rule, read without a lookup.
  let tail = answer === decision ? rule.logTail : undefined;
  if (tail === undefined) {
    const pool = answer === decision ? "" : ` ${escapeControl(answer.reason)}`;
    tail = ` rule=line ${rule.line} ${escapeControl(rule.pattern)}${pool} reply="${
      replyText(answer)
    }"`;
    if (answer === decision) rule.logTail = tail;
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
 * const failures = failureLogger({ sink, failureTtl: options.cache.failureTtl });
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
