/**
 * The command line: flags in, one typed options object (or a one-line error) out. Every flag of
 * the original Python router keeps its name and meaning.
 *
 * One table, {@linkcode SERVE_FLAGS}, holds each server flag's name, value, bounds, default and
 * help text: the parser, `--help` and the defaults all read it (the cache's defaults come from
 * the cache module, which owns them).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { errorMessage } from "../common/errors.ts";
import { err, ok, type Result } from "../common/result.ts";
import type { Verbosity } from "../common/log.ts";
import { formatHostPort } from "../common/address.ts";
import { parseDnsServer } from "../dns/servers.ts";
import { type CacheOptions, DEFAULT_CACHE_OPTIONS } from "../routing/cache.ts";
import { MATCH_MODES, type MatchMode } from "../routing/rules.ts";
import { formatListenAddress, type ListenAddress, parseListenAddress } from "../server/listen.ts";
import { HEALTH_DEFAULTS, HEALTH_USAGE } from "./health_check.ts";

/** Program name in messages. */
export const PROGRAM = "postfix-mx-pattern-router";

/** Version printed by --version. */
export const VERSION = "1.0.0";

/** Default config path, as in the original. */
export const DEFAULT_CONFIG = "/etc/postfix/postfix-mx-pattern-router.conf";

/** A TCP address to listen on. */
export interface TcpAddress {
  host: string;
  port: number;
}

/** Everything the server needs from the command line. */
export interface ServeOptions {
  config: string;
  host: string;
  /** The tcp_table port; 0: no tcp_table listener. */
  port: number;
  /** Raw --dns-server values (parsed by the DNS module); empty: use /etc/resolv.conf. */
  dnsServers: string[];
  dnsTimeoutMs: number;
  /** --dns-tcp: every query over TCP, on connections kept open, instead of UDP. */
  dnsTcp: boolean;
  /** --timeout: close client connections idle this long; 0: never. */
  idleTimeoutMs: number;
  /** The cache flags (--cache-ttl, --min-ttl, ...), as the cache takes them. */
  cache: CacheOptions;
  /** --cache-file: where the cached DNS answers outlive a restart, or null (off). */
  cacheFile: string | null;
  maxConnections: number;
  /** --max-dns-inflight: DNS lookups at once; more wait in order, within --dns-timeout. */
  maxDnsInflight: number;
  /** --socketmap listeners, each given once. */
  socketmap: ListenAddress[];
  /** --socket-mode, permission bits of unix sockets. */
  socketMode: number;
  /** --socket-group, group name (or number) to own unix sockets; null keeps ours. */
  socketGroup: string | null;
  /** --metrics HOST:PORT for Prometheus, or null (off). */
  metrics: TcpAddress | null;
  /** --dry-run: decide and log as usual, answer "not found". */
  dryRun: boolean;
  /** --match-mode: which MX hosts decide for rules that name no mode. */
  matchMode: MatchMode;
  verbosity: Verbosity;
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
  /** `health`: its arguments, parsed by the check itself (bad ones exit 3, as Nagios expects). */
  | { kind: "health"; args: string[] }
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "error"; message: string };

/** The allowed values of a number flag. */
interface NumberRange {
  min: number;
  max: number;
  integer: boolean;
}

/** One flag: how it is parsed, its default, and its line in `--help`. */
export interface FlagSpec {
  /** Long name without dashes. */
  name: string;
  short?: string;
  /** What the value is, as `--help` shows it (`SECONDS`); absent for a switch. */
  value?: string;
  /** A number flag's bounds; absent for a string flag or a switch. */
  range?: NumberRange;
  /** May be given more than once. */
  repeatable?: boolean;
  /** Shown as `(default ...)`; absent when there is none to show. */
  default?: number | string;
  /** The help text; `\n` starts a continuation line. */
  help: string;
}

const SECONDS: NumberRange = { min: 0, max: 2 ** 31, integer: false };
const cacheDefaults = DEFAULT_CACHE_OPTIONS;

