/**
 * The command line: flags in, one typed options object (or a one-line error) out. Every flag of
 * the original Python router keeps its name and meaning.
 *
 * @module
 */

import { errorMessage } from "../common/errors.ts";
import { parseArgs } from "node:util";
import type { CacheOptions } from "../routing/cache.ts";
import type { Verbosity } from "../common/log.ts";
import { MATCH_MODES, type MatchMode } from "../routing/rules.ts";

/** Program name in messages. */
export const PROGRAM = "postfix-mx-pattern-router";

/** --dns-timeout when not given, in seconds: the whole budget of one lookup. */
export const DEFAULT_DNS_TIMEOUT_S = 5;
/** Version printed by --version. */
export const VERSION = "1.0.0";

/** The usage line printed with every command-line error. */
export const USAGE = `usage: ${PROGRAM} [-c FILE] [-p PORT] [-H HOST] [--cache-ttl SECONDS] ` +
  "[--timeout SECONDS] [--dns-server ADDR[:PORT]]... [--dns-timeout SECONDS] [--dns-tcp] " +
  "[--match-mode MODE] [-v|-q] [-h] " +
  `[--version]\n       ${PROGRAM} check [-c FILE] [--match-mode MODE] [--strict]\n` +
  `       ${PROGRAM} query [-c FILE] [--dns-server ADDR[:PORT]]... [--dns-tcp] ` +
  `[--match-mode MODE] [--json] KEY...\n       ${PROGRAM} providers`;

/** Everything the server needs from the command line. */
export interface ServeOptions {
  config: string;
  host: string;
  port: number;
  /** Raw --dns-server values (parsed by the DNS module); empty: use /etc/resolv.conf. */
  dnsServers: string[];
  dnsTimeoutMs: number;
  /** --dns-tcp: every query over TCP, on connections kept open, instead of UDP. */
  dnsTcp: boolean;
  idleTimeoutMs: number;
  cacheTtl: number;
  minTtl: number;
  negativeTtl: number;
  failureTtl: number;
  staleTtl: number;
  staleAnswerMs: number;
  cacheSize: number;
  maxConnections: number;
  /** --max-dns-inflight: DNS lookups at once; more wait in order, within --dns-timeout. */
  maxDnsInflight: number;
  /** Raw --socketmap values: `HOST:PORT` or `unix:/path`. */
  socketmap: string[];
  /** --socket-mode, permission bits of unix sockets. */
  socketMode: number;
  /** --socket-group, group name (or number) to own unix sockets; null keeps ours. */
  socketGroup: string | null;
  /** --metrics HOST:PORT for Prometheus, or null (off). */
  metrics: string | null;
  /** --dry-run: decide and log as usual, answer "not found". */
  dryRun: boolean;
  /** --match-mode: which MX hosts decide for rules that name no mode. */
  matchMode: MatchMode;
  verbosity: Verbosity;
}

/** The cache's tuning from the command line's options. */
export function cacheOptionsOf(options: ServeOptions): CacheOptions {
  return {
    maxTtl: options.cacheTtl,
    minTtl: options.minTtl,
    negativeTtl: options.negativeTtl,
    failureTtl: options.failureTtl,
    staleTtl: options.staleTtl,
    staleAnswerMs: options.staleAnswerMs,
    maxEntries: options.cacheSize,
  };
}

/** Options of `check`. */
export interface CheckOptions {
  config: string;
  /** --strict: warnings fail the check too (exit 1), for deploy scripts that want no surprises. */
  strict: boolean;
  /** --match-mode, as the server would use it. */
  matchMode: MatchMode;
}

/** Options of `query`. */
export interface QueryOptions {
  config: string;
  /** --match-mode, as the server would use it. */
  matchMode: MatchMode;
  dnsServers: string[];
  dnsTimeoutMs: number;
  /** --dns-tcp, as for the server. */
  dnsTcp: boolean;
  json: boolean;
  keys: string[];
}

/** What the command line asks for. */
export type Command =
  | { kind: "serve"; options: ServeOptions }
  | { kind: "check"; options: CheckOptions }
  | { kind: "query"; options: QueryOptions }
  | { kind: "providers" }
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "error"; message: string };

/** Default config path, as in the original. */
export const DEFAULT_CONFIG = "/etc/postfix/postfix-mx-pattern-router.conf";

