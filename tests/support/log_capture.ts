/**
 * The router's log captured as "level text" lines, for tests that assert what it said.
 *
 * @module
 */

import { configureSync, type LogRecord, resetSync } from "@logtape/logtape";
import { LOG_CATEGORY } from "../../lib/common/log.ts";

/**
 * Runs `body` with the router's log (every level) captured as "level text" lines; the log is
 * reset afterwards, even when `body` throws. Works for synchronous and asynchronous bodies.
 *
 * @example
 * ```ts
 * await withLog((lines) => {
 *   // ... code that logs ...
 *   console.log(lines); // ["warning DNS server 127.0.0.1:53 is down ..."]
 * });
 * ```
 */
export async function withLog(body: (lines: string[]) => void | Promise<void>): Promise<void> {
  const lines: string[] = [];
  configureSync({
    sinks: {
      test: (record: LogRecord) =>
        lines.push(`${record.level} ${record.message.map((part) => String(part)).join("")}`),
    },
    loggers: [
      { category: LOG_CATEGORY, lowestLevel: "debug", sinks: ["test"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
    ],
  });
  try {
    await body(lines);
  } finally {
    resetSync();
  }
}