/** The server's flags, in `--help` order. */
export const SERVE_FLAGS: readonly FlagSpec[] = [
  { name: "config", short: "c", value: "FILE", default: DEFAULT_CONFIG, help: "rules file" },
  {
    name: "port",
    short: "p",
    value: "PORT",
    range: { min: 0, max: 65535, integer: true },
    default: 10099,
    help: "TCP port for tcp_table; 0: no tcp_table listener",
  },
  {
    name: "host",
    short: "H",
    value: "HOST",
    default: "127.0.0.1",
    help: "address to listen on",
  },
  {
    name: "cache-ttl",
    value: "SECONDS",
    range: SECONDS,
    default: cacheDefaults.cacheTtl,
    help: "longest any answer is cached; 0 disables caching",
  },
  {
    name: "min-ttl",
    value: "SECONDS",
    range: SECONDS,
    default: cacheDefaults.minTtl,
    help: "shortest an answer is cached",
  },
  {
    name: "negative-ttl",
    value: "SECONDS",
    range: SECONDS,
    default: cacheDefaults.negativeTtl,
    help: "longest NXDOMAIN/NODATA is cached",
  },
  {
    name: "failure-ttl",
    value: "SECONDS",
    range: SECONDS,
    default: cacheDefaults.failureTtl,
    help: "a failed lookup answers 400 at once for this long",
  },
  {
    name: "stale-ttl",
    value: "SECONDS",
    range: SECONDS,
    default: cacheDefaults.staleTtl,
    help: "serve expired answers this long when DNS fails; 0: never",
  },
  {
    name: "stale-answer-ms",
    value: "MS",
    range: { min: 0, max: 600_000, integer: false },
    default: cacheDefaults.staleAnswerMs,
    help: "wait this long for DNS before answering from an expired entry",
  },
  {
    name: "cache-size",
    value: "N",
    range: { min: 1, max: 100_000_000, integer: true },
    default: cacheDefaults.cacheSize,
    help: "most domains cached",
  },
  {
    name: "cache-file",
    value: "PATH",
    help: "keep the cached DNS answers in PATH across restarts: read before\n" +
      "listening, written on stop and every 5 minutes (default off)",
  },
  {
    name: "timeout",
    value: "SECONDS",
    range: SECONDS,
    default: 600,
    help: "close client connections idle this long; 0: never",
  },
  {
    name: "max-connections",
    value: "N",
    range: { min: 1, max: 1_000_000, integer: true },
    default: 10_000,
    help: "most client connections at once",
  },
  {
    name: "max-dns-inflight",
    value: "N",
    range: { min: 1, max: 100_000, integer: true },
    default: 256,
    help: "most DNS lookups at once; more wait in order",
  },
  {
    name: "dns-server",
    value: "ADDR[:PORT]",
    repeatable: true,
    help: "DNS server to ask, repeatable; IPv6 as [::1]:5353\n" +
      "(default: nameserver lines of /etc/resolv.conf)",
  },
  {
    name: "dns-timeout",
    value: "SECONDS",
    range: { min: 0.01, max: 600, integer: false },
    default: 5,
    help: "the whole time budget of one DNS lookup",
  },
  {
    name: "dns-tcp",
    help: "ask DNS over TCP, on connections kept open (up to 16 per server),\n" +
      "instead of UDP: less CPU per query",
  },
  {
    name: "socketmap",
    value: "ADDR",
    repeatable: true,
    help: "also serve socketmap_table(5) on HOST:PORT or unix:/path; repeatable",
  },
  {
    name: "socket-mode",
    value: "MODE",
    default: "0660",
    help: "permission bits of unix sockets, octal",
  },
  { name: "socket-group", value: "NAME", help: "group to own unix sockets (e.g. postfix)" },
  {
    name: "metrics",
    value: "HOST:PORT",
    help: "serve Prometheus metrics at http://HOST:PORT/metrics (default off)",
  },
  { name: "dry-run", help: 'decide, log and count every lookup, but answer "not found"' },
  {
    name: "match-mode",
    value: "MODE",
    default: "any",
    help: "which MX hosts decide for rules without a mode prefix: any (one of\n" +
      "them, in preference order), primary (the lowest preference only)\n" +
      "or all (every one)",
  },
  { name: "verbose", short: "v", help: "log every lookup (debug)" },
  { name: "quiet", short: "q", help: "log errors only" },
  { name: "help", short: "h", help: "show this help" },
  { name: "version", help: "show the version" },
];

