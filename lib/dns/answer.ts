/**
 * What a DNS reply to an MX query means: an {@linkcode MxOutcome} per the DNS outcome table, with
 * CNAME chains followed within the answer, and a failure for anything that is not a whole answer
 * or holds a record the question does not account for.
 *
 * Pure functions without I/O or clock, so hostile packets can be tested byte by byte.
 *
 * @module
 */

// @ts-types="@types/dns-packet"
import type * as dnsPacket from "dns-packet";
import type { MxAnswer, MxOutcome, TempFailAnswer } from "./types.ts";
import { asciiLower, type DnsReply, isDnsName, RCODE } from "./wire.ts";

/**
 * The most MX hosts kept per domain, lowest preference first. The domain's owner chooses how
 * many records to publish: thousands would cost memory in the cache and time in every rule
 * match, while real domains have a handful and the first ones decide.
 */
export const MAX_MX_HOSTS = 16;

/** How many CNAMEs an answer may chain before we call it broken. */
export const MAX_CNAME_HOPS = 16;

const RCODE_NAMES = [
  "NOERROR",
  "FORMERR",
  "SERVFAIL",
  "NXDOMAIN",
  "NOTIMP",
  "REFUSED",
  "YXDOMAIN",
  "YXRRSET",
  "NXRRSET",
  "NOTAUTH",
  "NOTZONE",
];

/**
 * A TTL as a cache may use it: values with the top bit set mean 0 (RFC 2181 §8).
 *
 * @example
 * ```ts
 * usableTtl(300); // 300
 * usableTtl(2 ** 31); // 0
 * ```
 */
export function usableTtl(ttl: number | undefined): number {
  return ttl === undefined || ttl >= 2 ** 31 ? 0 : ttl;
}

/** Where a reply came from, for reasons such as "SERVFAIL from 127.0.0.1:53". */
export interface ReplyContext {
  /** The queried name as returned by {@linkcode toQueryName}. */
  name: string;
  /** The server, formatted as ADDR:PORT. */
  from: string;
}

/** A record of the IN class (dns-packet folds the mDNS flush bit out of the class). */
function isIn(record: dnsPacket.Answer): boolean {
  return record.type !== "OPT" && record.class === "IN" && record.flush !== true;
}

/** A lower-cased owner or target name without trailing dot ("." stays the root). */
function normalName(name: string): string {
  const lower = asciiLower(name);
  return lower.length > 1 && lower.endsWith(".") ? lower.slice(0, -1) : lower;
}

/** Whether `zone` is `name` or one of its ancestors (the root is an ancestor of every name). */
function holds(zone: string, name: string): boolean {
  return zone === "." || zone === name || name.endsWith(`.${zone}`);
}

/**
 * A host name as Postfix accepts one (valid_hostname): at most 253 characters, labels of 1 to 63
 * letters, digits, hyphens and underscores, no hyphen at either end of a label.
 */
const HOST_NAME = (() => {
  const label = "[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?";
  return new RegExp(`^(?=.{1,253}$)(?:${label}\\.)*${label}$`);
})();

/**
 * A name in zone-file form for logs and reasons: bytes outside printable ASCII, and the
 * backslash, as `\DDD` (`backup\032mx.example`), so a hostile name cannot forge a log line.
 */
function presentName(name: string): string {
  return name.replace(
    /[^\x21-\x5b\x5d-\x7e]/gu,
    (char) =>
      Array.from(new TextEncoder().encode(char), (byte) => `\\${String(byte).padStart(3, "0")}`)
        .join(""),
  );
}

/**
 * The negative-caching TTL of RFC 2308: min(SOA TTL, SOA MINIMUM) of the first SOA in the
 * authority section whose owner is `name` or one of its ancestors, the zone that holds it (others
 * say nothing about this name). Null without such an SOA.
 */
function negativeTtl(packet: dnsPacket.DecodedPacket, name: string): number | null {
  for (const record of packet.authorities ?? []) {
    if (record.type !== "SOA" || !isIn(record) || !holds(normalName(record.name), name)) continue;
    return Math.min(usableTtl(record.ttl), usableTtl(record.data.minimum));
  }
  return null;
}

/** A record as reasons name it: "MX record of evil.example". */
function describe(record: dnsPacket.Answer): string {
  return `${record.type} record of ${presentName(normalName(record.name))}`;
}