const HELP_BODY = `
Serves Postfix tcp_table lookups: routes each recipient domain by the MX hosts DNS gives for it.

  -c, --config FILE        rules file (default ${DEFAULT_CONFIG})
  -p, --port PORT          TCP port for tcp_table (default 10099); 0: no tcp_table listener
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
      --max-dns-inflight N most DNS lookups at once; more wait in order (default 256)
      --dns-server ADDR[:PORT]  DNS server to ask, repeatable; IPv6 as [::1]:5353
                           (default: nameserver lines of /etc/resolv.conf)
      --dns-timeout SECONDS  the whole time budget of one DNS lookup (default ${DEFAULT_DNS_TIMEOUT_S})
      --dns-tcp            ask DNS over TCP, on connections kept open (up to 16 per server),
                           instead of UDP: less CPU per query
      --socketmap ADDR     also serve socketmap_table(5) on HOST:PORT or unix:/path; repeatable
      --socket-mode MODE   permission bits of unix sockets, octal (default 0660)
      --socket-group NAME  group to own unix sockets (e.g. postfix)
      --metrics HOST:PORT  serve Prometheus metrics at http://HOST:PORT/metrics (default off)
      --dry-run            decide, log and count every lookup, but answer "not found"
      --match-mode MODE    which MX hosts decide for rules without a mode prefix: any (one of
                           them, in preference order), primary (the lowest preference only)
                           or all (every one) (default any)
  -v, --verbose            log every lookup (debug)
  -q, --quiet              log errors only
  -h, --help               show this help
      --version            show the version

Subcommands:
  check [-c FILE] [--match-mode MODE] [--strict]
                           validate the rules file, list the rules, warn about risky patterns
                           and result transports missing from master.cf (via postconf);
                           exit 0 valid, 1 invalid (or, with --strict, any warning)
  query [-c FILE] [--dns-server ADDR]... [--dns-tcp] [--match-mode MODE] [--json] KEY...
                           look KEY up with real DNS and explain the answer;
                           exit 0 found, 1 not found, 2 temporary failure
  providers                list the built-in catalog of mail providers for provider: rules,
                           with the MX name suffixes of each and where they come from
`;

/** The full --help text. */
export const HELP = `${USAGE}\n${HELP_BODY}`;

const NUMBER_FLAGS = {
  "port": { min: 0, max: 65535, integer: true },
  "cache-ttl": { min: 0, max: 2 ** 31, integer: false },
  "min-ttl": { min: 0, max: 2 ** 31, integer: false },
  "negative-ttl": { min: 0, max: 2 ** 31, integer: false },
  "failure-ttl": { min: 0, max: 2 ** 31, integer: false },
  "stale-ttl": { min: 0, max: 2 ** 31, integer: false },
  "stale-answer-ms": { min: 0, max: 600_000, integer: false },
  "cache-size": { min: 1, max: 100_000_000, integer: true },
  "timeout": { min: 0, max: 2 ** 31, integer: false },
  "max-connections": { min: 1, max: 1_000_000, integer: true },
  "max-dns-inflight": { min: 1, max: 100_000, integer: true },
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
  if (args[0] === "check") return parseCheck(args.slice(1));
  if (args[0] === "query") return parseQuery(args.slice(1));
  if (args[0] === "providers") {
    return args.length === 1
      ? { kind: "providers" }
      : { kind: "error", message: "providers: takes no arguments" };
  }
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
        "max-dns-inflight": { type: "string" },
        "dns-server": { type: "string", multiple: true },
        "dns-timeout": { type: "string" },
        "dns-tcp": { type: "boolean" },
        socketmap: { type: "string", multiple: true },
        "socket-mode": { type: "string" },
        "socket-group": { type: "string" },
        metrics: { type: "string" },
        "dry-run": { type: "boolean" },
        "match-mode": { type: "string" },
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
  const socketMode = values["socket-mode"] ?? "0660";
  if (!/^0?[0-7]{3}$/.test(socketMode)) {
    return {
      kind: "error",
      message: `option '--socket-mode' needs octal bits like 0660, not '${socketMode}'`,
    };
  }
  const matchMode = parseMatchMode(values["match-mode"]);
  if (typeof matchMode === "object") return { kind: "error", message: matchMode.error };
  const socketmap = values.socketmap ?? [];
  if (numbers.port === 0 && socketmap.length === 0) {
    return {
      kind: "error",
      message: "option '--port 0' disables tcp_table: give --socketmap ADDR too",
    };
  }
  return {
    kind: "serve",
    options: {
      config: values.config ?? DEFAULT_CONFIG,
      host,
      port: numbers.port ?? 10099,
      dnsServers: values["dns-server"] ?? [],
      dnsTimeoutMs: (numbers["dns-timeout"] ?? DEFAULT_DNS_TIMEOUT_S) * 1000,
      dnsTcp: values["dns-tcp"] ?? false,
      idleTimeoutMs: (numbers.timeout ?? 600) * 1000,
      cacheTtl: numbers["cache-ttl"] ?? 3600,
      minTtl: numbers["min-ttl"] ?? 30,
      negativeTtl: numbers["negative-ttl"] ?? 300,
      failureTtl: numbers["failure-ttl"] ?? 10,
      staleTtl: numbers["stale-ttl"] ?? 86400,
      staleAnswerMs: numbers["stale-answer-ms"] ?? 400,
      cacheSize: numbers["cache-size"] ?? 100_000,
      maxConnections: numbers["max-connections"] ?? 10_000,
      maxDnsInflight: numbers["max-dns-inflight"] ?? 256,
      socketmap,
      socketMode: parseInt(socketMode, 8),
      socketGroup: values["socket-group"] ?? null,
      metrics: values.metrics ?? null,
      dryRun: values["dry-run"] ?? false,
      matchMode,
      verbosity: values.verbose ? "debug" : values.quiet ? "error" : "info",
    },
  };
}