const FLAGS_BY_NAME = new Map(SERVE_FLAGS.map((flag) => [flag.name, flag]));

/** The usage line printed with every command-line error. */
export const USAGE = `usage: ${PROGRAM} [-c FILE] [-p PORT] [-H HOST] [--cache-ttl SECONDS] ` +
  "[--timeout SECONDS] [--dns-server ADDR[:PORT]]... [--dns-timeout SECONDS] [--dns-tcp] " +
  "[--match-mode MODE] [-v|-q] [-h] " +
  `[--version]\n       ${PROGRAM} check [-c FILE] [--match-mode MODE] [--strict]\n` +
  `       ${PROGRAM} query [-c FILE] [--dns-server ADDR[:PORT]]... [--dns-tcp] ` +
  `[--match-mode MODE] [--json] KEY...\n       ${PROGRAM} providers\n` +
  `       ${PROGRAM} ${HEALTH_USAGE}`;

/** Where help text starts on a flag's line. */
const HELP_COLUMN = 27;

/** One flag's lines of `--help`, from its table entry. */
function helpLines(flag: FlagSpec): string[] {
  const names = (flag.short ? `-${flag.short}, ` : "    ") + `--${flag.name}` +
    (flag.value ? ` ${flag.value}` : "");
  const text = flag.help + (flag.default === undefined ? "" : ` (default ${flag.default})`);
  const [first, ...rest] = text.split("\n");
  const left = `  ${names}`;
  const gap = left.length < HELP_COLUMN - 1 ? " ".repeat(HELP_COLUMN - left.length) : "  ";
  return [left + gap + first, ...rest.map((line) => " ".repeat(HELP_COLUMN) + line)];
}

const HELP_BODY = `
Serves Postfix tcp_table lookups: routes each recipient domain by the MX hosts DNS gives for it.

${SERVE_FLAGS.flatMap(helpLines).join("\n")}

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
  ${HEALTH_USAGE}
                           a Nagios-style check: ask the running router one lookup over
                           tcp_table (default ${HEALTH_DEFAULTS.tcp}) or socketmap; the default key
                           needs no DNS; exit 0 OK, 1 WARNING (slower than --warning, default
                           ${HEALTH_DEFAULTS.warningMs} ms), 2 CRITICAL (no answer within --critical, default ${HEALTH_DEFAULTS.criticalMs} ms,
                           refused, or a temporary failure), 3 UNKNOWN (bad arguments)
`;

/** The full --help text. */
export const HELP = `${USAGE}\n${HELP_BODY}`;

/** The node:util parseArgs option table of some flags of {@linkcode SERVE_FLAGS}. */
function parseArgsOptions(names: readonly string[]) {
  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean }
  > = {};
  for (const name of names) {
    const flag = FLAGS_BY_NAME.get(name);
    if (flag === undefined) throw new Error(`no flag --${name}`);
    options[name] = {
      type: flag.value === undefined ? "boolean" : "string",
      ...(flag.short ? { short: flag.short } : {}),
      ...(flag.repeatable ? { multiple: true } : {}),
    };
  }
  return options;
}

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** The parsed value of a number flag, or its default from the table; a message when bad. */
function numberFlag(values: Values, name: string): Result<number> {
  const flag = FLAGS_BY_NAME.get(name);
  const range = flag?.range;
  if (flag === undefined || range === undefined || typeof flag.default !== "number") {
    throw new Error(`--${name} is not a number flag with a default`);
  }
  const raw = values[name];
  if (typeof raw !== "string") return ok(flag.default);
  const value = /^\s*\d+(\.\d+)?\s*$/.test(raw) ? Number(raw) : NaN;
  const kind = range.integer ? "a whole number" : "a number";
  if (!Number.isFinite(value) || (range.integer && !Number.isInteger(value))) {
    return err(`option '--${name}' needs ${kind} from ${range.min} to ${range.max}, not '${raw}'`);
  }
  if (value < range.min || value > range.max) {
    return err(
      `option '--${name}' is out of range: ${raw} (allowed: ${range.min} to ${range.max})`,
    );
  }
  return ok(value);
}

