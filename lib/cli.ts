/**
 * The command line: flags in, one typed options object (or a one-line error) out. Every flag of
 * the original Python router keeps its name and meaning.
 *
 * @module
 */

import { parseArgs } from "node:util";

/** Program name in messages. */
export const PROGRAM = "postfix-mx-pattern-router";
/** Version printed by --version. */
export const VERSION = "1.0.0";

/** The usage line printed with every command-line error. */
export const USAGE = `usage: ${PROGRAM} [-c FILE] [-p PORT] [-H HOST] [--cache-ttl SECONDS] ` +
  "[--timeout SECONDS] [--dns-server ADDR[:PORT]]... [--dns-timeout SECONDS] [-v|-q] [-h] [--version]";

/** Everything the server needs from the command line. */
export interface ServeOptions {
  config: string;
  host: string;
  port: number;
  /** Raw --dns-server values (parsed by the DNS module); empty: use /etc/resolv.conf. */
  dnsServers: string[];
  dnsTimeoutMs: number;
  idleTimeoutMs: number;
  cacheTtl: number;
  minTtl: number;
  negativeTtl: number;
  failureTtl: number;
  staleTtl: number;
  staleAnswerMs: number;
  cacheSize: number;
  maxConnections: number;
  verbosity: "debug" | "info" | "error";
}

/** What the command line asks for. */
export type Command =
  | { kind: "serve"; options: ServeOptions }
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "error"; message: string };

/** Default config path, as in the original. */
export const DEFAULT_CONFIG = "/etc/postfix/postfix-mx-pattern-router.conf";

const HELP_BODY = `
Serves Postfix tcp_table lookups: routes each recipient domain by the MX hosts DNS gives for it.

  -c, --config FILE        rules file (default ${DEFAULT_CONFIG})
  -p, --port PORT          TCP port to listen on (default 10099)
  -H, --host HOST          address to listen on (default 127.0.0.1)
      --cache-ttl SECONDS  longest any answer is cached; 0 disables caching (default 3600)
      --min-ttl SECONDS    shortest an answer is cached (default 30)
      --negative-ttl SECONDS  longest NXDOMAIN/NODATA is cached (default 300)
      --failure-ttl SECONDS   a failed lookup answers 400 at once for this long (default 10)
      --stale-ttl SECONDS  serve expired answers this long when DNS fails; 0: never (default 86400)
      --stale-answer-ms MS wait this long for DNS before answering from an expired entry (default 400)
      --cache-size N       most domains cached (default 100000)
      --timeout SECONDS    close client connections idle this long; 0: never (default 600)
      --max-connections N  most client connections at once (default 10000)
      --dns-server ADDR[:PORT]  DNS server to ask, repeatable; IPv6 as [::1]:5353
                           (default: nameserver lines of /etc/resolv.conf)
      --dns-timeout SECONDS  the whole time budget of one DNS lookup (default 5)
  -v, --verbose            log every lookup (debug)
  -q, --quiet              log errors only
  -h, --help               show this help
      --version            show the version
`;

/** The full --help text. */
export const HELP = `${USAGE}\n${HELP_BODY}`;

const NUMBER_FLAGS = {
  "port": { min: 1, max: 65535, integer: true },
  "cache-ttl": { min: 0, max: 2 ** 31, integer: false },
  "min-ttl": { min: 0, max: 2 ** 31, integer: false },
  "negative-ttl": { min: 0, max: 2 ** 31, integer: false },
  "failure-ttl": { min: 0, max: 2 ** 31, integer: false },
  "stale-ttl": { min: 0, max: 2 ** 31, integer: false },
  "stale-answer-ms": { min: 0, max: 600_000, integer: false },
  "cache-size": { min: 1, max: 100_000_000, integer: true },
  "timeout": { min: 0, max: 2 ** 31, integer: false },
  "max-connections": { min: 1, max: 1_000_000, integer: true },
  "dns-timeout": { min: 0.01, max: 600, integer: false },
} as const;

type NumberFlag = keyof typeof NUMBER_FLAGS;