function parseCheck(args: string[]): Command {
  try {
    const { values } = parseArgs({
      args,
      strict: true,
      options: {
        config: { type: "string", short: "c" },
        strict: { type: "boolean" },
        "match-mode": { type: "string" },
      },
    });
    const matchMode = parseMatchMode(values["match-mode"]);
    if (typeof matchMode === "object") {
      return { kind: "error", message: `check: ${matchMode.error}` };
    }
    return {
      kind: "check",
      options: {
        config: values.config ?? DEFAULT_CONFIG,
        strict: values.strict ?? false,
        matchMode,
      },
    };
  } catch (error) {
    return { kind: "error", message: `check: ${describeParseError(error)}` };
  }
}

function parseQuery(args: string[]): Command {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        config: { type: "string", short: "c" },
        "dns-server": { type: "string", multiple: true },
        "dns-timeout": { type: "string" },
        "dns-tcp": { type: "boolean" },
        "match-mode": { type: "string" },
        json: { type: "boolean" },
      },
    });
  } catch (error) {
    return { kind: "error", message: `query: ${describeParseError(error)}` };
  }
  const { values, positionals } = parsed;
  if (positionals.length === 0) return { kind: "error", message: "query: give at least one KEY" };
  let dnsTimeout = DEFAULT_DNS_TIMEOUT_S;
  if (values["dns-timeout"] !== undefined) {
    const value = parseNumber("dns-timeout", values["dns-timeout"]);
    if (typeof value === "string") return { kind: "error", message: `query: ${value}` };
    dnsTimeout = value;
  }
  const matchMode = parseMatchMode(values["match-mode"]);
  if (typeof matchMode === "object") return { kind: "error", message: `query: ${matchMode.error}` };
  return {
    kind: "query",
    options: {
      config: values.config ?? DEFAULT_CONFIG,
      matchMode,
      dnsServers: values["dns-server"] ?? [],
      dnsTimeoutMs: dnsTimeout * 1000,
      dnsTcp: values["dns-tcp"] ?? false,
      json: values.json ?? false,
      keys: positionals,
    },
  };
}

/** `--match-mode MODE`, `any` when not given. */
function parseMatchMode(raw: string | undefined): MatchMode | { error: string } {
  if (raw === undefined) return "any";
  const mode = MATCH_MODES.find((known) => known === raw.toLowerCase());
  return mode ?? {
    error: `option '--match-mode' takes ${MATCH_MODES.join(", ")}, not '${raw}'`,
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
  const message = errorMessage(error);
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
