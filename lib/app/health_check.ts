/**
 * The `health` subcommand: a Nagios-style check (also for Icinga, Zabbix, Sensu, monit) that asks
 * the running router one lookup over its tcp_table or socketmap address and reports in one line
 * with performance data. Exit 0 OK, 1 WARNING (slow), 2 CRITICAL (no answer, refused, or a
 * temporary failure for the key), 3 UNKNOWN (bad arguments).
 *
 * The default key has an address-literal domain, which the router answers "not found" at once
 * without DNS: the check measures the router itself. Give a real address with `--key` to check
 * the whole path through DNS as well.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { errorMessage } from "../common/errors.ts";
import { err, ok, type Result } from "../common/result.ts";
import { formatListenAddress, type ListenAddress, parseListenAddress } from "../server/listen.ts";
import { encodeNetstring, MAX_NETSTRING, scanNetstring } from "../server/socketmap.ts";
import { encodeTcpTable, MAX_TCP_TABLE_LINE } from "../server/tcp_table.ts";

/** Nagios plugin exit codes. */
export const NAGIOS_CODES = { OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3 } as const;

/** A Nagios state. */
export type NagiosState = keyof typeof NAGIOS_CODES;

/** Defaults of the `health` flags. */
export const HEALTH_DEFAULTS = {
  /** The router's default tcp_table address (its --host and --port defaults). */
  tcp: "127.0.0.1:10099",
  /** Answered "not found" at once: an address literal is never looked up. */
  key: "health-check@[127.0.0.1]",
  warningMs: 200,
  criticalMs: 2000,
} as const;

/** The map name sent in socketmap requests (the router accepts any). */
const SOCKETMAP_NAME = "mxroute";

/** What `health` asks, and the thresholds. */
export interface HealthCheckOptions {
  protocol: "tcp_table" | "socketmap";
  /** A tcp_table address is always TCP; a socketmap one TCP or unix. */
  address: ListenAddress;
  key: string;
  /** Slower than this is WARNING. */
  warningMs: number;
  /** No answer within this long is CRITICAL; also the time the check waits. */
  criticalMs: number;
}

/** The check's outcome: the exit code and the one line to print. */
export interface HealthCheckResult {
  code: number;
  line: string;
}

/** The `health` flags as `--help` and the man page list them. */
export const HEALTH_USAGE = "health [--tcp HOST:PORT | --socketmap ADDR] [--key KEY] " +
  "[--warning MS] [--critical MS]";

/**
 * Parses the arguments after `health`.
 *
 * @example
 * ```ts
 * parseHealthArgs(["--tcp", "127.0.0.1:10099", "--warning", "50"]);
 * // { ok: true, value: { protocol: "tcp_table", warningMs: 50, criticalMs: 2000, ... } }
 * ```
 */
export function parseHealthArgs(args: string[]): Result<HealthCheckOptions> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        tcp: { type: "string" },
        socketmap: { type: "string" },
        key: { type: "string" },
        warning: { type: "string" },
        critical: { type: "string" },
      },
    }));
  } catch (error) {
    return err(errorMessage(error).split("\n")[0]);
  }
  if (values.tcp !== undefined && values.socketmap !== undefined) {
    return err("give --tcp or --socketmap, not both");
  }
  const protocol = values.socketmap !== undefined ? "socketmap" : "tcp_table";
  const text = values.socketmap ?? values.tcp ?? HEALTH_DEFAULTS.tcp;
  const address = parseListenAddress(text);
  const flag = protocol === "socketmap" ? "--socketmap" : "--tcp";
  if (!address.ok) return err(`option '${flag}' ${address.error}`);
  if (protocol === "tcp_table" && address.value.transport !== "tcp") {
    return err(`option '--tcp' needs HOST:PORT, not '${text}'`);
  }
  const key = values.key ?? HEALTH_DEFAULTS.key;
  if (key === "") return err("option '--key' needs a key, e.g. postmaster@example.com");
  const warningMs = milliseconds("warning", values.warning, HEALTH_DEFAULTS.warningMs);
  if (!warningMs.ok) return warningMs;
  const criticalMs = milliseconds("critical", values.critical, HEALTH_DEFAULTS.criticalMs);
  if (!criticalMs.ok) return criticalMs;
  if (warningMs.value > criticalMs.value) {
    return err(`--warning ${warningMs.value} is over --critical ${criticalMs.value}`);
  }
  return ok({
    protocol,
    address: address.value,
    key,
    warningMs: warningMs.value,
    criticalMs: criticalMs.value,
  });
}

function milliseconds(
  name: string,
  raw: string | undefined,
  fallback: number,
): Result<number> {
  if (raw === undefined) return ok(fallback);
  const value = /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : NaN;
  if (!(value > 0 && value <= 600_000)) {
    return err(`option '--${name}' needs milliseconds from 1 to 600000, not '${raw}'`);
  }
  return ok(value);
}

/** What {@linkcode checkHealth} uses from the outside world; tests replace it. */
export interface HealthCheckDeps {
  /** Opens the connection; Deno.connect by default. */
  connect?: (address: ListenAddress) => Promise<Deno.Conn>;
  /** Monotonic milliseconds; `performance.now` by default. */
  now?: () => number;
}

/**
 * Asks the router one lookup and judges the answer and its time.
 *
 * @example
 * ```ts
 * const options = parseHealthArgs(["--tcp", "127.0.0.1:10099"]);
 * if (options.ok) {
 *   const result = await checkHealth(options.value);
 *   console.log(result.line); // "OK: tcp_table 127.0.0.1:10099 answered ... | time=0.312ms;..."
 *   Deno.exit(result.code);
 * }
 * ```
 */