/**
 * Parses the arguments after the program name.
 *
 * @example
 * ```ts
 * parseCommandLine(["-c", "/etc/r.conf", "-p", "10099"]); // { kind: "serve", options: {...} }
 * parseCommandLine(["--bogus"]); // { kind: "error", message: "unknown option '--bogus'" }
 * ```
 */
export function parseCommandLine(args: string[]): Command {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        config: { type: "string", short: "c" },
        port: { type: "string", short: "p" },
        host: { type: "string", short: "H" },
        "cache-ttl": { type: "string" },
        "min-ttl": { type: "string" },
        "negative-ttl": { type: "string" },
        "failure-ttl": { type: "string" },
        "stale-ttl": { type: "string" },
        "stale-answer-ms": { type: "string" },
        "cache-size": { type: "string" },
        timeout: { type: "string" },
        "max-connections": { type: "string" },
        "dns-server": { type: "string", multiple: true },
        "dns-timeout": { type: "string" },
        verbose: { type: "boolean", short: "v" },
        quiet: { type: "boolean", short: "q" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean" },
      },
    }));
  } catch (error) {
    return { kind: "error", message: describeParseError(error) };
  }
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };
  if (values.verbose && values.quiet) {
    return { kind: "error", message: "options '-v' and '-q' cannot be used together" };
  }
  const numbers: Partial<Record<NumberFlag, number>> = {};
  for (const flag of Object.keys(NUMBER_FLAGS) as NumberFlag[]) {
    const raw = values[flag];
    if (raw === undefined) continue;
    const parsed = parseNumber(flag, raw);
    if (typeof parsed === "string") return { kind: "error", message: parsed };
    numbers[flag] = parsed;
  }
  const host = values.host ?? "127.0.0.1";
  if (host === "") return { kind: "error", message: "option '--host' needs an address" };
  return {
    kind: "serve",
    options: {
      config: values.config ?? DEFAULT_CONFIG,
      host,
      port: numbers.port ?? 10099,
      dnsServers: values["dns-server"] ?? [],
      dnsTimeoutMs: (numbers["dns-timeout"] ?? 5) * 1000,
      idleTimeoutMs: (numbers.timeout ?? 600) * 1000,
      cacheTtl: numbers["cache-ttl"] ?? 3600,
      minTtl: numbers["min-ttl"] ?? 30,
      negativeTtl: numbers["negative-ttl"] ?? 300,
      failureTtl: numbers["failure-ttl"] ?? 10,
      staleTtl: numbers["stale-ttl"] ?? 86400,
      staleAnswerMs: numbers["stale-answer-ms"] ?? 400,
      cacheSize: numbers["cache-size"] ?? 100_000,
      maxConnections: numbers["max-connections"] ?? 10_000,
      verbosity: values.verbose ? "debug" : values.quiet ? "error" : "info",
    },
  };
}

function parseNumber(flag: NumberFlag, raw: string): number | string {
  const rule = NUMBER_FLAGS[flag];
  const value = /^\s*\d+(\.\d+)?\s*$/.test(raw) ? Number(raw) : NaN;
  const kind = rule.integer ? "a whole number" : "a number";
  if (!Number.isFinite(value) || (rule.integer && !Number.isInteger(value))) {
    return `option '--${flag}' needs ${kind} from ${rule.min} to ${rule.max}, not '${raw}'`;
  }
  if (value < rule.min || value > rule.max) {
    return `option '--${flag}' is out of range: ${raw} (allowed: ${rule.min} to ${rule.max})`;
  }
  return value;
}

function describeParseError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: string }).code;
  const flag = /'(-[^']*)'/.exec(message)?.[1] ?? /"(-[^"]*)"/.exec(message)?.[1];
  switch (code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `unknown option '${flag ?? message}'`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      return flag ? `option '${flag}' needs a value` : message;
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return `unexpected argument '${/'([^']*)'/.exec(message)?.[1] ?? message}'`;
    default:
      return message.split("\n")[0];
  }
}