/** The table's default of a string flag. */
function stringDefault(name: string): string {
  const value = FLAGS_BY_NAME.get(name)?.default;
  if (typeof value !== "string") throw new Error(`--${name} has no string default`);
  return value;
}

function stringFlag(values: Values, name: string): string | undefined {
  const raw = values[name];
  return typeof raw === "string" ? raw : undefined;
}

function listFlag(values: Values, name: string): string[] {
  const raw = values[name];
  return Array.isArray(raw) ? raw.filter((v): v is string => typeof v === "string") : [];
}

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
  if (args[0] === "health") return { kind: "health", args: args.slice(1) };
  if (args[0] === "providers") {
    return args.length === 1
      ? { kind: "providers" }
      : { kind: "error", message: "providers: takes no arguments" };
  }
  let values: Values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: parseArgsOptions(SERVE_FLAGS.map((flag) => flag.name)),
    }));
  } catch (error) {
    return { kind: "error", message: describeParseError(error) };
  }
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };
  const options = serveOptions(values);
  return options.ok
    ? { kind: "serve", options: options.value }
    : { kind: "error", message: options.error };
}

/** The server's options from parsed flags, every value checked. */
function serveOptions(values: Values): Result<ServeOptions> {
  if (values.verbose && values.quiet) {
    return err("options '-v' and '-q' cannot be used together");
  }
  const numbers: Record<string, number> = {};
  for (const flag of SERVE_FLAGS) {
    if (flag.range === undefined) continue;
    const value = numberFlag(values, flag.name);
    if (!value.ok) return value;
    numbers[flag.name] = value.value;
  }
  const host = stringFlag(values, "host") ?? stringDefault("host");
  if (host === "") return err("option '--host' needs an address");
  const socketMode = stringFlag(values, "socket-mode") ?? stringDefault("socket-mode");
  if (!/^0?[0-7]{3}$/.test(socketMode)) {
    return err(`option '--socket-mode' needs octal bits like 0660, not '${socketMode}'`);
  }
  for (const text of listFlag(values, "dns-server")) {
    const server = parseDnsServer(text);
    if (!server.ok) return err(`option '--dns-server': ${server.error}`);
  }
  const socketmap: ListenAddress[] = [];
  for (const text of listFlag(values, "socketmap")) {
    const address = parseListenAddress(text);
    if (!address.ok) return err(`option '--socketmap' ${address.error}`);
    socketmap.push(address.value);
  }
  if (numbers.port === 0 && socketmap.length === 0) {
    return err("option '--port 0' disables tcp_table: give --socketmap ADDR too");
  }
  const listeners = [
    ...(numbers.port === 0 ? [] : [formatHostPort({ host, port: numbers.port })]),
    ...socketmap.map(formatListenAddress),
  ];
  // A second listener on the same unix path would find our own first one "in use".
  const twice = listeners.find((text, i) => listeners.indexOf(text) !== i);
  if (twice !== undefined) {
    return err(`${twice} is given twice: each address serves one protocol`);
  }
  const metricsText = stringFlag(values, "metrics");
  let metrics: TcpAddress | null = null;
  if (metricsText !== undefined) {
    const address = parseListenAddress(metricsText);
    if (!address.ok || address.value.transport !== "tcp") {
      return err(`option '--metrics' needs HOST:PORT, not '${metricsText}'`);
    }
    metrics = { host: address.value.host, port: address.value.port };
  }
  const matchMode = parseMatchMode(stringFlag(values, "match-mode"));
  if (!matchMode.ok) return matchMode;
  const cacheFile = stringFlag(values, "cache-file") ?? null;
  if (cacheFile === "") return err("option '--cache-file' needs a path");
  return ok({
    config: stringFlag(values, "config") ?? DEFAULT_CONFIG,
    host,
    port: numbers.port,
    dnsServers: listFlag(values, "dns-server"),
    dnsTimeoutMs: numbers["dns-timeout"] * 1000,
    dnsTcp: values["dns-tcp"] === true,
    idleTimeoutMs: numbers.timeout * 1000,
    cache: {
      cacheTtl: numbers["cache-ttl"],
      minTtl: numbers["min-ttl"],
      negativeTtl: numbers["negative-ttl"],
      failureTtl: numbers["failure-ttl"],
      staleTtl: numbers["stale-ttl"],
      staleAnswerMs: numbers["stale-answer-ms"],
      cacheSize: numbers["cache-size"],
    },
    cacheFile,
    maxConnections: numbers["max-connections"],
    maxDnsInflight: numbers["max-dns-inflight"],
    socketmap,
    socketMode: parseInt(socketMode, 8),
    socketGroup: stringFlag(values, "socket-group") ?? null,
    metrics,
    dryRun: values["dry-run"] === true,
    matchMode: matchMode.value,
    verbosity: values.verbose ? "debug" : values.quiet ? "error" : "info",
  });
}