/** The CNAME chain of an answer: the names from the queried one to the final target. */
interface Chain {
  /** Every name of the chain, the queried name first, the final target last. */
  names: string[];
  /** The CNAME records that link them. */
  links: Set<dnsPacket.Answer>;
}

/**
 * Why an answer record cannot be accounted for, or null when it can: an IN-class MX of a name of
 * the chain (not in an NXDOMAIN reply, which says the final name has none), a CNAME linking the
 * chain, or a DNAME or RRSIG record of a name of the chain or an ancestor of one (a resolver may
 * add them; they change nothing). Anything else answers another question.
 */
function unexplained(record: dnsPacket.Answer, chain: Chain, nxdomain: boolean): string | null {
  const what = describe(record);
  if (record.type === "OPT") return what;
  if (record.flush === true) return `${what} with the mDNS cache-flush bit set`;
  if (record.class !== "IN") return `${what} of class ${record.class}`;
  const name = normalName(record.name);
  switch (record.type) {
    case "MX":
      if (!chain.names.includes(name)) return `${what}, a name not asked about`;
      return nxdomain ? `${what} in an NXDOMAIN reply` : null;
    case "CNAME":
      return chain.links.has(record) ? null : `${what}, not part of the CNAME chain`;
    case "DNAME":
    case "RRSIG":
      return chain.names.some((link) => holds(name, link))
        ? null
        : `${what}, a name not asked about`;
    default:
      return `${what}, a type not asked about`;
  }
}

/**
 * NOERROR without MX records: NODATA (the domain is its own MX) only when the reply proves it:
 * - with the SOA of the zone that holds the final name (the name itself or an ancestor), as
 *   resolvers send NODATA (RFC 2308);
 * - entirely empty, no answer and no authority records, as a local server such as dnsmasq sends
 *   it for its own names.
 * Anything else is a failure, never "no MX" (a wrong 500 misroutes mail): NS records only are a
 * referral (the server does not recurse), a CNAME chain without the SOA of its target's zone was
 * not followed to its end, an SOA of another zone or other records say nothing about this name.
 */
function negativeOutcome(
  packet: dnsPacket.DecodedPacket,
  reply: { soaTtl: number | null; found: boolean; owner: string; chained: boolean; from: string },
): MxOutcome {
  if (reply.found) return { kind: "nodata", negativeTtl: reply.soaTtl };
  const authorities = packet.authorities ?? [];
  // Without an SOA the cache keeps it for --min-ttl, the shortest it keeps anything.
  if ((packet.answers ?? []).length === 0 && authorities.length === 0) {
    return { kind: "nodata", negativeTtl: null };
  }
  const incomplete = (why: string): TempFailAnswer => ({
    kind: "tempfail",
    reason: `incomplete answer from ${reply.from}: ${why}`,
    cause: "malformed",
  });
  if (authorities.length > 0 && authorities.every((record) => record.type === "NS")) {
    return incomplete("a referral (NS records only): is it a recursive resolver?");
  }
  const name = presentName(reply.owner);
  const missing = reply.chained
    ? `no MX and no SOA of the zone of ${name}, the CNAME target`
    : `no MX and no SOA of the zone of ${name}`;
  const held = authorities.find((record) => record.type !== "NS");
  return incomplete(
    held === undefined ? missing : `${missing}; in the authority section: ${describe(held)}`,
  );
}

/**
 * Turns a reply that answers an MX query for `context.name` into an outcome. Follows CNAME
 * chains within the answer section; a record the question does not account for (another name,
 * another class or type) makes the reply a failure. An exchange that is not a host name is
 * skipped and named in `skipped`; with none left the reply is a failure. Never throws.
 *
 * @example
 * ```ts
 * import { checkReply } from "./wire.ts";
 * declare const bytes: Uint8Array;
 * const check = checkReply(bytes, { id: 0x1234, name: "example.com" });
 * if (check.kind === "reply") {
 *   const outcome = interpretReply(check.reply, { name: "example.com", from: "127.0.0.1:53" });
 * }
 * ```
 */
