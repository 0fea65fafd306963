/**
 * The cache's DNS answers as a text file that outlives the process, so a restart while DNS is down
 * still routes every domain known a moment before. Only DNS outcomes are kept, never decisions:
 * the rules may change between runs, and decisions are made again with the rules in force.
 *
 * The format, version 1, is line-based ASCII:
 *
 * ```
 * postfix-mx-pattern-router cache 1
 * {"d":"contoso.com","u":1718000000000,"k":"mx","h":["contoso-com.mail.protection.outlook.com"],"t":3600}
 * {"d":"gmail.com","u":1718000300000,"k":"mx","h":["gmail-smtp-in.l.google.com","alt1.gmail-smtp-in.l.google.com"],"t":300}
 * {"d":"gone.example","u":1718000060000,"k":"nxdomain","t":900}
 * end 3
 * ```
 *
 * A header line (magic and version), one JSON object per domain, most recently used first, and a
 * trailer with the count, which shows a truncated file as such. Fields: `d` the domain as cached,
 * `u` the epoch millisecond it is fresh until, `k` the outcome kind (`mx`, `nullmx`, `nodata`,
 * `nxdomain`; failures are never kept), `t` the TTL from DNS in seconds (for `nodata` and
 * `nxdomain` the SOA's negative TTL, or null without one), `h` the MX hosts in the order they are
 * tried and `p` how many of them share the lowest preference (absent: 1).
 *
 * Decoding checks every field and refuses the whole file at the first fault, naming the line:
 * a domain in the cache is served without the checks a lookup key gets (see `Router.route`), so
 * nothing may enter it that a DNS answer could not have put there.
 *
 * @module
 */

import { err, ok, type Result } from "../common/result.ts";
import type { SavedEntry } from "./cache.ts";
import type { MxOutcome, TempFailAnswer } from "../dns/types.ts";

/** The first word of the header line. */
export const SNAPSHOT_MAGIC = "postfix-mx-pattern-router cache";

/** The format version this router writes and reads. */
export const SNAPSHOT_VERSION = 1;

/** The most MX hosts an entry may have: what the resolver keeps of an answer. */
export const SNAPSHOT_MAX_HOSTS = 16;

/**
 * The average bytes per entry a snapshot may use. A typical line is 80 to 150 bytes; an entry of
 * 16 long host names is 4 kB, which the budget allows as long as most entries are not like it.
 */
const BYTES_PER_ENTRY = 512;

/** Files smaller than this are never refused as too large, however small --cache-size is. */
const MIN_BYTE_LIMIT = 16 * 1024 * 1024;

/** TTLs are 31-bit (RFC 2181 §8). */
const MAX_TTL = 2 ** 31 - 1;

/** A host name as the resolver accepts an MX exchange (Postfix's valid_hostname). */
const HOST_NAME = (() => {
  const label = "[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?";
  return new RegExp(`^(?=.{1,253}$)(?:${label}\\.)*${label}$`);
})();

/** A last label of digits only: keys.ts refuses such domains (an IP address?). */
const NUMERIC_TOP_LABEL = /(?:^|\.)[0-9]+$/;

const TRAILER = /^end (0|[1-9][0-9]{0,9})$/;

type UsableOutcome = Exclude<MxOutcome, TempFailAnswer>;

/**
 * The largest snapshot, in bytes, for a cache of `cacheSize` domains: files larger are refused
 * unread, and writing stops before it (the least recently used entries are left out).
 *
 * @example
 * ```ts
 * snapshotByteLimit(100_000); // 51200000
 * ```
 */
export function snapshotByteLimit(cacheSize: number): number {
  return Math.max(MIN_BYTE_LIMIT, cacheSize * BYTES_PER_ENTRY);
}

/** A snapshot as text, and how many entries went in and were left out. */
export interface EncodedSnapshot {
  /** The file's content. */
  text: string;
  /** Entries written. */
  written: number;
  /** Entries left out: past `maxEntries` or `maxBytes`, or not valid as a snapshot entry. */
  omitted: number;
}

/** Bounds of {@linkcode encodeSnapshot}. */
export interface EncodeOptions {
  /** The most entries written (--cache-size): the first ones given win. */
  maxEntries: number;
  /** The most bytes written, header and trailer included ({@linkcode snapshotByteLimit}). */
  maxBytes: number;
}

/**
 * Encodes entries, most recently used first, into a snapshot. An entry that would not decode
 * (which no DNS answer produces) is left out rather than spoil the file.
 *
 * @example
 * ```ts
 * const { text } = encodeSnapshot([{
 *   domain: "example.com",
 *   freshUntil: 1_718_000_000_000,
 *   outcome: { kind: "mx", hosts: ["mx.example.com"], ttl: 300 },
 * }], { maxEntries: 100_000, maxBytes: snapshotByteLimit(100_000) });
 * ```
 */
export function encodeSnapshot(
  entries: Iterable<SavedEntry>,
  options: EncodeOptions,
): EncodedSnapshot {
  const encoder = new SnapshotEncoder(options);
  for (const entry of entries) encoder.add(entry);
  return encoder.finish();
}