function parseCheck(args: string[]): Command {
  let values: Values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      options: { ...parseArgsOptions(["config", "match-mode"]), strict: { type: "boolean" } },
    }));
  } catch (error) {
    return { kind: "error", message: `check: ${describeParseError(error)}` };
  }
  const matchMode = parseMatchMode(stringFlag(values, "match-mode"));
  if (!matchMode.ok) return { kind: "error", message: `check: ${matchMode.error}` };
  return {
    kind: "check",
    options: {
      config: stringFlag(values, "config") ?? DEFAULT_CONFIG,
      strict: values.strict === true,
      matchMode: matchMode.value,
    },
  };
}

function parseQuery(args: string[]): Command {
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        ...parseArgsOptions(["config", "dns-server", "dns-timeout", "dns-tcp", "match-mode"]),
        json: { type: "boolean" },
      },
    });
  } catch (error) {
    return { kind: "error", message: `query: ${describeParseError(error)}` };
  }
  const { values, positionals } = parsed;
  if (positionals.length === 0) return { kind: "error", message: "query: give at least one KEY" };
  const dnsTimeout = numberFlag(values, "dns-timeout");
  if (!dnsTimeout.ok) return { kind: "error", message: `query: ${dnsTimeout.error}` };
  const matchMode = parseMatchMode(stringFlag(values, "match-mode"));
  if (!matchMode.ok) return { kind: "error", message: `query: ${matchMode.error}` };
  return {
    kind: "query",
    options: {
      config: stringFlag(values, "config") ?? DEFAULT_CONFIG,
      matchMode: matchMode.value,
      dnsServers: listFlag(values, "dns-server"),
      dnsTimeoutMs: dnsTimeout.value * 1000,
      dnsTcp: values["dns-tcp"] === true,
      json: values.json === true,
      keys: positionals,
    },
  };
}

/** `--match-mode MODE`, `any` when not given. */
function parseMatchMode(raw: string | undefined): Result<MatchMode> {
  if (raw === undefined) return ok(stringDefault("match-mode") as MatchMode);
  const mode = MATCH_MODES.find((known) => known === raw.toLowerCase());
  return mode === undefined
    ? err(`option '--match-mode' takes ${MATCH_MODES.join(", ")}, not '${raw}'`)
    : ok(mode);
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