export function interpretReply(reply: DnsReply, context: ReplyContext): MxOutcome {
  const { from } = context;
  const malformed = (why: string): TempFailAnswer => ({
    kind: "tempfail",
    reason: `malformed answer from ${from}: ${why}`,
    cause: "malformed",
  });
  const { rcode, packet } = reply;
  if (rcode === RCODE.SERVFAIL) {
    return { kind: "tempfail", reason: `SERVFAIL from ${from}`, cause: "servfail" };
  }
  if (rcode === RCODE.REFUSED) {
    return { kind: "tempfail", reason: `REFUSED from ${from}`, cause: "refused" };
  }
  if (rcode !== RCODE.NOERROR && rcode !== RCODE.NXDOMAIN) {
    const rcodeName = RCODE_NAMES[rcode] ?? `RCODE ${rcode}`;
    return { kind: "tempfail", reason: `${rcodeName} from ${from}`, cause: "rcode" };
  }
  // An answer cut short is never taken for the whole: over UDP the caller asks again over TCP.
  if (reply.truncated || packet === null) return malformed("truncated (TC bit set)");

  const answers = packet.answers ?? [];
  // The CNAME TTLs bound the answer too: the alias may change when they expire.
  let chainTtl = Infinity;
  let owner = context.name;
  const chain: Chain = { names: [owner], links: new Set() };
  for (let hops = 0;; hops++) {
    const alias = answers.find((record) =>
      record.type === "CNAME" && isIn(record) && normalName(record.name) === owner
    );
    if (alias === undefined || alias.type !== "CNAME") break;
    if (hops === MAX_CNAME_HOPS) return malformed(`more than ${MAX_CNAME_HOPS} CNAMEs`);
    const target = normalName(alias.data);
    if (!isDnsName(target)) return malformed("bad CNAME target");
    if (chain.names.includes(target)) return malformed(`CNAME loop at ${target}`);
    chain.names.push(target);
    chain.links.add(alias);
    owner = target;
    chainTtl = Math.min(chainTtl, usableTtl(alias.ttl));
  }
  const nxdomain = rcode === RCODE.NXDOMAIN;
  for (const record of answers) {
    const why = unexplained(record, chain, nxdomain);
    if (why !== null) {
      return {
        kind: "tempfail",
        reason: `unexplained answer from ${from}: ${why}`,
        cause: "malformed",
      };
    }
  }

  // RFC 2308's negative TTL, and through a CNAME no longer than the alias; null without an SOA.
  const soaTtl = negativeTtl(packet, owner);
  const negativeTtlBound = soaTtl === null ? null : Math.min(soaTtl, chainTtl);
  if (nxdomain) return { kind: "nxdomain", negativeTtl: negativeTtlBound };

  const exchanges: { preference: number; host: string }[] = [];
  const skipped: string[] = [];
  let ttl = chainTtl;
  let nullMxTtl: number | null = null;
  for (const record of answers) {
    if (record.type !== "MX" || normalName(record.name) !== owner) continue;
    const host = normalName(record.data.exchange);
    if (host === "" || host === ".") {
      nullMxTtl = Math.min(nullMxTtl ?? chainTtl, usableTtl(record.ttl));
      continue;
    }
    ttl = Math.min(ttl, usableTtl(record.ttl));
    // One bad exchange must not defer the whole domain: Postfix skips it too.
    if (!HOST_NAME.test(host)) {
      if (skipped.length < MAX_MX_HOSTS) skipped.push(presentName(host));
      continue;
    }
    exchanges.push({ preference: record.data.preference ?? 0, host });
  }
  if (exchanges.length === 0) {
    if (skipped.length > 0) {
      const names = skipped.slice(0, 3).map((name) => name.slice(0, 80)).join(", ");
      return malformed(`no MX exchange is a host name (${names})`);
    }
    // RFC 7505: a null MX says "no mail"; mixed with real exchanges it is ignored.
    if (nullMxTtl !== null) return { kind: "nullmx", ttl: nullMxTtl };
    return negativeOutcome(packet, {
      soaTtl: negativeTtlBound,
      found: soaTtl !== null,
      owner,
      chained: chain.names.length > 1,
      from,
    });
  }
  // Array.prototype.sort is stable, so equal preferences keep the answer order.
  exchanges.sort((a, b) => a.preference - b.preference);
  const hosts = exchanges.slice(0, MAX_MX_HOSTS).map((mx) => mx.host);
  const lowest = exchanges[0].preference;
  const others = exchanges.findIndex((mx) => mx.preference !== lowest);
  const primaryCount = Math.min(others < 0 ? exchanges.length : others, hosts.length);
  const answer: MxAnswer = { kind: "mx", hosts, ttl };
  // Only when it says more than the default of one, so most answers keep their shape.
  if (primaryCount !== 1) answer.primaryCount = primaryCount;
  if (skipped.length > 0) answer.skipped = skipped;
  return answer;
}