/**
 * {@linkcode encodeSnapshot} an entry at a time, so a caller can let other work run between
 * batches: encoding 100,000 entries at once would hold up every lookup for a tenth of a second.
 *
 * @example
 * ```ts
 * const encoder = new SnapshotEncoder({ maxEntries: 100_000, maxBytes: snapshotByteLimit(100_000) });
 * encoder.add({
 *   domain: "example.com",
 *   freshUntil: 1_718_000_000_000,
 *   outcome: { kind: "nxdomain", negativeTtl: 900 },
 * });
 * const { text } = encoder.finish();
 * ```
 */
export class SnapshotEncoder {
  readonly #options: EncodeOptions;
  readonly #lines: string[] = [`${SNAPSHOT_MAGIC} ${SNAPSHOT_VERSION}`];
  // Header, trailer ("end " and up to 10 digits) and the newlines.
  #bytes = this.#lines[0].length + 16;
  #omitted = 0;

  constructor(options: EncodeOptions) {
    this.#options = options;
  }

  /** Adds the next entry, or counts it as left out (past a bound, or not valid). */
  add(entry: SavedEntry): void {
    if (this.#lines.length - 1 >= this.#options.maxEntries) {
      this.#omitted++;
      return;
    }
    const record = recordOf(entry);
    const line = JSON.stringify(record);
    // All ASCII (checked by checkRecord): a character is a byte.
    if (this.#bytes + line.length + 1 > this.#options.maxBytes || checkRecord(record) !== null) {
      this.#omitted++;
      return;
    }
    this.#bytes += line.length + 1;
    this.#lines.push(line);
  }

