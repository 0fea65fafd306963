/**
 * Logging through LogTape to stderr: one line per event, syslog priority prefixes when stderr is
 * the systemd journal, writes batched so a burst of lookups costs one write.
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
import type { DecisionLabel, LookupObserver, LookupReport } from "./router.ts";

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

/** Renders a record's message: strings as they are, values via String(). */
function renderMessage(record: LogRecord): string {
  let text = "";
  for (let i = 0; i < record.message.length; i++) {
    const part = record.message[i];
    text += i % 2 === 0 ? part as string : String(part);
  }
  return text;
}

/** Options of {@linkcode createStderrSink}. */
export interface StderrSinkOptions {
  /** True when stderr is the journal: prefix `<N>` priorities, no timestamp (journald adds it). */
  journal: boolean;
  /** Where the bytes go; stderr by default (tests capture). */
  write?: (bytes: Uint8Array) => void;
}

/**
 * A LogTape sink for stderr that batches the lines of one event-loop turn into one write.
 *
 * @example
 * ```ts
 * const sink = createStderrSink({ journal: Deno.env.get("JOURNAL_STREAM") !== undefined });
 * ```
 */
export function createStderrSink(options: StderrSinkOptions): Sink & { flush(): void } {
  const encoder = new TextEncoder();
  const write = options.write ?? ((bytes: Uint8Array) => writeAllSync(Deno.stderr, bytes));
  let pending = "";
  const flush = () => {
    if (pending === "") return;
    const text = pending;
    pending = "";
    write(encoder.encode(text));
  };
  const sink = (record: LogRecord) => {
    const message = renderMessage(record);
    const line = options.journal
      ? `${PRIORITY[record.level]}${message}\n`
      : `${new Date(record.timestamp).toISOString()} ${record.level.toUpperCase()} ${message}\n`;
    if (pending === "") queueMicrotask(flush);
    pending += line;
  };
  return Object.assign(sink, { flush });
}

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
 * Configures LogTape for the process; returns a function that flushes pending lines (call it
 * before exiting).
 */
export function setupLogging(options: LoggingOptions): () => void {
  const sink = createStderrSink({ journal: options.journal });
  resetSync();
  configureSync({
    sinks: { stderr: sink },
    loggers: [
      { category: LOG_CATEGORY, lowestLevel: options.verbosity, sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
  return sink.flush;
}

/** Formats the reply a decision gives, as Postfix would see it in tcp_table terms. */
function replyText(report: LookupReport): string {
  const decision = report.decision;
  if (decision.label === "match") return `200 ${decision.result}`;
  if (decision.label === "tempfail") return `400 ${decision.reason}`;
  return "500 NO RESULT";
}

/**
 * A lookup observer that logs one line per lookup: matches at info, everything else at debug,
 * and builds nothing when the level is off.
 *
 * @example
 * ```ts
 * const router = new Router({ cache, ruleSet, observer: lookupLogger("") });
 * ```
 */
export function lookupLogger(modeTag: string): LookupObserver {
  return {
    wants: (label: DecisionLabel) => log.isEnabledFor(label === "match" ? "info" : "debug"),
    report(report: LookupReport) {
      const decision = report.decision;
      const rule = decision.match === null
        ? "none"
        : `line ${decision.match.rule.line} ${decision.match.rule.pattern}`;
      const ms = (performance.now() - report.startedAt).toFixed(2);
      const text = `${modeTag}lookup ${report.key} domain=${report.domain ?? "-"} ` +
        `mx=${decision.hosts.join(",") || "-"} rule=${rule} reply="${replyText(report)}" ` +
        `(${decision.reason}) source=${report.source} ms=${ms}`;
      // Tagged templates: braces in a key must not be read as LogTape placeholders.
      if (decision.label === "match") log.info`${text}`;
      else log.debug`${text}`;
    },
  };
}