export async function checkHealth(
  options: HealthCheckOptions,
  deps: HealthCheckDeps = {},
): Promise<HealthCheckResult> {
  const now = deps.now ?? (() => performance.now());
  const connect = deps.connect ?? connectTo;
  const where = `${options.protocol} ${formatListenAddress(options.address)}`;
  const request = options.protocol === "tcp_table"
    ? new TextEncoder().encode(`get ${encodeTcpTable(options.key)}\n`)
    : encodeNetstring(`${SOCKETMAP_NAME} ${options.key}`);
  const started = now();
  let conn: Deno.Conn | null = null;
  let timedOut = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      conn?.close();
      reject(new Error("timed out"));
    }, options.criticalMs);
  });
  deadline.catch(() => {});
  let reply: string;
  try {
    const opening = connect(options.address);
    // A connection that opens after the deadline is closed, not leaked.
    opening.then((late) => timedOut && late.close(), () => {});
    conn = await Promise.race([opening, deadline]);
    await Promise.race([writeAll(conn, request), deadline]);
    reply = await Promise.race([readReply(conn, options.protocol), deadline]);
  } catch (error) {
    const why = timedOut ? `no answer within ${options.criticalMs} ms` : connectionError(error);
    return { code: NAGIOS_CODES.CRITICAL, line: `CRITICAL: ${where}: ${why}` };
  } finally {
    clearTimeout(timer);
    if (!timedOut) {
      try {
        conn?.close();
      } catch {
        // Closed already.
      }
    }
  }
  const elapsedMs = now() - started;
  const perf = `time=${elapsedMs.toFixed(3)}ms;${options.warningMs};${options.criticalMs};0`;
  const answered = `answered "${printable(reply)}" for ${options.key} in ${
    elapsedMs.toFixed(1)
  } ms`;
  const failure = replyFailure(options.protocol, reply);
  let state: NagiosState = "OK";
  let note = "";
  if (failure !== null) {
    state = "CRITICAL";
    note = `: ${failure}`;
  } else if (elapsedMs > options.criticalMs) {
    state = "CRITICAL";
    note = ` (critical at ${options.criticalMs} ms)`;
  } else if (elapsedMs > options.warningMs) {
    state = "WARNING";
    note = ` (warning at ${options.warningMs} ms)`;
  }
  return { code: NAGIOS_CODES[state], line: `${state}: ${where} ${answered}${note} | ${perf}` };
}

/** Why a reply means trouble, or null when it is a normal answer (found or not found). */
function replyFailure(protocol: HealthCheckOptions["protocol"], reply: string): string | null {
  if (protocol === "tcp_table") {
    if (/^(200|500) /.test(reply)) return null;
    if (reply.startsWith("400 ")) return "a temporary failure (Postfix would defer)";
    return "not a tcp_table reply";
  }
  if (reply.startsWith("OK ") || reply.startsWith("NOTFOUND ")) return null;
  if (reply.startsWith("TEMP ")) return "a temporary failure (Postfix would defer)";
  if (reply.startsWith("PERM ")) return "a permanent error (Postfix would bounce or defer)";
  return "not a socketmap reply";
}

async function connectTo(address: ListenAddress): Promise<Deno.Conn> {
  return address.transport === "tcp"
    ? await Deno.connect({ hostname: address.host, port: address.port })
    : await Deno.connect({ transport: "unix", path: address.path });
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let sent = 0; sent < bytes.length;) sent += await conn.write(bytes.subarray(sent));
}

/** Reads one reply: a line for tcp_table, a netstring for socketmap. */
async function readReply(
  conn: Deno.Conn,
  protocol: HealthCheckOptions["protocol"],
): Promise<string> {
  const max = protocol === "tcp_table" ? MAX_TCP_TABLE_LINE : MAX_NETSTRING + 16;
  const buffer = new Uint8Array(max);
  let length = 0;
  while (length < max) {
    const read = await conn.read(buffer.subarray(length));
    if (read === null) throw new Error("the router closed the connection without a reply");
    length += read;
    if (protocol === "tcp_table") {
      const newline = buffer.subarray(0, length).indexOf(0x0a);
      if (newline >= 0) return new TextDecoder().decode(buffer.subarray(0, newline));
    } else {
      const scan = scanNetstring(buffer, 0, length, MAX_NETSTRING);
      if (scan.kind === "ok") return new TextDecoder().decode(scan.data);
      if (scan.kind === "bad") throw new Error(`not a socketmap reply: ${scan.reason}`);
    }
  }
  throw new Error(`no complete reply in ${max} bytes`);
}

function connectionError(error: unknown): string {
  if (error instanceof Deno.errors.ConnectionRefused) {
    return "connection refused: is the router running, and on this address?";
  }
  if (error instanceof Deno.errors.NotFound) return "no such socket: is the router running?";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied on the socket";
  return errorMessage(error);
}

/** The reply as it can be shown on one line: controls replaced, cut to 120 characters. */
function printable(text: string): string {
  // deno-lint-ignore no-control-regex
  const clean = text.replace(/[\x00-\x1f\x7f"]/g, "?");
  return clean.length > 120 ? `${clean.slice(0, 120)}...` : clean;
}

/**
 * Runs `health` with the arguments after it: prints one line and returns the exit code (3 and an
 * UNKNOWN line for bad arguments).
 *
 * @example
 * ```ts
 * Deno.exit(await runHealthCheck(["--tcp", "127.0.0.1:10099"]));
 * ```
 */
export async function runHealthCheck(args: string[]): Promise<number> {
  const options = parseHealthArgs(args);
  if (!options.ok) {
    console.log(`UNKNOWN: ${options.error}; usage: ${HEALTH_USAGE}`);
    return NAGIOS_CODES.UNKNOWN;
  }
  const result = await checkHealth(options.value);
  console.log(result.line);
  return result.code;
}