  /** The snapshot of the entries added. */
  finish(): EncodedSnapshot {
    const written = this.#lines.length - 1;
    const text = [...this.#lines, `end ${written}`, ""].join("\n");
    return { text, written, omitted: this.#omitted };
  }
}

/** Why a snapshot is refused, and where. */
export interface SnapshotFault {
  /** The 1-based line at fault, or null for the file as a whole (cut short). */
  line: number | null;
  message: string;
}

/** Bounds of {@linkcode decodeSnapshot}. */
export interface DecodeOptions {
  /** The most entries returned (--cache-size): the first ones, most recently used. */
  maxEntries: number;
}

/**
 * Decodes a snapshot: every entry, or the first fault (with its line number when it is on one
 * line). Never throws.
 *
 * @example
 * ```ts
 * declare const text: string;
 * const decoded = decodeSnapshot(text, { maxEntries: 100_000 });
 * if (!decoded.ok) console.warn(`line ${decoded.error.line}: ${decoded.error.message}`);
 * ```
 */
export function decodeSnapshot(
  text: string,
  options: DecodeOptions,
): Result<SavedEntry[], SnapshotFault> {
  const lines = text.split("\n");
  const header = lines[0];
  if (!header.startsWith(`${SNAPSHOT_MAGIC} `)) {
    return err({ line: 1, message: `not a cache snapshot: no "${SNAPSHOT_MAGIC}" header` });
  }
  const version = header.slice(SNAPSHOT_MAGIC.length + 1);
  if (version !== String(SNAPSHOT_VERSION)) {
    return err({
      line: 1,
      message: `format version ${show(version)}, but this router reads version ${SNAPSHOT_VERSION}`,
    });
  }
  // A complete file ends with the trailer and a newline: the last element is then "".
  const trailer = lines.length >= 3 && lines[lines.length - 1] === ""
    ? TRAILER.exec(lines[lines.length - 2])
    : null;
  if (trailer === null) {
    return err({ line: null, message: 'truncated: no "end COUNT" line at the end' });
  }
  const count = lines.length - 3;
  if (Number(trailer[1]) !== count) {
    return err({
      line: lines.length - 1,
      message: `truncated or spliced: ${count} entries, but the end line says ${trailer[1]}`,
    });
  }
  const entries: SavedEntry[] = [];
  const seen = new Set<string>();
  const wanted = Math.min(count, options.maxEntries);
  for (let index = 1; index <= wanted; index++) {
    const line = index + 1;
    let record: unknown;
    try {
      record = JSON.parse(lines[index]);
    } catch {
      return err({ line, message: "not valid JSON" });
    }
    const fault = checkRecord(record);
    if (fault !== null) return err({ line, message: fault });
    const entry = entryOf(record as SnapshotRecord);
    if (seen.has(entry.domain)) {
      return err({ line, message: `domain "${entry.domain}" is listed twice` });
    }
    seen.add(entry.domain);
    entries.push(entry);
  }
  return ok(entries);
}

/** One line's object, as written. */
interface SnapshotRecord {
  d: string;
  u: number;
  k: UsableOutcome["kind"];
  t: number | null;
  h?: string[];
  p?: number;
}

/** The fields each kind has: exactly these, none missing, none more. */
const FIELDS: Record<UsableOutcome["kind"], readonly string[]> = {
  mx: ["d", "u", "k", "t", "h"],
  nullmx: ["d", "u", "k", "t"],
  nodata: ["d", "u", "k", "t"],
  nxdomain: ["d", "u", "k", "t"],
};

function recordOf({ domain, freshUntil, outcome }: SavedEntry): SnapshotRecord {
  // Whole milliseconds, never later than the cache said.
  const u = Math.floor(freshUntil);
  switch (outcome.kind) {
    case "mx": {
      const record: SnapshotRecord = { d: domain, u, k: "mx", h: outcome.hosts, t: outcome.ttl };
      if ((outcome.primaryCount ?? 1) !== 1) record.p = outcome.primaryCount;
      return record;
    }
    case "nullmx":
      return { d: domain, u, k: "nullmx", t: outcome.ttl };
    case "nodata":
    case "nxdomain":
      return { d: domain, u, k: outcome.kind, t: outcome.negativeTtl };
    default: {
      const unknown: never = outcome;
      throw new Error(`unexpected outcome ${JSON.stringify(unknown)}`);
    }
  }
}

function entryOf(record: SnapshotRecord): SavedEntry {
  const { d: domain, u: freshUntil } = record;
  switch (record.k) {
    case "mx": {
      const outcome: UsableOutcome = { kind: "mx", hosts: record.h!, ttl: record.t! };
      if (record.p !== undefined && record.p !== 1) outcome.primaryCount = record.p;
      return { domain, freshUntil, outcome };
    }
    case "nullmx":
      return { domain, freshUntil, outcome: { kind: "nullmx", ttl: record.t! } };
    case "nodata":
    case "nxdomain":
      return { domain, freshUntil, outcome: { kind: record.k, negativeTtl: record.t } };
    default: {
      const unknown: never = record.k;
      throw new Error(`unexpected kind ${unknown}`);
    }
  }
}

/** Why a parsed line is not a valid record, or null when it is. */
function checkRecord(value: unknown): string | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return "not a JSON object";
  }
  const record = value as Record<string, unknown>;
  const kind = record.k;
  if (typeof kind !== "string" || !Object.hasOwn(FIELDS, kind)) {
    return `field "k": ${show(kind)} is not mx, nullmx, nodata or nxdomain`;
  }
  const fields = FIELDS[kind as UsableOutcome["kind"]];
  for (const key of Object.keys(record)) {
    if (!fields.includes(key) && !(kind === "mx" && key === "p")) {
      return `field "${key.slice(0, 20)}" does not belong to a ${kind} entry`;
    }
  }
  for (const key of fields) {
    if (!Object.hasOwn(record, key)) return `field "${key}" is missing`;
  }
  const domain = record.d;
  if (typeof domain !== "string") return `field "d": ${show(domain)} is not a string`;
  if (!isCachedDomain(domain)) {
    return `field "d": ${show(domain)} is not a domain as the cache keeps one`;
  }
  const freshUntil = record.u;
  if (typeof freshUntil !== "number" || !Number.isSafeInteger(freshUntil) || freshUntil <= 0) {
    return `field "u": ${show(freshUntil)} is not a time in epoch milliseconds`;
  }
  const ttl = record.t;
  const negative = kind === "nodata" || kind === "nxdomain";
  if (!(negative && ttl === null) && !isTtl(ttl)) {
    return `field "t": ${show(ttl)} is not a TTL from 0 to ${MAX_TTL}` +
      (negative ? " or null" : "");
  }
  if (kind !== "mx") return null;
  const hosts = record.h;
  if (!Array.isArray(hosts) || hosts.length === 0 || hosts.length > SNAPSHOT_MAX_HOSTS) {
    return `field "h": not a list of 1 to ${SNAPSHOT_MAX_HOSTS} host names`;
  }
  for (const host of hosts) {
    if (typeof host !== "string" || !HOST_NAME.test(host)) {
      return `field "h": ${show(host)} is not a host name`;
    }
  }
  const primary = record.p;
  if (
    primary !== undefined &&
    (typeof primary !== "number" || !Number.isInteger(primary) || primary < 1 ||
      primary > hosts.length)
  ) {
    return `field "p": ${show(primary)} is not a count from 1 to ${hosts.length}`;
  }
  return null;
}

/**
 * Whether a name is a domain as the cache keeps one: what `domainFromKey` makes of a key and
 * leaves as it is when given it again (lower-case ASCII labels, no trailing dot, not numeric at
 * the top). One regular expression instead of domainFromKey itself: a third of the time to load
 * 100,000 entries; the tests hold the two to the same answers.
 *
 * @example
 * ```ts
 * isCachedDomain("example.com"); // true
 * isCachedDomain("Example.COM."); // false: domainFromKey makes "example.com" of it
 * ```
 */
export function isCachedDomain(name: string): boolean {
  return HOST_NAME.test(name) && !NUMERIC_TOP_LABEL.test(name);
}

function isTtl(value: unknown): boolean {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= MAX_TTL;
}

/** A value for a message: JSON, at most 60 characters (a hostile file cannot flood the log). */
function show(value: unknown): string {
  const text = value === undefined ? "undefined" : JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
