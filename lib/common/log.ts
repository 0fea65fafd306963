/**
 * Logging to stderr: one line per event, syslog priority prefixes when stderr is the systemd
 * journal, writes batched so a burst of lookups costs one write. Events go through LogTape; the
 * per-lookup lines go straight to the same sink (see lib/app/lookup_log.ts).
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
   * Adds one line, formatted like a record's; for the hot path, see `lookupLogger` (lib/app/lookup_log.ts).
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
 * give it to `lookupLogger` (lib/app/lookup_log.ts)).
 *
 * @example
 * ```ts
 * const sink = setupLogging({ verbosity: "info", journal: Deno.env.has("JOURNAL_STREAM") });
 * log.info`listening`;
 * sink.flush();
 * ```
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
